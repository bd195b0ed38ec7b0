package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/examples/browser"
)

type serveFlags struct {
	listen      string
	data        string
	tokens      []string
	segDuration time.Duration
	segSize     int64
	keyframes   time.Duration
	grace       time.Duration
	allowPublic bool
	natIPs      []string
	udpPort     int
	tcpPort     int
	corsOrigins []string
	iceServers  []string
	iceUser     string
	iceCred     string
	turnSecret  string
	turnTTL     time.Duration
	drain       time.Duration
	post        pipelineFlags
}

func newServeCmd(g *globals) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the capture service (WHIP ingest at POST /whip/{room}?participant={name})",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if env := os.Getenv("TAPEDECK_TOKEN"); env != "" {
				f.tokens = append(f.tokens, env)
			}
			cfg, err := f.config()
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", f.listen)
			if err != nil {
				return fmt.Errorf("serve: listen on %s: %w", f.listen, err)
			}
			return serve(cmd.Context(), ln, cfg, f.drain, &f.post, log)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address for the HTTP (WHIP) endpoint")
	fl.StringVar(&f.data, "data", "recordings", "folder recordings are written to")
	fl.StringArrayVar(&f.tokens, "token", nil, "accepted bearer token (repeatable; also $TAPEDECK_TOKEN)")
	fl.DurationVar(&f.segDuration, "segment-duration", capture.DefaultSegmentDuration, "rotate track files after this much media")
	fl.Int64Var(&f.segSize, "segment-size", capture.DefaultSegmentSize, "rotate track files after this many bytes")
	fl.DurationVar(&f.keyframes, "keyframe-interval", 0, "ask every video sender for a keyframe shortly before each multiple of this much call time, so that the windows rendered during the call start near one and raw files seek fast in editors (0: --progressive-window; negative: only at file starts and after loss)")
	fl.DurationVar(&f.grace, "grace", capture.DefaultGrace, "keep a room's session open this long after its last publisher left")
	fl.BoolVar(&f.allowPublic, "allow-public", false, "allow listening on a non-loopback address without --token")
	fl.StringSliceVar(&f.natIPs, "nat-ip", nil, "public IP to announce in ICE candidates (1:1 NAT)")
	fl.IntVar(&f.udpPort, "udp-port", 0, "the one UDP port all media arrives on (0: a random port)")
	fl.IntVar(&f.tcpPort, "tcp-port", 0, "also take media over ICE-TCP on this one TCP port, for clients whose UDP is blocked (0: off)")
	fl.StringArrayVar(&f.corsOrigins, "cors-origin", []string{"*"}, "web origin whose pages may publish from a browser, e.g. https://app.example.com (repeatable; * any: safe, as auth is a bearer token)")
	fl.StringArrayVar(&f.iceServers, "ice-server", nil, "STUN/TURN server given to clients in Link headers and used by the recorder: stun:HOST[:PORT], turn:HOST[:PORT][?transport=tcp], turns:HOST[:PORT] (repeatable)")
	fl.StringVar(&f.iceUser, "ice-username", "", "static username of the TURN servers (else --turn-secret)")
	fl.StringVar(&f.iceCred, "ice-credential", "", "static password of the TURN servers (also $TAPEDECK_ICE_CREDENTIAL)")
	fl.StringVar(&f.turnSecret, "turn-secret", "", "shared secret of the TURN servers (coturn use-auth-secret): time-limited credentials per publish (also $TAPEDECK_TURN_SECRET)")
	fl.DurationVar(&f.turnTTL, "turn-ttl", capture.DefaultTURNTTL, "validity of the credentials computed from --turn-secret")
	fl.DurationVar(&f.drain, "drain-timeout", 30*time.Second, "on SIGTERM, how long to wait for sessions to finish")
	f.post.register(fl, roleRecorder)
	f.post.cluster.register(fl)
	return cmd
}

func (f *serveFlags) config() (capture.Config, error) {
	host, _, err := net.SplitHostPort(f.listen)
	if err != nil {
		return capture.Config{}, usageError("--listen %q: %v", f.listen, err)
	}
	ip := net.ParseIP(host)
	loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
	if !loopback && len(f.tokens) == 0 && !f.allowPublic {
		return capture.Config{}, usageError("--listen %s is not a loopback address and no --token is set: anyone could publish; set --token, or --allow-public if that is what you want", f.listen)
	}
	if f.turnSecret == "" {
		f.turnSecret = os.Getenv("TAPEDECK_TURN_SECRET")
	}
	if f.iceCred == "" {
		f.iceCred = os.Getenv("TAPEDECK_ICE_CREDENTIAL")
	}
	cfg := capture.Config{
		DataDir: f.data, Tokens: f.tokens, SegmentDuration: f.segDuration, SegmentSize: f.segSize, Grace: f.grace,
		CORSOrigins: f.corsOrigins, KeyframeInterval: f.keyframes,
		ICE: capture.ICEConfig{LoopbackOnly: loopback, NAT1To1IPs: f.natIPs, UDPPort: f.udpPort, TCPPort: f.tcpPort,
			TURNSecret: f.turnSecret, TURNTTL: f.turnTTL},
	}
	if win := f.post.progressive.window; f.keyframes == 0 {
		cfg.KeyframeInterval = win
	} else if f.keyframes > 0 && f.post.progressive.on && win%f.keyframes != 0 {
		return capture.Config{}, usageError("--keyframe-interval %v does not divide --progressive-window %v: the windows rendered during calls would start far from a keyframe", f.keyframes, win)
	}
	for _, p := range []struct {
		flag string
		port int
	}{{"--udp-port", f.udpPort}, {"--tcp-port", f.tcpPort}} {
		if p.port < 0 || p.port > 65535 {
			return capture.Config{}, usageError("%s %d: want 0 to 65535", p.flag, p.port)
		}
	}
	for _, o := range f.corsOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return capture.Config{}, usageError("--cors-origin %q: want an origin such as https://app.example.com, or *", o)
		}
	}
	if (f.iceUser == "") != (f.iceCred == "") {
		return capture.Config{}, usageError("--ice-username and --ice-credential go together")
	}
	if f.turnTTL <= 0 {
		return capture.Config{}, usageError("--turn-ttl %v: want a positive duration", f.turnTTL)
	}
	for _, u := range f.iceServers {
		s := capture.ICEServer{URL: u}
		if strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") {
			s.Username, s.Credential = f.iceUser, f.iceCred
			if s.Username == "" && f.turnSecret == "" {
				return capture.Config{}, usageError("--ice-server %s: a TURN server needs --turn-secret or --ice-username/--ice-credential", u)
			}
		}
		if err := capture.CheckICEServer(s); err != nil {
			return capture.Config{}, usageError("--ice-server: %v", err)
		}
		cfg.ICE.Servers = append(cfg.ICE.Servers, s)
	}
	return cfg, nil
}

// serve recovers unfinished sessions, starts the post-call jobs (and
// enqueues the sessions a previous run left without one), runs the recorder
// on ln until ctx ends, then drains: no new publishes, running ones are
// ended and their sessions finalized, bounded by drain; jobs in progress go
// back to the queue.
func serve(ctx context.Context, ln net.Listener, cfg capture.Config, drain time.Duration, post *pipelineFlags, log *slog.Logger) error {
	recovered, err := capture.Recover(cfg.DataDir, log)
	if err != nil {
		log.Error("some sessions could not be recovered; their journals are kept", "err", err)
	}
	for _, s := range recovered {
		log.Info("recovered session from a previous run", "room", s.Room, "session", s.Session, "dir", s.Dir)
	}
	jobs, err := startPipeline(ctx, post, roleRecorder, cfg.DataDir, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer jobs.stop()
	if n, err := jobs.EnqueueUnfinished(ctx, cfg.DataDir); err != nil {
		log.Error("some sessions' post-call jobs could not be enqueued", "err", err)
	} else if n > 0 {
		log.Info("post-call jobs enqueued for sessions of a previous run", "sessions", n)
	}
	jobs.wireCapture(&cfg, nil)
	jobs.cluster.wire(&cfg)
	rec, err := capture.New(cfg, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	jobs.cluster.attach(rec)
	mux := http.NewServeMux()
	reg := newMetrics(rec, jobs.Pipeline, jobs.renders)
	if jobs.prerender != nil {
		reg.MustRegister(prerenderMetrics(jobs.prerender)...)
	}
	healthHandlers(mux, rec, jobs.cluster.metrics(reg))
	controlAPI(mux, rec, jobs.Pipeline, cfg.DataDir, adminToken(), cfg.ICE.LoopbackOnly, log)
	mux.Handle("/whip/", rec.Handler())
	mux.Handle("/publish/", browser.Handler())
	if err := mountConsole(mux, rec, jobs, post, cfg, log); err != nil {
		_ = rec.Close(ctx)
		return fmt.Errorf("serve: %w", err)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("tapedeck serving", "whip", "http://"+ln.Addr().String()+"/whip/{room}?participant={name}",
		"publish_page", "http://"+ln.Addr().String()+"/publish/", "data", cfg.DataDir)
	var serveErr error
	served := false
	select {
	case err := <-errc:
		served = true
		if !errors.Is(err, http.ErrServerClosed) {
			// The listener failed: stop taking publishes, and finalize
			// what is being recorded before reporting it.
			serveErr = fmt.Errorf("serve: %w", err)
			log.Error("the HTTP server stopped; finalizing the sessions being recorded", "err", err)
		}
	case <-ctx.Done():
	}
	// Drain: refuse new publishes, let the running ones finish (up to the
	// drain timeout), then end whatever is left and finalize every session.
	// A second SIGINT/SIGTERM skips the wait.
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	rec.Drain()
	jobs.cluster.drain(ctx)
	log.Info("draining: waiting for publishes to end; a second signal stops now", "timeout", drain)
	deadline := time.NewTimer(drain)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
wait:
	for rec.Stats().ActivePublishes > 0 {
		select {
		case <-again:
			log.Info("second signal: finalizing now")
			break wait
		case <-deadline.C:
			log.Warn("drain timeout: ending the publishes still running")
			break wait
		case <-tick.C:
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if !served {
		<-errc // Serve has returned
	}
	if err := rec.Close(sctx); err != nil {
		return errors.Join(serveErr, fmt.Errorf("serve: drain: %w", err))
	}
	// Sessions that ended while draining: their jobs, if the hook did not enqueue them yet.
	if _, err := jobs.EnqueueUnfinished(sctx, cfg.DataDir); err != nil {
		log.Error("some sessions' post-call jobs could not be enqueued; they are at the next start", "err", err)
	}
	return serveErr
}
