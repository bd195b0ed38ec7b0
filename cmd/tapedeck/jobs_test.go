package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/examples/publisher"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/storage/storagetest"
	"github.com/tapedeck/tapedeck/timeline"
)

// buildTapedeck builds this command for tests that need a process they can kill.
func buildTapedeck(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tapedeck")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// objectFile is what the S3 server's posix backend keeps of an object.
type objectFile struct {
	ino   uint64
	mtime time.Time
}

// bucketFiles lists the objects of a bucket under prefix from versitygw's folder, by key.
func bucketFiles(t *testing.T, gw *storagetest.VersityGW, bucket, prefix string) map[string]objectFile {
	t.Helper()
	root := filepath.Join(gw.Dir, bucket)
	out := map[string]objectFile{}
	_ = filepath.WalkDir(filepath.Join(root, filepath.FromSlash(prefix)), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = objectFile{ino: fi.Sys().(*syscall.Stat_t).Ino, mtime: fi.ModTime()}
		return nil
	})
	return out
}

// TestServeKilledDuringJobResumes records a call with `tapedeck serve` (2 s segments, S3 store,
// webhook). After the first segments are stored during the call, the S3 server stops; the call ends,
// the post-call job starts and cannot upload; serve is killed with SIGKILL. With S3 and serve started
// again, the job must finish: every track, the journal and the manifest in the bucket with the
// checksums of the uploaded files, one signed webhook, and the objects confirmed before the kill not
// uploaded again (same file in the S3 server's folder).
func TestServeKilledDuringJobResumes(t *testing.T) {
	t.Parallel()
	bin := buildTapedeck(t)
	gw := storagetest.StartVersityGW(t)
	gw.CreateBucket(t, "calls")
	data := t.TempDir()
	addr := freeAddr(t)

	var mu sync.Mutex
	var deliveries []postcall.Event
	var badSig int
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if !postcall.VerifySignature([]byte("k1ll"), body, r.Header.Get(postcall.SignatureHeader)) {
			badSig++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev postcall.Event
		_ = json.Unmarshal(body, &ev)
		deliveries = append(deliveries, ev)
	}))
	defer hook.Close()

	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "TAPEDECK_") {
			env = append(env, kv)
		}
	}
	env = append(env, "AWS_ACCESS_KEY_ID="+gw.AccessKey, "AWS_SECRET_ACCESS_KEY="+gw.SecretKey,
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
		"TAPEDECK_WEBHOOK_SECRET=k1ll")
	// This room renders nothing: the test is about the job's storage steps surviving a kill.
	renders := filepath.Join(t.TempDir(), "renders.yaml")
	if err := os.WriteFile(renders, []byte("rooms:\n  crash: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "serve", "--listen", addr, "--data", data, "--grace", "1s", "--segment-duration", "2s",
			"--store", "s3://calls/rec", "--s3-endpoint", gw.Endpoint, "--s3-path-style", "--webhook", hook.URL,
			"--renders", renders, "--job-ack-wait", "2s", "--log-level", "info")
		cmd.Env = env
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout = logWriter{t}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(stderr)
			once := false
			for sc.Scan() {
				t.Log(sc.Text())
				if !once && strings.Contains(sc.Text(), "tapedeck serving") {
					once = true
					close(ready)
				}
			}
		}()
		select {
		case <-ready:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("serve did not start")
		}
		return cmd
	}
	srv := start()
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cfg := publisher.Config{Endpoint: "http://" + addr + "/whip/crash", Participant: "erin", Duration: 6 * time.Second,
		Video: publisher.VP8, Audio: true, Width: 320, Height: 240, Bitrate: 400_000}
	plog := slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if _, err := publisher.PrepareMedia(ctx, cfg, plog); err != nil {
		t.Fatal(err)
	}
	called := make(chan error, 1)
	go func() { _, err := publisher.Run(ctx, cfg, plog); called <- err }()

	// Stop S3 once segments uploaded during the call are in the bucket.
	for len(bucketFiles(t, gw, "calls", "rec/crash")) < 2 {
		select {
		case <-time.After(50 * time.Millisecond):
		case err := <-called:
			t.Fatalf("the call ended (%v) before any segment was stored", err)
		}
	}
	gw.Stop(t)
	if err := <-called; err != nil {
		t.Fatalf("publisher: %v", err)
	}
	var dir string
	for dir == "" {
		found, _ := filepath.Glob(filepath.Join(data, "crash", "*", "manifest.json"))
		if len(found) == 1 {
			dir = filepath.Dir(found[0])
			break
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("the session did not end")
		}
	}
	time.Sleep(time.Second) // the job runs, and fails to upload
	before := bucketFiles(t, gw, "calls", "rec/crash")
	if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = srv.Wait()
	if _, err := os.Stat(filepath.Join(gw.Dir, "calls", "rec", "crash", filepath.Base(dir), "manifest.json")); err == nil {
		t.Fatal("the manifest was stored before the kill: the job was not interrupted")
	}
	t.Logf("killed serve during the job; %d objects were stored before", len(before))

	gw.Restart(t)
	srv = start()
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(deliveries)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no webhook within 60 s of the restart")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a duplicate would show now

	f, err := os.Open(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := timeline.ParseManifest(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	ledger := map[string]string{}
	lb, _ := os.ReadFile(filepath.Join(dir, postcall.LedgerName))
	for _, line := range strings.Split(strings.TrimSpace(string(lb)), "\n") {
		var e postcall.LedgerEntry
		if json.Unmarshal([]byte(line), &e) == nil {
			ledger[e.Path] = e.SHA256
		}
	}
	after := bucketFiles(t, gw, "calls", "rec/crash")
	prefix := "rec/" + storage.SessionPrefix(m.Room, m.Session)
	paths := append(postcall.SegmentPaths(m), "journal.jsonl", "manifest.json")
	for _, rel := range paths {
		key := prefix + rel
		if _, ok := after[key]; !ok {
			t.Errorf("%s is not in the bucket", key)
			continue
		}
		b, err := os.ReadFile(filepath.Join(gw.Dir, "calls", filepath.FromSlash(key)))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if got, want := hex.EncodeToString(sum[:]), ledger[rel]; got != want {
			t.Errorf("%s: stored bytes have SHA-256 %s, the uploaded file had %q", key, got, want)
		}
	}
	for _, rel := range []string{"journal.jsonl", "manifest.json"} {
		b, _ := os.ReadFile(filepath.Join(dir, rel))
		sum := sha256.Sum256(b)
		if got, want := ledger[rel], hex.EncodeToString(sum[:]); got != want {
			t.Errorf("%s: uploaded with SHA-256 %s, the local file has %s", rel, got, want)
		}
	}
	redone := 0
	for key, o := range before {
		if a, ok := after[key]; !ok || a.ino != o.ino || !a.mtime.Equal(o.mtime) {
			redone++
			t.Errorf("%s was stored before the kill and written again after it", key)
		}
	}
	if len(before) == 0 {
		t.Error("nothing was stored before the kill")
	}
	t.Logf("%d objects stored before the kill, %d after; %d written again", len(before), len(after), redone)
	for _, rel := range postcall.SegmentPaths(m) {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel))); err == nil {
			t.Errorf("%s is still on disk after the job", rel)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if badSig > 0 {
		t.Errorf("%d webhook requests with a bad signature", badSig)
	}
	if got, want := len(deliveries), 1; got != want {
		t.Errorf("webhook deliveries = %d, want %d", got, want)
	}
	if len(deliveries) > 0 {
		ev := deliveries[0]
		if got, want := len(ev.Tracks), len(postcall.SegmentPaths(m)); got != want {
			t.Errorf("webhook lists %d tracks, want %d", got, want)
		}
		if len(ev.Renders) != 0 {
			t.Errorf("webhook renders = %+v, want none (the room renders nothing)", ev.Renders)
		}
	}
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Errorf("serve after SIGTERM: %v", err)
	}
}
