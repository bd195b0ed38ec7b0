package capture_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/capture/capturetest"
	"github.com/tapedeck/tapedeck/internal/marks"
	"github.com/tapedeck/tapedeck/timeline"
)

// testLogger logs to the test's output at warn level, debug with -v and
// TAPEDECK_TEST_DEBUG=1.
func testLogger(t *testing.T) *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("TAPEDECK_TEST_DEBUG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: lvl}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// recorderUnderTest is a Recorder serving WHIP on a loopback port.
type recorderUnderTest struct {
	rec      *capture.Recorder
	base     string // http://127.0.0.1:port
	dataDir  string
	sessions chan capture.SessionEnded
}

func startRecorder(t *testing.T, cfg capture.Config) *recorderUnderTest {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	r := &recorderUnderTest{dataDir: cfg.DataDir, sessions: make(chan capture.SessionEnded, 8)}
	cfg.OnSessionEnd = func(_ context.Context, s capture.SessionEnded) { r.sessions <- s }
	srv := capturetest.Start(t, cfg, testLogger(t))
	r.rec, r.base = srv.Rec, srv.Base
	return r
}

// closeOnCleanup closes rec when the test ends and fails it if Close does
// (a cleanup's t.Context() is already cancelled: Close gets its own).
func closeOnCleanup(t *testing.T, rec *capture.Recorder) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := rec.Close(ctx); err != nil {
			t.Errorf("close recorder: %v", err)
		}
	})
}

func (r *recorderUnderTest) waitSession(t *testing.T, d time.Duration) capture.SessionEnded {
	t.Helper()
	select {
	case s := <-r.sessions:
		return s
	case <-time.After(d):
		t.Fatalf("no session ended within %v", d)
	}
	return capture.SessionEnded{}
}

// decodeStrict decodes a file with `ffmpeg -xerror` and fails the test on
// any decoding error.
func decodeStrict(t *testing.T, path string) {
	t.Helper()
	if err := marks.DecodeStrict(path); err != nil {
		t.Error(err)
	}
}

// probePackets returns the pts (seconds) and keyframe flags of every packet.
func probePackets(t *testing.T, path string) (pts []float64, key []bool) {
	t.Helper()
	pts, key, err := marks.Packets(path, "")
	if err != nil {
		t.Fatal(err)
	}
	return pts, key
}

// decodePCM decodes an audio file to 48 kHz mono samples, gaps filled.
func decodePCM(t *testing.T, path string) []float64 {
	t.Helper()
	s, err := marks.PCM(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// toneOnset finds the first sample near want (±win samples) whose magnitude
// reaches half of the loudest sample in that window; -1 if none is loud.
func toneOnset(s []float64, want, win int) int {
	lo, hi := max(want-win, 0), min(want+win, len(s))
	peak := 0.0
	for i := lo; i < hi; i++ {
		peak = math.Max(peak, math.Abs(s[i]))
	}
	if peak < 0.05 {
		return -1
	}
	for i := lo; i < hi; i++ {
		if math.Abs(s[i]) >= peak/2 {
			return i
		}
	}
	return -1
}

// decodeLuma decodes a video file to tiny gray frames: pts and mean luma.
func decodeLuma(t *testing.T, path string) (pts []float64, luma []float64) {
	t.Helper()
	pts, luma, err := marks.Luma(path)
	if err != nil {
		t.Fatal(err)
	}
	return pts, luma
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

// segDuration is a segment's media duration: first to last frame plus one
// frame (audio 20 ms, video at fps).
func segDuration(s timeline.Segment, c timeline.Codec, frame time.Duration) time.Duration {
	return time.Duration(float64(s.LastRTP-s.FirstRTP)/float64(c.ClockRate)*float64(time.Second)) + frame
}

func msf(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
