package postcall_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/storage/storagetest"
)

// TestUploadHold: a stored segment whose file Hold keeps (the render during
// the call still needs it) stays on disk, is in the store already, and is
// deleted within a few seconds of Hold letting it go.
func TestUploadHold(t *testing.T) {
	store, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := storagetest.RandomBytes(3, 100_000)
	dir, rel, file := closedSegment(t, data)
	want := sha256File(t, file)
	var held atomic.Bool
	held.Store(true)
	var asked atomic.Int64
	u := postcall.NewUploader(store, postcall.UploadConfig{Hold: func(d, r string) bool {
		if d != dir || r != rel {
			t.Errorf("Hold(%q, %q), want Hold(%q, %q)", d, r, dir, rel)
		}
		asked.Add(1)
		return held.Load()
	}}, testLogger(t))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); u.Run(ctx) }()
	defer func() { cancel(); <-done }()
	u.SegmentClosed(capture.SegmentClosed{Room: "standup", Session: "20261123T120000Z-aaaaaa", Dir: dir, Path: rel,
		Lane: "alice/video", Track: "t1", Bytes: int64(len(data))})
	for u.Backlog().Files > 0 || asked.Load() < 2 {
		if ctx.Err() != nil {
			t.Fatalf("upload not done, or Hold not asked again: backlog %+v, asked %d times", u.Backlog(), asked.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkStored(t, store, storage.SessionPrefix("standup", "20261123T120000Z-aaaaaa")+rel, want)
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("a held file was deleted: %v", err)
	}
	held.Store(false)
	released := time.Now()
	for {
		if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the file was not deleted after Hold let it go")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("deleted %s after Hold let it go (asked %d times)", time.Since(released).Round(time.Millisecond), asked.Load())
}
