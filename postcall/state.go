package postcall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// State is what has been done for one session; it lives in the StateBucket under StateKey.
type State struct {
	Room    string `json:"room"`
	Session string `json:"session"`
	Node    string `json:"node"`
	// Uploaded: the raw tracks, the journal and the manifest are confirmed in storage (stage 1).
	Uploaded time.Time `json:"uploaded,omitzero"`
	// Renders holds each finished render step, by render name.
	Renders map[string]RenderResult `json:"renders,omitempty"`
	// Notified: the webhook answered 2xx.
	Notified time.Time `json:"notified,omitzero"`
	// Done: every step is finished; Failed: the job gave up (Error says why).
	Done   time.Time `json:"done,omitzero"`
	Failed time.Time `json:"failed,omitzero"`
	Error  string    `json:"error,omitempty"`
	// Attempts counts the attempts of either stage that ended in an error.
	Attempts int `json:"attempts,omitempty"`
	// Queued: a job of the session waits for a worker (since then), after
	// the session ended, between stages, or before a retry.
	Queued time.Time `json:"queued,omitzero"`
	// Running: a worker runs one of the session's stages (since then):
	// Stage is "store", "merge" or "render", Worker the node or host that
	// runs it. A worker that dies leaves them set until the job runs again.
	Running time.Time `json:"running,omitzero"`
	Stage   string    `json:"stage,omitempty"`
	Worker  string    `json:"worker,omitempty"`
}

// Finished reports whether the job is done or has given up.
func (s State) Finished() bool { return !s.Done.IsZero() || !s.Failed.IsZero() }

// RenderResult is one finished render step: its stored files, or why it was skipped.
type RenderResult struct {
	// Export says the step was an export for editors (stored under exports/), not a render.
	Export  bool         `json:"export,omitempty"`
	Files   []StoredFile `json:"files,omitempty"`
	Skipped string       `json:"skipped,omitempty"`
	At      time.Time    `json:"at"`
}

// StoredFile is an object whose upload was confirmed.
type StoredFile struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// StateKey is the key of a session's state: "{room}/{session}", with every character that a
// key-value key cannot hold (or that would make an empty subject token, like '.') written as "=XX".
func StateKey(room, session string) string { return escapeKey(room) + "/" + escapeKey(session) }

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

// states reads and changes job states.
type states struct{ kv jetstream.KeyValue }

// get returns a session's state; a session without one has the zero State (and ok false).
func (s states) get(ctx context.Context, room, session string) (st State, rev uint64, ok bool, err error) {
	e, err := s.kv.Get(ctx, StateKey(room, session))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return State{Room: room, Session: session}, 0, false, nil
	}
	if err != nil {
		return State{}, 0, false, fmt.Errorf("postcall: read state of %s/%s: %w", room, session, err)
	}
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return State{}, 0, false, fmt.Errorf("postcall: state of %s/%s is not valid: %w", room, session, err)
	}
	return st, e.Revision(), true, nil
}

// update applies fn to a session's state with compare-and-set, retrying on a concurrent change,
// and returns the state written.
func (s states) update(ctx context.Context, room, session string, fn func(*State)) (State, error) {
	key := StateKey(room, session)
	for try := 0; ; try++ {
		st, rev, ok, err := s.get(ctx, room, session)
		if err != nil {
			return State{}, err
		}
		fn(&st)
		b, err := json.Marshal(st)
		if err != nil {
			return State{}, fmt.Errorf("postcall: encode state: %w", err)
		}
		if ok {
			_, err = s.kv.Update(ctx, key, b, rev)
		} else {
			_, err = s.kv.Create(ctx, key, b)
		}
		if err == nil {
			return st, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) || try >= 20 || ctx.Err() != nil {
			return State{}, fmt.Errorf("postcall: write state of %s/%s: %w", room, session, err)
		}
	}
}

// wait returns a session's state once it is finished, or when ctx ends.
func (s states) wait(ctx context.Context, room, session string) (State, error) {
	w, err := s.kv.Watch(ctx, StateKey(room, session))
	if err != nil {
		return State{}, fmt.Errorf("postcall: watch state of %s/%s: %w", room, session, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return State{}, fmt.Errorf("postcall: wait for %s/%s: %w", room, session, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return State{}, fmt.Errorf("postcall: wait for %s/%s: watch ended", room, session)
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var st State
			if err := json.Unmarshal(e.Value(), &st); err != nil {
				return State{}, fmt.Errorf("postcall: state of %s/%s is not valid: %w", room, session, err)
			}
			if st.Finished() {
				return st, nil
			}
		}
	}
}
