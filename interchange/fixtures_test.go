package interchange

import (
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// The three projects the golden and structure tests write: a plain
// three-participant session; one with a late joiner, a rejoin and a loss
// hole (at 29.97 fps, with an audio-only participant and one whose audio
// comes from their MP4); one with edits (trim, two cuts, a mute across a
// cut, a gain, a layout change) and a reference composite.

const sec = time.Second

func videoStem(path string, frames int64, w, h, channels int) *Stem {
	return &Stem{Path: path, Frames: frames, Width: w, Height: h, Audio: channels > 0, Channels: channels}
}

func audioStem(t testing.TB, path string, frames int64, fps timeline.Rational, channels int) *Stem {
	t.Helper()
	r, err := newRate(fps)
	if err != nil {
		t.Fatal(err)
	}
	return &Stem{Path: path, Frames: frames, Samples: int64(r.samples(frames, 48000) + 0.5), Channels: channels}
}

// plainProject: alice, bob and carol for 20 s at 30 fps, each with an MP4
// (with their audio) and a WAV; no edits, no markers.
func plainProject(t testing.TB) *Project {
	fps := timeline.Rational{Num: 30, Den: 1}
	const n = 600
	p := &Project{Name: "standup-20261123T163700Z", FPS: fps, Width: 1280, Height: 720, SampleRate: 48000, Frames: n}
	for _, who := range []struct{ id, name string }{{"alice", "Alice"}, {"bob", "Bob"}, {"carol", "Carol"}} {
		p.Tracks = append(p.Tracks, Track{Participant: who.id, Name: who.name,
			Video: videoStem(who.id+".mp4", n, 1280, 720, 1), Audio: audioStem(t, who.id+".wav", n, fps, 1)})
	}
	return p
}

// rejoinSummary is what timeline.Summarize says of the rejoin session: bob
// joins late, carol leaves and comes back, alice loses audio and video for
// a few seconds (and her audio for half a second later: too short to mark).
func rejoinSummary() *timeline.Summary {
	span := func(a, b float64) timeline.SpanS { return timeline.SpanS{StartS: a, EndS: b} }
	gap := func(a, b float64, why string) timeline.GapSummary {
		return timeline.GapSummary{StartS: a, EndS: b, Reason: why}
	}
	return &timeline.Summary{Room: "standup", Session: "rejoin", DurationS: 60,
		Participants: []timeline.ParticipantSummary{
			{ID: "alice", Name: "Alice", Present: []timeline.SpanS{span(0, 60)}},
			{ID: "bob", Name: "Bob", Present: []timeline.SpanS{span(12.5, 60)}},
			{ID: "carol", Name: "Carol", Present: []timeline.SpanS{span(0.3, 20), span(35, 59.5)}},
		},
		Lanes: []timeline.LaneSummary{
			{ID: "alice/audio", Participant: "alice", Kind: timeline.Audio,
				Gaps: []timeline.GapSummary{gap(40.2, 42, timeline.GapPause), gap(50, 50.5, timeline.GapPause)}},
			{ID: "alice/video", Participant: "alice", Kind: timeline.Video, Gaps: []timeline.GapSummary{gap(40, 43.5, timeline.GapPause)}},
			{ID: "carol/audio", Participant: "carol", Kind: timeline.Audio, Gaps: []timeline.GapSummary{gap(20, 35, timeline.GapRejoin)}},
		},
	}
}

// rejoinProject: 60 s at 29.97 fps; alice has an MP4 and a WAV, bob only
// an MP4 (his audio in it), carol only a WAV (stereo).
func rejoinProject(t testing.TB) *Project {
	fps := timeline.Rational{Num: 30000, Den: 1001}
	n := FrameAt(60*sec, fps)
	p := &Project{Name: "standup-rejoin", FPS: fps, Width: 1280, Height: 720, SampleRate: 48000, Frames: n,
		Tracks: []Track{
			{Participant: "alice", Name: "Alice", Video: videoStem("stems/alice.mp4", n, 1280, 720, 1), Audio: audioStem(t, "stems/alice.wav", n, fps, 1)},
			{Participant: "bob", Name: "Bob", Video: videoStem("stems/bob.mp4", n, 640, 480, 1)},
			{Participant: "carol", Name: "Carol", Audio: audioStem(t, "stems/carol.wav", n, fps, 2)},
		},
	}
	p.Markers = MarkersFromPlan(rejoinSummary(), nil, fps, n)
	return p
}

// editsManifest is the recording the edits fixture's edits resolve against.
func editsManifest() *timeline.Manifest {
	m := &timeline.Manifest{Version: timeline.ManifestVersion, Room: "interview", Session: "edits"}
	for _, id := range []string{"alice", "bob", "carol"} {
		m.Participants = append(m.Participants, timeline.Participant{ID: id, Name: id})
		m.Lanes = append(m.Lanes,
			timeline.Lane{ID: id + "/audio", Participant: id, Kind: timeline.Audio},
			timeline.Lane{ID: id + "/video", Participant: id, Kind: timeline.Video})
	}
	return m
}

// editsPlan is the plan those edits give (intervals only): trim to
// [2 s, 40 s), cuts [10 s, 12.5 s) and [25 s, 27.5 s), the layout
// switching to speaker at 20 s; an interval boundary at 6 s (a speaker
// change) that is no cut.
func editsPlan() *timeline.Plan {
	iv := func(a, b time.Duration, layout timeline.LayoutType) timeline.Interval {
		return timeline.Interval{RecStart: a, RecEnd: b, Layout: layout, Tiles: []timeline.Tile{
			{Participant: "alice", Name: "Alice"}, {Participant: "bob", Name: "Bob (guest)"}, {Participant: "carol", Name: "Carol"}}}
	}
	ivs := []timeline.Interval{
		iv(2*sec, 6*sec, timeline.LayoutGrid), iv(6*sec, 10*sec, timeline.LayoutGrid),
		iv(12500*time.Millisecond, 20*sec, timeline.LayoutGrid), iv(20*sec, 25*sec, timeline.LayoutSpeaker),
		iv(27500*time.Millisecond, 40*sec, timeline.LayoutSpeaker),
	}
	var out time.Duration
	for i := range ivs {
		ivs[i].Start = out
		out += ivs[i].RecEnd - ivs[i].RecStart
		ivs[i].End = out
	}
	return &timeline.Plan{Width: 1280, Height: 720, FPS: timeline.Rational{Num: 30, Den: 1}, Duration: out, RecordingDuration: 45 * sec, Intervals: ivs}
}

// editsEdits mutes bob from 8 s to 14 s (across the first cut) and turns
// carol's audio lane down 6 dB.
func editsEdits() *timeline.Edits {
	return &timeline.Edits{File: "edits.yaml", Trim: &timeline.Range{Start: 2 * sec, End: 40 * sec},
		Cuts: []timeline.Range{{Start: 10 * sec, End: 12500 * time.Millisecond}, {Start: 25 * sec, End: 27500 * time.Millisecond}},
		Lanes: []timeline.LaneEdit{
			{Ref: "bob", Mute: timeline.Toggle{Ranges: []timeline.Range{{Start: 8 * sec, End: 14 * sec}}}},
			{Ref: "carol/audio", GainDB: -6},
		},
	}
}

// editsSummary: bob joins at 5 s; carol's video drops from 25.5 s to 28 s,
// mostly inside the second cut.
func editsSummary() *timeline.Summary {
	return &timeline.Summary{DurationS: 45, Participants: []timeline.ParticipantSummary{
		{ID: "alice", Name: "alice", Present: []timeline.SpanS{{StartS: 0, EndS: 45}}},
		{ID: "bob", Name: "bob", Present: []timeline.SpanS{{StartS: 5, EndS: 45}}},
		{ID: "carol", Name: "carol", Present: []timeline.SpanS{{StartS: 0.1, EndS: 45}}},
	}, Lanes: []timeline.LaneSummary{
		{ID: "carol/video", Participant: "carol", Kind: timeline.Video, Gaps: []timeline.GapSummary{{StartS: 25.5, EndS: 28, Reason: timeline.GapPause}}},
	}}
}

// editsProject: 45 s at 30 fps with the edits above and the composite
// rendered from them as the reference.
func editsProject(t testing.TB) *Project {
	fps := timeline.Rational{Num: 30, Den: 1}
	n := FrameAt(45*sec, fps)
	p := &Project{Name: "interview-edits", FPS: fps, Width: 1280, Height: 720, SampleRate: 48000, Frames: n}
	for _, who := range []struct{ id, name string }{{"alice", "Alice"}, {"bob", "Bob (guest)"}, {"carol", "Carol"}} {
		p.Tracks = append(p.Tracks, Track{Participant: who.id, Name: who.name,
			Video: videoStem(who.id+".mp4", n, 1280, 720, 1), Audio: audioStem(t, who.id+".wav", n, fps, 1)})
	}
	plan := editsPlan()
	cut, err := CutFromPlan(editsManifest(), editsEdits(), plan, fps, n)
	if err != nil {
		t.Fatal(err)
	}
	p.Edit = cut.Kept
	for i := range p.Tracks {
		p.Tracks[i].Gains = cut.Gains[p.Tracks[i].Participant]
	}
	p.Markers = MarkersFromPlan(editsSummary(), plan, fps, n)
	p.Reference = videoStem("composite.mp4", p.OutputFrames(), 1280, 720, 2)
	return p
}

// fixtures are the projects of the golden and structure tests, by name.
func fixtures(t testing.TB) []struct {
	name string
	p    *Project
} {
	return []struct {
		name string
		p    *Project
	}{
		{"plain", plainProject(t)},
		{"rejoin", rejoinProject(t)},
		{"edits", editsProject(t)},
	}
}
