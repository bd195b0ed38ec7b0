package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/capture/capturetest"
)

// TestPublishReconnect: `tapedeck publish URL1 URL2 --reconnect` whose first
// URL answers nothing publishes on the second, and says so attempt by
// attempt; several URLs without --reconnect are a usage error.
func TestPublishReconnect(t *testing.T) {
	ended := make(chan capture.SessionEnded, 1)
	srv := capturetest.Start(t, capture.Config{Grace: 300 * time.Millisecond,
		OnSessionEnd: func(_ context.Context, s capture.SessionEnded) { ended <- s }}, slog.New(slog.DiscardHandler))
	dead := "http://127.0.0.1:1/whip/fo" // nothing listens on port 1
	live := srv.Base + "/whip/fo"
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	common := []string{"--participant", "rita", "--duration", "2s", "--width", "160", "--height", "120", "--fps", "10",
		"--media-cache", t.TempDir(), "--reconnect-for", "20s"}

	_, err := runCLI(ctx, append([]string{"publish", dead, live}, common...)...)
	if got, want := exitCode(err), exitUsage; got != want {
		t.Errorf("two URLs without --reconnect: exit code %d (%v), want %d", got, err, want)
	}

	out, err := runCLI(ctx, append([]string{"publish", dead, live, "--reconnect"}, common...)...)
	if err != nil {
		t.Fatalf("publish --reconnect: %v\n%s", err, out)
	}
	if !strings.Contains(out, "attempt 1: "+dead) || !strings.Contains(out, "(not connected: ") ||
		!strings.Contains(out, "attempt 2: "+live) || !strings.Contains(out, "(connected)") || !strings.Contains(out, "published rita for ") {
		t.Errorf("output does not tell the attempts:\n%s", out)
	}
	select {
	case s := <-ended:
		if got, want := len(s.Manifest.Lanes), 2; got != want {
			t.Errorf("%d lanes recorded, want %d (rita's video and audio)", got, want)
		}
		for _, l := range s.Manifest.Lanes {
			if l.Participant != "rita" {
				t.Errorf("lane %s of participant %q", l.ID, l.Participant)
			}
		}
	case <-ctx.Done():
		t.Fatal("no session recorded")
	}
}
