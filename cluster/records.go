package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Buckets in JetStream (see the package documentation).
const (
	NodesBucket    = "tapedeck_nodes"
	LeasesBucket   = "tapedeck_leases"
	RoomsBucket    = "tapedeck_rooms"
	SessionsBucket = "tapedeck_sessions"
	// SessionsTTL is how long a session's record of parts is kept after its
	// last change: the post-call jobs read it to merge the parts, also when a
	// dead recorder comes back days later.
	SessionsTTL = 30 * 24 * time.Hour
)

// Load is what a node announces of its load.
type Load struct {
	// CPU is the fraction of all the machine's cores busy (0 to 1) over the
	// last announcement period; -1 when unknown.
	CPU float64 `json:"cpu"`
	// FreeDisk is the free space of the recordings' folder in bytes; -1
	// when unknown.
	FreeDisk  int64 `json:"free_disk"`
	Tracks    int64 `json:"tracks"`
	Publishes int   `json:"publishes"`
	Sessions  int   `json:"sessions"`
}

// Limits are a node's limits: over any of them, new rooms go to the least
// loaded node that is under its own (the rooms it records stay).
type Limits struct {
	// MaxCPU is the CPU fraction (0 to 1) from which a node takes no new
	// room; 0: no limit.
	MaxCPU float64 `json:"max_cpu,omitempty"`
	// MinFreeDisk is the free disk space below which it takes none.
	MinFreeDisk int64 `json:"min_free_disk,omitempty"`
	// MaxPublishes is the number of publishes from which it takes none; 0:
	// no limit.
	MaxPublishes int `json:"max_publishes,omitempty"`
}

// Over returns why load is over the limits, "" when it is not.
func (l Limits) Over(load Load) string {
	switch {
	case l.MaxCPU > 0 && load.CPU >= l.MaxCPU:
		return fmt.Sprintf("CPU %.0f%% (limit %.0f%%)", 100*load.CPU, 100*l.MaxCPU)
	case l.MinFreeDisk > 0 && load.FreeDisk >= 0 && load.FreeDisk < l.MinFreeDisk:
		return fmt.Sprintf("free disk %d MiB (limit %d MiB)", load.FreeDisk>>20, l.MinFreeDisk>>20)
	case l.MaxPublishes > 0 && load.Publishes >= l.MaxPublishes:
		return fmt.Sprintf("%d publishes (limit %d)", load.Publishes, l.MaxPublishes)
	}
	return ""
}

// score orders nodes under their limits for a new room: the highest of its
// CPU fraction and its share of its publish limit; lower is less loaded.
func (n NodeInfo) score() float64 {
	s := max(n.Load.CPU, 0)
	if n.Limits.MaxPublishes > 0 {
		s = max(s, float64(n.Load.Publishes)/float64(n.Limits.MaxPublishes))
	}
	return s
}

// NodeInfo is what a node announces in NodesBucket, under its name, every
// announcement period; it disappears LeaseTTL after the node's last one.
type NodeInfo struct {
	Name     string    `json:"name"`
	URL      string    `json:"url"`
	Load     Load      `json:"load"`
	Limits   Limits    `json:"limits"`
	Rooms    []string  `json:"rooms"`
	Draining bool      `json:"draining,omitempty"`
	Started  time.Time `json:"started"`
	Updated  time.Time `json:"updated"` // the node's clock
}

// Lease is a room's lease in LeasesBucket, under the room's name: the node
// that records the room. It disappears LeaseTTL after its last renewal.
type Lease struct {
	Room    string    `json:"room"`
	Node    string    `json:"node"`
	URL     string    `json:"url"`
	Session string    `json:"session"`
	Since   time.Time `json:"since"` // the node's clock
}

// RoomRecord, in RoomsBucket under the room's name, says which session the
// room records. It is rewritten with every renewal of the room's lease and
// kept LeaseTTL + Resume after the last one: a node that claims the room
// within that window, its session not ended, continues the session.
type RoomRecord struct {
	Session string `json:"session"`
	Node    string `json:"node"`
	Ended   bool   `json:"ended,omitempty"`
}

// SessionRecord, in SessionsBucket under "{room}/{session}", lists the parts
// of a session: each node that recorded it, in turn.
type SessionRecord struct {
	Room    string    `json:"room"`
	Session string    `json:"session"`
	Started time.Time `json:"started"`
	Parts   []Part    `json:"parts"`
	// Ended is set when the last part's node ended the session (its last
	// publisher left, or an operator stopped it).
	Ended time.Time `json:"ended,omitzero"`
}

// Part is one node's part of a session.
type Part struct {
	Part    int       `json:"part"`
	Node    string    `json:"node"`
	URL     string    `json:"url"`
	Started time.Time `json:"started"`
	// Released is when the node stopped recording it (zero: it records it,
	// or it died doing so).
	Released time.Time `json:"released,omitzero"`
}

// escapeKey writes a name as one key token: every character but letters,
// digits, '_' and '-' becomes "=XX".
func escapeKey(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "=%02X", c)
	}
	return b.String()
}

func sessionKey(room, session string) string { return escapeKey(room) + "/" + escapeKey(session) }

// getJSON reads the value of key into v; found is false for a missing key.
func getJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) (rev uint64, found bool, err error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("cluster: read %s %s: %w", kv.Bucket(), key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, false, fmt.Errorf("cluster: %s %s is not valid: %w", kv.Bucket(), key, err)
	}
	return e.Revision(), true, nil
}

// isConflict reports a create or compare-and-set that lost to another writer.
func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// updateSession applies fn to a session's record with compare-and-set,
// retrying when another node changed it meanwhile. fn returns false to write
// nothing.
func updateSession(ctx context.Context, kv jetstream.KeyValue, room, session string, fn func(*SessionRecord) bool) (SessionRecord, error) {
	key := sessionKey(room, session)
	for try := 0; ; try++ {
		var rec SessionRecord
		rev, found, err := getJSON(ctx, kv, key, &rec)
		if err != nil {
			return SessionRecord{}, err
		}
		if !found {
			rec = SessionRecord{Room: room, Session: session}
		}
		if !fn(&rec) {
			return rec, nil
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return SessionRecord{}, fmt.Errorf("cluster: encode session record: %w", err)
		}
		if found {
			_, err = kv.Update(ctx, key, b, rev)
		} else {
			_, err = kv.Create(ctx, key, b)
		}
		if err == nil {
			return rec, nil
		}
		if !isConflict(err) || try >= 20 || ctx.Err() != nil {
			return SessionRecord{}, fmt.Errorf("cluster: write the record of session %s/%s: %w", room, session, err)
		}
	}
}

// Buckets opens the cluster's buckets read-only, for a process that is no
// node (`tapedeck nodes`, the post-call jobs of a worker). A bucket no node
// created yet is nil.
type Buckets struct {
	Nodes, Leases, Rooms, Sessions jetstream.KeyValue
}

// OpenBuckets opens the buckets that exist.
func OpenBuckets(ctx context.Context, js jetstream.JetStream) (Buckets, error) {
	var b Buckets
	for _, x := range []struct {
		name string
		kv   *jetstream.KeyValue
	}{{NodesBucket, &b.Nodes}, {LeasesBucket, &b.Leases}, {RoomsBucket, &b.Rooms}, {SessionsBucket, &b.Sessions}} {
		kv, err := js.KeyValue(ctx, x.name)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			continue
		}
		if err != nil {
			return Buckets{}, fmt.Errorf("cluster: open bucket %s: %w", x.name, err)
		}
		*x.kv = kv
	}
	return b, nil
}

// ListNodes returns the nodes alive now (announced within LeaseTTL), by name.
func (b Buckets) ListNodes(ctx context.Context) ([]NodeInfo, error) {
	var out []NodeInfo
	err := listJSON(ctx, b.Nodes, func(v []byte) {
		var n NodeInfo
		if json.Unmarshal(v, &n) == nil {
			out = append(out, n)
		}
	})
	sortNodes(out)
	return out, err
}

// ListLeases returns the rooms being recorded now, with their nodes.
func (b Buckets) ListLeases(ctx context.Context) ([]Lease, error) {
	var out []Lease
	err := listJSON(ctx, b.Leases, func(v []byte) {
		var l Lease
		if json.Unmarshal(v, &l) == nil {
			out = append(out, l)
		}
	})
	return out, err
}

// listJSON calls fn with the value of every key of kv (nothing for a nil kv).
func listJSON(ctx context.Context, kv jetstream.KeyValue, fn func([]byte)) error {
	if kv == nil {
		return nil
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("cluster: list %s: %w", kv.Bucket(), err)
	}
	defer func() { _ = lister.Stop() }()
	for key := range lister.Keys() {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired meanwhile
		}
		if err != nil {
			return fmt.Errorf("cluster: read %s %s: %w", kv.Bucket(), key, err)
		}
		fn(e.Value())
	}
	return nil
}
