package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/timeline"
)

const demoRoom, demoSession = "demo", "20261123T171029Z-cd7145"

// fakeRecorder is a recorder with fixed live sessions.
type fakeRecorder struct {
	mu       sync.Mutex
	sessions []LiveSession
	stopped  []string
	clock    func() time.Time         // the console's, without advancing it
	ages     map[string]time.Duration // track ID → time since its last packet
}

func (f *fakeRecorder) LiveSessions() []LiveSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := append([]LiveSession(nil), f.sessions...)
	for i := range out {
		out[i].Participants = append([]LiveParticipant(nil), out[i].Participants...)
		for j := range out[i].Participants {
			p := &out[i].Participants[j]
			p.Tracks = append([]LiveTrack(nil), p.Tracks...)
			for k := range p.Tracks {
				if c := p.Tracks[k].Counters; c != nil && f.clock != nil {
					cc := *c
					cc.LastPacket = f.clock().Add(-f.ages[p.Tracks[k].ID])
					p.Tracks[k].Counters = &cc
				}
			}
		}
	}
	return out
}

func (f *fakeRecorder) StopSession(room string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sessions {
		if s.Room == room {
			f.stopped = append(f.stopped, room)
			return nil
		}
	}
	return fmt.Errorf("stop %s: %w", room, ErrNoSession)
}

func (f *fakeRecorder) stops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.stopped...)
}

// fakeJobs keeps job states in memory and records re-renders and retries.
type fakeJobs struct {
	mu        sync.Mutex
	states    map[string]postcall.State
	rerenders []postcall.RenderSpec
	retries   []string
}

func (f *fakeJobs) State(_ context.Context, room, session string) (postcall.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, ok := f.states[room+"/"+session]; ok {
		return st, nil
	}
	return postcall.State{Room: room, Session: session}, nil
}

func (f *fakeJobs) States(context.Context, int) ([]postcall.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []postcall.State
	for _, st := range f.states {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Session > out[j].Session })
	return out, nil
}

func (f *fakeJobs) Rerender(_ context.Context, room, session string, specs []postcall.RenderSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rerenders = append(f.rerenders, specs...)
	st := f.states[room+"/"+session]
	st.Done = time.Time{}
	f.states[room+"/"+session] = st
	return nil
}

func (f *fakeJobs) Retry(_ context.Context, room, session string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.retries = append(f.retries, room+"/"+session)
	return nil
}

func (f *fakeJobs) queued() ([]postcall.RenderSpec, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]postcall.RenderSpec(nil), f.rerenders...), append([]string(nil), f.retries...)
}

// listCatalog lists sessions with storage List (what cmd does for S3).
type listCatalog struct{ store storage.Client }

func (l listCatalog) seg(ctx context.Context, prefix string, i int) ([]string, error) {
	objs, err := l.store.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, o := range objs {
		p := strings.SplitN(o.Key, "/", 3)
		if len(p) == 3 && !seen[p[i]] {
			seen[p[i]] = true
			out = append(out, p[i])
		}
	}
	sort.Strings(out)
	return out, nil
}

func (l listCatalog) Rooms(ctx context.Context) ([]string, error) { return l.seg(ctx, "", 0) }
func (l listCatalog) Sessions(ctx context.Context, room, prefix string) ([]string, error) {
	return l.seg(ctx, room+"/"+prefix, 1)
}

type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

type fixture struct {
	srv   *httptest.Server
	store *storage.Local
	rec   *fakeRecorder
	jobs  *fakeJobs
	c     *Console
}

func put(t *testing.T, store storage.Client, key string, b []byte) {
	t.Helper()
	if _, err := store.Put(context.Background(), key, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
}

// newFixture serves a console on a store holding the demo session (the manifest of
// timeline/testdata, fake track files and a render).
func newFixture(t *testing.T, token string, loopback bool) *fixture {
	t.Helper()
	store, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := os.ReadFile("../timeline/testdata/demo-manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	prefix := storage.SessionPrefix(demoRoom, demoSession)
	for _, p := range []string{"tracks/alice/audio-t2-000.webm", "tracks/alice/video-t1-000.webm", "tracks/bob/audio-t4-000.webm", "tracks/bob/video-t3-000.mkv", "journal.jsonl"} {
		put(t, store, prefix+p, bytes.Repeat([]byte(p), 100))
	}
	put(t, store, prefix+"renders/default/composite.mp4", []byte("0123456789abcdefghijklmnopqrstuvwxyz"))
	put(t, store, prefix+"manifest.json", m)
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	rec := &fakeRecorder{sessions: []LiveSession{{
		Room: "standup", Session: "20261124T095900Z-aaaaaa", Started: now.Add(-75 * time.Second),
		Participants: []LiveParticipant{
			{Name: "alice", Publish: "p1", Tracks: []LiveTrack{
				{ID: "t1", Lane: "alice/video", Kind: "video", Codec: "vp8", Width: 640, Height: 360,
					Counters: &TrackCounters{Packets: 1000, Bytes: 1_000_000, Lost: 3, LastPacket: now.Add(-100 * time.Millisecond)}},
				{ID: "t2", Lane: "alice/audio", Kind: "audio", Codec: "opus",
					Counters: &TrackCounters{Packets: 500, Bytes: 40_000, LastPacket: now.Add(-3 * time.Second)}},
			}},
			{Name: "bob", Publish: "p2", Tracks: []LiveTrack{{ID: "t3", Lane: "bob/audio", Kind: "audio", Codec: "opus"}}},
		},
	}}}
	jobs := &fakeJobs{states: map[string]postcall.State{
		demoRoom + "/" + demoSession: {Room: demoRoom, Session: demoSession, Node: "n1", Uploaded: now.Add(-time.Hour),
			Renders: map[string]postcall.RenderResult{"default": {Files: []postcall.StoredFile{{Key: prefix + "renders/default/composite.mp4"}}, At: now.Add(-50 * time.Minute)}},
			Done:    now.Add(-50 * time.Minute)},
		"demo/20261122T080000Z-bbbbbb": {Room: "demo", Session: "20261122T080000Z-bbbbbb", Node: "n1", Failed: now.Add(-time.Hour), Error: "render default: ffmpeg exited 1", Attempts: 3},
		"demo/20261122T090000Z-cccccc": {Room: "demo", Session: "20261122T090000Z-cccccc", Node: "n1", Uploaded: now.Add(-2 * time.Minute),
			Running: now.Add(-time.Minute), Stage: "render", Worker: "n2"},
		"demo/20261122T100000Z-dddddd": {Room: "demo", Session: "20261122T100000Z-dddddd", Queued: now.Add(-10 * time.Second)},
	}}
	clock := now
	var mu sync.Mutex
	rec.clock = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	rec.ages = map[string]time.Duration{"t1": 100 * time.Millisecond, "t2": 3 * time.Second}
	c, err := New(Config{
		Token: token, Loopback: loopback, Recorder: rec, Jobs: jobs, Store: store, Catalog: listCatalog{store},
		Profiles: []string{"mp4-720p", "mp4-1080p", "webm-720p"}, PageSize: 10, Log: slog.New(slog.NewTextHandler(testLog{t}, nil)),
		Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			clock = clock.Add(600 * time.Millisecond)
			return clock
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, store: store, rec: rec, jobs: jobs, c: c}
}

// client is a browser-like client: cookies, no redirects followed.
func (f *fixture) client(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func do(t *testing.T, c *http.Client, method, u string, form url.Values, hdr ...string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

func (f *fixture) login(t *testing.T, c *http.Client, token string) string {
	t.Helper()
	resp, _ := do(t, c, "POST", f.srv.URL+"/login", url.Values{"token": {token}, "next": {"/sessions"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/sessions" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page := do(t, c, "GET", f.srv.URL+"/", nil)
	g := csrfMeta.FindStringSubmatch(page)
	if g == nil {
		t.Fatal("no CSRF token on the Live page")
	}
	return g[1]
}

func TestLoginCookieBearerAndRateLimit(t *testing.T) {
	f := newFixture(t, "s3cret", false)
	c := f.client(t)
	resp, _ := do(t, c, "GET", f.srv.URL+"/sessions", nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=%2Fsessions") {
		t.Fatalf("without a session: %d to %q, want the login form", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := do(t, c, "POST", f.srv.URL+"/login", url.Values{"token": {"wrong"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong token") || resp.Header.Get("Set-Cookie") != "" {
		t.Fatalf("wrong token: %d, cookie %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
	resp, _ = do(t, c, "POST", f.srv.URL+"/login", url.Values{"token": {"s3cret"}, "next": {"//evil.example/x"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login with an off-site next: %d to %q, want /", resp.StatusCode, resp.Header.Get("Location"))
	}
	ck := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(ck, want) {
			t.Errorf("session cookie %q lacks %s", ck, want)
		}
	}
	if resp, _ := do(t, c, "GET", f.srv.URL+"/sessions", nil); resp.StatusCode != 200 {
		t.Fatalf("with the cookie: %d", resp.StatusCode)
	}
	anon := &http.Client{CheckRedirect: c.CheckRedirect}
	if resp, _ := do(t, anon, "GET", f.srv.URL+"/jobs", nil, "Authorization", "Bearer s3cret"); resp.StatusCode != 200 {
		t.Fatalf("bearer: %d", resp.StatusCode)
	}
	// A forged cookie is not a session.
	if resp, _ := do(t, anon, "GET", f.srv.URL+"/jobs", nil, "Cookie", cookieName+"=abc.9999999999.xyz"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("forged cookie: %d", resp.StatusCode)
	}
	// 9 more wrong tokens (10 in all) and the address is refused, even with the right token.
	for i := 0; i < 8; i++ {
		do(t, anon, "POST", f.srv.URL+"/login", url.Values{"token": {"nope"}})
	}
	if resp, _ := do(t, anon, "GET", f.srv.URL+"/jobs", nil, "Authorization", "Bearer nope"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("10th wrong token: %d, want 401", resp.StatusCode)
	}
	resp, _ = do(t, anon, "POST", f.srv.URL+"/login", url.Values{"token": {"s3cret"}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("right token after 10 wrong ones: %d (Retry-After %q), want 429", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp, _ := do(t, anon, "GET", f.srv.URL+"/jobs", nil, "Authorization", "Bearer s3cret"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("bearer after 10 wrong tokens: %d, want 429", resp.StatusCode)
	}
	// A session made before is not locked out by someone guessing from the same address.
	if resp, _ := do(t, c, "GET", f.srv.URL+"/sessions", nil); resp.StatusCode != 200 {
		t.Fatalf("cookie during the lockout: %d", resp.StatusCode)
	}
}

func TestWithoutTokenLoopbackOnly(t *testing.T) {
	f := newFixture(t, "", false)
	if resp, _ := do(t, f.client(t), "GET", f.srv.URL+"/", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("no token, public listener: %d, want 403", resp.StatusCode)
	}
	f = newFixture(t, "", true)
	c := f.client(t)
	if resp, _ := do(t, c, "GET", f.srv.URL+"/", nil, "Host", "rebound.example:8080"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("no token, foreign Host: %d, want 403", resp.StatusCode)
	}
	resp, page := do(t, c, "GET", f.srv.URL+"/", nil)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Set-Cookie"), "HttpOnly") {
		t.Fatalf("no token, loopback: %d, cookie %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
	csrf := csrfMeta.FindStringSubmatch(page)[1]
	// State changes need the CSRF token there too.
	if resp, _ := do(t, f.client(t), "POST", f.srv.URL+"/live/standup/end", url.Values{"session": {"20261124T095900Z-aaaaaa"}, "csrf": {csrf}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("end without the cookie: %d, want 403", resp.StatusCode)
	}
	if resp, _ := do(t, c, "POST", f.srv.URL+"/live/standup/end", url.Values{"session": {"20261124T095900Z-aaaaaa"}, "csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("end with cookie and CSRF token: %d, want 303", resp.StatusCode)
	}
	if got := f.rec.stops(); len(got) != 1 {
		t.Fatalf("stops: %v", got)
	}
}

func TestCSRFAndCSP(t *testing.T) {
	f := newFixture(t, "s3cret", false)
	c := f.client(t)
	csrf := f.login(t, c, "s3cret")
	end := f.srv.URL + "/live/standup/end"
	form := url.Values{"session": {"20261124T095900Z-aaaaaa"}}
	for _, tc := range []struct {
		name   string
		client *http.Client
		csrf   string
		hdr    []string
		want   int
	}{
		{"no session", &http.Client{CheckRedirect: c.CheckRedirect}, csrf, nil, http.StatusUnauthorized},
		{"no CSRF token", c, "", nil, http.StatusForbidden},
		{"wrong CSRF token", c, "x" + csrf, nil, http.StatusForbidden},
		{"cross-site", c, csrf, []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"other origin", c, csrf, []string{"Origin", "http://evil.example"}, http.StatusForbidden},
	} {
		fm := url.Values{}
		for k, v := range form {
			fm[k] = v
		}
		if tc.csrf != "" {
			fm.Set("csrf", tc.csrf)
		}
		if resp, _ := do(t, tc.client, "POST", end, fm, tc.hdr...); resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	if got := f.rec.stops(); len(got) != 0 {
		t.Fatalf("refused requests stopped %v", got)
	}
	// A stale page: the session it shows is not the room's session any more.
	if resp, _ := do(t, c, "POST", end, url.Values{"session": {"20261124T000000Z-old"}, "csrf": {csrf}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("old session: %d, want 409", resp.StatusCode)
	}
	fm := url.Values{"session": form["session"], "csrf": {csrf}}
	if resp, _ := do(t, c, "POST", end, fm, "Origin", f.srv.URL); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/?ended=standup" {
		t.Fatalf("end: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := f.rec.stops(); len(got) != 1 || got[0] != "standup" {
		t.Fatalf("stops %v", got)
	}
	// Bearer requests need no CSRF token.
	if resp, _ := do(t, &http.Client{}, "POST", end, form, "Authorization", "Bearer s3cret"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("bearer end: %d", resp.StatusCode)
	}

	// Every page: a CSP without inline script, and no inline script or style in the HTML.
	scripts := regexp.MustCompile(`<script([^>]*)>([^<]*)</script>`)
	inline := regexp.MustCompile(`\sstyle=|\son[a-z]+=`)
	for _, p := range []string{"/", "/live", "/sessions", "/sessions?room=demo", "/sessions/" + demoRoom + "/" + demoSession, "/jobs", "/jobs?status=failed", "/sessions/demo/nope"} {
		resp, body := do(t, c, "GET", f.srv.URL+p, nil)
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		if loc := inline.FindStringIndex(body); loc != nil {
			t.Errorf("%s: inline style or handler: %q", p, body[loc[0]:min(len(body), loc[1]+40)])
		}
		if n := strings.Count(body, "<script"); n != len(scripts.FindAllString(body, -1)) {
			t.Errorf("%s: a script element that is not <script ...></script>", p)
		}
		for _, g := range scripts.FindAllStringSubmatch(body, -1) {
			if !strings.Contains(g[1], "src=") || strings.TrimSpace(g[2]) != "" {
				t.Errorf("%s: inline script %q", p, g[0])
			}
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", p)
		}
	}
}

func TestLivePage(t *testing.T) {
	f := newFixture(t, "", true)
	c := f.client(t)
	_, page := do(t, c, "GET", f.srv.URL+"/", nil)
	for _, want := range []string{`data-room="standup"`, `data-participant="alice"`, `data-participant="bob"`, "vp8", "640×360", "1:1", `data-poll="/live"`, "End the recording"} {
		if !strings.Contains(page, want) {
			t.Errorf("Live page lacks %q", want)
		}
	}
	// The rate needs two samples: the first poll gives it.
	_, frag := do(t, c, "GET", f.srv.URL+"/live", nil)
	if strings.Contains(frag, "<html") {
		t.Error("the fragment is a whole page")
	}
	// The fake's bytes do not grow: 0 b/s, measured.
	if !strings.Contains(frag, `data-bitrate="0"`) || !strings.Contains(frag, "0 kb/s") {
		t.Errorf("no measured bitrate in the fragment")
	}
	if !strings.Contains(frag, `h-late`) || !strings.Contains(frag, `h-ok`) {
		t.Errorf("no health of the tracks")
	}
}

func TestRateTracker(t *testing.T) {
	rt := newRateTracker()
	t0 := time.Unix(1000, 0)
	if r := rt.rate("a", t0, 0); r != -1 {
		t.Fatalf("first sample: %v", r)
	}
	if r := rt.rate("a", t0.Add(200*time.Millisecond), 10_000); r != -1 {
		t.Fatalf("0.2 s span: %v", r)
	}
	if r := rt.rate("a", t0.Add(time.Second), 125_000); r != 1e6 {
		t.Fatalf("1 s: %v, want 1e6", r)
	}
	// After the window the oldest samples go, one older sample stays.
	r := rt.rate("a", t0.Add(10*time.Second), 1_250_000)
	if r != 1e6 {
		t.Fatalf("10 s: %v, want 1e6", r)
	}
	rt.prune(t0.Add(10 * time.Minute))
	if len(rt.tracks) != 0 {
		t.Fatal("not pruned")
	}
}

// addSessions stores n sessions in rooms r0..r{rooms-1}, one minute apart from start, each with a
// manifest head and a track.
func addSessions(t *testing.T, store storage.Client, n, rooms int, start time.Time) []sessionRef {
	var refs []sessionRef
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(i) * time.Minute)
		ref := sessionRef{fmt.Sprintf("r%d", i%rooms), at.Format("20060102T150405Z") + fmt.Sprintf("-%06x", i)}
		refs = append(refs, ref)
		p := storage.SessionPrefix(ref.room, ref.session)
		put(t, store, p+"manifest.json", fmt.Appendf(nil, `{"version":1,"room":%q,"session":%q,"start_unix_ns":%d,"end_unix_ns":%d,"participants":[]}`,
			ref.room, ref.session, at.UnixNano(), at.Add(90*time.Second).UnixNano()))
		put(t, store, p+"tracks/ann/audio-t1-000.webm", []byte("x"))
	}
	sort.Slice(refs, func(i, j int) bool { return listedBefore(refs[i], refs[j]) })
	return refs
}

var rowRE = regexp.MustCompile(`<tr data-room="([^"]+)" data-session="([^"]+)">`)

func rowsOf(page string) []sessionRef {
	var out []sessionRef
	for _, g := range rowRE.FindAllStringSubmatch(page, -1) {
		out = append(out, sessionRef{g[1], g[2]})
	}
	return out
}

func TestSessionsPagingAndFilters(t *testing.T) {
	f := newFixture(t, "", true)
	if err := f.store.Delete(context.Background(), storage.ManifestKey(demoRoom, demoSession)); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tracks/alice/audio-t2-000.webm", "tracks/alice/video-t1-000.webm", "tracks/bob/audio-t4-000.webm", "tracks/bob/video-t3-000.mkv", "journal.jsonl", "renders/default/composite.mp4"} {
		_ = f.store.Delete(context.Background(), storage.SessionPrefix(demoRoom, demoSession)+k)
	}
	refs := addSessions(t, f.store, 25, 3, time.Date(2026, 11, 23, 23, 50, 0, 0, time.UTC))
	c := f.client(t)
	// Walk forward (older) through every page, then back (newer).
	var seen []sessionRef
	var pages []string
	next := f.srv.URL + "/sessions"
	for next != "" {
		_, page := do(t, c, "GET", next, nil)
		pages = append(pages, next)
		rows := rowsOf(page)
		if len(rows) > 10 {
			t.Fatalf("page of %d rows", len(rows))
		}
		seen = append(seen, rows...)
		next = ""
		if m := regexp.MustCompile(`href="(/sessions\?[^"]*before=[^"]+)" rel="next"`).FindStringSubmatch(page); m != nil {
			next = f.srv.URL + strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if fmt.Sprint(seen) != fmt.Sprint(refs) || len(pages) != 3 {
		t.Fatalf("paged through %d pages:\n%v\nwant\n%v", len(pages), seen, refs)
	}
	_, last := do(t, c, "GET", pages[2], nil)
	m := regexp.MustCompile(`href="(/sessions\?[^"]*after=[^"]+)" rel="prev"`).FindStringSubmatch(last)
	if m == nil {
		t.Fatal("no Newer link on the last page")
	}
	_, prev := do(t, c, "GET", f.srv.URL+strings.ReplaceAll(m[1], "&amp;", "&"), nil)
	if got := rowsOf(prev); fmt.Sprint(got) != fmt.Sprint(refs[10:20]) {
		t.Fatalf("Newer from the last page: %v, want %v", got, refs[10:20])
	}
	// Filters: a room, a day (the first 10 sessions are on Nov 23 until 23:59).
	_, page := do(t, c, "GET", f.srv.URL+"/sessions?room=r1", nil)
	for _, r := range rowsOf(page) {
		if r.room != "r1" {
			t.Fatalf("room filter shows %v", r)
		}
	}
	_, page = do(t, c, "GET", f.srv.URL+"/sessions?date=2026-11-23", nil)
	if got := rowsOf(page); len(got) != 10 || !strings.HasPrefix(got[0].session, "20261123T2359") {
		t.Fatalf("day filter: %v", got)
	}
	if !strings.Contains(page, "1:30") {
		t.Error("no length read from the manifests")
	}
	if resp, _ := do(t, c, "GET", f.srv.URL+"/sessions?date=yesterday", nil); resp.StatusCode != 400 {
		t.Errorf("bad date: %d", resp.StatusCode)
	}
}

func TestSessionPageFilesAndRange(t *testing.T) {
	f := newFixture(t, "", true)
	c := f.client(t)
	base := f.srv.URL + "/sessions/" + demoRoom + "/" + demoSession
	resp, page := do(t, c, "GET", base, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("session page: %d\n%s", resp.StatusCode, page)
	}
	for _, want := range []string{`<img id="timeline" src="/sessions/demo/20261123T171029Z-cd7145/timeline.svg" width="1200"`, `data-participant="alice"`,
		`data-participant="bob"`, `<video controls`, `data-render="default"`, `data-rel="tracks/alice/audio-t2-000.webm"`, "manifest.json", "Re-render", `id="warnings"`, "warning"} {
		if !strings.Contains(page, want) {
			t.Errorf("session page lacks %q", want)
		}
	}
	resp, svg := do(t, c, "GET", base+"/timeline.svg", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/svg+xml" || !strings.Contains(svg, "<svg") {
		t.Fatalf("timeline.svg: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp, part := do(t, c, "GET", base+"/files/renders/default/composite.mp4", nil, "Range", "bytes=10-19")
	if resp.StatusCode != http.StatusPartialContent || part != "abcdefghij" || resp.Header.Get("Content-Type") != "video/mp4" {
		t.Fatalf("range: %d %q %s", resp.StatusCode, part, resp.Header.Get("Content-Type"))
	}
	resp, _ = do(t, c, "GET", base+"/files/tracks/alice/audio-t2-000.webm?download=1", nil)
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") || !strings.Contains(cd, "alice-audio-t2-000.webm") {
		t.Errorf("download disposition %q", cd)
	}
	for _, bad := range []string{"/files/..%2F..%2Fetc%2Fpasswd", "/files/tracks/../../x"} {
		if resp, _ := do(t, c, "GET", base+bad, nil); resp.StatusCode != 400 && resp.StatusCode != 404 && resp.StatusCode != http.StatusTemporaryRedirect {
			t.Errorf("%s: %d", bad, resp.StatusCode)
		}
	}
	if resp, _ := do(t, c, "GET", f.srv.URL+"/sessions/demo/20991231T000000Z-none", nil); resp.StatusCode != 404 {
		t.Errorf("missing session: %d", resp.StatusCode)
	}
}

func TestRerenderChecksBeforeQueueing(t *testing.T) {
	f := newFixture(t, "", true)
	c := f.client(t)
	base := f.srv.URL + "/sessions/" + demoRoom + "/" + demoSession
	_, page := do(t, c, "GET", base, nil)
	csrf := csrfMeta.FindStringSubmatch(page)[1]
	broken := "cuts:\n  - {start: 8, end: 9}\nlayouts:\n  - {at: 2, type: mosaic}\n"
	resp, page := do(t, c, "POST", base+"/renders", url.Values{"csrf": {csrf}, "name": {"alt"}, "profile": {"mp4-720p"}, "edits": {broken}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("broken edits: %d", resp.StatusCode)
	}
	for _, want := range []string{`id="form-error" data-line="4"`, "Line 4", "layouts[0].type", "mosaic", "Nothing was queued", `<span class="bad"><i>4</i>`} {
		if !strings.Contains(page, want) {
			t.Errorf("error lacks %q", want)
		}
	}
	// Against the recording: a participant that is not in it.
	resp, page = do(t, c, "POST", base+"/renders", url.Values{"csrf": {csrf}, "name": {"alt"}, "profile": {"mp4-720p"}, "edits": {"lanes:\n  zed:\n    gain: 3\n"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "zed") {
		t.Fatalf("unknown lane: %d", resp.StatusCode)
	}
	for _, tc := range []url.Values{
		{"name": {"../x"}, "profile": {"mp4-720p"}},
		{"name": {"alt"}},
		{"name": {"alt"}, "profile": {"mp4-9999p"}},
		{"name": {"alt"}, "profile": {"mp4-720p"}, "layout": {"mosaic"}},
	} {
		tc.Set("csrf", csrf)
		if resp, _ := do(t, c, "POST", base+"/renders", tc); resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%v: %d", tc, resp.StatusCode)
		}
	}
	if specs, _ := f.jobs.queued(); len(specs) != 0 {
		t.Fatalf("queued %v", specs)
	}
	// The check endpoint answers as one types.
	req, _ := http.NewRequest("POST", base+"/check", strings.NewReader(broken))
	req.Header.Set(csrfHeader, csrf)
	cr, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(cr.Body)
	cr.Body.Close()
	if !strings.Contains(string(b), `"line":4`) {
		t.Errorf("check: %s", b)
	}
	valid := "cuts:\n  - {start: 2, end: 3}\nlayouts:\n  - {at: 0, type: speaker}\n"
	resp, _ = do(t, c, "POST", base+"/renders", url.Values{"csrf": {csrf}, "name": {"alt"}, "profile": {"mp4-720p", "webm-720p"}, "layout": {"grid"}, "edits": {valid}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "queued=alt") {
		t.Fatalf("valid re-render: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	specs, _ := f.jobs.queued()
	if len(specs) != 1 || specs[0].Name != "alt" || specs[0].Profile != "mp4-720p,webm-720p" || specs[0].Layout != "grid" || specs[0].Edits != valid {
		t.Fatalf("queued %+v", specs)
	}
	_, page = do(t, c, "GET", base+"?queued=alt", nil)
	if !strings.Contains(page, `data-finished="false"`) || !strings.Contains(page, "Re-render <b>alt</b> queued") {
		t.Error("no progress after queueing")
	}
}

func TestJobsPageAndRetry(t *testing.T) {
	f := newFixture(t, "", true)
	c := f.client(t)
	_, page := do(t, c, "GET", f.srv.URL+"/jobs", nil)
	for _, want := range []string{`data-status="failed"`, "ffmpeg exited 1", `data-status="done"`, "Retry"} {
		if !strings.Contains(page, want) {
			t.Errorf("Jobs page lacks %q", want)
		}
	}
	csrf := csrfMeta.FindStringSubmatch(page)[1]
	if resp, _ := do(t, c, "POST", f.srv.URL+"/jobs/demo/"+demoSession+"/retry", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("retry of a done job: %d", resp.StatusCode)
	}
	if resp, _ := do(t, c, "POST", f.srv.URL+"/jobs/demo/20261122T080000Z-bbbbbb/retry", url.Values{"csrf": {"nope"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("retry with a bad CSRF token: %d", resp.StatusCode)
	}
	if _, retries := f.jobs.queued(); len(retries) != 0 {
		t.Fatalf("retried %v", retries)
	}
	resp, _ := do(t, c, "POST", f.srv.URL+"/jobs/demo/20261122T080000Z-bbbbbb/retry", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("retry: %d", resp.StatusCode)
	}
	if _, retries := f.jobs.queued(); len(retries) != 1 {
		t.Fatalf("retried %v", retries)
	}
	_, page = do(t, c, "GET", f.srv.URL+"/jobs?status=failed", nil)
	if strings.Contains(page, `data-status="done"`) {
		t.Error("the failed tab shows done jobs")
	}
	// Queued and running jobs: each in its own tab, saying where it runs.
	for _, tc := range []struct{ tab, want, not string }{
		{"running", "rendering on n2", `data-status="queued"`},
		{"queued", "20261122T100000Z-dddddd", `data-status="running"`},
	} {
		_, page = do(t, c, "GET", f.srv.URL+"/jobs?status="+tc.tab, nil)
		if !strings.Contains(page, tc.want) || !strings.Contains(page, `data-status="`+tc.tab+`"`) {
			t.Errorf("the %s tab lacks %q", tc.tab, tc.want)
		}
		if strings.Contains(page, tc.not) || strings.Contains(page, `data-status="failed"`) {
			t.Errorf("the %s tab shows other jobs", tc.tab)
		}
	}
}

func TestManifestSpanReadsTheHead(t *testing.T) {
	store, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// A truncated file after the fields: only its head is read.
	put(t, store, "r/s/manifest.json", []byte(`{"version":1,"room":"r","session":"s","start_unix_ns":5,"end_unix_ns":9,"participants":[{"id":`))
	s, e, err := manifestSpan(context.Background(), store, "r/s/manifest.json")
	if err != nil || s != 5 || e != 9 {
		t.Fatalf("%d %d %v", s, e, err)
	}
	put(t, store, "r/s/manifest.json", []byte(`{"version":1}`))
	if _, _, err := manifestSpan(context.Background(), store, "r/s/manifest.json"); err == nil {
		t.Fatal("no error without the fields")
	}
	if _, _, err := manifestSpan(context.Background(), store, "r/x/manifest.json"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

func TestSessionNotStoredYetAndExports(t *testing.T) {
	f := newFixture(t, "", true)
	ctx := context.Background()
	prefix := storage.SessionPrefix(demoRoom, demoSession)
	put(t, f.store, prefix+"exports/demo.otio", []byte(`{"OTIO_SCHEMA":"Timeline.1"}`))
	c := f.client(t)
	_, page := do(t, c, "GET", f.srv.URL+"/sessions/"+demoRoom+"/"+demoSession, nil)
	if !strings.Contains(page, `id="exports"`) || !strings.Contains(page, `data-rel="exports/demo.otio"`) {
		t.Error("no link to the editor export")
	}
	_, list := do(t, c, "GET", f.srv.URL+"/sessions", nil)
	if !strings.Contains(list, `<span class="chip alt">export</span>`) {
		t.Error("the list does not say the session has an export")
	}

	// Not in the store (its job has not stored it): read from the recorder's data folder.
	m, err := f.store.Get(ctx, prefix+"manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(m)
	m.Close()
	objs, _ := f.store.List(ctx, prefix)
	for _, o := range objs {
		_ = f.store.Delete(ctx, o.Key)
	}
	resp, _ := do(t, c, "GET", f.srv.URL+"/sessions/"+demoRoom+"/"+demoSession, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("neither stored nor local: %d", resp.StatusCode)
	}
	f.c.cfg.Local = func(_ context.Context, room, session string) (*timeline.Manifest, error) {
		if room != demoRoom || session != demoSession {
			return nil, ErrNotFound
		}
		return timeline.ParseManifest(bytes.NewReader(mb))
	}
	resp, page = do(t, c, "GET", f.srv.URL+"/sessions/"+demoRoom+"/"+demoSession, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, "not in the store yet") || !strings.Contains(page, `id="timeline"`) || strings.Contains(page, `id="rerender-form"`) {
		t.Fatalf("local session: %d", resp.StatusCode)
	}
	csrf := csrfMeta.FindStringSubmatch(page)[1]
	if resp, _ := do(t, c, "POST", f.srv.URL+"/sessions/"+demoRoom+"/"+demoSession+"/renders", url.Values{"csrf": {csrf}, "name": {"alt"}, "profile": {"mp4-720p"}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("re-render of a session not stored: %d, want 409", resp.StatusCode)
	}
}

func TestLoginFromAnotherSiteIsRefused(t *testing.T) {
	f := newFixture(t, "s3cret", false)
	c := f.client(t)
	for i := 0; i < 12; i++ {
		resp, _ := do(t, c, "POST", f.srv.URL+"/login", url.Values{"token": {"guess"}}, "Sec-Fetch-Site", "cross-site")
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-site login: %d", resp.StatusCode)
		}
	}
	// Not counted: the operator can still log in.
	f.login(t, c, "s3cret")
}

func TestErrorReason(t *testing.T) {
	long := "postcall: render logo of r/s: render: video 1/1: ffmpeg failed: exit status 1\ncommand: ffmpeg -i x\nstderr (last lines):\nsomething\n/nonexistent/logo.png: No such file or directory\n"
	got, more := errorReason(long)
	if got != "postcall: render logo of r/s: render: video 1/1: ffmpeg failed: exit status 1 — /nonexistent/logo.png: No such file or directory" || !more {
		t.Errorf("%q %v", got, more)
	}
	if got, more := errorReason("upload: connection refused"); got != "upload: connection refused" || more {
		t.Errorf("%q %v", got, more)
	}
}
