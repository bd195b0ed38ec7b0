package render

import (
	"context"
	"fmt"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// Joint windows
//
// Starting FFmpeg costs about 0.14 s of CPU on these machines (Debian's
// build maps 215 shared libraries and binds them at load), and a window of
// the render during calls, 10 s of output, ran three processes: its video
// job, its audio window and its encoded audio window. The video job and the
// audio window of the same span stay two commands, each kept and reused
// under its own key (reuse.go), but the program also holds them as one
// command: the job's filter graph and the window's, side by side, with both
// outputs. A window drawn whole runs that one instead of the two. Its
// outputs are the two commands' byte for byte (TestJointWindows), so the
// keys, the reuse, and the identity of the windows drawn during the call
// with the post-call render's are unaffected. When either of the two is
// kept, the other runs alone.

// jointWindow is video job i's joint command (zero when no audio window
// has its span) and the audio window it also draws.
type jointWindow struct {
	Command
	audio int
}

// jointWindows are the program's joint commands, by video job.
func jointWindows(p *timeline.Plan, prog *Program) []jointWindow {
	s := &prog.settings
	lanes := audioLanes(p, samplesOfFrames(prog.Frames, p.FPS))
	bySpan := make(map[span]int, len(prog.audioSpans))
	for a, sp := range prog.audioSpans {
		bySpan[sp] = a
	}
	ws := make([]jointWindow, len(prog.jobs))
	for i := range prog.jobs {
		a, ok := bySpan[prog.jobs[i].span]
		if !ok {
			ws[i].audio = -1
			continue
		}
		vg := newGraph()
		vOut, outputs := buildVideoJob(p, prog, i, vg)
		ag := vg.next()
		aOut := audioWindowGraph(ag, s, lanes, prog, a)
		// The video job's global options; the audio window's are a subset.
		args := append(baseArgs(), "-copyts", "-filter_complex_threads", "1")
		args = append(args, vg.inputs...)
		args = append(args, ag.inputs...)
		args = append(args, "-filter_complex", vg.filter(), "-filter_complex", ag.filter())
		args = append(args, vOut...)
		args = append(args, aOut...)
		ws[i] = jointWindow{audio: a, Command: Command{
			Name: fmt.Sprintf("video %d/%d and audio %d/%d", i+1, len(prog.jobs), a+1, len(prog.audioSpans)),
			Args: args, Files: vg.files, Outputs: append(outputs, audioWindowFile(a)), Duration: prog.jobs[i].duration(p.FPS),
		}}
	}
	return ws
}

// jointMix is an audio window that the video job of its span draws, in
// their joint command: the audio's side waits for done.
type jointMix struct {
	joint Command
	audio int
	mix   Command // the audio window alone
	key   string  // its reuse key
	done  chan struct{}
	// ok is set before done is closed: the mix is in the work folder.
	ok bool
}

// jointMixes are, by video job, the audio windows to draw with it: those
// that a joint command can draw and that need FFmpeg (draw says so, by
// audio window).
func jointMixes(prog *Program, akeys []string, draw func(a int) bool) []*jointMix {
	ms := make([]*jointMix, len(prog.Video))
	for i, j := range prog.joint {
		if j.audio < 0 || !draw(j.audio) {
			continue
		}
		ms[i] = &jointMix{joint: j.Command, audio: j.audio, mix: prog.AudioWindows[j.audio], key: akeys[j.audio], done: make(chan struct{})}
	}
	return ms
}

// runJoint draws video job c (reuse key vkey) and m's audio window: with
// their joint command when neither is kept, else each taken or run alone.
func (r *runner) runJoint(ctx context.Context, c Command, vkey string, m *jointMix, pr *progress) error {
	if (vkey != "" && r.isKept(vkey, c)) || (m.key != "" && r.isKept(m.key, m.mix)) {
		if err := r.runKeyed(ctx, c, vkey, pr); err != nil {
			return err
		}
		return r.runKeyed(ctx, m.mix, m.key, pr)
	}
	if _, err := r.run(ctx, m.joint, func(d time.Duration) { pr.update(c.Name, d) }); err != nil {
		return err
	}
	r.keepForReuse(ctx, vkey, c)
	r.keepForReuse(ctx, m.key, m.mix)
	pr.update(c.Name, c.Duration)
	pr.update(m.mix.Name, m.mix.Duration)
	return nil
}

// waitJoint waits for m's window to be drawn.
func waitJoint(ctx context.Context, m *jointMix) error {
	select {
	case <-m.done:
	case <-ctx.Done():
		return fmt.Errorf("render: %s: %w", m.mix.Name, context.Cause(ctx))
	}
	if !m.ok {
		// Its video job failed or was not run: that job reports why.
		return fmt.Errorf("render: %s: not drawn with its video job", m.mix.Name)
	}
	return nil
}
