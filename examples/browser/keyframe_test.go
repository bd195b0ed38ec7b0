package browser_test

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/internal/marks"
	"github.com/tapedeck/tapedeck/timeline"
)

// TestChromiumKeyframesOnSessionTime: Chromium makes a VP8 keyframe every
// 3000 frames unless asked (150 s at its fake camera's 20 fps). The recorder
// asks KeyframeLead before every multiple of KeyframeInterval of session
// time, so the recording must hold a keyframe shortly before each of those
// instants, placed there by the sync model, and before the point where a
// window of the render starting there seeks (half a second and a frame
// earlier): the window's decoders then start at it.
func TestChromiumKeyframesOnSessionTime(t *testing.T) {
	bin := chromiumPath(t)
	const every = 2 * time.Second
	srv := startServer(t, func(c *capture.Config) { c.KeyframeInterval = every })
	url := srv.base + "/publish/?room=keys&participant=cam&mode=camera&codec=vp8&autostart=1&duration=10"
	if err := runBrowser(t.Context(), t, bin, url, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	e := srv.ended(t)
	video, ok := e.Manifest.Lane("cam/video")
	if !ok {
		t.Fatal("no video lane")
	}
	sync, err := timeline.NewSync(e.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	// Every keyframe and the media's span, in session time (s).
	var keys []float64
	first, last := math.Inf(1), math.Inf(-1)
	var keyBytes, deltaBytes, nKey, nDelta int64
	for _, tr := range video.Tracks {
		for _, seg := range tr.Segments {
			packets, err := marks.PacketList(filepath.Join(e.Dir, seg.Path), "v")
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range packets {
				at, err := sync.RecorderTime(tr.ID, seg.FirstRTP+int64(math.Round(p.PTS*float64(tr.Codec.ClockRate))))
				if err != nil {
					t.Fatal(err)
				}
				s := float64(at-sync.SessionStart()) / 1e9
				first, last = min(first, s), max(last, s)
				if p.Key {
					keys = append(keys, s)
					keyBytes, nKey = keyBytes+p.Size, nKey+1
				} else {
					deltaBytes, nDelta = deltaBytes+p.Size, nDelta+1
				}
			}
		}
	}
	var ks []string
	for _, k := range keys {
		ks = append(ks, fmt.Sprintf("%.3f", k))
	}
	t.Logf("video from %.3f to %.3f s of session time; keyframes at %s s", first, last, strings.Join(ks, ", "))
	if nKey > 0 && nDelta > 0 && last > first {
		// What a keyframe every interval adds to the stream, at the
		// sender's bitrate of the moment.
		mk, md := float64(keyBytes)/float64(nKey), float64(deltaBytes)/float64(nDelta)
		perInterval := float64(nKey+nDelta) / (last - first) * every.Seconds()
		t.Logf("keyframes %d, %.0f bytes on average; other frames %d, %.0f bytes; a keyframe every %v (%.0f frames) adds %.1f %% to the stream",
			nKey, mk, nDelta, md, every, perInterval, 100*(mk-md)/(md*perInterval))
	}
	// Each multiple of the interval inside the media, after the first
	// keyframe was due, needs a keyframe between the instant it was asked
	// (less 0.1 s) and the window's seek point, 0.55 s before it. (The last
	// one is left out if the media ended less than 0.2 s after it was
	// asked.)
	lead := capture.KeyframeLead.Seconds()
	n := 0
	for b := math.Floor(first/every.Seconds()) + 1; b*every.Seconds()-lead+0.2 <= last; b++ {
		at := b * every.Seconds()
		if at-lead <= first {
			continue
		}
		n++
		found := false
		for _, k := range keys {
			if k >= at-lead-0.1 && k <= at-0.55 {
				found = true
			}
		}
		if !found {
			t.Errorf("no keyframe from %.2f to %.2f s of session time (asked at %.2f s for the window at %.0f s); keyframes at %s",
				at-lead-0.1, at-0.55, at-lead, at, strings.Join(ks, ", "))
		}
	}
	if n < 3 {
		t.Errorf("the recording spans %.1f to %.1f s: %d instants to check, want at least 3", first, last, n)
	}
}
