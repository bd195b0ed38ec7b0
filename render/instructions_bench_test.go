package render_test

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/render"
)

// BenchmarkInstructions counts what the render benchmark's arms execute:
// every FFmpeg and ffprobe process runs under valgrind's callgrind, which
// counts the instructions a process executes in user space, and the counts
// are added up by arm and by library.
//
// CPU time on this shared 2-CPU VM varies by up to 30 % between runs of the
// same command, more than the differences BenchmarkRender looks for, and the
// VM has no hardware counters. An instruction count does not depend on what
// else runs, so the arms run once, two at a time. It is not CPU time: the
// kernel's work (page faults, threads waking each other) and memory stalls
// are not in it, nor is the render's own Go process (its loudness
// measurement), whose CPU time is printed beside. So it complements
// BenchmarkRender; it does not replace it.
//
//	TAPEDECK_BENCH_LENGTH=60s go test -run '^$' -bench Instructions -benchtime 1x -timeout 180m ./render
//
// The call is benchCall's, 60 s unless TAPEDECK_BENCH_LENGTH says otherwise
// (valgrind runs FFmpeg about 20 times slower). The arms: 1. tapedeck, 2.
// the hand-written command (edge to edge), 3. tapedeck with gap 0 and no
// labels, 4. the hand-written command drawing tapedeck's grid, 5. tapedeck
// in 10-s windows, 6. the hand-written command (edge to edge) making
// tapedeck's sound: each participant's placed where the sync model plays
// it, the mix given the gain of tapedeck's loudness normalization (FFmpeg's
// AAC encoder executes more or less as the sound differs: a millisecond's
// shift moved it by 6 %, 2 dB by 13 %). With TAPEDECK_BENCH_JOINS=0s
// (everyone from the start) arms 2, 3 and 6 draw the same picture, and arms
// 3 and 6 make the same sound: their AAC streams must be identical.
// TAPEDECK_BENCH_ARMS=3,6 runs those only. It needs valgrind and a C compiler (cc, for the shim below) and
// skips without them.
func BenchmarkInstructions(b *testing.B) {
	ff, fp := requireFFmpeg(b)
	vg, err := exec.LookPath("valgrind")
	if err != nil {
		b.Skip("valgrind is not installed (apt-get install valgrind)")
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		b.Skip("no C compiler (cc) for the libhwy shim")
	}
	const window = 10 * time.Second
	parts, length, w, h := benchCall(b, time.Minute)
	ss := makeSession(b, b.TempDir(), parts)
	asked := keyedSession(b, parts, length, w, h, "asked", askedKeys(window))
	// TAPEDECK_BENCH_KEEP=DIR keeps the arms' folders (arm-N/counted: the
	// callgrind files, for callgrind_annotate) in DIR.
	tools := b.TempDir()
	if keep := os.Getenv("TAPEDECK_BENCH_KEEP"); keep != "" {
		if err := os.MkdirAll(keep, 0o755); err != nil {
			b.Fatal(err)
		}
		tools = keep
	}
	shim := libhwyShim(b, cc, tools)

	grid, noGap := tapedeckGrid(b, ss, parts), gaplessEdits(b, ss, w, h)

	// An arm runs either tapedeck (opts, on sess) or a hand-written command
	// (hand), with FFmpeg and ffprobe counted into its own folder.
	type arm struct {
		name string
		sess *synthSession
		opts render.Options
		hand []string
		// What it counted: instructions by library, and the CPU time of
		// the render's own process (tapedeck's arms).
		byLib     map[string]int64
		processes int
		self      time.Duration
		// frames is the video frames its output holds: the figures are
		// per output second, and a hand-written command's output need not
		// last the call (it ends with its inputs' last frames).
		frames int64
		out    string
	}
	arms := []*arm{
		{name: "tapedeck render (mp4-720p, one job)", sess: ss},
		{name: "hand-written xstack + amix (edge to edge)", hand: handCommand(ss, parts, nil, nil, length, "hand.mp4")},
		{name: "tapedeck, gap 0, no labels (no resize)", sess: ss, opts: render.Options{Edits: noGap}},
		{name: "hand-written, tapedeck's grid", hand: handCommand(ss, parts, grid, nil, length, "hand-grid.mp4")},
		{name: fmt.Sprintf("tapedeck in %v windows (keyframes asked)", window), sess: asked,
			opts: render.Options{MaxJobDuration: window}},
		{name: "hand-written (edge to edge), tapedeck's sound",
			hand: handCommand(ss, parts, nil, sameSound(b, ff, ss, parts, length, b.TempDir()), length, "hand-sound.mp4")},
	}
	armDir := func(a *arm) string { return filepath.Join(tools, fmt.Sprintf("arm-%d", slices.Index(arms, a)+1)) }
	// run runs a in its folder, with FFmpeg and ffprobe (ffmpeg-go runs it
	// by name, so through PATH) wrapped to be counted; what an earlier run
	// of a counted is dropped.
	run := func(a *arm) error {
		dir := armDir(a)
		bin := filepath.Join(dir, "bin")
		counted := filepath.Join(dir, "counted")
		if err := os.RemoveAll(counted); err != nil {
			return err
		}
		for _, d := range []string{bin, counted} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		q := func(s string) string { return shellQuote([]string{s}) }
		wrap := func(name, real string) (string, error) {
			path := filepath.Join(bin, name)
			script := fmt.Sprintf("#!/bin/sh\nLD_PRELOAD=%s exec %s -q --tool=callgrind --callgrind-out-file=%s/%s.%%p %s \"$@\"\n",
				q(shim), q(vg), q(counted), name, q(real))
			return path, os.WriteFile(path, []byte(script), 0o755)
		}
		ffw, err := wrap("ffmpeg", ff)
		if err != nil {
			return err
		}
		if _, err := wrap("ffprobe", fp); err != nil {
			return err
		}
		var out string
		if a.hand != nil {
			cmd := exec.Command(ffw, a.hand...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v\n%s", a.name, err, out)
			}
			out = filepath.Join(dir, a.hand[len(a.hand)-1])
		} else {
			opts := a.opts
			opts.OutDir, opts.FFmpeg, opts.Log = filepath.Join(dir, "out"), ffw, slog.New(slog.DiscardHandler)
			self0, err := selfCPU()
			if err != nil {
				return err
			}
			outs, err := render.Session(context.Background(), a.sess.Dir, opts)
			if err != nil {
				return fmt.Errorf("%s: %w", a.name, err)
			}
			self1, err := selfCPU()
			if err != nil {
				return err
			}
			a.self = self1 - self0
			out = outs[0].Path
		}
		a.out = out
		// Counted by the real ffprobe, not the wrapped one.
		if a.frames, err = videoFrames(fp, out); err != nil {
			return fmt.Errorf("%s: %w", a.name, err)
		}
		a.byLib, a.processes, err = countedInstructions(counted)
		return err
	}
	// TAPEDECK_BENCH_ARMS (say "3,2") runs only those arms (numbered from 1,
	// as printed).
	picked := arms
	if s := os.Getenv("TAPEDECK_BENCH_ARMS"); s != "" {
		picked = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > len(arms) {
				b.Fatalf("TAPEDECK_BENCH_ARMS: %q is not an arm from 1 to %d", f, len(arms))
			}
			picked = append(picked, arms[n-1])
		}
	}
	// Two at a time, a tapedeck arm beside a hand-written one: ffprobe is
	// found through PATH, one for the process, so two tapedeck arms never
	// run together.
	var ours, hands []*arm
	for _, a := range picked {
		if a.hand == nil {
			ours = append(ours, a)
		} else {
			hands = append(hands, a)
		}
	}
	path := os.Getenv("PATH")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for o, h := ours, hands; len(o) > 0 || len(h) > 0; {
			var group []*arm
			if len(o) > 0 {
				group, o = append(group, o[0]), o[1:]
				b.Setenv("PATH", filepath.Join(armDir(group[0]), "bin")+string(os.PathListSeparator)+path)
			}
			if len(h) > 0 {
				group, h = append(group, h[0]), h[1:]
			}
			var wg sync.WaitGroup
			errs := make([]error, len(group))
			for j, a := range group {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[j] = run(a)
				}()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.StopTimer()

	fmt.Printf("\ninstruction counts (valgrind callgrind, user space; FFmpeg and ffprobe): 4 participants (%dx%d VP8 + Opus,\n"+
		"joining at %s), %s call, 720p30 H.264 High veryfast CRF 23 + AAC 128k\n", w, h, joinedAt(parts), length)
	total := make([]int64, len(arms))
	for i, a := range arms {
		if a.processes == 0 {
			continue // not picked
		}
		for _, n := range a.byLib {
			total[i] += n
		}
		self := ""
		if a.hand == nil {
			self = fmt.Sprintf("   render's own process %.2f CPU s (not counted)", a.self.Seconds())
		}
		fmt.Printf("  %d. %-60s %8.2f G instructions  %5d frames  %6.3f G per output s  %3d processes%s\n", i+1, a.name,
			float64(total[i])/1e9, a.frames, float64(total[i])/1e9/outSeconds(a.frames), a.processes, self)
	}
	// The ratios are of instructions per output second.
	ratio := func(name, metric string, x, y int) {
		if total[x] == 0 || total[y] == 0 {
			return
		}
		r := float64(total[x]) / outSeconds(arms[x].frames) / (float64(total[y]) / outSeconds(arms[y].frames))
		fmt.Printf("  ratio per output second, %s: %.4f (of instructions: %.4f)\n", name, r, float64(total[x])/float64(total[y]))
		b.ReportMetric(r, metric)
	}
	ratio("tapedeck / hand-written", "instr-ratio", 0, 1)
	ratio("tapedeck / hand-written with tapedeck's grid", "instr-ratio-same-grid", 0, 3)
	ratio("tapedeck with gap 0, no labels / hand-written (the same tiles)", "instr-ratio-gap0", 2, 1)
	ratio("windows / one job", "instr-ratio-windows", 4, 0)
	ratio("tapedeck with gap 0, no labels / hand-written making its sound", "instr-ratio-same-sound", 2, 5)
	// Arms 3 and 6 hand their AAC encoders the same samples, or the last
	// ratio is not of the same work.
	if arms[2].processes > 0 && arms[5].processes > 0 {
		var sums [2]string
		for i, a := range []*arm{arms[2], arms[5]} {
			if sums[i], err = audioStreamMD5(ff, a.out); err != nil {
				b.Fatal(err)
			}
		}
		if sums[0] != sums[1] {
			b.Errorf("arms 3 and 6 do not make the same sound: their AAC streams differ (%s, %s)", sums[0], sums[1])
		} else {
			fmt.Printf("  arms 3 and 6: the same AAC stream (%s)\n", sums[0])
		}
	}
	// By library: those with at least 0.5 % of an arm's count, the rest
	// as "other"; a column by arm run.
	var ran []int
	for i, a := range arms {
		if a.processes > 0 {
			ran = append(ran, i)
		}
	}
	const other = "other"
	libs := map[string]bool{}
	for _, i := range ran {
		for l, n := range arms[i].byLib {
			if n*200 >= total[i] {
				libs[l] = true
			}
		}
	}
	byLib := make([]map[string]int64, len(arms))
	for _, i := range ran {
		byLib[i] = map[string]int64{}
		for l, n := range arms[i].byLib {
			if !libs[l] {
				l = other
			}
			byLib[i][l] += n
		}
	}
	names := []string{other}
	for l := range libs {
		names = append(names, l)
	}
	slices.SortFunc(names, func(x, y string) int { return cmp.Compare(byLib[ran[0]][y], byLib[ran[0]][x]) })
	fmt.Printf("  by library (G instructions):\n  %-28s", "")
	for _, i := range ran {
		fmt.Printf(" %10s", fmt.Sprintf("arm %d", i+1))
	}
	fmt.Println()
	for _, l := range names {
		fmt.Printf("  %-28s", l)
		for _, i := range ran {
			fmt.Printf(" %10.3f", float64(byLib[i][l])/1e9)
		}
		fmt.Println()
	}
	fmt.Println()
}

// outSeconds is the length of frames at the benchmark's 30 fps.
func outSeconds(frames int64) float64 { return float64(frames) / 30 }

// videoFrames counts the video packets (frames) of an output with ffprobe.
func videoFrames(ffprobe, path string) (int64, error) {
	out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", "v:0", "-count_packets",
		"-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path).Output()
	if err != nil {
		return 0, fmt.Errorf("ffprobe %s: %w", path, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("ffprobe %s: %q is not a frame count", path, out)
	}
	return n, nil
}

// selfCPU is the CPU time this process has used (user + sys); it is read
// from the arms' goroutines, so it returns its error.
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// libhwyShim builds, in dir, a library to preload into FFmpeg under
// valgrind: FFmpeg links libjxl, which links libhwy, whose initialisation
// runs RDTSCP (hwy::platform::TimerResolution), an instruction valgrind 3.19
// cannot decode (SIGILL before main). The shim's TimerResolution is found
// first and does not run it; nothing else FFmpeg does calls it.
func libhwyShim(b *testing.B, cc, dir string) string {
	src := filepath.Join(dir, "hwyshim.c")
	lib := filepath.Join(dir, "libhwyshim.so")
	body := "unsigned long long timer_resolution(void) __asm__(\"_ZN3hwy8platform15TimerResolutionEv\");\n" +
		"unsigned long long timer_resolution(void) { return 1; }\n"
	if err := os.WriteFile(src, []byte(body), 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command(cc, "-O2", "-shared", "-fPIC", "-o", lib, src).CombinedOutput(); err != nil {
		b.Fatalf("building the libhwy shim: %v\n%s", err, out)
	}
	return lib
}

// countedInstructions reads the callgrind files in dir (one per process)
// and returns the instructions they counted by library (the shared object's
// file name; the program itself under its name) and the processes. Every
// file's costs must add up to its own total.
func countedInstructions(dir string) (map[string]int64, int, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.*"))
	if err != nil {
		return nil, 0, err
	}
	if len(files) == 0 {
		return nil, 0, fmt.Errorf("counting instructions: no callgrind file in %s", dir)
	}
	by := map[string]int64{}
	for _, f := range files {
		if err := readCallgrind(f, by); err != nil {
			return nil, 0, err
		}
	}
	return by, len(files), nil
}

// readCallgrind adds the self cost (the one event, Ir) of every object in
// the callgrind file path to by. In the format, "ob=" names the object of
// the cost lines that follow (names are compressed: "(n) name" the first
// time, "(n)" after), and the cost line after a "calls=" line is the
// inclusive cost of that call, counted where it was spent.
func readCallgrind(path string, by map[string]int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	names := map[string]string{}
	var ob string
	var sum, totals int64
	afterCall, sawTotals := false, false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
		case strings.HasPrefix(line, "ob="):
			ob = compressedName(names, strings.TrimPrefix(line, "ob="))
		case strings.HasPrefix(line, "calls="):
			afterCall = true
		case strings.HasPrefix(line, "totals:"):
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "totals:")), 10, 64)
			if err != nil {
				return fmt.Errorf("%s: %q: %w", path, line, err)
			}
			totals, sawTotals = n, true
		case strings.ContainsRune("0123456789+-*", rune(line[0])):
			fields := strings.Fields(line)
			if len(fields) != 2 {
				return fmt.Errorf("%s: cost line %q: want a position and one event", path, line)
			}
			n, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return fmt.Errorf("%s: cost line %q: %w", path, line, err)
			}
			if afterCall {
				afterCall = false
				continue
			}
			by[filepath.Base(ob)] += n
			sum += n
		default:
			// cob=, cfn=, fn=, fl=, the header: ob= alone places costs.
			if strings.HasPrefix(line, "cob=") {
				compressedName(names, strings.TrimPrefix(line, "cob="))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if !sawTotals || sum != totals {
		return fmt.Errorf("%s: the costs add up to %d, its totals line says %d (seen: %v)", path, sum, totals, sawTotals)
	}
	return nil
}

// compressedName resolves a callgrind name, "(n) name" or "(n)", recording
// the first form in names.
func compressedName(names map[string]string, s string) string {
	if !strings.HasPrefix(s, "(") {
		return s
	}
	id, name, found := strings.Cut(s, ")")
	if !found {
		return s
	}
	if name = strings.TrimSpace(name); name != "" {
		names[id] = name
		return name
	}
	return names[id]
}

// TestReadCallgrind reads callgrind's format as BenchmarkInstructions does:
// self costs by object, the inclusive cost after a call left out, the
// compressed names resolved, and a file whose costs do not add up to its
// totals refused.
func TestReadCallgrind(t *testing.T) {
	by := map[string]int64{}
	if err := readCallgrind(filepath.Join("testdata", "callgrind", "two-objects.out"), by); err != nil {
		t.Fatal(err)
	}
	if got, want := by["ffmpeg"], int64(111); got != want {
		t.Errorf("ffmpeg: %d instructions, want %d", got, want)
	}
	if got, want := by["libc.so.6"], int64(1000); got != want {
		t.Errorf("libc.so.6: %d instructions, want %d", got, want)
	}
	if got, want := len(by), 2; got != want {
		t.Errorf("%d objects (%v), want %d", got, by, want)
	}
	if err := readCallgrind(filepath.Join("testdata", "callgrind", "bad-totals.out"), map[string]int64{}); err == nil {
		t.Error("costs adding up to 1111 with totals 1112: no error")
	}
}
