package render_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/render"
)

// TestStackMatchesOverlays renders the same calls' pictures with both
// compositors, the xstack of tiles and the chain of overlays, and requires
// the same pixels on every output frame: late joiners, a participant whose
// clocks are 3 s off and 2000 ppm fast (his pieces play at another speed),
// a 4:3 picture letterboxed in a 16:9 tile, a camera turning portrait
// mid-scene (the tile's size changes), participants leaving before the
// end, a one-tile scene scaled up, a speaker layout, and tiles the stack
// cannot compose (cover) in the same job as scenes it composes.
func TestStackMatchesOverlays(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	ss := makeSession(t, t.TempDir(), threeParts(5*time.Second))
	for _, c := range []struct {
		name, edits string
		mixed       bool // some scenes not stackable
	}{
		{"grid", "", false},
		{"fixed", fixedLayout, false},
		{"speaker", "layouts:\n  - type: speaker\n", false},
		{"cover", strings.Replace(fixedLayout, "lanes: [bob]}", "lanes: [bob], fit: cover}", 1), true},
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
			ctx := context.Background()
			stack, scenes, nStack, err := render.FrameHashes(ctx, plan, ss.Dir, t.TempDir(), false)
			if err != nil {
				t.Fatal(err)
			}
			over, _, nOver, err := render.FrameHashes(ctx, plan, ss.Dir, t.TempDir(), true)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d frames; %d of %d scenes stacked", len(stack), nStack, scenes)
			if nOver != 0 {
				t.Fatalf("the overlay compositor used xstack %d times", nOver)
			}
			if c.mixed && (nStack == 0 || nStack == scenes) || !c.mixed && nStack != scenes {
				t.Errorf("%d of %d scenes stacked", nStack, scenes)
			}
			if got, want := len(stack), len(over); got != want {
				t.Fatalf("stacked: %d frames, overlays: %d", got, want)
			}
			if want := int(plan.Duration.Seconds()*30 + 0.5); len(stack) != want {
				t.Errorf("%d frames, want %d", len(stack), want)
			}
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
		})
	}
}
