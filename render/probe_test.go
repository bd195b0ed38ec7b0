package render

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestProbeFile runs the real ffprobe through ffmpeg-go on a small file.
func TestProbeFile(t *testing.T) {
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatalf("this test runs the real FFmpeg (make deps): %v", err)
	}
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatalf("this test runs the real ffprobe (make deps): %v", err)
	}
	path := filepath.Join(t.TempDir(), "clip.mp4")
	out, err := exec.Command(ff, "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=s=64x48:r=10:d=1", "-f", "lavfi", "-i", "sine=d=1",
		"-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	info, err := probeFile(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if v, a := info.codecs("video"), info.codecs("audio"); !slices.Equal(v, []string{"h264"}) || !slices.Equal(a, []string{"aac"}) {
		t.Errorf("codecs: video %v, audio %v; want [h264], [aac]", v, a)
	}
	if d, err := strconv.ParseFloat(info.Format.Duration, 64); err != nil || d < 0.9 || d > 1.2 {
		t.Errorf("duration %q: want about 1 s", info.Format.Duration)
	}

	missing := filepath.Join(t.TempDir(), "missing.mp4")
	if _, err := probeFile(t.Context(), missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("probe of a missing file: %v; want an error naming it", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := probeFile(ctx, path); !errors.Is(err, context.Canceled) {
		t.Errorf("probe with a cancelled context: %v; want context.Canceled", err)
	}
}
