package interchange

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/tapedeck/tapedeck/timeline"
)

func TestValidate(t *testing.T) {
	for _, fx := range fixtures(t) {
		if err := fx.p.Validate(); err != nil {
			t.Errorf("%s: %v", fx.name, err)
		}
	}
	cases := []struct {
		name   string
		change func(p *Project)
		want   string
	}{
		{"no name", func(p *Project) { p.Name = " " }, "name is empty"},
		{"a frame rate FCP7 XML lacks", func(p *Project) { p.FPS = timeline.Rational{Num: 25, Den: 2} }, "want a whole rate"},
		{"no frame rate", func(p *Project) { p.FPS = timeline.Rational{} }, "frame rate 0/0"},
		{"an empty session", func(p *Project) { p.Frames = 0 }, "session length 0 frames"},
		{"a sample rate FCPXML cannot name", func(p *Project) { p.SampleRate = 22050 }, "sample rate 22050"},
		{"half a size", func(p *Project) { p.Width = 0 }, "size 0x720"},
		{"no tracks", func(p *Project) { p.Tracks = nil }, "no tracks"},
		{"a duplicate participant", func(p *Project) { p.Tracks[1].Participant = "alice" }, `participant "alice" listed twice`},
		{"an empty participant", func(p *Project) { p.Tracks[0].Participant = "" }, "empty participant ID"},
		{"no stems", func(p *Project) { p.Tracks[0].Video, p.Tracks[0].Audio = nil, nil }, "no video and no audio stem"},
		{"a short video stem", func(p *Project) { p.Tracks[0].Video.Frames-- }, "every stem lasts the session"},
		{"a long audio stem", func(p *Project) { p.Tracks[1].Audio.Frames++ }, "every stem lasts the session"},
		{"an audio stem of the wrong samples", func(p *Project) { p.Tracks[1].Audio.Samples -= 2000 }, "samples for"},
		{"an absolute path", func(p *Project) { p.Tracks[0].Video.Path = "/srv/export/alice.mp4" }, "stays inside it"},
		{"an upward path", func(p *Project) { p.Tracks[0].Audio.Path = "../alice.wav" }, "stays inside it"},
		{"a dot path", func(p *Project) { p.Tracks[0].Audio.Path = "./alice.wav" }, "stays inside it"},
		{"a Windows path", func(p *Project) { p.Tracks[0].Audio.Path = `stems\alice.wav` }, "no backslash"},
		{"a drive", func(p *Project) { p.Tracks[0].Audio.Path = "C:/alice.wav" }, "no backslash, drive or scheme"},
		{"a URL", func(p *Project) { p.Tracks[0].Audio.Path = "file:///alice.wav" }, "no backslash, drive or scheme"},
		{"two stems in one file", func(p *Project) { p.Tracks[1].Audio.Path = "alice.wav" }, `path "alice.wav" is also`},
		{"a video stem without size", func(p *Project) { p.Tracks[0].Video.Width = 0 }, "a video file needs one"},
		{"three channels", func(p *Project) { p.Tracks[0].Audio.Channels = 3 }, "3 audio channels"},
		{"an empty kept range", func(p *Project) { p.Edit = []Range{{Start: 10, Frames: 0}} }, "edit[0]"},
		{"a kept range past the end", func(p *Project) { p.Edit = []Range{{Start: 500, Frames: 101}} }, "inside the session's 600 frames"},
		{"kept ranges out of order", func(p *Project) { p.Edit = []Range{{Start: 300, Frames: 10}, {Start: 100, Frames: 10}} }, "ascending order"},
		{"overlapping kept ranges", func(p *Project) { p.Edit = []Range{{Start: 100, Frames: 50}, {Start: 120, Frames: 10}} }, "ascending order without overlaps"},
		{"a gain too loud", func(p *Project) { p.Tracks[0].Gains = []Gain{{Range: Range{0, 10}, DB: 13}} }, "the formats hold -96 to +12 dB"},
		{"a gain not a number", func(p *Project) { p.Tracks[0].Gains = []Gain{{Range: Range{0, 10}, DB: math.NaN()}} }, "the formats hold"},
		{"a gain outside the session", func(p *Project) { p.Tracks[0].Gains = []Gain{{Range: Range{595, 10}, DB: -3}} }, "inside the session"},
		{"overlapping gains", func(p *Project) {
			p.Tracks[0].Gains = []Gain{{Range: Range{0, 10}, DB: -3}, {Range: Range{5, 10}, Mute: true}}
		}, "overlaps gains[0]"},
		{"gains without audio", func(p *Project) {
			p.Tracks[0].Audio, p.Tracks[0].Video.Audio = nil, false
			p.Tracks[0].Gains = []Gain{{Range: Range{0, 10}, Mute: true}}
		}, "gains but no audio"},
		{"a marker of no kind", func(p *Project) { p.Markers = []Marker{{Frame: 1, Kind: "speaker", Name: "x"}} }, `kind "speaker"`},
		{"a marker without a name", func(p *Project) { p.Markers = []Marker{{Frame: 1, Kind: MarkerJoin}} }, "empty name"},
		{"a marker past the end", func(p *Project) { p.Markers = []Marker{{Frame: 590, Duration: 20, Kind: MarkerLoss, Name: "x"}} }, "inside the session"},
		{"a reference without size", func(p *Project) { p.Reference = &Stem{Path: "composite.mp4", Frames: 10} }, "reference"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := plainProject(t)
			c.change(p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalidProject) {
				t.Fatalf("Validate: %v, want ErrInvalidProject containing %q", err, c.want)
			}
			for _, w := range formats() {
				if werr := w.write(&strings.Builder{}, p); werr == nil || !errors.Is(werr, ErrInvalidProject) {
					t.Errorf("%s writer: %v, want the validation error", w.ext, werr)
				}
			}
		})
	}
	var nilProject *Project
	if err := nilProject.Validate(); err == nil {
		t.Error("a nil project validates")
	}
}

// TestAudioOnly: a project without video stems (--video none) needs no
// size; the timelines use 1280x720 for their format.
func TestAudioOnly(t *testing.T) {
	p := plainProject(t)
	p.Width, p.Height = 0, 0
	for i := range p.Tracks {
		p.Tracks[i].Video = nil
	}
	for _, w := range formats() {
		got := write(t, w.write, p)
		pt, err := parsers()[w.ext](got, p)
		if err != nil {
			t.Fatalf("%s: %v", w.ext, err)
		}
		if err := checkStructure(p, pt); err != nil {
			t.Errorf("%s: %v", w.ext, err)
		}
	}
	if err := checkFCPXMLDTD(write(t, WriteFCPXML, p)); err != nil {
		t.Error(err)
	}
}
