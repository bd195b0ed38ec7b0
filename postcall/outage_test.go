package postcall_test

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
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

// holdFirstPart lets the first multipart part request through only after stop has been closed, so a
// test can stop the server in the middle of a multipart upload.
type holdFirstPart struct {
	rt      http.RoundTripper
	once    sync.Once
	reached chan struct{}
	stop    chan struct{}
}

func (h *holdFirstPart) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && r.URL.Query().Has("partNumber") {
		first := false
		h.once.Do(func() { first = true })
		if first {
			close(h.reached)
			<-h.stop
		}
	}
	return h.rt.RoundTrip(r)
}

// TestSegmentUploadSurvivesS3Outage stops the S3 server in the middle of a closed segment's multipart
// upload and starts it again seconds later. The file must stay on disk while the upload is not
// confirmed, the backlog must show it, and once the server is back the upload must complete with the
// file's checksum and only then the file go.
func TestSegmentUploadSurvivesS3Outage(t *testing.T) {
	gw := storagetest.StartVersityGW(t)
	hold := &holdFirstPart{rt: http.DefaultTransport, reached: make(chan struct{}), stop: make(chan struct{})}
	store := gw.Open(t, "outage", "", storage.Options{
		PartSize: storage.MinPartSize, MaxAttempts: 2, HTTPClient: &http.Client{Transport: hold},
	})

	// A session folder with one closed segment of 4 parts, recorded closed in the journal.
	data := storagetest.RandomBytes(7, 3*storage.MinPartSize+12345)
	dir, rel, file := closedSegment(t, data)
	want := sha256File(t, file)

	u := postcall.NewUploader(store, postcall.UploadConfig{RetryMin: 200 * time.Millisecond, RetryMax: time.Second}, testLogger(t))
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); u.Run(ctx) }()
	defer func() { cancel(); <-done }()
	u.SegmentClosed(capture.SegmentClosed{Room: "standup", Session: "20261123T120000Z-aaaaaa", Dir: dir, Path: rel,
		Lane: "alice/video", Track: "t1", Bytes: int64(len(data))})

	select {
	case <-hold.reached:
	case <-ctx.Done():
		t.Fatal("the upload never sent a part")
	}
	gw.Stop(t)
	close(hold.stop)

	// While the server is down: the file stays, the backlog shows it, nothing is in the bucket.
	time.Sleep(3 * time.Second)
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("file removed while the server was down: %v", err)
	}
	if got := u.Backlog(); got.Files != 1 || got.Bytes != int64(len(data)) {
		t.Errorf("backlog while the server is down = %+v, want 1 file of %d bytes", got, len(data))
	}
	if _, err := os.Stat(filepath.Join(gw.Dir, "outage", filepath.FromSlash(storage.SessionPrefix("standup", "20261123T120000Z-aaaaaa")+rel))); err == nil {
		t.Fatal("the object exists although its upload never finished")
	}
	gw.Restart(t)

	deadline := time.Now().Add(60 * time.Second)
	for u.Backlog().Files > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("upload not finished 60 s after the server came back; backlog %+v", u.Backlog())
		}
		time.Sleep(100 * time.Millisecond)
	}
	checkStored(t, store, storage.SessionPrefix("standup", "20261123T120000Z-aaaaaa")+rel, want)
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file still on disk after a confirmed upload: %v", err)
	}
	ledger, err := os.ReadFile(filepath.Join(dir, postcall.LedgerName))
	if err != nil || !strings.Contains(string(ledger), want) {
		t.Errorf("ledger does not record the upload (%v): %s", err, ledger)
	}
}

// closedSegment writes a session folder (room standup) holding one segment
// with data, recorded closed in its journal, and returns the folder, the
// segment's path in it and its file.
func closedSegment(t *testing.T, data []byte) (dir, rel, file string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "standup", "20261123T120000Z-aaaaaa")
	rel = "tracks/alice/video-t1-000.webm"
	file = filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	journal := `{"type":"session","at_unix_ns":1,"room":"standup","session":"20261123T120000Z-aaaaaa"}` + "\n" +
		`{"type":"segment_close","at_unix_ns":2,"track":"t1","segment":{"index":0,"path":"` + rel + `","first_rtp":0,"first_arrival_unix_ns":1}}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, capture.JournalName), []byte(journal), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, rel, file
}
