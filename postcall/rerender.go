package postcall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrNotStored is returned by Rerender for a session whose files are not
// (yet) in storage.
var ErrNotStored = errors.New("the session is not stored yet")

// Rerender queues new renders of a stored session, with other edits, layout
// or profile: every spec is rendered again from storage (a name rendered
// before is replaced), the job is reopened, and the webhook is told again
// once the new renders are stored.
func (p *Pipeline) Rerender(ctx context.Context, room, session string, specs []RenderSpec) error {
	if len(specs) == 0 {
		return errors.New("postcall: rerender: no render asked")
	}
	st, _, ok, err := p.states.get(ctx, room, session)
	if err != nil {
		return err
	}
	if !ok || st.Uploaded.IsZero() {
		return fmt.Errorf("postcall: rerender %s/%s: %w", room, session, ErrNotStored)
	}
	j := Job{Room: room, Session: session, Node: st.Node, Renders: specs, Webhook: p.cfg.Webhook, Enqueued: time.Now().UTC(), Rerender: true}
	if err := j.validate(); err != nil {
		return err
	}
	if _, err := p.states.update(ctx, room, session, func(s *State) {
		s.Done, s.Failed, s.Notified, s.Error = time.Time{}, time.Time{}, time.Time{}, ""
		for _, sp := range specs {
			delete(s.Renders, sp.Name)
		}
	}); err != nil {
		return err
	}
	id := "rerender/" + j.ID() + "/" + j.Enqueued.Format("20060102T150405.000000000")
	if _, err := p.enqueue(ctx, RenderSubject, id, j, p.log); err != nil {
		return err
	}
	names := make([]string, len(specs))
	for i, sp := range specs {
		names[i] = sp.Name
	}
	p.log.Info("re-render queued", "room", room, "session", session, "renders", strings.Join(names, ","))
	return nil
}

// States lists the job states kept (the last StateTTL), newest change
// first, at most limit (0: all).
func (p *Pipeline) States(ctx context.Context, limit int) ([]State, error) {
	lister, err := p.states.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("postcall: list job states: %w", err)
	}
	type item struct {
		st  State
		rev uint64
	}
	var items []item
	for key := range lister.Keys() {
		e, err := p.states.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			_ = lister.Stop()
			return nil, fmt.Errorf("postcall: read job state %s: %w", key, err)
		}
		var st State
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			continue
		}
		items = append(items, item{st, e.Revision()})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].rev > items[j].rev })
	if limit > 0 && len(items) > limit {
		items = items[:limit]
	}
	out := make([]State, len(items))
	for i, it := range items {
		out[i] = it.st
	}
	return out, nil
}
