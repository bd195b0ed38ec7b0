package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"
	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/prerender"
	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

// pipelineFlags configure the post-call jobs of serve, demo and worker.
type pipelineFlags struct {
	store             storeFlags
	nats              string
	natsListen        string
	node              string
	webhook           string
	webhookSecret     string
	renders           string
	renderConcurrency int
	renderParallel    int
	rerenderParallel  int
	renderNice        int
	work              string
	ackWait           time.Duration
	maxDeliver        int
	linkTTL           time.Duration
	uploadConcurrency int
	uploadBacklog     int
	cluster           clusterFlags // serve only
	progressive       progressiveFlags
}

// pipelineRole says which flags a command has.
type pipelineRole int

const (
	roleRecorder pipelineRole = iota // serve, demo: records, enqueues, may render
	roleWorker                       // worker: renders only
)

func (f *pipelineFlags) register(fl *pflag.FlagSet, role pipelineRole) {
	if role == roleRecorder {
		f.store.register(fl, "store", `where sessions are stored: a folder, file:///abs/dir or s3://bucket/prefix (default: the folder "store" next to --data)`)
		fl.StringVar(&f.nats, "nats", os.Getenv("TAPEDECK_NATS"), "external NATS server for jobs, nats://host:port (also $TAPEDECK_NATS; default: an embedded server, its store in the data folder)")
		fl.StringVar(&f.natsListen, "nats-listen", "127.0.0.1:0", "address of the embedded NATS server (loopback only; port 0: a free one)")
		fl.StringVar(&f.node, "node", "", "this recorder's name in job subjects (default: a name kept in DATA/.tapedeck-node)")
		fl.StringVar(&f.webhook, "webhook", os.Getenv("TAPEDECK_WEBHOOK"), "URL POSTed a JSON event when a session is stored and rendered (also $TAPEDECK_WEBHOOK)")
		fl.StringVar(&f.renders, "renders", "", "render configuration file (YAML): layout, profiles and edits per room (default: one default render)")
		fl.IntVar(&f.renderConcurrency, "render-concurrency", 1, "renders this process runs at once (0: leave renders to workers)")
		fl.IntVar(&f.uploadConcurrency, "upload-concurrency", 2, "closed segments uploaded at once during calls")
		fl.IntVar(&f.uploadBacklog, "upload-backlog", 1000, "closed segments waiting for upload at most; more wait for their session's job")
		f.progressive.register(fl)
	} else {
		f.store.register(fl, "store", "where sessions are stored: the same as serve's --store (required)")
		fl.StringVar(&f.nats, "nats", os.Getenv("TAPEDECK_NATS"), "the NATS server serve uses, nats://host:port (required; also $TAPEDECK_NATS)")
		fl.IntVar(&f.renderConcurrency, "render-concurrency", 1, "renders run at once")
	}
	fl.StringVar(&f.webhookSecret, "webhook-secret", "", "secret of the webhook's HMAC-SHA256 signature (also $TAPEDECK_WEBHOOK_SECRET)")
	fl.IntVar(&f.renderNice, "render-nice", postcall.DefaultRenderNice, "niceness of render processes, 1 to 19 (0: none)")
	fl.IntVar(&f.renderParallel, "render-parallel", 0, "windows of the video (3 minutes each) a render draws at once (0: a quarter of the CPUs, at least 1; x264 runs several threads per window)")
	fl.IntVar(&f.rerenderParallel, "rerender-parallel", 0, "windows a re-render (asked with the API or the console, with other edits or layout) draws at once (0: half the CPUs, at least 1: nobody is waiting on a call's end)")
	fl.StringVar(&f.work, "work", "", "scratch folder for renders (default: DATA/.work for serve, a temporary folder for worker)")
	fl.DurationVar(&f.ackWait, "job-ack-wait", postcall.DefaultAckWait, "a job not heard from for this long goes to another process")
	fl.IntVar(&f.maxDeliver, "job-max-deliver", postcall.DefaultMaxDeliver, "attempts at a job before it fails")
	fl.DurationVar(&f.linkTTL, "link-ttl", postcall.DefaultLinkTTL, "validity of the webhook's download links")
}

// pipelineRun is a running pipeline with its NATS connection (and embedded server).
type pipelineRun struct {
	*postcall.Pipeline
	renders *renderStats
	cluster *clusterRun // nil unless serve runs as a cluster node
	// prerender renders calls while they are recorded (nil: off).
	prerender *prerender.Prerenderer
	nc        *nats.Conn
	embedded  *postcall.Embedded
	cancel    context.CancelFunc
	done      chan struct{}
}

// startPipeline opens the store, starts or connects to NATS and runs the pipeline until stop. data
// is the recorder's data folder ("" for a worker).
func startPipeline(ctx context.Context, f *pipelineFlags, role pipelineRole, data string, log *slog.Logger) (*pipelineRun, error) {
	if f.webhookSecret == "" {
		f.webhookSecret = os.Getenv("TAPEDECK_WEBHOOK_SECRET")
	}
	if f.renderParallel < 0 {
		return nil, usageError("--render-parallel %d: want 0 (the default) or more", f.renderParallel)
	}
	if f.rerenderParallel < 0 {
		return nil, usageError("--rerender-parallel %d: want 0 (the default) or more", f.rerenderParallel)
	}
	cfg := postcall.Config{
		RenderConcurrency: f.renderConcurrency, RenderNice: f.renderNice, WorkDir: f.work,
		Webhook: f.webhook, WebhookSecret: f.webhookSecret, LinkTTL: f.linkTTL, AckWait: f.ackWait, MaxDeliver: f.maxDeliver,
		Upload: postcall.UploadConfig{Concurrency: f.uploadConcurrency, MaxBacklog: f.uploadBacklog},
	}
	if f.renderNice <= 0 {
		cfg.RenderNice = -1 // postcall: none
	}
	defStore := ""
	if role == roleRecorder {
		defStore = defaultStore(data)
		node, err := nodeName(f.node, data)
		if err != nil {
			return nil, err
		}
		cfg.Node = node
		if cfg.WorkDir == "" {
			cfg.WorkDir = filepath.Join(data, ".work")
		}
		if f.renders != "" {
			rc, err := postcall.LoadRenderConfig(f.renders)
			if err != nil {
				return nil, usageError("--renders: %v", err)
			}
			// Refuse now what would only fail after a call: unknown
			// profiles or layouts, edits that do not parse.
			if len(rc.Default) > 0 {
				if err := checkRenderSpecs(rc.Default); err != nil {
					return nil, usageError("--renders %s: default: %v", f.renders, err)
				}
			}
			for room, specs := range rc.Rooms {
				if len(specs) == 0 {
					continue
				}
				if err := checkRenderSpecs(specs); err != nil {
					return nil, usageError("--renders %s: room %s: %v", f.renders, room, err)
				}
			}
			cfg.Renders = rc
		}
	} else if f.nats == "" {
		return nil, usageError("--nats URL is required: a worker takes jobs from the NATS server that serve uses (serve --nats URL)")
	}
	clustered, err := f.cluster.check(f.nats)
	if err != nil {
		return nil, err
	}
	store, err := f.store.open(ctx, defStore, log)
	if err != nil {
		return nil, err
	}
	r := &pipelineRun{done: make(chan struct{})}
	url := f.nats
	if url == "" {
		r.embedded, err = postcall.StartEmbedded(postcall.EmbeddedConfig{StoreDir: filepath.Join(data, ".nats"), Listen: f.natsListen}, log)
		if err != nil {
			return nil, err
		}
		url = r.embedded.URL()
	}
	r.nc, err = postcall.Connect(ctx, url, "tapedeck "+cfg.Node, log)
	if err != nil {
		r.close()
		return nil, err
	}
	if clustered {
		if r.cluster, err = openCluster(ctx, &f.cluster, r.nc, cfg.Node, log); err != nil {
			r.close()
			return nil, err
		}
		cfg.Parts, cfg.PartWait = r.cluster.parts(), f.cluster.partWait
	}
	r.renders = &renderStats{}
	renderer := sessionRenderer{log: log, stats: r.renders, parallel: f.renderParallel, rerenderParallel: f.rerenderParallel}
	if role == roleRecorder && f.progressive.on && cfg.RenderConcurrency > 0 {
		if err := f.progressive.check(); err != nil {
			r.close()
			return nil, err
		}
		// The render after a call draws the windows the call did not.
		renderer.window = f.progressive.window
		if r.prerender, err = startPrerender(&f.progressive, cfg, renderer, cfg.RenderConcurrency, log); err != nil {
			r.close()
			return nil, err
		}
		// Segments stored during the call stay on disk until drawn.
		cfg.Upload.Hold = r.prerender.Needs
		// In a cluster another node may render the call: the windows go
		// to the store with the session.
		cfg.StoreWindows = clustered
	}
	r.Pipeline, err = postcall.New(ctx, r.nc, store, renderer, cfg, log)
	if err != nil {
		r.close()
		return nil, err
	}
	if r.cluster != nil {
		r.cluster.post.Store(r.Pipeline)
	}
	log.Info("post-call jobs", "store", store.String(), "nats", url, "embedded", r.embedded != nil, "node", cfg.Node,
		"render_concurrency", cfg.RenderConcurrency, "webhook", cfg.Webhook != "")
	var rctx context.Context
	rctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer close(r.done)
		if err := r.Run(rctx); err != nil {
			log.Error("post-call jobs stopped", "err", err)
		}
	}()
	return r, nil
}

// wireCapture hands the recorder's sessions to the pipeline: each call is
// rendered while it is recorded (when on), and its post-call job enqueued
// when it ends, then ended (if set) is told.
func (r *pipelineRun) wireCapture(cfg *capture.Config, ended func(capture.SessionEnded)) {
	cfg.OnSegmentClosed = r.SegmentClosed
	pr := r.prerender
	if pr != nil {
		cfg.OnSessionStart = func(s capture.SessionStarted) { pr.Start(s.Room, s.Session, s.Dir) }
	}
	cfg.OnSessionEnd = func(ctx context.Context, s capture.SessionEnded) {
		if pr != nil {
			// The render after the call takes over from the windows
			// rendered during it.
			pr.Stop(s.Room, s.Session)
		}
		r.SessionEnded(ctx, s)
		if ended != nil {
			ended(s)
		}
	}
}

// stop stops taking jobs (jobs in progress are handed back to the queue) and closes NATS.
func (r *pipelineRun) stop() {
	if r.prerender != nil {
		r.prerender.Close()
	}
	r.cluster.stop()
	r.cancel()
	<-r.done
	r.close()
}

func (r *pipelineRun) close() {
	if r.nc != nil {
		r.nc.Close()
	}
	if r.embedded != nil {
		r.embedded.Shutdown()
	}
}

// renderStats add up what this process rendered, for /metrics: output
// seconds over wall seconds is the render speed.
type renderStats struct {
	renders     atomic.Int64
	outputMilli atomic.Int64 // output media, ms
	wallMilli   atomic.Int64 // time spent rendering, ms
}

// sessionRenderer renders a RenderSpec with render.Session.
type sessionRenderer struct {
	log      *slog.Logger
	stats    *renderStats
	parallel int // windows drawn at once (0: render's default)
	// rerenderParallel is the windows a re-render draws at once (0: half
	// the CPUs).
	rerenderParallel int
	// window is the length of the video's windows (0: render's default),
	// the same as the render during calls'.
	window time.Duration
}

// options are the render options of spec, rendered into outDir.
func (r sessionRenderer) options(spec postcall.RenderSpec, outDir string) (render.Options, error) {
	// The finished windows of the video are kept beside outDir (see postcall.Renderer): an
	// attempt interrupted by a stop or a crash resumes from them.
	opts := render.Options{OutDir: outDir, Nice: spec.Nice, Layout: timeline.LayoutType(spec.Layout), Log: r.log,
		Reuse: postcall.ReuseDir(outDir), Parallel: r.parallel, MaxJobDuration: r.window}
	if spec.Rerender {
		opts.Parallel = r.rerenderParallel
		if opts.Parallel == 0 {
			opts.Parallel = max(1, runtime.NumCPU()/2)
		}
	}
	if spec.Profile != "" {
		opts.Profiles = strings.Split(spec.Profile, ",")
	}
	if spec.Edits != "" {
		e, err := timeline.ParseEdits(spec.EditsFile, strings.NewReader(spec.Edits))
		if err != nil {
			return render.Options{}, err
		}
		opts.Edits = e
	}
	return opts, nil
}

func (r sessionRenderer) Render(ctx context.Context, sessionDir string, spec postcall.RenderSpec, outDir string) ([]string, error) {
	if spec.Export != nil {
		return r.export(ctx, sessionDir, spec, outDir)
	}
	opts, err := r.options(spec, outDir)
	if err != nil {
		return nil, err
	}
	began := time.Now()
	outs, err := render.Session(ctx, sessionDir, opts)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, o := range outs {
		names = append(names, o.Files...)
	}
	if r.stats != nil && len(outs) > 0 {
		r.stats.renders.Add(1)
		r.stats.outputMilli.Add(outs[0].Duration.Milliseconds())
		r.stats.wallMilli.Add(time.Since(began).Milliseconds())
	}
	return names, nil
}

// export makes an export spec's stems and timelines with render.Export.
func (r sessionRenderer) export(ctx context.Context, sessionDir string, spec postcall.RenderSpec, outDir string) ([]string, error) {
	ex := spec.Export
	opts := render.ExportOptions{Audio: !ex.NoAudio, Video: !ex.NoVideo, Timelines: ex.Timelines, FPS: ex.FPS, Width: ex.Width,
		Height: ex.Height, Composite: ex.Composite, OutDir: outDir, Nice: spec.Nice, Log: r.log}
	switch {
	case ex.NoTimelines:
		opts.Timelines = nil
	case len(opts.Timelines) == 0:
		opts.Timelines = render.TimelineFormats()
	}
	if spec.Edits != "" {
		e, err := timeline.ParseEdits(spec.EditsFile, strings.NewReader(spec.Edits))
		if err != nil {
			return nil, err
		}
		opts.Edits = e
	}
	began := time.Now()
	res, err := render.Export(ctx, sessionDir, opts)
	if err != nil {
		return nil, err
	}
	for _, n := range res.Notes {
		r.log.Info("export note", "export", spec.Name, "note", n)
	}
	if r.stats != nil {
		r.stats.renders.Add(1)
		r.stats.outputMilli.Add(res.Duration.Milliseconds())
		r.stats.wallMilli.Add(time.Since(began).Milliseconds())
	}
	return res.Files, nil
}

// nodeName is the recorder's node name: the flag, else the one kept in DATA/.tapedeck-node (made up
// at the first start), so that a restarted recorder takes back its own stage-1 jobs.
func nodeName(flag, data string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	path := filepath.Join(data, ".tapedeck-node")
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("node name: %w", err)
	}
	host, _ := os.Hostname()
	var clean strings.Builder
	for _, c := range host {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			clean.WriteRune(c)
		}
		if clean.Len() >= 40 {
			break
		}
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	name := strings.TrimLeft(clean.String(), "-_")
	if name == "" {
		name = "node"
	}
	name += "-" + hex.EncodeToString(suffix)
	if err := os.MkdirAll(data, 0o755); err != nil {
		return "", fmt.Errorf("node name: %w", err)
	}
	if err := os.WriteFile(path, []byte(name+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("node name: %w", err)
	}
	return name, nil
}
