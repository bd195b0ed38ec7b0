package render_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/render"
)

// BenchmarkKeyframes measures what the sources' keyframes cost a render in
// windows (the render during calls and after them: 10-second windows). A
// window's decoders start at the keyframe before its seek point (half a
// second and a frame before its first frame), so a source with one keyframe
// at its start makes every window decode the call from the beginning up to
// the window (a browser makes a keyframe every 3000 frames, 100 s at 30 fps,
// unless asked). The recorder asks every sender for one a second before
// each multiple of the window of session time
// (capture.Config.KeyframeInterval), which the second arm reproduces. The
// third arm renders the first arm's media in one job: no window at all.
//
// The call: TAPEDECK_BENCH_LENGTH (100 s), four participants joining at 0,
// 5, 10 and 15 s, sources TAPEDECK_BENCH_SOURCE (640x360). Medians of
// TAPEDECK_BENCH_RUNS (3) alternating runs.
func BenchmarkKeyframes(b *testing.B) {
	requireFFmpeg(b)
	length := 100 * time.Second
	if s := os.Getenv("TAPEDECK_BENCH_LENGTH"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("TAPEDECK_BENCH_LENGTH: %v", err)
		}
		length = d
	}
	const window = 10 * time.Second
	w, h := 640, 360
	if s := os.Getenv("TAPEDECK_BENCH_SOURCE"); s != "" {
		if _, err := fmt.Sscanf(s, "%dx%d", &w, &h); err != nil {
			b.Fatalf("TAPEDECK_BENCH_SOURCE %q: want WxH", s)
		}
	}
	cache := filepath.Join(os.TempDir(), "tapedeck-bench-keys-v2")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		b.Fatal(err)
	}
	_, audio := benchMedia(b, length, w, h)
	// parts returns the call, each video with keys(join, length) as its
	// keyframes, encoded once into the cache under tag.
	parts := func(tag string, keys func(join, length time.Duration) []time.Duration) []synthPart {
		var ps []synthPart
		for i, id := range []string{"alice", "bob", "carol", "dave"} {
			join := time.Duration(i) * 5 * time.Second
			p := synthPart{ID: id, Video: "vp8", Audio: true, W: w, H: h, FPS: 30, Join: join, Length: length - join,
				Keys: keys(join, length-join), AudioFile: audio}
			p.VideoFile = filepath.Join(cache, fmt.Sprintf("video-%dx%d-%s-%s-%s.webm", w, h, length, tag, id))
			if _, err := os.Stat(p.VideoFile); err != nil {
				b.Logf("generating %s (once)", p.VideoFile)
				synthVideo(b, p.VideoFile+".tmp.webm", p)
				if err := os.Rename(p.VideoFile+".tmp.webm", p.VideoFile); err != nil {
					b.Fatal(err)
				}
			}
			ps = append(ps, p)
		}
		return ps
	}
	// As a browser sends unless asked: the first frame only.
	sparse := makeSession(b, b.TempDir(), parts("first-only", func(_, _ time.Duration) []time.Duration { return []time.Duration{} }))
	// As the recorder asks (capture.KeyframeLead, a second before every
	// multiple of the window of session time) and a sender answers: 0.95 s
	// before (file time = session time - join).
	asked := makeSession(b, b.TempDir(), parts("asked", func(join, length time.Duration) []time.Duration {
		var ks []time.Duration
		for at := window - askedLead; at-join < length; at += window {
			if at > join {
				ks = append(ks, at-join)
			}
		}
		return ks
	}))

	runs := benchRuns()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var one, win, winAsked []benchFigures
		// The CPU by step of each arm's last run.
		steps := map[string]*stepCPU{}
		var d float64
		render1 := func(arm string, ss *synthSession, job time.Duration) func() {
			return func() {
				st := &stepCPU{cpu: map[string]time.Duration{}}
				steps[arm] = st
				outs, err := render.Session(context.Background(), ss.Dir, render.Options{OutDir: b.TempDir(), MaxJobDuration: job, Log: slog.New(st)})
				if err != nil {
					b.Fatal(err)
				}
				d = outs[0].Duration.Seconds()
			}
		}
		for r := 0; r < runs; r++ {
			win = append(win, measure(b, render1("win", sparse, window)))
			winAsked = append(winAsked, measure(b, render1("asked", asked, window)))
			one = append(one, measure(b, render1("one", sparse, length)))
		}
		load, _ := os.ReadFile("/proc/loadavg")
		fmt.Printf("\nkeyframes benchmark: 4 participants (%dx%d VP8 + Opus, joining at 0, 5, 10, 15 s), %s call, 720p30 veryfast;\n"+
			"%d CPUs, load %s; medians of %d alternating runs\n", w, h, length, runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "), runs)
		row := func(name, arm string, fs []benchFigures) float64 {
			cpu := medianDur(fs, func(x benchFigures) time.Duration { return x.cpu }).Seconds()
			wall := medianDur(fs, func(x benchFigures) time.Duration { return x.wall }).Seconds()
			var all []string
			for _, x := range fs {
				all = append(all, fmt.Sprintf("%.1f", x.cpu.Seconds()))
			}
			fmt.Printf("  %-62s %6.1f s wall %6.1f s CPU  %6.3f CPU s per output s  (CPU s: %s)\n", name, wall, cpu, cpu/d, strings.Join(all, ", "))
			var names []string
			for n := range steps[arm].cpu {
				names = append(names, n)
			}
			sort.Strings(names)
			fmt.Printf("  %-62s", "    by step, last run (CPU s per output s):")
			for _, n := range names {
				fmt.Printf("  %s %.3f", n, steps[arm].cpu[n].Seconds()/d)
			}
			fmt.Println()
			return cpu
		}
		cw := row(fmt.Sprintf("%v windows, a keyframe at each source's start only", window), "win", win)
		ca := row(fmt.Sprintf("%v windows, keyframes %v before each window", window, askedLead), "asked", winAsked)
		co := row("one job, a keyframe at each source's start only", "one", one)
		fmt.Printf("  windows without keyframes cost %.2fx the windows with them; those cost %.2fx one job\n\n", cw/ca, ca/co)
		b.ReportMetric(cw/d, "cpu-s/out-s-first-key-only")
		b.ReportMetric(ca/d, "cpu-s/out-s-keys-asked")
		b.ReportMetric(co/d, "cpu-s/out-s-one-job")
	}
}

// askedLead is where a sender's answer to the recorder's keyframe request
// lands before a window: capture.KeyframeLead (1 s) less a frame and the
// trip.
const askedLead = 950 * time.Millisecond

// benchRuns is TAPEDECK_BENCH_RUNS (3 when unset or not a positive number).
func benchRuns() int {
	if n, err := strconv.Atoi(os.Getenv("TAPEDECK_BENCH_RUNS")); err == nil && n > 0 {
		return n
	}
	return 3
}
