package postcall_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/storage/storagetest"
)

// TestCallStoredRenderedNotified records a call whose segments rotate every 2 s, with the post-call
// pipeline wired as serve wires it, into a real S3 server (versitygw). Closed segments must be
// uploaded during the call; when the call ends, every raw track, the journal, the manifest and the
// composite (rendered by a real FFmpeg at niceness 10) must be in the bucket with the checksums of
// the local files; the webhook, refused once, must arrive again with a valid signature and working
// links; the local folder must keep only the journal, the manifest and the ledger.
func TestCallStoredRenderedNotified(t *testing.T) {
	ffmpeg := requireTool(t, "ffmpeg")
	requireTool(t, "nice")
	gw := storagetest.StartVersityGW(t)
	store := gw.Open(t, "calls", "prod", storage.Options{})
	_, nc := startNATS(t)
	hook := startWebhook(t, "s3cret", 1)
	renderer := &ffmpegRenderer{ffmpeg: ffmpeg}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	p, err := postcall.New(ctx, nc, store, renderer, postcall.Config{
		Node: "rec1", WorkDir: t.TempDir(), RenderConcurrency: 1,
		Webhook: hook.URL + "/hooks/tapedeck", WebhookSecret: "s3cret", AckWait: 5 * time.Second,
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(runCtx) }()
	defer func() { stop(); <-runDone }()

	// The test's own record of every track file's checksum, taken before the pipeline may delete it.
	var mu sync.Mutex
	sums := map[string]string{}
	inCall := 0 // files already gone from disk when the session ended
	sumOnce := func(dir, rel string) bool {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := sums[rel]; ok {
			return true
		}
		s, err := fileSum(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return false
		}
		sums[rel] = s
		return true
	}
	ended := make(chan capture.SessionEnded, 1)
	rec := startRecorder(t, capture.Config{
		DataDir: t.TempDir(), Grace: time.Second, SegmentDuration: 2 * time.Second,
		OnSegmentClosed: func(ev capture.SegmentClosed) {
			if !sumOnce(ev.Dir, ev.Path) {
				t.Errorf("closed segment %s is not on disk", ev.Path)
			}
			p.SegmentClosed(ev)
		},
		OnSessionEnd: func(ctx context.Context, ev capture.SessionEnded) {
			for _, rel := range postcall.SegmentPaths(ev.Manifest) {
				if !sumOnce(ev.Dir, rel) {
					t.Errorf("segment %s is neither on disk nor seen closed", rel)
				}
				if _, err := os.Stat(filepath.Join(ev.Dir, filepath.FromSlash(rel))); errors.Is(err, fs.ErrNotExist) {
					mu.Lock()
					inCall++
					mu.Unlock()
				}
			}
			p.SessionEnded(ctx, ev)
			ended <- ev
		},
	})
	publish(t, rec.base+"/whip/standup", "alice", 5*time.Second)
	s := waitSession(t, ended, 30*time.Second)

	st, err := p.Wait(ctx, s.Room, s.Session)
	if err != nil {
		t.Fatal(err)
	}
	if st.Done.IsZero() {
		t.Fatalf("job did not finish: %+v", st)
	}
	if st.Uploaded.IsZero() || st.Notified.IsZero() {
		t.Errorf("state misses steps: %+v", st)
	}

	// Raw tracks: every segment of the manifest, stored with the local file's checksum.
	segs := postcall.SegmentPaths(s.Manifest)
	if got, want := len(segs), 4; got < want {
		t.Errorf("%d segments, want at least %d (2 s rotation of a 5 s call, two lanes)", got, want)
	}
	mu.Lock()
	if inCall == 0 {
		t.Errorf("no segment was uploaded and removed during the call")
	}
	mu.Unlock()
	for _, rel := range segs {
		key := storage.SessionPrefix(s.Room, s.Session) + rel
		checkStored(t, store, key, sums[rel])
		if _, err := os.Stat(filepath.Join(s.Dir, filepath.FromSlash(rel))); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still on disk after the job (err %v)", rel, err)
		}
	}
	for _, name := range []string{capture.JournalName, capture.ManifestName} {
		checkStored(t, store, storage.SessionPrefix(s.Room, s.Session)+name, sha256File(t, filepath.Join(s.Dir, name)))
	}
	if _, err := os.Stat(filepath.Join(s.Dir, postcall.LedgerName)); err != nil {
		t.Errorf("no ledger: %v", err)
	}

	// The composite.
	compositeKey := storage.RenderKey(s.Room, s.Session, "default", "composite.mp4")
	renderer.mu.Lock()
	if got, want := len(renderer.sums), 1; got != want {
		t.Fatalf("%d renders, want %d", got, want)
	}
	for _, sum := range renderer.sums {
		checkStored(t, store, compositeKey, sum)
	}
	if got, want := renderer.nices, []int{postcall.DefaultRenderNice}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("FFmpeg ran at niceness %v, want %v", got, want)
	}
	renderer.mu.Unlock()
	local := filepath.Join(t.TempDir(), "composite.mp4")
	if _, err := postcall.Download(ctx, store, compositeKey, local, nil); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(requireTool(t, "ffprobe"), "-v", "error", "-show_entries", "stream=codec_name",
		"-of", "csv=p=0", local).Output()
	if err != nil || strings.TrimSpace(string(out)) != "h264" {
		t.Errorf("stored composite: ffprobe says %q, %v; want one h264 stream", out, err)
	}

	// The webhook: refused once, then delivered, signed, with every file and working links.
	requests, deliveries, bad := hook.snapshot()
	if len(bad) > 0 {
		t.Errorf("webhook receiver rejected deliveries: %v", bad)
	}
	if got, want := requests, 2; got != want {
		t.Errorf("webhook requests = %d, want %d (one refused, one delivered)", got, want)
	}
	if got, want := len(deliveries), 1; got != want {
		t.Fatalf("webhook deliveries = %d, want %d", got, want)
	}
	ev := deliveries[0]
	if got, want := ev.ID, s.Room+"/"+s.Session; got != want {
		t.Errorf("event id = %q, want %q", got, want)
	}
	if got, want := len(ev.Tracks), len(segs); got != want {
		t.Errorf("event lists %d tracks, want %d", got, want)
	}
	for _, tr := range ev.Tracks {
		rel := strings.TrimPrefix(tr.Key, storage.SessionPrefix(s.Room, s.Session))
		if got, want := tr.SHA256, sums[rel]; got != want {
			t.Errorf("event: %s has SHA-256 %s, want %s", tr.Key, got, want)
		}
		if tr.Participant != "alice" || (tr.Kind != "audio" && tr.Kind != "video") {
			t.Errorf("event: track %s is %s/%s", tr.Key, tr.Participant, tr.Kind)
		}
	}
	if len(ev.Renders) != 1 || len(ev.Renders[0].Files) != 1 || ev.Renders[0].Files[0].Key != compositeKey {
		t.Fatalf("event renders = %+v, want the composite %s", ev.Renders, compositeKey)
	}
	resp, err := http.Get(ev.Manifest.URL)
	if err != nil {
		t.Fatalf("manifest link: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want, _ := os.ReadFile(filepath.Join(s.Dir, capture.ManifestName))
	if resp.StatusCode != http.StatusOK || string(body) != string(want) {
		t.Errorf("manifest link: HTTP %d, %d bytes; want 200 and the manifest (%d bytes)", resp.StatusCode, len(body), len(want))
	}
	if b := p.Backlog(); b.Files != 0 || b.Bytes != 0 {
		t.Errorf("backlog after the job = %+v, want empty", b)
	}

	// A re-render an operator asks for reaches the renderer marked as one
	// (it may use more CPUs); the render after the call was not.
	if err := p.Rerender(ctx, s.Room, s.Session, []postcall.RenderSpec{{Name: "again"}}); err != nil {
		t.Fatal(err)
	}
	if st, err = p.Wait(ctx, s.Room, s.Session); err != nil || st.Done.IsZero() {
		t.Fatalf("re-render: %+v, %v", st, err)
	}
	renderer.mu.Lock()
	if got, want := fmt.Sprint(renderer.rerenders), "[false true]"; got != want {
		t.Errorf("renders marked as re-renders: %s, want %s", got, want)
	}
	renderer.mu.Unlock()
}

// checkStored reads the object back and compares its SHA-256, and the store's, with want.
func checkStored(t *testing.T, store storage.Client, key, want string) {
	t.Helper()
	if want == "" {
		t.Errorf("%s: no local checksum to compare with", key)
		return
	}
	info, err := store.Stat(t.Context(), key)
	if err != nil {
		t.Errorf("%s: %v", key, err)
		return
	}
	if info.SHA256 != want {
		t.Errorf("%s: store reports SHA-256 %s, want %s", key, info.SHA256, want)
	}
	r, err := store.Get(t.Context(), key)
	if err != nil {
		t.Errorf("%s: %v", key, err)
		return
	}
	if got := sha256Reader(t, r); got != want {
		t.Errorf("%s: stored bytes have SHA-256 %s, want %s", key, got, want)
	}
}
