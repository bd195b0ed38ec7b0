package timeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// at returns the interval containing recording time sec.
func at(t testing.TB, p *Plan, sec float64) *Interval {
	t.Helper()
	d := time.Duration(ns(sec))
	for i := range p.Intervals {
		if iv := &p.Intervals[i]; iv.RecStart <= d && d < iv.RecEnd {
			return iv
		}
	}
	t.Fatalf("no interval at recording time %v", sec)
	return nil
}

// tileSummary is "lane@rect[placeholder]" for each tile.
func tileSummary(iv *Interval) []string {
	var out []string
	for _, tl := range iv.Tiles {
		s := tl.Participant
		if tl.Lane != "" {
			s = tl.Lane
		}
		s += "@" + tl.Rect.String()
		if tl.Placeholder != "" {
			s += "[" + string(tl.Placeholder) + "]"
		}
		out = append(out, s)
	}
	return out
}

func audioLanes(iv *Interval) []string {
	var out []string
	for _, a := range iv.Audio {
		out = append(out, a.Lane)
	}
	return out
}

func parseEdits(t testing.TB, src string) *Edits {
	t.Helper()
	e, err := ParseEdits("test.yaml", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestPlanGridReflow(t *testing.T) {
	// Joining order zoe, bob, amy: not the IDs' order.
	m := mkManifest(
		tp{id: "amy", pubs: [][2]float64{{4, 10}}},
		tp{id: "zoe", pubs: [][2]float64{{0, 10}}},
		tp{id: "bob", pubs: [][2]float64{{2, 8}}},
	)
	p := mustPlan(t, m, nil, PlanOptions{})
	if got, want := p.Duration, 10*time.Second; got != want {
		t.Errorf("duration %v, want %v", got, want)
	}
	for _, c := range []struct {
		sec  float64
		want []string
	}{
		{1, []string{"zoe/video@1250x704+14+8"}},
		{3, []string{"zoe/video@628x352+8+184", "bob/video@628x352+644+184"}},
		{5, []string{"zoe/video@618x348+18+8", "bob/video@618x348+644+8", "amy/video@618x348+330+364"}},
		{9, []string{"zoe/video@628x352+8+184", "amy/video@628x352+644+184"}},
	} {
		if got := tileSummary(at(t, p, c.sec)); !slices.Equal(got, c.want) {
			t.Errorf("at %vs: tiles %q, want %q", c.sec, got, c.want)
		}
	}
	// The grid changes exactly when someone joins or leaves.
	var changes []float64
	for i := 1; i < len(p.Intervals); i++ {
		if !slices.Equal(tileSummary(&p.Intervals[i]), tileSummary(&p.Intervals[i-1])) {
			changes = append(changes, math.Round(p.Intervals[i].RecStart.Seconds()*1000)/1000)
		}
	}
	if want := []float64{2, 4, 8}; !slices.Equal(changes, want) {
		t.Errorf("layout changes at %v s, want %v", changes, want)
	}
	// Same join time: ordered by ID.
	m = mkManifest(tp{id: "zed", pubs: [][2]float64{{0, 3}}}, tp{id: "amy", pubs: [][2]float64{{0, 3}}})
	p = mustPlan(t, m, nil, PlanOptions{})
	if got, want := tileSummary(at(t, p, 1)), []string{"amy/video@628x352+8+184", "zed/video@628x352+644+184"}; !slices.Equal(got, want) {
		t.Errorf("same join time: tiles %q, want %q", got, want)
	}
}

func TestPlanPlaceholders(t *testing.T) {
	m := mkManifest(
		tp{id: "alice", pubs: [][2]float64{{0, 10}}, pauses: [][2]float64{{3, 5}}},
		tp{id: "bob", pubs: [][2]float64{{0, 10}}, noVideo: true},
		tp{id: "carol", pubs: [][2]float64{{0, 10}}, videoLate: 2},
		tp{id: "dave", pubs: [][2]float64{{0, 10}}},
		tp{id: "erin", pubs: [][2]float64{{0, 4}, {6, 10}}},
	)
	e := parseEdits(t, "lanes:\n  dave: {hide: true}\n  carol: {name: Caroline}\n")
	p := mustPlan(t, m, e, PlanOptions{})
	state := func(sec float64) map[string]string {
		out := map[string]string{}
		for _, tl := range at(t, p, sec).Tiles {
			out[tl.Participant] = string(tl.Placeholder)
			if tl.Source != nil {
				out[tl.Participant] = "video"
			}
		}
		return out
	}
	for _, c := range []struct {
		sec  float64
		want map[string]string
	}{
		{1, map[string]string{"alice": "video", "bob": "absent", "carol": "absent", "dave": "hidden", "erin": "video"}},
		{2.5, map[string]string{"alice": "video", "bob": "absent", "carol": "video", "dave": "hidden", "erin": "video"}},
		{4.5, map[string]string{"alice": "lost", "bob": "absent", "carol": "video", "dave": "hidden"}},
		{7, map[string]string{"alice": "video", "bob": "absent", "carol": "video", "dave": "hidden", "erin": "video"}},
	} {
		got := state(c.sec)
		if len(got) != len(c.want) {
			t.Errorf("at %vs: tiles %v, want %v", c.sec, got, c.want)
			continue
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("at %vs: %s shows %q, want %q", c.sec, k, got[k], v)
			}
		}
	}
	iv := at(t, p, 1)
	for _, tl := range iv.Tiles {
		switch tl.Participant {
		case "carol":
			if tl.Name != "Caroline" || tl.Label != "Caroline" {
				t.Errorf("carol: name %q label %q, want Caroline", tl.Name, tl.Label)
			}
		case "bob":
			if tl.Lane != "" || tl.Name != "bob" {
				t.Errorf("bob (no video lane): lane %q name %q", tl.Lane, tl.Name)
			}
		}
	}
	// Alice's audio plays on through her video's pause.
	if got := audioLanes(at(t, p, 4.5)); !slices.Contains(got, "alice/audio") {
		t.Errorf("at 4.5s audio %v, want alice/audio in it", got)
	}
}

// TestPlanCutKeepsAVInStep: a sender whose wall clock is 2.5 s off and
// whose RTP clocks run 150 ppm fast, files rotating every 3 s, and a cut:
// every audio and video source maps back, through the sync model, to the
// interval's own recording time, and the participant's audio and video
// stay in step across the cut.
func TestPlanCutKeepsAVInStep(t *testing.T) {
	m := mkManifest(tp{id: "a", pubs: [][2]float64{{0, 12}}, clockOffset: 2.5, skewPPM: 150, fileLen: 3, level: func(float64) int { return 30 }},
		tp{id: "b", pubs: [][2]float64{{1, 11}}})
	s := mustSync(t, m)
	e := parseEdits(t, "cuts: [{start: 4, end: 6.5}]\n")
	p, err := NewPlan(m, s, e, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, p)
	if got, want := p.Duration, 12*time.Second-2500*time.Millisecond; got < want-10*time.Microsecond || got > want+10*time.Microsecond {
		t.Errorf("duration %v, want %v", got, want)
	}
	tracks := map[string]*Track{}
	for li := range m.Lanes {
		for ti := range m.Lanes[li].Tracks {
			tr := &m.Lanes[li].Tracks[ti]
			tracks[tr.ID] = tr
		}
	}
	// recAt maps a source's FileStart back to recording time.
	recAt := func(src *Source) time.Duration {
		tr := tracks[src.Track]
		var first int64
		for _, sg := range tr.Segments {
			if sg.Index == src.Segment {
				first = sg.FirstRTP
			}
		}
		rtp := first + int64(math.Round(src.FileStart*float64(tr.Codec.ClockRate))) - tr.CodecDelay
		v, err := s.RecorderTime(tr.ID, rtp)
		if err != nil {
			t.Fatal(err)
		}
		return time.Duration(v - s.SessionStart())
	}
	crossed := false
	for i, iv := range p.Intervals {
		if iv.RecStart >= 6500*time.Millisecond && iv.Start < iv.RecStart {
			crossed = true
		}
		if iv.RecStart < 6500*time.Millisecond && iv.RecEnd > 4*time.Second {
			t.Errorf("interval %d [%v, %v) is inside the cut", i, iv.RecStart, iv.RecEnd)
		}
		var audio, video *Source
		for _, a := range iv.Audio {
			if a.Participant == "a" {
				audio = &a.Source
			}
		}
		for _, tl := range iv.Tiles {
			if tl.Participant == "a" && tl.Source != nil {
				video = tl.Source
			}
		}
		if audio == nil || video == nil {
			t.Fatalf("interval %d: a's audio %v video %v", i, audio, video)
		}
		for _, src := range []*Source{audio, video} {
			if d := recAt(src) - iv.RecStart; d < -50*time.Microsecond || d > 50*time.Microsecond {
				t.Errorf("interval %d: %s file time %.6f is recording time %v, the interval starts at %v", i, src.Path, src.FileStart, recAt(src), iv.RecStart)
			}
			if math.Abs(src.Speed-1.00015) > 2e-6 {
				t.Errorf("interval %d: %s speed %.7f, want 1.00015", i, src.Path, src.Speed)
			}
		}
		// Audio and video were captured together, their files rotate
		// together: the same file time at every interval.
		if audio.Segment != video.Segment || math.Abs(audio.FileStart-video.FileStart) > 1e-4 || math.Abs(audio.FileEnd-video.FileEnd) > 1e-4 {
			t.Errorf("interval %d [%v, %v): audio %d %.6f–%.6f, video %d %.6f–%.6f", i, iv.RecStart, iv.RecEnd,
				audio.Segment, audio.FileStart, audio.FileEnd, video.Segment, video.FileStart, video.FileEnd)
		}
	}
	if !crossed {
		t.Errorf("no interval after the cut")
	}
	// The output runs on without a jump at the cut: output 4 s is recording 6.5 s.
	if i := p.IntervalAt(4 * time.Second); i < 0 || p.Intervals[i].RecStart != 6500*time.Millisecond || p.Intervals[i].Start != 4*time.Second {
		t.Errorf("interval at output 4s: %d %+v", i, p.Intervals[max(i, 0)])
	}
}

func TestPlanLayouts(t *testing.T) {
	talk := func(sec float64) int { return 10 }
	m := mkManifest(
		tp{id: "alice", pubs: [][2]float64{{0, 12}}},
		tp{id: "bob", pubs: [][2]float64{{0, 12}}, level: talk},
		tp{id: "carol", pubs: [][2]float64{{0, 12}}},
	)
	e := parseEdits(t, `layouts:
  - {at: 0, type: speaker}
  - {at: 2, type: pip, inset: carol, corner: bottom-right}
  - {at: 4, type: single, lane: carol/video}
  - at: 6
    type: custom
    regions:
      - {x: 0, y: 0, width: "50%", height: "100%", lanes: [alice, bob]}
      - {x: 640, y: 0, width: 640, height: 720, others: true, z: 1}
  - {at: 8, type: speaker, strip: false}
  - {at: 10, type: pip, main: alice, size: 0.5, corner: top-left, gap: 10}
`)
	p := mustPlan(t, m, e, PlanOptions{})
	for _, c := range []struct {
		sec    float64
		layout LayoutType
		want   []string
	}{
		{1, LayoutSpeaker, []string{"bob/video@1280x576+0+0", "alice/video@628x352+8+-104"}},
		{3, LayoutPiP, []string{"bob/video@1280x720+0+0", "carol/video@320x180+944+524"}},
		{5, LayoutSingle, []string{"carol/video@1280x720+0+0"}},
		{7, LayoutCustom, []string{"alice/video@618x348+10+8", "bob/video@618x348+10+364", "carol/video@640x720+640+0"}},
		{9, LayoutSpeaker, []string{"bob/video@1280x720+0+0"}},
		{11, LayoutPiP, []string{"alice/video@1280x720+0+0", "bob/video@640x360+20+20"}},
	} {
		iv := at(t, p, c.sec)
		if iv.Layout != c.layout {
			t.Errorf("at %vs: layout %s, want %s", c.sec, iv.Layout, c.layout)
		}
		got := tileSummary(iv)
		if c.sec == 1 {
			// The strip: two tiles in the bottom fifth.
			if len(got) != 3 || got[0] != c.want[0] || iv.Tiles[1].Rect.Y < 576 || iv.Tiles[2].Rect.Y < 576 {
				t.Errorf("at %vs: tiles %q, want bob on top and a strip below 576", c.sec, got)
			}
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("at %vs: tiles %q, want %q", c.sec, got, c.want)
		}
		if iv.Speaker != "bob" {
			t.Errorf("at %vs: speaker %q, want bob", c.sec, iv.Speaker)
		}
	}
	if tl := at(t, p, 3).Tiles[1]; tl.Z != 1 {
		t.Errorf("pip inset z %d, want 1", tl.Z)
	}
}

func TestPlanEdits(t *testing.T) {
	m := mkManifest(
		tp{id: "alice", pubs: [][2]float64{{0, 10}}},
		tp{id: "bob", pubs: [][2]float64{{0, 10}}},
		tp{id: "bot", pubs: [][2]float64{{0, 10}}},
	)
	e := parseEdits(t, `output: {width: 640, height: 360, fps: 25}
trim: {start: 1, end: 9}
cuts: [{start: 3, end: 4}]
labels: false
lanes:
  alice: {name: Alice, gain: -6, hide: [{start: 5, end: 6}]}
  alice/audio: {gain: 3}
  bob: {mute: [{start: 6, end: 7}]}
  bot: {exclude: true}
background: "#123456"
overlays:
  - {image: logo.png, width: "10%", start: 2, end: 5}
captions:
  cues:
    - {start: 2.5, end: 3.5, text: across the cut}
    - {start: 3.2, end: 3.8, text: inside the cut}
    - {start: 8.5, end: 9.5, text: past the end}
`)
	p := mustPlan(t, m, e, PlanOptions{})
	if p.Width != 640 || p.Height != 360 || p.FPS != (Rational{25, 1}) || p.Background.Color != "#123456" {
		t.Errorf("output %dx%d@%s background %s", p.Width, p.Height, p.FPS, p.Background.Color)
	}
	if got, want := p.Duration, 7*time.Second; got != want {
		t.Errorf("duration %v, want %v", got, want)
	}
	if got, want := p.Intervals[0].RecStart, time.Second; got != want {
		t.Errorf("output starts at recording %v, want %v", got, want)
	}
	for _, iv := range p.Intervals {
		for _, tl := range iv.Tiles {
			if tl.Participant == "bot" || tl.Label != "" {
				t.Fatalf("tile %+v: bot is excluded and labels are off", tl)
			}
		}
		for _, a := range iv.Audio {
			if a.Participant == "bot" {
				t.Fatalf("bot is excluded but heard")
			}
			if want := map[string]float64{"alice": 3, "bob": 0}[a.Participant]; a.GainDB != want {
				t.Errorf("%s gain %v, want %v", a.Lane, a.GainDB, want)
			}
		}
	}
	if tl := at(t, p, 5.5).Tiles[0]; tl.Participant != "alice" || tl.Placeholder != PlaceholderHidden || tl.Name != "Alice" {
		t.Errorf("alice at 5.5s: %+v, want hidden", tl)
	}
	if tl := at(t, p, 6.5).Tiles[0]; tl.Source == nil {
		t.Errorf("alice at 6.5s: %+v, want video", tl)
	}
	if got, want := audioLanes(at(t, p, 6.5)), []string{"alice/audio"}; !slices.Equal(got, want) {
		t.Errorf("audio at 6.5s %v, want %v (bob muted)", got, want)
	}
	if got, want := audioLanes(at(t, p, 7.5)), []string{"alice/audio", "bob/audio"}; !slices.Equal(got, want) {
		t.Errorf("audio at 7.5s %v, want %v", got, want)
	}
	// Overlay 2–5 s of recording with the cut 3–4: one continuous stretch of
	// output, 1–3 s.
	if got, want := p.Overlays, []PlacedOverlay{{Image: "logo.png", Anchor: AnchorTopRight, X: 24, Y: 24, Width: 64, Opacity: 1,
		Start: time.Second, End: 3 * time.Second}}; !slices.Equal(got, want) {
		t.Errorf("overlays %+v, want %+v", got, want)
	}
	if got, want := p.Captions, []Cue{{ms(1500), ms(2000), "across the cut"}, {ms(6500), ms(7000), "past the end"}}; !slices.Equal(got, want) {
		t.Errorf("captions %+v, want %+v", got, want)
	}
	// Captions in output time are only clipped.
	e.Captions.OutputTime = true
	p = mustPlan(t, m, e, PlanOptions{})
	if got, want := p.Captions, []Cue{{ms(2500), ms(3500), "across the cut"}, {ms(3200), ms(3800), "inside the cut"}}; !slices.Equal(got, want) {
		t.Errorf("output-time captions %+v, want %+v", got, want)
	}
}

func TestPlanOptions(t *testing.T) {
	m := mkManifest(tp{id: "alice", pubs: [][2]float64{{0, 4}}}, tp{id: "bob", pubs: [][2]float64{{0, 4}}})
	e := parseEdits(t, "output: {width: 640, height: 360}\nlayouts: [{type: single, lane: bob}]\n")
	p := mustPlan(t, m, e, PlanOptions{Width: 1920, Height: 1080, FPS: Rational{60, 1}, Layout: LayoutGrid})
	if p.Width != 1920 || p.Height != 1080 || p.FPS.Float() != 60 {
		t.Errorf("output %dx%d@%s, want 1920x1080@60", p.Width, p.Height, p.FPS)
	}
	if got := len(at(t, p, 1).Tiles); got != 2 || p.Intervals[0].Layout != LayoutGrid {
		t.Errorf("%d tiles in %s, want the grid of 2", got, p.Intervals[0].Layout)
	}
	s := mustSync(t, m)
	for _, o := range []PlanOptions{{Width: 641, Height: 360}, {FPS: Rational{1, 0}}, {Layout: LayoutCustom}, {Layout: "mosaic"}} {
		if _, err := NewPlan(m, s, nil, o); err == nil {
			t.Errorf("options %+v: no error", o)
		}
	}
	if _, err := NewPlan(nil, s, nil, PlanOptions{}); err == nil {
		t.Errorf("nil manifest: no error")
	}
	if _, err := NewPlan(m, nil, nil, PlanOptions{}); err == nil {
		t.Errorf("nil sync: no error")
	}
	if _, err := Summarize(m, nil); err == nil {
		t.Errorf("summary with nil sync: no error")
	}
	_, err := NewPlan(m, s, parseEdits(t, "trim: {start: 100}\n"), PlanOptions{})
	if !errors.Is(err, ErrEmptyPlan) {
		t.Errorf("trim past the end: err = %v, want ErrEmptyPlan", err)
	}
	_, err = NewPlan(m, s, parseEdits(t, "cuts: [{start: 0, end: 10}]\n"), PlanOptions{})
	if !errors.Is(err, ErrEmptyPlan) {
		t.Errorf("everything cut: err = %v, want ErrEmptyPlan", err)
	}
}

// TestPlanDeterministic builds the same plan twice, and from a manifest
// listing its participants and lanes in another order.
func TestPlanDeterministic(t *testing.T) {
	level := func(sec float64) int { return []int{10, 127, 40, 127, 127}[int(sec*4)%5] }
	parts := []tp{
		{id: "alice", pubs: [][2]float64{{0, 20}}, level: level, fileLen: 5},
		{id: "bob", pubs: [][2]float64{{1, 8}, {9, 20}}, level: func(s float64) int { return level(s + 0.5) }},
		{id: "carol", pubs: [][2]float64{{3, 17}}, pauses: [][2]float64{{6, 8}}, noAudio: true},
		{id: "dave", pubs: [][2]float64{{3, 17}}, noVideo: true, level: level},
	}
	e := parseEdits(t, "cuts: [{start: 5, end: 6}]\nlayouts: [{type: grid}, {at: 10, type: speaker}, {at: 15, type: pip}]\nlanes: {bob: {hide: [{start: 2, end: 3}]}}\n")
	plan := func(parts []tp) []byte {
		p := mustPlan(t, mkManifest(parts...), e, PlanOptions{})
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := plan(parts)
	if !bytes.Contains(first, []byte(`"speaker":"`)) || len(first) < 10000 {
		t.Fatalf("plan too simple to compare: %d bytes", len(first))
	}
	if again := plan(parts); !bytes.Equal(first, again) {
		t.Errorf("two plans of the same inputs differ")
	}
	reversed := slices.Clone(parts)
	slices.Reverse(reversed)
	m := mkManifest(reversed...)
	slices.Reverse(m.Lanes)
	p, err := NewPlan(m, mustSync(t, m), e, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, other) {
		t.Errorf("the plan depends on the order of the manifest's participants and lanes")
	}
}

// TestPlanDemo plans a real recording: three participants, carol drops and
// rejoins, bob's wall clock is 2.5 s off.
func TestPlanDemo(t *testing.T) {
	m, s := demo(t)
	p, err := NewPlan(m, s, nil, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, p)
	if got, want := p.Duration, p.RecordingDuration; got != want {
		t.Errorf("duration %v, want the recording's %v", got, want)
	}
	if p.Duration < 11*time.Second || p.Duration > 13*time.Second {
		t.Errorf("duration %v, want about 12 s", p.Duration)
	}
	paths := map[string]bool{}
	for _, l := range m.Lanes {
		for _, tr := range l.Tracks {
			for _, sg := range tr.Segments {
				paths[sg.Path] = true
			}
		}
	}
	for _, iv := range p.Intervals {
		for _, tl := range iv.Tiles {
			if tl.Source != nil && !paths[tl.Source.Path] {
				t.Fatalf("tile source %q is not a file of the recording", tl.Source.Path)
			}
		}
		for _, a := range iv.Audio {
			if !paths[a.Source.Path] {
				t.Fatalf("audio source %q is not a file of the recording", a.Source.Path)
			}
		}
	}
	part := func(iv *Interval) []string {
		var out []string
		for _, tl := range iv.Tiles {
			out = append(out, tl.Participant)
		}
		return out
	}
	for _, c := range []struct {
		sec  float64
		want []string
	}{
		{1, []string{"alice"}},
		{4, []string{"alice", "bob", "carol"}},
		{6.7, []string{"alice", "bob"}}, // carol between her two publishes
		{10, []string{"alice", "bob", "carol"}},
	} {
		if got := part(at(t, p, c.sec)); !slices.Equal(got, c.want) {
			t.Errorf("at %vs: tiles %v, want %v", c.sec, got, c.want)
		}
	}
	// Every example edit applies (see TestExamples); a speaker layout too.
	if _, err := NewPlan(m, s, nil, PlanOptions{Layout: LayoutSpeaker}); err != nil {
		t.Error(err)
	}
}

// BenchmarkNewPlan plans a two-hour call of six people taking turns, with
// ten-minute files, a drop and rejoin, a paused camera and a speaker layout.
func BenchmarkNewPlan(b *testing.B) {
	turn := func(k int) func(float64) int {
		return func(s float64) int {
			if int(s/20)%6 == k && math.Mod(s, 1) < 0.75 {
				return 15
			}
			return 127
		}
	}
	var parts []tp
	for k, id := range []string{"p1", "p2", "p3", "p4", "p5", "p6"} {
		p := tp{id: id, pubs: [][2]float64{{float64(k), 7200}}, level: turn(k), fileLen: 600}
		switch k {
		case 3:
			p.pubs = [][2]float64{{3, 2000}, {2030, 7200}}
		case 4:
			p.pauses = [][2]float64{{3000, 3100}}
		}
		parts = append(parts, p)
	}
	m := mkManifest(parts...)
	s := mustSync(b, m)
	e := parseEdits(b, "layouts: [{type: grid}, {at: 60, type: speaker}]\ncuts: [{start: 600, end: 660}]\n")
	b.ResetTimer()
	var p *Plan
	for b.Loop() {
		var err error
		if p, err = NewPlan(m, s, e, PlanOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(p.Intervals)), "intervals")
}

// TestPlanResolutionChange: a change of picture size inside a file breaks
// the interval, and each side carries its size.
func TestPlanResolutionChange(t *testing.T) {
	m := mkManifest(tp{id: "a", pubs: [][2]float64{{0, 6}}})
	v := &m.Lanes[1].Tracks[0]
	if m.Lanes[1].Kind != Video {
		t.Fatal("lane 1 is not video")
	}
	sg := v.Segments[0]
	v.Events = append(v.Events, Event{Kind: EventResolution, RTP: sg.FirstRTP + 3*90000, ArrivalUnixNS: synT0 + 3e9, Width: 320, Height: 240})
	p := mustPlan(t, m, nil, PlanOptions{})
	size := func(sec float64) [2]int {
		src := at(t, p, sec).Tiles[0].Source
		return [2]int{src.Width, src.Height}
	}
	if got, want := size(1), [2]int{640, 360}; got != want {
		t.Errorf("size at 1s %v, want %v", got, want)
	}
	if got, want := size(4), [2]int{320, 240}; got != want {
		t.Errorf("size at 4s %v, want %v", got, want)
	}
	if iv := at(t, p, 4); iv.RecStart != 3*time.Second {
		t.Errorf("interval after the change starts at %v, want 3s", iv.RecStart)
	}
}

// TestPlanAudioLostPackets: an audio segment ends with its last packet's
// frame. The frame's length is the mean interval between packets, and the
// lost ones count: with 8 of 250 lost, counting only those received ran
// the segment 0.65 ms past its file's last sample (the demo's case).
func TestPlanAudioLostPackets(t *testing.T) {
	m := mkManifest(tp{id: "a", pubs: [][2]float64{{1, 6}}, noVideo: true})
	sg := &m.Lanes[0].Tracks[0].Segments[0]
	if got, want := sg.Frames, int64(250); got != want {
		t.Fatalf("the test's segment has %d frames, want %d", got, want)
	}
	sg.Frames, sg.Packets, sg.Lost = sg.Frames-8, sg.Packets-8, 8
	p := mustPlan(t, m, nil, PlanOptions{})
	var end time.Duration
	var fileEnd float64
	for _, iv := range p.Intervals {
		for _, a := range iv.Audio {
			end, fileEnd = iv.RecEnd, a.Source.FileEnd
		}
	}
	if got, want := end, 6*time.Second; (got - want).Abs() > time.Microsecond {
		t.Errorf("the audio ends at %v, want %v", got, want)
	}
	if got, want := fileEnd, 5.0; math.Abs(got-want) > 1e-6 {
		t.Errorf("its file ends at %.6f s, want %.6f s", got, want)
	}
}
