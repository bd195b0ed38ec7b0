package capture_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/examples/publisher"
	"github.com/tapedeck/tapedeck/timeline"
)

// buildTapedeck builds the tapedeck command for tests that need a process
// they can kill.
func buildTapedeck(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tapedeck")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/tapedeck").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startServe runs `tapedeck serve` and waits until it accepts requests.
func startServe(t *testing.T, bin, addr, data string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--listen", addr, "--data", data, "--grace", "1s", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = testWriter{t}, testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("OPTIONS", "http://"+addr+"/whip/probe", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return cmd
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	t.Fatal("tapedeck serve did not start")
	return nil
}

// TestKillAndRecover kills `tapedeck serve` with SIGKILL in the middle of a
// call. Every file written so far must decode strictly and hold the media up
// to about a second before the kill; the next start of serve must rebuild
// the manifest from the journal and the files.
func TestKillAndRecover(t *testing.T) {
	t.Parallel()
	bin := buildTapedeck(t)
	data := t.TempDir()
	addr := freePort(t)
	cfg := publisher.Config{Endpoint: "http://" + addr + "/whip/crash", Participant: "erin", Duration: 30 * time.Second,
		Video: publisher.VP8, Audio: true, Width: 320, Height: 240, Bitrate: 500_000}
	if _, err := publisher.PrepareMedia(t.Context(), cfg, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, bin, addr, data)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := publisher.Run(ctx, cfg, testLogger(t))
		done <- err
	}()
	time.Sleep(7 * time.Second)
	if err := srv.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	_ = srv.Wait()
	cancel()
	<-done // the publisher fails or hangs up; either is expected here

	journals, _ := filepath.Glob(filepath.Join(data, "crash", "*", capture.JournalName))
	if len(journals) != 1 {
		t.Fatalf("found %d journals, want 1", len(journals))
	}
	dir := filepath.Dir(journals[0])
	if _, err := os.Stat(filepath.Join(dir, capture.ManifestName)); err == nil {
		t.Fatal("a manifest exists before recovery")
	}

	// A copy of the folder elsewhere is recovered by `tapedeck recover`.
	copyDir := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", dir, copyDir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if out, err := exec.Command(bin, "recover", copyDir).CombinedOutput(); err != nil {
		t.Fatalf("tapedeck recover: %v\n%s", err, out)
	}
	copied := readManifest(t, copyDir)

	// Restart: serve recovers the session before it listens.
	srv = startServe(t, bin, addr, data)
	m := readManifest(t, dir)
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Errorf("serve after SIGTERM: %v", err)
	}
	if !m.Recovered {
		t.Error("recovered manifest is not marked recovered")
	}
	a, _ := timeline.MarshalManifest(m)
	b, _ := timeline.MarshalManifest(copied)
	if string(a) != string(b) {
		t.Error("`tapedeck recover` on a copy gives another manifest than serve's recovery")
	}
	if got, want := len(m.Lanes), 2; got != want {
		t.Fatalf("lanes = %d, want %d", got, want)
	}
	for _, l := range m.Lanes {
		tr := l.Tracks[0]
		if len(tr.Segments) != 1 {
			t.Fatalf("%s: %d segments, want 1", l.ID, len(tr.Segments))
		}
		sg := tr.Segments[0]
		if sg.Closed {
			t.Errorf("%s: segment of a killed recorder marked closed", l.ID)
		}
		path := filepath.Join(dir, sg.Path)
		decodeStrict(t, path)
		pts, _ := probePackets(t, path)
		if got, want := int64(len(pts)), sg.Frames; got != want {
			t.Errorf("%s: file has %d packets, manifest says %d frames", l.ID, got, want)
		}
		last := time.Duration(pts[len(pts)-1] * float64(time.Second))
		if got, want := time.Duration(float64(sg.LastRTP-sg.FirstRTP)/float64(tr.Codec.ClockRate)*float64(time.Second)), last; got-want > time.Millisecond || want-got > time.Millisecond {
			t.Errorf("%s: manifest spans %v, file's last packet is at %v", l.ID, got, want)
		}
		// The file reaches to within about a second of the kill.
		end := time.Unix(0, sg.FirstArrivalUnixNS).Add(last)
		behind := killed.Sub(end)
		t.Logf("%s: %d frames on disk, the last %v before the kill (%d sender reports journaled)", l.ID, sg.Frames, behind.Round(time.Millisecond), len(tr.SenderReports))
		if behind > 1500*time.Millisecond {
			t.Errorf("%s: file ends %v before the kill, want at most 1.5s", l.ID, behind)
		}
		if len(tr.SenderReports) == 0 {
			t.Errorf("%s: no sender reports in the recovered manifest", l.ID)
		}
	}
}
