package render

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// Render renders a plan whose source paths are relative to sessionDir, and
// returns the outputs, one per profile (only the audio profile when the plan
// has no video lane). Nothing is left in the output folder unless the whole
// render succeeds; a cancelled ctx stops every FFmpeg at once.
func Render(ctx context.Context, plan *timeline.Plan, sessionDir string, opts Options) ([]Output, error) {
	rn, err := prepare(ctx, plan, sessionDir, opts)
	if err != nil {
		return nil, err
	}
	defer rn.cleanup()
	log, prog, r := rn.log, rn.prog, rn.r
	if prog.AudioOnly {
		log.Info("render: the session has no video: rendering its audio only")
	}
	start := time.Now()
	log.Info("render: started", "duration", prog.Duration, "profiles", len(prog.profiles), "video_jobs", len(prog.Video),
		"size", fmt.Sprintf("%dx%d", prog.Width, prog.Height), "fps", prog.FPS.String())
	pr := newProgress(opts.Progress, opts.ProgressTTY, prog.Duration, nil)
	for _, c := range prog.Video {
		pr.add(c.Name, c.Duration, weightVideo)
	}
	for _, c := range prog.AudioWindows {
		pr.add(c.Name, c.Duration, weightAudio)
	}
	if len(prog.AudioWindows) == 0 {
		pr.add(prog.Audio.Name, prog.Audio.Duration, weightAudio)
	}
	for _, c := range prog.AudioEncodes(Loudness{}) {
		pr.add(c.Name, c.Duration, weightEncode)
	}
	for _, c := range prog.Mux() {
		pr.add(c.Name, c.Duration, weightMux)
	}
	audio, err := runStage(ctx, r, prog, rn.keys, rn.audioKeys, opts.parallel(), pr)
	if err != nil {
		return nil, err
	}
	loud := audio.loud
	if loud.Measured {
		log.Info("render: loudness measured", "integrated_lufs", loud.I, "sample_peak_dbfs", loud.Peak, "range_lu", loud.LRA)
	}
	for _, c := range prog.muxes(audio.aac) {
		if _, err := r.run(ctx, c, func(d time.Duration) { pr.update(c.Name, d) }); err != nil {
			return nil, err
		}
		pr.update(c.Name, c.Duration)
	}
	pr.finish()
	outs, err := publish(ctx, r.dir, rn.outDir, prog)
	if err != nil {
		return nil, err
	}
	log.Info("render: done", "took", time.Since(start).Round(time.Millisecond), "outputs", len(outs), "dir", rn.outDir)
	return outs, nil
}

// prepared is a compiled render and the runner that runs it in its work
// folder.
type prepared struct {
	log    *slog.Logger
	prog   *Program
	r      *runner
	outDir string
	// keys are the commands that name the video jobs for reuse (prog's
	// own), nil without reuse.
	keys []Command
	// audioKeys name prog.AudioWindows likewise.
	audioKeys []Command
	cleanup   func()
}

// prepare finds FFmpeg and the font, compiles the plan, and makes the work
// folder (inside the output folder, so that publishing is a rename).
func prepare(ctx context.Context, plan *timeline.Plan, sessionDir string, opts Options) (*prepared, error) {
	log := opts.logger()
	profiles, err := parseProfiles(opts.Profiles)
	if err != nil {
		return nil, err
	}
	ffmpeg := opts.FFmpeg
	if ffmpeg == "" {
		if ffmpeg, err = exec.LookPath("ffmpeg"); err != nil {
			return nil, fmt.Errorf("render: %w", errNoFFmpeg)
		}
	} else if ffmpeg, err = exec.LookPath(ffmpeg); err != nil {
		return nil, fmt.Errorf("render: ffmpeg: %w", err)
	}
	font := opts.FontFile
	switch font {
	case "":
		if font = findFont(ctx); font == "" {
			log.Warn("render: no font found (install fonts-dejavu-core): names and labels are not drawn")
		}
	case "none":
		font = ""
	}
	outDir := opts.OutDir
	if outDir == "" {
		outDir = filepath.Join(sessionDir, "renders", "default")
	}
	if outDir, err = filepath.Abs(outDir); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	if sessionDir, err = filepath.Abs(sessionDir); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	plan, err = absImages(plan)
	if err != nil {
		return nil, err
	}
	var maxFrames int64
	switch par := opts.parallel(); {
	case plan.FPS.Num <= 0 || plan.FPS.Den <= 0:
	case opts.MaxJobDuration > 0:
		maxFrames = max(1, frameAt(opts.MaxJobDuration, plan.FPS))
	case par > 1:
		// Cut the output so that every parallel job gets a share, in
		// jobs of 30 s to 3 minutes.
		share := (frameAt(plan.Duration, plan.FPS) + int64(par) - 1) / int64(par)
		lo, hi := frameAt(30*time.Second, plan.FPS), frameAt(defaultJobSeconds*time.Second, plan.FPS)
		maxFrames = min(hi, max(lo, share))
	}
	files := newSourceFiles(sessionDir, log)
	settings := Settings{
		SessionDir: sessionDir, Profiles: profiles, FontFile: font, Preset: opts.Preset,
		Captions: opts.Captions, LoudnessOff: opts.LoudnessOff, Loudness: opts.Loudness, MaxJobFrames: maxFrames,
		AudioWindows: true, overlays: opts.overlays, lastFrame: files.before,
	}
	if !opts.resampleAll {
		settings.stretchOf = files.audio
	}
	prog, err := Compile(plan, settings)
	if err != nil {
		return nil, err
	}
	var keys, audioKeys []Command
	if opts.Reuse != "" && len(prog.Video) > 0 {
		// The video jobs name themselves: their sources are already on the
		// placement grid. The audio windows are named with their sources
		// rounded to audioQuantum.
		keys = prog.Video
		ks := settings
		ks.audioQuantum = audioPlaceQuantum
		kp, err := Compile(plan, ks)
		if err != nil {
			return nil, err
		}
		if len(kp.AudioWindows) == len(prog.AudioWindows) {
			audioKeys = kp.AudioWindows
		}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	work, err := os.MkdirTemp(outDir, ".render-")
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	cleanup := func() { _ = os.RemoveAll(work) }
	if opts.KeepWork {
		log.Info("render: keeping the work folder", "dir", work)
		cleanup = func() {}
	}
	r := &runner{ffmpeg: ffmpeg, nice: opts.Nice, dir: work, log: log, record: opts.KeepWork, reuse: opts.Reuse, build: &ffmpegBuild{session: sessionDir}}
	return &prepared{log: log, prog: prog, r: r, outDir: outDir, keys: keys, audioKeys: audioKeys, cleanup: cleanup}, nil
}

// audioPlaceQuantum is how far (seconds) an audio source may move and its
// kept window still be taken: half a millisecond, far under what is heard
// as a change of lip sync, far over what a sync model refined during the
// call moves (microseconds).
const audioPlaceQuantum = 0.0005

// runStage runs the video jobs (parallel at a time) and, beside them, the
// audio mix and its encodes (runAudio). The first failure cancels the rest.
func runStage(ctx context.Context, r *runner, prog *Program, keys, audioKeys []Command, parallel int, pr *progress) (audioDone, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	fail, firstErr := failFirst(cancel)
	aw := audioWork{keys: make([]string, len(prog.AudioWindows)), summaries: make([]*loudnessBlocks, len(prog.AudioWindows)),
		joined: map[int]*jointMix{}}
	for i := range aw.keys {
		if i < len(audioKeys) && audioKeys[i].Args != nil {
			aw.keys[i] = r.reuseKey(ctx, audioKeys[i])
		}
		if aw.keys[i] != "" && !prog.settings.LoudnessOff {
			if b, ok := r.keptBlocks(prog, i, aw.keys[i]); ok {
				aw.summaries[i] = &b
			}
		}
	}
	// The audio windows that need FFmpeg are drawn by the video jobs of
	// their spans, in one process each (joint.go); runAudio waits for them.
	mixes := jointMixes(prog, aw.keys, func(a int) bool {
		return aw.summaries[a] == nil && (aw.keys[a] == "" || !r.isKept(aw.keys[a], prog.AudioWindows[a]))
	})
	for _, m := range mixes {
		if m != nil {
			aw.joined[m.audio] = m
		}
	}
	var done audioDone
	wg.Add(1)
	go func() {
		defer wg.Done()
		d, err := runAudio(ctx, r, prog, aw, parallel, pr)
		if err != nil {
			fail(err)
			return
		}
		done = d
	}()
	runWindows(ctx, r, prog.Video, keys, mixes, parallel, pr, fail, &wg)
	wg.Wait()
	if err := firstErr(); err != nil {
		return audioDone{}, err
	}
	if err := ctx.Err(); err != nil {
		return audioDone{}, fmt.Errorf("render: %w", context.Cause(ctx))
	}
	return done, nil
}

// audioDone is what runAudio did: the mix's loudness, and the AAC left to
// the mux that carries it (nil: encoded, for the muxes to copy).
type audioDone struct {
	loud Loudness
	aac  *aacByMux
}

// audioWork is what runStage found of the audio windows before the jobs
// start, by audio window: its reuse key (""), its loudness summary kept
// under that key (nil: none, or loudness off), and whether its video job
// draws it (joint.go).
type audioWork struct {
	keys      []string
	summaries []*loudnessBlocks
	joined    map[int]*jointMix
}

// runAudio runs the audio's commands, beside the video's: the mix (one
// command, or windows one after the other, cheap beside the video, each
// measured as it is done; those joined are drawn by their video jobs), then
// the encodes with the gain of the loudness measured, the encoded audio
// windows parallel at a time. The AAC of a mix in one encoded window, not
// kept, that one mux carries is left to that mux (muxMayEncodeAAC).
func runAudio(ctx context.Context, r *runner, prog *Program, aw audioWork, parallel int, pr *progress) (audioDone, error) {
	s, keys := &prog.settings, aw.keys
	var loud Loudness
	if len(prog.AudioWindows) == 0 {
		c := prog.Audio
		stderr, err := r.run(ctx, c, func(d time.Duration) { pr.update(c.Name, d) })
		if err != nil {
			return audioDone{}, err
		}
		pr.update(c.Name, c.Duration)
		if c.Measure {
			if loud, err = parseLoudness(stderr); err != nil {
				return audioDone{}, fmt.Errorf("render: %s: %w", c.Name, err)
			}
		}
	}
	blocks := make([]loudnessBlocks, len(prog.AudioWindows))
	// An audio window kept with its loudness summary is not put in the work
	// folder unless an encode reads it: a render that takes the encoded
	// audio windows too reads no mix, and the windows of a call rendered on
	// another node travel without their mixes (float WAVs, about 23 MB a
	// minute).
	here := make([]bool, len(prog.AudioWindows))
	for i, c := range prog.AudioWindows {
		if m := aw.joined[i]; m != nil {
			if err := waitJoint(ctx, m); err != nil {
				return audioDone{}, err
			}
		} else if b := aw.summaries[i]; b != nil {
			blocks[i] = *b
			pr.update(c.Name, c.Duration)
			continue
		} else if err := r.runKeyed(ctx, c, keys[i], pr); err != nil {
			return audioDone{}, err
		}
		here[i] = true
		if !s.LoudnessOff {
			b, err := r.windowBlocks(ctx, prog, i, keys[i])
			if err != nil {
				return audioDone{}, err
			}
			blocks[i] = b
		}
	}
	if len(prog.AudioWindows) > 0 && !s.LoudnessOff {
		loud = mergeBlocks(blocks...).loudness()
	}
	cmds := prog.AudioEncodes(loud)
	// The mixes the encodes read: those of the encoded audio windows not
	// kept, and all of them for an encode of the whole mix.
	need := make([]bool, len(prog.AudioWindows))
	n := len(prog.aacWindows)
	var aacKeyCmds []Command
	var done audioDone
	if n > 0 {
		aacKeyCmds = aacKeys(prog, cmds[:n], keys)
		for k := range n {
			if key := r.reuseKey(ctx, aacKeyCmds[k]); key != "" && r.isKept(key, cmds[k]) {
				continue
			}
			for _, w := range prog.aacWindows[k].Windows {
				need[w] = true
			}
			if prog.muxMayEncodeAAC() {
				// Left to the mux, which reads the same mixes: the encode
				// and the join are skipped.
				done.aac = &aacByMux{filters: loudnessFilters(s, loud)}
			}
		}
	}
	for _, c := range cmds[n:] {
		if _, ok := c.Files[audioWindowList]; ok {
			for w := range need {
				need[w] = true
			}
		}
	}
	for w := range need {
		if need[w] && !here[w] {
			// Its progress was counted with its loudness.
			if err := r.runKeyed(ctx, prog.AudioWindows[w], keys[w], nil); err != nil {
				return audioDone{}, err
			}
		}
	}
	switch {
	case done.aac != nil:
		// The encode and the join (cmds[:n+1]) are the mux's.
		for _, c := range cmds[:n+1] {
			pr.update(c.Name, c.Duration)
		}
		cmds = cmds[n+1:]
	case n > 0:
		// The encoded windows, parallel at a time, then the rest.
		if err := runAllWindows(ctx, r, cmds[:n], aacKeyCmds, nil, parallel, pr); err != nil {
			return audioDone{}, fmt.Errorf("render: %w", err)
		}
		cmds = cmds[n:]
	}
	for _, c := range cmds {
		if _, err := r.run(ctx, c, func(d time.Duration) { pr.update(c.Name, d) }); err != nil {
			return audioDone{}, err
		}
		pr.update(c.Name, c.Duration)
	}
	done.loud = loud
	return done, nil
}

// failFirst returns fail, which keeps the first error it is given and
// cancels with it, and first, which returns that error (read it once the
// work is waited for).
func failFirst(cancel context.CancelCauseFunc) (fail func(error), first func() error) {
	var once sync.Once
	var err error
	fail = func(e error) { once.Do(func() { err = e; cancel(e) }) }
	return fail, func() error { return err }
}

// runWindows starts window commands (the video jobs; the audio windows of a
// prerender), parallel at a time, on wg; each reuses a kept window when keys
// name one (keys[i] names jobs[i]) and keeps what it renders. A job with a
// mix (mixes[i], when set) draws that audio window too (joint.go). A failure
// goes to fail.
func runWindows(ctx context.Context, r *runner, jobs, keys []Command, mixes []*jointMix, parallel int, pr *progress, fail func(error), wg *sync.WaitGroup) {
	sem := make(chan struct{}, parallel)
	for i, c := range jobs {
		var m *jointMix
		if i < len(mixes) {
			m = mixes[i]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if m != nil {
				defer close(m.done)
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				return
			}
			var key string
			if i < len(keys) && keys[i].Args != nil {
				key = r.reuseKey(ctx, keys[i])
			}
			var err error
			if m != nil {
				err = r.runJoint(ctx, c, key, m, pr)
				m.ok = err == nil
			} else {
				err = r.runKeyed(ctx, c, key, pr)
			}
			if err != nil {
				fail(err)
			}
		}()
	}
}

// runAllWindows runs window commands as runWindows does and waits for them:
// it returns the first failure, or the cause of ctx's end.
func runAllWindows(ctx context.Context, r *runner, jobs, keys []Command, mixes []*jointMix, parallel int, pr *progress) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	fail, firstErr := failFirst(cancel)
	runWindows(ctx, r, jobs, keys, mixes, parallel, pr, fail, &wg)
	wg.Wait()
	if err := firstErr(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// runKeyed runs c, or takes its kept outputs when key (none: "") names a
// kept window, and keeps what it runs.
func (r *runner) runKeyed(ctx context.Context, c Command, key string, pr *progress) error {
	if r.takeReused(ctx, key, c) {
		r.log.Info("render: window reused", "step", c.Name, "key", key)
		pr.update(c.Name, c.Duration)
		return nil
	}
	if _, err := r.run(ctx, c, func(d time.Duration) { pr.update(c.Name, d) }); err != nil {
		return err
	}
	r.keepForReuse(ctx, key, c)
	pr.update(c.Name, c.Duration)
	return nil
}

// publish checks the work folder's outputs, then moves them into outDir,
// replacing older ones of the same names, and lists them.
func publish(ctx context.Context, work, outDir string, prog *Program) ([]Output, error) {
	var outs []Output
	for _, p := range prog.profiles {
		name := OutputName(p.Name)
		top := strings.Split(name, "/")[0]
		src := filepath.Join(work, outDirName, top)
		o := Output{Profile: p.Name, Path: filepath.Join(work, outDirName, filepath.FromSlash(name)), Duration: prog.Duration}
		err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(filepath.Join(work, outDirName), p)
			if err != nil {
				return err
			}
			o.Files = append(o.Files, filepath.ToSlash(rel))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("render: profile %s: %w", p.Name, err)
		}
		sort.Strings(o.Files)
		if !containsPath(o.Files, name) {
			return nil, fmt.Errorf("render: profile %s: FFmpeg wrote no %s", p.Name, name)
		}
		if err := verifyOutput(ctx, o, prog); err != nil {
			return nil, err
		}
		outs = append(outs, o)
	}
	for i, p := range prog.profiles {
		name := OutputName(p.Name)
		top := strings.Split(name, "/")[0]
		src, dst := filepath.Join(work, outDirName, top), filepath.Join(outDir, top)
		if err := os.RemoveAll(dst); err != nil {
			return nil, fmt.Errorf("render: replace %s: %w", dst, err)
		}
		if err := os.Rename(src, dst); err != nil {
			return nil, fmt.Errorf("render: %w", err)
		}
		outs[i].Path = filepath.Join(outDir, filepath.FromSlash(name))
	}
	return outs, nil
}

func containsPath(files []string, name string) bool {
	for _, f := range files {
		if path.Clean(f) == path.Clean(name) {
			return true
		}
	}
	return false
}

// absImages returns the plan with its image paths (relative to the current
// folder, as timeline.LoadEdits leaves them) made absolute: FFmpeg runs in
// the work folder.
func absImages(p *timeline.Plan) (*timeline.Plan, error) {
	abs := func(s string) (string, error) {
		if s == "" || strings.Contains(s, "://") || filepath.IsAbs(s) {
			return s, nil
		}
		a, err := filepath.Abs(s)
		if err != nil {
			return "", fmt.Errorf("render: image %s: %w", s, err)
		}
		return a, nil
	}
	c := *p
	var err error
	if c.Background.Image, err = abs(p.Background.Image); err != nil {
		return nil, err
	}
	c.Overlays = append([]timeline.PlacedOverlay(nil), p.Overlays...)
	for i := range c.Overlays {
		if c.Overlays[i].Image, err = abs(c.Overlays[i].Image); err != nil {
			return nil, err
		}
	}
	return &c, nil
}
