package render_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

// TestStackMatchesOverlays renders the same calls' pictures with both
// compositors, the xstack of tiles and the chain of overlays, and requires
// the same pixels on every output frame: late joiners, a participant whose
// clocks are 3 s off and 2000 ppm fast (his pieces play at another speed),
// a 4:3 picture letterboxed in a 16:9 tile, a camera turning portrait
// mid-scene (the tile's size changes), participants leaving before the
// end, a one-tile scene scaled up, a speaker layout, tiles the stack cannot
// compose (cover) in the same job as scenes it composes, and tiles that
// cover the whole frame (no canvas under them): a custom layout's while
// everyone is in, the speaker's while one is alone; in the custom layout a
// picture of its tile's size (no scale or pad) and one that starts so and
// turns portrait.
// coveringLayout's tiles cover the whole 1280×720 output: alice and carol
// (both 640x360, in tiles of that size; carol turns portrait) side by side
// above, bob below across the frame.
const coveringLayout = `
labels: false
layouts:
  - type: custom
    regions:
      - {x: 0, y: 0, width: 640, height: 360, lanes: [alice]}
      - {x: 640, y: 0, width: 640, height: 360, lanes: [carol]}
      - {x: 0, y: 360, width: 1280, height: 360, lanes: [bob]}
`

func TestStackMatchesOverlays(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	ss := makeSession(t, t.TempDir(), threeParts(5*time.Second))
	for _, c := range []struct {
		name, edits string
		mixed       bool // some scenes not stackable
		covered     bool // in some scenes the tiles cover the frame
	}{
		{"grid", "", false, false},
		{"fixed", fixedLayout, false, false},
		{"speaker", "layouts:\n  - type: speaker\n", false, true},
		{"cover", strings.Replace(fixedLayout, "lanes: [bob]}", "lanes: [bob], fit: cover}", 1), true, false},
		{"covered", coveringLayout, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := render.Options{}
			if c.edits != "" {
				opts.Edits = parseEdits(t, c.edits)
			}
			plan, err := render.LoadPlan(ss.Dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			stack, over, comp, compOver := bothCompositors(t, plan, ss.Dir)
			scenes, nStack := comp.Scenes, comp.Stacked
			t.Logf("%d frames; %d of %d scenes stacked, %d on a canvas, %d tiles neither resized nor padded",
				len(stack), nStack, scenes, comp.Canvases, comp.Unpadded)
			if compOver.Stacked != 0 {
				t.Fatalf("the overlay compositor stacked %d scenes", compOver.Stacked)
			}
			if c.mixed && (nStack == 0 || nStack == scenes) || !c.mixed && nStack != scenes {
				t.Errorf("%d of %d scenes stacked", nStack, scenes)
			}
			// A stacked scene leaves the canvas out when its tiles cover the
			// frame: the covering layout's while all three are in, the
			// speaker's while one is alone.
			if !c.mixed {
				if got, want := comp.Canvases, scenes; c.covered && (got >= want || got == 0) || !c.covered && got != want {
					t.Errorf("%d of %d stacked scenes on a canvas (tiles covering the frame in some: %v)", got, want, c.covered)
				}
			}
			// A picture of its tile's size is neither resized nor padded
			// (alice's in the covering layout); carol's, which turns
			// portrait, is, though she starts at her tile's size (the
			// frames compared above show it).
			if got := comp.Unpadded; c.covered && c.name == "covered" && got == 0 {
				t.Errorf("no tile neither resized nor padded; want alice's")
			}
			if got, want := len(stack), len(over); got != want {
				t.Fatalf("stacked: %d frames, overlays: %d", got, want)
			}
			if want := int(plan.Duration.Seconds()*30 + 0.5); len(stack) != want {
				t.Errorf("%d frames, want %d", len(stack), want)
			}
			sameFrames(t, stack, over)
		})
	}
}

// TestStackedTileFormats stacks tiles whose recordings are not 4:2:0 in 8
// bits (VP9 profile 1 at 4:4:4, profile 2 at 10 bits, one letterboxed): a
// tile's stream has no format filter of its own, its scale and background
// produce the format negotiated through the stack (which the filter after
// it pins). The frames must be the overlay compositor's, whose tiles are
// each made YUVA 4:2:0 first.
func TestStackedTileFormats(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	dir := t.TempDir()
	var parts []synthPart
	for i, f := range []struct {
		id, pixFmt, profile string
		w, h                int
	}{
		{"alice", "yuv444p", "1", 640, 360},
		{"bob", "yuv420p10le", "2", 320, 240},
	} {
		path := filepath.Join(dir, f.id+".webm")
		ffrun(t, "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=s=%dx%d:r=30:d=3", f.w, f.h), "-pix_fmt", f.pixFmt,
			"-c:v", "libvpx-vp9", "-profile:v", f.profile, "-deadline", "realtime", "-cpu-used", "8", "-g", "30", "-f", "webm", path)
		parts = append(parts, synthPart{ID: f.id, Video: "vp9", Audio: true, W: f.w, H: f.h, Length: 3 * time.Second,
			Join: time.Duration(i) * 400 * time.Millisecond, VideoFile: path})
	}
	ss := makeSession(t, filepath.Join(dir, "session"), parts)
	plan, err := render.LoadPlan(ss.Dir, render.Options{Edits: parseEdits(t, "labels: false\n")})
	if err != nil {
		t.Fatal(err)
	}
	stack, over, comp, _ := bothCompositors(t, plan, ss.Dir)
	if comp.Stacked == 0 || comp.Stacked != comp.Scenes {
		t.Errorf("%d of %d scenes stacked, want all", comp.Stacked, comp.Scenes)
	}
	if want := int(plan.Duration.Seconds()*30 + 0.5); len(stack) != want || len(over) != want {
		t.Fatalf("stacked: %d frames, overlays: %d, want %d", len(stack), len(over), want)
	}
	sameFrames(t, stack, over)
}

// bothCompositors hashes the frames of plan's render with the xstack of
// tiles and with the chain of overlays (render.FrameHashes), and says how
// each composed its scenes.
func bothCompositors(t *testing.T, plan *timeline.Plan, sessionDir string) (stack, over []string, comp, compOver render.Composed) {
	t.Helper()
	ctx := context.Background()
	stack, comp, err := render.FrameHashes(ctx, plan, sessionDir, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	over, compOver, err = render.FrameHashes(ctx, plan, sessionDir, t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	return stack, over, comp, compOver
}

// sameFrames requires the stacked render's frames to be the overlays' (as
// many, checked before).
func sameFrames(t *testing.T, stack, over []string) {
	t.Helper()
	differ := 0
	for i := range stack {
		if stack[i] != over[i] {
			if differ < 5 {
				t.Errorf("frame %d (%.3f s) differs", i, float64(i)/30)
			}
			differ++
		}
	}
	if differ > 0 {
		t.Errorf("%d of %d frames differ", differ, len(stack))
	}
}
