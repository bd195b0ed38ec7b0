package render

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// Prerendered is what a Prerender did.
type Prerendered struct {
	// Windows is the number of video windows of the plan, Final how many of
	// them end by the final time given, Kept how many of those were kept
	// already.
	Windows, Final, Kept int
	// Rendered are the windows this call rendered (0 is the first).
	Rendered []int
	// Until is the output time up to which every window is kept (the end of
	// the first run of kept windows after from).
	Until time.Duration
}

// Prerender renders, ahead of the render of a whole session, the video
// windows of plan that end after from and by final (output time), and keeps
// them in opts.Reuse for that render to take (see reuse.go): a session being
// recorded is rendered window by window as its media becomes final, and the
// render after the call draws only the rest. Windows kept already are not
// rendered again; windows that end by from are not looked at (their files
// may be gone from the session folder). It needs opts.Reuse and opts.MaxJobDuration, the windows'
// length, which the later render must use too; it renders no audio and
// leaves nothing in opts.OutDir. Windows run opts.Parallel at a time (0: one).
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
	if len(rn.keys) != len(prog.Video) {
		return res, nil // nothing can be kept under a key
	}
	first, last := frameAt(from, prog.FPS), frameAt(final, prog.FPS)
	var jobs, keys []Command
	var index []int
	keyOf := make([]string, len(prog.Video))
	for i := range prog.Video {
		if prog.jobs[i].To > last {
			break
		}
		res.Final++
		if prog.jobs[i].To <= first {
			res.Kept++
			continue
		}
		keyOf[i] = r.reuseKey(ctx, rn.keys[i])
		if keyOf[i] != "" && r.isKept(keyOf[i], prog.Video[i]) {
			res.Kept++
			continue
		}
		jobs, keys, index = append(jobs, prog.Video[i]), append(keys, rn.keys[i]), append(index, i)
	}
	if len(jobs) > 0 {
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		var wg sync.WaitGroup
		var once sync.Once
		var firstErr error
		fail := func(err error) { once.Do(func() { firstErr = err; cancel(err) }) }
		runVideo(ctx, r, jobs, keys, opts.Parallel, newProgress(nil, false, 0, nil), fail, &wg)
		wg.Wait()
		for _, i := range index {
			if keyOf[i] != "" && r.isKept(keyOf[i], prog.Video[i]) {
				res.Rendered = append(res.Rendered, i)
			}
		}
		if firstErr != nil {
			return res, fmt.Errorf("render: prerender: %w", firstErr)
		}
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("render: prerender: %w", context.Cause(ctx))
		}
	}
	for i := range prog.Video {
		if prog.jobs[i].To > first && (keyOf[i] == "" || !r.isKept(keyOf[i], prog.Video[i])) {
			break
		}
		res.Until = time.Duration(frameTime(prog.jobs[i].To, prog.FPS) * float64(time.Second))
	}
	return res, nil
}
