package interchange

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

func TestKeptRanges(t *testing.T) {
	fps := timeline.Rational{Num: 30, Den: 1}
	got, err := KeptRanges(editsPlan(), fps, 1350)
	if err != nil {
		t.Fatal(err)
	}
	// [2 s, 10 s), [12.5 s, 25 s), [27.5 s, 40 s): the interval boundary at
	// 6 s is no cut.
	if got, want := fmt.Sprint(got), "[{60 240} {375 375} {825 375}]"; got != want {
		t.Errorf("kept %s, want %s", got, want)
	}
	ms := time.Millisecond
	plan := func(spans ...time.Duration) *timeline.Plan {
		p := &timeline.Plan{}
		for i := 0; i+1 < len(spans); i += 2 {
			p.Intervals = append(p.Intervals, timeline.Interval{RecStart: spans[i], RecEnd: spans[i+1]})
		}
		return p
	}
	for _, c := range []struct {
		name   string
		plan   *timeline.Plan
		frames int64
		want   string
	}{
		{"a cut shorter than half a frame closes", plan(0, sec, sec+10*ms, 2*sec), 100, "[{0 60}]"},
		{"a kept range shorter than half a frame goes", plan(0, sec, 1500*ms, 1510*ms, 3*sec, 4*sec), 200, "[{0 30} {90 30}]"},
		{"ranges past the session are clipped", plan(0, 10*sec), 100, "[{0 100}]"},
		{"halfway bounds go to the earlier frame", plan(50*ms, 150*ms), 100, "[{1 3}]"}, // 1.5 → 1, 4.5 → 4
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := KeptRanges(c.plan, fps, c.frames)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(got); got != c.want {
				t.Errorf("kept %s, want %s", got, c.want)
			}
		})
	}
	for _, c := range []struct {
		name string
		plan *timeline.Plan
		want string
	}{
		{"nil", nil, "nil plan"},
		{"empty", plan(), "keeps no whole frame"},
		{"backwards", plan(2*sec, 3*sec, sec, 4*sec), "goes back in the recording"},
		{"inverted", plan(2*sec, sec), "ends"},
	} {
		if _, err := KeptRanges(c.plan, fps, 300); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func gainList(g map[string][]Gain) string {
	var b strings.Builder
	for _, id := range []string{"alice", "bob", "carol"} {
		for _, x := range g[id] {
			fmt.Fprintf(&b, "%s %d+%d %gdB mute=%v\n", id, x.Start, x.Frames, x.DB, x.Mute)
		}
	}
	return b.String()
}

func TestGainsFromEdits(t *testing.T) {
	fps := timeline.Rational{Num: 30, Den: 1}
	m := editsManifest()
	g, notes, err := GainsFromEdits(m, editsEdits(), fps, 1350)
	if err != nil {
		t.Fatal(err)
	}
	want := `bob 240+180 0dB mute=true
carol 0+1350 -6dB mute=false
`
	if got := gainList(g); got != want {
		t.Errorf("gains:\n%s\nwant:\n%s", got, want)
	}
	if len(notes) != 0 {
		t.Errorf("notes: %q", notes)
	}

	loud := -120.0
	e := &timeline.Edits{File: "e.yaml", Lanes: []timeline.LaneEdit{
		{Ref: "alice", GainDB: 20, Mute: timeline.Toggle{Ranges: []timeline.Range{{Start: 10 * sec, End: 12 * sec}, {Start: 11 * sec, End: 13 * sec}}}},
		{Ref: "bob", GainDB: loud},
		{Ref: "carol", Exclude: true},
		{Ref: "carol/video", Hide: timeline.Toggle{Always: true}},
	}}
	g, notes, err = GainsFromEdits(m, e, fps, 1350)
	if err != nil {
		t.Fatal(err)
	}
	want = `alice 0+300 12dB mute=false
alice 300+90 12dB mute=true
alice 390+960 12dB mute=false
bob 0+1350 0dB mute=true
carol 0+1350 0dB mute=true
`
	if got := gainList(g); got != want {
		t.Errorf("gains:\n%s\nwant:\n%s", got, want)
	}
	if got, want := strings.Join(notes, "\n"), "alice: gain +20 dB clamped to +12 dB, the most FCPXML and FCP7 XML hold\nbob: gain -120 dB written as a mute (the formats stop at -96 dB)"; got != want {
		t.Errorf("notes:\n%s\nwant:\n%s", got, want)
	}

	// A lane-level mute on a participant with two audio lanes is left out.
	m.Lanes = append(m.Lanes, timeline.Lane{ID: "alice/audio2", Participant: "alice", Kind: timeline.Audio})
	g, notes, err = GainsFromEdits(m, &timeline.Edits{File: "e.yaml", Lanes: []timeline.LaneEdit{{Ref: "alice/audio2", Mute: timeline.Toggle{Always: true}}}}, fps, 1350)
	if err != nil {
		t.Fatal(err)
	}
	if len(g) != 0 || len(notes) != 1 || !strings.Contains(notes[0], "mixes 2 lanes") {
		t.Errorf("gains %v notes %q, want none and a note", g, notes)
	}

	if _, _, err := GainsFromEdits(m, &timeline.Edits{File: "e.yaml", Lanes: []timeline.LaneEdit{{Ref: "dave", GainDB: 3}}}, fps, 1350); err == nil ||
		!strings.Contains(err.Error(), `unknown lane or participant "dave"`) {
		t.Errorf("an unknown participant: %v", err)
	}
	if g, _, err := GainsFromEdits(m, nil, fps, 1350); err != nil || len(g) != 0 {
		t.Errorf("no edits: %v %v", g, err)
	}
}

// TestCutFromPlanProject: the edits fixture's cut and gains make a project
// whose bob audio is split on both sides of the first cut.
func TestCutFromPlanProject(t *testing.T) {
	p := editsProject(t)
	l, err := newLayout(p)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range l.parts[1].audio {
		got = append(got, fmt.Sprintf("%d:%d+%d mute=%v", c.Out, c.Src, c.Frames, c.Mute))
	}
	want := "0:60+180 mute=false 180:240+60 mute=true 240:375+45 mute=true 285:420+330 mute=false 615:825+375 mute=false"
	if strings.Join(got, " ") != want {
		t.Errorf("bob's audio clips: %s\nwant: %s", strings.Join(got, " "), want)
	}
}
