package render_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

// rgbAt decodes the frame at time at (s) and returns the mean colour of the
// w×h block at (x, y).
func rgbAt(t *testing.T, path string, at float64, x, y, w, h int) [3]float64 {
	t.Helper()
	ff, _ := requireFFmpeg(t)
	out, err := exec.Command(ff, "-v", "error", "-ss", strconv.FormatFloat(at, 'f', 3, 64), "-i", path, "-frames:v", "1",
		"-vf", fmt.Sprintf("crop=%d:%d:%d:%d,format=rgb24", w, h, x, y), "-f", "rawvideo", "-").Output()
	if err != nil || len(out) < 3*w*h {
		t.Fatalf("decode %s at %.3f: %v (%d bytes)", path, at, err, len(out))
	}
	var sum [3]float64
	for i := 0; i < w*h; i++ {
		for c := 0; c < 3; c++ {
			sum[c] += float64(out[3*i+c])
		}
	}
	for c := range sum {
		sum[c] /= float64(w * h)
	}
	return sum
}

func near(c, want [3]float64, tol float64) bool {
	for i := range c {
		if math.Abs(c[i]-want[i]) > tol {
			return false
		}
	}
	return true
}

// TestEdits renders a call with an edit file that uses everything a plan can
// ask of the renderer — layouts changing from grid to speaker, pip and
// single, a hidden lane (placeholder), a cut, a background image, a logo
// overlay, names, labels, burned-in captions — and checks the output and
// what is drawn where.
func TestEdits(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	dir := t.TempDir()
	ss := makeSession(t, filepath.Join(dir, "session"), []synthPart{
		{ID: "alice", Video: "vp8", Audio: true, W: 640, H: 360, Length: 5 * time.Second},
		{ID: "bob", Video: "h264", Audio: true, W: 320, H: 240, Join: 200 * time.Millisecond, Length: 4800 * time.Millisecond},
	})
	ffrun(t, "-f", "lavfi", "-i", "color=c=0xFF0000:s=320x180", "-frames:v", "1", filepath.Join(dir, "bg.png"))
	ffrun(t, "-f", "lavfi", "-i", "color=c=0x0000FF:s=100x100,format=rgba", "-frames:v", "1", filepath.Join(dir, "logo.png"))
	edits := `
background: {color: "#00ff00", image: bg.png}
lanes:
  alice: {name: "Alice Liddell", label: "Alice (host)"}
  alice/video: {hide: [{start: 0.5, end: 1.5}]}
layouts:
  - {at: 0, type: grid}
  - {at: 2, type: speaker}
  - {at: 3, type: pip, main: alice, inset: bob, corner: top-right, size: 0.25, fit: cover}
  - {at: 4, type: single, lane: bob}
cuts:
  - {start: 2.5, end: 2.8}
overlays:
  - {image: logo.png, position: bottom-left, x: 0, y: 0, width: 64, start: 0}
captions:
  cues:
    - {start: 0.2, end: 4.5, text: "Hello, [world]; it's: 'quoted' {x}"}
`
	path := filepath.Join(dir, "edits.yaml")
	if err := writeFile(path, edits); err != nil {
		t.Fatal(err)
	}
	e, err := timeline.LoadEdits(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := render.Options{Profiles: []string{render.ProfileMP4_360}, Edits: e, OutDir: filepath.Join(dir, "out"), Log: testLogger(t)}
	plan, err := render.LoadPlan(ss.Dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := plan.Duration, plan.RecordingDuration-300*time.Millisecond; got != want {
		t.Errorf("plan lasts %v, want %v (the cut removes 300 ms)", got, want)
	}
	outs, err := render.Render(context.Background(), plan, ss.Dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	out := outs[0].Path
	checkVideo(t, out, plan.FPS, plan.Duration)
	checkSeek(t, out, plan.FPS, 3)

	// At 1 s alice's video is hidden: her tile is a placeholder (dark grey).
	iv := plan.Intervals[plan.IntervalAt(time.Second)]
	var aliceTile timeline.Rect
	for _, tl := range iv.Tiles {
		if tl.Participant == "alice" {
			aliceTile = tl.Rect
			if tl.Placeholder != timeline.PlaceholderHidden {
				t.Fatalf("at 1 s alice's tile is %q, want hidden", tl.Placeholder)
			}
		}
	}
	r := aliceTile
	if c := rgbAt(t, out, 1.0, r.X+4, r.Y+4, 16, 16); !near(c, [3]float64{0x2E, 0x31, 0x38}, 20) {
		t.Errorf("alice's placeholder corner at 1 s is %v, want the placeholder grey", c)
	}
	// The background image (red) shows where no tile is: the top-left
	// corner of a 2-tile grid of 16:9 tiles in a 16:9 frame.
	if c := rgbAt(t, out, 1.0, 70, 2, 16, 8); !near(c, [3]float64{255, 0, 0}, 40) {
		t.Errorf("background at 1 s is %v, want the red image", c)
	}
	// The logo (blue, 64 px) in the bottom-left corner, all along.
	for _, at := range []float64{0.1, 2.2, 4.0} {
		if c := rgbAt(t, out, at, 8, 360-56, 48, 48); !near(c, [3]float64{0, 0, 255}, 40) {
			t.Errorf("logo at %.1f s is %v, want blue", at, c)
		}
	}
	// The caption is burned in: the bottom centre changes when it shows.
	with, without := rgbAt(t, out, 1.0, 200, 300, 240, 40), rgbAt(t, out, 4.6, 200, 300, 240, 40)
	if near(with, without, 3) {
		t.Errorf("the caption area looks the same with (%v) and without (%v) the caption", with, without)
	}
}

// TestAudioOnly renders a session without video: the video profile gives
// way to an M4A whose loudness is the target.
func TestAudioOnly(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	ss := makeSession(t, t.TempDir(), []synthPart{
		{ID: "alice", Audio: true, Length: 4 * time.Second},
		{ID: "bob", Audio: true, Join: time.Second, Length: 2 * time.Second},
	})
	out := t.TempDir()
	outs, err := render.Session(context.Background(), ss.Dir, render.Options{OutDir: out, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || outs[0].Profile != render.ProfileAudio {
		t.Fatalf("outputs %+v, want one audio output", outs)
	}
	m4a := outs[0].Path
	if got := probeValue(t, m4a, "a:0", "stream=codec_name"); got != "aac" {
		t.Errorf("%s: codec %s, want aac", m4a, got)
	}
	if got := probeValue(t, m4a, "v", "stream=codec_name"); got != "" {
		t.Errorf("%s has a video stream (%s)", m4a, got)
	}
	atoms := topAtoms(t, m4a)
	if m, d := indexOf(atoms, "moov"), indexOf(atoms, "mdat"); m < 0 || d < 0 || m > d {
		t.Errorf("%s: boxes %v: want moov before mdat", m4a, atoms)
	}
	if got, want := probeFloat(t, m4a, "", "format=duration"), outs[0].Duration.Seconds(); math.Abs(got-want) > 0.05 {
		t.Errorf("%s lasts %.3f s, want %.3f", m4a, got, want)
	}
	if got := loudness(t, m4a); math.Abs(got-render.DefaultLoudness) > 1 {
		t.Errorf("%s: integrated loudness %.1f LUFS, want %.1f ± 1", m4a, got, render.DefaultLoudness)
	}
}

// loudness measures a file's integrated loudness (LUFS) with ebur128.
func loudness(t *testing.T, path string) float64 {
	t.Helper()
	ff, _ := requireFFmpeg(t)
	cmd := exec.Command(ff, "-hide_banner", "-nostats", "-i", path, "-af", "ebur128", "-f", "null", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ebur128 %s: %v", path, err)
	}
	s := stderr.String()
	i := strings.LastIndex(s, "Integrated loudness:")
	m := regexp.MustCompile(`I:\s+(-?[0-9.]+) LUFS`).FindStringSubmatch(s[max(i, 0):])
	if i < 0 || m == nil {
		t.Fatalf("no loudness in ebur128's output:\n%s", s)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}
