// Package capture is tapedeck's recording side: WHIP ingest over WebRTC,
// per-track jitter buffers and crash-safe Matroska/WebM writers, segment
// rotation, and the journal from which every session's manifest is built.
// It imports pion and timeline; it never imports storage or FFmpeg code.
package capture

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/tapedeck/tapedeck/internal/authlimit"
	"github.com/tapedeck/tapedeck/timeline"
)

// Config is what the recorder is told at start. It holds no runtime state.
type Config struct {
	// DataDir is the folder recordings are written to:
	// DataDir/{room}/{session}/{journal.jsonl,manifest.json,tracks/...}.
	DataDir string
	// Tokens are the accepted bearer tokens; none means no authentication.
	Tokens []string
	// CORSOrigins are the web origins (scheme://host[:port]) whose pages
	// may publish from a browser; "*" allows any (safe: authentication is a
	// bearer token, never a cookie). None: no CORS headers.
	CORSOrigins []string
	// SegmentDuration and SegmentSize rotate a track's file when either is
	// reached (video rotates at the next keyframe). Zero means the default.
	SegmentDuration time.Duration
	SegmentSize     int64
	// KeyframeInterval: every video sender is asked for a keyframe shortly
	// before each multiple of it of session time (see keyframeDue), so
	// that the render's windows, whose length it divides, start near one.
	// Zero means the default; negative: keyframes are asked for only at the
	// start of a file and after loss.
	KeyframeInterval time.Duration
	// Grace is how long a room stays in the same session after its last
	// publisher left, so that a participant who drops and comes back stays
	// in the same recording.
	Grace time.Duration
	// JitterLatency is how long a packet waits for the ones before it.
	JitterLatency time.Duration
	// MinFreeBytes: below this much free space in DataDir, new publishes
	// are refused (503) while the running ones keep recording.
	// HardFloorBytes: below this, open files are closed cleanly and
	// nothing more is written until space comes back. Zero means the
	// default; negative turns the guard off.
	MinFreeBytes, HardFloorBytes int64
	// MaxPublishesPerRoom and MaxPublishes bound concurrent publishes
	// (zero: the defaults).
	MaxPublishesPerRoom, MaxPublishes int
	// ICE networking.
	ICE ICEConfig
	// OnSessionEnd, if set, is called after a session's manifest has been
	// written, in a goroutine the recorder owns: Close waits for it. ctx
	// ends when Close gives up waiting.
	OnSessionEnd func(ctx context.Context, ended SessionEnded)
	// OnSessionStart, if set, is called when a session starts recording
	// (its folder and journal exist), with the recorder's lock held: it
	// must not block or call the recorder (queue the work and return).
	OnSessionStart func(SessionStarted)
	// OnSegmentClosed, if set, is called when a track file is finished and
	// will not be written again, so that it can be uploaded while the call
	// goes on. It is called on the track's receive path: it must not block
	// (queue the work and return).
	OnSegmentClosed func(SegmentClosed)
	// Rooms, if set, says which recorder of a cluster records each room
	// (see Rooms); nil: this one records every room.
	Rooms Rooms
	// Elsewhere, if set, answers a WHIP request for a room that the recorder
	// at owner (a base URL) records, for example by proxying it there; body
	// is what was read of the request's body (a POST's offer), nil when
	// nothing was. nil: a 307 redirect to owner.
	Elsewhere func(w http.ResponseWriter, req *http.Request, owner string, body []byte)
}

// SessionStarted describes a session that started recording.
type SessionStarted struct {
	Room, Session string
	// Dir is the session's folder, where its journal and track files are
	// being written.
	Dir string
	// Part is the session's part on this recorder (0 unless the room moved
	// between the recorders of a cluster during the call).
	Part int
}

// SegmentClosed describes a finished track file.
type SegmentClosed struct {
	Room, Session string
	Dir           string // the session folder
	Path          string // the file, relative to Dir, slash-separated
	Lane, Track   string
	Bytes         int64
	// Part is the session's part this recorder records (RoomClaim.Part; 0
	// without Config.Rooms).
	Part int
}

// ICEConfig says which addresses and ports WebRTC media may use.
type ICEConfig struct {
	// LoopbackOnly offers only 127.0.0.1 candidates (tests, local demos).
	LoopbackOnly bool
	// NAT1To1IPs are public addresses to announce instead of local ones.
	NAT1To1IPs []string
	// UDPPort is the one UDP port all media arrives on (0 = a random one).
	UDPPort int
	// TCPPort, if not zero, adds passive ICE-TCP candidates on this one TCP
	// port (-1: a random one), for clients whose UDP is blocked.
	TCPPort int
	// Servers are STUN and TURN servers: given to clients in Link headers
	// (RFC 9725, 4.6) and used by the recorder itself.
	Servers []ICEServer
	// TURNSecret, if set, gives TURN servers without static credentials
	// time-limited credentials computed from this shared secret (the TURN
	// REST scheme of coturn's use-auth-secret), valid for TURNTTL.
	TURNSecret string
	TURNTTL    time.Duration
}

// Defaults used where Config leaves a field zero.
const (
	DefaultSegmentDuration = 10 * time.Minute
	DefaultSegmentSize     = 1 << 30
	DefaultGrace           = 15 * time.Second
	DefaultJitterLatency   = 200 * time.Millisecond
	// DefaultKeyframeInterval is the render's default window during calls.
	DefaultKeyframeInterval = 10 * time.Second
)

// SessionEnded describes a finished session.
type SessionEnded struct {
	Room, Session string
	Dir           string
	Manifest      *timeline.Manifest
}

// Recorder is the capture service: it accepts WHIP publishes and records
// them. Create it with New, serve its Handler, and Close it.
type Recorder struct {
	cfg Config
	log *slog.Logger
	api *webrtc.API
	mux io.Closer // the media UDP socket(s)

	muxOnce sync.Once
	muxErr  error

	mu       sync.Mutex
	rooms    map[string]*session   // the open session of each room
	open     map[*session]struct{} // every session not yet finalized
	closed   bool
	draining bool

	// tasks owns every goroutine the recorder starts itself: publishes
	// ending, sessions being finalized and their hooks. Close waits for it.
	tasks tasks
	// hookCtx is given to OnSessionEnd; it ends when Close gives up.
	hookCtx    context.Context
	hookCancel context.CancelFunc

	count    counters
	auth     authlimit.Limiter
	stop     chan struct{}
	stopOnce sync.Once
	watchers sync.WaitGroup
}

// New returns a recorder writing into cfg.DataDir.
func New(cfg Config, log *slog.Logger) (*Recorder, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("capture: no data folder")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("capture: data folder: %w", err)
	}
	if cfg.SegmentDuration <= 0 {
		cfg.SegmentDuration = DefaultSegmentDuration
	}
	if cfg.SegmentSize <= 0 {
		cfg.SegmentSize = DefaultSegmentSize
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.KeyframeInterval == 0 {
		cfg.KeyframeInterval = DefaultKeyframeInterval
	}
	if cfg.JitterLatency <= 0 {
		cfg.JitterLatency = DefaultJitterLatency
	}
	if cfg.MinFreeBytes == 0 {
		cfg.MinFreeBytes = DefaultMinFreeBytes
	}
	if cfg.HardFloorBytes == 0 {
		cfg.HardFloorBytes = DefaultHardFloorBytes
	}
	if cfg.MaxPublishesPerRoom <= 0 {
		cfg.MaxPublishesPerRoom = DefaultMaxPublishesPerRoom
	}
	if cfg.MaxPublishes <= 0 {
		cfg.MaxPublishes = DefaultMaxPublishes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	api, mux, err := newAPI(cfg.ICE)
	if err != nil {
		return nil, err
	}
	r := &Recorder{cfg: cfg, log: log, api: api, mux: mux, rooms: map[string]*session{}, open: map[*session]struct{}{}, stop: make(chan struct{})}
	r.hookCtx, r.hookCancel = context.WithCancel(context.Background())
	r.count.freeBytes.Store(-1)
	if f, err := freeBytes(cfg.DataDir); err == nil {
		r.count.freeBytes.Store(f)
	}
	r.watchers.Add(1)
	go func() { defer r.watchers.Done(); r.watchDisk(r.stop) }()
	return r, nil
}

// newID returns a random hex identifier of n bytes.
func newID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// session is one recording of a room: from its first publish until the
// grace period after its last publisher left.
type session struct {
	rec   *Recorder
	room  string
	id    string
	dir   string
	start time.Time
	jr    *journal
	log   *slog.Logger

	// part and node: the session's part this recorder records, and its
	// name (RoomClaim); 0 and "" without Config.Rooms.
	part int
	node string

	// guarded by rec.mu
	publishes map[string]*publish
	trackSeq  int
	grace     *time.Timer
	ending    bool
	hooked    bool // manifest written, OnSessionEnd running
	// handover: the session ends here but the call may go on elsewhere (the
	// recorder closed, or the room moved): Rooms.Release is told so.
	handover bool
}

// unixNS places an instant on the recorder's clock for the manifest: the
// session's wall-clock start plus the monotonic time since, so that a step
// of the system clock (NTP) during a call does not bend its timeline.
func (s *session) unixNS(at time.Time) int64 {
	return s.start.UnixNano() + int64(at.Sub(s.start))
}

// sessionFor returns the room's open session, starting one if needed: the
// claim's session (a part of it), or a new one. Called with r.mu held.
func (r *Recorder) sessionFor(room string, claim RoomClaim) (*session, error) {
	if s := r.rooms[room]; s != nil {
		switch {
		case !s.ending && (claim.Session == "" || claim.Session == s.id):
			if s.grace != nil {
				s.grace.Stop()
				s.grace = nil
			}
			return s, nil
		case claim.Session == s.id:
			// Being finalized, and not yet released: the next claim
			// starts the next session.
			return nil, errRoomEnding
		case !s.ending:
			return nil, fmt.Errorf("%w (as session %s; this recorder has %s)", ErrRoomMoved, claim.Session, s.id)
		}
	}
	now := time.Now()
	id := claim.Session
	if id == "" {
		id = NewSessionID(now)
	}
	dir, err := r.sessionDir(room, id, claim.Part)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "tracks"), 0o755); err != nil {
		return nil, fmt.Errorf("capture: session folder: %w", err)
	}
	jr, err := openJournal(filepath.Join(dir, JournalName))
	if err != nil {
		return nil, err
	}
	s := &session{
		rec: r, room: room, id: id, dir: dir, start: now, jr: jr, part: claim.Part, node: claim.Node,
		log:       r.log.With("room", room, "session", id),
		publishes: map[string]*publish{},
	}
	if claim.Part > 0 {
		s.log = s.log.With("part", claim.Part)
	}
	if err := jr.append(&record{Type: recSession, At: now.UnixNano(), Room: room, Session: id, Part: claim.Part, Node: claim.Node}); err != nil {
		jr.close()
		return nil, err
	}
	r.rooms[room] = s
	r.open[s] = struct{}{}
	s.log.Info("session started", "dir", dir)
	if r.cfg.OnSessionStart != nil {
		r.cfg.OnSessionStart(SessionStarted{Room: room, Session: id, Dir: dir, Part: claim.Part})
	}
	return s, nil
}

// publishEnded is called once a publish's tracks are all finished. When the
// session has no publishers left, the grace period starts; on a closing
// recorder the session is finalized at once.
func (s *session) publishEnded(p *publish) {
	r := s.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(s.publishes, p.id)
	if len(s.publishes) > 0 || s.ending {
		return
	}
	if r.closed {
		s.ending, s.handover = true, true
		r.tasks.Go(s.finalize) // publishEnded runs in a task: never refused
		return
	}
	s.grace = time.AfterFunc(r.cfg.Grace, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if s.ending || len(s.publishes) > 0 || r.rooms[s.room] != s {
			return
		}
		s.ending = true
		if !r.tasks.Go(s.finalize) {
			// Close has finished waiting: it finalized every session it
			// knew of, so this one cannot be left.
			s.log.Error("grace period ended after the recorder closed; the session is recovered at the next start")
		}
	})
}

// finalize ends the session: journal, manifest, hook. It runs as one of the
// recorder's tasks, after the session's last publish ended.
func (s *session) finalize() {
	r := s.rec
	defer func() {
		r.mu.Lock()
		delete(r.open, s)
		r.mu.Unlock()
	}()
	if r.cfg.Rooms != nil && s.part > 0 {
		// First, so that the room's next publish starts its next session
		// (or, on a handover, continues this one elsewhere) at once.
		how := ReleaseEnded
		r.mu.Lock()
		if s.handover {
			how = ReleaseHandover
		}
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(r.hookCtx, 5*time.Second)
		r.cfg.Rooms.Release(ctx, s.room, s.id, how)
		cancel()
	}
	if err := s.jr.append(&record{Type: recSessionEnd}); err != nil {
		s.log.Error("journal session end", "err", err)
	}
	if err := s.jr.close(); err != nil {
		s.log.Error("close journal", "err", err)
	}
	r.mu.Lock()
	if r.rooms[s.room] == s {
		delete(r.rooms, s.room)
	}
	r.mu.Unlock()
	m, err := Compact(s.dir)
	if err == nil {
		err = WriteManifest(s.dir, m)
	}
	if err != nil {
		s.log.Error("manifest not written; the journal is kept and `tapedeck recover` can rebuild it", "err", err)
		return
	}
	s.log.Info("session ended", "manifest", filepath.Join(s.dir, ManifestName), "lanes", len(m.Lanes))
	if r.cfg.OnSessionEnd != nil {
		r.mu.Lock()
		s.hooked = true
		r.mu.Unlock()
		r.cfg.OnSessionEnd(r.hookCtx, SessionEnded{Room: s.room, Session: s.id, Dir: s.dir, Manifest: m})
	}
}

// closeGrace is how long Close still waits, once its context has ended and
// the media socket is closed, for the work that socket was holding up.
const closeGrace = 2 * time.Second

// Close stops accepting publishes, ends every publish, finalizes every open
// session and waits for all of it, or for ctx. Whatever happens it releases
// the media socket and the disk watcher. If ctx ends first, it closes the
// socket (so that tracks stop waiting for packets), cancels the session hooks,
// waits a little longer, and returns an error naming the sessions it
// abandoned: their journals stay on disk and the next start (or `tapedeck
// recover`) rebuilds their manifests.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	for _, s := range r.rooms {
		for _, p := range s.publishes {
			r.tasks.Go(func() { p.end(errClosing) })
		}
		if len(s.publishes) == 0 && !s.ending {
			if s.grace != nil {
				s.grace.Stop()
				s.grace = nil
			}
			s.ending, s.handover = true, true
			r.tasks.Go(s.finalize)
		}
	}
	r.mu.Unlock()
	var errs []error
	if err := r.tasks.Wait(ctx); err != nil {
		r.closeMux()
		r.hookCancel()
		gctx, cancel := context.WithTimeout(context.Background(), closeGrace)
		err2 := r.tasks.Wait(gctx)
		cancel()
		if err2 != nil {
			errs = append(errs, fmt.Errorf("capture: close: %w; abandoned %s", err, r.unfinished()))
		} else {
			r.log.Warn("close: finished after its deadline, once the media socket was closed", "err", err)
		}
	}
	r.hookCancel()
	r.stopOnce.Do(func() { close(r.stop) })
	r.watchers.Wait()
	if err := r.closeMux(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// closeMux closes the media socket once and returns that close's error.
func (r *Recorder) closeMux() error {
	r.muxOnce.Do(func() {
		if err := r.mux.Close(); err != nil {
			r.muxErr = fmt.Errorf("capture: close media socket: %w", err)
		}
	})
	return r.muxErr
}

// unfinished names the sessions not yet finalized and their publishes.
func (r *Recorder) unfinished() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for s := range r.open {
		desc := s.room + "/" + s.id
		switch n := len(s.publishes); {
		case s.hooked:
			desc += " (manifest written; its session-end hook is still running)"
		case n > 0:
			desc += fmt.Sprintf(" (%d publishes still ending; the journal stays and the next start recovers it)", n)
		default:
			desc += " (finalizing; the journal stays and the next start recovers it)"
		}
		out = append(out, desc)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "no session (only hooks)"
	}
	return "sessions " + strings.Join(out, ", ")
}

// Drain stops accepting publishes (503) and lets the running ones go on;
// Close ends them.
func (r *Recorder) Drain() {
	r.mu.Lock()
	r.draining = true
	r.mu.Unlock()
	r.log.Info("draining: new publishes are refused")
}

// Sessions lists the sessions being recorded now, with their publishes and
// tracks, sorted by room.
func (r *Recorder) Sessions() []SessionInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []SessionInfo
	for _, s := range r.rooms {
		si := SessionInfo{Room: s.room, Session: s.id, Dir: s.dir, Started: s.start, Ending: s.ending}
		for _, p := range s.publishes {
			pi := PublishInfo{ID: p.id, Participant: p.participant}
			p.mu.Lock()
			for _, t := range p.live {
				pi.Tracks = append(pi.Tracks, t.info())
			}
			p.mu.Unlock()
			sort.Slice(pi.Tracks, func(i, j int) bool { return pi.Tracks[i].ID < pi.Tracks[j].ID })
			si.Publishes = append(si.Publishes, pi)
		}
		sort.Slice(si.Publishes, func(i, j int) bool { return si.Publishes[i].Participant < si.Publishes[j].Participant })
		out = append(out, si)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Room < out[j].Room })
	return out
}

// SessionInfo describes a session being recorded.
type SessionInfo struct {
	Room      string        `json:"room"`
	Session   string        `json:"session"`
	Dir       string        `json:"dir"`
	Started   time.Time     `json:"started"`
	Ending    bool          `json:"ending"`
	Publishes []PublishInfo `json:"publishes"`
}

// PublishInfo describes a publish being recorded.
type PublishInfo struct {
	ID          string      `json:"id"`
	Participant string      `json:"participant"`
	Tracks      []TrackInfo `json:"tracks"`
}

// TrackInfo describes a track being recorded.
type TrackInfo struct {
	ID         string    `json:"id"`
	Lane       string    `json:"lane"`
	Kind       string    `json:"kind"`
	Codec      string    `json:"codec"`
	SSRC       uint32    `json:"ssrc"`
	Started    time.Time `json:"started"`          // arrival of the first packet (zero before it)
	LastPacket time.Time `json:"last_packet"`      // arrival of the latest packet
	Packets    int64     `json:"packets"`          // RTP packets received (retransmissions and duplicates included)
	Bytes      int64     `json:"bytes"`            // RTP bytes received, cumulative
	Lost       int64     `json:"packets_lost"`     // packets the jitter buffer gave up on (after NACK)
	Width      int       `json:"width,omitempty"`  // the latest keyframe's size (video)
	Height     int       `json:"height,omitempty"` //
}

// info is the track's TrackInfo now.
func (t *trackRecorder) info() TrackInfo {
	ti := TrackInfo{
		ID: t.id, Lane: t.lane, Kind: string(t.kind), Codec: t.codec.Name, SSRC: t.ssrc,
		Packets: t.live.packets.Load(), Bytes: t.live.bytes.Load(), Lost: t.live.lost.Load(),
		Width: int(t.live.width.Load()), Height: int(t.live.height.Load()),
	}
	if ns := t.live.startedNS.Load(); ns != 0 {
		ti.Started = time.Unix(0, ns)
	}
	if ns := t.live.lastNS.Load(); ns != 0 {
		ti.LastPacket = time.Unix(0, ns)
	}
	return ti
}

// ErrNoSession is returned by StopSession for a room without a session.
var ErrNoSession = errors.New("no session is being recorded in that room")

// StopSession ends every publish of the room's session and finalizes it
// now, without waiting for the grace period. It returns at once; the
// session's hook says when it is finalized.
func (r *Recorder) StopSession(room string) error {
	return r.stopSession(room, "", errStopped, false)
}

// stopSession ends every publish of the room's session (if session is set,
// only if the room's session is that one) with cause, and finalizes it.
func (r *Recorder) stopSession(room, session string, cause error, handover bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.rooms[room]
	if s == nil || s.ending || r.closed || (session != "" && s.id != session) {
		return fmt.Errorf("capture: stop %s: %w", room, ErrNoSession)
	}
	var pubs []*publish
	for _, p := range s.publishes {
		pubs = append(pubs, p)
	}
	if s.grace != nil {
		s.grace.Stop()
		s.grace = nil
	}
	s.ending = true // publishEnded will not start a grace period
	s.handover = handover
	r.tasks.Go(func() {
		for _, p := range pubs {
			p.end(cause)
		}
		s.finalize()
	})
	return nil
}
