// Package console is tapedeck's web console: the calls being recorded now, the stored sessions with
// their timeline picture, playback and downloads, re-renders and the post-call jobs, as
// server-rendered HTML with a little JavaScript, all embedded in the binary (no CDN, no build step).
//
// It reads through the interfaces the control API uses: a Recorder for the live sessions (cmd adapts
// capture.Recorder), the post-call Jobs (postcall.Pipeline), the session store (storage.Client) and
// a Catalog that lists stored sessions by name without reading their objects. cmd wires it into
// `serve` with Register.
//
// # Access
//
// With an admin token, a login form exchanges the token for an HttpOnly, SameSite=Strict session
// cookie (signed with a key made at start, valid 12 h), and "Authorization: Bearer TOKEN" works on
// every route. Without a token the console answers only on a loopback listener, and only to requests
// whose Host is a loopback name (a DNS-rebinding page cannot read it). Every state-changing request
// made with the cookie carries a CSRF token bound to the cookie's session, and is refused when the
// browser says it comes from another site. A client address with 10 wrong tokens in a minute gets 429
// until the minute is over. Every page is sent with a Content-Security-Policy that allows scripts,
// styles and connections from the console's own origin only (no inline script).
package console

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/timeline"
)

// Recorder is what the Live page reads and does; cmd implements it with capture.Recorder.
type Recorder interface {
	// LiveSessions returns the sessions being recorded now.
	LiveSessions() []LiveSession
	// StopSession ends the room's session now. A room without a session is ErrNoSession (wrapped).
	StopSession(room string) error
}

// ErrNoSession is returned (wrapped) by Recorder.StopSession for a room that records nothing.
var ErrNoSession = errors.New("no session is being recorded in that room")

// LiveSession is a session being recorded.
type LiveSession struct {
	Room, Session string
	Started       time.Time
	Ending        bool // being finalized
	Participants  []LiveParticipant
}

// LiveParticipant is one publish of a live session.
type LiveParticipant struct {
	Name    string
	Publish string
	Tracks  []LiveTrack
}

// LiveTrack is one track being recorded. The fields after SSRC are those a recorder may not report:
// zero (nil) means unknown, and the page shows a dash.
type LiveTrack struct {
	ID, Lane, Kind, Codec string
	SSRC                  uint32
	// Started is the arrival of the track's first packet.
	Started time.Time
	// Width and Height are the video's latest size.
	Width, Height int
	// Counters are the track's cumulative counts since it started.
	Counters *TrackCounters
}

// TrackCounters are cumulative counts of one track.
type TrackCounters struct {
	Packets    int64     // RTP packets received
	Bytes      int64     // RTP payload bytes received
	Lost       int64     // packets declared lost
	LastPacket time.Time // arrival of the latest packet
}

// Jobs is the post-call pipeline as the console uses it: postcall.Pipeline's methods, and a retry
// that cmd implements.
type Jobs interface {
	State(ctx context.Context, room, session string) (postcall.State, error)
	States(ctx context.Context, limit int) ([]postcall.State, error)
	Rerender(ctx context.Context, room, session string, specs []postcall.RenderSpec) error
	// Retry runs a failed job again; a job that cannot be retried is ErrCannotRetry (wrapped).
	Retry(ctx context.Context, room, session string) error
}

// ErrCannotRetry is returned (wrapped) by Jobs.Retry for a failed job that cannot run again.
var ErrCannotRetry = errors.New("the job cannot be retried")

// Catalog lists the stored sessions by name, without reading their objects: for a local folder its
// directory entries, for S3 a delimited listing. Names are returned sorted ascending.
type Catalog interface {
	// Rooms lists the rooms that hold sessions.
	Rooms(ctx context.Context) ([]string, error)
	// Sessions lists the session IDs of room that start with prefix ("" for all; "20261123" for
	// one day, as session IDs start with their UTC start time).
	Sessions(ctx context.Context, room, prefix string) ([]string, error)
}

// Config configures a Console.
type Config struct {
	// Token is the admin token ($TAPEDECK_ADMIN_TOKEN); "" allows loopback access only.
	Token string
	// Loopback says the listener is on a loopback address.
	Loopback bool
	// Recorder gives the live sessions; nil shows none.
	Recorder Recorder
	// Jobs is the post-call pipeline; nil hides job states and re-renders.
	Jobs Jobs
	// Store holds the sessions (required).
	Store storage.Client
	// Catalog lists the stored sessions (required).
	Catalog Catalog
	// Local, if set, reads the manifest of a session that is not (yet) stored from the recorder's
	// data folder.
	Local func(ctx context.Context, room, session string) (*timeline.Manifest, error)
	// Profiles are the render profiles offered, the first being the default.
	Profiles []string
	// CheckRenders, if set, checks re-render specs the way the control API does before they are queued.
	CheckRenders func([]postcall.RenderSpec) error
	// PageSize is the number of sessions on a page of the Sessions list (default 50).
	PageSize int
	// LinkTTL is the validity of the presigned links of an S3 store (default 6 h).
	LinkTTL time.Duration
	// Log receives what operators should know (sessions ended, re-renders queued, refused logins).
	Log *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Console serves the web console. Create it with New and mount it with Register.
type Console struct {
	cfg     Config
	log     *slog.Logger
	pages   map[string]*template.Template
	static  fs.FS
	version string // of the static files, for cache busting
	auth    *authenticator
	rates   *rateTracker
	heads   *lru[sessionHead]
	details *lru[*sessionData]
}

// Default values of Config.
const (
	DefaultPageSize = 50
	DefaultLinkTTL  = 6 * time.Hour
)

// New parses the console's templates and returns it.
func New(cfg Config) (*Console, error) {
	if cfg.Store == nil || cfg.Catalog == nil {
		return nil, errors.New("console: a store and a catalog are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.LinkTTL <= 0 {
		cfg.LinkTTL = DefaultLinkTTL
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	static, version, err := staticFiles()
	if err != nil {
		return nil, err
	}
	auth, err := newAuthenticator(cfg.Token, cfg.Loopback, cfg.Now)
	if err != nil {
		return nil, err
	}
	return &Console{
		cfg: cfg, log: cfg.Log, pages: pages, static: static, version: version, auth: auth,
		rates: newRateTracker(), heads: newLRU[sessionHead](4096), details: newLRU[*sessionData](32),
	}, nil
}

// Register mounts the console's routes on mux: "/" (Live), /sessions, /jobs, /login, /logout and
// /static/. They must not clash with the mux's other routes (/api/, /whip/, /publish/, /metrics,
// /healthz, /readyz).
func (c *Console) Register(mux *http.ServeMux) {
	page := func(h http.HandlerFunc) http.Handler { return c.guard(h, false) }
	change := func(h http.HandlerFunc) http.Handler { return c.guard(h, true) }

	mux.Handle("GET /{$}", page(c.handleLive))
	mux.Handle("GET /live", page(c.handleLiveFragment))
	mux.Handle("POST /live/{room}/end", change(c.handleEnd))
	mux.Handle("GET /sessions", page(c.handleSessions))
	mux.Handle("GET /sessions/{room}/{session}", page(c.handleSession))
	mux.Handle("GET /sessions/{room}/{session}/timeline.svg", page(c.handleSVG))
	mux.Handle("GET /sessions/{room}/{session}/job", page(c.handleJobFragment))
	mux.Handle("GET /sessions/{room}/{session}/files/{path...}", page(c.handleFile))
	mux.Handle("POST /sessions/{room}/{session}/renders", change(c.handleRerender))
	mux.Handle("POST /sessions/{room}/{session}/check", change(c.handleCheck))
	mux.Handle("GET /jobs", page(c.handleJobs))
	mux.Handle("POST /jobs/{room}/{session}/retry", change(c.handleRetry))
	mux.Handle("GET /login", c.headers(http.HandlerFunc(c.handleLoginForm)))
	mux.Handle("POST /login", c.headers(http.HandlerFunc(c.handleLogin)))
	mux.Handle("POST /logout", change(c.handleLogout))
	mux.Handle("GET /static/", c.staticHandler())
}

// namePattern is what capture accepts for room, participant and render names, and what it makes
// session IDs of.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func validName(s string) bool { return namePattern.MatchString(s) && !containsDotDot(s) }

func containsDotDot(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '.' && s[i+1] == '.' {
			return true
		}
	}
	return false
}

// roomSession reads and checks the {room} and {session} of a request's path.
func roomSession(r *http.Request) (room, session string, err error) {
	room, session = r.PathValue("room"), r.PathValue("session")
	if !validName(room) || !validName(session) {
		return "", "", fmt.Errorf("bad room or session name")
	}
	return room, session, nil
}
