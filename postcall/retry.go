package postcall

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tapedeck/tapedeck/capture"
)

// ErrNotFailed is returned by RetryStore for a job that has not failed.
var ErrNotFailed = errors.New("the job has not failed")

// RetryStore runs again the first stage of a job that failed before its session was stored (a
// store that refused the files for too long, say): the failure is cleared, and the job is
// published again to this node with a message ID of its own (a plain Enqueue within ten minutes
// would be taken for a repeat). dir is the session folder in this node's data folder; confirmed
// uploads are not redone. A job that failed after its session was stored is run again with
// Rerender instead.
func (p *Pipeline) RetryStore(ctx context.Context, room, session, dir string) error {
	if p.cfg.Node == "" {
		return errors.New("postcall: retry: this pipeline records nothing (no node name)")
	}
	st, _, ok, err := p.states.get(ctx, room, session)
	if err != nil {
		return err
	}
	switch {
	case !ok || st.Failed.IsZero():
		return fmt.Errorf("postcall: retry %s/%s: %w", room, session, ErrNotFailed)
	case !st.Uploaded.IsZero():
		return fmt.Errorf("postcall: retry %s/%s: the session is stored; run its renders again", room, session)
	case st.Node != "" && st.Node != p.cfg.Node:
		return fmt.Errorf("postcall: retry %s/%s: it was recorded by node %s, not this one (%s)", room, session, st.Node, p.cfg.Node)
	}
	if _, err := os.Stat(filepath.Join(dir, capture.JournalName)); err != nil {
		return fmt.Errorf("postcall: retry %s/%s: the session folder: %w", room, session, err)
	}
	now := time.Now().UTC()
	j := Job{
		Room: room, Session: session, Node: p.cfg.Node, Dir: dir,
		Renders: p.cfg.Renders.For(room), Webhook: p.cfg.Webhook, Enqueued: now,
	}
	if err := j.validate(); err != nil {
		return err
	}
	if _, err := p.states.update(ctx, room, session, func(s *State) {
		s.Failed, s.Error, s.Attempts = time.Time{}, "", 0
	}); err != nil {
		return err
	}
	id := fmt.Sprintf("upload/%s/retry-%d", j.ID(), now.UnixNano())
	if _, err := p.enqueue(ctx, UploadSubject(p.cfg.Node), id, j, p.log); err != nil {
		return err
	}
	p.log.Info("failed post-call job queued again", "room", room, "session", session)
	return nil
}
