package capture_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/examples/publisher"
)

// TestKeyframesOnSessionTime publishes video whose only keyframe is its
// first frame (a browser makes one every 3000 frames unless asked; this
// publisher never answers). The recorder must ask for a keyframe once per
// multiple of KeyframeInterval of session time, KeyframeLead before it, and
// not in between; with the interval negative, only at the start.
func TestKeyframesOnSessionTime(t *testing.T) {
	const every = 1500 * time.Millisecond
	for _, tc := range []struct {
		name     string
		interval time.Duration
	}{{"every 1.5 s", every}, {"off", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := startRecorder(t, capture.Config{KeyframeInterval: tc.interval, Grace: 500 * time.Millisecond})
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cfg := publisher.Config{Endpoint: rec.base + "/whip/kf", Participant: "alice", Video: publisher.VP8,
				Width: 320, Height: 180, FPS: 30, Duration: 4500 * time.Millisecond, KeyframeEvery: time.Minute}
			if _, err := publisher.PrepareMedia(ctx, cfg, testLogger(t)); err != nil {
				t.Fatal(err)
			}
			res, err := publisher.Run(ctx, cfg, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			e := rec.waitSession(t, 30*time.Second)
			start := time.Unix(0, e.Manifest.StartUnixNS)
			plis := res.Tracks[0].PLIAt
			var at []string
			for _, p := range plis {
				at = append(at, fmt.Sprintf("%.3f", p.Sub(start).Seconds()))
			}
			t.Logf("PLIs at %v s of session time; media from %.3f to %.3f s", at, res.Start.Sub(start).Seconds(), res.End.Sub(start).Seconds())
			if len(plis) == 0 {
				t.Fatal("no PLI: the recorder asks for a keyframe at the start of every file")
			}
			if tc.interval < 0 {
				if got, want := len(plis), 1; got != want {
					t.Errorf("%d PLIs with the interval off, want %d (the start's)", got, want)
				}
				return
			}
			// The first is the start's; the others KeyframeLead before a
			// multiple of the interval (the next frame after that instant
			// asks, frames come every 33 ms), one per multiple.
			asked := map[int64]bool{}
			for _, p := range plis[1:] {
				s := p.Sub(start)
				boundary := (s + capture.KeyframeLead) / every
				phase := s - (boundary*every - capture.KeyframeLead)
				if phase < -5*time.Millisecond || phase > 150*time.Millisecond {
					t.Errorf("PLI at %.3f s: %v after the instant it is due (%v before multiple %d), want within a frame or two", s.Seconds(), phase, capture.KeyframeLead, boundary)
				}
				if asked[int64(boundary)] {
					t.Errorf("PLI at %.3f s: multiple %d was asked for already (the sender ignoring it must not be asked again)", s.Seconds(), boundary)
				}
				asked[int64(boundary)] = true
			}
			// Every due instant while media flowed was asked.
			from, to := res.Start.Sub(start)+capture.KeyframeLead, res.End.Sub(start)+capture.KeyframeLead-100*time.Millisecond
			for b := from/every + 1; b*every <= to; b++ {
				if !asked[int64(b)] {
					t.Errorf("no PLI for multiple %d (due at %.3f s), media from %.3f to %.3f s", b, (b*every - capture.KeyframeLead).Seconds(), res.Start.Sub(start).Seconds(), res.End.Sub(start).Seconds())
				}
			}
			if len(asked) < 3 {
				t.Errorf("%d periodic PLIs in a 4.5 s publish, want at least 3", len(asked))
			}
		})
	}
}
