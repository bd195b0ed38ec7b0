package render_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/internal/marks"
	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

// threeParts is a synthetic call: alice from the start (200 ms of her audio
// lost after 1.2 s), bob (H.264, 4:3,
// his wall clock 3 s off and his RTP clocks 2000 ppm fast) from 0.3 s,
// carol from 0.6 s whose camera turns portrait after 2 s.
func threeParts(length time.Duration) []synthPart {
	return []synthPart{
		{ID: "alice", Video: "vp8", Audio: true, W: 640, H: 360, Length: length, Marks: true, AudioGap: [2]int{60, 70}},
		{ID: "bob", Video: "h264", Audio: true, W: 320, H: 240, Join: 300 * time.Millisecond, Length: length - 800*time.Millisecond,
			Offset: 3 * time.Second, Skew: 0.002, Marks: true},
		{ID: "carol", Video: "vp8", Audio: true, W: 640, H: 360, Join: 600 * time.Millisecond, Length: length - 1600*time.Millisecond,
			PortraitAt: 2 * time.Second, Marks: true},
	}
}

// fixedLayout puts each participant in its own 320×180 tile of a 640×360
// output, without labels, so that its flashes can be measured there.
const fixedLayout = `
labels: false
layouts:
  - type: custom
    regions:
      - {x: 0, y: 0, width: 320, height: 180, lanes: [alice]}
      - {x: 320, y: 0, width: 320, height: 180, lanes: [bob]}
      - {x: 0, y: 180, width: 320, height: 180, lanes: [carol]}
`

func parseEdits(t *testing.T, text string) *timeline.Edits {
	t.Helper()
	e, err := timeline.ParseEdits("test.yaml", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestSyntheticPlacement renders a synthetic call whose truth is known and
// measures, in the MP4, where every flash and tone burst plays: a flash must
// be on the output frame nearest to its instant (within half a frame and
// the placement grid's 1/32 frame), a
// tone within 2 ms, for every participant — bob's clock skew included.
func TestSyntheticPlacement(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	ss := makeSession(t, t.TempDir(), threeParts(5*time.Second+50*time.Millisecond)) // 151 frames: not a whole number of milliseconds
	// Captions as a subtitle track leave the picture alone.
	edits := fixedLayout + "captions:\n  cues:\n    - {start: 0.5, end: 2, text: \"Hello\"}\n"
	opts := render.Options{Profiles: []string{render.ProfileMP4_360}, Edits: parseEdits(t, edits), OutDir: t.TempDir(),
		Log: testLogger(t), LoudnessOff: true, Captions: render.CaptionsTrack}
	plan, err := render.LoadPlan(ss.Dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := render.Render(context.Background(), plan, ss.Dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	path := outs[0].Path
	checkVideo(t, path, plan.FPS, plan.Duration)
	// The audio starts with the AAC's priming before 0 and ends where the
	// video does, to the sample.
	nv := math.Round(plan.Duration.Seconds() * plan.FPS.Float())
	if first, end := audioSpan(t, path); first != -1024 || end != int64(nv*48000*float64(plan.FPS.Den)/float64(plan.FPS.Num)) {
		t.Errorf("the audio's packets span [%d, %d) samples, want [-1024, %.0f): %.0f frames of video", first, end,
			nv*48000*float64(plan.FPS.Den)/float64(plan.FPS.Num), nv)
	}
	if got, want := probeValue(t, path, "s:0", "stream=codec_name"), "mov_text"; got != want {
		t.Errorf("subtitle track %q, want %q", got, want)
	}
	frames := gray(t, path, 64, 36)
	rects := map[string]timeline.Rect{"alice": {X: 0, Y: 0, W: 320, H: 180}, "bob": {X: 320, Y: 0, W: 320, H: 180}, "carol": {X: 0, Y: 180, W: 320, H: 180}}
	pcm, err := marks.PCM(path)
	if err != nil {
		t.Fatal(err)
	}
	tones := marks.Tones(pcm, 0.15)
	half := 0.5 / plan.FPS.Float()
	for _, who := range []string{"alice", "bob", "carol"} {
		got := flashesIn(frames, 64, 10, rects[who], plan.FPS)
		var verr, aerr []float64
		for _, want := range ss.Flashes[who] {
			if at, d := nearest(got, want); d < 0.1 {
				verr = append(verr, at-want)
			}
		}
		for _, want := range ss.Tones[who] {
			if at, d := nearest(tones, want); d < 0.1 {
				aerr = append(aerr, at-want)
			}
		}
		vs, as := marks.Summarize(verr), marks.Summarize(aerr)
		t.Logf("%-5s flashes vs truth (ms): %s of %d; tones vs truth (ms): %s of %d", who, scaled(vs), len(ss.Flashes[who]), scaled(as), len(ss.Tones[who]))
		if len(verr) < len(ss.Flashes[who])-1 || len(ss.Flashes[who]) < 3 {
			t.Errorf("%s: found %d of %d flashes in its tile", who, len(verr), len(ss.Flashes[who]))
		}
		if len(aerr) < len(ss.Tones[who])-1 || len(ss.Tones[who]) < 3 {
			t.Errorf("%s: found %d of %d tones in the mix", who, len(aerr), len(ss.Tones[who]))
		}
		// Half a frame, and 1/32 of one: video is placed on a grid of 1/16
		// of a frame.
		if vs.Max > half*(1+1.0/16)+0.0015 {
			t.Errorf("%s: a flash is %s from its instant, more than half a frame (%s) and the placement grid's half step: %v", who, ms(vs.Max), ms(half), verr)
		}
		if as.Max > 0.002 {
			t.Errorf("%s: a tone is %s from its instant (want within 2 ms): %v", who, ms(as.Max), aerr)
		}
	}
}

// scaled formats stats of seconds in milliseconds.
func scaled(s marks.Stats) string {
	return marks.Stats{N: s.N, P50: s.P50 * 1000, P95: s.P95 * 1000, Max: s.Max * 1000}.String()
}

// TestProfiles renders four profiles in one run (sharing one composite) from
// a call with joins, a portrait turn and a skewed clock, and checks every
// output with ffprobe: MP4 with moov before mdat, H.264 High yuv420p and
// AAC-LC 48 kHz stereo, constant frame rate, keyframes every 2 s at most,
// the plan's length to a frame, frames found again by seeking; WebM with VP9
// and Opus; HLS with two renditions and a master playlist; an M4A.
func TestProfiles(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	ss := makeSession(t, t.TempDir(), threeParts(4*time.Second))
	out := t.TempDir()
	var bar strings.Builder
	opts := render.Options{Profiles: []string{render.ProfileMP4_360, render.ProfileWebM720, render.ProfileHLS, render.ProfileAudio},
		OutDir: out, Log: testLogger(t), Progress: &bar, Nice: 5}
	plan, err := render.LoadPlan(ss.Dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := plan.Width, 1280; got != want {
		t.Errorf("composite width %d, want %d (the largest profile)", got, want)
	}
	outs, err := render.Render(context.Background(), plan, ss.Dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(outs), 4; got != want {
		t.Fatalf("%d outputs, want %d", got, want)
	}
	byProfile := map[string]render.Output{}
	for _, o := range outs {
		byProfile[o.Profile] = o
		if got, want := o.Path, filepath.Join(out, filepath.FromSlash(render.OutputName(o.Profile))); got != want {
			t.Errorf("%s: path %s, want %s", o.Profile, got, want)
		}
	}
	if !strings.Contains(bar.String(), "100% done") {
		t.Errorf("progress never reached 100%%: %q", bar.String())
	}

	mp4 := byProfile[render.ProfileMP4_360].Path
	atoms := topAtoms(t, mp4)
	if m, d := indexOf(atoms, "moov"), indexOf(atoms, "mdat"); m < 0 || d < 0 || m > d {
		t.Errorf("%s: boxes %v: want moov before mdat", mp4, atoms)
	}
	for _, c := range []struct{ stream, entry, want string }{
		{"v:0", "stream=codec_name", "h264"}, {"v:0", "stream=profile", "High"}, {"v:0", "stream=pix_fmt", "yuv420p"},
		{"v:0", "stream=width", "640"}, {"v:0", "stream=height", "360"},
		{"a:0", "stream=codec_name", "aac"}, {"a:0", "stream=profile", "LC"}, {"a:0", "stream=sample_rate", "48000"}, {"a:0", "stream=channels", "2"},
	} {
		if got := probeValue(t, mp4, c.stream, c.entry); got != c.want {
			t.Errorf("%s: %s %s = %q, want %q", mp4, c.stream, c.entry, got, c.want)
		}
	}
	checkVideo(t, mp4, plan.FPS, plan.Duration)
	checkSeek(t, mp4, plan.FPS, 6)

	webm := byProfile[render.ProfileWebM720].Path
	for _, c := range []struct{ stream, entry, want string }{
		{"v:0", "stream=codec_name", "vp9"}, {"v:0", "stream=width", "1280"}, {"a:0", "stream=codec_name", "opus"},
	} {
		if got := probeValue(t, webm, c.stream, c.entry); got != c.want {
			t.Errorf("%s: %s %s = %q, want %q", webm, c.stream, c.entry, got, c.want)
		}
	}
	checkVideo(t, webm, plan.FPS, plan.Duration)

	hls := byProfile[render.ProfileHLS]
	master, err := os.ReadFile(hls.Path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(master), "#EXT-X-STREAM-INF"); got != 2 {
		t.Errorf("master playlist has %d renditions, want 2:\n%s", got, master)
	}
	for _, want := range []string{"RESOLUTION=1280x720", "RESOLUTION=640x360", "BANDWIDTH="} {
		if !strings.Contains(string(master), want) {
			t.Errorf("master playlist lacks %s:\n%s", want, master)
		}
	}
	for _, v := range []string{"720p", "360p"} {
		pl := filepath.Join(filepath.Dir(hls.Path), v, "index.m3u8")
		if got := probeFloat(t, pl, "", "format=duration"); math.Abs(got-plan.Duration.Seconds()) > 0.1 {
			t.Errorf("%s lasts %.3f s, the plan %.3f s", pl, got, plan.Duration.Seconds())
		}
	}

	m4a := byProfile[render.ProfileAudio].Path
	atoms = topAtoms(t, m4a)
	if m, d := indexOf(atoms, "moov"), indexOf(atoms, "mdat"); m < 0 || d < 0 || m > d {
		t.Errorf("%s: boxes %v: want moov before mdat", m4a, atoms)
	}
	if got := probeValue(t, m4a, "a:0", "stream=codec_name"); got != "aac" {
		t.Errorf("%s: codec %s, want aac", m4a, got)
	}
	if got := probeFloat(t, m4a, "", "format=duration"); math.Abs(got-plan.Duration.Seconds()) > 0.05 {
		t.Errorf("%s lasts %.3f s, the plan %.3f s", m4a, got, plan.Duration.Seconds())
	}
	// No work folder is left behind.
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".render-") {
			t.Errorf("work folder %s left in the output folder", e.Name())
		}
	}
}

// TestLayoutOverride: --layout replaces the edits' layouts; single shows the
// chosen participant (the first to join by default).
func TestLayoutOverride(t *testing.T) {
	t.Parallel()
	ss := makeSession(t, t.TempDir(), []synthPart{
		{ID: "alice", Audio: true, Length: 2 * time.Second},
		{ID: "bob", Audio: true, Join: 500 * time.Millisecond, Length: time.Second},
	})
	for _, c := range []struct {
		layout timeline.LayoutType
		lane   string
		want   []string // participants shown in the last interval with bob
	}{
		{timeline.LayoutGrid, "", []string{"alice", "bob"}},
		{timeline.LayoutSingle, "", []string{"alice"}},
		{timeline.LayoutSingle, "bob", []string{"bob"}},
	} {
		edits := parseEdits(t, "layouts:\n  - {at: 0, type: speaker, strip: false}\n")
		plan, err := render.LoadPlan(ss.Dir, render.Options{Layout: c.layout, Lane: c.lane, Edits: edits})
		if err != nil {
			t.Fatalf("layout %s %s: %v", c.layout, c.lane, err)
		}
		iv := plan.Intervals[plan.IntervalAt(time.Second)]
		var got []string
		for _, tl := range iv.Tiles {
			got = append(got, tl.Participant)
		}
		if iv.Layout != c.layout || strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("layout %s %q: at 1 s %s with %v, want %s with %v", c.layout, c.lane, iv.Layout, got, c.layout, c.want)
		}
	}
	if _, err := render.LoadPlan(ss.Dir, render.Options{Layout: "mosaic"}); err == nil {
		t.Error("layout mosaic accepted")
	}
	if _, err := render.LoadPlan(ss.Dir, render.Options{Profiles: []string{"mp4-4k"}}); err == nil {
		t.Error("profile mp4-4k accepted")
	}
}
