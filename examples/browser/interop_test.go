package browser_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/internal/marks"
	"github.com/tapedeck/tapedeck/timeline"
)

// The interop tests publish with WHIP clients this project did not write,
// from npm (examples/browser/interop/package.json, installed by `make
// deps`), in headless Chromium, from a page on another origin than the
// recorder's, with a bearer token: @eyevinn/whip-web-client (with and without
// trickle ICE) and whip-whep by the WHIP RFC's author (trickle, an ICE
// restart, and TURN-relayed candidates through coturn).

const interopToken = "interop-t0ken"

// interopRig is a recorder on one loopback origin and a "customer" web app on
// another, serving the clients' pages and the npm packages.
type interopRig struct {
	rec      *capture.Recorder
	whip     string // the recorder's origin
	app      string // the page's origin
	sessions chan capture.SessionEnded
	reports  chan map[string]any

	mu    sync.Mutex
	calls []string // "METHOD status" of every WHIP request, in order
}

func startInterop(t *testing.T, ice capture.ICEConfig) *interopRig {
	t.Helper()
	modules := filepath.Join("interop", "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "whip-whep", "whip.js")); err != nil {
		t.Fatalf("the npm clients are not installed (%v): run `make deps` (npm ci in examples/browser/interop)", err)
	}
	g := &interopRig{sessions: make(chan capture.SessionEnded, 4), reports: make(chan map[string]any, 4)}
	app := http.NewServeMux()
	app.Handle("/npm/", http.StripPrefix("/npm/", http.FileServer(http.Dir(modules))))
	for _, f := range []string{"cjs.js", "eyevinn.html", "medooze.html"} {
		app.HandleFunc("/"+f, func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, filepath.Join("interop", f)) })
	}
	app.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
			v = map[string]any{"ok": false, "error": "bad report: " + err.Error()}
		}
		g.reports <- v
	})
	appSrv := httptest.NewServer(app)
	t.Cleanup(appSrv.Close)
	g.app = appSrv.URL

	ice.LoopbackOnly = true
	rec, err := capture.New(capture.Config{
		DataDir: t.TempDir(), Tokens: []string{interopToken}, CORSOrigins: []string{g.app}, Grace: time.Second,
		MinFreeBytes: 32 << 20, HardFloorBytes: 8 << 20, ICE: ice,
		OnSessionEnd: func(_ context.Context, e capture.SessionEnded) { g.sessions <- e },
	}, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	g.rec = rec
	h := rec.Handler()
	whip := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		pre := ""
		if r.Header.Get("Access-Control-Request-Method") != "" {
			pre = " (preflight)"
		}
		g.mu.Lock()
		g.calls = append(g.calls, fmt.Sprintf("%s %d%s", r.Method, sw.code, pre))
		g.mu.Unlock()
		if sw.code >= 400 {
			t.Logf("%s %s answered %d: %s\nrequest headers %v\nbody %q", r.Method, r.URL, sw.code, sw.body.String(), r.Header, body)
		}
	}))
	t.Cleanup(func() {
		whip.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := rec.Close(ctx); err != nil {
			t.Errorf("close recorder: %v", err)
		}
	})
	g.whip = whip.URL
	return g
}

type statusWriter struct {
	http.ResponseWriter
	code int
	body strings.Builder // the start of an error's body
}

func (s *statusWriter) WriteHeader(code int) { s.code = code; s.ResponseWriter.WriteHeader(code) }

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code >= 400 && s.body.Len() < 512 {
		s.body.Write(b)
	}
	return s.ResponseWriter.Write(b)
}

// count returns how many WHIP requests were answered "METHOD status".
func (g *interopRig) count(call string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, c := range g.calls {
		if c == call {
			n++
		}
	}
	return n
}

// publish opens page on the app's origin with the query q and waits for its
// report and the session's end.
func (g *interopRig) publish(t *testing.T, page string, q url.Values, d time.Duration) (map[string]any, capture.SessionEnded) {
	t.Helper()
	q.Set("token", interopToken)
	q.Set("ms", fmt.Sprint(d.Milliseconds()))
	ctx, cancel := context.WithTimeout(context.Background(), d+90*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runBrowser(ctx, t, chromiumPath(t), g.app+"/"+page+"?"+q.Encode(), d+40*time.Second) }()
	var rep map[string]any
	select {
	case rep = <-g.reports:
	case err := <-done:
		t.Fatalf("chromium ended without a report: %v", err)
	case <-ctx.Done():
		t.Fatal("no report from the page")
	}
	cancel()
	<-done
	if ok, _ := rep["ok"].(bool); !ok {
		t.Fatalf("the page failed: %v\nWHIP requests: %v", rep["error"], g.calls)
	}
	select {
	case s := <-g.sessions:
		return rep, s
	case <-time.After(30 * time.Second):
		t.Fatal("the session did not end after the client's DELETE")
	}
	return nil, capture.SessionEnded{}
}

// checkPublished checks a session made by one browser publish: one
// participant, one track on each lane, ended as endReason, every file
// decodes; it logs the
// time from POST to the first recorded packet and returns the largest hole
// in the recorded video.
func checkPublished(t *testing.T, s capture.SessionEnded, who, endReason string) (m *timeline.Manifest, gap float64) {
	t.Helper()
	f, err := os.Open(filepath.Join(s.Dir, capture.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err = timeline.ParseManifest(f)
	if err != nil {
		t.Fatal(err)
	}
	var lanes []string
	for _, l := range m.Lanes {
		lanes = append(lanes, fmt.Sprintf("%s:%d", l.ID, len(l.Tracks)))
		for _, tr := range l.Tracks {
			for _, sg := range tr.Segments {
				p := filepath.Join(s.Dir, sg.Path)
				if err := marks.DecodeStrict(p); err != nil {
					t.Error(err)
				}
				if l.Kind == timeline.Video {
					pts, _, err := marks.Packets(p, "v")
					if err != nil {
						t.Fatal(err)
					}
					for i := 1; i < len(pts); i++ {
						gap = max(gap, pts[i]-pts[i-1])
					}
				}
			}
		}
	}
	sort.Strings(lanes)
	if got, want := strings.Join(lanes, " "), who+"/audio:1 "+who+"/video:1"; got != want {
		t.Errorf("lanes:tracks %q, want %q", got, want)
	}
	for _, p := range m.Participants {
		for _, pub := range p.Publishes {
			if got, want := pub.EndReason, endReason; got != want {
				t.Errorf("publish %s ended with %q, want %q", pub.ID, got, want)
			}
			for _, l := range m.Lanes {
				for _, tr := range l.Tracks {
					if tr.Publish == pub.ID && len(tr.Segments) > 0 {
						t.Logf("%s %s: POST to first recorded packet %v", pub.ID, l.Kind,
							time.Duration(tr.Segments[0].FirstArrivalUnixNS-pub.StartUnixNS).Round(time.Millisecond))
					}
				}
			}
		}
	}
	return m, gap
}

// TestEyevinnClient publishes with @eyevinn/whip-web-client from another
// origin, without and with trickle ICE. Without, it waits for its candidates
// and POSTs; with, it probes OPTIONS for PATCH in Access-Control-Allow-Methods,
// POSTs at once and trickles each candidate with PATCH, sending the
// entity-tag in an ETag field (as the WHIP drafts it was written to did).
func TestEyevinnClient(t *testing.T) {
	for _, trickle := range []bool{false, true} {
		t.Run(fmt.Sprintf("trickle=%v", trickle), func(t *testing.T) {
			g := startInterop(t, capture.ICEConfig{})
			who := "eyevinn"
			q := url.Values{"endpoint": {g.whip + "/whip/interop?participant=" + who}}
			if trickle {
				q.Set("trickle", "1")
			}
			rep, s := g.publish(t, "eyevinn.html", q, 6*time.Second)
			t.Logf("client: %v; WHIP requests: %v", rep, g.calls)
			if res, _ := rep["resource"].(string); !strings.HasPrefix(res, g.whip+"/whip/interop/") {
				t.Errorf("the client read Location %q", res)
			}
			if etag, _ := rep["etag"].(string); !strings.HasPrefix(etag, `"`) {
				t.Errorf("the client read ETag %q", etag)
			}
			if got, want := rep["trickle"], trickle; got != want {
				t.Errorf("the client's trickle mode %v, want %v (from OPTIONS' Access-Control-Allow-Methods)", got, want)
			}
			if got := g.count("POST 201"); got != 1 {
				t.Errorf("POST 201: %d, want 1", got)
			}
			if got := g.count("DELETE 200"); got != 1 {
				t.Errorf("DELETE 200: %d, want 1", got)
			}
			if trickle && g.count("PATCH 204") == 0 {
				t.Errorf("no trickled candidate was accepted: %v", g.calls)
			}
			checkPublished(t, s, who, "client ended (DELETE)")
		})
	}
}

// TestWhipWhepClient publishes with whip-whep (medooze) from another origin:
// it POSTs an offer without candidates and trickles them with PATCH,
// If-Match the ETag; after 3 s it restarts ICE (If-Match "*", 200 with the
// recorder's new fragment and ETag) and trickles again. The recording goes
// on in the same track with no hole beyond the restart.
func TestWhipWhepClient(t *testing.T) {
	g := startInterop(t, capture.ICEConfig{})
	who := "medooze"
	rep, s := g.publish(t, "medooze.html", url.Values{
		"endpoint": {g.whip + "/whip/interop?participant=" + who}, "restart": {"3000"},
	}, 7*time.Second)
	t.Logf("client: %v; WHIP requests: %v", rep, g.calls)
	if rep["restarted"] == "" || rep["restarted"] == rep["etag"] {
		t.Errorf("ETag after the restart %v, before %v: want a new one", rep["restarted"], rep["etag"])
	}
	if got, want := rep["state"], "connected"; got != want {
		t.Errorf("connection state after the restart %v, want %v", got, want)
	}
	if g.count("PATCH 204") == 0 || g.count("PATCH 200") != 1 {
		t.Errorf("want trickle PATCHes (204) and one restart (200): %v", g.calls)
	}
	// whip-whep's stop() closes its connection before its DELETE: the
	// publish ends with the connection, and the DELETE finds it gone (404).
	_, gap := checkPublished(t, s, who, "connection closed")
	t.Logf("largest hole in the recorded video: %.0f ms", gap*1000)
	if gap > 0.5 {
		t.Errorf("largest hole in the recorded video %.0f ms: the restart cost more than half a second", gap*1000)
	}
}

// freeUDPPort returns a loopback UDP port that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// TestTURNRelay: coturn on loopback with a shared secret; the recorder gives
// the client the TURN server with credentials computed from that secret in a
// Link header, and the client (whip-whep in Chromium, relay candidates only)
// connects through it.
func TestTURNRelay(t *testing.T) {
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		t.Fatal("coturn's turnserver is not installed: run `make deps` (apt-get install coturn)")
	}
	port := freeUDPPort(t)
	const secret = "turn-s3cret"
	ctx, cancel := context.WithCancel(context.Background())
	turn := exec.CommandContext(ctx, bin, "-n", "--listening-ip=127.0.0.1", fmt.Sprintf("--listening-port=%d", port),
		"--relay-ip=127.0.0.1", "--use-auth-secret", "--static-auth-secret="+secret, "--realm=tapedeck",
		"--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls", "--no-tcp-relay", "--log-file=stdout",
		"--min-port=49152", "--max-port=65535", "--pidfile="+filepath.Join(t.TempDir(), "turn.pid"))
	var out strings.Builder
	turn.Stdout, turn.Stderr = &out, &out
	if err := turn.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = turn.Wait()
		if t.Failed() {
			t.Logf("turnserver:\n%s", lastLines(out.String(), 30))
		}
	})
	g := startInterop(t, capture.ICEConfig{
		Servers:    []capture.ICEServer{{URL: fmt.Sprintf("turn:127.0.0.1:%d?transport=udp", port)}},
		TURNSecret: secret, TURNTTL: time.Hour,
	})
	who := "relayed"
	rep, s := g.publish(t, "medooze.html", url.Values{"endpoint": {g.whip + "/whip/interop?participant=" + who}, "relay": {"1"}}, 5*time.Second)
	t.Logf("client: %v", rep)
	if sel, _ := rep["selected"].(string); !strings.HasPrefix(sel, "udp relay") {
		t.Errorf("the client's selected pair %q, want its relayed candidate", sel)
	}
	servers, _ := rep["iceServers"].([]any)
	if len(servers) != 1 || !strings.Contains(fmt.Sprint(servers[0]), ":"+who) {
		t.Errorf("the client took ICE servers %v from the Link header, want the TURN server with REST credentials for %s", servers, who)
	}
	checkPublished(t, s, who, "connection closed")
}
