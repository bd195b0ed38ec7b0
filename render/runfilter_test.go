package render

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/internal/marks"
)

// TestRunFilteringError: FFmpeg 5.1 exits 0 when its filter graph fails
// while running (here concat refusing frames without timestamps: apad's
// silence after an input that gave nothing), after writing a short output.
// The runner takes it for the failure it is and leaves no output.
func TestRunFilteringError(t *testing.T) {
	ff, _, err := marks.Tools()
	if err != nil {
		t.Fatalf("these tests run the real FFmpeg: %v", err)
	}
	dir := t.TempDir()
	r := &runner{ffmpeg: ff, dir: dir, log: slog.New(slog.DiscardHandler)}
	const format = "aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo"
	graph := func(retime string) string {
		return "[0:a]atrim=start=5," + format + ",apad=whole_len=13" + retime + "[a];" +
			"anullsrc=r=48000:cl=stereo,atrim=end_sample=100," + format + "[z];[a][z]concat=n=2:v=0:a=1[o]"
	}
	cmd := func(retime string) Command {
		args := append(baseArgs(), "-f", "lavfi", "-i", "sine=d=1:r=48000", "-filter_complex", graph(retime),
			"-map", "[o]", "-c:a", "pcm_f32le", "-f", "wav", "out.wav")
		return Command{Name: "mix", Args: args, Outputs: []string{"out.wav"}, Duration: time.Second}
	}
	_, err = r.run(context.Background(), cmd(""), func(time.Duration) {})
	var fe *FFmpegError
	if !errors.As(err, &fe) || !errors.Is(err, errFilteringFailed) {
		t.Fatalf("run = %v, want an *FFmpegError for the filtering error", err)
	}
	if !strings.Contains(fe.Stderr, filteringError) {
		t.Errorf("the error's stderr lacks %q:\n%s", filteringError, fe.Stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.wav")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the short output is left: stat: %v", err)
	}
	// Timed by their count, the same frames go through.
	if _, err := r.run(context.Background(), cmd(",asetpts=N/SR/TB"), func(time.Duration) {}); err != nil {
		t.Fatalf("run with the silence timed: %v", err)
	}
	b, err := measureWAV(filepath.Join(dir, "out.wav"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.Samples, int64(113); got != want {
		t.Errorf("%d samples, want %d", got, want)
	}
}
