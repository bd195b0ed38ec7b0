package render

import (
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

var fps30 = timeline.Rational{Num: 30, Den: 1}

func TestFrameAt(t *testing.T) {
	ntsc := timeline.Rational{Num: 30000, Den: 1001}
	for _, c := range []struct {
		d    time.Duration
		fps  timeline.Rational
		want int64
	}{
		{0, fps30, 0},
		{16 * time.Millisecond, fps30, 0},
		{17 * time.Millisecond, fps30, 1},
		{50 * time.Millisecond, fps30, 2},        // 1.5 frames: halves round up
		{time.Second, fps30, 30},                 //
		{-17 * time.Millisecond, fps30, -1},      // before the output's start
		{time.Hour, ntsc, 107892},                // 3600·30000/1001 = 107892.1
		{1001 * time.Millisecond, ntsc, 30},      // exactly 30 frames
		{1000*time.Hour + 1, fps30, 108_000_000}, // no overflow
	} {
		if got := frameAt(c.d, c.fps); got != c.want {
			t.Errorf("frameAt(%v, %s) = %d, want %d", c.d, c.fps, got, c.want)
		}
	}
	if got, want := samplesOfFrames(30, ntsc), int64(48048); got != want {
		t.Errorf("samplesOfFrames(30, 30000/1001) = %d, want %d", got, want)
	}
	if got, want := gopFrames(ntsc), 59; got != want {
		t.Errorf("gopFrames(30000/1001) = %d, want %d (at most 2 s)", got, want)
	}
}

func tile(who string, r timeline.Rect, src *timeline.Source) timeline.Tile {
	t := timeline.Tile{Participant: who, Lane: who + "/video", Rect: r, Fit: timeline.FitContain, Name: who, Source: src}
	if src == nil {
		t.Placeholder = timeline.PlaceholderAbsent
	}
	return t
}

func source(path string, fs float64) *timeline.Source {
	return &timeline.Source{Path: path, FileStart: fs, FileEnd: fs + 10, Speed: 1}
}

// TestScenes: intervals shorter than a frame are merged into their
// neighbour, boundaries fall on frames, a tile whose video continues across
// intervals is one piece, a placeholder and then video in the same place is
// one scene, and a reflow starts a new scene.
func TestScenes(t *testing.T) {
	ms := time.Millisecond
	left, right, full := timeline.Rect{W: 320, H: 180}, timeline.Rect{X: 320, W: 320, H: 180}, timeline.Rect{W: 640, H: 360}
	p := &timeline.Plan{Width: 640, Height: 360, FPS: fps30, Duration: 3 * time.Second, Intervals: []timeline.Interval{
		// 0–10 ms: shorter than a frame, at the start: merged forward.
		{Start: 0, End: 10 * ms, Tiles: []timeline.Tile{tile("a", full, nil)}},
		{Start: 10 * ms, End: 1000 * ms, Tiles: []timeline.Tile{tile("a", full, source("a.webm", 0))}},
		// bob joins at 1 s: reflow; his video starts 3 ms later (merged back).
		{Start: 1000 * ms, End: 1003 * ms, Tiles: []timeline.Tile{tile("a", left, source("a.webm", 0.99)), tile("b", right, nil)}},
		{Start: 1003 * ms, End: 2000 * ms, Tiles: []timeline.Tile{tile("a", left, source("a.webm", 0.993)), tile("b", right, source("b.mkv", 0))}},
		// a's file rotates at 2 s; b's camera stops at 2.5 s (placeholder).
		{Start: 2000 * ms, End: 2500 * ms, Tiles: []timeline.Tile{tile("a", left, source("a-1.webm", 0)), tile("b", right, source("b.mkv", 0.997))}},
		{Start: 2500 * ms, End: 3000 * ms, Tiles: []timeline.Tile{tile("a", left, source("a-1.webm", 0.5)), tile("b", right, nil)}},
	}}
	ivs, total, err := quantize(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := total, int64(90); got != want {
		t.Errorf("total %d frames, want %d", got, want)
	}
	if got, want := len(ivs), 4; got != want {
		t.Fatalf("%d intervals after merging, want %d", got, want)
	}
	if got := ivs[0].Tiles[0].Source.FileStart; got > -0.0099 || got < -0.0101 {
		t.Errorf("the first interval now starts at 0: its source at %.4f, want -0.010", got)
	}
	scenes := buildScenes(ivs, total, fps30)
	if got, want := len(scenes), 2; got != want {
		t.Fatalf("%d scenes, want %d: %+v", got, want, scenes)
	}
	if got, want := scenes[0].span, (span{0, 30}); got != want {
		t.Errorf("scene 0 frames %v, want %v", got, want)
	}
	if got, want := scenes[1].span, (span{30, 90}); got != want {
		t.Errorf("scene 1 frames %v, want %v", got, want)
	}
	a, b := scenes[1].Tiles[0], scenes[1].Tiles[1]
	if got, want := len(a.Video), 2; got != want {
		t.Errorf("a: %d pieces, want %d (one per file)", got, want)
	} else if got, want := a.Video[0].span, (span{30, 60}); got != want {
		t.Errorf("a's first piece %v, want %v (the 3 ms interval merged in)", got, want)
	}
	if got, want := len(b.Video), 1; got != want {
		t.Errorf("b: %d pieces, want %d", got, want)
	} else if got, want := b.Video[0].span, (span{30, 75}); got != want {
		t.Errorf("b's piece %v, want %v", got, want)
	}
	if got, want := len(b.Holders), 1; got != want || b.Holders[0] != (span{75, 90}) {
		t.Errorf("b's placeholders %v, want [{75 90}]", b.Holders)
	}

	jobs := planJobs(scenes, 40, 24)
	if got, want := len(jobs), 3; got != want {
		t.Fatalf("%d jobs of at most 40 frames, want %d", got, want)
	}
	for i, want := range []span{{0, 40}, {40, 80}, {80, 90}} {
		if got := jobs[i].span; got != want {
			t.Errorf("job %d frames %v, want %v", i, got, want)
		}
	}
	if got := len(jobs[0].Scenes); got != 2 {
		t.Errorf("job 0 has %d scenes, want 2", got)
	}
	if got, want := jobs[2].Scenes[0].Tiles[1].Holders, []span{{80, 90}}; len(got) != 1 || got[0] != want[0] || len(jobs[2].Scenes[0].Tiles[1].Video) != 0 {
		t.Errorf("job 2: b's placeholders %v and %d pieces, want %v and none", got, len(jobs[2].Scenes[0].Tiles[1].Video), want)
	}
	if jobs := planJobs(scenes, 1000, 2); len(jobs) != 2 {
		t.Errorf("with at most 2 inputs per job: %d jobs, want 2", len(jobs))
	}
	// A job cut early by its inputs does not move the next window: jobs end
	// on the grid of 40 frames whatever comes before.
	jobs = planJobs(scenes, 40, 2)
	t.Logf("jobs of at most 40 frames and 2 inputs: %v", spans(jobs))
	for i, j := range jobs {
		if j.To%40 != 0 && j.To != 90 && (i+1 >= len(jobs) || jobs[i+1].From/40 != j.From/40) {
			t.Errorf("job %d ends at %d, not on the window grid of 40 frames nor before another job of its window: %v", i, j.To, jobs)
		}
		if j.From/40 != (j.To-1)/40 {
			t.Errorf("job %d %v crosses a window line", i, j.span)
		}
	}
}

func TestQuantizeShortPlan(t *testing.T) {
	p := &timeline.Plan{Width: 640, Height: 360, FPS: fps30, Duration: 10 * time.Millisecond,
		Intervals: []timeline.Interval{{Start: 0, End: 10 * time.Millisecond}}}
	if _, _, err := quantize(p); err == nil {
		t.Error("a plan shorter than a frame quantizes without error")
	}
}

// TestAudioLanes: a lane's intervals that continue the same file are one
// piece; a jump in the file (a cut) or another file starts a new one.
func TestAudioLanes(t *testing.T) {
	ms := time.Millisecond
	aud := func(lane, path string, fs float64) timeline.AudioSource {
		return timeline.AudioSource{Lane: lane, Source: timeline.Source{Path: path, FileStart: fs, Speed: 1}}
	}
	p := &timeline.Plan{FPS: fps30, Duration: 3 * time.Second, Intervals: []timeline.Interval{
		{Start: 0, End: 1000 * ms, Audio: []timeline.AudioSource{aud("a", "a.webm", 0)}},
		{Start: 1000 * ms, End: 1500 * ms, Audio: []timeline.AudioSource{aud("a", "a.webm", 1), aud("b", "b.webm", 0)}},
		{Start: 1500 * ms, End: 2000 * ms, Audio: []timeline.AudioSource{aud("a", "a.webm", 3)}}, // after a cut
		{Start: 2000 * ms, End: 3000 * ms, Audio: []timeline.AudioSource{aud("b", "b.webm", 1.5)}},
	}}
	lanes := audioLanes(p, 144000)
	if got, want := len(lanes), 2; got != want {
		t.Fatalf("%d lanes, want %d", got, want)
	}
	if got, want := len(lanes[0].Pieces), 2; got != want {
		t.Errorf("lane a: %d pieces, want %d", got, want)
	} else if got, want := lanes[0].Pieces[0].s1, int64(72000); got != want {
		t.Errorf("lane a's first piece ends at sample %d, want %d", got, want)
	}
	if got, want := len(lanes[1].Pieces), 2; got != want {
		t.Errorf("lane b: %d pieces, want %d (absent 1.5–2 s)", got, want)
	}
}

func spans(jobs []job) []span {
	out := make([]span, len(jobs))
	for i, j := range jobs {
		out[i] = j.span
	}
	return out
}
