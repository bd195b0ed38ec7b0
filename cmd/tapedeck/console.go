package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/console"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/timeline"
)

// mountConsole mounts the web console at / on serve's mux (the publish page stays at /publish/):
// the recorder's live sessions, the store's sessions, the post-call jobs. It is guarded like the
// control API: $TAPEDECK_ADMIN_TOKEN, or loopback only without one.
func mountConsole(mux *http.ServeMux, rec *capture.Recorder, jobs *pipelineRun, post *pipelineFlags, cfg capture.Config, log *slog.Logger) error {
	var renders postcall.RenderConfig
	if post.renders != "" {
		rc, err := postcall.LoadRenderConfig(post.renders)
		if err != nil {
			return fmt.Errorf("console: --renders: %w", err)
		}
		renders = rc
	}
	store := jobs.Store()
	c, err := console.New(console.Config{
		Token:        adminToken(),
		Loopback:     cfg.ICE.LoopbackOnly,
		Recorder:     liveRecorder{rec},
		Jobs:         newConsoleJobs(jobs.Pipeline, renders, cfg.DataDir),
		Store:        store,
		Catalog:      newCatalog(store),
		Local:        localManifest(cfg.DataDir),
		Profiles:     render.Profiles(),
		CheckRenders: checkRenderSpecs,
		LinkTTL:      post.linkTTL,
		Log:          log,
	})
	if err != nil {
		return err
	}
	c.Register(mux)
	return nil
}

// liveRecorder shows capture's sessions to the console.
type liveRecorder struct{ rec *capture.Recorder }

// liveTrackJSON is a track as the control API's GET /api/sessions shows it. The console reads
// capture.TrackInfo through its JSON so that the counters appear on the Live page as soon as capture
// reports them under these names, and a dash until then.
type liveTrackJSON struct {
	ID         string    `json:"id"`
	Lane       string    `json:"lane"`
	Kind       string    `json:"kind"`
	Codec      string    `json:"codec"`
	SSRC       uint32    `json:"ssrc"`
	Started    time.Time `json:"started"`
	Width      int       `json:"width"`
	Height     int       `json:"height"`
	Packets    *int64    `json:"packets"`
	Bytes      *int64    `json:"bytes"`
	Lost       *int64    `json:"packets_lost"`
	LastPacket time.Time `json:"last_packet"`
}

func (l liveRecorder) LiveSessions() []console.LiveSession {
	var out []console.LiveSession
	for _, s := range l.rec.Sessions() {
		ls := console.LiveSession{Room: s.Room, Session: s.Session, Started: s.Started, Ending: s.Ending}
		for _, p := range s.Publishes {
			lp := console.LiveParticipant{Name: p.Participant, Publish: p.ID}
			for _, t := range p.Tracks {
				lp.Tracks = append(lp.Tracks, liveTrack(t))
			}
			ls.Participants = append(ls.Participants, lp)
		}
		out = append(out, ls)
	}
	return out
}

func liveTrack(t capture.TrackInfo) console.LiveTrack {
	lt := console.LiveTrack{ID: t.ID, Lane: t.Lane, Kind: t.Kind, Codec: t.Codec, SSRC: t.SSRC}
	b, err := json.Marshal(t)
	if err != nil {
		return lt
	}
	var j liveTrackJSON
	if json.Unmarshal(b, &j) != nil {
		return lt
	}
	lt.Started, lt.Width, lt.Height = j.Started, j.Width, j.Height
	if j.Bytes != nil || j.Packets != nil {
		k := &console.TrackCounters{LastPacket: j.LastPacket}
		for _, f := range []struct {
			dst *int64
			src *int64
		}{{&k.Bytes, j.Bytes}, {&k.Packets, j.Packets}, {&k.Lost, j.Lost}} {
			if f.src != nil {
				*f.dst = *f.src
			}
		}
		lt.Counters = k
	}
	return lt
}

func (l liveRecorder) StopSession(room string) error {
	err := l.rec.StopSession(room)
	if errors.Is(err, capture.ErrNoSession) {
		return fmt.Errorf("%w: %w", console.ErrNoSession, err)
	}
	return err
}

// consoleJobs is the post-call pipeline as the console uses it, with a retry: a job that failed
// after its session was stored renders again the renders it has not finished (those the console
// asked for, or the room's configured ones).
type consoleJobs struct {
	*postcall.Pipeline
	renders postcall.RenderConfig
	dataDir string // the recorder's data folder: where a job that failed before storing finds its session

	mu     sync.Mutex
	asked  map[string][]postcall.RenderSpec // room/session → the console's last re-render
	order  []string
	maxLen int
}

func newConsoleJobs(p *postcall.Pipeline, renders postcall.RenderConfig, dataDir string) *consoleJobs {
	return &consoleJobs{Pipeline: p, renders: renders, dataDir: dataDir, asked: map[string][]postcall.RenderSpec{}, maxLen: 1000}
}

func (j *consoleJobs) Rerender(ctx context.Context, room, session string, specs []postcall.RenderSpec) error {
	if err := j.Pipeline.Rerender(ctx, room, session, specs); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	id := room + "/" + session
	if _, ok := j.asked[id]; !ok {
		j.order = append(j.order, id)
	}
	j.asked[id] = append([]postcall.RenderSpec(nil), specs...)
	for len(j.order) > j.maxLen {
		delete(j.asked, j.order[0])
		j.order = j.order[1:]
	}
	return nil
}

func (j *consoleJobs) Retry(ctx context.Context, room, session string) error {
	st, err := j.State(ctx, room, session)
	if err != nil {
		return err
	}
	if st.Uploaded.IsZero() {
		// Failed before the session was stored: its first stage runs again from the session folder.
		if capture.CheckName("room", room) != nil || !validSession(session) {
			return fmt.Errorf("%w: bad room or session name", console.ErrCannotRetry)
		}
		if err := j.RetryStore(ctx, room, session, filepath.Join(j.dataDir, room, session)); err != nil {
			return fmt.Errorf("%w: %w", console.ErrCannotRetry, err)
		}
		return nil
	}
	j.mu.Lock()
	specs, ok := j.asked[room+"/"+session]
	j.mu.Unlock()
	if !ok {
		specs = j.renders.For(room)
	}
	var missing []postcall.RenderSpec
	for _, sp := range specs {
		if _, done := st.Renders[sp.Name]; !done {
			missing = append(missing, sp)
		}
	}
	if len(missing) == 0 {
		missing = specs // only the webhook failed: Rerender needs a render to reopen the job
	}
	if len(missing) == 0 {
		return fmt.Errorf("%w: the room renders nothing", console.ErrCannotRetry)
	}
	return j.Rerender(ctx, room, session, missing)
}

// localManifest reads the manifest of a session folder in the recorder's data folder (a session
// whose job has not stored it yet).
func localManifest(dataDir string) func(ctx context.Context, room, session string) (*timeline.Manifest, error) {
	return func(_ context.Context, room, session string) (*timeline.Manifest, error) {
		if capture.CheckName("room", room) != nil || !validSession(session) {
			return nil, console.ErrNotFound
		}
		loc, err := postcall.LocateSession(filepath.Join(dataDir, room, session))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, postcall.ErrNoManifest) {
			return nil, fmt.Errorf("%w: %w", console.ErrNotFound, err)
		}
		if err != nil {
			return nil, err
		}
		return loc.Manifest, nil
	}
}

// newCatalog lists the store's sessions by name: a local folder's directory entries (one read of
// the root and one of each room, never a session's files), else the store's List by prefix.
func newCatalog(store storage.Client) console.Catalog {
	if l, ok := store.(*storage.Local); ok {
		return dirCatalog{dir: l.Dir()}
	}
	return listCatalog{store: store}
}

// dirCatalog reads a local store's folders.
type dirCatalog struct{ dir string }

func (d dirCatalog) names(dir, prefix string, valid func(string) bool) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []string
	for _, e := range ents { // sorted by name
		if e.IsDir() && strings.HasPrefix(e.Name(), prefix) && valid(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func (d dirCatalog) Rooms(context.Context) ([]string, error) {
	return d.names(d.dir, "", func(s string) bool { return capture.CheckName("room", s) == nil })
}

func (d dirCatalog) Sessions(_ context.Context, room, prefix string) ([]string, error) {
	if capture.CheckName("room", room) != nil {
		return nil, nil
	}
	return d.names(filepath.Join(d.dir, room), prefix, validSession)
}

// listCatalog lists an S3 store's sessions with storage.Client.List, which returns every key under
// the prefix: a room filter or a day narrows it, but the unfiltered list reads every key of the
// store (storage has no delimited listing yet).
type listCatalog struct{ store storage.Client }

func (l listCatalog) segments(ctx context.Context, prefix string, depth int) ([]string, error) {
	objs, err := l.store.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, o := range objs {
		parts := strings.SplitN(o.Key, "/", 3)
		if len(parts) < 3 {
			continue
		}
		if s := parts[depth]; !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (l listCatalog) Rooms(ctx context.Context) ([]string, error) {
	return l.segments(ctx, "", 0)
}

func (l listCatalog) Sessions(ctx context.Context, room, prefix string) ([]string, error) {
	if capture.CheckName("room", room) != nil {
		return nil, nil
	}
	return l.segments(ctx, room+"/"+prefix, 1)
}
