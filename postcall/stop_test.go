package postcall_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/storage"
)

// postcallGoroutines returns the stacks of the goroutines running this package's code (not the
// tests').
func postcallGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "tapedeck/tapedeck/postcall.") {
			out = append(out, g)
		}
	}
	return out
}

// logRecords keeps the messages of a logger's records.
type logRecords struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	l.mu.Lock()
	l.msgs = append(l.msgs, b.String())
	l.mu.Unlock()
	return nil
}
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecords) WithGroup(string) slog.Handler      { return l }

func (l *logRecords) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

// sessionFolder makes DATA/ROOM/SESSION with a manifest (the demo's, renamed) and an empty journal.
func sessionFolder(t *testing.T, data, room, session string) string {
	t.Helper()
	b, err := os.ReadFile("../timeline/testdata/demo-manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["room"], m["session"] = room, session
	b, _ = json.Marshal(m)
	dir := filepath.Join(data, room, session)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, capture.ManifestName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, capture.JournalName), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPipelineStop runs a pipeline with a job and a segment upload waiting for the journal, stops
// it, and checks that Run returns at once (the upload's wait ends with it) leaving no goroutine of
// this package behind. A session that ends after the pipeline stopped and its NATS connection
// closed (capture's OnSessionEnd hook running late) returns at once, says its job is enqueued at
// the next start, and the next start (a new server on the same JetStream folder, EnqueueUnfinished)
// enqueues it.
func TestPipelineStop(t *testing.T) {
	// Not parallel: it counts goroutines.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	natsDir, data := t.TempDir(), t.TempDir()
	store, err := storage.Open(ctx, t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := postcall.StartEmbedded(postcall.EmbeddedConfig{StoreDir: natsDir}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := postcall.Connect(ctx, srv.URL(), "test", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	baseline := len(postcallGoroutines())
	logs := &logRecords{}
	cfg := postcall.Config{Node: "rec1", WorkDir: t.TempDir(), Upload: postcall.UploadConfig{JournalWait: time.Minute}}
	p, err := postcall.New(ctx, nc, store, nil, cfg, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(runCtx) }()

	// A job (it fails for good: the demo's track files are not there) and a segment uploaded during
	// the call whose journal never records it closed.
	dir1 := sessionFolder(t, data, "demo", "S1")
	if err := p.Enqueue(ctx, "demo", "S1", dir1); err != nil {
		t.Fatal(err)
	}
	rel := "tracks/x/audio-t9-000.webm"
	if err := os.MkdirAll(filepath.Join(dir1, "tracks", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir1, filepath.FromSlash(rel)), []byte("opus"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.SegmentClosed(capture.SegmentClosed{Room: "demo", Session: "S1", Dir: dir1, Path: rel, Bytes: 4})
	if st, err := p.Wait(ctx, "demo", "S1"); err != nil || st.Failed.IsZero() {
		t.Fatalf("job of S1: %+v, %v; want failed (no track files)", st, err)
	}
	for {
		if b, _ := os.ReadFile(filepath.Join(dir1, postcall.LedgerName)); bytes.Contains(b, []byte(rel)) {
			break // stored: the uploader now waits for the journal
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("the segment was not stored")
		}
	}

	began := time.Now()
	stop()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	t.Logf("Run returned %v after its context ended", took.Round(time.Microsecond))
	if took > time.Second {
		t.Errorf("Run took %v to stop, want it at once (the upload waited for the journal up to a minute)", took)
	}
	var left []string
	for range 100 {
		if left = postcallGoroutines(); len(left) <= baseline {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(left) > baseline {
		t.Errorf("%d goroutines of postcall left after Run returned (baseline %d):\n%s", len(left), baseline, strings.Join(left, "\n\n"))
	}
	if _, err := os.Stat(filepath.Join(dir1, filepath.FromSlash(rel))); err != nil {
		t.Errorf("the segment whose close the journal never recorded left the disk: %v", err)
	}

	// The recorder's session-end hook runs after the pipeline stopped and NATS closed.
	nc.Close()
	srv.Shutdown()
	dir2 := sessionFolder(t, data, "demo", "S2")
	began = time.Now()
	p.SessionEnded(ctx, capture.SessionEnded{Room: "demo", Session: "S2", Dir: dir2})
	took = time.Since(began)
	t.Logf("SessionEnded after the stop returned in %v", took)
	if took > time.Second {
		t.Errorf("SessionEnded after the stop took %v, want it to return at once", took)
	}
	if !logs.has("post-call job not enqueued; it is at the next start room=demo session=S2") {
		t.Errorf("SessionEnded after the stop did not say the job is enqueued at the next start; logs: %q", logs.msgs)
	}

	// The next start enqueues it.
	srv, err = postcall.StartEmbedded(postcall.EmbeddedConfig{StoreDir: natsDir}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err = postcall.Connect(ctx, srv.URL(), "test", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p2, err := postcall.New(ctx, nc, store, nil, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p2.EnqueueUnfinished(ctx, data); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, postcall.Stream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, postcall.UploadSubject("rec1"))
	if err != nil {
		t.Fatalf("no stage-1 job in the stream after the restart: %v", err)
	}
	var j postcall.Job
	if err := json.Unmarshal(msg.Data, &j); err != nil || j.Session != "S2" {
		t.Errorf("stage-1 job after the restart: %s (%v), want session S2's", msg.Data, err)
	}
}
