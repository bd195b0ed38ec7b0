package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/examples/publisher"
)

// TestControlAPI lists a live session through the control API and stops
// it: the session ends at once, without its grace period.
func TestControlAPI(t *testing.T) {
	ended := make(chan capture.SessionEnded, 1)
	rec, err := capture.New(capture.Config{DataDir: t.TempDir(), Grace: time.Minute, MinFreeBytes: 32 << 20, HardFloorBytes: 8 << 20,
		ICE: capture.ICEConfig{LoopbackOnly: true}, OnSessionEnd: func(_ context.Context, s capture.SessionEnded) { ended <- s }}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := rec.Close(ctx); err != nil {
			t.Errorf("close recorder: %v", err)
		}
	})
	mux := http.NewServeMux()
	mux.Handle("/whip/", rec.Handler())
	controlAPI(mux, rec, nil, "", "adm1n", false, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	call := func(method, path, token string) (int, map[string]any) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	if code, _ := call("GET", "/api/sessions", ""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	if code, _ := call("GET", "/api/sessions", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", code)
	}
	if code, _ := call("DELETE", "/api/sessions/nothing", "adm1n"); code != http.StatusNotFound {
		t.Errorf("stop a room without a session: %d, want 404", code)
	}
	cfg := publisher.Config{Endpoint: srv.URL + "/whip/ops", Participant: "jo", Duration: 30 * time.Second, Video: publisher.VP8,
		Audio: true, Width: 320, Height: 240, Bitrate: 300_000}
	if _, err := publisher.PrepareMedia(t.Context(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := publisher.Run(t.Context(), cfg, nil); done <- err }()
	var sessions []any
	for i := 0; i < 100; i++ {
		code, v := call("GET", "/api/sessions", "adm1n")
		if code != http.StatusOK {
			t.Fatalf("list: %d %v", code, v)
		}
		sessions, _ = v["sessions"].([]any)
		if len(sessions) == 1 {
			s := sessions[0].(map[string]any)
			pubs, _ := s["publishes"].([]any)
			if len(pubs) == 1 {
				if tracks, _ := pubs[0].(map[string]any)["tracks"].([]any); len(tracks) == 2 {
					break
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(sessions) != 1 {
		t.Fatalf("sessions listed: %v", sessions)
	}
	stopped := time.Now()
	if code, v := call("DELETE", "/api/sessions/ops", "adm1n"); code != http.StatusAccepted {
		t.Fatalf("stop: %d %v", code, v)
	}
	select {
	case s := <-ended:
		if len(s.Manifest.Lanes) != 2 {
			t.Errorf("stopped session has %d lanes, want 2", len(s.Manifest.Lanes))
		}
		t.Logf("session finalized %v after the stop", time.Since(stopped).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the stopped session was not finalized (grace period not skipped?)")
	}
	<-done
}

// TestControlAPIJobs follows a session's post-call job through the control
// API of a real `tapedeck serve` (embedded NATS, local store), then queues
// it again: the job stays done and nothing is redone.
func TestControlAPIJobs(t *testing.T) {
	bin := buildSelf(t)
	p := startServeProc(t, bin)
	cfg := publisher.Config{Endpoint: p.base + "/whip/jobs", Participant: "kim", Duration: 3 * time.Second, Video: publisher.VP8,
		Audio: true, Width: 320, Height: 240, Bitrate: 300_000}
	if _, err := publisher.PrepareMedia(t.Context(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = publisher.Run(t.Context(), cfg, nil) }()
	var session string
	for i := 0; i < 100 && session == ""; i++ {
		var v struct {
			Sessions []capture.SessionInfo `json:"sessions"`
		}
		if code, body := get(t, p.base+"/api/sessions"); code == 200 {
			_ = json.Unmarshal([]byte(body), &v)
		}
		if len(v.Sessions) == 1 {
			session = v.Sessions[0].Session
		}
		time.Sleep(100 * time.Millisecond)
	}
	if session == "" {
		t.Fatal("the session never showed in /api/sessions")
	}
	jobURL := p.base + "/api/jobs/jobs/" + session
	var st struct {
		Done     time.Time                  `json:"done"`
		Uploaded time.Time                  `json:"uploaded"`
		Renders  map[string]json.RawMessage `json:"renders"`
		Error    string                     `json:"error"`
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		code, body := get(t, jobURL)
		if code != 200 {
			t.Fatalf("job state: %d %s", code, body)
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		if !st.Done.IsZero() || st.Error != "" {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if st.Done.IsZero() {
		t.Fatalf("job not done: %+v", st)
	}
	if st.Uploaded.IsZero() || len(st.Renders) == 0 {
		t.Errorf("job done without upload or render: %+v", st)
	}
	resp, err := http.Post(jobURL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusAccepted; got != want {
		t.Fatalf("re-run: %d, want %d", got, want)
	}
	resp, err = http.Post(p.base+"/api/jobs/jobs/..%2F..%2Fetc", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusAccepted {
		t.Error("re-run of an escaping session name accepted")
	}
	if _, m := get(t, p.base+"/metrics"); !strings.Contains(m, `tapedeck_job_runs_total{outcome="done",stage="render"} 1`) ||
		!strings.Contains(m, "tapedeck_renders_total 1") {
		t.Errorf("/metrics lacks the finished render job run or the render:\n%s", grepLines(m, "tapedeck_"))
	}
	done := st.Done
	time.Sleep(2 * time.Second)
	_, body := get(t, jobURL)
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Done.Equal(done) {
		t.Errorf("re-running a finished job changed it: done %v -> %v", done, st.Done)
	}
	if code, list := get(t, p.base+"/api/jobs?limit=5"); code != 200 || !strings.Contains(list, session) {
		t.Errorf("GET /api/jobs: %d, without the session: %s", code, list)
	}

	// Re-render with other edits and profile; bad requests are refused first.
	post := func(body string) (int, string) {
		resp, err := http.Post(jobURL+"/renders", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, bad := range []struct{ body, says string }{
		{`{"renders":[]}`, "no render asked"},
		{`{"renders":[{"name":"x","profile":"mp5"}]}`, "mp5"},
		{`{"renders":[{"name":"x","layout":"diagonal"}]}`, "diagonal"},
		{`{"renders":[{"name":"x","edits":"layouts:\n  - at: 0\n    type: grid\n    bogus: 1\n"}]}`, "bogus"},
		{`{"renders":[{"name":"../x"}]}`, "render name"},
		{`{"renders":[{"name":"x","profile":"mp4-720p","export":{}}]}`, "an export has no profile"},
		{`{"renders":[{"name":"x","export":{"no_audio":true,"no_video":true}}]}`, "x:"},
	} {
		if code, b := post(bad.body); code != http.StatusBadRequest || !strings.Contains(b, bad.says) {
			t.Errorf("re-render %s: %d %s; want an error saying %q", bad.body, code, b, bad.says)
		}
	}
	if code, b := post(`{"renders":[{"name":"audio-only","profile":"audio"}]}`); code != http.StatusAccepted {
		t.Fatalf("re-render: %d %s", code, b)
	}
	var st2 struct {
		Done    time.Time                  `json:"done"`
		Renders map[string]json.RawMessage `json:"renders"`
	}
	deadline = time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		_, body := get(t, jobURL)
		_ = json.Unmarshal([]byte(body), &st2)
		if !st2.Done.IsZero() && st2.Renders["audio-only"] != nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if st2.Renders["audio-only"] == nil || st2.Done.IsZero() {
		t.Fatalf("re-render did not finish: %+v", st2)
	}
	if len(st2.Renders) < 2 {
		t.Errorf("re-render lost the first render: %v", st2.Renders)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
