package postcall

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/timeline"
)

// storeSession is stage 1, on the recording node: finalize, store the raw tracks, the journal and the
// manifest (last, so that its presence in storage says the session is complete), delete the local
// track files only then, and hand the job to stage 2 (see Uploader.StoreSession for the order).
func (p *Pipeline) storeSession(ctx context.Context, j Job, log *slog.Logger) error {
	if p.uploader == nil || j.Node != p.cfg.Node {
		return permanent(fmt.Errorf("postcall: job of node %q delivered to node %q", j.Node, p.cfg.Node))
	}
	if _, err := os.Stat(j.Dir); err == nil {
		// One node's part of a session recorded by several (a cluster):
		// stored under parts/, then merged.
		if m, err := finalize(j.Dir); err == nil && m.Part > 0 {
			return p.storePart(ctx, j, m, log)
		}
	}
	st, _, _, err := p.states.get(ctx, j.Room, j.Session)
	if err != nil {
		return err
	}
	if st.Finished() {
		log.Info("job already finished", "done", st.Done, "failed", st.Failed)
		return nil
	}
	if st.Uploaded.IsZero() {
		start := time.Now()
		log.Info("storing the session", "store", p.store.String(), "dir", j.Dir)
		n, err := p.uploadSession(ctx, j)
		if err != nil {
			return err
		}
		if err := p.storeWindows(ctx, j, 0, log); err != nil {
			return err
		}
		if _, err := p.states.update(ctx, j.Room, j.Session, func(s *State) {
			s.Node, s.Uploaded, s.Error = j.Node, time.Now().UTC(), ""
		}); err != nil {
			return err
		}
		log.Info("session stored", "files", n, "store", p.store.String(), "took", time.Since(start).Round(time.Millisecond))
	}
	_, err = p.enqueue(ctx, RenderSubject, "render/"+j.ID(), j, log)
	return err
}

// uploadSession stores a session folder's files and returns how many it holds in storage.
func (p *Pipeline) uploadSession(ctx context.Context, j Job) (int, error) {
	if _, err := os.Stat(j.Dir); err != nil {
		return 0, permanent(fmt.Errorf("postcall: session folder of %s: %w", j.ID(), err))
	}
	m, err := finalize(j.Dir)
	if err != nil {
		return 0, err
	}
	if m.Room != j.Room || m.Session != j.Session {
		return 0, permanent(fmt.Errorf("postcall: %s holds session %s/%s, the job says %s", j.Dir, m.Room, m.Session, j.ID()))
	}
	return p.uploader.StoreSession(ctx, j.Dir, m, true)
}

// finalize returns the session's manifest, rebuilding it from the journal if it is missing.
func finalize(dir string) (*timeline.Manifest, error) {
	f, err := os.Open(filepath.Join(dir, capture.ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		s, err := capture.RecoverSession(dir)
		if err != nil {
			return nil, permanent(fmt.Errorf("postcall: finalize %s: %w", dir, err))
		}
		return s.Manifest, nil
	}
	if err != nil {
		return nil, fmt.Errorf("postcall: finalize: %w", err)
	}
	defer func() { _ = f.Close() }()
	m, err := timeline.ParseManifest(f)
	if err != nil {
		return nil, permanent(fmt.Errorf("postcall: finalize %s: %w", dir, err))
	}
	return m, nil
}

// SegmentPaths lists the track files of a manifest (relative to the session folder), lane by lane,
// track by track, in order.
func SegmentPaths(m *timeline.Manifest) []string {
	var out []string
	for _, l := range m.Lanes {
		for _, t := range l.Tracks {
			for _, s := range t.Segments {
				out = append(out, s.Path)
			}
		}
	}
	return out
}
