package capture_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
)

// freeUDPPort returns a loopback UDP port that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// TestCloseWithExpiredContext closes a recorder in the middle of a call
// with a context that has already ended, while the session's hook is stuck
// (it ignores its context). Close must still end the publish and write the
// manifest, release the media port and the disk watcher, and name the
// session it abandoned; once the hook returns, nothing is left running.
func TestCloseWithExpiredContext(t *testing.T) {
	port := freeUDPPort(t)
	cfg := stressPublisher("", "dana", 20*time.Second, 1)
	prepare(t, cfg)
	stuck, release := make(chan struct{}), make(chan struct{})
	g := newStressRig(t, capture.Config{
		Grace: time.Minute, JitterLatency: 100 * time.Millisecond, ICE: capture.ICEConfig{UDPPort: port},
		OnSessionEnd: func(context.Context, capture.SessionEnded) {
			close(stuck)
			<-release // ignores its context: Close must give up on it
		},
	})
	rec := g.rec
	cfg.Endpoint = g.srv.URL + "/whip/stuck"

	ctx, hangUp := context.WithCancel(t.Context())
	done := make(chan outcome, 1)
	go func() { done <- publishOnce(ctx, t, cfg) }()
	for rec.Stats().FramesWritten < 10 {
		time.Sleep(20 * time.Millisecond)
	}
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	err := rec.Close(expired)
	if err == nil || !strings.Contains(err.Error(), "abandoned sessions stuck/") {
		t.Errorf("close with an expired context and a stuck hook: %v, want an error naming the abandoned session", err)
	}
	t.Logf("close: %v", err)
	select {
	case <-stuck:
	default:
		t.Error("the hook was not called: the session was not finalized")
	}
	// The media port is free again.
	c, lerr := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if lerr != nil {
		t.Errorf("media port %d still held after close: %v", port, lerr)
	} else {
		c.Close()
	}
	hangUp()
	<-done
	ms := sessionsOnDisk(t, g.dir)
	if got, want := len(ms), 1; got != want {
		t.Fatalf("sessions %d, want %d", got, want)
	}
	for _, m := range ms {
		if got, want := len(m.Lanes), 2; got != want {
			t.Errorf("lanes %d, want %d", got, want)
		}
		for _, p := range m.Participants {
			for _, pub := range p.Publishes {
				if got, want := pub.EndReason, "recorder closing"; got != want {
					t.Errorf("publish ended with %q, want %q", got, want)
				}
			}
		}
	}
	close(release)
	// A second Close waits for what the first abandoned.
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := rec.Close(wctx); err != nil {
		t.Errorf("second close: %v", err)
	}
	g.closeAndCheckLeaks(t)
}

// TestCloseIdleWithExpiredContext: an idle recorder closed with an expired
// context closes cleanly, and a publish afterwards is refused with 503.
func TestCloseIdleWithExpiredContext(t *testing.T) {
	cfg := stressPublisher("", "eve", time.Second, 1)
	prepare(t, cfg)
	g := newStressRig(t, capture.Config{})
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.rec.Close(expired); err != nil {
		t.Errorf("close: %v", err)
	}
	cfg.Endpoint = g.srv.URL + "/whip/late"
	if got, want := publishOnce(t.Context(), t, cfg).status, 503; got != want {
		t.Errorf("publish after close: %d, want %d", got, want)
	}
	g.closeAndCheckLeaks(t)
}
