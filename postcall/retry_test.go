package postcall_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/storage"
)

// TestRetryStore: a job whose store refuses every file fails for good
// before its session is stored; once the store is back, RetryStore runs
// it again and it finishes, with the session complete in the store. A job
// that has not failed is refused.
func TestRetryStore(t *testing.T) {
	storeDir := filepath.Join(t.TempDir(), "store")
	store, err := storage.OpenLocal(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	// The store breaks: its folder becomes a file.
	if err := os.RemoveAll(storeDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(storeDir, []byte("not a folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Its Puts wait until the test has asked for a retry of the running job,
	// so that the job surely has not failed yet when it asks.
	held := &heldStore{Client: store, release: make(chan struct{})}
	_, nc := startNATS(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	p, err := postcall.New(ctx, nc, held, nil, postcall.Config{
		Node: "rec1", WorkDir: t.TempDir(), RenderConcurrency: 1, AckWait: 5 * time.Second, MaxDeliver: 1,
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(runCtx) }()
	defer func() { stop(); <-runDone }()

	ended := make(chan capture.SessionEnded, 1)
	rec := startRecorder(t, capture.Config{
		DataDir: t.TempDir(), Grace: 500 * time.Millisecond,
		OnSessionEnd: func(ctx context.Context, ev capture.SessionEnded) { p.SessionEnded(ctx, ev); ended <- ev },
	})
	publish(t, rec.base+"/whip/retry", "rita", 2*time.Second)
	s := waitSession(t, ended, 30*time.Second)

	if err := p.RetryStore(ctx, s.Room, s.Session, s.Dir); !errors.Is(err, postcall.ErrNotFailed) && err == nil {
		t.Errorf("retry of a job still running: %v, want an error", err)
	}
	close(held.release)
	st, err := p.Wait(ctx, s.Room, s.Session)
	if err != nil {
		t.Fatal(err)
	}
	if st.Failed.IsZero() || !st.Uploaded.IsZero() {
		t.Fatalf("with a broken store the job should fail before storing: %+v", st)
	}
	t.Logf("failed as expected: %s", st.Error)

	// The store is back.
	if err := os.Remove(storeDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := p.RetryStore(ctx, s.Room, s.Session, s.Dir); err != nil {
		t.Fatalf("retry: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err = p.State(ctx, s.Room, s.Session)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Done.IsZero() || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st.Done.IsZero() || st.Uploaded.IsZero() || !st.Failed.IsZero() {
		t.Fatalf("after the retry: %+v, want done and stored", st)
	}
	if _, err := store.Stat(ctx, storage.ManifestKey(s.Room, s.Session)); err != nil {
		t.Errorf("manifest not in the store after the retry: %v", err)
	}
	for _, rel := range postcall.SegmentPaths(s.Manifest) {
		if _, err := store.Stat(ctx, storage.SessionPrefix(s.Room, s.Session)+rel); err != nil {
			t.Errorf("%s not in the store after the retry: %v", rel, err)
		}
	}
	if err := p.RetryStore(ctx, s.Room, s.Session, s.Dir); !errors.Is(err, postcall.ErrNotFailed) {
		t.Errorf("retry of a finished job: %v, want ErrNotFailed", err)
	}
}

// heldStore is a storage.Client whose Puts wait until release is closed.
type heldStore struct {
	storage.Client
	release chan struct{}
}

func (h *heldStore) Put(ctx context.Context, key string, r io.Reader, size int64) (storage.ObjectInfo, error) {
	select {
	case <-h.release:
	case <-ctx.Done():
		return storage.ObjectInfo{}, ctx.Err()
	}
	return h.Client.Put(ctx, key, r, size)
}
