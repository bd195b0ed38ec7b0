package timeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func parseString(t testing.TB, src string) (*Edits, error) {
	t.Helper()
	return ParseEdits("test.yaml", strings.NewReader(src))
}

func TestParseEditsFull(t *testing.T) {
	src := `# every field once
version: 1
output: {width: 1920, height: 1080, fps: "30000/1001"}
trim: {start: 2, end: "1:00:00"}
cuts:
  - {start: "00:01:00.500", end: "01:30"}
layouts:
  - {at: 0, type: grid, gap: 4, fit: cover}
  - {at: "2:00", type: speaker, strip: false}
  - {at: 180, type: pip, main: alice, inset: bob/video, corner: top-left, size: 0.3}
  - {at: 240, type: single, lane: carol}
  - at: 300
    type: custom
    regions:
      - {x: 0, y: 0, width: "50%", height: "100%", lanes: [alice, bob]}
      - {x: "50%", y: 0, width: 960, height: 1080, speaker: true, z: 2, fit: contain}
      - {x: 10, y: 10, width: 100, height: 100, others: true}
lanes:
  alice: {name: "Alice L.", label: "Alice (host)", gain: -3.5}
  bob/audio:
    mute:
      - {start: 10, end: 12}
  carol: {hide: true, exclude: false, label: ~}
labels: true
background: {color: "#1A2", image: bg.png}
overlays:
  - {image: logo.png, position: bottom-left, x: "2%", y: 20, width: 200, opacity: 0.5, start: 1, end: 2}
captions:
  cues:
    - {start: 1, end: 2.5, text: "hello"}
  offset: -0.5
  timeline: output
`
	e, err := parseString(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.Output, (Output{Width: 1920, Height: 1080, FPS: Rational{30000, 1001}, Pos: Pos{Line: 3, Field: "output"}}); got != want {
		t.Errorf("output = %+v, want %+v", got, want)
	}
	if got, want := *e.Trim, (Range{Start: 2 * time.Second, End: time.Hour, Pos: Pos{4, "trim"}}); got != want {
		t.Errorf("trim = %+v, want %+v", got, want)
	}
	if got, want := e.Cuts, []Range{{Start: 60500 * time.Millisecond, End: 90 * time.Second, Pos: Pos{6, "cuts[0]"}}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("cuts = %+v, want %+v", got, want)
	}
	if got, want := len(e.Layouts), 5; got != want {
		t.Fatalf("%d layouts, want %d", got, want)
	}
	l := e.Layouts
	if l[0].Gap != 4 || l[0].Fit != FitCover || l[1].Strip || l[1].At != 120*time.Second || l[1].Gap != -1 {
		t.Errorf("layouts[0..1] = %+v, %+v", l[0], l[1])
	}
	if l[2].Main != "alice" || l[2].Inset != "bob/video" || l[2].Corner != AnchorTopLeft || l[2].Size != 0.3 {
		t.Errorf("pip = %+v", l[2])
	}
	if l[3].Lane != "carol" || l[3].Type != LayoutSingle {
		t.Errorf("single = %+v", l[3])
	}
	rg := l[4].Regions
	if got, want := len(rg), 3; got != want {
		t.Fatalf("%d regions, want %d", got, want)
	}
	if got, want := rg[0].Width, (Length{Percent: 50, IsPercent: true}); got != want {
		t.Errorf("region width = %+v, want %+v", got, want)
	}
	if !rg[1].Speaker || rg[1].Z != 2 || rg[1].Width.Resolve(1920) != 960 || rg[1].X.Resolve(1920) != 960 || !rg[2].Others {
		t.Errorf("regions = %+v", rg)
	}
	if got, want := len(e.Lanes), 3; got != want {
		t.Fatalf("%d lane edits, want %d", got, want)
	}
	if a := e.Lanes[0]; a.Ref != "alice" || *a.Name != "Alice L." || *a.Label != "Alice (host)" || a.GainDB != -3.5 || a.Pos.Line != 19 {
		t.Errorf("alice = %+v", a)
	}
	if b := e.Lanes[1]; !b.Mute.At(11*time.Second) || b.Mute.At(12*time.Second) || b.Mute.Always {
		t.Errorf("bob/audio mute = %+v", b.Mute)
	}
	if c := e.Lanes[2]; !c.Hide.Always || c.Label == nil || *c.Label != "" {
		t.Errorf("carol = %+v", c)
	}
	if got, want := e.Background, (Background{Color: "#11aa22", Image: "bg.png", Pos: Pos{25, "background"}}); got != want {
		t.Errorf("background = %+v, want %+v", got, want)
	}
	o := e.Overlays[0]
	if o.Position != AnchorBottomLeft || o.X.Resolve(1000) != 20 || o.Y.Resolve(1000) != 20 || o.Width.Resolve(1000) != 200 || o.Opacity != 0.5 ||
		o.Start != time.Second || o.End != 2*time.Second {
		t.Errorf("overlay = %+v", o)
	}
	c := e.Captions
	if c == nil || !c.Loaded || !c.OutputTime || c.Offset != -500*time.Millisecond || len(c.Cues) != 1 || c.Cues[0].End != 2500*time.Millisecond {
		t.Errorf("captions = %+v", c)
	}
}

func TestParseEditsEmpty(t *testing.T) {
	for _, src := range []string{"", "# nothing\n", "---\n", "~\n", "{}\n"} {
		e, err := parseString(t, src)
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		if len(e.Cuts)+len(e.Layouts)+len(e.Lanes) != 0 || e.Trim != nil || e.Captions != nil {
			t.Errorf("%q: edits %+v, want none", src, e)
		}
	}
}

func TestParseEditsJSON(t *testing.T) {
	e, err := parseString(t, `{"cuts": [{"start": 1, "end": "0:02"}], "layouts": [{"at": 0, "type": "speaker"}], "lanes": {"bob": {"gain": 6}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Cuts) != 1 || e.Cuts[0].End != 2*time.Second || e.Layouts[0].Type != LayoutSpeaker || e.Lanes[0].GainDB != 6 {
		t.Errorf("edits = %+v", e)
	}
	// Indented with tabs, as JSON often is (YAML forbids tabs in its block style).
	_, err = parseString(t, "{\n\t\"cuts\": [\n\t\t{\"start\": 1, \"end\": 2}\n\t],\n\t\"x\": 1\n}\n")
	var ee *EditError
	if !errors.As(err, &ee) || ee.Line != 5 || ee.Field != "x" {
		t.Errorf("tab-indented JSON: %v, want an unknown field x on line 5", err)
	}
}

func TestParseTimes(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"90", 90 * time.Second, true},
		{"90.25", 90250 * time.Millisecond, true},
		{`"90.25"`, 90250 * time.Millisecond, true},
		{`"1:30"`, 90 * time.Second, true},
		{`"01:30.5"`, 90500 * time.Millisecond, true},
		{`"1:02:03.456"`, time.Hour + 2*time.Minute + 3456*time.Millisecond, true},
		{`"90:00"`, 90 * time.Minute, true},
		{`"0.000000001"`, 1, true},
		{`"1:5"`, 0, false},
		{`"1:60"`, 0, false},
		{`"1:2:3:4"`, 0, false},
		{`"1:30."`, 0, false},
		{`"-1"`, 0, false},
		{"-1", 0, false},
		{`"1e3"`, 0, false},
		{".nan", 0, false},
		{".inf", 0, false},
		{"4000000", 0, false},
		{`"1001:00:00"`, 0, false},
		{"true", 0, false},
		{"[1]", 0, false},
		{`""`, 0, false},
		{`"1h"`, 0, false},
	} {
		e, err := parseString(t, "cuts: [{start: "+c.in+", end: \"999:00:00\"}]\n")
		if ok := err == nil; ok != c.ok {
			t.Errorf("%s: err = %v, want ok %v", c.in, err, c.ok)
			continue
		}
		if c.ok {
			if got := e.Cuts[0].Start; got != c.want {
				t.Errorf("%s = %v, want %v", c.in, got, c.want)
			}
		} else if !strings.Contains(err.Error(), "test.yaml:1: cuts[0].start:") {
			t.Errorf("%s: error %q does not name cuts[0].start on line 1", c.in, err)
		}
	}
}

func TestParseEditsErrors(t *testing.T) {
	for _, c := range []struct {
		name, src   string
		line        int
		field, want string
	}{
		{"unknown top field", "cuts: []\ncutz: []\n", 2, "cutz", "unknown field; allowed in the top level: version, output, trim, cuts, layouts, lanes"},
		{"version", "version: 2\n", 1, "version", "want 1 (the only version"},
		{"not a mapping", "- a\n", 1, "", "want a mapping (with fields version, output"},
		{"yaml syntax", "cuts: [\n", 0, "", "yaml:"},
		{"two documents", "cuts: []\n---\ncuts: []\n", 2, "", "more than one YAML document"},
		{"output one size", "output: {width: 1280}\n", 1, "output", "set both width and height"},
		{"output odd", "output:\n  width: 1281\n  height: 720\n", 2, "output.width", "want an even number of pixels from 16 to 7680, got 1281"},
		{"output too big", "output: {width: 10000, height: 720}\n", 1, "output.width", "from 16 to 7680"},
		{"output float", "output: {width: 1280.5, height: 720}\n", 1, "output.width", "want an even number"},
		{"fps zero den", "output: {fps: \"30/0\"}\n", 1, "output.fps", "a frame rate from 1 to 240"},
		{"fps big", "output: {fps: 1000}\n", 1, "output.fps", "a frame rate from 1 to 240"},
		{"output unknown", "output: {width: 2, height: 2, size: 3}\n", 1, "output.size", "allowed in output: width, height, fps"},
		{"trim empty", "trim: {}\n", 1, "trim", "set start, end or both"},
		{"trim order", "trim: {start: 10, end: 5}\n", 1, "trim.end", "0:05.000 is not after start 0:10.000"},
		{"cuts not list", "cuts: {start: 1, end: 2}\n", 1, "cuts", "want a list of {start, end} ranges, got a mapping"},
		{"cut bad time", "cuts:\n  - start: \"1:2:3:4\"\n    end: 5\n", 2, "cuts[0].start", `want a time: seconds (90 or 90.5) or "hh:mm:ss.mmm" / "mm:ss", got "1:2:3:4"`},
		{"cut no end", "cuts:\n  - {start: 1, end: 2}\n  - {start: 3}\n", 3, "cuts[1].end", "missing; want a time"},
		{"cut empty", "cuts: [{start: 3, end: 3}]\n", 1, "cuts[0].end", "is not after start"},
		{"cut unknown", `{"cuts": [{"start": 1, "end": 2, "x": 3}]}`, 1, "cuts[0].x", "unknown field; allowed in cuts[0]: start, end"},
		{"cut dup", "cuts:\n  - start: 1\n    start: 2\n", 3, "cuts[0].start", "set twice (first on line 2)"},
		{"layout no type", "layouts:\n  - at: 0\n", 2, "layouts[0].type", "missing; want one of grid, speaker, pip, single, custom"},
		{"layout bad type", "layouts:\n  - {at: 0, type: mosaic}\n", 2, "layouts[0].type", `want one of grid, speaker, pip, single, custom, got "mosaic"`},
		{"layout wrong field", "layouts:\n  - {at: 0, type: grid, corner: top-left}\n", 2, "layouts[0].corner", "not a field of a grid layout; allowed: at, type, gap, fit"},
		{"layout order", "layouts:\n  - {at: 10, type: grid}\n  - {at: 5, type: speaker}\n", 3, "layouts[1].at", "0:05.000 is not after the previous layout's 0:10.000"},
		{"layout not mapping", "layouts: [grid]\n", 1, "layouts[0]", "want a mapping with at and type"},
		{"layout gap", "layouts: [{type: grid, gap: -3}]\n", 1, "layouts[0].gap", "a number of pixels from 0 to 500"},
		{"layout fit", "layouts: [{type: grid, fit: stretch}]\n", 1, "layouts[0].fit", "want one of contain, cover"},
		{"strip", "layouts: [{type: speaker, strip: 1}]\n", 1, "layouts[0].strip", "want true or false"},
		{"single no lane", "layouts:\n  - type: single\n", 2, "layouts[0].lane", "missing; a single layout needs"},
		{"pip same", "layouts: [{type: pip, main: a, inset: a}]\n", 1, "layouts[0].inset", `"a" is also main`},
		{"pip corner", "layouts: [{type: pip, corner: middle}]\n", 1, "layouts[0].corner", "want one of top-left, top-right, bottom-left, bottom-right"},
		{"pip size", "layouts: [{type: pip, size: 0.9}]\n", 1, "layouts[0].size", "from 0.05 to 0.5"},
		{"custom no regions", "layouts: [{type: custom}]\n", 1, "layouts[0].regions", "missing; a custom layout needs a list of regions"},
		{"custom empty regions", "layouts: [{type: custom, regions: []}]\n", 1, "layouts[0].regions", "want at least one region"},
		{"region no width", "layouts:\n  - type: custom\n    regions:\n      - {height: 10, speaker: true}\n", 4, "layouts[0].regions[0].width", "missing; want pixels"},
		{"region percent", "layouts: [{type: custom, regions: [{width: \"150%\", height: 10, speaker: true}]}]\n", 1, "layouts[0].regions[0].width", `want pixels (a whole number, 0 or more) or a percentage ("25%"), got "150%"`},
		{"region two things", "layouts: [{type: custom, regions: [{width: 10, height: 10, speaker: true, lanes: [a]}]}]\n", 1, "layouts[0].regions[0]", "exactly one of lanes"},
		{"region nothing", "layouts: [{type: custom, regions: [{width: 10, height: 10, speaker: false}]}]\n", 1, "layouts[0].regions[0]", "exactly one of lanes"},
		{"region two others", "layouts:\n  - type: custom\n    regions:\n      - {width: 10, height: 10, others: true}\n      - {width: 10, height: 10, others: true}\n", 5, "layouts[0].regions[1].others", "only one region"},
		{"region z", "layouts: [{type: custom, regions: [{width: 10, height: 10, others: true, z: 1000}]}]\n", 1, "layouts[0].regions[0].z", "from -100 to 100"},
		{"region lanes empty", "layouts: [{type: custom, regions: [{width: 10, height: 10, lanes: []}]}]\n", 1, "layouts[0].regions[0].lanes", "at least one lane"},
		{"region lane empty", "layouts: [{type: custom, regions: [{width: 10, height: 10, lanes: [\"\"]}]}]\n", 1, "layouts[0].regions[0].lanes[0]", "got an empty text"},
		{"lanes not mapping", "lanes: [alice]\n", 1, "lanes", "want a mapping from lane or participant ID"},
		{"lanes dup", "lanes:\n  alice: {gain: 1}\n  alice: {gain: 2}\n", 3, "lanes.alice", "set twice (first on line 2)"},
		{"lanes unknown", "lanes:\n  alice:\n    volume: 3\n", 3, "lanes.alice.volume", "allowed in lanes.alice: name, label, hide, mute, gain, exclude"},
		{"gain range", "lanes: {alice: {gain: 100}}\n", 1, "lanes.alice.gain", "a gain in dB from -100 to 40"},
		{"hide yes", "lanes:\n  alice:\n    hide: yes\n", 3, "lanes.alice.hide", "want true, false or a list of {start, end} ranges"},
		{"mute range", "lanes: {alice: {mute: [{start: 5, end: 1}]}}\n", 1, "lanes.alice.mute[0].end", "is not after start"},
		{"name empty", "lanes: {alice: {name: \"\"}}\n", 1, "lanes.alice.name", "want a display name"},
		{"exclude", "lanes: {alice: {exclude: 1}}\n", 1, "lanes.alice.exclude", "want true or false"},
		{"lane settings not mapping", "lanes: {alice: true}\n", 1, "lanes.alice", "want a mapping"},
		{"labels", "labels: no\n", 1, "labels", `want true or false, got "no"`},
		{"background name", "background: red\n", 1, "background", `want a colour "#rrggbb" or "#rgb", got "red"`},
		{"background field", "background: {colour: \"#000\"}\n", 1, "background.colour", "allowed in background: color, image"},
		{"overlay image", "overlays:\n  - {position: top-left}\n", 2, "overlays[0].image", "missing; want the path of an image"},
		{"overlay opacity", "overlays: [{image: a.png, opacity: 2}]\n", 1, "overlays[0].opacity", "an opacity from 0 (invisible) to 1"},
		{"overlay position", "overlays: [{image: a.png, position: middle}]\n", 1, "overlays[0].position", "want one of top-left, top-right, bottom-left, bottom-right, center"},
		{"overlay width", "overlays: [{image: a.png, width: 0}]\n", 1, "overlays[0].width", "want a width above 0"},
		{"overlay end", "overlays: [{image: a.png, start: 5, end: 4}]\n", 1, "overlays[0].end", "is not after start"},
		{"captions both", "captions:\n  file: a.srt\n  cues: []\n", 2, "captions", "set file (an SRT or WebVTT file) or cues"},
		{"captions neither", "captions: {offset: 1}\n", 1, "captions", "set file (an SRT or WebVTT file) or cues"},
		{"captions cue order", "captions:\n  cues:\n    - {start: 2, end: 1, text: x}\n", 3, "captions.cues[0].end", "is not after start"},
		{"captions cue text", "captions: {cues: [{start: 1, end: 2}]}\n", 1, "captions.cues[0].text", "missing"},
		{"captions timeline", "captions: {file: a.srt, timeline: wall}\n", 1, "captions.timeline", "want one of recording, output"},
		{"captions offset", "captions: {file: a.srt, offset: x}\n", 1, "captions.offset", "want a time"},
		{"complex key", "? [a]\n: 1\n", 1, "", "a field name must be a plain word, got a list"},
		{"output odd height", "output: {width: 640, height: 361}\n", 1, "output.height", "(H.264 needs even sizes)"},
		{"cut no start", "cuts: [{end: 2}]\n", 1, "cuts[0].start", "missing; want a time"},
		{"layout at", "layouts: [{at: soon, type: grid}]\n", 1, "layouts[0].at", `want a time: seconds (90 or 90.5) or "hh:mm:ss.mmm" / "mm:ss", got "soon"`},
		{"pip main empty", "layouts: [{type: pip, main: \"\"}]\n", 1, "layouts[0].main", "want a lane or participant ID, got an empty text"},
		{"pip main list", "layouts: [{type: pip, main: [a]}]\n", 1, "layouts[0].main", "want a text, got a list"},
		{"regions not list", "layouts: [{type: custom, regions: {x: 1}}]\n", 1, "layouts[0].regions", "want a list of regions, got a mapping"},
		{"region fit", "layouts: [{type: custom, regions: [{width: 1, height: 1, others: true, fit: fill}]}]\n", 1, "layouts[0].regions[0].fit", "want one of contain, cover"},
		{"region speaker", "layouts: [{type: custom, regions: [{width: 1, height: 1, speaker: 1}]}]\n", 1, "layouts[0].regions[0].speaker", "want true or false"},
		{"region lanes mapping", "layouts: [{type: custom, regions: [{width: 1, height: 1, lanes: {a: 1}}]}]\n", 1, "layouts[0].regions[0].lanes", "want a list of lane or participant IDs, got a mapping"},
		{"region x", "layouts: [{type: custom, regions: [{x: -1, width: 1, height: 1, others: true}]}]\n", 1, "layouts[0].regions[0].x", "want pixels (a whole number, 0 or more)"},
		{"lanes empty key", "lanes: {\"\": {mute: true}}\n", 1, "lanes", "want a lane or participant ID as the key"},
		{"label list", "lanes: {alice: {label: [a]}}\n", 1, "lanes.alice.label", "want a text, got a list"},
		{"background color", "background: {color: blue}\n", 1, "background.color", `want a colour "#rrggbb" or "#rgb", got "blue"`},
		{"background image", "background: {image: \"\"}\n", 1, "background.image", "want an image path, got an empty text"},
		{"overlay image empty", "overlays: [{image: \" \"}]\n", 1, "overlays[0].image", "want an image path"},
		{"overlay x", "overlays: [{image: a.png, x: left}]\n", 1, "overlays[0].x", "want pixels"},
		{"overlay start", "overlays: [{image: a.png, start: -1}]\n", 1, "overlays[0].start", "want a time"},
		{"overlays not list", "overlays: {image: a.png}\n", 1, "overlays", "want a list of overlays"},
		{"captions empty", "captions: \"\"\n", 1, "captions", "want the path of an SRT or WebVTT file, got an empty text"},
		{"captions file empty", "captions: {file: \"\"}\n", 1, "captions.file", "want the path of an SRT or WebVTT file"},
		{"captions cues not list", "captions: {cues: 3}\n", 1, "captions.cues", "want a list of {start, end, text} cues"},
		{"captions cue field", "captions: {cues: [{start: 1, end: 2, text: a, style: b}]}\n", 1, "captions.cues[0].style", "allowed in captions.cues[0]: start, end, text"},
		{"captions cue start", "captions: {cues: [{start: x, end: 2, text: a}]}\n", 1, "captions.cues[0].start", "want a time"},
		{"captions field", "captions: {file: a.srt, lang: en}\n", 1, "captions.lang", "allowed in captions: file, cues, offset, timeline"},
		{"too big", strings.Repeat("#", maxEditsSize+1), 0, "", "larger than 16 MiB"},
		{"alias value", "cuts: &c [{start: 1, end: 2}]\nlayouts: *c\n", 1, "layouts[0].type", "missing; want one of grid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseString(t, c.src)
			var ee *EditError
			if !errors.As(err, &ee) {
				t.Fatalf("err = %v, want an *EditError", err)
			}
			if !errors.Is(err, ErrInvalidEdits) {
				t.Errorf("err does not wrap ErrInvalidEdits")
			}
			if ee.Line != c.line || ee.Field != c.field {
				t.Errorf("at line %d field %q, want line %d field %q (%v)", ee.Line, ee.Field, c.line, c.field, err)
			}
			prefix := "timeline: edits test.yaml"
			switch {
			case c.line > 0 && c.field != "":
				prefix = fmt.Sprintf("timeline: edits test.yaml:%d: %s: ", c.line, c.field)
			case c.line > 0:
				prefix = fmt.Sprintf("timeline: edits test.yaml:%d: ", c.line)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, c.want) {
				t.Errorf("error %q, want prefix %q and %q", msg, prefix, c.want)
			}
		})
	}
}

func TestValidateEdits(t *testing.T) {
	m := mkManifest(tp{id: "alice", pubs: [][2]float64{{0, 10}}}, tp{id: "bob", pubs: [][2]float64{{1, 10}}, noVideo: true})
	for _, c := range []struct {
		name, src   string
		line        int
		field, want string
	}{
		{"unknown lane", "lanes:\n  carl: {mute: true}\n", 2, "lanes.carl",
			`unknown lane or participant "carl"; known: alice, alice/audio, alice/video, bob, bob/audio`},
		{"hide audio", "lanes:\n  alice/audio: {hide: true}\n", 2, "lanes.alice/audio.hide", `lane "alice/audio" is audio; hide applies to video (use mute)`},
		{"mute video", "lanes: {alice/video: {mute: true}}\n", 1, "lanes.alice/video.mute", "is video; mute applies to audio (use hide)"},
		{"gain video", "lanes: {alice/video: {gain: 3}}\n", 1, "lanes.alice/video.gain", "gain applies to audio"},
		{"name on lane", "lanes: {alice/video: {name: Al}}\n", 1, "lanes.alice/video.name", `names belong to participants: write it under "alice"`},
		{"exclude lane", "lanes: {bob/audio: {exclude: true}}\n", 1, "lanes.bob/audio.exclude", "exclude applies to participants"},
		{"layout audio lane", "layouts:\n  - {type: single, lane: bob/audio}\n", 2, "layouts[0].lane", `lane "bob/audio" is audio; a layout places video: name the participant ("bob")`},
		{"pip unknown", "layouts: [{type: pip, main: zed}]\n", 1, "layouts[0].main", `unknown lane or participant "zed"`},
		{"region unknown", "layouts:\n  - type: custom\n    regions:\n      - {width: 10, height: 10, lanes: [alice, zed]}\n", 4, "layouts[0].regions[0].lanes", `unknown lane or participant "zed"`},
		{"captions unread", "captions: subs.srt\n", 1, "captions", `caption file "subs.srt" was not read`},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := parseString(t, c.src)
			if err != nil {
				t.Fatal(err)
			}
			err = e.Validate(m)
			var ee *EditError
			if !errors.As(err, &ee) {
				t.Fatalf("err = %v, want an *EditError", err)
			}
			if ee.Line != c.line || ee.Field != c.field {
				t.Errorf("at line %d field %q, want line %d field %q (%v)", ee.Line, ee.Field, c.line, c.field, err)
			}
			prefix := fmt.Sprintf("timeline: edits test.yaml:%d: %s: ", c.line, c.field)
			if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, c.want) {
				t.Errorf("error %q, want prefix %q and %q", msg, prefix, c.want)
			}
		})
	}
	e, err := parseString(t, "lanes: {alice: {hide: true}, bob: {mute: true, gain: -6}, alice/video: {hide: [{start: 1, end: 2}]}}\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Validate(m); err != nil {
		t.Errorf("valid edits: %v", err)
	}
}

func TestRegionMustFitOutput(t *testing.T) {
	m := mkManifest(tp{id: "alice", pubs: [][2]float64{{0, 4}}})
	s := mustSync(t, m)
	e, err := parseString(t, "output: {width: 640, height: 360}\nlayouts:\n  - type: custom\n    regions:\n      - {x: 600, width: 100, height: 100, others: true}\n")
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewPlan(m, s, e, PlanOptions{})
	if want := "timeline: edits test.yaml:5: layouts[0].regions[0]: region 100x100+600+0 does not fit the 640x360 output"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %v, want %q", err, want)
	}
	if _, err := NewPlan(m, s, e, PlanOptions{Width: 1280, Height: 720}); err != nil {
		t.Errorf("with a 1280x720 output: %v", err)
	}
}

// TestExamples checks that every example edit file parses, validates
// against the demo recording and gives a plan.
func TestExamples(t *testing.T) {
	m, s := demo(t)
	files, err := filepath.Glob("../examples/edits/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	json, err := filepath.Glob("../examples/edits/*.json")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, json...)
	if len(files) < 4 {
		t.Fatalf("%d examples in examples/edits, want at least 4", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			e, err := LoadEdits(f)
			if err != nil {
				t.Fatal(err)
			}
			p, err := NewPlan(m, s, e, PlanOptions{})
			if err != nil {
				t.Fatal(err)
			}
			checkPlan(t, p)
			for _, img := range append([]string{e.Background.Image}, func() (out []string) {
				for _, o := range e.Overlays {
					out = append(out, o.Image)
				}
				return out
			}()...) {
				if _, err := os.Stat(img); img != "" && err != nil {
					t.Errorf("example names a missing image: %v", err)
				}
			}
		})
	}
	// The two caption files say the same.
	srt, err := LoadCaptions("../examples/edits/captions.srt")
	if err != nil {
		t.Fatal(err)
	}
	vtt, err := LoadCaptions("../examples/edits/captions.vtt")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(srt, vtt) || len(srt) != 3 {
		t.Errorf("captions.srt %q and captions.vtt %q differ", srt, vtt)
	}
}

func TestLoadEdits(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("subs.vtt", "WEBVTT\n\n00:01.000 --> 00:02.000\nhi\n")
	e, err := LoadEdits(write("e.yaml", "background: {image: img/bg.png}\noverlays: [{image: /abs/logo.png}]\ncaptions: subs.vtt\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.Background.Image, filepath.Join(dir, "img", "bg.png"); got != want {
		t.Errorf("background image %q, want %q", got, want)
	}
	if got, want := e.Overlays[0].Image, "/abs/logo.png"; got != want {
		t.Errorf("overlay image %q, want %q", got, want)
	}
	if c := e.Captions; !c.Loaded || len(c.Cues) != 1 || c.Cues[0].Text != "hi" {
		t.Errorf("captions = %+v", c)
	}
	_, err = LoadEdits(write("bad.yaml", "captions: missing.srt\n"))
	if want := "bad.yaml:1: captions: "; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("missing caption file: err = %v, want %q", err, want)
	}
	write("bad.srt", "1\nnot a timing\nx\n")
	_, err = LoadEdits(write("badsubs.yaml", "captions: bad.srt\n"))
	if want := "bad.srt:2: want a timing line"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("bad caption file: err = %v, want %q", err, want)
	}
}

func FuzzParseEdits(f *testing.F) {
	f.Add([]byte("cuts: [{start: 1, end: 2}]\nlayouts: [{type: speaker}]\n"))
	f.Add([]byte(`{"lanes": {"alice": {"hide": [{"start": 0, "end": 1}]}}}`))
	m := mkManifest(tp{id: "alice", pubs: [][2]float64{{0, 3}}, level: func(float64) int { return 20 }},
		tp{id: "bob", pubs: [][2]float64{{0.5, 2}, {2.5, 3}}, noVideo: true})
	s := mustSync(f, m)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEdits("fuzz.yaml", strings.NewReader(string(data)))
		if err != nil {
			var ee *EditError
			if !errors.As(err, &ee) {
				t.Fatalf("error %v is not an *EditError", err)
			}
			return
		}
		p, err := NewPlan(m, s, e, PlanOptions{})
		if err != nil {
			if !errors.Is(err, ErrInvalidEdits) && !errors.Is(err, ErrEmptyPlan) {
				t.Fatalf("NewPlan: %v", err)
			}
			return
		}
		checkPlan(t, p)
	})
}
