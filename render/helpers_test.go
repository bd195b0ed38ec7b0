package render_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/internal/marks"
	"github.com/tapedeck/tapedeck/timeline"
)

// requireFFmpeg fails the test (never skips it) when FFmpeg is missing.
func requireFFmpeg(t testing.TB) (ffmpeg, ffprobe string) {
	t.Helper()
	ff, fp, err := marks.Tools()
	if err != nil {
		t.Fatalf("these tests run the real FFmpeg: %v", err)
	}
	return ff, fp
}

// testLogger logs to the test's output at warn level (debug with
// TAPEDECK_TEST_DEBUG=1).
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

// ffrun runs ffmpeg with args and fails the test with its stderr on error.
func ffrun(t testing.TB, args ...string) {
	t.Helper()
	ff, _ := requireFFmpeg(t)
	cmd := exec.Command(ff, append([]string{"-hide_banner", "-nostdin", "-y", "-loglevel", "error"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
}

// probeValue returns one ffprobe entry (e.g. "format=duration") of a file.
func probeValue(t testing.TB, path, stream, entry string) string {
	t.Helper()
	_, fp := requireFFmpeg(t)
	args := []string{"-v", "error"}
	if stream != "" {
		args = append(args, "-select_streams", stream)
	}
	args = append(args, "-show_entries", entry, "-of", "default=nw=1:nk=1", path)
	out, err := exec.Command(fp, args...).Output()
	if err != nil {
		t.Fatalf("ffprobe %s %s: %v", entry, path, err)
	}
	return strings.TrimSpace(strings.Split(string(out), "\n")[0])
}

// probeFloat is probeValue as a number.
func probeFloat(t testing.TB, path, stream, entry string) float64 {
	t.Helper()
	s := probeValue(t, path, stream, entry)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("ffprobe %s of %s: %q is not a number", entry, path, s)
	}
	return v
}

// topAtoms lists the top-level MP4 boxes of a file, in order.
func topAtoms(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	var off int64
	hdr := make([]byte, 16)
	for {
		if _, err := f.ReadAt(hdr[:8], off); err != nil {
			if err == io.EOF {
				return names
			}
			t.Fatalf("%s: box at %d: %v", path, off, err)
		}
		size := int64(binary.BigEndian.Uint32(hdr[:4]))
		names = append(names, string(hdr[4:8]))
		switch size {
		case 1:
			if _, err := f.ReadAt(hdr[8:16], off+8); err != nil {
				t.Fatalf("%s: box at %d: %v", path, off, err)
			}
			size = int64(binary.BigEndian.Uint64(hdr[8:16]))
		case 0:
			return names
		}
		if size < 8 {
			t.Fatalf("%s: box %q at %d has size %d", path, hdr[4:8], off, size)
		}
		off += size
	}
}

// indexOf returns the position of s in list, or -1.
func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// videoPackets returns the pts (seconds), duration (seconds) and keyframe
// flags of the first video stream's packets, in presentation order.
func videoPackets(t testing.TB, path string) (pts []float64, key []bool) {
	t.Helper()
	p, k, err := marks.Packets(path, "v")
	if err != nil {
		t.Fatal(err)
	}
	// Packets come in decoding order; sort by pts (insertion sort keeps the
	// flags with them).
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j] < p[j-1]; j-- {
			p[j], p[j-1] = p[j-1], p[j]
			k[j], k[j-1] = k[j-1], k[j]
		}
	}
	return p, k
}

// checkVideo checks what every video output must be: constant frame rate at
// fps, a keyframe at least every 2 s, the plan's length to within a frame.
func checkVideo(t *testing.T, path string, fps timeline.Rational, want time.Duration) {
	t.Helper()
	frame := float64(fps.Den) / float64(fps.Num)
	pts, key := videoPackets(t, path)
	if len(pts) < 2 {
		t.Fatalf("%s: %d video packets", path, len(pts))
	}
	for i := 1; i < len(pts); i++ {
		if d := pts[i] - pts[i-1]; math.Abs(d-frame) > 0.0011 {
			t.Errorf("%s: frames %d and %d are %.4f s apart, want %.4f (constant frame rate)", path, i-1, i, d, frame)
			break
		}
	}
	if got, want := probeValue(t, path, "v:0", "stream=avg_frame_rate"), fmt.Sprintf("%d/%d", fps.Num, fps.Den); got != want {
		t.Errorf("%s: avg_frame_rate %s, want %s", path, got, want)
	}
	last := -1.0
	for i, k := range key {
		if !k {
			continue
		}
		if last >= 0 && pts[i]-last > 2.0+1e-6 {
			t.Errorf("%s: keyframes at %.3f and %.3f s: more than 2 s apart", path, last, pts[i])
		}
		last = pts[i]
	}
	if !key[0] {
		t.Errorf("%s: does not start with a keyframe", path)
	}
	if got := float64(len(pts)) * frame; math.Abs(got-want.Seconds()) > frame+1e-6 {
		t.Errorf("%s: %d frames = %.3f s, the plan lasts %.3f s (want within one frame)", path, len(pts), got, want.Seconds())
	}
	if got := probeFloat(t, path, "", "format=duration"); math.Abs(got-want.Seconds()) > frame+1e-6 {
		t.Errorf("%s: container duration %.3f s, the plan lasts %.3f s (want within one frame)", path, got, want.Seconds())
	}
}

// frameHashes decodes the video frames of a file (from the seek point ss,
// if set; at most n frames if n > 0) and returns their MD5s.
func frameHashes(t testing.TB, path, ss string, n int) []string {
	t.Helper()
	requireFFmpeg(t)
	hashes, err := marks.FrameMD5(path, ss, n)
	if err != nil {
		t.Fatal(err)
	}
	return hashes
}

// checkSeek seeks to n points of the file and checks that the decoded frame
// is the one a straight decode gives at that index.
func checkSeek(t *testing.T, path string, fps timeline.Rational, n int) {
	t.Helper()
	all := frameHashes(t, path, "", 0)
	frame := float64(fps.Den) / float64(fps.Num)
	for i := 0; i < n; i++ {
		// Spread over the file, never exactly on a frame boundary.
		k := (len(all)-2)*(2*i+1)/(2*n) + 1
		at := (float64(k) - 0.2) * frame
		got := frameHashes(t, path, strconv.FormatFloat(at, 'f', 4, 64), 1)
		want := all[k]
		// An accurate seek (-ss before -i) drops the frames before the
		// seek point: it returns the first frame at or after it.
		if len(got) == 0 || got[0] != want {
			t.Errorf("%s: seeking to %.3f s gives a frame other than frame %d of a straight decode", path, at, k)
		}
	}
}

// gray decodes a video to w×h gray frames; it returns the frames' pixels.
func gray(t testing.TB, path string, w, h int) [][]byte {
	t.Helper()
	ff, _ := requireFFmpeg(t)
	out, err := exec.Command(ff, "-v", "error", "-i", path, "-map", "0:v:0", "-vf", fmt.Sprintf("scale=%d:%d:flags=area,format=gray", w, h),
		"-f", "rawvideo", "-").Output()
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	var frames [][]byte
	for i := 0; i+w*h <= len(out); i += w * h {
		frames = append(frames, out[i:i+w*h])
	}
	return frames
}

// meanIn is the mean luma of the cells of a gray frame (w wide, scale
// output pixels per cell) inside the centre of rect r: the middle 30 % of its
// width (a portrait video in a landscape tile covers that) and half of its
// height.
func meanIn(px []byte, w, scale int, r timeline.Rect) float64 {
	x0, y0 := (r.X+r.W*35/100)/scale, (r.Y+r.H/4)/scale
	x1, y1 := (r.X+r.W*65/100)/scale, (r.Y+3*r.H/4)/scale
	sum, n := 0, 0
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			sum += int(px[y*w+x])
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return float64(sum) / float64(n)
}

// flashesIn returns the times (s) of the frames where the centre of rect r
// turns white.
func flashesIn(frames [][]byte, w, scale int, r timeline.Rect, fps timeline.Rational) []float64 {
	var out []float64
	prev := 0.0
	for i, f := range frames {
		m := meanIn(f, w, scale, r)
		if m > 200 && prev <= 200 {
			out = append(out, float64(i)*float64(fps.Den)/float64(fps.Num))
		}
		prev = m
	}
	return out
}

// nearest returns the element of xs nearest to v and the distance.
func nearest(xs []float64, v float64) (float64, float64) {
	best, d := math.NaN(), math.Inf(1)
	for _, x := range xs {
		if dd := math.Abs(x - v); dd < d {
			best, d = x, dd
		}
	}
	return best, d
}

// ms formats seconds as milliseconds.
func ms(v float64) string { return fmt.Sprintf("%.1f ms", v*1000) }

// fileOf returns the path of a test file in dir, creating dir.
func fileOf(t testing.TB, dir, name string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

// writeFile writes a text file.
func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }

// audioSpan returns where the first audio stream of path starts and ends, in
// samples at 48 kHz: its first packet's pts and its last packet's end, as
// FFmpeg reads them (edit list applied).
func audioSpan(t testing.TB, path string) (first, end int64) {
	t.Helper()
	_, ffprobe := requireFFmpeg(t)
	if tb := probeValue(t, path, "a:0", "stream=time_base"); tb != "1/48000" {
		t.Fatalf("%s: audio time base %s, want 1/48000", path, tb)
	}
	out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", "a:0", "-show_entries", "packet=pts,duration",
		"-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	for i, l := range strings.Fields(string(out)) {
		var pts, dur int64
		if _, err := fmt.Sscanf(l, "%d,%d", &pts, &dur); err != nil {
			t.Fatalf("ffprobe %s: packet %q: %v", path, l, err)
		}
		if i == 0 {
			first = pts
		}
		end = pts + dur
	}
	return first, end
}
