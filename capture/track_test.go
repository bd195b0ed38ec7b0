package capture

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// TestBackwardsTimestampsAcrossRotation: a sender whose timestamps jump
// back just as its file rotates (here by size, at every frame) must not make
// two segments overlap (the manifest would not validate and the session
// would lose its manifest): the frames whose time runs backwards are
// dropped, and the session compacts.
func TestBackwardsTimestampsAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	jr, err := openJournal(filepath.Join(dir, JournalName))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	cfg := Config{SegmentDuration: time.Hour, SegmentSize: 1} // a file per frame
	rec := &Recorder{cfg: cfg, log: log}
	rec.count.freeBytes.Store(-1)
	start := time.Now()
	s := &session{rec: rec, room: "r", id: "s", dir: dir, start: start, jr: jr, log: log}
	if err := jr.append(&record{Type: recSession, Room: "r", Session: "s"}); err != nil {
		t.Fatal(err)
	}
	p := &publish{id: "p1", participant: "ann", sess: s, log: log}
	if err := jr.append(&record{Type: recPublish, Publish: "p1", Participant: "ann", Name: "ann"}); err != nil {
		t.Fatal(err)
	}
	tr := &trackRecorder{p: p, rec: rec, log: log, id: "t1", lane: "ann/audio", kind: timeline.Audio, cfg: &rec.cfg,
		codec: timeline.Codec{Name: "opus", ClockRate: 48000, Channels: 2}}
	if err := jr.append(&record{Type: recTrack, Track: "t1", Lane: "ann/audio", Participant: "ann", Publish: "p1",
		Kind: "audio", Codec: "opus", ClockRate: 48000, Channels: 2}); err != nil {
		t.Fatal(err)
	}
	opus := []byte{0xfc, 0xff, 0xfe} // a 20 ms Opus packet
	frame := func(rtp int64) *Frame {
		return &Frame{RTP: rtp, Keyframe: true, Data: opus, Arrival: start.Add(time.Duration(rtp) * time.Second / 48000)}
	}
	// The sender jumps 40 ms back after 60 ms, then goes on.
	rtps := []int64{0, 960, 1920, 2880, 960, 1920, 3840, 4800}
	const dropped = 2
	for _, ts := range rtps {
		if err := tr.write(frame(ts)); err != nil {
			t.Fatal(err)
		}
	}
	tr.closeSegment()
	if err := jr.append(&record{Type: recPublishEnd, Publish: "p1", Reason: "done"}); err != nil {
		t.Fatal(err)
	}
	if err := jr.append(&record{Type: recSessionEnd}); err != nil {
		t.Fatal(err)
	}
	if err := jr.close(); err != nil {
		t.Fatal(err)
	}
	m, err := Compact(dir)
	if err != nil {
		t.Fatalf("compact: %v", err)
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	segs := m.Lanes[0].Tracks[0].Segments
	if got, want := len(segs), len(rtps)-dropped; got != want {
		t.Fatalf("segments %d, want %d (one a frame)", got, want)
	}
	for i := 1; i < len(segs); i++ {
		if segs[i].FirstRTP < segs[i-1].LastRTP {
			t.Errorf("segment %d starts at %d, before segment %d ends at %d", i, segs[i].FirstRTP, i-1, segs[i-1].LastRTP)
		}
	}
	if got, want := tr.backwards, int64(dropped); got != want {
		t.Errorf("frames dropped for running backwards: %d, want %d", got, want)
	}
}
