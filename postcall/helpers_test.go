package postcall_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
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

	"github.com/nats-io/nats.go"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/capture/capturetest"
	"github.com/tapedeck/tapedeck/examples/publisher"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/timeline"
)

// testLogger logs to the test at warn level (debug with TAPEDECK_TEST_DEBUG=1).
func testLogger(t testing.TB) *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("TAPEDECK_TEST_DEBUG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: lvl}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: run `make deps` (installs FFmpeg from Debian's packages)", name)
	}
	return p
}

// startNATS starts an embedded NATS server with JetStream in a temporary folder and connects to it.
func startNATS(t *testing.T) (*postcall.Embedded, *nats.Conn) {
	t.Helper()
	srv, err := postcall.StartEmbedded(postcall.EmbeddedConfig{StoreDir: t.TempDir()}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := postcall.Connect(t.Context(), srv.URL(), "test", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return srv, nc
}

func sha256File(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sha256Reader(t testing.TB, r io.ReadCloser) string {
	t.Helper()
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ffmpegRenderer is a real renderer of a trivial kind: it encodes the session's first video file to
// an H.264 MP4 with FFmpeg, niced as the spec says. With slow, FFmpeg reads its input at its native
// rate (-re), so a render takes as long as the media.
type ffmpegRenderer struct {
	ffmpeg string
	slow   bool
	// markers, if set, is a folder where each render start leaves a file "start-PID-N".
	markers string

	mu    sync.Mutex
	sums  map[string]string // output path -> SHA-256
	nices []int             // niceness of each FFmpeg run, read from /proc
	// rerenders says, render by render, whether the spec was marked a
	// re-render.
	rerenders []bool
}

func (r *ffmpegRenderer) Render(ctx context.Context, sessionDir string, spec postcall.RenderSpec, outDir string) ([]string, error) {
	f, err := os.Open(filepath.Join(sessionDir, capture.ManifestName))
	if err != nil {
		return nil, err
	}
	m, err := timeline.ParseManifest(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	var input string
	for _, l := range m.Lanes {
		if l.Kind == timeline.Video && len(l.Tracks) > 0 && len(l.Tracks[0].Segments) > 0 {
			input = filepath.Join(sessionDir, filepath.FromSlash(l.Tracks[0].Segments[0].Path))
			break
		}
	}
	if input == "" {
		return nil, fmt.Errorf("no video in %s", sessionDir)
	}
	r.mu.Lock()
	r.rerenders = append(r.rerenders, spec.Rerender)
	r.mu.Unlock()
	if r.markers != "" {
		name := fmt.Sprintf("start-%d-%d", os.Getpid(), time.Now().UnixNano())
		if err := os.WriteFile(filepath.Join(r.markers, name), nil, 0o644); err != nil {
			return nil, err
		}
	}
	args := []string{"-n", strconv.Itoa(spec.Nice), r.ffmpeg, "-v", "error", "-y"}
	if r.slow {
		args = append(args, "-re")
	}
	out := filepath.Join(outDir, "composite.mp4")
	args = append(args, "-i", input, "-an", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
		"-movflags", "+faststart", out)
	cmd := exec.CommandContext(ctx, "nice", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphan when a worker is killed
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	nice := niceOf(cmd.Process.Pid)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("ffmpeg: %v: %s", err, stderr.String())
	}
	sum, err := fileSum(out)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.sums == nil {
		r.sums = map[string]string{}
	}
	r.sums[out] = sum
	r.nices = append(r.nices, nice)
	r.mu.Unlock()
	return []string{"composite.mp4"}, nil
}

// niceOf waits until pid runs ffmpeg (nice execs it) and returns its niceness, or -100.
func niceOf(pid int) int {
	for range 200 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return -100
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			return -100
		}
		if s[open+1:end] == "ffmpeg" {
			f := strings.Fields(s[end+1:])
			// After the command: state(3) ppid(4) ... priority(18) nice(19); f[0] is field 3.
			if len(f) > 16 {
				n, _ := strconv.Atoi(f[16])
				return n
			}
			return -100
		}
		time.Sleep(5 * time.Millisecond)
	}
	return -100
}

func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// webhookReceiver is an HTTP server that checks signatures and keeps every delivery.
type webhookReceiver struct {
	*httptest.Server
	secret []byte
	// fail answers this many first requests with 503.
	fail int

	mu         sync.Mutex
	requests   int
	deliveries []postcall.Event
	bad        []string
	arrived    chan struct{}
}

func startWebhook(t *testing.T, secret string, fail int) *webhookReceiver {
	w := &webhookReceiver{secret: []byte(secret), fail: fail, arrived: make(chan struct{}, 16)}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.mu.Lock()
		defer w.mu.Unlock()
		w.requests++
		if w.requests <= w.fail {
			http.Error(rw, "busy", http.StatusServiceUnavailable)
			return
		}
		if !postcall.VerifySignature(w.secret, body, r.Header.Get(postcall.SignatureHeader)) {
			w.bad = append(w.bad, "bad signature "+r.Header.Get(postcall.SignatureHeader))
			http.Error(rw, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev postcall.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			w.bad = append(w.bad, "bad body: "+err.Error())
			http.Error(rw, "bad body", http.StatusBadRequest)
			return
		}
		w.deliveries = append(w.deliveries, ev)
		rw.WriteHeader(http.StatusNoContent)
		w.arrived <- struct{}{}
	}))
	t.Cleanup(w.Close)
	return w
}

func (w *webhookReceiver) snapshot() (requests int, deliveries []postcall.Event, bad []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.requests, append([]postcall.Event(nil), w.deliveries...), append([]string(nil), w.bad...)
}

// recorder is a capture.Recorder serving WHIP on loopback.
type recorder struct {
	base string
}

func startRecorder(t *testing.T, cfg capture.Config) *recorder {
	t.Helper()
	return &recorder{base: capturetest.Start(t, cfg, testLogger(t)).Base}
}

// publish runs one synthetic participant (VP8 and Opus, 320x240) against endpoint.
func publish(t *testing.T, endpoint, name string, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cfg := publisher.Config{Endpoint: endpoint, Participant: name, Duration: d, Video: publisher.VP8, Audio: true,
		Width: 320, Height: 240, FPS: 30, Bitrate: 400_000}
	if _, err := publisher.PrepareMedia(ctx, cfg, testLogger(t)); err != nil {
		t.Fatalf("media for %s: %v", name, err)
	}
	if _, err := publisher.Run(ctx, cfg, testLogger(t)); err != nil {
		t.Fatalf("publisher %s: %v", name, err)
	}
}

func waitSession(t *testing.T, ch <-chan capture.SessionEnded, d time.Duration) capture.SessionEnded {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(d):
		t.Fatalf("no session ended within %v", d)
	}
	return capture.SessionEnded{}
}
