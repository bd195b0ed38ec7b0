// Package prerender renders a session's video while the call is recorded.
//
// Every few seconds it compacts what the journal and the open segments of
// each session being recorded gained since its last look into a manifest
// (Config.Manifests), places it with the sync model, plans it with the
// options of the room's post-call render, and renders the windows of the
// output (render.Prerender: the video, the audio mix, and the mix's AAC with
// the gain of the call so far) whose media is final on disk, into the folder
// the post-call render of the session takes finished windows from. When the
// call ends, that render draws only the windows of the call's last seconds
// (and the AAC of those whose gain is not the whole call's), joins them and
// muxes: the composite is ready seconds after the call, however long it was.
//
// Capture comes first: windows render niced, at most Config.Concurrency at a
// time for all sessions, and none starts while the machine's CPU use outside
// niced processes is above Config.CPUBudget. A machine short of CPU falls
// behind and the post-call render catches up.
//
// A window's media is final when every track still being written has its
// frames on disk past the window's end (the jitter buffer released them and
// the segment holds them in whole clusters), or has been idle for
// Config.Idle; and the journal, which holds the audio levels of the speaker
// layout, has been written past it. The sync model is refined as sender
// reports arrive; a window rendered with an earlier model is taken by the
// post-call render unless the final model moves one of its sources to
// another cell of the placement grid, 1/16 of an output frame (see render's
// reuse keys); Stats counts the windows rendered again.
package prerender

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

// Config says what to prerender and how hard.
type Config struct {
	// Window is the length of the output windows (the post-call render
	// must use the same: render.Options.MaxJobDuration). Default 10 s.
	Window time.Duration
	// Every is how often a session is looked at (default 2 s).
	Every time.Duration
	// Margin is kept between the media on disk and the end of the last
	// window rendered (default 1 s).
	Margin time.Duration
	// Idle: a track that wrote nothing for this long (a camera turned off)
	// does not hold the others back (default 5 s).
	Idle time.Duration
	// MaxBehind: a call whose final media is this much ahead of its
	// rendered windows is left to the render after the call (default 5
	// minutes), so that the closed segments it keeps on disk (see Needs)
	// stay bounded.
	MaxBehind time.Duration
	// Concurrency is the number of windows rendered at once, for all
	// sessions (default 1).
	Concurrency int
	// CPUBudget is the machine's CPU use outside niced processes (0 to 1)
	// above which no window starts; 0: no limit. CPU reports that use (nil:
	// not checked).
	CPUBudget float64
	CPU       func() (float64, bool)
	// Manifests returns what compacts the folder dir of a session being
	// recorded into its manifest so far, each call reading only what was
	// added since the last (capture.NewCompactor(dir).Manifest): a look's
	// cost does not grow with the call.
	Manifests func(dir string) func() (*timeline.Manifest, error)
	// Options are the options of the room's post-call render, whose Reuse
	// is where that render takes finished windows from; false: the room
	// has no render to prepare. Options whose edits cut the recording (a
	// trim or cuts) are not prerendered: their output time is not the
	// call's.
	Options func(room, session string) (render.Options, bool)
	// Log receives what is done (nil: nothing).
	Log *slog.Logger
}

// Stats are what a Prerenderer did since it started.
type Stats struct {
	// Sessions being prerendered now.
	Sessions int
	// Windows rendered, and of them Again: rendered once more because the
	// sync model had moved a source to another cell of the placement grid
	// (or its media changed) since.
	Windows, Again int64
	// AudioEncoded are the windows of the audio encoded to AAC during calls
	// (with the gain of the call so far; encoded again when it moves a
	// step).
	AudioEncoded int64
	// Deferred: looks that started nothing because the CPU was over budget.
	Deferred int64
	// Failed windows (retried at the next look).
	Failed int64
	// Behind is the output time that is final but not yet rendered, summed
	// over the sessions.
	Behind time.Duration
}

// Prerenderer runs one loop per session being recorded. Start and Stop are
// safe for concurrent use; Close stops every loop and waits for them.
type Prerenderer struct {
	cfg Config
	log *slog.Logger
	sem chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions map[string]*live
	closed   bool

	windows, again, encoded, deferred, failed atomic.Int64
}

// live is one session's loop.
type live struct {
	room, session, dir string
	manifest           func() (*timeline.Manifest, error) // used by the loop only
	cancel             context.CancelFunc
	done               chan struct{}

	mu     sync.Mutex
	ends   map[string]time.Duration // closed segment path → output time of its last frame
	until  time.Duration            // every window before is kept
	behind time.Duration            // final media not yet drawn, at the last look
	off    bool                     // given up or not prerendered: needs nothing
}

// needs reports whether the file at rel may still be read by a window.
func (l *live) needs(rel string, window time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.off {
		return false
	}
	end, ok := l.ends[rel]
	// Prerender looks again at the last window kept (from until −
	// window), which may hold a segment's last frame from the window
	// before.
	return !ok || end+3*window > l.until
}

// progress records what a look found: every window is kept up to until,
// the media is final up to final.
func (l *live) progress(until, final time.Duration, ends map[string]time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.until, l.behind = until, max(0, final-until)
	if ends != nil {
		l.ends = ends
	}
}

// stop marks the loop ended: it needs no file and is behind on nothing.
func (l *live) stop() {
	l.mu.Lock()
	l.off, l.behind = true, 0
	l.mu.Unlock()
}

// behindBy is the final media not yet drawn.
func (l *live) behindBy() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.behind
}

// New returns a Prerenderer.
func New(cfg Config) (*Prerenderer, error) {
	if cfg.Manifests == nil || cfg.Options == nil {
		return nil, errors.New("prerender: Config.Manifests and Config.Options are needed")
	}
	if cfg.Window <= 0 {
		cfg.Window = 10 * time.Second
	}
	if cfg.Every <= 0 {
		cfg.Every = 2 * time.Second
	}
	if cfg.Margin <= 0 {
		cfg.Margin = time.Second
	}
	if cfg.Idle <= 0 {
		cfg.Idle = 5 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.MaxBehind <= 0 {
		cfg.MaxBehind = 5 * time.Minute
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Prerenderer{cfg: cfg, log: log, sem: make(chan struct{}, cfg.Concurrency), ctx: ctx, cancel: cancel,
		sessions: map[string]*live{}}, nil
}

// Start prerenders a session that started recording in dir. It does not
// block (it may be called with the recorder's lock held).
func (p *Prerenderer) Start(room, session, dir string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := room + "/" + session
	if p.closed || p.sessions[key] != nil {
		return
	}
	ctx, cancel := context.WithCancel(p.ctx)
	l := &live{room: room, session: session, dir: dir, manifest: p.cfg.Manifests(dir), cancel: cancel, done: make(chan struct{})}
	p.sessions[key] = l
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(l.done)
		p.run(ctx, l)
	}()
}

// Stop ends a session's prerendering (its call ended: the post-call render
// takes over) and waits for its loop; a window being rendered is abandoned.
func (p *Prerenderer) Stop(room, session string) {
	key := room + "/" + session
	p.mu.Lock()
	l := p.sessions[key]
	delete(p.sessions, key)
	p.mu.Unlock()
	if l == nil {
		return
	}
	l.cancel()
	<-l.done
}

// Needs reports whether the closed segment at rel (slash-separated) of the
// session folder dir must stay on disk for a window still to render during
// the call: use it as postcall.UploadConfig.Hold, so that segments stored
// during the call are deleted once drawn.
func (p *Prerenderer) Needs(dir, rel string) bool {
	p.mu.Lock()
	var l *live
	for _, s := range p.sessions {
		if s.dir == dir {
			l = s
			break
		}
	}
	p.mu.Unlock()
	return l != nil && l.needs(rel, p.cfg.Window)
}

// Close stops every loop and waits for them.
func (p *Prerenderer) Close() {
	p.mu.Lock()
	p.closed = true
	p.sessions = map[string]*live{}
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
}

// Stats returns what was done so far.
func (p *Prerenderer) Stats() Stats {
	p.mu.Lock()
	s := Stats{Sessions: len(p.sessions)}
	for _, l := range p.sessions {
		s.Behind += l.behindBy()
	}
	p.mu.Unlock()
	s.Windows, s.Again, s.AudioEncoded, s.Deferred, s.Failed = p.windows.Load(), p.again.Load(), p.encoded.Load(), p.deferred.Load(), p.failed.Load()
	return s
}

// run is a session's loop: every Every, render the windows that became
// final, one at a time, while the CPU allows.
func (p *Prerenderer) run(ctx context.Context, l *live) {
	defer l.stop()
	log := p.log.With("room", l.room, "session", l.session)
	opts, ok := p.cfg.Options(l.room, l.session)
	if !ok {
		return
	}
	if e := opts.Edits; e != nil && (e.Trim != nil || len(e.Cuts) > 0) {
		log.Info("prerender: not rendering during the call: the render's edits cut the recording")
		return
	}
	opts.MaxJobDuration, opts.Parallel, opts.Progress = p.cfg.Window, 1, nil
	if opts.Reuse == "" {
		log.Warn("prerender: not rendering during the call: the render keeps no windows")
		return
	}
	opts.Log = log
	// Who is the active speaker at an instant depends on the levels that
	// follow it.
	var lookAhead time.Duration
	if speakerLayout(opts) {
		lookAhead = timeline.SpeakerLookAhead
	}
	rendered := map[int]bool{} // windows rendered during this call
	var until time.Duration
	waiting := false
	// A look compacts the whole journal and fits the sync model again: it
	// costs in proportion to the call so far, so the next look waits until
	// the next window can be final (the media on disk advances at the
	// call's pace), never less than Every nor more than half a window.
	wait := p.cfg.Every
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		wait = p.cfg.Every
		for ctx.Err() == nil {
			if p.overBudget() {
				p.deferred.Add(1)
				break
			}
			select {
			case p.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			res, final, ends, err := p.step(ctx, l, opts, until, lookAhead)
			<-p.sem
			var early errNotYet
			switch {
			case err != nil && ctx.Err() != nil:
				return
			case errors.As(err, &early):
				// A call's first seconds may not be plannable yet (edits
				// naming a participant who has not joined): not a failure.
				if !waiting {
					log.Info("prerender: waiting: the call cannot be planned yet", "reason", early.err)
					waiting = true
				}
			case err != nil:
				p.failed.Add(1)
				log.Warn("prerender: window not rendered (tried again at the next look)", "err", err)
			}
			if err != nil {
				break
			}
			waiting = false
			for _, w := range res.Rendered {
				p.windows.Add(1)
				if rendered[w] {
					p.again.Add(1)
					log.Info("prerender: window rendered again: its sources moved", "window", w)
				}
				rendered[w] = true
			}
			p.encoded.Add(int64(len(res.Encoded)))
			until = res.Until
			l.progress(until, final, ends)
			if behind := final - until; behind > p.cfg.MaxBehind {
				log.Warn("prerender: too far behind the call; the render after the call draws the rest", "behind", behind, "until", until)
				return
			}
			if len(res.Rendered) > 0 {
				log.Debug("prerender: windows rendered", "windows", res.Rendered, "audio_encoded", res.Encoded, "until", until, "final", final)
			} else {
				// At most half a window: when the last publisher leaves,
				// the call's end becomes final at once.
				wait = min(max(wait, until+p.cfg.Window-final), max(p.cfg.Every, p.cfg.Window/2))
				break
			}
		}
		timer.Reset(wait)
	}
}

// overBudget reports whether the CPU outside niced processes is over the
// budget.
func (p *Prerenderer) overBudget() bool {
	if p.cfg.CPUBudget <= 0 || p.cfg.CPU == nil {
		return false
	}
	use, ok := p.cfg.CPU()
	return ok && use > p.cfg.CPUBudget
}

// step renders the final windows up to one window past until (every window
// before until is kept); final is where the final media ends, ends the
// output time of each closed segment's last frame.
func (p *Prerenderer) step(ctx context.Context, l *live, opts render.Options, until, lookAhead time.Duration) (render.Prerendered, time.Duration, map[string]time.Duration, error) {
	m, err := l.manifest()
	if err != nil {
		return render.Prerendered{}, 0, nil, errNotYet{err}
	}
	s, err := timeline.NewSync(m)
	if err != nil {
		return render.Prerendered{}, 0, nil, errNotYet{err}
	}
	ends := map[string]time.Duration{}
	for _, lane := range m.Lanes {
		for _, t := range lane.Tracks {
			for _, sg := range t.Segments {
				if !sg.Closed {
					continue
				}
				if at, err := s.RecorderTime(t.ID, sg.LastRTP); err == nil {
					ends[sg.Path] = time.Duration(at - s.SessionStart())
				}
			}
		}
	}
	final, open := Frontier(m, s, p.cfg.Idle)
	if open {
		final -= p.cfg.Margin + lookAhead
	}
	if final <= 0 {
		return render.Prerendered{}, final, ends, nil
	}
	plan, err := render.PlanOf(m, s, opts)
	if err != nil {
		return render.Prerendered{}, final, ends, errNotYet{err}
	}
	// The windows before the last one kept may read segments deleted
	// since (see Needs): not looked at again; the render after the call
	// checks them against the final sync model.
	from := max(0, until-p.cfg.Window)
	res, err := render.Prerender(ctx, plan, l.dir, opts, from, min(final, until+p.cfg.Window))
	return res, final, ends, err
}

// speakerLayout reports whether opts show the active speaker at some point.
func speakerLayout(opts render.Options) bool {
	if opts.Layout != "" {
		return opts.Layout == timeline.LayoutSpeaker
	}
	if opts.Edits != nil {
		for _, l := range opts.Edits.Layouts {
			if l.Type == timeline.LayoutSpeaker {
				return true
			}
		}
	}
	return false
}

// errNotYet is a session that cannot be planned from what is recorded so
// far: a journal without its first records, a sync model without a report,
// edits naming a participant still to come. The post-call render says so if
// it lasts.
type errNotYet struct{ err error }

func (e errNotYet) Error() string { return "prerender: not yet: " + e.err.Error() }
func (e errNotYet) Unwrap() error { return e.err }

// journalLag is how far behind the journal's last record its audio levels
// and arrival samples may be (they are written every second).
const journalLag = 1500 * time.Millisecond

// Frontier is the recording time (from the session's start) up to which the
// media of a manifest compacted while the call goes on is final: the least,
// over the tracks still being written and not idle for idle, of the placed
// time of their last frame on disk, never past the journal's end less the lag
// of its periodic records; open is false when no track is being written (the
// call's publishers have all left), its media then final up to the journal's
// end. A track without a file yet (a call's first moments) is being
// written. A window drawn too early is still right: a later render sees its
// inputs changed (a new joiner's tile) in its reuse key and draws it again.
func Frontier(m *timeline.Manifest, s *timeline.Sync, idle time.Duration) (t time.Duration, open bool) {
	limit := m.EndUnixNS - int64(journalLag)
	for _, lane := range m.Lanes {
		for _, tr := range lane.Tracks {
			k := len(tr.Segments)
			if k == 0 {
				open = true // its first frame is yet to be placed
				continue
			}
			if tr.Segments[k-1].Closed {
				continue
			}
			open = true
			at, err := s.RecorderTime(tr.ID, tr.Segments[k-1].LastRTP)
			if err != nil || m.EndUnixNS-at > int64(idle) {
				continue // not placed, or idle
			}
			limit = min(limit, at)
		}
	}
	if !open {
		limit = m.EndUnixNS
	}
	return time.Duration(limit - s.SessionStart()), open
}
