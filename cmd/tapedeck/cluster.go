package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/cluster"
	"github.com/tapedeck/tapedeck/postcall"
)

// clusterFlags are serve's flags for running as one node of a cluster.
type clusterFlags struct {
	advertise string
	route     string
	leaseTTL  time.Duration
	partWait  time.Duration
	resume    time.Duration
	maxCPU    float64
}

// Routes of a request for a room another node records (--route).
const (
	routeRedirect = "redirect"
	routeProxy    = "proxy"
)

func (f *clusterFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.advertise, "advertise-url", "", "run as a node of a cluster (with --nats): this node's WHIP base URL as clients reach it, e.g. https://rec-1.example.com; rooms are spread over the nodes that share the NATS server")
	fl.StringVar(&f.route, "route", routeRedirect, "a publish for a room another node records: redirect (307 to that node) or proxy (forwarded there, PATCH and DELETE too: for browsers on other origins)")
	fl.DurationVar(&f.leaseTTL, "lease-ttl", cluster.DefaultLeaseTTL, "a dead node's rooms go to other nodes this long after its last renewal (renewed every third of it; the cluster's first node sets it)")
	fl.DurationVar(&f.partWait, "part-wait", postcall.DefaultPartWait, "after a call, how long a session recorded in parts waits for the part of a dead node before it is rendered without it (it is rendered again if the node comes back)")
	fl.DurationVar(&f.resume, "resume", cluster.DefaultResume, "after a dead node's lease expired, how long its rooms' sessions wait for their publishers to come back (to any node) and continue; then the session is finalized from what the node stored")
	fl.Float64Var(&f.maxCPU, "max-cpu", 0.9, "CPU fraction (0 to 1) from which this node sends new rooms to the least loaded node (0: no limit)")
}

// check validates the flags; enabled says whether serve runs as a cluster node.
func (f *clusterFlags) check(natsURL string) (enabled bool, err error) {
	if f.advertise == "" {
		return false, nil
	}
	if natsURL == "" {
		return false, usageError("--advertise-url needs --nats URL: the nodes of a cluster share an external NATS server")
	}
	if err := cluster.CheckURL(f.advertise); err != nil {
		return false, usageError("--advertise-url: %v", err)
	}
	f.advertise = strings.TrimSuffix(f.advertise, "/")
	if f.route != routeRedirect && f.route != routeProxy {
		return false, usageError("--route %q: want %s or %s", f.route, routeRedirect, routeProxy)
	}
	if f.leaseTTL < time.Second {
		return false, usageError("--lease-ttl %v: want 1s or more", f.leaseTTL)
	}
	if f.partWait <= 0 {
		return false, usageError("--part-wait %v: want a positive duration", f.partWait)
	}
	if f.resume < time.Second {
		return false, usageError("--resume %v: want 1s or more", f.resume)
	}
	if f.maxCPU < 0 || f.maxCPU > 1 {
		return false, usageError("--max-cpu %v: want 0 to 1", f.maxCPU)
	}
	return true, nil
}

// clusterRun is serve's membership of a cluster; nil when serve runs alone
// (every method is then a no-op).
type clusterRun struct {
	*cluster.Cluster
	node  string
	route string
	log   *slog.Logger
	rec   atomic.Pointer[capture.Recorder]
	post  atomic.Pointer[postcall.Pipeline] // finalizes the sessions of dead nodes
	http  *http.Client

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// openCluster joins the cluster on nc as node.
func openCluster(ctx context.Context, f *clusterFlags, nc *nats.Conn, node string, log *slog.Logger) (*clusterRun, error) {
	cr := &clusterRun{node: node, route: f.route, log: log.With("component", "cluster")}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	cr.http = &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cfg := cluster.Config{
		Node: node, URL: f.advertise, LeaseTTL: f.leaseTTL, Resume: f.resume,
		Limits:     cluster.Limits{MaxCPU: f.maxCPU, MinFreeDisk: capture.DefaultMinFreeBytes, MaxPublishes: capture.DefaultMaxPublishes},
		NewSession: capture.NewSessionID,
		Load:       cr.load,
		OnLost: func(room, session string) {
			if rec := cr.rec.Load(); rec != nil {
				rec.LoseRoom(room, session)
			}
		},
		OnOrphan: func(ctx context.Context, room, session string) {
			p := cr.post.Load()
			if p == nil {
				cr.log.Error("a dead node's session cannot be queued: no post-call pipeline", "room", room, "session", session)
				return
			}
			if err := p.EnqueueOrphan(ctx, room, session); err != nil {
				cr.log.Error("a dead node's session could not be queued; another node may", "room", room, "session", session, "err", err)
			}
		},
	}
	c, err := cluster.Open(ctx, nc, cfg, cr.log)
	if err != nil {
		return nil, err
	}
	cr.Cluster = c
	return cr, nil
}

// load is the recorder's load, announced to the cluster.
func (cr *clusterRun) load() cluster.Load {
	rec := cr.rec.Load()
	if rec == nil {
		return cluster.Load{CPU: -1, FreeDisk: -1}
	}
	s := rec.Stats()
	return cluster.Load{FreeDisk: s.FreeBytes, Tracks: s.ActiveTracks, Publishes: s.ActivePublishes, Sessions: s.ActiveSessions}
}

// wire makes the recorder ask the cluster which node records each room.
func (cr *clusterRun) wire(cfg *capture.Config) {
	if cr == nil {
		return
	}
	cfg.Rooms = clusterRooms{cr}
	if cr.route == routeProxy {
		cfg.Elsewhere = cr.proxy
	}
}

// attach starts announcing the node and renewing its leases; rec's load is
// announced and rec is told about rooms lost to other nodes.
func (cr *clusterRun) attach(rec *capture.Recorder) {
	if cr == nil {
		return
	}
	cr.rec.Store(rec)
	ctx, cancel := context.WithCancel(context.Background())
	cr.mu.Lock()
	cr.cancel, cr.done = cancel, make(chan struct{})
	done := cr.done
	cr.mu.Unlock()
	go func() {
		defer close(done)
		cr.Run(ctx)
	}()
	cr.log.Info("cluster node", "node", cr.node, "route", cr.route, "lease_ttl", cr.LeaseTTL())
}

// drain announces that this node takes no new rooms.
func (cr *clusterRun) drain(ctx context.Context) {
	if cr == nil {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	cr.Drain(dctx)
}

// stop stops the announcements and renewals (the node's announcement is
// removed) and waits for them.
func (cr *clusterRun) stop() {
	if cr == nil {
		return
	}
	cr.mu.Lock()
	cancel, done := cr.cancel, cr.done
	cr.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// parts is what the post-call merge asks the cluster.
func (cr *clusterRun) parts() postcall.Parts { return clusterParts{cr.Buckets()} }

// clusterRooms is capture.Rooms over the cluster.
type clusterRooms struct{ cr *clusterRun }

func (r clusterRooms) Claim(ctx context.Context, room string, placedHere bool) (capture.RoomClaim, error) {
	c, err := r.cr.Claim(ctx, room, placedHere)
	if err != nil {
		return capture.RoomClaim{}, err
	}
	return capture.RoomClaim{Elsewhere: c.Elsewhere, Placed: c.Placed, Session: c.Session, Part: c.Part, Node: r.cr.node}, nil
}

func (r clusterRooms) Locate(ctx context.Context, room string) (string, error) {
	return r.cr.Locate(ctx, room)
}

func (r clusterRooms) Release(ctx context.Context, room, session string, how capture.RoomRelease) {
	h := cluster.Ended
	switch how {
	case capture.ReleaseHandover:
		h = cluster.Handover
	case capture.ReleaseUnused:
		h = cluster.Unused
	}
	if err := r.cr.Cluster.Release(ctx, room, session, h); err != nil {
		r.cr.log.Warn("releasing a room failed; its lease expires", "room", room, "session", session, "err", err)
	}
}

// clusterParts is postcall.Parts over the cluster's buckets.
type clusterParts struct{ b cluster.Buckets }

func (p clusterParts) SessionParts(ctx context.Context, room, session string) (postcall.SessionParts, error) {
	sp, err := p.b.Parts(ctx, room, session)
	if err != nil {
		return postcall.SessionParts{}, err
	}
	out := postcall.SessionParts{Recording: sp.Recording, Waiting: sp.Waiting}
	for _, pt := range sp.Parts {
		out.Parts = append(out.Parts, postcall.PartRef{Part: pt.Part.Part, Node: pt.Node, Alive: pt.Alive})
	}
	return out, nil
}

// proxyHeader lists the nodes that forwarded a request, in order. A request
// is forwarded at most maxHops times and never back to a node it went
// through: a room that keeps moving meanwhile gets a 503 (try again).
const (
	proxyHeader = "Tapedeck-Forwarded-By"
	maxHops     = 3
)

// proxy forwards a WHIP request for a room another node records to that
// node and copies its answer back (--route proxy): the client, a browser on
// another origin, keeps talking to this node; the 201's relative Location
// brings its PATCH and DELETE back here, and on to the owner.
func (cr *clusterRun) proxy(w http.ResponseWriter, req *http.Request, owner string, body []byte) {
	var hops []string
	if by := req.Header.Get(proxyHeader); by != "" {
		hops = strings.Split(by, ",")
	}
	if len(hops) >= maxHops || slices.Contains(hops, cr.node) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the room is moving between recorders; try again", http.StatusServiceUnavailable)
		return
	}
	var in io.Reader = req.Body
	if body != nil {
		in = bytes.NewReader(body)
	}
	out, err := http.NewRequestWithContext(req.Context(), req.Method, owner+req.URL.RequestURI(), in)
	if err != nil {
		http.Error(w, "proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	if body != nil {
		out.ContentLength = int64(len(body))
	}
	for _, h := range []string{"Authorization", "Content-Type", "Accept", "If-Match", "ETag"} {
		if v := req.Header.Values(h); len(v) > 0 {
			out.Header[h] = v
		}
	}
	out.Header.Set(proxyHeader, strings.Join(append(hops, cr.node), ","))
	resp, err := cr.http.Do(out)
	if err != nil {
		cr.log.Warn("proxying to the room's recorder failed", "to", owner, "method", req.Method, "path", req.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the room's recorder did not answer; try again", http.StatusBadGateway)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	for _, h := range []string{"Content-Type", "Location", "ETag", "Link", "Accept-Patch", "Accept-Post", "Retry-After", "WWW-Authenticate"} {
		if v := resp.Header.Values(h); len(v) > 0 {
			w.Header()[h] = v
		}
	}
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil && !errors.Is(err, context.Canceled) {
		cr.log.Debug("proxy: copying the answer", "err", err)
	}
}

// metrics adds the cluster's figures to reg (nothing when serve runs alone).
func (cr *clusterRun) metrics(reg *prometheus.Registry) *prometheus.Registry {
	if cr != nil {
		reg.MustRegister(newClusterCollector(cr.Cluster))
	}
	return reg
}

// clusterCollector exports what the node knows of the cluster, from its
// last announcement period (no NATS request per scrape).
type clusterCollector struct {
	c                                                              *cluster.Cluster
	nodes, cpu, free, tracks, publishes, rooms, draining           *prometheus.Desc
	held, claims, contended, resumed, renewFailures, lost, orphans *prometheus.Desc
	heldConfirmed                                                  *prometheus.Desc
}

func newClusterCollector(c *cluster.Cluster) *clusterCollector {
	node := []string{"node"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("tapedeck_cluster_"+name, help, labels, nil)
	}
	return &clusterCollector{c: c,
		nodes:         d("nodes", "Nodes alive in the cluster (announced within the lease TTL)."),
		cpu:           d("node_cpu", "A node's CPU fraction busy (0 to 1; -1 unknown), as it announced it.", node...),
		free:          d("node_free_disk_bytes", "A node's free disk space in its data folder, as it announced it.", node...),
		tracks:        d("node_tracks", "Tracks a node records, as it announced it.", node...),
		publishes:     d("node_publishes", "Publishes a node records, as it announced it.", node...),
		rooms:         d("node_rooms", "Rooms a node records, as it announced it.", node...),
		draining:      d("node_draining", "1 while a node drains (takes no new rooms).", node...),
		held:          d("room", "1 for each room this node records, with its session and part.", "room", "session", "part"),
		heldConfirmed: d("room_lease_age_seconds", "Time since the last successful renewal of a room's lease, per room this node records.", "room"),
		claims:        d("claims_total", "Publishes' claims of a room on this node, by outcome: here (recorded here), elsewhere (another node records it), refused.", "outcome"),
		contended:     d("claims_contended_total", "Lease creations this node lost to another node claiming the same room at the same time."),
		resumed:       d("sessions_resumed_total", "Sessions this node continued as a new part after their node died or handed them over."),
		renewFailures: d("lease_renew_failures_total", "Lease renewals that failed (NATS unreachable, or the lease taken)."),
		lost:          d("rooms_lost_total", "Rooms this node recorded whose lease another node took."),
		orphans:       d("sessions_orphaned_total", "Sessions of dead nodes that no node continued, seen by this node and handed to the post-call merge."),
	}
}

func (k *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{k.nodes, k.cpu, k.free, k.tracks, k.publishes, k.rooms, k.draining, k.held, k.heldConfirmed,
		k.claims, k.contended, k.resumed, k.renewFailures, k.lost, k.orphans} {
		ch <- d
	}
}

func (k *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	s := k.c.Snapshot()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	n := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	g(k.nodes, float64(len(s.Nodes)))
	for _, nd := range s.Nodes {
		g(k.cpu, nd.Load.CPU, nd.Name)
		g(k.free, float64(nd.Load.FreeDisk), nd.Name)
		g(k.tracks, float64(nd.Load.Tracks), nd.Name)
		g(k.publishes, float64(nd.Load.Publishes), nd.Name)
		g(k.rooms, float64(len(nd.Rooms)), nd.Name)
		g(k.draining, b2f(nd.Draining), nd.Name)
	}
	for _, h := range s.Held {
		g(k.held, 1, h.Room, h.Session, fmt.Sprint(h.Part))
		g(k.heldConfirmed, time.Since(h.Confirmed).Seconds(), h.Room)
	}
	n(k.claims, s.Stats.ClaimsHere, "here")
	n(k.claims, s.Stats.ClaimsElsewhere, "elsewhere")
	n(k.claims, s.Stats.ClaimsRefused, "refused")
	n(k.contended, s.Stats.Contended)
	n(k.resumed, s.Stats.Resumed)
	n(k.renewFailures, s.Stats.RenewFailures)
	n(k.lost, s.Stats.Lost)
	n(k.orphans, s.Stats.Orphans)
}
