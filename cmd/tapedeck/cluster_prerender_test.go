package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/examples/publisher"
)

// TestClusterProgressiveWindows: in a cluster of two serve nodes, the node
// that records a call renders it in windows of 2 s while it goes on, and
// stores those windows with the session. The render after the call runs on
// the other node: if the recording node took the job, it is killed
// (SIGKILL) once the render has started, and the job goes to the other
// node. That node takes every window from the store, reuses them instead
// of drawing them, and stores the composite; the stored windows are deleted
// once the job is done.
func TestClusterProgressiveWindows(t *testing.T) {
	bin := buildTapedeckRace(t)
	renders := filepath.Join(t.TempDir(), "renders.yaml")
	if err := os.WriteFile(renders, []byte("default:\n  - name: default\n    profile: mp4-360p\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nodes, _, store := startCluster(t, bin, 2, "--grace", "1s", "--renders", renders, "--progressive-window", "2s",
		"--progressive-cpu", "0", "--log-level", "info")
	const room = "windows"
	cfg := publisher.Config{Endpoint: nodes[0].base + "/whip/" + room, Participant: "wren", Duration: 16 * time.Second,
		Video: publisher.VP8, Audio: true, Width: 320, Height: 240, Bitrate: 300_000}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	plog := quietLog(t)
	if _, err := publisher.PrepareMedia(ctx, cfg, plog); err != nil {
		t.Fatal(err)
	}
	if _, err := publisher.Run(ctx, cfg, plog); err != nil {
		t.Fatal(err)
	}
	var rec, other *clusterNode
	for i, n := range nodes {
		if len(n.sessionDirs(room)) > 0 {
			rec, other = n, nodes[1-i]
		}
	}
	if rec == nil {
		t.Fatal("no node recorded the call")
	}
	stored := rec.run.log.wait(time.Minute, "windows rendered during the call stored")
	windows := logInt(t, stored, "windows")
	t.Logf("%s recorded the call: %s", rec.name, stored)
	if windows < 6 {
		t.Fatalf("%d windows (video, audio and encoded audio) stored for a 16-s call in windows of 2 s, want at least 6", windows)
	}

	// The render goes to the other node.
	var renderer *clusterNode
	deadline := time.Now().Add(time.Minute)
	for renderer == nil {
		for _, n := range nodes {
			if n.run.log.find("render started", "room="+room) != "" {
				renderer = n
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no node started the render within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if renderer == rec {
		t.Logf("%s took the render; killed", rec.name)
		rec.kill()
	}
	other.run.log.wait(2*time.Minute, "post-call job done", "stage=render", "room="+room)
	taken := other.run.log.find("windows rendered during the call taken from the store", "room="+room)
	if taken == "" {
		t.Fatalf("%s rendered without taking the windows from the store", other.name)
	}
	if got := logInt(t, taken, "windows"); got != windows {
		t.Errorf("%s took %d windows from the store, want all %d stored", other.name, got, windows)
	}
	var reused int
	other.run.log.mu.Lock()
	for _, l := range other.run.log.lines {
		if strings.Contains(l, "render: window reused") && strings.Contains(l, `step="video`) {
			reused++
		}
	}
	other.run.log.mu.Unlock()
	t.Logf("%s: %s; %d video windows reused", other.name, taken, reused)
	// Which windows match the post-call render depends on how far the sync
	// model moved after them (render's reuse keys), which a copy of the
	// session elsewhere does not change (render's TestReuseWindows).
	if reused == 0 {
		t.Errorf("%s reused none of the video windows it took", other.name)
	}
	composites, _ := filepath.Glob(filepath.Join(store, room, "*", "renders", "default", "*.mp4"))
	if len(composites) != 1 {
		t.Fatalf("composites stored: %v, want one", composites)
	}
	left, _ := filepath.Glob(filepath.Join(store, room, "*", "windows", "*"))
	if len(left) != 0 {
		t.Errorf("windows left in the store after the job: %v", left)
	}
}

// logInt is the integer value of key in a logged line.
func logInt(t *testing.T, line, key string) int {
	t.Helper()
	n, err := strconv.Atoi(logValue(line, key))
	if err != nil {
		t.Fatalf("%s in %q: %v", key, line, err)
	}
	return n
}
