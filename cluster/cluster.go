package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/url"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tapedeck/tapedeck/internal/cpuload"
)

// Defaults used where Config leaves a field zero.
const (
	DefaultLeaseTTL = 10 * time.Second
	DefaultResume   = 30 * time.Second
)

// Config configures a node. It holds no runtime state.
type Config struct {
	// Node is this node's name (1–64 letters, digits, '_', '-', '.').
	Node string
	// URL is this node's WHIP base URL as clients reach it
	// (scheme://host[:port]): rooms recorded elsewhere are redirected or
	// proxied to URL + "/whip/{room}".
	URL string
	// LeaseTTL is how long a room's lease, and a node's announcement, last
	// without renewal (default 10 s): a dead node's rooms can be taken over
	// that long after its last renewal. Leases are renewed every LeaseTTL/3.
	// The first node to create the buckets sets it for the cluster: a node
	// started with another TTL uses the buckets' and says so.
	LeaseTTL time.Duration
	// Resume is how long after a room's lease expired (its node died) the
	// room's session waits for its next node: a claim within it continues
	// the session as its next part; later ones start a new session (default
	// 30 s).
	Resume time.Duration
	// Load returns this node's load (CPU is measured by the node itself);
	// nil: none announced.
	Load func() Load
	// Limits: over them, new rooms go to the least loaded node.
	Limits Limits
	// NewSession returns a new session ID for a session starting at t.
	NewSession func(t time.Time) string
	// OnLost is called, from the renewal loop, when another node took a
	// room this node records (its lease could not be renewed in time): the
	// recorder ends its part so that the clients reconnect to the new node.
	OnLost func(room, session string)
	// OnOrphan is called, from the announcement loop, for a session whose
	// node left the registry (died) while recording it and that no node
	// continued within Resume: nothing else will end it, so the callee
	// (the post-call pipeline) finalizes it from what the node stored during
	// the call. Every node that saw the node leave calls it; the callee
	// makes that one job.
	OnOrphan func(ctx context.Context, room, session string)
}

var nodeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// CheckURL checks an advertised base URL: http or https, a host, no path,
// query or fragment.
func CheckURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("cluster: URL %q: %w", s, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("cluster: URL %q: want http:// or https://", s)
	case u.Host == "":
		return fmt.Errorf("cluster: URL %q has no host", s)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Errorf("cluster: URL %q: want scheme://host[:port] only (the WHIP paths are added)", s)
	}
	return nil
}

// Claim is the answer to Cluster.Claim.
type Claim struct {
	// Elsewhere is the URL of the node that records the room (Owner), or of
	// the least loaded one when this node is over its limits; "" when this
	// node records it.
	Elsewhere, Owner string
	// Placed: Elsewhere is where this over-loaded node places a room nobody
	// records (the publish sent there is to be recorded there).
	Placed bool
	// Session and Part: record the room here as this part of this session.
	Session string
	Part    int
}

// ErrOwnerSilent refuses, for now, a publish of a room whose node has not
// renewed its lease for two renewal periods: it is likely dead, and its lease
// expires within a third of LeaseTTL; the client should try again then.
var ErrOwnerSilent = errors.New("cluster: the room's node stopped renewing its lease (dead?); try again in a moment")

// ErrUnconfirmed refuses, for now, a publish of a room this node records
// while its lease could not be renewed within LeaseTTL: another node may have
// taken it. The publishes already recorded go on.
var ErrUnconfirmed = errors.New("cluster: the room's lease could not be renewed lately; another node may take it")

// Cluster is this node's membership of a cluster: its announcement, the
// leases of the rooms it records, and the records of their sessions' parts.
// Create it with Open, run it with Run.
type Cluster struct {
	cfg   Config
	log   *slog.Logger
	js    jetstream.JetStream
	b     Buckets
	ttl   time.Duration
	every time.Duration // renewal and announcement period
	cpu   *cpuload.Meter
	start time.Time

	stripes [64]sync.Mutex // per room (hashed): claims, renewals and releases of a room run one at a time

	mu       sync.Mutex
	held     map[string]*held // rooms this node records
	nodes    []NodeInfo       // the registry at the last announcement
	draining bool
	load     Load // at the last announcement
	stats    Stats
	orphans  map[string]orphan // sessions of nodes that left, by sessionKey
	// skew is the NATS server's clock minus this node's, as measured on the
	// node's own announcement (KV entries carry the server's time).
	skew time.Duration
}

// held is a room this node holds the lease of.
type held struct {
	room, session string
	part          int
	lease         []byte    // the lease's value
	rev           uint64    // its revision
	confirmed     time.Time // when the last successful write of it was sent
}

// Stats counts what the node did.
type Stats struct {
	ClaimsHere      int64 // claims granted (rooms recorded here)
	ClaimsElsewhere int64 // claims answered with another node
	ClaimsRefused   int64 // claims refused (lease unconfirmed, NATS errors)
	Contended       int64 // lease creations lost to another node
	Resumed         int64 // sessions continued as a new part
	RenewFailures   int64 // lease renewals that failed
	Lost            int64 // rooms lost to another node
	Orphans         int64 // sessions of dead nodes handed to OnOrphan
}

// Open creates (or opens) the cluster's buckets on the JetStream of nc.
func Open(ctx context.Context, nc *nats.Conn, cfg Config, log *slog.Logger) (*Cluster, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !nodeName.MatchString(cfg.Node) {
		return nil, fmt.Errorf("cluster: node name %q: want 1–64 letters, digits, '_', '-', '.'", cfg.Node)
	}
	if err := CheckURL(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.NewSession == nil {
		return nil, errors.New("cluster: no NewSession")
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.LeaseTTL < time.Second {
		return nil, fmt.Errorf("cluster: lease TTL %v: want 1 s or more", cfg.LeaseTTL)
	}
	if cfg.Resume <= 0 {
		cfg.Resume = DefaultResume
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster: JetStream: %w", err)
	}
	c := &Cluster{cfg: cfg, log: log.With("node", cfg.Node), js: js, cpu: &cpuload.Meter{}, start: time.Now(), held: map[string]*held{}}
	c.ttl = cfg.LeaseTTL
	if c.b.Leases, c.ttl, err = c.bucket(ctx, LeasesBucket, "tapedeck room leases: the node recording each room", cfg.LeaseTTL); err != nil {
		return nil, err
	}
	if c.b.Nodes, _, err = c.bucket(ctx, NodesBucket, "tapedeck nodes and their load", c.ttl); err != nil {
		return nil, err
	}
	if c.b.Rooms, _, err = c.bucket(ctx, RoomsBucket, "tapedeck rooms' sessions, kept a while after their lease for a failover", c.ttl+cfg.Resume); err != nil {
		return nil, err
	}
	if c.b.Sessions, _, err = c.bucket(ctx, SessionsBucket, "tapedeck sessions' parts, by {room}/{session}", SessionsTTL); err != nil {
		return nil, err
	}
	c.every = c.ttl / 3
	return c, nil
}

// bucket opens a bucket, creating it with ttl if it does not exist. An
// existing bucket keeps its TTL (the cluster's): it is returned, and a
// difference is logged.
func (c *Cluster) bucket(ctx context.Context, name, desc string, ttl time.Duration) (jetstream.KeyValue, time.Duration, error) {
	kv, err := c.js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = c.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name, Description: desc, History: 1, TTL: ttl, Storage: jetstream.FileStorage})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = c.js.KeyValue(ctx, name)
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("cluster: bucket %s: %w", name, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("cluster: bucket %s: %w", name, err)
	}
	if got := st.TTL(); got != ttl {
		c.log.Warn("the cluster's bucket has another TTL than this node's settings; the bucket's is used (every node must use the same)",
			"bucket", name, "bucket_ttl", got, "node_ttl", ttl)
		ttl = got
	}
	return kv, ttl, nil
}

// LeaseTTL is the cluster's lease TTL (the buckets').
func (c *Cluster) LeaseTTL() time.Duration { return c.ttl }

func (c *Cluster) stripe(room string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(room))
	return &c.stripes[h.Sum32()%uint32(len(c.stripes))]
}

// Run announces the node and renews its leases every LeaseTTL/3 until ctx
// ends; then it removes the node's announcement. The leases of the rooms it
// still holds then expire, and other nodes continue their sessions.
func (c *Cluster) Run(ctx context.Context) {
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		c.renewAll(ctx)
		c.announce(ctx)
		c.checkOrphans(ctx)
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			if err := c.b.Nodes.Delete(dctx, escapeKey(c.cfg.Node)); err != nil {
				c.log.Warn("removing the node's announcement failed; it expires", "err", err)
			}
			cancel()
			return
		case <-t.C:
		}
	}
}

// Drain announces that the node takes no new rooms.
func (c *Cluster) Drain(ctx context.Context) {
	c.mu.Lock()
	c.draining = true
	c.mu.Unlock()
	c.announce(ctx)
}

// currentLoad is the node's load now: Config.Load's with the last CPU measure.
func (c *Cluster) currentLoad() Load {
	var l Load
	if c.cfg.Load != nil {
		l = c.cfg.Load()
	}
	c.mu.Lock()
	l.CPU = c.load.CPU
	c.mu.Unlock()
	return l
}

// announce writes the node's announcement and reads the registry.
func (c *Cluster) announce(ctx context.Context) {
	var l Load
	if c.cfg.Load != nil {
		l = c.cfg.Load()
	}
	l.CPU = -1
	if load, ok := c.cpu.Measure(); ok {
		l.CPU = load.Busy
	}
	c.mu.Lock()
	c.load = l
	info := NodeInfo{Name: c.cfg.Node, URL: c.cfg.URL, Load: l, Limits: c.cfg.Limits, Draining: c.draining, Started: c.start, Updated: time.Now()}
	for room := range c.held {
		info.Rooms = append(info.Rooms, room)
	}
	c.mu.Unlock()
	sort.Strings(info.Rooms)
	b, err := json.Marshal(info)
	if err != nil {
		c.log.Error("encode announcement", "err", err)
		return
	}
	actx, cancel := context.WithTimeout(ctx, c.every)
	defer cancel()
	if _, err := c.b.Nodes.Put(actx, escapeKey(c.cfg.Node), b); err != nil {
		if ctx.Err() == nil {
			c.log.Warn("announcing the node failed", "err", err)
		}
		return
	}
	if e, err := c.b.Nodes.Get(actx, escapeKey(c.cfg.Node)); err == nil {
		// Written between info.Updated and now on this clock, at Created on
		// the server's: the middle of the two estimates the skew.
		mid := info.Updated.Add(time.Since(info.Updated) / 2)
		c.mu.Lock()
		c.skew = e.Created().Sub(mid)
		c.mu.Unlock()
	}
	nodes, err := c.b.ListNodes(actx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("reading the node registry failed", "err", err)
		}
		return
	}
	c.mu.Lock()
	prev := c.nodes
	c.nodes = nodes
	c.mu.Unlock()
	c.watchGone(actx, prev, nodes)
}

func sortNodes(ns []NodeInfo) {
	sort.Slice(ns, func(i, j int) bool { return ns[i].Name < ns[j].Name })
}

// serverNow is the NATS server's clock now, as this node estimates it.
func (c *Cluster) serverNow() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.skew)
}

// silent reports whether a lease last written at renewed (the server's
// clock) has missed two renewals.
func (c *Cluster) silent(renewed time.Time) bool {
	return c.serverNow().Sub(renewed) > 2*c.every
}

// Snapshot is what the node knows now, for metrics.
type Snapshot struct {
	Nodes    []NodeInfo // the registry at the last announcement
	Held     []HeldRoom // the rooms this node records
	Draining bool
	Stats    Stats
}

// HeldRoom is a room this node records.
type HeldRoom struct {
	Room, Session string
	Part          int
	// Confirmed is when the lease's last successful renewal was sent.
	Confirmed time.Time
}

// Snapshot returns what the node knows now, without asking NATS.
func (c *Cluster) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Snapshot{Nodes: append([]NodeInfo(nil), c.nodes...), Draining: c.draining, Stats: c.stats}
	for _, h := range c.held {
		s.Held = append(s.Held, HeldRoom{Room: h.room, Session: h.session, Part: h.part, Confirmed: h.confirmed})
	}
	sort.Slice(s.Held, func(i, j int) bool { return s.Held[i].Room < s.Held[j].Room })
	return s
}
