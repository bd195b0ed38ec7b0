package publisher

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestReconnect publishes to a receiver that goes away mid-call: the
// publisher publishes again on the next endpoint, and the media goes on
// there on the same timeline (the marks keep their instants).
func TestReconnect(t *testing.T) {
	needFFmpeg(t)
	a, b := newTestReceiver(t, false, ""), newTestReceiver(t, false, "")
	defer b.close()
	cfg := Config{Endpoint: a.endpoint(), Endpoints: []string{b.endpoint()}, Reconnect: true, Participant: "alice",
		Duration: 6 * time.Second, Video: VP8, Audio: true, Width: 320, Height: 240, MediaDir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := PrepareMedia(ctx, cfg, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(2 * time.Second)
		a.close()
	}()
	res, err := Run(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := len(res.Attempts), 2; got != want {
		t.Fatalf("%d attempts, want %d: %+v", got, want, res.Attempts)
	}
	first, second := res.Attempts[0], res.Attempts[1]
	if first.Err == "" || !strings.HasPrefix(second.Endpoint, b.srv.URL) || second.Connected.IsZero() || second.Err != "" {
		t.Errorf("attempts %+v, want a failed one on the first receiver, then a connected one on the second", res.Attempts)
	}
	t.Logf("reconnected %v after the first connection ended", second.Connected.Sub(first.Ended).Round(time.Millisecond))
	vt, ok := b.track("video")
	if !ok || vt.packets == 0 {
		t.Fatal("the second receiver got no video")
	}
	// The marks keep their place on the timeline: mark k at Start + k·period,
	// and those sent after the reconnection are after it.
	sent := 0
	for _, m := range res.Marks {
		if got, want := m.At, res.Start.Add(time.Duration(m.Index)*time.Second); !got.Equal(want) {
			t.Errorf("mark %d at %v, want %v", m.Index, got, want)
		}
		if !m.VideoSent.IsZero() && m.VideoSent.After(second.Connected) {
			sent++
		}
	}
	if sent < 2 {
		t.Errorf("%d marks sent after the reconnection, want at least 2", sent)
	}
}

// TestRedirectKeepsToken: a 307 to another host:port is followed with the
// bearer token sent again, and the session's Location resolves against the
// URL that answered.
func TestRedirectKeepsToken(t *testing.T) {
	needFFmpeg(t)
	recv := newTestReceiver(t, false, "s3cret")
	defer recv.close()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Location", recv.srv.URL+req.URL.RequestURI())
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	defer front.Close()
	cfg := Config{Endpoint: front.URL + "/whip/room1", Token: "s3cret", Participant: "alice", Duration: time.Second,
		Audio: true, MediaDir: t.TempDir()}
	res, err := Run(t.Context(), cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := res.Redirects, 1; got != want {
		t.Errorf("%d redirects, want %d", got, want)
	}
	if !strings.HasPrefix(res.Location, recv.srv.URL+"/whip/room1/") {
		t.Errorf("Location %s, want one on the receiver %s", res.Location, recv.srv.URL)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if recv.posts != 1 || recv.deletes != 1 {
		t.Errorf("the receiver got %d POSTs and %d DELETEs, want 1 each (with the token)", recv.posts, recv.deletes)
	}
}
