package mkv

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestFrameBefore: the last frame at or before an instant, in a file
// closed or still being written, across a 3-s stall, between clusters and
// before the first frame.
func TestFrameBefore(t *testing.T) {
	// Frames (ms): 15 fps for 2 s, nothing for 3 s, then 15 fps for 1 s;
	// keyframes every second.
	var frames []int64
	for ms := int64(0); ms < 2000; ms += 66 {
		frames = append(frames, ms)
	}
	for ms := int64(5000); ms < 6000; ms += 66 {
		frames = append(frames, ms)
	}
	write := func(close bool) []byte {
		var buf bytes.Buffer
		w, err := NewWith(&buf, Track{Codec: "VP8", ClockRate: 90000})
		if err != nil {
			t.Fatal(err)
		}
		last := int64(-1000)
		for _, ms := range frames {
			key := ms-last >= 1000
			if key {
				last = ms
			}
			if err := w.WriteFrame(ms*90, key, vp8Key()); err != nil {
				t.Fatal(err)
			}
		}
		if close {
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		} else if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
	cases := []struct {
		at   time.Duration
		want int64 // -1: none
	}{
		{-ms(1), -1},
		{0, 0},
		{ms(65), 0},
		{ms(66), 66},
		{ms(1000), 990},
		{ms(1980), 1980},
		{ms(4999), 1980}, // in the stall: the frame before it
		{ms(5000), 5000},
		{time.Hour, 5990},
	}
	for _, closed := range []bool{true, false} {
		b := write(closed)
		x, err := IndexClusters(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("closed %v: %v", closed, err)
		}
		if len(x.clusters) < 3 {
			t.Errorf("closed %v: %d clusters indexed, want at least 3 (a keyframe starts each)", closed, len(x.clusters))
		}
		for _, c := range cases {
			got, ok, err := x.FrameBefore(bytes.NewReader(b), c.at)
			if err != nil {
				t.Fatalf("closed %v: FrameBefore(%v): %v", closed, c.at, err)
			}
			switch {
			case c.want < 0 && ok:
				t.Errorf("closed %v: FrameBefore(%v) = %v, want none", closed, c.at, got)
			case c.want >= 0 && (!ok || got != ms(c.want)):
				t.Errorf("closed %v: FrameBefore(%v) = %v, %v; want %v", closed, c.at, got, ok, ms(c.want))
			}
		}
		// A file whose last cluster is cut short: its frames are not
		// indexed (the cluster is being written).
		cut := b[:len(b)-5]
		if closed {
			continue
		}
		x, err = IndexClusters(bytes.NewReader(cut))
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := x.FrameBefore(bytes.NewReader(cut), time.Hour)
		if err != nil || !ok || got >= ms(5000) {
			t.Errorf("cut file: FrameBefore(1h) = %v, %v, %v; want a frame before the last cluster (5 s)", got, ok, err)
		}
	}
	if _, err := IndexClusters(bytes.NewReader([]byte("not a matroska file"))); !errors.Is(err, ErrNotMatroska) {
		t.Errorf("IndexClusters of text: %v, want ErrNotMatroska", err)
	}
}

// TestFrameBeforeFFmpeg: files FFmpeg writes (its own clusters, and
// BlockGroups for the last frame) are indexed too; the times are ffprobe's.
func TestFrameBeforeFFmpeg(t *testing.T) {
	needFFmpeg(t)
	path := filepath.Join(t.TempDir(), "v.webm")
	if _, err := runErr("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=2:duration=4",
		"-c:v", "libvpx", "-g", "4", "-f", "webm", path); err != nil {
		t.Fatal(err)
	}
	f, x := indexFile(t, path)
	for _, c := range []struct{ at, want time.Duration }{
		{700 * time.Millisecond, 500 * time.Millisecond},
		{3 * time.Second, 3 * time.Second},
		{time.Hour, 3500 * time.Millisecond},
	} {
		got, ok, err := x.FrameBefore(f, c.at)
		if err != nil || !ok || got != c.want {
			t.Errorf("FrameBefore(%v) = %v, %v, %v; want %v", c.at, got, ok, err, c.want)
		}
	}
}
