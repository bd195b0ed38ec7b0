package postcall

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/timeline"
)

// Names of the merge of a session's parts (a cluster).
const (
	// MergeSubject carries merge jobs; MergeConsumer is their durable
	// consumer, shared by the cluster's nodes.
	MergeSubject  = SubjectPrefix + ".merge"
	MergeConsumer = "merge"
	// MergeLocksBucket holds a lock per session being merged, so that two
	// merges of one session never interleave; a lock whose holder died
	// expires after MergeLockTTL.
	MergeLocksBucket = "tapedeck_merge_locks"
	MergeLockTTL     = 2 * time.Minute
	// SnapshotName is the copy of a part's journal uploaded during the call
	// after every closed segment, under parts/{part}/: what a merge reads of a
	// part whose node died.
	SnapshotName = "journal-snapshot.jsonl"
)

// mergePoll is how often a merge waiting for parts looks again.
const mergePoll = time.Second

// Parts says which nodes recorded parts of a session (Config.Parts). Package
// cluster knows; cmd wires it in.
type Parts interface {
	SessionParts(ctx context.Context, room, session string) (SessionParts, error)
}

// SessionParts is what a cluster knows of a session's parts.
type SessionParts struct {
	// Recording names the node that records the session now ("" if none):
	// its part's end merges the session.
	Recording string
	// Waiting: no node records it, but the next publish of its room may
	// continue it (its node died a moment ago, or handed it over).
	Waiting bool
	Parts   []PartRef
}

// PartRef is one part of a session.
type PartRef struct {
	Part int
	Node string
	// Alive: the node is up (it stores its part when the part ends, or
	// after it restarts).
	Alive bool
}

// PartPrefix is "{room}/{session}/parts/{part}/": where a part's journal,
// manifest and journal snapshot are stored. Its track files are stored with
// the session's (their names are unique across parts).
func PartPrefix(room, session string, part int) string {
	return storage.SessionPrefix(room, session) + "parts/" + strconv.Itoa(part) + "/"
}

// sessionFileKey is where a session folder's file rel is stored: under
// PartPrefix for the journal and the manifest of a part, else under the
// session's prefix.
func sessionFileKey(room, session string, part int, rel string) string {
	if part > 0 && (rel == capture.JournalName || rel == capture.ManifestName) {
		return PartPrefix(room, session, part) + rel
	}
	return storage.SessionPrefix(room, session) + rel
}

// storePart is stage 1 for a node's part of a session: store its files (the
// journal and manifest under parts/{part}/), then queue the session's merge.
func (p *Pipeline) storePart(ctx context.Context, j Job, m *timeline.Manifest, log *slog.Logger) error {
	if m.Room != j.Room || m.Session != j.Session {
		return permanent(fmt.Errorf("postcall: %s holds session %s/%s, the job says %s", j.Dir, m.Room, m.Session, j.ID()))
	}
	start := time.Now()
	log = log.With("part", m.Part)
	log.Info("storing the session's part", "store", p.store.String(), "dir", j.Dir)
	n, err := p.uploader.StoreSession(ctx, j.Dir, m, true)
	if err != nil {
		return err
	}
	log.Info("part stored", "files", n, "took", time.Since(start).Round(time.Millisecond))
	if err := p.storeWindows(ctx, j, m.Part, log); err != nil {
		return err
	}
	mj := j
	mj.Enqueued = time.Now().UTC()
	dup, err := p.enqueue(ctx, MergeSubject, fmt.Sprintf("merge/%s/p%d", j.ID(), m.Part), mj, log)
	if err != nil {
		return err
	}
	if !dup {
		log.Info("merge of the session's parts queued")
	}
	return nil
}

// snapshotJournal uploads a copy of a part's journal as it is now, under
// PartPrefix/SnapshotName, after one of its segments was stored: if the node
// dies, the merge reads from it which of its stored segments hold what.
func (u *Uploader) snapshotJournal(ctx context.Context, ev capture.SegmentClosed, log *slog.Logger) {
	b, err := os.ReadFile(filepath.Join(ev.Dir, capture.JournalName))
	if err != nil {
		log.Warn("journal snapshot not uploaded", "err", err)
		return
	}
	// Whole lines only: the journal may be being appended to.
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	}
	key := PartPrefix(ev.Room, ev.Session, ev.Part) + SnapshotName
	if _, err := u.store.Put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
		log.Warn("journal snapshot not uploaded", "key", key, "err", err)
	}
}

func setupMergeLocks(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: MergeLocksBucket, Description: "tapedeck: sessions whose parts are being merged", History: 1,
		TTL: MergeLockTTL, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("postcall: create key-value bucket %s: %w", MergeLocksBucket, err)
	}
	return kv, nil
}

// mergeSession is the merge stage, on any node of a cluster: once no node
// records the session any more, and every part is stored (or its node has been
// gone PartWait since the merge was queued), merge the parts' manifests into
// the session's manifest, store it, and queue the render. A session merged
// before with less of its parts (a dead node came back and stored its part)
// is merged again and rendered again, once.
func (p *Pipeline) mergeSession(ctx context.Context, j Job, log *slog.Logger) error {
	if p.cfg.Parts == nil {
		return permanent(errors.New("postcall: a merge job on a process that is no cluster node"))
	}
	deadline := j.Enqueued.Add(p.cfg.PartWait)
	said := ""
	for {
		sp, err := p.cfg.Parts.SessionParts(ctx, j.Room, j.Session)
		if err != nil {
			return err
		}
		if sp.Recording != "" {
			log.Info("the session is still being recorded; the end of that part merges it", "recording", sp.Recording)
			return nil
		}
		stored, err := p.storedParts(ctx, j.Room, j.Session)
		if err != nil {
			return err
		}
		var waits []string
		if sp.Waiting {
			waits = append(waits, "the session may yet be continued by another node")
		}
		for _, pr := range sp.Parts {
			if stored[pr.Part] {
				continue
			}
			switch {
			case pr.Alive:
				waits = append(waits, fmt.Sprintf("part %d: node %s is storing it", pr.Part, pr.Node))
			case time.Now().Before(deadline):
				waits = append(waits, fmt.Sprintf("part %d: node %s is gone; waiting for it until %s", pr.Part, pr.Node, deadline.Format(time.RFC3339)))
			}
		}
		if len(waits) == 0 {
			return p.merge(ctx, j, sp, log)
		}
		if s := strings.Join(waits, "; "); s != said {
			log.Info("merge waits", "for", s)
			said = s
		}
		select {
		case <-time.After(mergePoll):
		case <-ctx.Done():
			return fmt.Errorf("postcall: merge of %s: %w", j.ID(), ctx.Err())
		}
	}
}

// storedParts returns the parts of a session whose manifest is stored.
func (p *Pipeline) storedParts(ctx context.Context, room, session string) (map[int]bool, error) {
	prefix := storage.SessionPrefix(room, session) + "parts/"
	objs, err := p.store.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("postcall: list the parts of %s/%s: %w", room, session, err)
	}
	out := map[int]bool{}
	for _, o := range objs {
		rest := strings.TrimPrefix(o.Key, prefix)
		num, name, ok := strings.Cut(rest, "/")
		n, err := strconv.Atoi(num)
		if ok && err == nil && n > 0 && name == capture.ManifestName {
			out[n] = true
		}
	}
	return out, nil
}

// merge merges, under the session's merge lock, what there is of every part.
func (p *Pipeline) merge(ctx context.Context, j Job, sp SessionParts, log *slog.Logger) error {
	unlock, err := p.lockMerge(ctx, j, log)
	if err != nil {
		return err
	}
	defer unlock()
	// Under the lock, the store's state is final for this merge.
	stored, err := p.storedParts(ctx, j.Room, j.Session)
	if err != nil {
		return err
	}
	nodes := map[int]string{}
	for _, pr := range sp.Parts {
		nodes[pr.Part] = pr.Node
	}
	for n := range stored {
		if _, ok := nodes[n]; !ok {
			nodes[n] = ""
		}
	}
	nums := make([]int, 0, len(nodes))
	for n := range nodes {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	var infos []timeline.PartInfo
	var manifests []*timeline.Manifest
	for _, n := range nums {
		info := timeline.PartInfo{Part: n, Node: nodes[n]}
		var m *timeline.Manifest
		if stored[n] {
			m, err = p.readStoredManifest(ctx, PartPrefix(j.Room, j.Session, n)+capture.ManifestName)
			if err != nil {
				return err
			}
			info.Status = timeline.PartComplete
		} else {
			m, info.Note, err = p.partialPart(ctx, j, n, nodes[n])
			if err != nil {
				return err
			}
			info.Status = timeline.PartPartial
			if m == nil {
				info.Status = timeline.PartMissing
			}
		}
		if m != nil {
			if info.Node == "" {
				info.Node = m.Node
			}
			manifests = append(manifests, m)
		}
		infos = append(infos, info)
	}
	if len(manifests) == 0 {
		return permanent(fmt.Errorf("postcall: merge of %s: no part of the session is stored, nor anything uploaded during the call (%s)",
			j.ID(), timeline.PartsSignature(infos)))
	}
	sig := timeline.PartsSignature(infos)
	existing, err := ReadManifest(ctx, p.store, j.Room, j.Session)
	if err != nil && !errors.Is(err, ErrNotComplete) {
		return err
	}
	renderID := "render/" + j.ID() + "/" + shortHash(sig)
	if existing != nil && timeline.PartsSignature(existing.Parts) == sig {
		log.Info("the session's parts are merged already", "parts", sig)
		_, err := p.enqueue(ctx, RenderSubject, renderID, j, log)
		return err
	}
	merged, err := timeline.MergeParts(manifests, infos)
	if err != nil {
		return permanent(fmt.Errorf("postcall: merge of %s: %w", j.ID(), err))
	}
	b, err := timeline.MarshalManifest(merged)
	if err != nil {
		return permanent(err)
	}
	key := storage.ManifestKey(j.Room, j.Session)
	if _, err := p.store.Put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("postcall: store the merged manifest of %s: %w", j.ID(), err)
	}
	again := existing != nil
	if _, err := p.states.update(ctx, j.Room, j.Session, func(s *State) {
		s.Node, s.Uploaded, s.Error = j.Node, time.Now().UTC(), ""
		if again {
			// Finalized again with more of the session: rendered and
			// notified again.
			s.Renders, s.Done, s.Failed, s.Notified = nil, time.Time{}, time.Time{}, time.Time{}
		}
	}); err != nil {
		return err
	}
	for _, in := range infos {
		if in.Status != timeline.PartComplete {
			log.Warn("session merged without all of a part", "part", in.Part, "node", in.Node, "status", in.Status, "note", in.Note)
		}
	}
	log.Info("session merged", "parts", sig, "lanes", len(merged.Lanes), "finalized_again", again)
	_, err = p.enqueue(ctx, RenderSubject, renderID, j, log)
	return err
}

// partialPart builds what can be had of a part its node did not store: its
// journal as last uploaded during the call, with the segments that are in
// the store; nil when there is none. note says what is missing.
func (p *Pipeline) partialPart(ctx context.Context, j Job, part int, node string) (*timeline.Manifest, string, error) {
	who := "its node"
	if node != "" {
		who = "node " + node
	}
	key := PartPrefix(j.Room, j.Session, part) + SnapshotName
	if _, err := p.store.Stat(ctx, key); errors.Is(err, storage.ErrNotFound) {
		return nil, who + " did not store this part and uploaded nothing of it during the call", nil
	} else if err != nil {
		return nil, "", fmt.Errorf("postcall: merge of %s: %w", j.ID(), err)
	}
	tmp, err := os.MkdirTemp(p.cfg.WorkDir, "merge-")
	if err != nil {
		if err := os.MkdirAll(p.cfg.WorkDir, 0o755); err != nil {
			return nil, "", fmt.Errorf("postcall: merge: %w", err)
		}
		if tmp, err = os.MkdirTemp(p.cfg.WorkDir, "merge-"); err != nil {
			return nil, "", fmt.Errorf("postcall: merge: %w", err)
		}
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	if _, err := Download(ctx, p.store, key, filepath.Join(tmp, capture.JournalName), nil); err != nil {
		return nil, "", err
	}
	// Segments that were open have no file here: compaction leaves them
	// out; closed ones are kept if they are in the store.
	m, err := capture.Compact(tmp)
	if err != nil {
		return nil, who + " did not store this part, and its journal snapshot cannot be read: " + err.Error(), nil
	}
	if m.Room != j.Room || m.Session != j.Session || m.Part != part {
		return nil, "", permanent(fmt.Errorf("postcall: %s is of %s/%s part %d", key, m.Room, m.Session, m.Part))
	}
	kept, dropped := 0, 0
	var lastMedia int64
	for li := range m.Lanes {
		l := &m.Lanes[li]
		tracks := l.Tracks[:0]
		for _, t := range l.Tracks {
			segs := t.Segments[:0]
			for _, s := range t.Segments {
				_, err := p.store.Stat(ctx, storage.SessionPrefix(j.Room, j.Session)+s.Path)
				if errors.Is(err, storage.ErrNotFound) || !s.Closed {
					dropped++
					continue
				}
				if err != nil {
					return nil, "", fmt.Errorf("postcall: merge of %s: %w", j.ID(), err)
				}
				kept++
				lastMedia = max(lastMedia, s.LastArrivalUnixNS)
				segs = append(segs, s)
			}
			t.Segments = segs
			if len(segs) > 0 {
				tracks = append(tracks, t)
			}
		}
		l.Tracks = tracks
	}
	lanes := m.Lanes[:0]
	for _, l := range m.Lanes {
		if len(l.Tracks) > 0 {
			lanes = append(lanes, l)
		}
	}
	m.Lanes = lanes
	note := fmt.Sprintf("%s did not store this part: the %d segments it uploaded during the call are merged", who, kept)
	if lastMedia > 0 {
		note += fmt.Sprintf("; what it recorded after %s is missing", time.Unix(0, lastMedia).UTC().Format("15:04:05.000Z"))
	}
	if dropped > 0 {
		note += fmt.Sprintf(" (%d segments it had begun are not in the store)", dropped)
	}
	return m, note, nil
}

// readStoredManifest reads and validates the manifest stored under key.
func (p *Pipeline) readStoredManifest(ctx context.Context, key string) (*timeline.Manifest, error) {
	r, err := p.store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("postcall: read %s: %w", key, err)
	}
	defer func() { _ = r.Close() }()
	b, err := io.ReadAll(io.LimitReader(r, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("postcall: read %s: %w", key, err)
	}
	m, err := timeline.ParseManifest(bytes.NewReader(b))
	if err != nil {
		return nil, permanent(fmt.Errorf("postcall: %s: %w", key, err))
	}
	return m, nil
}

// lockMerge takes the session's merge lock, waiting for it while another
// merge holds it, and returns its release.
func (p *Pipeline) lockMerge(ctx context.Context, j Job, log *slog.Logger) (func(), error) {
	key := StateKey(j.Room, j.Session)
	holder := []byte(p.cfg.Node + " " + time.Now().UTC().Format(time.RFC3339Nano))
	for said := false; ; said = true {
		rev, err := p.mergeLocks.Create(ctx, key, holder)
		if err == nil {
			return func() {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				if err := p.mergeLocks.Delete(dctx, key, jetstream.LastRevision(rev)); err != nil {
					log.Warn("releasing the merge lock failed; it expires", "err", err, "ttl", MergeLockTTL)
				}
			}, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("postcall: merge lock of %s: %w", j.ID(), err)
		}
		if !said {
			log.Info("another merge of the session runs; waiting for it")
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return nil, fmt.Errorf("postcall: merge lock of %s: %w", j.ID(), ctx.Err())
		}
	}
}

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:6])
}

// EventPart is one part of a session recorded by several nodes, in the
// webhook's event: its node, whether all of it is there (see
// timeline.PartInfo), and its journal and manifest when the node stored them.
type EventPart struct {
	Part     int        `json:"part"`
	Node     string     `json:"node"`
	Status   string     `json:"status"`
	Note     string     `json:"note,omitempty"`
	Journal  *EventFile `json:"journal,omitempty"`
	Manifest *EventFile `json:"manifest,omitempty"`
}

// eventParts describes a merged session's parts for the webhook.
func eventParts(j Job, m *timeline.Manifest, file func(key string) (EventFile, error)) ([]EventPart, error) {
	var out []EventPart
	for _, pi := range m.Parts {
		ep := EventPart{Part: pi.Part, Node: pi.Node, Status: pi.Status, Note: pi.Note}
		if pi.Status == timeline.PartComplete {
			for _, f := range []struct {
				name string
				dst  **EventFile
			}{{capture.JournalName, &ep.Journal}, {capture.ManifestName, &ep.Manifest}} {
				ef, err := file(PartPrefix(j.Room, j.Session, pi.Part) + f.name)
				if err != nil {
					return nil, err
				}
				*f.dst = &ef
			}
		}
		out = append(out, ep)
	}
	return out, nil
}

// EnqueueOrphan queues the merge of a session whose node died recording it and
// that no node continued (cluster.Config.OnOrphan): nothing else would end it.
// The merge waits PartWait for the dead node to come back, then merges what it
// stored during the call (its journal snapshot and closed segments), marking
// the rest missing. A session that has a job already (queued, running,
// stored or finished) is left to it; several nodes calling this for one
// session make one job.
func (p *Pipeline) EnqueueOrphan(ctx context.Context, room, session string) error {
	if p.cfg.Parts == nil {
		return errors.New("postcall: enqueue orphan: this pipeline is no cluster node")
	}
	st, _, ok, err := p.states.get(ctx, room, session)
	if err != nil {
		return err
	}
	if ok && (!st.Queued.IsZero() || !st.Running.IsZero() || !st.Uploaded.IsZero() || st.Finished()) {
		p.log.Info("a dead node's session has a job already", "room", room, "session", session)
		return nil
	}
	j := Job{Room: room, Session: session, Node: p.cfg.Node, Renders: p.cfg.Renders.For(room), Webhook: p.cfg.Webhook,
		Enqueued: time.Now().UTC()}
	if err := j.validate(); err != nil {
		return err
	}
	dup, err := p.enqueue(ctx, MergeSubject, "merge/"+j.ID()+"/orphan", j, p.log)
	if err != nil {
		return err
	}
	if !dup {
		p.log.Warn("session of a dead node queued for its merge", "room", room, "session", session, "waits_for_the_node", p.cfg.PartWait)
	}
	return nil
}
