package capture_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/examples/publisher"
)

// fakeRooms is a cluster of one room answer, recording what the recorder
// tells it.
type fakeRooms struct {
	mu       sync.Mutex
	claim    capture.RoomClaim
	err      error
	owner    string // Locate's answer
	claims   int
	releases []string // "room/session how"
}

func (f *fakeRooms) Claim(_ context.Context, room string, _ bool) (capture.RoomClaim, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claims++
	return f.claim, f.err
}

func (f *fakeRooms) Locate(context.Context, string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.owner, nil
}

func (f *fakeRooms) Release(_ context.Context, room, session string, how capture.RoomRelease) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.releases = append(f.releases, room+"/"+session+" "+[]string{"ended", "handover", "unused"}[how])
}

func (f *fakeRooms) released() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.releases...)
}

func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func send(t *testing.T, method, url, ctype, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := noRedirect().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestRoomElsewhere: a publish of a room another recorder records is
// answered with a 307 to it, same path and query, and nothing is recorded
// here; PATCH and DELETE of a publish this recorder does not have go there
// too. With Config.Elsewhere, that answers instead, with the offer read.
func TestRoomElsewhere(t *testing.T) {
	rooms := &fakeRooms{claim: capture.RoomClaim{Elsewhere: "http://127.0.0.1:9"}, owner: "http://127.0.0.1:9"}
	r := startRecorder(t, capture.Config{Rooms: rooms})
	offer := validOffer(t)
	resp := send(t, "POST", r.base+"/whip/standup?participant=alice", "application/sdp", offer)
	if got, want := resp.StatusCode, http.StatusTemporaryRedirect; got != want {
		t.Fatalf("POST: %d, want %d", got, want)
	}
	if got, want := resp.Header.Get("Location"), "http://127.0.0.1:9/whip/standup?participant=alice"; got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	for _, m := range []string{"PATCH", "DELETE"} {
		resp := send(t, m, r.base+"/whip/standup/0123456789abcdef", "application/trickle-ice-sdpfrag", "a=end-of-candidates\r\n")
		if got, want := resp.StatusCode, http.StatusTemporaryRedirect; got != want {
			t.Errorf("%s: %d, want %d", m, got, want)
		}
		if got, want := resp.Header.Get("Location"), "http://127.0.0.1:9/whip/standup/0123456789abcdef"; got != want {
			t.Errorf("%s: Location %q, want %q", m, got, want)
		}
	}
	if entries, _ := os.ReadDir(r.dataDir); len(entries) != 0 {
		t.Errorf("the data folder holds %d entries, want none", len(entries))
	}
	if got := r.rec.Stats().Elsewhere; got != 3 {
		t.Errorf("Stats.Elsewhere = %d, want 3", got)
	}

	var gotBody string
	r2 := startRecorder(t, capture.Config{Rooms: rooms, Elsewhere: func(w http.ResponseWriter, req *http.Request, owner string, body []byte) {
		gotBody = string(body)
		w.WriteHeader(http.StatusTeapot)
	}})
	if resp := send(t, "POST", r2.base+"/whip/standup?participant=alice", "application/sdp", offer); resp.StatusCode != http.StatusTeapot {
		t.Errorf("POST with an Elsewhere hook: %d, want the hook's %d", resp.StatusCode, http.StatusTeapot)
	}
	if gotBody != offer {
		t.Error("the Elsewhere hook did not get the offer")
	}

	// A claim that cannot be confirmed: 503 with Retry-After.
	rooms.mu.Lock()
	rooms.claim, rooms.err = capture.RoomClaim{}, errors.New("lease unconfirmed")
	rooms.mu.Unlock()
	resp = send(t, "POST", r.base+"/whip/standup?participant=alice", "application/sdp", offer)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("POST when the claim fails: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestRoomContinuedPart: a recorder told to record a room as part 2 of a
// session another recorder started records it in a folder named by that
// session, with track names of its own ("p2t1"), a manifest that says part
// 2 and the node, and tells the cluster when the session ends. A third part
// on the same recorder gets a folder of its own.
func TestRoomContinuedPart(t *testing.T) {
	const session = "20260101T000000Z-abcdef"
	rooms := &fakeRooms{claim: capture.RoomClaim{Session: session, Part: 2, Node: "beta"}}
	r := startRecorder(t, capture.Config{Rooms: rooms, Grace: 500 * time.Millisecond})
	cfg := publisher.Config{Endpoint: r.base + "/whip/standup", Participant: "alice", Duration: 2 * time.Second,
		Video: publisher.VP8, Audio: true, Width: 320, Height: 240, Bitrate: 300_000}
	if _, err := publisher.Run(t.Context(), cfg, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	s := r.waitSession(t, 15*time.Second)
	if got, want := filepath.Base(s.Dir), session; got != want {
		t.Errorf("folder %s, want %s", got, want)
	}
	m := s.Manifest
	if m.Session != session || m.Part != 2 || m.Node != "beta" {
		t.Errorf("manifest: session %s part %d node %q, want %s, 2, beta", m.Session, m.Part, m.Node, session)
	}
	for _, l := range m.Lanes {
		for _, tr := range l.Tracks {
			if !strings.HasPrefix(tr.ID, "p2t") {
				t.Errorf("lane %s: track %q, want a p2t name", l.ID, tr.ID)
			}
			for _, sg := range tr.Segments {
				if !strings.Contains(sg.Path, "-"+tr.ID+"-") {
					t.Errorf("segment %s does not carry its track's name", sg.Path)
				}
			}
		}
	}
	if got, want := strings.Join(rooms.released(), ";"), "standup/"+session+" ended"; got != want {
		t.Errorf("releases %q, want %q", got, want)
	}

	rooms.mu.Lock()
	rooms.claim.Part = 3
	rooms.mu.Unlock()
	if _, err := publisher.Run(t.Context(), cfg, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	s = r.waitSession(t, 15*time.Second)
	if got, want := filepath.Base(s.Dir), session+".p3"; got != want {
		t.Errorf("a third part on the same recorder: folder %s, want %s", got, want)
	}
}

// TestLoseRoom: a room lost to another recorder ends its publishes (their
// clients reconnect elsewhere) and finalizes the part, handed over.
func TestLoseRoom(t *testing.T) {
	const session = "20260101T000000Z-fedcba"
	rooms := &fakeRooms{claim: capture.RoomClaim{Session: session, Part: 1, Node: "alpha"}}
	r := startRecorder(t, capture.Config{Rooms: rooms, Grace: 10 * time.Second})
	cfg := publisher.Config{Endpoint: r.base + "/whip/board", Participant: "bob", Duration: 30 * time.Second,
		Video: publisher.VP8, Audio: true, Width: 320, Height: 240, Bitrate: 300_000}
	done := make(chan error, 1)
	go func() { _, err := publisher.Run(t.Context(), cfg, testLogger(t)); done <- err }()
	deadline := time.Now().Add(20 * time.Second)
	for r.rec.Stats().ActiveTracks < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the publish is not recorded")
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.rec.LoseRoom("board", "another-session") // not this session: nothing happens
	time.Sleep(200 * time.Millisecond)
	if got := r.rec.Stats().ActivePublishes; got != 1 {
		t.Fatalf("after losing another session: %d publishes, want 1", got)
	}
	r.rec.LoseRoom("board", session)
	s := r.waitSession(t, 15*time.Second)
	if got, want := s.Manifest.Participants[0].Publishes[0].EndReason, capture.ErrRoomMoved.Error(); got != want {
		t.Errorf("end reason %q, want %q", got, want)
	}
	if got, want := strings.Join(rooms.released(), ";"), "board/"+session+" handover"; got != want {
		t.Errorf("releases %q, want %q", got, want)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("the publisher's connection was not ended")
		}
	case <-time.After(20 * time.Second):
		t.Error("the publisher did not notice its publish ended")
	}
}

// TestRoomClaimUnused: a claim granted for a publish the recorder then
// refuses (here: its publish limit) is given back, so that no part is
// left waiting for files that will never come.
func TestRoomClaimUnused(t *testing.T) {
	rooms := &fakeRooms{claim: capture.RoomClaim{Session: "20260101T000000Z-aaaaaa", Part: 1, Node: "alpha"}}
	r := startRecorder(t, capture.Config{Rooms: rooms, MaxPublishes: 1, Grace: 500 * time.Millisecond})
	cfg := publisher.Config{Endpoint: r.base + "/whip/one", Participant: "alice", Duration: 3 * time.Second, Audio: true}
	done := make(chan error, 1)
	go func() { _, err := publisher.Run(t.Context(), cfg, testLogger(t)); done <- err }()
	deadline := time.Now().Add(20 * time.Second)
	for r.rec.Stats().ActivePublishes < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the first publish is not recorded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rooms.mu.Lock()
	rooms.claim.Session = "20260101T000000Z-bbbbbb"
	rooms.mu.Unlock()
	resp := send(t, "POST", r.base+"/whip/two?participant=bob", "application/sdp", validOffer(t))
	if got, want := resp.StatusCode, http.StatusServiceUnavailable; got != want {
		t.Errorf("a publish over the limit: %d, want %d", got, want)
	}
	if got, want := strings.Join(rooms.released(), ";"), "two/20260101T000000Z-bbbbbb unused"; got != want {
		t.Errorf("releases %q, want %q", got, want)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
