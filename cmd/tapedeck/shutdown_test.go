package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/examples/publisher"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/storage/storagetest"
	"github.com/tapedeck/tapedeck/timeline"
)

// logLines keeps a process's log lines (it is the process's stderr) and lets a test wait for one.
type logLines struct {
	t       *testing.T
	prefix  string
	mu      sync.Mutex
	partial []byte
	lines   []string
	changed chan struct{} // closed and replaced at every line
	closed  bool
}

func newLogLines(t *testing.T, prefix string) *logLines {
	return &logLines{t: t, prefix: prefix, changed: make(chan struct{})}
}

func (l *logLines) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		l.t.Log(l.prefix + line)
		if strings.Contains(line, "WARNING: DATA RACE") {
			l.t.Errorf("%sa data race", l.prefix)
		}
		l.lines = append(l.lines, line)
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(b), nil
}

// exited marks the end of the process: waiting for a line fails at once.
func (l *logLines) exited() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.changed)
	}
}

// wait returns once a line holding every one of subs has been logged, or fails the test.
func (l *logLines) wait(d time.Duration, subs ...string) string {
	l.t.Helper()
	deadline := time.After(d)
	for i := 0; ; {
		l.mu.Lock()
		for ; i < len(l.lines); i++ {
			ok := true
			for _, s := range subs {
				ok = ok && strings.Contains(l.lines[i], s)
			}
			if ok {
				line := l.lines[i]
				l.mu.Unlock()
				return line
			}
		}
		changed, closed := l.changed, l.closed
		l.mu.Unlock()
		if closed {
			l.t.Fatalf("the process exited without logging %q", subs)
		}
		select {
		case <-changed:
		case <-deadline:
			l.t.Fatalf("no log line with %q within %v", subs, d)
		}
	}
}

// serveRun is one `tapedeck serve` process.
type serveRun struct {
	cmd  *exec.Cmd
	log  *logLines
	done chan error
}

// startServeRun starts cmd (a tapedeck serve) with its stderr kept as log lines prefixed by
// prefix, and kills it when the test ends.
func startServeRun(t *testing.T, cmd *exec.Cmd, prefix string) *serveRun {
	t.Helper()
	s := &serveRun{cmd: cmd, log: newLogLines(t, prefix), done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = logWriter{t}, s.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait() // returns once stderr is copied
		s.log.exited()
		s.done <- err
		close(exited)
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	return s
}

// sigterm sends SIGTERM and returns how long serve took to exit; it must exit with status 0.
func (s *serveRun) sigterm(t *testing.T) time.Duration {
	t.Helper()
	began := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("serve after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit within 30 s of SIGTERM")
	}
	return time.Since(began)
}

// blockingHook is a webhook receiver whose first request waits until release is closed and is then
// refused; later requests are checked (signature) and kept.
type blockingHook struct {
	*httptest.Server
	arrived chan struct{} // closed when the first request arrives
	release chan struct{}

	mu         sync.Mutex
	first      bool
	deliveries []postcall.Event
	bad        int
}

func startBlockingHook(t *testing.T, secret string) *blockingHook {
	h := &blockingHook{arrived: make(chan struct{}), release: make(chan struct{})}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		first := !h.first
		h.first = true
		h.mu.Unlock()
		if first {
			close(h.arrived)
			<-h.release
			http.Error(w, "interrupted", http.StatusServiceUnavailable)
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		var ev postcall.Event
		if !postcall.VerifySignature([]byte(secret), body, r.Header.Get(postcall.SignatureHeader)) || json.Unmarshal(body, &ev) != nil {
			h.bad++
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		h.deliveries = append(h.deliveries, ev)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(func() {
		select {
		case <-h.release:
		default:
			close(h.release)
		}
		h.Close()
	})
	return h
}

func sha256Of(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// readLedger returns the session folder's ledger entries by path (the last one wins).
func readLedgerFile(t *testing.T, dir string) map[string]postcall.LedgerEntry {
	t.Helper()
	out := map[string]postcall.LedgerEntry{}
	b, err := os.ReadFile(filepath.Join(dir, postcall.LedgerName))
	if errors.Is(err, fs.ErrNotExist) {
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		var e postcall.LedgerEntry
		if json.Unmarshal([]byte(line), &e) == nil {
			out[e.Path] = e
		}
	}
	return out
}

// TestSIGTERMDuringPostCallJob records a call with `tapedeck serve` (2 s segments, an S3 store, one
// render, a webhook; a segment is uploaded and deleted during the call), then stops serve with SIGTERM at each point of the session's post-call job in
// turn, restarting it on the same data folder every time:
//
//  1. upload: the S3 server is frozen (SIGSTOP) after the call, before the session ends (--grace), so
//     stage 1 hangs in its first request; SIGTERM once serve logs "storing the session";
//  2. render: SIGTERM once serve logs "render started";
//  3. store: the S3 server is frozen when the render starts, so storing its output hangs; SIGTERM
//     once serve logs "render finished";
//  4. webhook: the receiver holds the first request until serve has exited.
//
// After every stop the session must be complete in at least one place: each track file of the
// manifest on disk, or recorded in the ledger and in the bucket with the same SHA-256. After stop 1
// (the state the review found: tracks partly deleted, no manifest in the store) `inspect` on the data
// folder says where the tracks went, `render` without S3 settings says which flag fetches them (and
// never FFmpeg's "No such file or directory"), and `render` with them renders. Each restart must
// finish the interrupted step; the last one the job: state done, the whole session in the bucket
// with the ledger's checksums, the render stored, exactly one signed webhook delivery, and only the
// journal, the manifest and the ledger left on disk — from which `render` still renders.
func TestSIGTERMDuringPostCallJob(t *testing.T) {
	testStart := time.Now()
	bin := buildTapedeckRace(t)
	t.Logf("built tapedeck (race detector: %v) in %v", raceEnabled, time.Since(testStart).Round(time.Millisecond))
	began := time.Now()
	gw := storagetest.StartVersityGW(t)
	gw.CreateBucket(t, "calls")
	data := t.TempDir()
	addr := freeAddr(t)
	hook := startBlockingHook(t, "t3rm")
	renders := filepath.Join(t.TempDir(), "renders.yaml")
	if err := os.WriteFile(renders, []byte("rooms:\n  shut:\n    - name: default\n      profile: mp4-360p\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var base []string // the environment without AWS or tapedeck settings
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "TAPEDECK_") {
			base = append(base, kv)
		}
	}
	base = append(base, "AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent")
	withS3 := append(append([]string(nil), base...), "AWS_ACCESS_KEY_ID="+gw.AccessKey, "AWS_SECRET_ACCESS_KEY="+gw.SecretKey,
		"TAPEDECK_WEBHOOK_SECRET=t3rm")
	s3flags := []string{"--s3-endpoint", gw.Endpoint, "--s3-path-style"}

	starts := 0
	start := func() *serveRun {
		t.Helper()
		starts++
		args := append([]string{"serve", "--listen", addr, "--data", data, "--grace", "2s", "--segment-duration", "2s",
			"--store", "s3://calls/rec", "--webhook", hook.URL, "--renders", renders, "--job-ack-wait", "5s",
			// Segments are deleted as soon as stored (the render during
			// the call would keep them until drawn).
			"--progressive=false", "--log-level", "info"}, s3flags...)
		cmd := exec.Command(bin, args...)
		cmd.Env = withS3
		s := startServeRun(t, cmd, "serve#"+strconv.Itoa(starts)+": ")
		s.log.wait(30*time.Second, "tapedeck serving")
		return s
	}
	// tapedeck runs a command to its end and returns its output and exit code.
	tapedeck := func(env []string, args ...string) (string, int, time.Duration) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		began := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(began)
		if bytes.Contains(out, []byte("WARNING: DATA RACE")) {
			t.Errorf("tapedeck %s: a data race:\n%s", strings.Join(args, " "), out)
		}
		var ee *exec.ExitError
		switch {
		case err == nil:
			return string(out), 0, took
		case errors.As(err, &ee):
			return string(out), ee.ExitCode(), took
		}
		t.Fatalf("tapedeck %s: %v", strings.Join(args, " "), err)
		return "", 0, 0
	}

	// The call.
	srv := start()
	cfg := publisher.Config{Endpoint: "http://" + addr + "/whip/shut", Participant: "erin", Duration: 4 * time.Second,
		Video: publisher.VP8, Audio: true, Width: 320, Height: 240, Bitrate: 300_000}
	plog := slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if _, err := publisher.PrepareMedia(t.Context(), cfg, plog); err != nil {
		t.Fatal(err)
	}
	called := make(chan error, 1)
	go func() { _, err := publisher.Run(t.Context(), cfg, plog); called <- err }()
	// Wait until a segment closed during the call has been uploaded and deleted (its ledger entry
	// written, its file gone), then for the end of the call.
	for inCall := false; !inCall; {
		select {
		case err := <-called:
			t.Fatalf("the call ended (%v) before a segment was uploaded and deleted during it", err)
		case <-time.After(50 * time.Millisecond):
		}
		found, _ := filepath.Glob(filepath.Join(data, "shut", "*", postcall.LedgerName))
		for _, lf := range found {
			for rel := range readLedgerFile(t, filepath.Dir(lf)) {
				if _, err := os.Stat(filepath.Join(filepath.Dir(lf), filepath.FromSlash(rel))); strings.HasPrefix(rel, "tracks/") && errors.Is(err, fs.ErrNotExist) {
					inCall = true
				}
			}
		}
	}
	if err := <-called; err != nil {
		t.Fatalf("publisher: %v", err)
	}
	// The session ends --grace (2 s) later: its job will find S3 frozen.
	gw.Pause(t)
	paused := true
	defer func() {
		if paused {
			gw.Resume(t)
		}
	}()
	line := srv.log.wait(30*time.Second, `msg="storing the session"`, "room=shut")
	session := logValue(line, "session")
	dir := filepath.Join(data, "shut", session)
	prefix := "rec/" + storage.SessionPrefix("shut", session)
	took := srv.sigterm(t)
	t.Logf("point 1 (upload, S3 frozen): serve exited %v after SIGTERM", took.Round(time.Millisecond))
	stops := []time.Duration{took}

	m := readManifest(t, dir)
	tracks := postcall.SegmentPaths(m)
	if _, err := os.Stat(filepath.Join(gw.Dir, "calls", filepath.FromSlash(prefix+capture.ManifestName))); err == nil {
		t.Fatal("the manifest was stored before SIGTERM: the job was not interrupted during its upload")
	}
	missing := checkComplete(t, gw, dir, prefix, tracks, "after SIGTERM during the upload")
	if missing == 0 {
		t.Error("every track file is still on disk: none was uploaded and deleted during the call")
	}
	gw.Resume(t)
	paused = false

	// The review's case: no manifest in the store, tracks deleted from the data folder.
	out, code, took := tapedeck(base, "inspect", dir)
	t.Logf("inspect on the data folder (%v, exit %d):\n%s", took.Round(time.Millisecond), code, out)
	for _, want := range []string{"not on disk", "stored in s3://calls/rec as " + storage.SessionPrefix("shut", session) + "tracks/",
		"fetch them with `tapedeck render " + dir + " --store s3://calls/rec`"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("inspect %s: exit %d, output lacks %q", dir, code, want)
		}
	}
	outDir := t.TempDir()
	out, code, took = tapedeck(base, "render", dir, "--out", outDir, "--profile", "audio")
	t.Logf("render without S3 settings (%v, exit %d):\n%s", took.Round(time.Millisecond), code, out)
	for _, want := range []string{"track files are not on disk and were not fetched", "s3://calls/rec could not be opened",
		"fetch them with `tapedeck render " + dir + " --store s3://calls/rec` (with the S3 settings serve had"} {
		if code == 0 || !strings.Contains(out, want) {
			t.Errorf("render without S3 settings: exit %d, output lacks %q", code, want)
		}
	}
	if strings.Contains(out, "No such file or directory") {
		t.Errorf("render without S3 settings passed on FFmpeg's error: %s", out)
	}
	out, code, took = tapedeck(withS3, append([]string{"render", dir, "--out", outDir, "--profile", "mp4-360p", "--progress", "off"}, s3flags...)...)
	t.Logf("render with S3 settings (%v, exit %d):\n%s", took.Round(time.Millisecond), code, out)
	if code != 0 || !strings.Contains(out, "fetched from storage") {
		t.Errorf("render of the data folder with S3 settings: exit %d, want 0 after fetching the deleted tracks", code)
	}
	checkMedia(t, filepath.Join(outDir, "mp4-360p.mp4"), m)

	// Point 2: the next start finishes stage 1; SIGTERM when the render starts.
	srv = start()
	srv.log.wait(60*time.Second, `msg="session stored"`, "session="+session)
	srv.log.wait(60*time.Second, `msg="render started"`, "session="+session)
	took = srv.sigterm(t)
	t.Logf("point 2 (render): serve exited %v after SIGTERM", took.Round(time.Millisecond))
	stops = append(stops, took)
	if missing := checkComplete(t, gw, dir, prefix, tracks, "after SIGTERM during the render"); missing != len(tracks) {
		t.Errorf("%d of %d track files left the disk once the session was stored, want all", missing, len(tracks))
	}
	checkStoredFile(t, gw, prefix+capture.ManifestName, sha256Of(t, filepath.Join(dir, capture.ManifestName)))
	checkStoredFile(t, gw, prefix+capture.JournalName, sha256Of(t, filepath.Join(dir, capture.JournalName)))
	if n := len(bucketFiles(t, gw, "calls", prefix+"renders/")); n != 0 {
		t.Errorf("%d render files stored before SIGTERM: the render was not interrupted", n)
	}

	// Point 3: the render runs again; S3 freezes when it starts, so storing its output hangs.
	srv = start()
	srv.log.wait(60*time.Second, `msg="render started"`, "session="+session)
	gw.Pause(t)
	paused = true
	srv.log.wait(60*time.Second, `msg="render finished"`, "session="+session)
	took = srv.sigterm(t)
	t.Logf("point 3 (store of the render, S3 frozen): serve exited %v after SIGTERM", took.Round(time.Millisecond))
	stops = append(stops, took)
	gw.Resume(t)
	paused = false
	if n := len(bucketFiles(t, gw, "calls", prefix+"renders/")); n != 0 {
		t.Errorf("%d render files stored before SIGTERM: the store was not interrupted", n)
	}

	// Point 4: the render is stored; the webhook's first request is held until serve has exited.
	srv = start()
	select {
	case <-hook.arrived:
	case err := <-srv.done:
		t.Fatalf("serve exited (%v) before the webhook", err)
	case <-time.After(90 * time.Second):
		t.Fatal("no webhook request within 90 s")
	}
	took = srv.sigterm(t)
	close(hook.release)
	t.Logf("point 4 (webhook): serve exited %v after SIGTERM", took.Round(time.Millisecond))
	stops = append(stops, took)
	renderKey := prefix + "renders/default/mp4-360p.mp4"
	if _, ok := bucketFiles(t, gw, "calls", prefix+"renders/")[renderKey]; !ok {
		t.Errorf("%s is not stored although the webhook was being sent", renderKey)
	}

	// The last start finishes the job.
	srv = start()
	srv.log.wait(60*time.Second, `msg="post-call job done"`, "session="+session)
	code, body := get(t, "http://"+addr+"/api/jobs/shut/"+session)
	var st postcall.State
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.Done.IsZero() || st.Uploaded.IsZero() || st.Notified.IsZero() {
		t.Errorf("job state: HTTP %d %s, want done, uploaded and notified", code, body)
	}
	stops = append(stops, srv.sigterm(t))

	if missing := checkComplete(t, gw, dir, prefix, tracks, "after the job"); missing != len(tracks) {
		t.Errorf("%d of %d track files left the disk after the job, want all", missing, len(tracks))
	}
	checkStoredFile(t, gw, prefix+capture.ManifestName, sha256Of(t, filepath.Join(dir, capture.ManifestName)))
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got, want := strings.Join(names, ","), "journal.jsonl,manifest.json,tracks,uploaded.jsonl"; got != want {
		t.Errorf("session folder holds %s, want %s (tracks/ with empty folders)", got, want)
	}
	composite := filepath.Join(t.TempDir(), "composite.mp4")
	b, err := os.ReadFile(filepath.Join(gw.Dir, "calls", filepath.FromSlash(renderKey)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(composite, b, 0o644); err != nil {
		t.Fatal(err)
	}
	checkMedia(t, composite, m)
	hook.mu.Lock()
	if hook.bad > 0 || len(hook.deliveries) != 1 {
		t.Errorf("webhook: %d deliveries, %d bad requests; want exactly 1 delivery after the interrupted one", len(hook.deliveries), hook.bad)
	} else if ev := hook.deliveries[0]; len(ev.Tracks) != len(tracks) || len(ev.Renders) != 1 || len(ev.Renders[0].Files) != 1 {
		t.Errorf("webhook event: %d tracks, renders %+v; want %d tracks and the render", len(ev.Tracks), ev.Renders, len(tracks))
	}
	hook.mu.Unlock()

	// Only journal, manifest and ledger on disk: render still renders, from the ledger's store.
	outDir = t.TempDir()
	out, code, took = tapedeck(withS3, append([]string{"render", dir, "--out", outDir, "--profile", "audio", "--progress", "off"}, s3flags...)...)
	t.Logf("render of the data folder after the job (%v, exit %d):\n%s", took.Round(time.Millisecond), code, out)
	if code != 0 {
		t.Errorf("render of the data folder after the job: exit %d", code)
	}
	checkMedia(t, filepath.Join(outDir, "audio.m4a"), m)

	for i, d := range stops {
		if d > 10*time.Second {
			t.Errorf("stop %d took %v after SIGTERM, want under 10 s", i+1, d)
		}
	}
	t.Logf("%d starts of serve; SIGTERM to exit: %v; test %v without the build", starts, stops, time.Since(began).Round(time.Millisecond))
}

// buildTapedeckRace builds this command, with the race detector when the test runs with it, so
// that a data race in a serve process fails the test (it exits with status 66 and says so).
func buildTapedeckRace(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tapedeck")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// logValue returns the value of key=value in a text log line.
func logValue(line, key string) string {
	for f := range strings.FieldsSeq(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func readManifest(t *testing.T, dir string) *timeline.Manifest {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, capture.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := timeline.ParseManifest(f)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkComplete checks that every track file is on disk, or recorded in the ledger as stored in the
// bucket, where it is with the ledger's SHA-256; it returns how many are not on disk.
func checkComplete(t *testing.T, gw *storagetest.VersityGW, dir, prefix string, tracks []string, when string) int {
	t.Helper()
	ledger := readLedgerFile(t, dir)
	missing := 0
	for _, rel := range tracks {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel))); err == nil {
			continue
		}
		missing++
		e, ok := ledger[rel]
		if !ok {
			t.Errorf("%s: %s is neither on disk nor in the ledger", when, rel)
			continue
		}
		checkStoredFile(t, gw, prefix+rel, e.SHA256)
	}
	t.Logf("%s: %d of %d track files on disk, the others in the store as the ledger says", when, len(tracks)-missing, len(tracks))
	return missing
}

// checkStoredFile compares the SHA-256 of an object, read from the S3 server's folder, with want.
func checkStoredFile(t *testing.T, gw *storagetest.VersityGW, key, want string) {
	t.Helper()
	path := filepath.Join(gw.Dir, "calls", filepath.FromSlash(key))
	if _, err := os.Stat(path); err != nil {
		t.Errorf("%s is not in the bucket: %v", key, err)
		return
	}
	if got := sha256Of(t, path); got != want {
		t.Errorf("%s in the bucket has SHA-256 %s, want %s", key, got, want)
	}
}

// checkMedia checks with ffprobe that a rendered file lasts as long as the recorded media (±0.5 s).
func checkMedia(t *testing.T, path string, m *timeline.Manifest) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Errorf("ffprobe %s: %v", path, err)
		return
	}
	got, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	var last int64 // the end of the recorded media
	for _, l := range m.Lanes {
		for _, tr := range l.Tracks {
			for _, sg := range tr.Segments {
				last = max(last, sg.LastArrivalUnixNS)
			}
		}
	}
	want := time.Duration(last - m.StartUnixNS).Seconds()
	if err != nil || got < want-0.5 || got > want+0.5 {
		t.Errorf("%s lasts %q s, want about %.2f s (the recorded media)", path, strings.TrimSpace(string(out)), want)
	}
}
