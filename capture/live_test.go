package capture_test

import (
	"context"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/examples/publisher"
)

// TestSessionsLive: while a participant publishes, Sessions reports each
// track's running figures (what the console's Live page shows), and they
// grow.
func TestSessionsLive(t *testing.T) {
	t.Parallel()
	r := startRecorder(t, capture.Config{Grace: 300 * time.Millisecond})
	cfg := publisher.Config{Endpoint: r.base + "/whip/live", Participant: "lia", Duration: 4 * time.Second,
		Video: publisher.VP8, Audio: true, Width: 320, Height: 240, Bitrate: 300_000}
	if _, err := publisher.PrepareMedia(t.Context(), cfg, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := publisher.Run(context.Background(), cfg, testLogger(t)); done <- err }()
	tracks := func() map[string]capture.TrackInfo {
		out := map[string]capture.TrackInfo{}
		for _, s := range r.rec.Sessions() {
			for _, p := range s.Publishes {
				for _, tr := range p.Tracks {
					out[tr.Kind] = tr
				}
			}
		}
		return out
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(tracks()) < 2 || tracks()["video"].Width == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("tracks %+v after 10 s", tracks())
		}
		time.Sleep(50 * time.Millisecond)
	}
	first := tracks()
	time.Sleep(time.Second)
	second := tracks()
	for _, kind := range []string{"audio", "video"} {
		a, b := first[kind], second[kind]
		if a.Started.IsZero() || b.LastPacket.Before(a.LastPacket) || !b.LastPacket.After(b.Started) {
			t.Errorf("%s: started %v, last packet %v then %v", kind, a.Started, a.LastPacket, b.LastPacket)
		}
		if b.Packets <= a.Packets || b.Bytes <= a.Bytes {
			t.Errorf("%s: packets %d → %d, bytes %d → %d: want them growing", kind, a.Packets, b.Packets, a.Bytes, b.Bytes)
		}
		t.Logf("%s: %d packets, %d bytes, %d lost, %dx%d", kind, b.Packets, b.Bytes, b.Lost, b.Width, b.Height)
	}
	if got, want := second["video"].Width, 320; got != want {
		t.Errorf("video width %d, want %d", got, want)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
