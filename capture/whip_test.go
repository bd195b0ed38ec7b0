package capture_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
	"github.com/tapedeck/tapedeck/capture"
)

// validOffer makes a real offer with one Opus and one VP8 sendonly track.
func validOffer(t *testing.T) string {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, c := range []webrtc.RTPCodecCapability{{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, {MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}} {
		tr, err := webrtc.NewTrackLocalStaticRTP(c, "x", "y")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

// TestWHIPBadInput sends every kind of bad request and checks the precise
// status, the message, and that nothing was created on disk.
func TestWHIPBadInput(t *testing.T) {
	dir := t.TempDir()
	rec, err := capture.New(capture.Config{DataDir: dir, Tokens: []string{"s3cret"}, ICE: capture.ICEConfig{LoopbackOnly: true}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, rec)
	srv := httptest.NewServer(rec.Handler())
	defer srv.Close()
	offer := validOffer(t)
	g711 := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:0 PCMU/8000\r\na=sendonly\r\n"
	cases := []struct {
		name, method, path, ctype, auth, body string
		status                                int
		msg                                   string
	}{
		{"no token", "POST", "/whip/room?participant=a", "application/sdp", "", offer, 401, "bearer token"},
		{"wrong token", "POST", "/whip/room?participant=a", "application/sdp", "Bearer nope", offer, 401, "bearer token"},
		{"basic auth", "POST", "/whip/room?participant=a", "application/sdp", "Basic czNjcmV0", offer, 401, "bearer token"},
		{"wrong content type", "POST", "/whip/room?participant=a", "application/json", "Bearer s3cret", offer, 415, "application/sdp"},
		{"no content type", "POST", "/whip/room?participant=a", "", "Bearer s3cret", offer, 415, "application/sdp"},
		{"oversized", "POST", "/whip/room?participant=a", "application/sdp", "Bearer s3cret", offer + strings.Repeat("a=x-pad:0\r\n", 8000), 413, "larger than"},
		{"malformed", "POST", "/whip/room?participant=a", "application/sdp", "Bearer s3cret", "this is not SDP", 400, "malformed SDP"},
		{"empty body", "POST", "/whip/room?participant=a", "application/sdp", "Bearer s3cret", "", 400, "SDP"},
		{"no codec we record", "POST", "/whip/room?participant=a", "application/sdp", "Bearer s3cret", g711, 400, "no codec tapedeck records"},
		{"no participant", "POST", "/whip/room", "application/sdp", "Bearer s3cret", offer, 400, "participant is empty"},
		{"participant too long", "POST", "/whip/room?participant=" + strings.Repeat("x", 65), "application/sdp", "Bearer s3cret", offer, 400, "longer than 64"},
		{"participant escapes", "POST", "/whip/room?participant=..%2F..%2Fetc", "application/sdp", "Bearer s3cret", offer, 400, "may only hold"},
		{"participant dot-dot", "POST", "/whip/room?participant=a..b", "application/sdp", "Bearer s3cret", offer, 400, "may only hold"},
		{"room hidden", "POST", "/whip/.room?participant=a", "application/sdp", "Bearer s3cret", offer, 400, "may only hold"},
		{"room escapes", "POST", "/whip/..%2Fx?participant=a", "application/sdp", "Bearer s3cret", offer, 400, "room"},
		{"room too long", "POST", "/whip/" + strings.Repeat("r", 65) + "?participant=a", "application/sdp", "Bearer s3cret", offer, 400, "longer than 64"},
		{"delete unknown", "DELETE", "/whip/room/abcdef", "", "Bearer s3cret", "", 404, "no such publish"},
		{"delete without token", "DELETE", "/whip/room/abcdef", "", "", "", 401, "bearer token"},
		{"patch unknown", "PATCH", "/whip/room/abcdef", "application/trickle-ice-sdpfrag", "Bearer s3cret", "a=candidate", 404, "no such publish"},
		{"patch without token", "PATCH", "/whip/room/abcdef", "application/trickle-ice-sdpfrag", "", "a=candidate", 401, "bearer token"},
		{"get", "GET", "/whip/room", "", "Bearer s3cret", "", 405, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got, want := resp.StatusCode, c.status; got != want {
				t.Fatalf("status = %d, want %d (%s)", got, want, body)
			}
			if !strings.Contains(string(body), c.msg) {
				t.Errorf("body %q does not say %q", body, c.msg)
			}
			if c.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("bad requests created %d entries in the data folder", len(entries))
	}
	if got := rec.Sessions(); len(got) != 0 {
		t.Errorf("bad requests opened sessions: %+v", got)
	}
	// And a good one works, with a Location that DELETE accepts.
	req, _ := http.NewRequest("POST", srv.URL+"/whip/room?participant=a", strings.NewReader(offer))
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusCreated; got != want {
		t.Fatalf("good offer: status %d, want %d: %s", got, want, answer)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/sdp" || !strings.Contains(string(answer), "m=video") {
		t.Fatalf("good offer: content type %q, answer %q", ct, answer)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/whip/room/") {
		t.Fatalf("Location %q", loc)
	}
	del, _ := http.NewRequest("DELETE", srv.URL+loc, nil)
	del.Header.Set("Authorization", "Bearer s3cret")
	resp, err = http.DefaultClient.Do(del)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusOK; got != want {
		t.Errorf("DELETE: status %d, want %d", got, want)
	}
}

// TestAuthRateLimit: after ten failed authentications in a minute, a client
// address is refused with 429 — even with the right token — while other
// requests are unaffected in kind.
func TestAuthRateLimit(t *testing.T) {
	rec, err := capture.New(capture.Config{DataDir: t.TempDir(), Tokens: []string{"s3cret"}, ICE: capture.ICEConfig{LoopbackOnly: true}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, rec)
	srv := httptest.NewServer(rec.Handler())
	defer srv.Close()
	do := func(token string) *http.Response {
		req, _ := http.NewRequest("DELETE", srv.URL+"/whip/room/nothing", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := 0; i < 10; i++ {
		if got, want := do("guess").StatusCode, http.StatusUnauthorized; got != want {
			t.Fatalf("failure %d: status %d, want %d", i+1, got, want)
		}
	}
	resp := do("s3cret")
	if got, want := resp.StatusCode, http.StatusTooManyRequests; got != want {
		t.Fatalf("after 10 failures: status %d, want %d", got, want)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if got := rec.Stats().Refused; got != 1 {
		t.Errorf("refused counter %d, want 1", got)
	}
}
