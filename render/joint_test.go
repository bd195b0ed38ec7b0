package render_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

// TestJointWindows runs every window's video job and audio window of a call
// (a late joiner, a clock 3 s off and 2000 ppm fast, a camera turning
// portrait) in one FFmpeg process, and each alone, in 2-s windows, for one
// encoding, for HLS's renditions, and with edits (a background image, a
// logo, captions, layout changes, a cut): every file the joint commands write is
// byte for byte the file the two commands write apart, so that a window
// drawn jointly is the window the keys name (reuse.go).
func TestJointWindows(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	dir := t.TempDir()
	ss := makeSession(t, filepath.Join(dir, "session"), threeParts(6*time.Second))
	plan, err := render.LoadPlan(ss.Dir, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// And the same call edited: a background image, a logo, captions burnt
	// in, layout changes and a cut (all in the video's graph).
	ffrun(t, "-f", "lavfi", "-i", "color=c=0xFF0000:s=320x180", "-frames:v", "1", filepath.Join(dir, "bg.png"))
	ffrun(t, "-f", "lavfi", "-i", "color=c=0x0000FF:s=100x100,format=rgba", "-frames:v", "1", filepath.Join(dir, "logo.png"))
	edits := parseEdits(t, `
background: {color: "#00ff00", image: `+filepath.Join(dir, "bg.png")+`}
layouts:
  - {at: 0, type: grid}
  - {at: 2, type: speaker}
  - {at: 3, type: pip, main: alice, inset: carol, corner: top-right, size: 0.25, fit: cover}
cuts:
  - {start: 2.5, end: 2.8}
overlays:
  - {image: `+filepath.Join(dir, "logo.png")+`, position: bottom-left, x: 0, y: 0, width: 64, start: 0}
captions:
  cues:
    - {start: 0.2, end: 4.5, text: "Hello"}
`)
	edited, err := render.LoadPlan(ss.Dir, render.Options{Edits: edits})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		plan     *timeline.Plan
		profiles []string
	}{
		{render.ProfileMP4_360, plan, []string{render.ProfileMP4_360}},
		{render.ProfileHLS, plan, []string{render.ProfileHLS}},
		{"edited", edited, []string{render.ProfileMP4_360}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, profiles := tc.plan, tc.profiles
			joint, apart := filepath.Join(dir, tc.name, "joint"), filepath.Join(dir, tc.name, "apart")
			for _, d := range []string{joint, apart} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			files, joints, err := render.JointOutputs(context.Background(), plan, ss.Dir, profiles, 2*time.Second, joint, apart)
			if err != nil {
				t.Fatal(err)
			}
			if joints < 3 {
				t.Fatalf("%d joint windows, want at least 3 (a 6-s call in 2-s windows)", joints)
			}
			var video, audio int
			for _, f := range files {
				a, err := os.ReadFile(filepath.Join(joint, f))
				if err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(filepath.Join(apart, f))
				if err != nil {
					t.Fatal(err)
				}
				if len(a) == 0 || !bytes.Equal(a, b) {
					t.Errorf("%s: %d bytes drawn jointly, %d apart: not the same file", f, len(a), len(b))
				}
				if filepath.Ext(f) == ".wav" {
					audio++
				} else {
					video++
				}
			}
			if audio != joints || video < joints {
				t.Errorf("%d joint windows wrote %d video and %d audio files", joints, video, audio)
			}
			t.Logf("%d windows: %d video and %d audio files identical drawn jointly and apart", joints, video, audio)
		})
	}
}

// TestPrerenderJoint renders a session ahead, in 2-s windows, as the render
// during a call does, in two looks: each window's video and mix are drawn by
// one FFmpeg process, the windows of the first look are not drawn again in
// the second, and the render after it takes every window.
func TestPrerenderJoint(t *testing.T) {
	t.Parallel()
	ffmpeg, _ := requireFFmpeg(t)
	dir := t.TempDir()
	ss := makeSession(t, filepath.Join(dir, "session"), threeParts(6*time.Second))
	wrapper, counted := countingFFmpeg(t, ffmpeg, dir)
	plan, err := render.LoadPlan(ss.Dir, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts := render.Options{Profiles: []string{render.ProfileMP4_360}, Log: testLogger(t), MaxJobDuration: 2 * time.Second,
		FFmpeg: wrapper, Reuse: filepath.Join(dir, "reuse")}
	ctx := context.Background()
	res, err := render.Prerender(ctx, plan, ss.Dir, opts, 0, 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	first := counted()
	if got, want := len(res.Rendered), 2; got != want {
		t.Fatalf("first look rendered windows %v, want the 2 that end by 4 s", res.Rendered)
	}
	if first.joint != 2 || first.video != 2 || first.audio != 2 {
		t.Errorf("first look: %d video windows and %d mixes, %d drawn jointly; want 2, 2 and 2", first.video, first.audio, first.joint)
	}
	res, err = render.Prerender(ctx, plan, ss.Dir, opts, 0, plan.Duration)
	if err != nil {
		t.Fatal(err)
	}
	second := counted()
	if len(res.Rendered) != res.Windows-2 || second.joint != res.Windows-2 || second.video != second.joint || second.audio != second.joint {
		t.Errorf("second look: rendered %v of %d windows, %d video windows and %d mixes, %d drawn jointly; want the last %d, each drawn jointly",
			res.Rendered, res.Windows, second.video, second.audio, second.joint, res.Windows-2)
	}
	opts.OutDir = filepath.Join(dir, "out")
	if _, err := render.Render(ctx, plan, ss.Dir, opts); err != nil {
		t.Fatal(err)
	}
	if after := counted(); after.video+after.audio+after.aac != 0 {
		t.Errorf("render after the looks drew %d video windows, %d mixes and %d encoded audio windows, want none", after.video, after.audio, after.aac)
	}
	t.Logf("%d windows, each drawn by one process during the looks (%d + %d); none drawn after", res.Windows, first.joint, second.joint)
}
