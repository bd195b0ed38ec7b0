package render_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/render"
)

// signalWriter closes ch on the first write.
type signalWriter struct {
	once sync.Once
	ch   chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if bytes.Contains(p, []byte("ETA")) && !bytes.Contains(p, []byte(" 0%")) {
		w.once.Do(func() { close(w.ch) })
	}
	return w.buf.Write(p)
}

// ffmpegChildren lists the running ffmpeg processes whose parent is this
// process.
func ffmpegChildren(t *testing.T) []int {
	t.Helper()
	self := os.Getpid()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(ffmpeg") && !strings.Contains(s[:i], "(nice") {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(self) && f[0] != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

// TestCancel cancels a render while FFmpeg runs: Render returns the
// context's error at once, FFmpeg is gone, and nothing is left in the output
// folder.
func TestCancel(t *testing.T) {
	requireFFmpeg(t)
	ss := makeSession(t, t.TempDir(), []synthPart{{ID: "alice", Video: "vp8", Audio: true, W: 640, H: 360, Length: 10 * time.Second}})
	out := t.TempDir()
	started := &signalWriter{ch: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-started.ch:
		case <-time.After(20 * time.Second):
		}
		cancel()
	}()
	begin := time.Now()
	_, err := render.Session(ctx, ss.Dir, render.Options{Profiles: []string{render.ProfileWebM720, render.ProfileMP4_1080}, OutDir: out,
		Log: testLogger(t), Progress: started, ProgressTTY: true, Parallel: 1, Nice: 1})
	took := time.Since(begin)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("render returned %v, want context.Canceled", err)
	}
	select {
	case <-started.ch:
	default:
		t.Fatal("the render was cancelled before it reported progress")
	}
	t.Logf("cancelled after %s: %v", took.Round(time.Millisecond), err)
	if pids := ffmpegChildren(t); len(pids) > 0 {
		t.Errorf("ffmpeg still running after cancel: pids %v", pids)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left in the output folder after cancel: %s", e.Name())
	}
}

// TestFailureReportsCommand renders a session whose video file is damaged:
// the error names the step, carries the FFmpeg command line and the end of
// its stderr, and no output is left.
func TestFailureReportsCommand(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	ss := makeSession(t, t.TempDir(), []synthPart{{ID: "alice", Video: "vp8", Audio: true, W: 320, H: 180, Length: 2 * time.Second}})
	video := filepath.Join(ss.Dir, ss.Manifest.Lanes[0].Tracks[0].Segments[0].Path)
	if err := os.WriteFile(video, []byte("this is not a WebM file"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	_, err := render.Session(context.Background(), ss.Dir, render.Options{Profiles: []string{render.ProfileMP4_360}, OutDir: out, Log: testLogger(t)})
	var fe *render.FFmpegError
	if !errors.As(err, &fe) {
		t.Fatalf("render returned %v, want an *FFmpegError", err)
	}
	// The video job draws the audio window of its span too (joint.go).
	if got, want := fe.Step, "video 1/1 and audio 1/1"; got != want {
		t.Errorf("failed step %q, want %q", got, want)
	}
	msg := err.Error()
	for _, want := range []string{"command: ", "ffmpeg", video, "-filter_complex", "stderr (last lines):", "Invalid data"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		t.Errorf("left in the output folder after a failure: %s", e.Name())
	}
}

// TestMissingFFmpeg: without FFmpeg the render fails saying how to install
// it.
func TestMissingFFmpeg(t *testing.T) {
	t.Parallel()
	ss := makeSession(t, t.TempDir(), []synthPart{{ID: "alice", Audio: true, Length: time.Second}})
	_, err := render.Session(context.Background(), ss.Dir, render.Options{FFmpeg: filepath.Join(t.TempDir(), "no-ffmpeg"), OutDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "no-ffmpeg") {
		t.Errorf("render with a missing ffmpeg: %v, want an error naming it", err)
	}
}
