package capture_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/examples/publisher"
	"github.com/tapedeck/tapedeck/timeline"
)

// The stress tests race the recorder's lifecycles against each other:
// publishes of one name against each other, DELETE against setup, a
// session's end against a new publish, Close against setup. Each checks
// that nothing leaks (the goroutine count returns to what it was before
// the recorder started), that every track the recorder accepted is in a
// manifest that validates, and that every file decodes. Run them many
// times: go test -race -count=20 -run Stress ./capture/...

// stressRig is a recorder on loopback with its HTTP server, owned by one
// stress test, which closes it itself to check for leaks.
type stressRig struct {
	rec      *capture.Recorder
	srv      *httptest.Server
	dir      string
	ended    chan capture.SessionEnded
	baseline int
	closed   bool
}

func newStressRig(t *testing.T, cfg capture.Config) *stressRig {
	t.Helper()
	g := &stressRig{dir: t.TempDir(), ended: make(chan capture.SessionEnded, 256)}
	// What runs before the recorder: the test framework, idle HTTP
	// connections of earlier tests (closed here so they do not count).
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	began := time.Now()
	g.baseline = settledGoroutines()
	t.Logf("goroutines settled in %v", time.Since(began).Round(time.Millisecond))
	cfg.DataDir = g.dir
	cfg.ICE.LoopbackOnly = true
	cfg.MinFreeBytes, cfg.HardFloorBytes = 32<<20, 8<<20
	hook := cfg.OnSessionEnd
	cfg.OnSessionEnd = func(ctx context.Context, s capture.SessionEnded) {
		if hook != nil {
			hook(ctx, s)
		}
		g.ended <- s
	}
	rec, err := capture.New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	g.rec = rec
	g.srv = httptest.NewServer(rec.Handler())
	t.Cleanup(func() {
		if !g.closed { // the test failed before closing: release what is left
			g.srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = g.rec.Close(ctx)
		}
	})
	return g
}

// settledGoroutines is the goroutine count once it stops falling (goroutines
// of earlier tests' connections may still be on their way out).
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(50 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return m
		}
		n = m
	}
	return n
}

// closeAndCheckLeaks closes the recorder (ctx bounded) and the HTTP server
// and waits for the goroutine count to come back to the baseline; it fails
// the test with every goroutine's stack if it does not.
func (g *stressRig) closeAndCheckLeaks(t *testing.T) {
	t.Helper()
	g.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	if err := g.rec.Close(ctx); err != nil {
		t.Errorf("close: %v", err)
	}
	t.Logf("close took %v", time.Since(began).Round(time.Millisecond))
	g.srv.Close()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= g.baseline {
			t.Logf("goroutines: %d before the recorder, %d after close", g.baseline, n)
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 4<<20)
			buf = buf[:runtime.Stack(buf, true)]
			stacks := strings.Split(string(buf), "\n\n")
			var ours []string
			upstream := 0
			for _, st := range stacks {
				if isPionSRTPAcceptLeak(st) {
					upstream++
					continue
				}
				ours = append(ours, st)
			}
			if n-upstream <= g.baseline {
				t.Logf("goroutines: %d before the recorder, %d after close, of which %d are pion/srtp's known "+
					"leak (a session goroutine blocked handing a new SSRC to an accept loop that already ended, "+
					"when a connection is closed as its first media arrives)", g.baseline, n, upstream)
				return
			}
			t.Fatalf("goroutine leak: %d before the recorder, %d 15 s after close (%d of them pion/srtp's known leak):\n%s",
				g.baseline, n, upstream, strings.Join(ours, "\n\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// isPionSRTPAcceptLeak reports whether a goroutine's stack is pion/srtp's
// session reader blocked for good on its new-stream channel: pion/webrtc's
// accept loop for undeclared SSRCs returns when the connection closes, and a
// packet of a new SSRC decrypted just then blocks the reader forever
// (pion/srtp v3.1.3 session_srtp.go: "s.session.newStream <- r"). tapedeck
// cannot reach that channel; every other goroutine still counts.
func isPionSRTPAcceptLeak(stack string) bool {
	lines := strings.Split(strings.TrimSpace(stack), "\n")
	return len(lines) >= 3 && strings.HasSuffix(lines[0], "[chan send]:") &&
		strings.HasPrefix(lines[1], "github.com/pion/srtp/v3.(*SessionSRTP).decrypt(")
}

// outcome is what one publisher got.
type outcome struct {
	name    string
	status  int    // the POST's status: 201, the refusal's code, 0 if the POST never got an answer
	publish string // the publish ID from the Location (201 only)
	err     error
}

// stressPublisher is a short publisher of the stress tests (small picture,
// low rate, so that many run at once under the race detector).
func stressPublisher(endpoint, name string, dur time.Duration, seed int64) publisher.Config {
	return publisher.Config{
		Endpoint: endpoint, Participant: name, Duration: dur, Video: publisher.VP8, Audio: true,
		Width: 160, Height: 120, FPS: 15, Bitrate: 150_000, Seed: seed,
	}
}

// prepare makes the publishers' media before the goroutine baseline.
func prepare(t *testing.T, cfgs ...publisher.Config) {
	t.Helper()
	defer func(began time.Time) { t.Logf("media prepared in %v", time.Since(began).Round(time.Millisecond)) }(time.Now())
	for _, c := range cfgs {
		if _, err := publisher.PrepareMedia(t.Context(), c, testLogger(t)); err != nil {
			t.Fatalf("media for %s: %v", c.Participant, err)
		}
	}
}

// publishOnce runs one publisher and classifies what it got.
func publishOnce(ctx context.Context, t *testing.T, cfg publisher.Config) outcome {
	res, err := publisher.Run(ctx, cfg, testLogger(t))
	o := outcome{name: cfg.Participant, err: err}
	var se *publisher.StatusError
	switch {
	case res.Location != "":
		o.status, o.publish = http.StatusCreated, path.Base(res.Location)
	case errors.As(err, &se):
		o.status = se.Code
		if se.Code == http.StatusServiceUnavailable && se.RetryAfter == "" {
			o.err = fmt.Errorf("503 without Retry-After: %w", err)
		}
	}
	return o
}

// checkStatuses fails on any answer but 201 and the allowed refusals.
func checkStatuses(t *testing.T, outs []outcome, allowed ...int) {
	t.Helper()
	ok := map[int]bool{http.StatusCreated: true}
	for _, c := range allowed {
		ok[c] = true
	}
	for _, o := range outs {
		if o.status != 0 && !ok[o.status] {
			t.Errorf("%s: POST answered %d (%v); want 201 or one of %v", o.name, o.status, o.err, allowed)
		}
	}
}

// sessionsOnDisk reads the manifest of every session folder under dir,
// checks that it validates and that every file it lists decodes. A session
// folder without a manifest fails the test: every session must have been
// finalized.
func sessionsOnDisk(t *testing.T, dir string) map[string]*timeline.Manifest {
	t.Helper()
	journals, err := filepath.Glob(filepath.Join(dir, "*", "*", capture.JournalName))
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	out := map[string]*timeline.Manifest{}
	var decodes sync.WaitGroup
	sem := make(chan struct{}, 2)
	for _, j := range journals {
		sdir := filepath.Dir(j)
		if _, err := os.Stat(filepath.Join(sdir, capture.ManifestName)); err != nil {
			t.Errorf("session %s has no manifest: %v", sdir, err)
			continue
		}
		m := readManifest(t, sdir)
		if err := m.Validate(); err != nil {
			t.Errorf("session %s: manifest does not validate: %v", sdir, err)
		}
		if m.Recovered {
			t.Errorf("session %s: manifest marked recovered, want a clean end", sdir)
		}
		out[sdir] = m
		for _, l := range m.Lanes {
			for _, tr := range l.Tracks {
				for _, sg := range tr.Segments {
					decodes.Go(func() {
						sem <- struct{}{}
						defer func() { <-sem }()
						decodeStrict(t, filepath.Join(sdir, filepath.FromSlash(sg.Path)))
					})
				}
			}
		}
	}
	decodes.Wait()
	t.Logf("%d sessions checked and decoded in %v", len(out), time.Since(began).Round(time.Millisecond))
	return out
}

// tracksByPublish maps each publish ID to the lanes of its tracks, over
// every manifest.
func tracksByPublish(ms map[string]*timeline.Manifest) map[string][]string {
	out := map[string][]string{}
	for _, m := range ms {
		for _, l := range m.Lanes {
			for _, tr := range l.Tracks {
				out[tr.Publish] = append(out[tr.Publish], l.ID)
			}
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

// publishesIn maps each publish ID of every manifest to its end reason.
func publishesIn(ms map[string]*timeline.Manifest) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for _, p := range m.Participants {
			for _, pub := range p.Publishes {
				out[pub.ID] = pub.EndReason
			}
		}
	}
	return out
}

// checkAccepted: every track in the manifests belongs to a publish that
// was answered 201, and every publish answered 201 is in exactly one
// manifest.
func checkAccepted(t *testing.T, ms map[string]*timeline.Manifest, outs []outcome) {
	t.Helper()
	accepted := map[string]bool{}
	for _, o := range outs {
		if o.status == http.StatusCreated {
			accepted[o.publish] = true
		}
	}
	seen := map[string]int{}
	for _, m := range ms {
		for _, p := range m.Participants {
			for _, pub := range p.Publishes {
				seen[pub.ID]++
			}
		}
	}
	for id := range accepted {
		if got, want := seen[id], 1; got != want {
			t.Errorf("publish %s was answered 201 and is in %d manifests, want %d", id, got, want)
		}
	}
	for id, lanes := range tracksByPublish(ms) {
		if !accepted[id] {
			t.Errorf("publish %s was never answered 201 but recorded tracks on %v", id, lanes)
		}
	}
}

// describe lists a session's publishes (times from the session start) and
// what their clients got, for a failure message.
func describe(m *timeline.Manifest, outs []outcome) string {
	var b strings.Builder
	for _, p := range m.Participants {
		for _, pub := range p.Publishes {
			fmt.Fprintf(&b, "  publish %s of %s: %v → %v: %s\n", pub.ID, p.ID,
				time.Duration(pub.StartUnixNS-m.StartUnixNS), time.Duration(pub.EndUnixNS-m.StartUnixNS), pub.EndReason)
		}
	}
	for _, o := range outs {
		fmt.Fprintf(&b, "  client %s: %d %s %v\n", o.name, o.status, o.publish, o.err)
	}
	return b.String()
}

func countStatus(outs []outcome) map[int]int {
	c := map[int]int{}
	for _, o := range outs {
		c[o.status]++
	}
	return c
}

// TestStressSameNameConcurrent: three POSTs with one participant name at
// the same instant, in three rooms at once. The newest publish of a name
// replaces the others: a replaced publish still being set up is answered
// 409, never 400; the one that is not replaced records both its tracks, and
// the manifest holds exactly the tracks of publishes answered 201.
func TestStressSameNameConcurrent(t *testing.T) {
	const rooms, perName = 3, 3
	dur := 1500 * time.Millisecond
	cfg := stressPublisher("", "alice", dur, 0)
	prepare(t, cfg)
	g := newStressRig(t, capture.Config{Grace: 300 * time.Millisecond, JitterLatency: 100 * time.Millisecond})
	outs := make([][]outcome, rooms)
	var wg sync.WaitGroup
	start := make(chan struct{})
	var ready sync.WaitGroup // every offer ready to POST
	ready.Add(rooms * perName)
	for r := range rooms {
		outs[r] = make([]outcome, perName)
		for i := range perName {
			c := cfg
			c.Endpoint, c.Seed = fmt.Sprintf("%s/whip/same%d", g.srv.URL, r), int64(10*r+i+1)
			c.BeforePost = func() { ready.Done(); <-start }
			wg.Go(func() {
				// A publish replaced after its 201 but before it
				// connected would wait for its ICE timeout: hang up.
				ctx, cancel := context.WithTimeout(t.Context(), dur+4*time.Second)
				defer cancel()
				outs[r][i] = publishOnce(ctx, t, c)
			})
		}
	}
	ready.Wait()
	began := time.Now()
	close(start)
	wg.Wait()
	t.Logf("publishers done after %v", time.Since(began).Round(time.Millisecond))
	byRoom := map[string]*timeline.Manifest{}
	for range rooms {
		select {
		case s := <-g.ended:
			byRoom[s.Room] = nil
		case <-time.After(30 * time.Second):
			t.Fatal("a session did not end")
		}
	}
	g.closeAndCheckLeaks(t)
	ms := sessionsOnDisk(t, g.dir)
	for dir, m := range ms {
		byRoom[m.Room] = ms[dir]
	}
	single := 0
	for r := range rooms {
		room := fmt.Sprintf("same%d", r)
		o := outs[r]
		checkStatuses(t, o, http.StatusConflict)
		c := countStatus(o)
		t.Logf("%s: POST answers %v", room, c)
		if c[http.StatusCreated] == 0 {
			t.Errorf("%s: no publish was answered 201", room)
		}
		if c[http.StatusCreated] == 1 {
			single++
		}
		if got, want := c[http.StatusCreated]+c[http.StatusConflict], perName; got != want {
			t.Errorf("%s: %d answers were 201 or 409, want %d (%v)", room, got, want, o)
		}
		m := byRoom[room]
		if m == nil {
			t.Errorf("%s: no manifest", room)
			continue
		}
		checkAccepted(t, map[string]*timeline.Manifest{room: m}, o)
		reasons := publishesIn(map[string]*timeline.Manifest{room: m})
		if got, want := len(reasons), perName; got != want {
			t.Errorf("%s: %d publishes journaled, want %d (each POST that reached setup)", room, got, want)
		}
		// The survivor: the only publish not replaced, answered 201, ended
		// by its client, with both its tracks.
		var survivors []string
		for id, why := range reasons {
			if why != "replaced by a new publish of the same participant" {
				survivors = append(survivors, id)
			}
		}
		if len(survivors) != 1 {
			t.Errorf("%s: want exactly one publish not replaced; got:\n%s", room, describe(m, o))
			continue
		}
		won := survivors[0]
		if got, want := reasons[won], "client ended (DELETE)"; got != want {
			t.Errorf("%s: the surviving publish ended with %q, want %q", room, got, want)
		}
		if got, want := tracksByPublish(map[string]*timeline.Manifest{room: m})[won], []string{"alice/audio", "alice/video"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: the surviving publish recorded %v, want %v", room, got, want)
		}
	}
	t.Logf("rooms where exactly one of the %d simultaneous POSTs was answered 201: %d of %d", perName, single, rooms)
}

// TestStressRepublishAndDelete: one participant republishes every 0–40
// ms, and each publisher hangs up (DELETE, or dropping its POST) at a random
// instant between making its offer and its first media, so that DELETEs,
// replacements and track setups race. Every file decodes, every accepted
// publish is in the manifest, nothing leaks.
func TestStressRepublishAndDelete(t *testing.T) {
	const n = 8
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	t.Logf("seed %d", seed)
	cfg := stressPublisher("", "bob", 2*time.Second, 0)
	prepare(t, cfg)
	g := newStressRig(t, capture.Config{Grace: 500 * time.Millisecond, JitterLatency: 100 * time.Millisecond})
	outs := make([]outcome, n)
	var wg sync.WaitGroup
	at := time.Duration(0)
	for i := range n {
		c := cfg
		c.Endpoint, c.Seed = g.srv.URL+"/whip/churn", int64(i+1)
		hangup := time.Duration(rng.Int64N(int64(300 * time.Millisecond)))
		start := at
		at += time.Duration(rng.Int64N(int64(40 * time.Millisecond)))
		wg.Go(func() {
			time.Sleep(start)
			ctx, cancel := context.WithTimeout(t.Context(), hangup)
			defer cancel()
			outs[i] = publishOnce(ctx, t, c)
		})
	}
	wg.Wait()
	// After the churn, the participant publishes once more and stays: that
	// publish records both tracks.
	c := cfg
	c.Endpoint, c.Seed = g.srv.URL+"/whip/churn", n
	outs = append(outs, publishOnce(t.Context(), t, c))
	select {
	case <-g.ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the session did not end")
	}
	g.closeAndCheckLeaks(t)
	checkStatuses(t, outs, http.StatusConflict)
	ms := sessionsOnDisk(t, g.dir)
	if got, want := len(ms), 1; got != want {
		t.Fatalf("sessions: %d, want %d", got, want)
	}
	withTracks := 0
	for id, lanes := range tracksByPublish(ms) {
		if id != outs[n].publish && len(lanes) > 0 {
			withTracks++
		}
	}
	t.Logf("POST answers %v (0: the client hung up before the answer); %d publishes ended after their first tracks started", countStatus(outs), withTracks)
	checkAccepted(t, ms, outs)
	for id, why := range publishesIn(ms) {
		if why == "" || why == "recorder stopped" {
			t.Errorf("publish %s: end reason %q, want the reason it ended", id, why)
		}
	}
	last := outs[n]
	if last.status != http.StatusCreated || last.err != nil {
		t.Errorf("the last publisher: %d %v, want 201 and a clean end", last.status, last.err)
	} else if got, want := tracksByPublish(ms)[last.publish], []string{"bob/audio", "bob/video"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the last publish recorded %v, want %v", got, want)
	}
}

// TestStressSessionEndRacesPublish: with a grace period of 5 ms, each
// publisher of a room POSTs 0–10 ms after the previous one hung up, so
// that the session's end races the next publish. Each publish answered 201
// is in exactly one session, with both its tracks; every session is
// finalized and told through the hook; nothing leaks.
func TestStressSessionEndRacesPublish(t *testing.T) {
	const n = 8
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 2))
	t.Logf("seed %d", seed)
	var cfgs []publisher.Config
	for i := range n {
		cfgs = append(cfgs, stressPublisher("", fmt.Sprintf("p%d", i), 700*time.Millisecond, int64(i+1)))
	}
	prepare(t, cfgs...)
	g := newStressRig(t, capture.Config{Grace: 5 * time.Millisecond, JitterLatency: 100 * time.Millisecond})
	outs := make([]outcome, n)
	for i, c := range cfgs {
		c.Endpoint = g.srv.URL + "/whip/relay"
		time.Sleep(time.Duration(rng.Int64N(int64(10 * time.Millisecond))))
		outs[i] = publishOnce(t.Context(), t, c)
	}
	// Let the last session's grace run out.
	deadline := time.Now().Add(10 * time.Second)
	for g.rec.Stats().ActiveSessions > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	g.closeAndCheckLeaks(t)
	checkStatuses(t, outs)
	for _, o := range outs {
		if o.err != nil {
			t.Errorf("%s: %v", o.name, o.err)
		}
	}
	ms := sessionsOnDisk(t, g.dir)
	if got := len(g.ended); got != len(ms) {
		t.Errorf("%d sessions ended through the hook, %d on disk", got, len(ms))
	}
	t.Logf("%d publishers one after the other made %d sessions", n, len(ms))
	checkAccepted(t, ms, outs)
	for id, lanes := range tracksByPublish(ms) {
		if len(lanes) != 2 {
			t.Errorf("publish %s recorded %v, want audio and video", id, lanes)
		}
	}
}

// TestStressCloseDuringSetup: the recorder is closed (as on SIGTERM) while
// publishes are being set up. Each POST is answered 201 or 503 (with
// Retry-After), never 400 or 500; Close returns in time with nothing
// abandoned; every accepted publish is in a finalized session; nothing
// leaks; a POST after Close is refused with 503.
func TestStressCloseDuringSetup(t *testing.T) {
	const n = 6
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 3))
	t.Logf("seed %d", seed)
	var cfgs []publisher.Config
	for i := range n {
		cfgs = append(cfgs, stressPublisher("", fmt.Sprintf("c%d", i), 3*time.Second, int64(i+1)))
	}
	prepare(t, cfgs...)
	g := newStressRig(t, capture.Config{Grace: time.Minute, JitterLatency: 100 * time.Millisecond})
	outs := make([]outcome, n)
	var wg sync.WaitGroup
	for i := range cfgs {
		cfgs[i].Endpoint = fmt.Sprintf("%s/whip/room%d", g.srv.URL, i%2)
		c := cfgs[i]
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 20 * time.Millisecond)
			// A publish closed after its 201 but before it connected
			// would wait for its ICE timeout: hang up.
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			outs[i] = publishOnce(ctx, t, c)
		})
	}
	// Close once the first publish is being set up, a random moment later.
	for g.rec.Stats().ActivePublishes == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(time.Duration(rng.Int64N(int64(100 * time.Millisecond))))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.rec.Close(ctx); err != nil {
		t.Errorf("close during setup: %v", err)
	}
	wg.Wait()
	after := publishOnce(t.Context(), t, cfgs[0])
	g.closeAndCheckLeaks(t)
	if got, want := after.status, http.StatusServiceUnavailable; got != want {
		t.Errorf("POST after close: %d (%v), want %d", got, after.err, want)
	}
	checkStatuses(t, outs, http.StatusServiceUnavailable)
	for _, o := range outs {
		if o.status == 0 {
			t.Errorf("%s: no answer to the POST: %v", o.name, o.err)
		}
	}
	ms := sessionsOnDisk(t, g.dir)
	c := countStatus(outs)
	t.Logf("POST answers %v; %d of the 503s were publishes ended while being set up", c, len(publishesIn(ms))-c[http.StatusCreated])
	checkAccepted(t, ms, outs)
	for id, why := range publishesIn(ms) {
		if why != "recorder closing" && why != "client ended (DELETE)" {
			t.Errorf("publish %s ended with %q, want the recorder closing", id, why)
		}
	}
}
