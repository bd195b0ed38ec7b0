package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tapedeck/tapedeck/cluster"
	"github.com/tapedeck/tapedeck/cluster/clustertest"
)

type logWriter struct{ t testing.TB }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// node is one cluster node of a test, on a NATS connection of its own.
type node struct {
	*cluster.Cluster
	nc     *nats.Conn
	lost   chan string
	cancel context.CancelFunc
	done   chan struct{}
}

var seq atomic.Int64

func newSessionID(t time.Time) string {
	return fmt.Sprintf("%s-%06d", t.UTC().Format("20060102T150405Z"), seq.Add(1))
}

// startNode opens a node named name; run starts its renewal loop.
func startNode(t testing.TB, url, name string, ttl time.Duration, run bool, mod func(*cluster.Config)) *node {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name(name))
	if err != nil {
		t.Fatal(err)
	}
	n := &node{nc: nc, lost: make(chan string, 16), done: make(chan struct{})}
	cfg := cluster.Config{Node: name, URL: "http://" + name + ".test:8080", LeaseTTL: ttl, Resume: 5 * time.Second,
		NewSession: newSessionID, OnLost: func(room, session string) { n.lost <- room + "/" + session }}
	if mod != nil {
		mod(&cfg)
	}
	n.Cluster, err = cluster.Open(t.Context(), nc, cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	if run {
		go func() { defer close(n.done); n.Run(ctx) }()
	} else {
		close(n.done)
	}
	t.Cleanup(n.stop)
	return n
}

func (n *node) stop() {
	n.cancel()
	<-n.done
	n.nc.Close()
}

// kill stops the node as a SIGKILL would: no release, no goodbye.
func (n *node) kill() {
	n.nc.Close()
	n.cancel()
	<-n.done
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestLeaseContention has two nodes claim the first publish of the same room
// at the same instant, 50 times (each time a new room): exactly one records
// it, the other is sent to it, and both agree on where it is.
func TestLeaseContention(t *testing.T) {
	srv := clustertest.StartNATS(t)
	a := startNode(t, srv.URL, "alpha", 5*time.Second, false, nil)
	b := startNode(t, srv.URL, "beta", 5*time.Second, false, nil)
	ctx := ctxT(t)
	wins := map[string]int{}
	for i := range 50 {
		room := fmt.Sprintf("race-%02d", i)
		var ready, start sync.WaitGroup
		ready.Add(2)
		start.Add(1)
		res := make([]cluster.Claim, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for k, n := range []*node{a, b} {
			wg.Go(func() {
				ready.Done()
				start.Wait()
				res[k], errs[k] = n.Claim(ctx, room, false)
			})
		}
		ready.Wait()
		start.Done()
		wg.Wait()
		for k, err := range errs {
			if err != nil {
				t.Fatalf("%s: node %d: %v", room, k, err)
			}
		}
		here := 0
		for k, c := range res {
			if c.Elsewhere == "" {
				here++
				wins[[]string{"alpha", "beta"}[k]]++
				if c.Session == "" || c.Part != 1 {
					t.Errorf("%s: the owner got session %q part %d, want a new session, part 1", room, c.Session, c.Part)
				}
			}
		}
		if got, want := here, 1; got != want {
			t.Fatalf("%s: %d nodes record the room (%+v), want %d", room, got, res, want)
		}
		owner, other := a, b
		if res[1].Elsewhere == "" {
			owner, other = b, a
		}
		if got, want := res[map[*node]int{a: 0, b: 1}[other]].Elsewhere, "http://"+ownerName(owner, a)+".test:8080"; got != want {
			t.Errorf("%s: the other node is sent to %q, want %q", room, got, want)
		}
		if u, err := other.Locate(ctx, room); err != nil || u == "" {
			t.Errorf("%s: the other node locates the room at %q (%v)", room, u, err)
		}
		parts, err := a.Buckets().Parts(ctx, room, res[map[*node]int{a: 0, b: 1}[owner]].Session)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(parts.Parts), 1; got != want {
			t.Errorf("%s: the session has %d parts, want %d", room, got, want)
		}
	}
	contended := a.Snapshot().Stats.Contended + b.Snapshot().Stats.Contended
	t.Logf("50 contended claims: alpha recorded %d rooms, beta %d; %d of the 50 losers lost at the lease's creation (the others read the winner's lease first)",
		wins["alpha"], wins["beta"], contended)
}

func ownerName(owner, a *node) string {
	if owner == a {
		return "alpha"
	}
	return "beta"
}

// TestFailoverContinuesSession: a node that dies holding a room loses its
// lease after LeaseTTL; then another node's claim continues the same session
// as part 2, and the session's record lists both parts, the dead node's not
// alive. A session ended normally is not continued: the next claim starts a
// new one.
func TestFailoverContinuesSession(t *testing.T) {
	srv := clustertest.StartNATS(t)
	const ttl = 2 * time.Second
	a := startNode(t, srv.URL, "alpha", ttl, true, nil)
	b := startNode(t, srv.URL, "beta", ttl, true, nil)
	ctx := ctxT(t)
	first, err := a.Claim(ctx, "standup", false)
	if err != nil || first.Elsewhere != "" {
		t.Fatalf("first claim: %+v, %v", first, err)
	}
	time.Sleep(ttl) // renewals keep it
	if c, err := b.Claim(ctx, "standup", false); err != nil || c.Elsewhere != "http://alpha.test:8080" {
		t.Fatalf("claim on beta while alpha holds the room: %+v, %v", c, err)
	}
	killed := time.Now()
	a.kill()
	var again cluster.Claim
	silent := 0
	for {
		again, err = b.Claim(ctx, "standup", false)
		if errors.Is(err, cluster.ErrOwnerSilent) {
			silent++ // alpha missed two renewals: try again in a moment, rather than going there
		} else if err != nil {
			t.Fatal(err)
		} else if again.Elsewhere == "" {
			break
		}
		if time.Since(killed) > 2*ttl {
			t.Fatalf("beta could not take the room %v after alpha died (lease TTL %v)", time.Since(killed), ttl)
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(killed)
	t.Logf("the room went to beta %v after alpha died (lease TTL %v, renewed every %v); %d claims meanwhile were told alpha was silent",
		took.Round(time.Millisecond), ttl, ttl/3, silent)
	if silent == 0 {
		t.Error("no claim was told alpha stopped renewing its lease")
	}
	if took > ttl+time.Second {
		t.Errorf("taking the room took %v, want at most the lease TTL %v and a second", took, ttl)
	}
	if got, want := again.Session, first.Session; got != want {
		t.Errorf("beta records session %q, want alpha's %q continued", got, want)
	}
	if got, want := again.Part, 2; got != want {
		t.Errorf("beta records part %d, want %d", got, want)
	}
	parts, err := b.Buckets().Parts(ctx, "standup", first.Session)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := parts.Recording, "beta"; got != want {
		t.Errorf("recording node %q, want %q", got, want)
	}
	if got, want := len(parts.Parts), 2; got != want {
		t.Fatalf("%d parts, want %d", got, want)
	}
	time.Sleep(ttl) // alpha's announcement expires too
	parts, _ = b.Buckets().Parts(ctx, "standup", first.Session)
	if p := parts.Parts[0]; p.Node != "alpha" || p.Alive || !p.Released.IsZero() {
		t.Errorf("part 1: %+v, want alpha's, not alive, never released", p)
	}
	if p := parts.Parts[1]; p.Node != "beta" || !p.Alive {
		t.Errorf("part 2: %+v, want beta's, alive", p)
	}

	// The session ends on beta: the next claim is a new session, part 1.
	if err := b.Release(ctx, "standup", first.Session, cluster.Ended); err != nil {
		t.Fatal(err)
	}
	parts, _ = b.Buckets().Parts(ctx, "standup", first.Session)
	if parts.Recording != "" || parts.Waiting || !parts.Ended {
		t.Errorf("after the end: %+v, want not recorded, not waiting, ended", parts)
	}
	next, err := b.Claim(ctx, "standup", false)
	if err != nil {
		t.Fatal(err)
	}
	if next.Session == first.Session || next.Part != 1 {
		t.Errorf("after the end: claim %+v, want a new session, part 1", next)
	}
	// Handed over (a node shutting down): the next claim, on any node,
	// continues it.
	if err := b.Release(ctx, "standup", next.Session, cluster.Handover); err != nil {
		t.Fatal(err)
	}
	c := startNode(t, srv.URL, "gamma", ttl, true, nil)
	cont, err := c.Claim(ctx, "standup", false)
	if err != nil {
		t.Fatal(err)
	}
	if cont.Session != next.Session || cont.Part != 2 {
		t.Errorf("after a handover: claim %+v, want session %s part 2", cont, next.Session)
	}
	// A claim given back unused leaves no part behind.
	if err := c.Release(ctx, "standup", cont.Session, cluster.Unused); err != nil {
		t.Fatal(err)
	}
	parts, _ = c.Buckets().Parts(ctx, "standup", cont.Session)
	if got, want := len(parts.Parts), 1; got != want {
		t.Errorf("after an unused claim was given back: %d parts, want %d", got, want)
	}
}

// TestFencing: a node whose lease expired while it could not renew (here: its
// renewal loop does not run) and that another node took, learns so at its
// next renewal and is told to end its part (OnLost).
func TestFencing(t *testing.T) {
	srv := clustertest.StartNATS(t)
	const ttl = 1500 * time.Millisecond
	a := startNode(t, srv.URL, "alpha", ttl, false, nil) // no renewals
	b := startNode(t, srv.URL, "beta", ttl, true, nil)
	ctx := ctxT(t)
	first, err := a.Claim(ctx, "board", false)
	if err != nil || first.Elsewhere != "" {
		t.Fatalf("claim: %+v, %v", first, err)
	}
	time.Sleep(ttl + 500*time.Millisecond)
	if _, err := a.Claim(ctx, "board", false); err == nil {
		t.Error("a claim on alpha after its lease expired unrenewed was granted, want ErrUnconfirmed")
	}
	var took cluster.Claim
	for took.Session == "" || took.Elsewhere != "" {
		if took, err = b.Claim(ctx, "board", false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// alpha's renewal loop runs now: it finds beta's lease.
	go func() { a.Run(ctx) }()
	select {
	case got := <-a.lost:
		if want := "board/" + first.Session; got != want {
			t.Errorf("alpha lost %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("alpha was not told it lost the room")
	}
	if got := a.Snapshot().Held; len(got) != 0 {
		t.Errorf("alpha still holds %+v", got)
	}
}

// TestOverLimitsGoesToLeastLoaded: a node over its limits sends a new room to
// the least loaded node under its own, keeps the rooms it has, and records new
// rooms itself when no node is under its limits.
func TestOverLimitsGoesToLeastLoaded(t *testing.T) {
	srv := clustertest.StartNATS(t)
	loads := map[string]*atomic.Int64{}
	mk := func(name string, pubs int64) *node {
		v := &atomic.Int64{}
		v.Store(pubs)
		loads[name] = v
		return startNode(t, srv.URL, name, 3*time.Second, true, func(c *cluster.Config) {
			c.Limits = cluster.Limits{MaxPublishes: 10}
			c.Load = func() cluster.Load { return cluster.Load{CPU: -1, FreeDisk: -1, Publishes: int(v.Load())} }
		})
	}
	full := mk("full", 10)
	mk("busy", 7)
	mk("idle", 2)
	ctx := ctxT(t)
	// Every node has announced itself and read the registry.
	deadline := time.Now().Add(10 * time.Second)
	for len(full.Snapshot().Nodes) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the registry holds %d nodes, want 3", len(full.Snapshot().Nodes))
		}
		time.Sleep(100 * time.Millisecond)
	}
	c, err := full.Claim(ctx, "new-room", false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Owner, "idle"; got != want || !c.Placed {
		t.Errorf("a node over its limits sends a new room to %q (placed %v), want the least loaded %q, placed", got, c.Placed, want)
	}
	// A publish another node placed here is recorded here, whatever the load.
	if c, err := full.Claim(ctx, "placed-room", true); err != nil || c.Elsewhere != "" {
		t.Errorf("a publish placed here: %+v, %v; want it recorded here", c, err)
	}
	loads["busy"].Store(10)
	loads["idle"].Store(10)
	time.Sleep(2 * time.Second) // announced
	c, err = full.Claim(ctx, "new-room-2", false)
	if err != nil {
		t.Fatal(err)
	}
	if c.Elsewhere != "" {
		t.Errorf("every node is over its limits: the room is sent to %q, want recorded here", c.Owner)
	}
}

// TestOrphanedSession: a node dies recording a room and no publisher comes
// back: once Resume has passed, every surviving node hands the session to
// OnOrphan (once each), and a session another node continued is not handed.
func TestOrphanedSession(t *testing.T) {
	srv := clustertest.StartNATS(t)
	const ttl, resume = time.Second, 2 * time.Second
	type call struct{ node, room, session string }
	calls := make(chan call, 16)
	watcher := func(name string) func(*cluster.Config) {
		return func(c *cluster.Config) {
			c.Resume = resume
			c.OnOrphan = func(_ context.Context, room, session string) { calls <- call{name, room, session} }
		}
	}
	a := startNode(t, srv.URL, "alpha", ttl, true, watcher("alpha"))
	b := startNode(t, srv.URL, "beta", ttl, true, watcher("beta"))
	c := startNode(t, srv.URL, "gamma", ttl, true, watcher("gamma"))
	ctx := ctxT(t)
	lone, err := a.Claim(ctx, "lone", false)
	if err != nil || lone.Elsewhere != "" {
		t.Fatalf("claim: %+v, %v", lone, err)
	}
	kept, err := a.Claim(ctx, "kept", false)
	if err != nil || kept.Elsewhere != "" {
		t.Fatalf("claim: %+v, %v", kept, err)
	}
	time.Sleep(ttl) // announced with both rooms
	killed := time.Now()
	a.kill()
	// "kept" is continued on gamma as soon as alpha's lease is gone.
	for {
		cont, err := c.Claim(ctx, "kept", false)
		if err == nil && cont.Elsewhere == "" {
			if cont.Session != kept.Session || cont.Part != 2 {
				t.Fatalf("continued as %+v, want session %s part 2", cont, kept.Session)
			}
			break
		}
		if err != nil && !errors.Is(err, cluster.ErrOwnerSilent) {
			t.Fatal(err)
		}
		if time.Since(killed) > 5*ttl {
			t.Fatal("gamma could not continue the room")
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := map[string]call{}
	deadline := time.After(ttl + resume + 8*time.Second)
	for len(got) < 2 {
		select {
		case cl := <-calls:
			if cl.room != "lone" || cl.session != lone.Session {
				t.Errorf("%s handed %s/%s, want only lone/%s", cl.node, cl.room, cl.session, lone.Session)
			}
			if _, twice := got[cl.node]; twice {
				t.Errorf("%s handed the session twice", cl.node)
			}
			got[cl.node] = cl
		case <-deadline:
			t.Fatalf("handed by %v within %v of the kill, want beta and gamma", got, time.Since(killed).Round(time.Millisecond))
		}
	}
	t.Logf("the orphaned session was handed over %v after its node died (lease TTL %v, resume %v)",
		time.Since(killed).Round(time.Millisecond), ttl, resume)
	select {
	case cl := <-calls:
		t.Errorf("handed again: %+v", cl)
	case <-time.After(2 * ttl):
	}
	if s := b.Snapshot().Stats.Orphans; s != 1 {
		t.Errorf("beta counts %d orphans, want 1", s)
	}
}
