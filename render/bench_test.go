package render_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

// The render benchmark: a 4-participant, 5-minute call rendered at 720p30
// (mp4-720p), against a hand-written single FFmpeg command doing the same
// call the simplest way (xstack of the four videos, amix of the four
// sounds, each delayed by its participant's join time, the same x264 preset
// and rate control), and against the same command drawing tapedeck's grid
// (the pictures resized into its tiles, its gutters), in the same run. It
// prints CPU seconds per output second (user+sys time of the FFmpeg
// children and of the process itself) and the realtime factor of each,
// medians of TAPEDECK_BENCH_RUNS (default 3) alternating runs, and
// tapedeck's CPU by FFmpeg step; it asserts nothing about them.
//
//	go test -run '^$' -bench Render -benchtime 1x -timeout 60m ./render
//
// TAPEDECK_BENCH_LENGTH (a duration, default 5m) and TAPEDECK_BENCH_SOURCE
// (the participants' video size, default 640x360) change the call.

// benchMedia returns a video and an audio file of the given length, made
// once and kept in the temporary folder.
func benchMedia(b *testing.B, length time.Duration, w, h int) (video, audio string) {
	b.Helper()
	// v2: the sound is written as the recorder writes Opus (RecorderOpus).
	dir := filepath.Join(os.TempDir(), "tapedeck-bench-v2")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	video = filepath.Join(dir, fmt.Sprintf("video-%dx%d-%s.webm", w, h, length))
	audio = filepath.Join(dir, fmt.Sprintf("audio-%s.webm", length))
	p := synthPart{Video: "vp8", W: w, H: h, FPS: 30, Length: length, RecorderOpus: true}
	if _, err := os.Stat(video); err != nil {
		b.Logf("generating %s (once)", video)
		synthVideo(b, video+".tmp.webm", p)
		if err := os.Rename(video+".tmp.webm", video); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := os.Stat(audio); err != nil {
		synthAudio(b, audio+".tmp.webm", p)
		if err := os.Rename(audio+".tmp.webm", audio); err != nil {
			b.Fatal(err)
		}
	}
	return video, audio
}

// usedCPU returns the CPU time used so far by this process (the render's
// own work: the loudness measured in Go, the runner) and its waited-for
// children (FFmpeg).
func usedCPU(b *testing.B) time.Duration {
	var sum time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			b.Fatal(err)
		}
		sum += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return sum
}

type benchFigures struct {
	wall, cpu time.Duration
}

func measure(b *testing.B, f func()) benchFigures {
	cpu0, t0 := usedCPU(b), time.Now()
	f()
	return benchFigures{wall: time.Since(t0), cpu: usedCPU(b) - cpu0}
}

// benchCall is the benchmarks' call: TAPEDECK_BENCH_LENGTH long (def),
// sources TAPEDECK_BENCH_SOURCE (640x360), four participants joining at 0,
// 5, 10 and 15 s (the grid reflows three times, then holds four tiles), or
// TAPEDECK_BENCH_JOINS apart (0s: all at the start, no reflow).
func benchCall(b *testing.B, def time.Duration) (parts []synthPart, length time.Duration, w, h int) {
	length = def
	if s := os.Getenv("TAPEDECK_BENCH_LENGTH"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("TAPEDECK_BENCH_LENGTH: %v", err)
		}
		length = d
	}
	w, h = 640, 360
	if s := os.Getenv("TAPEDECK_BENCH_SOURCE"); s != "" {
		ws, hs, _ := strings.Cut(s, "x")
		w, _ = strconv.Atoi(ws)
		h, _ = strconv.Atoi(hs)
	}
	apart := 5 * time.Second
	if s := os.Getenv("TAPEDECK_BENCH_JOINS"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			b.Fatalf("TAPEDECK_BENCH_JOINS: %q is not a duration of 0 or more", s)
		}
		apart = d
	}
	if last := 3 * apart; last+time.Second > length {
		b.Fatalf("a %v call is too short for joins %v apart: the last joins at %v and needs a second of it", length, apart, last)
	}
	video, audio := benchMedia(b, length, w, h)
	for i, id := range []string{"alice", "bob", "carol", "dave"} {
		join := time.Duration(i) * apart
		parts = append(parts, synthPart{ID: id, Video: "vp8", Audio: true, W: w, H: h, FPS: 30, Join: join, Length: length - join,
			VideoFile: video, AudioFile: audio})
	}
	return parts, length, w, h
}

func BenchmarkRender(b *testing.B) {
	ff, _ := requireFFmpeg(b)
	parts, length, w, h := benchCall(b, 5*time.Minute)
	// TAPEDECK_BENCH_KEEP=DIR keeps the session, the work folders (with
	// their commands.sh) and the hand-written command (hand.sh) in DIR, to
	// profile the commands one by one.
	keep := os.Getenv("TAPEDECK_BENCH_KEEP")
	sessDir, outDir := b.TempDir(), b.TempDir()
	if keep != "" {
		sessDir, outDir = filepath.Join(keep, "session"), filepath.Join(keep, "out")
		for _, d := range []string{sessDir, outDir} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				b.Fatal(err)
			}
		}
	}
	ss := makeSession(b, sessDir, parts)

	// The hand-written command: a static 2×2 grid of the pictures as they
	// are, edge to edge. And the same command drawing tapedeck's grid: its
	// last layout's tiles (the four participants), the pictures resized
	// into them, the gutters filled.
	hand := handCommand(ss, parts, nil, nil, length, filepath.Join(outDir, "hand.mp4"))
	sameGrid := handCommand(ss, parts, tapedeckGrid(b, ss, parts), nil, length, filepath.Join(outDir, "hand-grid.mp4"))

	if keep != "" {
		if err := os.WriteFile(filepath.Join(keep, "hand.sh"), []byte(shellQuote(append([]string{ff}, hand...))+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(keep, "hand-grid.sh"), []byte(shellQuote(append([]string{ff}, sameGrid...))+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
	}

	// tapedeck drawing the hand-written command's tiles.
	noGap := gaplessEdits(b, ss, w, h)

	runs := benchRuns(3)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Alternate the two, several times: the machine may be shared (2
		// CPUs, other suites running), so the figures are the medians of
		// the runs, and the CPU is the user+sys time (rusage) of the children and the process,
		// not wall time.
		// TAPEDECK_BENCH_OVERLAYS=yes adds a third arm: tapedeck with every
		// scene composed with the overlay chain (stack.go), the compositor
		// before the xstack one.
		withOverlays := os.Getenv("TAPEDECK_BENCH_OVERLAYS") == "yes"
		var ours, gapless, theirs, gridded, overlaid []benchFigures
		var steps []map[string]time.Duration
		var d float64
		for r := 0; r < runs; r++ {
			if withOverlays {
				overlaid = append(overlaid, measure(b, func() {
					if _, err := render.Session(context.Background(), ss.Dir, render.WithOverlays(render.Options{OutDir: outDir})); err != nil {
						b.Fatal(err)
					}
				}))
			}
			st := &stepCPU{cpu: map[string]time.Duration{}}
			ours = append(ours, measure(b, func() {
				outs, err := render.Session(context.Background(), ss.Dir, render.Options{OutDir: outDir,
					Log: slog.New(st), KeepWork: keep != ""})
				if err != nil {
					b.Fatal(err)
				}
				d = outs[0].Duration.Seconds()
			}))
			steps = append(steps, st.cpu)
			gapless = append(gapless, measure(b, func() {
				if _, err := render.Session(context.Background(), ss.Dir, render.Options{OutDir: outDir, Edits: noGap}); err != nil {
					b.Fatal(err)
				}
			}))
			theirs = append(theirs, measure(b, func() {
				cmd := exec.Command(ff, hand...)
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("hand-written command: %v\n%s", err, out)
				}
			}))
			gridded = append(gridded, measure(b, func() {
				cmd := exec.Command(ff, sameGrid...)
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("hand-written command, tapedeck's grid: %v\n%s", err, out)
				}
			}))
		}
		load, _ := os.ReadFile("/proc/loadavg")
		fmt.Printf("\nrender benchmark: 4 participants (%dx%d VP8 + Opus, joining at %s), %s call,\n"+
			"720p30 H.264 High veryfast CRF 23 (3 Mbit/s cap) + AAC 128k; %d CPUs, load %s; medians of %d alternating runs\n",
			w, h, joinedAt(parts), length, runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "), runs)
		row := func(name string, fs []benchFigures) benchFigures { return benchRow(name, fs, d) }
		o := row("tapedeck render (mp4-720p)", ours)
		og := row("tapedeck, gap 0, no labels (no resize)", gapless)
		t := row("hand-written xstack + amix", theirs)
		tg := row("hand-written, tapedeck's grid", gridded)
		// ratio prints the CPU ratio a / b: of the medians, and run by run.
		ratio := func(name string, a, b []benchFigures, am, bm benchFigures) {
			var runs []string
			for r := range a {
				runs = append(runs, fmt.Sprintf("%.3f", a[r].cpu.Seconds()/b[r].cpu.Seconds()))
			}
			fmt.Printf("  CPU ratio %s: %.3f (medians; run by run: %s)\n", name, am.cpu.Seconds()/bm.cpu.Seconds(), strings.Join(runs, ", "))
		}
		if withOverlays {
			ratio("overlay chain / hand-written", overlaid, theirs, row("tapedeck, overlay chain", overlaid), t)
		}
		ratio("tapedeck / hand-written", ours, theirs, o, t)
		ratio("tapedeck / hand-written with tapedeck's grid", ours, gridded, o, tg)
		ratio("tapedeck with gap 0 / hand-written (the same tiles)", gapless, theirs, og, t)
		// Where tapedeck's CPU goes, by FFmpeg step; "other" is the rest
		// (ffprobe, fc-match, the process itself: loudness in Go).
		sum := printSteps("tapedeck by step", steps, d)
		fmt.Printf("  other %.3f\n", (o.cpu-sum).Seconds()/d)
		fmt.Printf("  tapedeck also: grid reflow on join, labels, sync-model placement, two-pass loudness normalization\n\n")
		b.ReportMetric(o.cpu.Seconds()/d, "cpu-s/out-s")
		b.ReportMetric(d/o.wall.Seconds(), "x-realtime")
		b.ReportMetric(t.cpu.Seconds()/d, "hand-cpu-s/out-s")
		b.ReportMetric(d/t.wall.Seconds(), "hand-x-realtime")
		b.ReportMetric(o.cpu.Seconds()/t.cpu.Seconds(), "cpu-ratio")
		b.ReportMetric(o.cpu.Seconds()/tg.cpu.Seconds(), "cpu-ratio-same-grid")
		b.ReportMetric(og.cpu.Seconds()/t.cpu.Seconds(), "cpu-ratio-gap0")
	}
}

// tapedeckGrid is the tiles of the last layout of tapedeck's render of the
// call (all of parts), by participant: the grid of the arm "hand-written,
// tapedeck's grid".
func tapedeckGrid(b *testing.B, ss *synthSession, parts []synthPart) map[string]timeline.Rect {
	b.Helper()
	plan, err := render.LoadPlan(ss.Dir, render.Options{})
	if err != nil {
		b.Fatal(err)
	}
	grid := map[string]timeline.Rect{}
	for _, t := range plan.Intervals[len(plan.Intervals)-1].Tiles {
		grid[t.Participant] = t.Rect
	}
	if len(grid) != len(parts) {
		b.Fatalf("the call's last layout has %d tiles, want %d", len(grid), len(parts))
	}
	return grid
}

// gaplessEdits are the edits of the arm of tapedeck drawing the
// hand-written command's tiles: the grid without gaps and without labels,
// so that four 640x360 pictures fill 640x360 tiles edge to edge and none is
// resized (tapedeck still reflows the grid as people join:
// TAPEDECK_BENCH_JOINS=0s draws the same picture).
// Every tile of the call's last layout must be the pictures' size, w×h.
func gaplessEdits(b *testing.B, ss *synthSession, w, h int) *timeline.Edits {
	b.Helper()
	e, err := timeline.ParseEdits("gap0.yaml", strings.NewReader("layouts: [{at: 0, type: grid, gap: 0}]\nlabels: false\n"))
	if err != nil {
		b.Fatal(err)
	}
	plan, err := render.LoadPlan(ss.Dir, render.Options{Edits: e})
	if err != nil {
		b.Fatal(err)
	}
	for _, t := range plan.Intervals[len(plan.Intervals)-1].Tiles {
		if t.Rect.W != w || t.Rect.H != h {
			b.Fatalf("gap 0: %s's tile is %dx%d, want the picture's %dx%d", t.Participant, t.Rect.W, t.Rect.H, w, h)
		}
	}
	return e
}

// handCommand is the hand-written FFmpeg command of the benchmark's call:
// each participant's video delayed by its join time (black before), stacked
// by one xstack, each sound likewise delayed and mixed by amix, the same x264
// preset and rate control as tapedeck's. With grid nil the pictures are
// stacked as they are in a 2×2 grid, edge to edge; else each is resized into
// its participant's rectangle of grid, and the rest of the frame is black.
// With snd nil the sounds are delayed by the join times; else as snd says.
func handCommand(ss *synthSession, parts []synthPart, grid map[string]timeline.Rect, snd *handSound, length time.Duration, out string) []string {
	args := []string{"-hide_banner", "-nostdin", "-y", "-loglevel", "error"}
	var fc strings.Builder
	var layout, ins []string
	for i, p := range parts {
		args = append(args, "-i", filepath.Join(ss.Dir, ss.Manifest.Lanes[2*i].Tracks[0].Segments[0].Path))
		size := fmt.Sprintf("%d:%d", p.W, p.H)
		if r, ok := grid[p.ID]; ok {
			size = fmt.Sprintf("%d:%d", r.W, r.H)
			layout = append(layout, fmt.Sprintf("%d_%d", r.X, r.Y))
		}
		fmt.Fprintf(&fc, "[%d:v]tpad=start_duration=%s:color=black,scale=%s,setsar=1[v%d];", i, sec(p.Join), size, i)
		ins = append(ins, fmt.Sprintf("[v%d]", i))
	}
	args = append(args, handAudioInputs(ss, parts)...)
	fc.WriteString(handMix(parts, snd, len(parts)))
	if grid == nil {
		fc.WriteString(strings.Join(ins, "") + "xstack=inputs=4:layout=0_0|w0_0|0_h0|w0_h0,fps=30,format=yuv420p[v]")
	} else {
		fmt.Fprintf(&fc, "%sxstack=inputs=%d:layout=%s:fill=black,pad=1280:720,fps=30,format=yuv420p[v]",
			strings.Join(ins, ""), len(ins), strings.Join(layout, "|"))
	}
	return append(args, "-filter_complex", fc.String(), "-map", "[v]", "-map", "[a]",
		"-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p", "-crf", "23", "-maxrate", "3000k",
		"-bufsize", "6000k", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2", "-movflags", "+faststart", "-t", sec(length), out)
}

// handSound is how a hand-written command places and levels the sounds:
// each participant's delayed by Delays (samples), the mix then through
// Filters (a gain).
type handSound struct {
	Delays  map[string]int64
	Filters []string
}

// handAudioInputs are the -i options of the participants' sound files.
func handAudioInputs(ss *synthSession, parts []synthPart) []string {
	var args []string
	for i := range parts {
		args = append(args, "-i", filepath.Join(ss.Dir, ss.Manifest.Lanes[2*i+1].Tracks[0].Segments[0].Path))
	}
	return args
}

// handMix is the hand-written command's audio graph: the sounds, inputs
// from first on, delayed (by their join times, or as snd says) and mixed
// by amix into [a]; it ends with a semicolon.
func handMix(parts []synthPart, snd *handSound, first int) string {
	var fc strings.Builder
	for i, p := range parts {
		delay := fmt.Sprint(p.Join.Milliseconds())
		if snd != nil {
			delay = fmt.Sprintf("%dS", snd.Delays[p.ID])
		}
		fmt.Fprintf(&fc, "[%d:a]adelay=delays=%s:all=1[a%d];", first+i, delay, i)
	}
	fc.WriteString("[a0][a1][a2][a3]amix=inputs=4:duration=longest:normalize=0")
	if snd != nil && len(snd.Filters) > 0 {
		fc.WriteString("," + strings.Join(snd.Filters, ","))
	}
	fc.WriteString("[a];")
	return fc.String()
}

// sameSound is the placing and level of tapedeck's mix of the call's
// sounds: each delayed to where the sync model plays it (the plan's first
// stretch of it), the mix given the gain tapedeck's normalization gives it,
// measured by the render's own meter on this mix (run here, uncounted), in
// work.
func sameSound(b *testing.B, ff string, ss *synthSession, parts []synthPart, length time.Duration, work string) *handSound {
	b.Helper()
	plan, err := render.LoadPlan(ss.Dir, render.Options{})
	if err != nil {
		b.Fatal(err)
	}
	snd := &handSound{Delays: map[string]int64{}}
	for _, iv := range plan.Intervals {
		for _, a := range iv.Audio {
			if _, ok := snd.Delays[a.Participant]; ok {
				continue
			}
			d := int64(math.Round((iv.Start.Seconds() - a.Source.FileStart/a.Source.Speed) * 48000))
			if d < 0 || a.Source.Segment != 0 {
				b.Fatalf("%s's sound plays from %.6f s of its file %d at %v: not a delay of its file", a.Participant, a.Source.FileStart, a.Source.Segment, iv.Start)
			}
			snd.Delays[a.Participant] = d
		}
	}
	if len(snd.Delays) != len(parts) {
		b.Fatalf("the plan plays %d participants' sounds, want %d", len(snd.Delays), len(parts))
	}
	mix := filepath.Join(work, "same-sound-mix.wav")
	args := append([]string{"-hide_banner", "-nostdin", "-y", "-loglevel", "error"}, handAudioInputs(ss, parts)...)
	args = append(args, "-filter_complex", strings.TrimSuffix(handMix(parts, snd, 0), ";"), "-map", "[a]",
		"-c:a", "pcm_f32le", "-t", sec(length), "-f", "wav", mix)
	if out, err := exec.Command(ff, args...).CombinedOutput(); err != nil {
		b.Fatalf("the hand-written mix: %v\n%s", err, out)
	}
	if snd.Filters, err = render.NormalizationFilters(mix); err != nil {
		b.Fatal(err)
	}
	return snd
}

// audioStreamMD5 is the MD5 of the packets of path's audio stream.
func audioStreamMD5(ff, path string) (string, error) {
	out, err := exec.Command(ff, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", path,
		"-map", "0:a", "-c", "copy", "-f", "md5", "-").Output()
	if err != nil {
		return "", fmt.Errorf("md5 of %s's audio: %w", path, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// benchRow prints one arm of a benchmark: the medians of its runs' wall and
// CPU time, CPU per output second (d seconds of output) and realtime factor,
// and each run's CPU; it returns the medians.
func benchRow(name string, fs []benchFigures, d float64) benchFigures {
	f := benchFigures{wall: medianDur(fs, func(x benchFigures) time.Duration { return x.wall }),
		cpu: medianDur(fs, func(x benchFigures) time.Duration { return x.cpu })}
	var all []string
	for _, x := range fs {
		all = append(all, fmt.Sprintf("%.1f", x.cpu.Seconds()))
	}
	fmt.Printf("  %-52s %7.1f s wall %7.1f s CPU   %6.3f CPU s per output s   %5.2fx realtime   (CPU s: %s)\n",
		name, f.wall.Seconds(), f.cpu.Seconds(), f.cpu.Seconds()/d, d/f.wall.Seconds(), strings.Join(all, ", "))
	return f
}

// printSteps prints the median over runs of each step's CPU per output
// second (d seconds of output), without ending the line, and returns the
// sum of those medians.
func printSteps(label string, runs []map[string]time.Duration, d float64) time.Duration {
	var names []string
	for n := range runs[0] {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Printf("  %s (CPU s per output s, medians):", label)
	var sum time.Duration
	for _, n := range names {
		m := medianDur(runs, func(x map[string]time.Duration) time.Duration { return x[n] })
		sum += m
		fmt.Printf("  %s %.3f", n, m.Seconds()/d)
	}
	return sum
}

// medianDur is the median of f over xs.
func medianDur[T any](xs []T, f func(T) time.Duration) time.Duration {
	v := make([]time.Duration, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// stepCPU is a log handler that adds up the CPU time of the render's FFmpeg
// steps, from the runner's "render: ffmpeg done" records (the windows of a
// step, such as the video jobs, count as one).
type stepCPU struct {
	mu  sync.Mutex
	cpu map[string]time.Duration
}

func (h *stepCPU) Enabled(context.Context, slog.Level) bool { return true }
func (h *stepCPU) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *stepCPU) WithGroup(string) slog.Handler            { return h }
func (h *stepCPU) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "render: ffmpeg done" {
		return nil
	}
	var step string
	var cpu time.Duration
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "step":
			step = a.Value.String()
		case "cpu":
			cpu = a.Value.Duration()
		}
		return true
	})
	// The windows of a step count as one: "video 3/10" is "video", "video
	// 3/10 and audio 3/10" (joint.go) "video and audio".
	var words []string
	for _, w := range strings.Fields(step) {
		if !strings.Contains(w, "/") {
			words = append(words, w)
		}
	}
	step = strings.Join(words, " ")
	h.mu.Lock()
	h.cpu[step] += cpu
	h.mu.Unlock()
	return nil
}

// shellQuote quotes a command line for a shell.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// joinedAt says when the participants of parts join: "0, 5, 10, 15 s".
func joinedAt(parts []synthPart) string {
	var at []string
	for _, p := range parts {
		at = append(at, strconv.FormatFloat(p.Join.Seconds(), 'f', -1, 64))
	}
	return strings.Join(at, ", ") + " s"
}
