package main

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/examples/publisher"
)

// TestProgressiveKill9 kills serve (SIGKILL) in the middle of a call that it
// renders while recording, in windows of 2 s. Started again, serve recovers
// the session, and the render after the call takes the windows rendered
// before the kill instead of drawing them again; the composite is stored.
func TestProgressiveKill9(t *testing.T) {
	bin := buildTapedeckRace(t)
	data := t.TempDir()
	addr := freeAddr(t)
	renders := filepath.Join(t.TempDir(), "renders.yaml")
	if err := os.WriteFile(renders, []byte("default:\n  - name: default\n    profile: mp4-360p\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	starts := 0
	start := func() *serveRun {
		t.Helper()
		starts++
		cmd := exec.Command(bin, "serve", "--listen", addr, "--data", data, "--grace", "1s", "--renders", renders,
			"--progressive-window", "2s", "--progressive-cpu", "0", "--log-level", "info")
		s := startServeRun(t, cmd, "serve#"+strconv.Itoa(starts)+": ")
		s.log.wait(30*time.Second, "tapedeck serving")
		return s
	}

	srv := start()
	cfg := publisher.Config{Endpoint: "http://" + addr + "/whip/crash", Participant: "erin", Duration: 30 * time.Second,
		Video: publisher.VP8, Audio: true, Width: 320, Height: 240, Bitrate: 300_000}
	plog := slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelError}))
	if _, err := publisher.PrepareMedia(t.Context(), cfg, plog); err != nil {
		t.Fatal(err)
	}
	pctx, stopPublishing := context.WithCancel(t.Context())
	defer stopPublishing()
	called := make(chan error, 1)
	go func() { _, err := publisher.Run(pctx, cfg, plog); called <- err }()
	// The windows kept during the call, where the render after it looks.
	kept := func() []string {
		found, _ := filepath.Glob(filepath.Join(data, ".work", "crash", "*", "out", ".reuse-default", "*"))
		var w []string
		for _, f := range found {
			if !strings.HasPrefix(filepath.Base(f), ".") {
				w = append(w, filepath.Base(f))
			}
		}
		return w
	}
	deadline := time.Now().Add(40 * time.Second)
	for len(kept()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d windows rendered 40 s into the call, want 2", len(kept()))
		}
		select {
		case err := <-called:
			t.Fatalf("the call ended (%v) before 2 windows were rendered", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	before := kept()
	if err := srv.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-srv.done
	stopPublishing()
	<-called
	t.Logf("killed serve with %d windows kept", len(before))

	srv = start()
	done := srv.log.wait(2*time.Minute, "post-call job done", "stage=render")
	var reused int
	srv.log.mu.Lock()
	for _, l := range srv.log.lines {
		if strings.Contains(l, "render: window reused") {
			reused++
		}
	}
	srv.log.mu.Unlock()
	t.Logf("after the restart: %d windows reused of the %d kept before the kill (%s)", reused, len(before), done)
	if reused < len(before)-1 || reused == 0 {
		t.Errorf("the render after the restart reused %d windows, want the %d rendered before the kill (one may be looked at again)", reused, len(before))
	}
	composites, _ := filepath.Glob(filepath.Join(filepath.Dir(data), "store", "crash", "*", "renders", "default", "*.mp4"))
	if len(composites) != 1 {
		t.Fatalf("composites stored: %v, want one", composites)
	}
	_ = srv.sigterm(t)
}
