package main

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/internal/cpuload"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/prerender"
	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

// progressiveFlags configure the render during calls (serve, demo).
type progressiveFlags struct {
	on     bool
	window time.Duration
	cpu    float64
}

func (f *progressiveFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&f.on, "progressive", true, "render the video of each call while it is recorded, in windows whose media is final, so that the composite is ready seconds after the call (needs --render-concurrency ≥ 1; in a cluster the windows go to the store with the session, for the node that renders it)")
	fl.DurationVar(&f.window, "progressive-window", 10*time.Second, "length of the windows rendered during calls (the render after the call uses the same)")
	fl.Float64Var(&f.cpu, "progressive-cpu", 0.75, "CPU use outside niced processes (0 to 1) above which no window starts during calls: capture comes first (0: no limit)")
}

func (f *progressiveFlags) check() error {
	if f.window < time.Second {
		return usageError("--progressive-window %v: want at least 1s", f.window)
	}
	if f.cpu < 0 || f.cpu > 1 {
		return usageError("--progressive-cpu %v: want 0 to 1", f.cpu)
	}
	return nil
}

// startPrerender renders the calls this recorder records while they go on,
// with the options of each room's first render (not an export) into the
// folder where its post-call render takes finished windows: nil when off.
func startPrerender(f *progressiveFlags, cfg postcall.Config, r sessionRenderer, concurrency int, log *slog.Logger) (*prerender.Prerenderer, error) {
	meter := &cpuload.Meter{}
	return prerender.New(prerender.Config{
		Window: f.window, Concurrency: concurrency, CPUBudget: f.cpu,
		CPU: func() (float64, bool) {
			l, ok := meter.Measure()
			return l.Busy - l.Niced, ok
		},
		Manifests: func(dir string) func() (*timeline.Manifest, error) { return capture.NewCompactor(dir).Manifest },
		Options: func(room, session string) (render.Options, bool) {
			for _, spec := range cfg.Renders.For(room) {
				if spec.Export != nil {
					continue
				}
				spec.Nice = cfg.RenderNice
				if spec.Nice <= 0 {
					spec.Nice = 0
				}
				// Where the post-call stage renders spec (postcall's job folder).
				out := postcall.OutDir(cfg.WorkDir, room, session, spec.Name)
				opts, err := r.options(spec, out)
				if err != nil {
					log.Warn("prerender: the render's options do not parse; rendering after the call only", "room", room, "render", spec.Name, "err", err)
					return render.Options{}, false
				}
				return opts, true
			}
			return render.Options{}, false
		},
		Log: log,
	})
}

// prerenderMetrics are the render during calls, for /metrics.
func prerenderMetrics(p *prerender.Prerenderer) []prometheus.Collector {
	c := func(name, help string, v func(prerender.Stats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return v(p.Stats()) })
	}
	return []prometheus.Collector{
		c("tapedeck_progressive_windows_total", "Windows of video rendered during calls.", func(s prerender.Stats) float64 { return float64(s.Windows) }),
		c("tapedeck_progressive_windows_again_total", "Windows rendered during a call once more because the sync model moved a source to another cell of the placement grid (1/16 of a frame).",
			func(s prerender.Stats) float64 { return float64(s.Again) }),
		c("tapedeck_progressive_audio_encoded_total", "Windows of the audio encoded to AAC during calls (again when the gain of the call so far moves a step).",
			func(s prerender.Stats) float64 { return float64(s.AudioEncoded) }),
		c("tapedeck_progressive_deferred_total", "Looks at a call that started no window because the CPU outside niced processes was over --progressive-cpu.",
			func(s prerender.Stats) float64 { return float64(s.Deferred) }),
		c("tapedeck_progressive_failed_total", "Windows that failed to render during a call (tried again).", func(s prerender.Stats) float64 { return float64(s.Failed) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tapedeck_progressive_behind_seconds", Help: "Output seconds whose media is final but not yet rendered, over the calls being recorded."},
			func() float64 { return p.Stats().Behind.Seconds() }),
	}
}
