package capture_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/examples/publisher"
	"github.com/tapedeck/tapedeck/internal/marks"
	"github.com/tapedeck/tapedeck/timeline"
)

// do sends one request and returns the answer with its body read.
func do(t *testing.T, method, url string, hdr map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestCORS: preflights answer without authentication and create nothing;
// every other answer, errors included, carries the CORS headers for an
// allowed origin and none for another; ICE servers go in Link headers on the
// 201, never on a preflight.
func TestCORS(t *testing.T) {
	rec, err := capture.New(capture.Config{
		DataDir: t.TempDir(), Tokens: []string{"s3cret"}, CORSOrigins: []string{"https://app.example.com"},
		ICE: capture.ICEConfig{LoopbackOnly: true, Servers: []capture.ICEServer{{URL: "turn:127.0.0.1:3478"}}, TURNSecret: "x"},
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, rec)
	srv := httptest.NewServer(rec.Handler())
	defer srv.Close()
	const app = "https://app.example.com"

	resp, _ := do(t, "OPTIONS", srv.URL+"/whip/room", map[string]string{
		"Origin": app, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type",
	}, "")
	if got, want := resp.StatusCode, http.StatusNoContent; got != want {
		t.Fatalf("preflight: %d, want %d", got, want)
	}
	for h, want := range map[string]string{
		"Access-Control-Allow-Origin":  app,
		"Access-Control-Allow-Methods": "POST, PATCH, DELETE, OPTIONS",
		"Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match, ETag",
		"Access-Control-Max-Age":       "7200",
		"Vary":                         "Origin",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("preflight %s: %q, want %q", h, got, want)
		}
	}
	if l := resp.Header.Values("Link"); len(l) != 0 {
		t.Errorf("preflight carries Link headers %v (TURN credentials to an unauthenticated request)", l)
	}
	if n := len(rec.Sessions()); n != 0 {
		t.Errorf("a preflight created %d sessions", n)
	}

	resp, _ = do(t, "OPTIONS", srv.URL+"/whip/room", map[string]string{
		"Origin": "https://evil.example.org", "Access-Control-Request-Method": "POST",
	}, "")
	if got, want := resp.StatusCode, http.StatusForbidden; got != want {
		t.Errorf("preflight from another origin: %d, want %d", got, want)
	}
	if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
		t.Errorf("preflight from another origin allowed %q", v)
	}

	// An error a page must be able to read: 401 with the CORS headers.
	resp, _ = do(t, "POST", srv.URL+"/whip/room?participant=a", map[string]string{"Origin": app, "Content-Type": "application/sdp"}, validOffer(t))
	if got, want := resp.StatusCode, http.StatusUnauthorized; got != want {
		t.Errorf("POST without token: %d, want %d", got, want)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != app {
		t.Errorf("401 Access-Control-Allow-Origin %q, want %q", got, app)
	}
	if got := resp.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, "Location") || !strings.Contains(got, "ETag") || !strings.Contains(got, "Link") {
		t.Errorf("Access-Control-Expose-Headers %q", got)
	}
	// A real OPTIONS (not a preflight) needs the token, like every request.
	resp, _ = do(t, "OPTIONS", srv.URL+"/whip/room", map[string]string{"Origin": app}, "")
	if got, want := resp.StatusCode, http.StatusUnauthorized; got != want {
		t.Errorf("OPTIONS without token: %d, want %d", got, want)
	}
	resp, _ = do(t, "OPTIONS", srv.URL+"/whip/room", map[string]string{"Origin": app, "Authorization": "Bearer s3cret"}, "")
	if got, want := resp.Header.Get("Accept-Post"), "application/sdp"; resp.StatusCode != http.StatusNoContent || got != want {
		t.Errorf("OPTIONS: %d Accept-Post %q, want 204 %q", resp.StatusCode, got, want)
	}

	resp, _ = do(t, "POST", srv.URL+"/whip/room?participant=ann", map[string]string{
		"Origin": app, "Content-Type": "application/sdp", "Authorization": "Bearer s3cret",
	}, validOffer(t))
	if got, want := resp.StatusCode, http.StatusCreated; got != want {
		t.Fatalf("POST: %d, want %d", got, want)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != app {
		t.Errorf("201 Access-Control-Allow-Origin %q", got)
	}
	links := resp.Header.Values("Link")
	if len(links) != 1 || !strings.HasPrefix(links[0], `<turn:127.0.0.1:3478>; rel="ice-server"; username="`) || !strings.Contains(links[0], `:ann"`) {
		t.Errorf("201 Link headers %q, want the TURN server with REST credentials for ann", links)
	}
	if got, want := resp.Header.Get("Accept-Patch"), "application/trickle-ice-sdpfrag"; got != want {
		t.Errorf("201 Accept-Patch %q, want %q", got, want)
	}

	// Another origin's request gets no CORS header (the browser refuses it).
	resp, _ = do(t, "DELETE", srv.URL+"/whip/room/none", map[string]string{"Origin": "https://evil.example.org", "Authorization": "Bearer s3cret"}, "")
	if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
		t.Errorf("another origin's DELETE: Access-Control-Allow-Origin %q", v)
	}
}

// TestPatchRules: a publish set up from a real offer, then every PATCH
// rule of RFC 9725 4.3: content type, malformed fragments, If-Match
// required (428) and current (412), trickle (204, no ETag), ICE restart
// (200, the recorder's new credentials and candidates, a new ETag), and
// the old ETag refused after the restart.
func TestPatchRules(t *testing.T) {
	rec, err := capture.New(capture.Config{DataDir: t.TempDir(), Tokens: []string{"s3cret"}, ICE: capture.ICEConfig{LoopbackOnly: true}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, rec)
	srv := httptest.NewServer(rec.Handler())
	defer srv.Close()
	auth := "Bearer s3cret"
	offer := validOffer(t)
	offerUfrag := regexp.MustCompile(`a=ice-ufrag:(\S+)`).FindStringSubmatch(offer)[1]
	offerPwd := regexp.MustCompile(`a=ice-pwd:(\S+)`).FindStringSubmatch(offer)[1]
	resp, _ := do(t, "POST", srv.URL+"/whip/room?participant=ann", map[string]string{"Content-Type": "application/sdp", "Authorization": auth}, offer)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	loc, etag := srv.URL+resp.Header.Get("Location"), resp.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) {
		t.Fatalf("ETag %q is not a strong entity-tag", etag)
	}
	const cand = "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"
	trickle := "a=ice-ufrag:" + offerUfrag + "\r\na=ice-pwd:" + offerPwd + "\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n" + cand
	restart := "a=ice-ufrag:restart1\r\na=ice-pwd:restartpassword0123456789\r\n"
	frag := map[string]string{"Content-Type": "application/trickle-ice-sdpfrag", "Authorization": auth}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for a, b := range frag {
			m[a] = b
		}
		return m
	}
	steps := []struct {
		name   string
		hdr    map[string]string
		body   string
		status int
	}{
		{"no token", map[string]string{"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": etag}, trickle, 401},
		{"wrong type", map[string]string{"Content-Type": "application/sdp", "Authorization": auth, "If-Match": etag}, trickle, 415},
		{"malformed", with("If-Match", etag), "this is not a fragment", 400},
		{"bad candidate", with("If-Match", etag), "a=ice-ufrag:x\r\na=ice-pwd:y\r\nm=audio 9 RTP/AVP 0\r\na=candidate:broken\r\n", 400},
		{"trickle without If-Match", frag, trickle, 428},
		{"trickle stale", with("If-Match", `"old"`), trickle, 412},
		{"trickle", with("If-Match", etag), trickle, 204},
		{"trickle, ETag in the ETag field (draft clients)", with("ETag", etag), trickle, 204},
		{"restart without If-Match", frag, restart, 428},
		{"restart stale", with("If-Match", `"old"`), restart, 412},
		{"new credentials without If-Match *", with("If-Match", etag), restart, 412},
	}
	for _, s := range steps {
		resp, body := do(t, "PATCH", loc, s.hdr, s.body)
		if got := resp.StatusCode; got != s.status {
			t.Errorf("%s: %d %q, want %d", s.name, got, strings.TrimSpace(body), s.status)
		}
		if s.status == 204 && resp.Header.Get("ETag") != "" {
			t.Errorf("%s: a trickle answer carries an ETag", s.name)
		}
	}
	resp, body := do(t, "PATCH", loc, with("If-Match", "*"), restart)
	if got, want := resp.StatusCode, http.StatusOK; got != want {
		t.Fatalf("restart: %d %q, want %d", got, body, want)
	}
	newTag := resp.Header.Get("ETag")
	if newTag == "" || newTag == etag {
		t.Errorf("restart ETag %q, want a new one (was %q)", newTag, etag)
	}
	if got, want := resp.Header.Get("Content-Type"), "application/trickle-ice-sdpfrag"; got != want {
		t.Errorf("restart Content-Type %q, want %q", got, want)
	}
	for _, want := range []string{"a=ice-ufrag:", "a=ice-pwd:", "a=candidate:", "a=end-of-candidates\r\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("restart answer lacks %q:\n%s", want, body)
		}
	}
	resp, _ = do(t, "PATCH", loc, with("If-Match", etag), trickle)
	if got, want := resp.StatusCode, http.StatusPreconditionFailed; got != want {
		t.Errorf("trickle with the ETag of before the restart: %d, want %d", got, want)
	}
	newTrickle := strings.Replace(strings.Replace(trickle, offerUfrag, "restart1", 1), offerPwd, "restartpassword0123456789", 1)
	resp, _ = do(t, "PATCH", loc, with("If-Match", newTag), newTrickle)
	if got, want := resp.StatusCode, http.StatusNoContent; got != want {
		t.Errorf("trickle in the new ICE session: %d, want %d", got, want)
	}
	resp, _ = do(t, "PATCH", srv.URL+"/whip/room/nosuchpublish", with("If-Match", "*"), restart)
	if got, want := resp.StatusCode, http.StatusNotFound; got != want {
		t.Errorf("PATCH of an unknown publish: %d, want %d", got, want)
	}
}

// firstPacketDelay is, per publish of a manifest, the time from its POST
// (the publish record) to its first recorded media.
func firstPacketDelay(m *timeline.Manifest) map[string]time.Duration {
	out := map[string]time.Duration{}
	starts := map[string]int64{}
	for _, p := range m.Participants {
		for _, pub := range p.Publishes {
			starts[pub.ID] = pub.StartUnixNS
		}
	}
	for _, l := range m.Lanes {
		for _, tr := range l.Tracks {
			if len(tr.Segments) == 0 {
				continue
			}
			d := time.Duration(tr.Segments[0].FirstArrivalUnixNS - starts[tr.Publish])
			if cur, ok := out[tr.Publish]; !ok || d < cur {
				out[tr.Publish] = d
			}
		}
	}
	return out
}

// recordOne runs one publisher against a fresh recorder and returns the
// result and the session's manifest and folder, after checking that both
// lanes were recorded in one track each and that every file decodes.
func recordOne(t *testing.T, rcfg capture.Config, pcfg publisher.Config) (publisher.Result, *timeline.Manifest, string) {
	t.Helper()
	rcfg.Grace = 500 * time.Millisecond
	r := startRecorder(t, rcfg)
	pcfg.Endpoint = r.base + "/whip/interop"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := publisher.Run(ctx, pcfg, testLogger(t))
	if err != nil {
		t.Fatalf("publisher: %v", err)
	}
	s := r.waitSession(t, 30*time.Second)
	m := readManifest(t, s.Dir)
	var lanes []string
	for _, l := range m.Lanes {
		lanes = append(lanes, fmt.Sprintf("%s:%d", l.ID, len(l.Tracks)))
		for _, tr := range l.Tracks {
			for _, sg := range tr.Segments {
				decodeStrict(t, filepath.Join(s.Dir, sg.Path))
			}
		}
	}
	sort.Strings(lanes)
	name := pcfg.Participant
	if got, want := strings.Join(lanes, " "), name+"/audio:1 "+name+"/video:1"; got != want {
		t.Errorf("lanes:tracks %q, want %q", got, want)
	}
	for id, d := range firstPacketDelay(m) {
		t.Logf("publish %s: POST to first recorded packet %v; path %s", id, d.Round(time.Millisecond), res.Path)
	}
	return res, m, s.Dir
}

// TestOBSStyleOffer: an offer without a single candidate, and no PATCH
// ever (what OBS sends): the connection comes up from the publisher's
// connectivity checks alone, and both tracks are recorded.
func TestOBSStyleOffer(t *testing.T) {
	t.Parallel()
	res, _, _ := recordOne(t, capture.Config{}, publisher.Config{
		Participant: "obs", Duration: 3 * time.Second, Video: publisher.VP8, Audio: true, Width: 320, Height: 240, NoCandidates: true,
	})
	if res.Trickled != 0 {
		t.Errorf("trickled %d candidates, want none", res.Trickled)
	}
}

// TestICETCP: a publisher that can only use TCP connects over the
// recorder's passive ICE-TCP port and is recorded.
func TestICETCP(t *testing.T) {
	t.Parallel()
	res, _, _ := recordOne(t, capture.Config{ICE: capture.ICEConfig{TCPPort: -1}}, publisher.Config{
		Participant: "tcp", Duration: 3 * time.Second, Video: publisher.VP8, Audio: true, Width: 320, Height: 240, TCPOnly: true,
	})
	if !strings.HasPrefix(res.Path, "tcp host") || !strings.Contains(res.Path, "→ tcp host") {
		t.Errorf("selected pair %q, want TCP on both sides", res.Path)
	}
}

// TestTrickleAndRestart: the offer goes out without candidates, they follow
// with PATCH, and 2.5 s into the media the publisher restarts ICE. The
// recording goes on in the same track of the same lanes, and the only hole
// in the recorded video is the restart's own duration.
func TestTrickleAndRestart(t *testing.T) {
	t.Parallel()
	res, m, dir := recordOne(t, capture.Config{}, publisher.Config{
		Participant: "tri", Duration: 6 * time.Second, Video: publisher.VP8, Audio: true, Width: 320, Height: 240, FPS: 30,
		Trickle: true, RestartAfter: 2500 * time.Millisecond,
	})
	if res.Trickled == 0 {
		t.Error("no candidate was trickled")
	}
	if res.RestartTook == 0 {
		t.Fatal("the ICE restart did not happen")
	}
	video, _ := m.Lane("tri/video")
	var gap float64
	for _, sg := range video.Tracks[0].Segments {
		pts, _, err := marks.Packets(filepath.Join(dir, sg.Path), "v")
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(pts); i++ {
			gap = max(gap, pts[i]-pts[i-1])
		}
	}
	t.Logf("ICE restart took %v; the largest hole in the recorded video is %.0f ms", res.RestartTook.Round(time.Millisecond), gap*1000)
	if limit := res.RestartTook.Seconds() + 0.3; gap > limit {
		t.Errorf("largest hole in the recorded video %.0f ms, more than the restart (%v) + 300 ms", gap*1000, res.RestartTook)
	}
}
