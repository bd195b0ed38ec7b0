package render_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/render"
)

// The export benchmark: the 4-participant, 5-minute call of BenchmarkRender
// exported for editors (a WAV and a 30 fps MP4 per participant at its own
// 640x360, the three timelines), beside the 4-up composite render of the
// same call (mp4-720p) in the same run, and the audio-only export (--video
// none). It prints CPU seconds per output second of each, the export's
// ratio to the render, and the realtime factors; it asserts nothing about
// them.
//
//	go test -run '^$' -bench ExportVsRender -benchtime 1x -timeout 60m ./render
//
// (make bench runs it with the render benchmark: -bench Render.)
// TAPEDECK_BENCH_LENGTH, TAPEDECK_BENCH_SOURCE and TAPEDECK_BENCH_RUNS are
// as for BenchmarkRender.
func BenchmarkExportVsRender(b *testing.B) {
	requireFFmpeg(b)
	parts, length, w, h := benchCall(b, 5*time.Minute)
	ss := makeSession(b, b.TempDir(), parts)
	runs := benchRuns(2)
	out := b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var comp, exp, aud []benchFigures
		var d float64
		for r := 0; r < runs; r++ {
			comp = append(comp, measure(b, func() {
				outs, err := render.Session(context.Background(), ss.Dir, render.Options{OutDir: filepath.Join(out, "render"), Log: testLogger(b)})
				if err != nil {
					b.Fatal(err)
				}
				d = outs[0].Duration.Seconds()
			}))
			exp = append(exp, measure(b, func() {
				_, err := render.Export(context.Background(), ss.Dir, render.ExportOptions{Audio: true, Video: true,
					Timelines: render.TimelineFormats(), OutDir: filepath.Join(out, "export"), Log: testLogger(b)})
				if err != nil {
					b.Fatal(err)
				}
			}))
			aud = append(aud, measure(b, func() {
				_, err := render.Export(context.Background(), ss.Dir, render.ExportOptions{Audio: true,
					Timelines: render.TimelineFormats(), OutDir: filepath.Join(out, "audio"), Log: testLogger(b)})
				if err != nil {
					b.Fatal(err)
				}
			}))
		}
		best := func(fs []benchFigures) benchFigures {
			m := fs[0]
			for _, f := range fs[1:] {
				m.wall, m.cpu = min(m.wall, f.wall), min(m.cpu, f.cpu)
			}
			return m
		}
		load, _ := os.ReadFile("/proc/loadavg")
		fmt.Printf("\nexport benchmark: 4 participants (%dx%d VP8 + Opus, joining at %s), %s call; %d CPUs, load %s; "+
			"best of %d alternating runs\n", w, h, joinedAt(parts), length, runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "), runs)
		row := func(name string, fs []benchFigures) benchFigures {
			f := best(fs)
			var walls []string
			for _, x := range fs {
				walls = append(walls, fmt.Sprintf("%.1f", x.wall.Seconds()))
			}
			fmt.Printf("  %-44s %7.1f s wall %7.1f s CPU   %6.3f CPU s per output s   %6.2fx realtime   (walls: %s s)\n",
				name, f.wall.Seconds(), f.cpu.Seconds(), f.cpu.Seconds()/d, d/f.wall.Seconds(), strings.Join(walls, ", "))
			return f
		}
		c := row("composite render (mp4-720p, 4-up)", comp)
		e := row("export (4 WAV + 4 MP4 640x360p30, timelines)", exp)
		a := row("audio-only export (4 WAV, timelines)", aud)
		fmt.Printf("  export / composite: %.2fx the CPU, %.2fx the wall time; audio-only export: %.1fx realtime\n\n",
			e.cpu.Seconds()/c.cpu.Seconds(), e.wall.Seconds()/c.wall.Seconds(), d/a.wall.Seconds())
		b.ReportMetric(e.cpu.Seconds()/d, "export-cpu-s/out-s")
		b.ReportMetric(c.cpu.Seconds()/d, "render-cpu-s/out-s")
		b.ReportMetric(e.cpu.Seconds()/c.cpu.Seconds(), "export/render-cpu")
		b.ReportMetric(d/a.wall.Seconds(), "audio-export-x-realtime")
	}
}
