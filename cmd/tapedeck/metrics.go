package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/postcall"
)

// recorderCollector exports capture.Stats, read once per scrape.
type recorderCollector struct {
	rec   *capture.Recorder
	descs map[string]*prometheus.Desc
}

func newRecorderCollector(rec *capture.Recorder) *recorderCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("tapedeck_"+name, help, nil, nil)
	}
	return &recorderCollector{rec: rec, descs: map[string]*prometheus.Desc{
		"sessions":  d("sessions_active", "Sessions being recorded."),
		"publishes": d("publishes_active", "WHIP publishes being recorded."),
		"tracks":    d("tracks_active", "Tracks being recorded."),
		"received":  d("packets_received_total", "RTP packets read from the network."),
		"lost":      d("packets_lost_total", "RTP sequence numbers never received (after NACK): lost before the recorder."),
		"written":   d("packets_written_total", "RTP packets released in order to the track writers."),
		"frames":    d("frames_written_total", "Frames written to track files."),
		"bytes":     d("bytes_written_total", "Media bytes written to track files."),
		"segments":  d("segments_closed_total", "Track files finished."),
		"accepted":  d("publishes_total", "Publishes accepted."),
		"refused":   d("publishes_refused_total", "Publishes refused (disk, limits, draining, failed authentication)."),
		"elsewhere": d("requests_elsewhere_total", "WHIP requests for a room another node of the cluster records, redirected or proxied there."),
		"free":      d("disk_free_bytes", "Free space of the data folder (-1: unknown)."),
		"disk_low":  d("disk_low", "1 while new publishes are refused for disk space."),
		"disk_full": d("disk_full", "1 while the disk is below the hard floor and nothing is written."),
		"draining":  d("draining", "1 while the recorder drains before stopping."),
	}}
}

func (c *recorderCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *recorderCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.rec.Stats()
	g := func(k string, v float64) { ch <- prometheus.MustNewConstMetric(c.descs[k], prometheus.GaugeValue, v) }
	n := func(k string, v int64) {
		ch <- prometheus.MustNewConstMetric(c.descs[k], prometheus.CounterValue, float64(v))
	}
	g("sessions", float64(s.ActiveSessions))
	g("publishes", float64(s.ActivePublishes))
	g("tracks", float64(s.ActiveTracks))
	n("received", s.PacketsReceived)
	n("lost", s.PacketsLost)
	n("written", s.PacketsWritten)
	n("frames", s.FramesWritten)
	n("bytes", s.BytesWritten)
	n("segments", s.SegmentsClosed)
	n("accepted", s.Publishes)
	n("refused", s.Refused)
	n("elsewhere", s.Elsewhere)
	g("free", float64(s.FreeBytes))
	g("disk_low", b2f(s.DiskLow))
	g("disk_full", b2f(s.DiskFull))
	g("draining", b2f(s.Draining))
}

// newMetrics returns the registry served at /metrics: the recorder's
// figures, the upload backlog (when jobs run) and the Go runtime's.
func newMetrics(rec *capture.Recorder, jobs *postcall.Pipeline, renders *renderStats) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newRecorderCollector(rec), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if jobs != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tapedeck_upload_backlog_files", Help: "Closed segments waiting for upload or uploading."},
				func() float64 { return float64(jobs.Backlog().Files) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tapedeck_upload_backlog_bytes", Help: "Bytes of the segments waiting for upload."},
				func() float64 { return float64(jobs.Backlog().Bytes) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tapedeck_upload_backlog_overflow_total", Help: "Closed segments left to their session's job because the backlog was full."},
				func() float64 { return float64(jobs.Backlog().Left) }),
			newJobCollector(jobs),
		)
	}
	if renders != nil {
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tapedeck_renders_total", Help: "Renders finished by this process."},
				func() float64 { return float64(renders.renders.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tapedeck_render_output_seconds_total", Help: "Seconds of output rendered; over tapedeck_render_wall_seconds_total, the render speed (x realtime)."},
				func() float64 { return float64(renders.outputMilli.Load()) / 1000 }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tapedeck_render_wall_seconds_total", Help: "Wall-clock seconds spent rendering."},
				func() float64 { return float64(renders.wallMilli.Load()) / 1000 }),
		)
	}
	return reg
}

// jobCollector exports the post-call job runs of this process by stage.
type jobCollector struct {
	p                      *postcall.Pipeline
	running, runs, seconds *prometheus.Desc
}

func newJobCollector(p *postcall.Pipeline) *jobCollector {
	return &jobCollector{
		p:       p,
		running: prometheus.NewDesc("tapedeck_jobs_running", "Post-call job runs in progress, by stage.", []string{"stage"}, nil),
		runs:    prometheus.NewDesc("tapedeck_job_runs_total", "Finished post-call job runs, by stage and outcome.", []string{"stage", "outcome"}, nil),
		seconds: prometheus.NewDesc("tapedeck_job_run_seconds_total", "Time spent in finished post-call job runs, by stage and outcome.", []string{"stage", "outcome"}, nil),
	}
}

func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.running
	ch <- c.runs
	ch <- c.seconds
}

func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.p.JobStats() {
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(st.Running), st.Stage)
		for o, n := range st.Outcomes {
			ch <- prometheus.MustNewConstMetric(c.runs, prometheus.CounterValue, float64(n), st.Stage, o)
			ch <- prometheus.MustNewConstMetric(c.seconds, prometheus.CounterValue, st.Seconds[o], st.Stage, o)
		}
	}
}

// healthHandlers are /healthz (the process answers) and /readyz (publishes
// are accepted now; 503 with the reason otherwise).
func healthHandlers(mux *http.ServeMux, rec *capture.Recorder, reg *prometheus.Registry) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := rec.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
}
