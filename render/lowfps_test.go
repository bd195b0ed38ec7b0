package render_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/internal/marks"
	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

// TestFewFramesHeld: a source sending 2 frames a second (a screen share, a
// starved camera) shows its last frame until its next one, also where a
// window or a scene starts between the two. Bob's frames play at 0.2, 0.7,
// 1.2 and 1.7 s and his piece ends at 2.2 s; carol's join at 1.1 s starts a
// scene (the grid reflows) half a second after his last frame, and the
// 1-s windows start at 1 s and 2 s. A piece reached back one output frame
// for its first: bob's tile stayed empty from 1.1 s to 1.2 s, and in the
// windowed render from 2 s to 2.2 s.
func TestFewFramesHeld(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	dir := t.TempDir()
	ss := makeSession(t, filepath.Join(dir, "s"), []synthPart{
		{ID: "alice", Video: "vp8", Audio: true, W: 320, H: 240, FPS: 15, Length: 3 * time.Second},
		{ID: "bob", Video: "vp8", Audio: true, W: 320, H: 240, FPS: 2, Join: 200 * time.Millisecond, Length: 2300 * time.Millisecond},
		{ID: "carol", Video: "vp8", Audio: true, W: 320, H: 240, FPS: 15, Join: 1100 * time.Millisecond, Length: 1900 * time.Millisecond},
	})
	for _, win := range []time.Duration{0, time.Second} {
		t.Run(fmt.Sprint("windows of ", win), func(t *testing.T) {
			opts := render.Options{MaxJobDuration: win, OutDir: filepath.Join(dir, fmt.Sprint("o", win)), Profiles: []string{render.ProfileMP4_360},
				FontFile: "none", Log: testLogger(t)}
			plan, err := render.LoadPlan(ss.Dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			outs, err := render.Render(context.Background(), plan, ss.Dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			// Bob's tile at each output frame where his video plays, in
			// the 640x360 composite.
			fps := plan.FPS
			n := int(outs[0].Duration.Seconds()*float64(fps.Num)/float64(fps.Den) + 0.5)
			rects := map[timeline.Rect][]int{}
			for k := range n {
				at := time.Duration(float64(k) * float64(fps.Den) / float64(fps.Num) * float64(time.Second))
				iv := &plan.Intervals[plan.IntervalAt(at)]
				for _, tl := range iv.Tiles {
					if tl.Participant == "bob" && tl.Source != nil {
						rects[tl.Rect] = append(rects[tl.Rect], k)
					}
				}
			}
			if len(rects) < 2 {
				t.Fatalf("bob's video plays in %d places, want 2 (the reflow at carol's join)", len(rects))
			}
			shown := 0
			for r, frames := range rects {
				// The middle of the tile, clear of the picture's bars.
				_, luma, err := marks.LumaRegion(outs[0].Path, r.X+r.W/4, r.Y+r.H/4, r.W/2, r.H/2)
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range frames {
					if k >= len(luma) {
						t.Fatalf("frame %d of %d", k, len(luma))
					}
					// The test picture is about 100; the background black.
					if luma[k] < 40 {
						t.Errorf("frame %d (%.3f s): bob's tile %v is empty (mean luma %.1f) while his video plays", k,
							float64(k)*float64(fps.Den)/float64(fps.Num), r, luma[k])
					}
					shown++
				}
			}
			t.Logf("bob's video in %d frames, in %d places", shown, len(rects))
		})
	}
	// Bob's stem, in 1-s jobs: his picture from 0.2 s to 2.2 s.
	res, err := render.Export(context.Background(), ss.Dir, render.ExportOptions{Video: true, OutDir: filepath.Join(dir, "stems"),
		MaxJobDuration: time.Second, FontFile: "none", Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range res.Stems {
		if st.Participant != "bob" {
			continue
		}
		_, luma, err := marks.LumaRegion(filepath.Join(res.Dir, st.MP4), st.Width/4, st.Height/4, st.Width/2, st.Height/2)
		if err != nil {
			t.Fatal(err)
		}
		if len(luma) < 90 {
			t.Fatalf("bob's stem has %d frames, want 90", len(luma))
		}
		// 0.2 s is frame 6; 2.2 s frame 66.
		for k := 7; k < 66; k++ {
			if luma[k] < 60 {
				t.Errorf("bob's stem, frame %d (%.3f s): mean luma %.1f, not his picture", k, float64(k)/30, luma[k])
			}
		}
		t.Logf("bob's stem: mean luma %.1f before he joins, %.1f at 1 s, %.1f after he leaves", luma[2], luma[30], luma[80])
		return
	}
	t.Fatal("no stem for bob")
}
