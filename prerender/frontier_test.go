package prerender_test

import (
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/prerender"
	"github.com/tapedeck/tapedeck/timeline"
)

// TestFrontierBeforeFirstFile: in a call's first moments a track is known
// before its first file. Its media is not final (it has none placed yet), so
// the frontier holds back by the journal's lag: no window is drawn of a call
// whose tracks have not written anything (the prerenderer drew one of the
// first half second, and never used it). Once every track's last file is
// closed, the media is final up to the journal's end.
func TestFrontierBeforeFirstFile(t *testing.T) {
	const t0 = int64(1_800_000_000_000_000_000)
	m := &timeline.Manifest{Version: timeline.ManifestVersion, Room: "r", Session: "s", StartUnixNS: t0, EndUnixNS: t0 + int64(500*time.Millisecond),
		Participants: []timeline.Participant{{ID: "alice", Name: "alice", Publishes: []timeline.Publish{{ID: "p1", StartUnixNS: t0}}}},
		Lanes: []timeline.Lane{{ID: "alice/audio", Participant: "alice", Kind: timeline.Audio, Tracks: []timeline.Track{
			{ID: "t1", Publish: "p1", SSRC: 1, Codec: timeline.Codec{Name: "opus", ClockRate: 48000, Channels: 2}},
		}}},
	}
	s, err := timeline.NewSync(m)
	if err != nil {
		t.Fatal(err)
	}
	at, open := prerender.Frontier(m, s, 5*time.Second)
	if !open || at > 0 {
		t.Errorf("Frontier of a track without a file = %v, open %v; want at most 0, open", at, open)
	}
	// The track's one file, closed: the publisher left.
	tr := &m.Lanes[0].Tracks[0]
	tr.Segments = []timeline.Segment{{Path: "tracks/alice/audio-t1-000.webm", FirstRTP: 1000, LastRTP: 1000 + 48000*2/10,
		FirstArrivalUnixNS: t0 + int64(100*time.Millisecond), LastArrivalUnixNS: t0 + int64(300*time.Millisecond), Packets: 11, Frames: 11, Closed: true}}
	tr.Arrivals = []timeline.ArrivalSample{{RTP: 1000, ArrivalUnixNS: t0 + int64(100*time.Millisecond)}}
	if s, err = timeline.NewSync(m); err != nil {
		t.Fatal(err)
	}
	if at, open := prerender.Frontier(m, s, 5*time.Second); open || at != 500*time.Millisecond {
		t.Errorf("Frontier with every file closed = %v, open %v; want 500ms, not open", at, open)
	}
}
