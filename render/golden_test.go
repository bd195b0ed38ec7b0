package render_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// featurePlan exercises what a plan can ask: a placeholder that turns into
// video within a scene, an interval shorter than a frame, a clock-skewed
// source, a layout change with a cover-fitted tile, a background image, an
// overlay and captions.
func featurePlan() *timeline.Plan {
	src := func(path string, fs, speed float64) *timeline.Source {
		return &timeline.Source{Track: "t", Path: path, FileStart: fs, FileEnd: fs + 5, Speed: speed, Width: 640, Height: 360}
	}
	s := time.Second
	ms := time.Millisecond
	alice := func(r timeline.Rect, fit string, src *timeline.Source) timeline.Tile {
		return timeline.Tile{Participant: "alice", Lane: "alice/video", Rect: r, Fit: fit, Name: "Alice", Label: "Alice L.", Source: src}
	}
	bob := func(r timeline.Rect, z int, src *timeline.Source) timeline.Tile {
		t := timeline.Tile{Participant: "bob", Lane: "bob/video", Rect: r, Z: z, Fit: timeline.FitContain, Name: "Bob: the guest", Source: src}
		if src == nil {
			t.Placeholder = timeline.PlaceholderAbsent
		}
		return t
	}
	left, right := timeline.Rect{X: 0, Y: 90, W: 320, H: 180}, timeline.Rect{X: 320, Y: 90, W: 320, H: 180}
	full, inset := timeline.Rect{W: 640, H: 360}, timeline.Rect{X: 464, Y: 16, W: 160, H: 90}
	aAudio := func(fs float64) timeline.AudioSource {
		return timeline.AudioSource{Participant: "alice", Lane: "alice/audio", Source: timeline.Source{Path: "tracks/alice/audio-t2-000.webm", FileStart: fs, FileEnd: fs + 1, Speed: 1}}
	}
	bAudio := func(fs float64) timeline.AudioSource {
		return timeline.AudioSource{Participant: "bob", Lane: "bob/audio", GainDB: -3,
			Source: timeline.Source{Path: "tracks/bob/audio-t4-000.webm", FileStart: fs, FileEnd: fs + 1, Speed: 1.0002}}
	}
	return &timeline.Plan{
		Width: 640, Height: 360, FPS: timeline.Rational{Num: 30, Den: 1}, Duration: 4 * s, RecordingDuration: 4 * s,
		Background: timeline.PlanBackground{Color: "#102030", Image: "/media/bg.png"},
		Intervals: []timeline.Interval{
			{Start: 0, End: s, RecEnd: s, Layout: timeline.LayoutGrid,
				Tiles: []timeline.Tile{alice(left, timeline.FitContain, src("tracks/alice/video-t1-000.webm", 0, 1)), bob(right, 0, nil)},
				Audio: []timeline.AudioSource{aAudio(0)}},
			{Start: s, End: s + 10*ms, RecStart: s, RecEnd: s + 10*ms, Layout: timeline.LayoutGrid,
				Tiles: []timeline.Tile{alice(left, timeline.FitContain, src("tracks/alice/video-t1-000.webm", 1, 1)), bob(right, 0, nil)},
				Audio: []timeline.AudioSource{aAudio(1)}},
			{Start: s + 10*ms, End: 2500 * ms, RecStart: s + 10*ms, RecEnd: 2500 * ms, Layout: timeline.LayoutGrid,
				Tiles: []timeline.Tile{alice(left, timeline.FitContain, src("tracks/alice/video-t1-000.webm", 1.01, 1)),
					bob(right, 0, src("tracks/bob/video-t3-000.mkv", -0.0004, 1.0002))},
				Audio: []timeline.AudioSource{aAudio(1.01), bAudio(0)}},
			{Start: 2500 * ms, End: 4 * s, RecStart: 2500 * ms, RecEnd: 4 * s, Layout: timeline.LayoutPiP,
				Tiles: []timeline.Tile{alice(full, timeline.FitCover, src("tracks/alice/video-t1-000.webm", 2.5, 1)),
					bob(inset, 1, src("tracks/bob/video-t3-000.mkv", 1.4902, 1.0002))},
				Audio: []timeline.AudioSource{aAudio(2.5), bAudio(1.4902)}},
		},
		Overlays: []timeline.PlacedOverlay{{Image: "/media/logo.png", Anchor: timeline.AnchorTopRight, X: 10, Y: 10, Width: 64, Opacity: 0.8,
			Start: 500 * ms, End: 3500 * ms}},
		Captions: []timeline.Cue{{Start: 200 * ms, End: 1800 * ms, Text: "Hello {there}\nsecond line"}, {Start: 3 * s, End: 3900 * ms, Text: `back\slash`}},
	}
}

// goldenText writes a program's commands for people to read.
func goldenText(p *render.Program, l render.Loudness) string {
	var b strings.Builder
	cmds := append([]render.Command{}, p.AudioWindows...)
	if len(p.AudioWindows) == 0 {
		cmds = append(cmds, p.Audio)
	}
	cmds = append(append(cmds, p.Video...), p.AudioEncodes(l)...)
	cmds = append(cmds, p.Mux()...)
	// Without the encode and the join, when the mux may encode the AAC.
	cmds = append(cmds, p.MuxEncodingAAC(l)...)
	for _, c := range cmds {
		b.WriteString("=== " + c.Name + " (" + c.Duration.String() + ")\n")
		if len(c.Args) == 0 {
			b.WriteString("(no FFmpeg: Go work only)\n")
		} else {
			b.WriteString(strings.Join(c.Args, "\n") + "\n")
		}
		b.WriteString("--- outputs: " + strings.Join(c.Outputs, " ") + "\n")
		names := make([]string, 0, len(c.Files))
		for n := range c.Files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			b.WriteString("--- file " + n + "\n" + c.Files[n] + "\n")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./render -run Golden -update to create it)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs from %s at line %d:\n got: %s\nwant: %s\n(run go test ./render -run Golden -update if the change is intended)", name, path, i+1, g, w)
			}
		}
	}
}

func mustProfiles(t *testing.T, names ...string) []render.Profile {
	t.Helper()
	var out []render.Profile
	for _, n := range names {
		p, err := render.ParseProfile(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// TestGolden pins the translation of plans into FFmpeg commands.
func TestGolden(t *testing.T) {
	measured := render.Loudness{I: -23.5, Peak: -3.2, LRA: 5, Measured: true}
	demo := func(t *testing.T) *timeline.Plan {
		b, err := os.ReadFile(filepath.Join("testdata", "plan-demo.json"))
		if err != nil {
			t.Fatal(err)
		}
		var p timeline.Plan
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		return &p
	}
	audioOnly := func(*testing.T) *timeline.Plan {
		p := featurePlan()
		for i := range p.Intervals {
			for j := range p.Intervals[i].Tiles {
				p.Intervals[i].Tiles[j].Lane, p.Intervals[i].Tiles[j].Source = "", nil
				p.Intervals[i].Tiles[j].Placeholder = timeline.PlaceholderAbsent
			}
		}
		return p
	}
	for _, c := range []struct {
		name     string
		plan     func(*testing.T) *timeline.Plan
		settings render.Settings
		loud     render.Loudness
	}{
		{"features", func(*testing.T) *timeline.Plan { return featurePlan() },
			render.Settings{SessionDir: "/session", Profiles: mustProfiles(t, "mp4-360p", "audio"), FontFile: "/fonts/Sans, Bold:1.ttf"}, measured},
		{"features-track-jobs", func(*testing.T) *timeline.Plan { return featurePlan() },
			render.Settings{SessionDir: "/session", Profiles: mustProfiles(t, "webm-720p", "mp4-360p"), Captions: render.CaptionsTrack,
				LoudnessOff: true, MaxJobFrames: 45, AudioWindows: true}, render.Loudness{}},
		{"demo", demo, render.Settings{SessionDir: "/session", Profiles: mustProfiles(t, "mp4-720p", "hls"), FontFile: "/fonts/DejaVuSans.ttf",
			MaxJobFrames: 1800, AudioWindows: true},
			render.Loudness{I: -12, Peak: -0.5, LRA: 3, Measured: true}},
		// One encoded audio window, one profile with AAC: the mux may
		// encode it.
		{"features-mux-aac", func(*testing.T) *timeline.Plan { return featurePlan() },
			render.Settings{SessionDir: "/session", Profiles: mustProfiles(t, "mp4-360p"), AudioWindows: true}, measured},
		{"audio-only", audioOnly, render.Settings{SessionDir: "/session", Profiles: mustProfiles(t, "mp4-720p")}, measured},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := render.Compile(c.plan(t), c.settings)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, c.name, goldenText(p, c.loud))
		})
	}
}
