package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/capture/capturetest"
	"github.com/tapedeck/tapedeck/examples/publisher"
	"github.com/tapedeck/tapedeck/internal/marks"
)

// TestRenderFromAndToStorage records a short call, uploads it with
// `tapedeck upload`, then renders it with `tapedeck render` from a storage
// URL into a storage URL: the output lands in the store and decodes.
func TestRenderFromAndToStorage(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	ended := make(chan capture.SessionEnded, 1)
	data := t.TempDir()
	srv := capturetest.Start(t, capture.Config{DataDir: data, Grace: time.Second, OnSessionEnd: func(_ context.Context, s capture.SessionEnded) { ended <- s }},
		slog.New(slog.DiscardHandler))
	cfg := publisher.Config{Endpoint: srv.Base + "/whip/stored", Participant: "lee", Duration: 3 * time.Second, Video: publisher.VP8,
		Audio: true, Width: 320, Height: 240, Bitrate: 300_000}
	if _, err := publisher.PrepareMedia(ctx, cfg, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := publisher.Run(ctx, cfg, nil); err != nil {
		t.Fatal(err)
	}
	var s capture.SessionEnded
	select {
	case s = <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("no session")
	}
	store := "file://" + t.TempDir()
	if out, err := runCLI(ctx, "upload", s.Dir, "--to", store); err != nil {
		t.Fatalf("upload: %v\n%s", err, out)
	}
	outStore := t.TempDir()
	out, err := runCLI(ctx, "render", store+"/stored/"+s.Session, "--profile", "mp4-360p", "--progress", "off",
		"-o", "file://"+outStore+"/alt")
	if err != nil {
		t.Fatalf("render from storage: %v\n%s", err, out)
	}
	path := filepath.Join(outStore, "alt", "mp4-360p.mp4")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("render output not in the output store: %v\n%s", err, out)
	}
	if !strings.Contains(out, "file://"+outStore) {
		t.Errorf("render does not say where the output went: %s", out)
	}
	if err := marks.DecodeStrict(path); err != nil {
		t.Error(err)
	}
	// ROOM/SESSION with --store works too; a fetched session needs --out.
	if _, err := runCLI(ctx, "render", "stored/"+s.Session, "--store", store, "--progress", "off"); err == nil ||
		!strings.Contains(err.Error(), "needs --out") {
		t.Errorf("render of a stored session without --out: %v, want a usage error", err)
	}
	if _, err := runCLI(ctx, "render", "nosuch/thing", "--store", store, "-o", t.TempDir()); err == nil {
		t.Error("render of a session that is not stored succeeded")
	}
}
