package postcall

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/tapedeck/tapedeck/storage"
)

// renderSession is stage 2, on any process that renders: render every spec of the job from the
// stored session, store the outputs, notify the webhook.
func (p *Pipeline) renderSession(ctx context.Context, j Job, log *slog.Logger) error {
	st, _, _, err := p.states.get(ctx, j.Room, j.Session)
	if err != nil {
		return err
	}
	if st.Finished() {
		log.Info("job already finished", "done", st.Done, "failed", st.Failed)
		return nil
	}
	if st.Uploaded.IsZero() {
		return fmt.Errorf("postcall: %s: the session is not stored yet", j.ID())
	}
	work := filepath.Join(p.cfg.WorkDir, j.Room, j.Session)
	in := filepath.Join(work, "in")
	fetched := false
	for _, spec := range j.Renders {
		if _, ok := st.Renders[spec.Name]; ok {
			continue
		}
		var res RenderResult
		if p.renderer == nil {
			res.Skipped = "no renderer configured in this build"
			log.Warn("render skipped", "render", spec.Name, "reason", res.Skipped)
		} else {
			if !fetched {
				start := time.Now()
				if _, err := FetchSession(ctx, p.store, j.Room, j.Session, in); err != nil {
					return err
				}
				fetched = true
				log.Info("session fetched for rendering", "took", time.Since(start).Round(time.Millisecond))
			}
			out := OutDir(p.cfg.WorkDir, j.Room, j.Session, spec.Name)
			if spec.Export == nil {
				// Windows rendered during the call on the node that
				// recorded it, when that is another.
				if err := p.fetchWindows(ctx, j, spec.Name, ReuseDir(out), log); err != nil {
					return err
				}
			}
			files, err := p.render1(ctx, j, spec, in, out, log)
			if err != nil {
				return err
			}
			res.Files = files
		}
		res.Export = spec.Export != nil
		res.At = time.Now().UTC()
		st, err = p.states.update(ctx, j.Room, j.Session, func(s *State) {
			if s.Renders == nil {
				s.Renders = map[string]RenderResult{}
			}
			s.Renders[spec.Name] = res
		})
		if err != nil {
			return err
		}
	}
	if j.Webhook != "" && st.Notified.IsZero() {
		if err := p.notify(ctx, j, st, log); err != nil {
			return err
		}
		if st, err = p.states.update(ctx, j.Room, j.Session, func(s *State) { s.Notified = time.Now().UTC() }); err != nil {
			return err
		}
	}
	if _, err := p.states.update(ctx, j.Room, j.Session, func(s *State) {
		s.Done, s.Error = time.Now().UTC(), ""
		s.Queued, s.Running, s.Stage, s.Worker = time.Time{}, time.Time{}, "", ""
	}); err != nil {
		return err
	}
	p.dropWindows(ctx, j, log)
	if err := removeAll(work); err != nil {
		log.Warn("removing the work folder", "dir", work, "err", err)
	}
	log.Info("post-call job done", "renders", len(j.Renders), "webhook", j.Webhook != "")
	return nil
}

// render1 renders one spec into out and stores its files under renders/{name}/.
func (p *Pipeline) render1(ctx context.Context, j Job, spec RenderSpec, in, out string, log *slog.Logger) ([]StoredFile, error) {
	if err := removeAll(out); err != nil {
		return nil, fmt.Errorf("postcall: render %s: %w", spec.Name, err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("postcall: render %s: %w", spec.Name, err)
	}
	spec.Nice, spec.Rerender = p.cfg.RenderNice, j.Rerender
	if spec.Export != nil && spec.Export.Composite != "" {
		if err := p.fetchComposite(ctx, j, spec.Export.Composite, in); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	log.Info("render started", "render", spec.Name, "profile", spec.Profile, "layout", spec.Layout, "export", spec.Export != nil)
	names, err := p.renderer.Render(ctx, in, spec, out)
	if err != nil {
		return nil, fmt.Errorf("postcall: render %s of %s: %w", spec.Name, j.ID(), err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("postcall: render %s of %s produced no file", spec.Name, j.ID())
	}
	log.Info("render finished", "render", spec.Name, "files", len(names), "took", time.Since(start).Round(time.Millisecond))
	var files []StoredFile
	for _, name := range names {
		name = path.Clean(name)
		if err := storage.ValidateKey(name); err != nil {
			return nil, permanent(fmt.Errorf("postcall: render %s: output name: %w", spec.Name, err))
		}
		key := outputKey(j.Room, j.Session, spec, name)
		local := filepath.Join(out, filepath.FromSlash(name))
		sf, err := p.storeFile(ctx, key, local)
		if err != nil {
			return nil, err
		}
		files = append(files, sf)
	}
	return files, nil
}

// storeFile stores a local file under key unless the store already holds the same bytes there.
func (p *Pipeline) storeFile(ctx context.Context, key, local string) (StoredFile, error) {
	sum, err := hashFile(ctx, local)
	if err != nil {
		return StoredFile{}, err
	}
	if obj, err := p.store.Stat(ctx, key); err == nil && obj.SHA256 == sum {
		return StoredFile{Key: key, Size: obj.Size, SHA256: sum}, nil
	}
	info, err := storage.UploadFile(ctx, p.store, key, local, false)
	if err != nil {
		return StoredFile{}, fmt.Errorf("postcall: %w", err)
	}
	return StoredFile{Key: key, Size: info.Size, SHA256: info.SHA256}, nil
}
