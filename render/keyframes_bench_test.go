package render_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
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
// The call is benchCall's, 100 s long unless TAPEDECK_BENCH_LENGTH says
// otherwise. Medians of TAPEDECK_BENCH_RUNS (3) alternating runs.
func BenchmarkKeyframes(b *testing.B) {
	requireFFmpeg(b)
	const window = 10 * time.Second
	call, length, w, h := benchCall(b, 100*time.Second)
	// As a browser sends unless asked: the first frame only.
	sparse := keyedSession(b, call, length, w, h, "first-only", func(_, _ time.Duration) []time.Duration { return []time.Duration{} })
	asked := keyedSession(b, call, length, w, h, "asked", askedKeys(window))

	runs := benchRuns(3)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		type arm struct {
			name  string
			ss    *synthSession
			job   time.Duration
			runs  []benchFigures
			steps []map[string]time.Duration
		}
		arms := []*arm{
			{name: fmt.Sprintf("%v windows, a keyframe at each source's start only", window), ss: sparse, job: window},
			{name: fmt.Sprintf("%v windows, keyframes %v before each window", window, askedLead), ss: asked, job: window},
			{name: "one job, a keyframe at each source's start only", ss: sparse, job: length},
		}
		var d float64
		for r := 0; r < runs; r++ {
			for _, a := range arms {
				st := &stepCPU{cpu: map[string]time.Duration{}}
				a.runs = append(a.runs, measure(b, func() {
					outs, err := render.Session(context.Background(), a.ss.Dir, render.Options{OutDir: b.TempDir(), MaxJobDuration: a.job, Log: slog.New(st)})
					if err != nil {
						b.Fatal(err)
					}
					d = outs[0].Duration.Seconds()
				}))
				a.steps = append(a.steps, st.cpu)
			}
		}
		load, _ := os.ReadFile("/proc/loadavg")
		fmt.Printf("\nkeyframes benchmark: 4 participants (%dx%d VP8 + Opus, joining at %s), %s call, 720p30 veryfast;\n"+
			"%d CPUs, load %s; medians of %d alternating runs\n", w, h, joinedAt(call), length, runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "), runs)
		var cpu []float64
		for _, a := range arms {
			cpu = append(cpu, benchRow(a.name, a.runs, d).cpu.Seconds())
			printSteps("  by step", a.steps, d)
			fmt.Println()
		}
		fmt.Printf("  windows without keyframes cost %.2fx the windows with them; those cost %.2fx one job\n\n", cpu[0]/cpu[1], cpu[1]/cpu[2])
		b.ReportMetric(cpu[0]/d, "cpu-s/out-s-first-key-only")
		b.ReportMetric(cpu[1]/d, "cpu-s/out-s-keys-asked")
		b.ReportMetric(cpu[2]/d, "cpu-s/out-s-one-job")
	}
}

// keyedSession writes the call with each video's keyframes at keys(join,
// length), encoded once into a cache under tag.
func keyedSession(b *testing.B, call []synthPart, length time.Duration, w, h int, tag string,
	keys func(join, length time.Duration) []time.Duration) *synthSession {
	b.Helper()
	cache := filepath.Join(os.TempDir(), "tapedeck-bench-keys-v2")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		b.Fatal(err)
	}
	parts := slices.Clone(call)
	for i := range parts {
		p := &parts[i]
		p.Keys = keys(p.Join, p.Length)
		p.VideoFile = filepath.Join(cache, fmt.Sprintf("video-%dx%d-%s-%s-%s.webm", w, h, length, tag, p.ID))
		if _, err := os.Stat(p.VideoFile); err != nil {
			b.Logf("generating %s (once)", p.VideoFile)
			synthVideo(b, p.VideoFile+".tmp.webm", *p)
			if err := os.Rename(p.VideoFile+".tmp.webm", p.VideoFile); err != nil {
				b.Fatal(err)
			}
		}
	}
	return makeSession(b, b.TempDir(), parts)
}

// askedKeys places keyframes as the recorder asks for them
// (capture.KeyframeLead, a second before every multiple of the window of
// session time) and a sender answers: askedLead before (file time =
// session time - join).
func askedKeys(window time.Duration) func(join, length time.Duration) []time.Duration {
	return func(join, length time.Duration) []time.Duration {
		var ks []time.Duration
		for at := window - askedLead; at-join < length; at += window {
			if at > join {
				ks = append(ks, at-join)
			}
		}
		return ks
	}
}

// askedLead is where a sender's answer to the recorder's keyframe request
// lands before a window: capture.KeyframeLead (1 s) less a frame and the
// trip.
const askedLead = 950 * time.Millisecond

// benchRuns is TAPEDECK_BENCH_RUNS (def when unset or not a positive
// number).
func benchRuns(def int) int {
	if n, err := strconv.Atoi(os.Getenv("TAPEDECK_BENCH_RUNS")); err == nil && n > 0 {
		return n
	}
	return def
}
