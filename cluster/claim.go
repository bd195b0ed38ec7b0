package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Claim answers whether this node may record room, and as which session
// and part. It is asked for every publish of the room:
//
//   - a room this node holds: its session, unless the lease could not be
//     renewed within LeaseTTL (ErrUnconfirmed);
//   - a room another node holds: that node (Elsewhere);
//   - a room nobody holds: this node, unless it is over its limits and a
//     node under its own is less loaded (Elsewhere and Placed, without
//     taking a lease); with placedHere (another node placed the publish
//     here), this node whatever its load, so that a publish is placed once.
//     The lease is created if absent: of two nodes claiming at the same
//     instant, one creates it and the other is answered with it. The
//     session is the room's last one if it waits for its next node (its
//     node died less than Resume ago, or handed it over), as a new part;
//     else a new session.
func (c *Cluster) Claim(ctx context.Context, room string, placedHere bool) (Claim, error) {
	mu := c.stripe(room)
	mu.Lock()
	defer mu.Unlock()
	cl, err := c.claim(ctx, room, placedHere)
	c.mu.Lock()
	switch {
	case err != nil:
		c.stats.ClaimsRefused++
	case cl.Elsewhere != "":
		c.stats.ClaimsElsewhere++
	default:
		c.stats.ClaimsHere++
	}
	c.mu.Unlock()
	return cl, err
}

func (c *Cluster) claim(ctx context.Context, room string, placedHere bool) (Claim, error) {
	c.mu.Lock()
	h := c.held[room]
	var cl Claim
	var confirmed time.Time
	if h != nil {
		cl, confirmed = Claim{Session: h.session, Part: h.part}, h.confirmed
	}
	c.mu.Unlock()
	if h != nil {
		if time.Since(confirmed) >= c.ttl {
			return Claim{}, ErrUnconfirmed
		}
		return cl, nil
	}
	key := escapeKey(room)
	var lease Lease
	var rev uint64
	found := false
	switch e, err := c.b.Leases.Get(ctx, key); {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return Claim{}, fmt.Errorf("cluster: read the lease of room %s: %w", room, err)
	default:
		if err := json.Unmarshal(e.Value(), &lease); err != nil {
			return Claim{}, fmt.Errorf("cluster: the lease of room %s is not valid: %w", room, err)
		}
		found, rev = true, e.Revision()
		if lease.Node != c.cfg.Node && c.silent(e.Created()) {
			// Its node missed two renewals: likely dead. Rather than send the
			// client there (a dead machine's address can take a TCP timeout to
			// fail), have it try again once the lease expired.
			return Claim{}, fmt.Errorf("%w: room %s, node %s, lease renewed %v ago", ErrOwnerSilent, room, lease.Node, c.serverNow().Sub(e.Created()).Round(time.Millisecond))
		}
	}
	switch {
	case found && lease.Node != c.cfg.Node:
		return Claim{Elsewhere: lease.URL, Owner: lease.Node}, nil
	case found:
		// Ours, from before this process started (a restart within
		// LeaseTTL): taken over below, as a new part.
	case !placedHere:
		if n := c.placeElsewhere(); n != nil {
			c.log.Info("over its limits: a new room goes to a less loaded node", "room", room, "to", n.Name)
			return Claim{Elsewhere: n.URL, Owner: n.Name, Placed: true}, nil
		}
	}
	// The session: the room's last one if it waits for its next node.
	var rr RoomRecord
	_, rfound, err := getJSON(ctx, c.b.Rooms, key, &rr)
	if err != nil {
		return Claim{}, err
	}
	session, resumed := rr.Session, true
	if !rfound || rr.Ended || rr.Session == "" {
		session, resumed = c.cfg.NewSession(time.Now()), false
	}
	lease = Lease{Room: room, Node: c.cfg.Node, URL: c.cfg.URL, Session: session, Since: time.Now()}
	lb, err := json.Marshal(lease)
	if err != nil {
		return Claim{}, fmt.Errorf("cluster: encode lease: %w", err)
	}
	sent := time.Now()
	if found {
		rev, err = c.b.Leases.Update(ctx, key, lb, rev)
	} else {
		rev, err = c.b.Leases.Create(ctx, key, lb)
	}
	if isConflict(err) {
		// Another node claimed it first: it records the room.
		c.mu.Lock()
		c.stats.Contended++
		c.mu.Unlock()
		var other Lease
		if _, ok, gerr := getJSON(ctx, c.b.Leases, key, &other); gerr == nil && ok && other.Node != c.cfg.Node {
			return Claim{Elsewhere: other.URL, Owner: other.Node}, nil
		}
		return Claim{}, fmt.Errorf("cluster: claim room %s: another node's claim got in the way; try again: %w", room, err)
	}
	if err != nil {
		return Claim{}, fmt.Errorf("cluster: claim room %s: %w", room, err)
	}
	var part int
	if _, err := updateSession(ctx, c.b.Sessions, room, session, func(s *SessionRecord) bool {
		if s.Started.IsZero() {
			s.Started = time.Now().UTC()
		}
		part = 1
		for _, p := range s.Parts {
			part = max(part, p.Part+1)
		}
		s.Parts = append(s.Parts, Part{Part: part, Node: c.cfg.Node, URL: c.cfg.URL, Started: time.Now().UTC()})
		s.Ended = time.Time{}
		return true
	}); err != nil {
		c.deleteLease(ctx, key, rev)
		return Claim{}, err
	}
	h = &held{room: room, session: session, part: part, lease: lb, rev: rev, confirmed: sent}
	if err := c.putRoom(ctx, h, false); err != nil {
		c.log.Warn("writing the room's session failed; the next renewal writes it", "room", room, "err", err)
	}
	c.mu.Lock()
	c.held[room] = h
	if resumed {
		c.stats.Resumed++
	}
	c.mu.Unlock()
	c.log.Info("room claimed", "room", room, "session", session, "part", part, "resumed", resumed)
	return Claim{Session: session, Part: part}, nil
}

// putRoom writes the room's record: its session, ended or not.
func (c *Cluster) putRoom(ctx context.Context, h *held, ended bool) error {
	b, err := json.Marshal(RoomRecord{Session: h.session, Node: c.cfg.Node, Ended: ended})
	if err != nil {
		return fmt.Errorf("cluster: encode room record: %w", err)
	}
	if _, err := c.b.Rooms.Put(ctx, escapeKey(h.room), b); err != nil {
		return fmt.Errorf("cluster: write the record of room %s: %w", h.room, err)
	}
	return nil
}

func (c *Cluster) deleteLease(ctx context.Context, key string, rev uint64) {
	if err := c.b.Leases.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil && !isConflict(err) {
		c.log.Warn("deleting a lease failed; it expires", "key", key, "err", err)
	}
}

// placeElsewhere returns the least loaded node under its limits when this
// node is over its own or draining, nil when the room stays here.
func (c *Cluster) placeElsewhere() *NodeInfo {
	load := c.currentLoad()
	c.mu.Lock()
	draining, nodes := c.draining, c.nodes
	c.mu.Unlock()
	if !draining && c.cfg.Limits.Over(load) == "" {
		return nil
	}
	var best *NodeInfo
	for i := range nodes {
		n := &nodes[i]
		if n.Name == c.cfg.Node || n.Draining || n.Limits.Over(n.Load) != "" {
			continue
		}
		if best == nil || n.score() < best.score() {
			best = n
		}
	}
	return best
}

// Locate returns the URL of the node that records room, "" when it is this
// node or none.
func (c *Cluster) Locate(ctx context.Context, room string) (string, error) {
	c.mu.Lock()
	_, mine := c.held[room]
	c.mu.Unlock()
	if mine {
		return "", nil
	}
	var lease Lease
	_, found, err := getJSON(ctx, c.b.Leases, escapeKey(room), &lease)
	if err != nil || !found || lease.Node == c.cfg.Node {
		return "", err
	}
	return lease.URL, nil
}

// How a node stops recording a room (Release).
type Release int

const (
	// Ended: the session is over; the room's next claim starts a new one.
	Ended Release = iota
	// Handover: the call may go on elsewhere; the next claim continues the
	// session as its next part.
	Handover
	// Unused: the claim was not used; its part is removed.
	Unused
)

// Release gives up this node's lease of room, whose session it recorded as
// session, and records how in the room's and the session's records. A room
// this node does not hold (any more) as that session is left alone.
func (c *Cluster) Release(ctx context.Context, room, session string, how Release) error {
	mu := c.stripe(room)
	mu.Lock()
	defer mu.Unlock()
	c.mu.Lock()
	h := c.held[room]
	if h == nil || h.session != session {
		c.mu.Unlock()
		return nil
	}
	delete(c.held, room)
	c.mu.Unlock()
	var errs []error
	now := time.Now().UTC()
	_, err := updateSession(ctx, c.b.Sessions, room, session, func(s *SessionRecord) bool {
		for i := range s.Parts {
			if s.Parts[i].Part != h.part || s.Parts[i].Node != c.cfg.Node {
				continue
			}
			switch how {
			case Unused:
				s.Parts = append(s.Parts[:i], s.Parts[i+1:]...)
			default:
				s.Parts[i].Released = now
			}
			if how == Ended {
				s.Ended = now
			}
			return true
		}
		return false
	})
	errs = append(errs, err)
	// The room's record before the lease: while the lease is held nobody
	// else writes it, and a claim that follows the lease's removal reads
	// the session ended (or waiting for its next node).
	switch how {
	case Ended:
		errs = append(errs, c.putRoom(ctx, h, true))
	case Handover:
		errs = append(errs, c.putRoom(ctx, h, false))
	}
	c.deleteLease(ctx, escapeKey(room), h.rev)
	c.log.Info("room released", "room", room, "session", session, "part", h.part, "how", how.String())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cluster: release room %s: %w", room, err)
	}
	return nil
}

func (r Release) String() string {
	switch r {
	case Ended:
		return "ended"
	case Handover:
		return "handover"
	case Unused:
		return "unused"
	}
	return fmt.Sprintf("release(%d)", int(r))
}

// renewAll renews the lease of every room this node holds, within one
// renewal period (when NATS does not answer, the rooms not reached are tried
// again at the next period).
func (c *Cluster) renewAll(ctx context.Context) {
	c.mu.Lock()
	rooms := make([]*held, 0, len(c.held))
	for _, h := range c.held {
		rooms = append(rooms, h)
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.every)
	defer cancel()
	for i, h := range rooms {
		if ctx.Err() != nil {
			c.log.Warn("lease renewals did not finish within their period", "renewed", i, "rooms", len(rooms))
			return
		}
		mu := c.stripe(h.room)
		mu.Lock()
		c.mu.Lock()
		still := c.held[h.room] == h
		c.mu.Unlock()
		if still {
			c.renew(ctx, h)
		}
		mu.Unlock()
	}
}

// renew renews one lease by compare-and-set on its revision. A lease that
// expired meanwhile (NATS was unreachable) and that nobody took is created
// again; one another node took is lost: Config.OnLost is told.
func (c *Cluster) renew(ctx context.Context, h *held) {
	key := escapeKey(h.room)
	sent := time.Now()
	rev, err := c.b.Leases.Update(ctx, key, h.lease, h.rev)
	if isConflict(err) {
		var other Lease
		orev, found, gerr := getJSON(ctx, c.b.Leases, key, &other)
		switch {
		case gerr != nil:
			err = gerr
		case !found:
			sent = time.Now()
			rev, err = c.b.Leases.Create(ctx, key, h.lease)
			if err == nil {
				c.log.Warn("the room's lease had expired and nobody took it: taken again", "room", h.room, "session", h.session)
			}
		case other.Node != c.cfg.Node || other.Session != h.session:
			c.lost(h, other)
			return
		default:
			// Ours: an earlier renewal went through but its answer was lost.
			rev, err = c.b.Leases.Update(ctx, key, h.lease, orev)
		}
	}
	if err != nil {
		c.mu.Lock()
		c.stats.RenewFailures++
		c.mu.Unlock()
		if ctx.Err() == nil || time.Since(h.confirmed) > c.every {
			c.log.Warn("renewing a room's lease failed", "room", h.room, "err", err, "confirmed_ago", time.Since(h.confirmed).Round(time.Millisecond))
		}
		return
	}
	c.mu.Lock()
	h.rev, h.confirmed = rev, sent
	c.mu.Unlock()
	if err := c.putRoom(ctx, h, false); err != nil {
		c.log.Warn("refreshing the room's record failed", "room", h.room, "err", err)
	}
}

// lost forgets a room another node took, and tells Config.OnLost.
func (c *Cluster) lost(h *held, other Lease) {
	c.mu.Lock()
	if c.held[h.room] == h {
		delete(c.held, h.room)
	}
	c.stats.Lost++
	c.mu.Unlock()
	c.log.Warn("room lost: another node holds its lease now", "room", h.room, "session", h.session, "to", other.Node)
	if c.cfg.OnLost != nil {
		c.cfg.OnLost(h.room, h.session)
	}
}

// SessionParts says who recorded a session, for the post-call merge of its
// parts.
type SessionParts struct {
	// Recording names the node that records the session now ("" if none).
	Recording string
	// Waiting: no node records it, but it is not over: the next claim of
	// its room (within Resume) continues it.
	Waiting bool
	// Ended: the session's last node ended it.
	Ended bool
	Parts []PartState
}

// PartState is a part of a session and whether its node is alive.
type PartState struct {
	Part
	Alive bool
}

// Parts returns a session's parts (none for a session the cluster has no
// record of) and whether it is still recorded.
func (b Buckets) Parts(ctx context.Context, room, session string) (SessionParts, error) {
	var out SessionParts
	if b.Sessions == nil || b.Leases == nil || b.Rooms == nil || b.Nodes == nil {
		return out, nil
	}
	var rec SessionRecord
	if _, _, err := getJSON(ctx, b.Sessions, sessionKey(room, session), &rec); err != nil {
		return out, err
	}
	out.Ended = !rec.Ended.IsZero()
	var lease Lease
	_, found, err := getJSON(ctx, b.Leases, escapeKey(room), &lease)
	if err != nil {
		return out, err
	}
	if found && lease.Session == session {
		out.Recording = lease.Node
	}
	var rr RoomRecord
	_, found, err = getJSON(ctx, b.Rooms, escapeKey(room), &rr)
	if err != nil {
		return out, err
	}
	out.Waiting = out.Recording == "" && found && rr.Session == session && !rr.Ended
	for _, p := range rec.Parts {
		var n NodeInfo
		_, alive, err := getJSON(ctx, b.Nodes, escapeKey(p.Node), &n)
		if err != nil {
			return out, err
		}
		out.Parts = append(out.Parts, PartState{Part: p, Alive: alive})
	}
	return out, nil
}

// Buckets returns the node's buckets.
func (c *Cluster) Buckets() Buckets { return c.b }
