package render

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// Prerendered is what a Prerender did.
type Prerendered struct {
	// Windows is the number of video windows of the plan.
	Windows int
	// Rendered are the windows this call rendered (0 is the first).
	Rendered []int
	// Until is the output time up to which every window is kept (the end of
	// the first run of kept windows after from).
	Until time.Duration
	// Encoded are the encoded audio windows this call encoded.
	Encoded []int
}

// Prerender renders, ahead of the render of a whole session, the video
// windows of plan that end after from and by final (output time), and keeps
// them in opts.Reuse for that render to take (see reuse.go): a session being
// recorded is rendered window by window as its media becomes final, and the
// render after the call draws only the rest. Windows kept already are not
// rendered again; windows that end by from are not looked at (their files
// may be gone from the session folder). It needs opts.Reuse and
// opts.MaxJobDuration, the windows' length, which the later render must use
// too; it renders the video's and the audio's windows, encodes the audio's
// AAC in windows (aacwindows.go), and leaves nothing in opts.OutDir. Windows
// run opts.Parallel at a time (0: one).
func Prerender(ctx context.Context, plan *timeline.Plan, sessionDir string, opts Options, from, final time.Duration) (Prerendered, error) {
	if opts.Reuse == "" || opts.MaxJobDuration <= 0 {
		return Prerendered{}, errors.New("render: prerender: needs a reuse folder and a window length")
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 1
	}
	if opts.OutDir == "" {
		opts.OutDir = opts.Reuse
	}
	rn, err := prepare(ctx, plan, sessionDir, opts)
	if err != nil {
		return Prerendered{}, err
	}
	defer rn.cleanup()
	prog, r := rn.prog, rn.r
	var res Prerendered
	res.Windows = len(prog.Video)
	if len(rn.keys) != len(prog.Video) || len(rn.audioKeys) != len(prog.AudioWindows) {
		return res, nil // nothing can be kept under a key
	}
	first, last := frameAt(from, prog.FPS), frameAt(final, prog.FPS)
	// The windows of the video and those of the audio (which end on the
	// same grid), each with the frame its output ends at.
	type window struct {
		c, key Command
		to     int64
		video  int // index among the video jobs, -1 for audio
		audio  int // index among the audio windows, -1 for video
		name   string
	}
	var all []window
	for i := range prog.Video {
		all = append(all, window{c: prog.Video[i], key: rn.keys[i], to: prog.jobs[i].To, video: i, audio: -1})
	}
	for i := range prog.AudioWindows {
		all = append(all, window{c: prog.AudioWindows[i], key: rn.audioKeys[i], to: prog.audioSpans[i].To, video: -1, audio: i})
	}
	var todo []window
	for k := range all {
		w := &all[k]
		if w.to > last || w.to <= first {
			continue
		}
		w.name = r.reuseKey(ctx, w.key)
		if w.name != "" && r.isKept(w.name, w.c) {
			continue
		}
		todo = append(todo, *w)
	}
	if len(todo) > 0 {
		// A video window and the audio window of its span, both to draw,
		// are drawn by one process (joint.go).
		akeys := make([]string, len(prog.AudioWindows))
		audioTodo, videoTodo := map[int]bool{}, map[int]bool{}
		for _, w := range todo {
			if w.video < 0 {
				akeys[w.audio], audioTodo[w.audio] = w.name, true
			} else {
				videoTodo[w.video] = true
			}
		}
		mixes := jointMixes(prog, akeys, func(a int) bool { return audioTodo[a] })
		joined := map[int]bool{}
		for i, m := range mixes {
			if m != nil && !videoTodo[i] {
				mixes[i] = nil // its video window is kept
			} else if m != nil {
				joined[m.audio] = true
			}
		}
		var jobs, keys []Command
		var jm []*jointMix
		for _, w := range todo {
			switch {
			case w.video >= 0:
				jm = append(jm, mixes[w.video])
			case joined[w.audio]:
				continue // drawn with its video window
			default:
				jm = append(jm, nil)
			}
			jobs, keys = append(jobs, w.c), append(keys, w.key)
		}
		err := runAllWindows(ctx, r, jobs, keys, jm, opts.Parallel, newProgress(nil, false, 0, nil))
		for _, w := range todo {
			if w.video >= 0 && w.name != "" && r.isKept(w.name, w.c) {
				res.Rendered = append(res.Rendered, w.video)
			}
		}
		if err != nil {
			return res, fmt.Errorf("render: prerender: %w", err)
		}
	}
	// The AAC of the audio kept so far, with the gain of its loudness.
	if res.Encoded, err = prerenderAAC(ctx, r, prog); err != nil {
		return res, fmt.Errorf("render: prerender: %w", err)
	}
	// Until: the end of the last video window before the first window
	// (video or audio) after from that is not kept.
	for _, w := range all {
		if w.to > first && (w.name == "" || !r.isKept(w.name, w.c)) {
			last = min(last, w.to-1)
		}
	}
	for _, w := range all {
		if w.video >= 0 && w.to <= last {
			res.Until = max(res.Until, time.Duration(frameTime(w.to, prog.FPS)*float64(time.Second)))
		}
	}
	return res, nil
}
