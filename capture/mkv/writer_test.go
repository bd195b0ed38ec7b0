package mkv

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// memFile is an in-memory io.WriteSeeker.
type memFile struct {
	b   []byte
	pos int
}

func (m *memFile) Write(p []byte) (int, error) {
	if end := m.pos + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	copy(m.b[m.pos:], p)
	m.pos += len(p)
	return len(p), nil
}

func (m *memFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += int64(m.pos)
	case io.SeekEnd:
		off += int64(len(m.b))
	}
	if off < 0 {
		return 0, errors.New("negative position")
	}
	m.pos = int(off)
	return off, nil
}

// plainWriter hides the Seek method of what it wraps.
type plainWriter struct{ w io.Writer }

func (p plainWriter) Write(b []byte) (int, error) { return p.w.Write(b) }

// failWriter fails every write after the first n bytes.
type failWriter struct{ n int }

func (f *failWriter) Write(b []byte) (int, error) {
	if len(b) > f.n {
		k := f.n
		f.n = 0
		return k, errors.New("disk full")
	}
	f.n -= len(b)
	return len(b), nil
}

// vp8Key is a minimal VP8 keyframe header for 320x240 followed by filler.
func vp8Key() []byte {
	return append([]byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00}, make([]byte, 20)...)
}

// scanBlocks scans b and returns its summary and blocks.
func scanBlocks(t testing.TB, b []byte) (Summary, []scannedBlock, []cuePoint) {
	t.Helper()
	s := newScanner(bytes.NewReader(b))
	var blocks []scannedBlock
	var cues []cuePoint
	s.onBlock = func(b scannedBlock) { blocks = append(blocks, b) }
	s.onCue = func(c cuePoint) { cues = append(cues, c) }
	sum, err := s.run()
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	return sum, blocks, cues
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		track Track
		want  error
	}{
		{"unknown codec", Track{Codec: "h265", ClockRate: 90000}, ErrUnsupportedCodec},
		{"opus 6 channels", Track{Codec: "opus", ClockRate: 48000, Channels: 6}, ErrUnsupportedCodec},
		{"no clock", Track{Codec: "vp8"}, nil},
		{"negative size", Track{Codec: "vp8", ClockRate: 90000, Width: -1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewWith(io.Discard, tc.track)
			if err == nil {
				t.Fatal("NewWith succeeded, want an error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			// New fails the same way, without creating the file.
			path := filepath.Join(t.TempDir(), "x.mkv")
			if _, err := New(path, tc.track); err == nil {
				t.Error("New succeeded, want an error")
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("New left a file behind: %v", err)
			}
		})
	}
}

func TestWriteFrameErrors(t *testing.T) {
	w, err := NewWith(io.Discard, Track{Codec: "VP8", ClockRate: 90000})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := w.Track().Codec, "vp8"; got != want {
		t.Errorf("codec = %q, want %q", got, want)
	}
	if err := w.WriteFrame(-1, true, vp8Key()); !errors.Is(err, ErrTimestamp) {
		t.Errorf("negative pts: err = %v, want ErrTimestamp", err)
	}
	if err := w.WriteFrame(0, true, nil); !errors.Is(err, ErrBadFrame) {
		t.Errorf("empty frame: err = %v, want ErrBadFrame", err)
	}
	if err := w.WriteFrame(9000, true, vp8Key()); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(9000, false, []byte{1}); err != nil {
		t.Errorf("equal pts: %v", err)
	}
	if err := w.WriteFrame(8999, false, []byte{1}); !errors.Is(err, ErrTimestamp) {
		t.Errorf("decreasing pts: err = %v, want ErrTimestamp", err)
	}
	if err := w.WriteFrame(12000, false, []byte{1}); err != nil {
		t.Errorf("writer not usable after a rejected frame: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(20000, false, []byte{1}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: err = %v, want ErrClosed", err)
	}
	if err := w.Flush(); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close: err = %v, want ErrClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// A write error sticks: later calls report it instead of writing a file
// with a hole.
func TestWriteErrorSticks(t *testing.T) {
	w, err := NewWith(&failWriter{n: 1000}, Track{Codec: "opus", ClockRate: 48000})
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for i := int64(0); i < 200 && werr == nil; i++ {
		werr = w.WriteFrame(i*960, true, make([]byte, 50))
	}
	if werr == nil {
		t.Fatal("no write error")
	}
	if err := w.WriteFrame(1<<30, true, []byte{1}); err == nil || err.Error() != werr.Error() {
		t.Errorf("after a write error: err = %v, want %v", err, werr)
	}
	if err := w.Close(); err == nil {
		t.Error("Close after a write error returned nil")
	}
}

func TestH264NeedsParameterSets(t *testing.T) {
	var m memFile
	w, err := NewWith(&m, Track{Codec: "h264", ClockRate: 90000})
	if err != nil {
		t.Fatal(err)
	}
	slice := []byte{0, 0, 0, 1, 0x65, 0x88, 0x84}
	if err := w.WriteFrame(0, true, slice); !errors.Is(err, ErrNeedParameterSets) {
		t.Fatalf("IDR without SPS/PPS: err = %v, want ErrNeedParameterSets", err)
	}
	if got := w.Bytes(); got != 0 {
		t.Errorf("%d bytes written for a rejected first frame", got)
	}
	au := append(append(append([]byte{}, testSPS...), testPPS...), slice...)
	if err := w.WriteFrame(3000, true, au); err != nil {
		t.Fatal(err)
	}
	if got, want := w.Track().Width, 320; got != want {
		t.Errorf("width = %d, want %d", got, want)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, blocks, _ := scanBlocks(t, m.b)
	// SPS, PPS and slice, each with a 4-byte length.
	want := []byte{0, 0, 0, byte(len(testSPS) - 4)}
	want = append(want, testSPS[4:]...)
	want = append(want, 0, 0, 0, 4)
	want = append(want, testPPS[4:]...)
	want = append(want, 0, 0, 0, 3, 0x65, 0x88, 0x84)
	if len(blocks) != 1 || !bytes.Equal(blocks[0].data, want) {
		t.Fatalf("blocks = %v, want one holding % x", blocks, want)
	}
	if got, want := blocks[0].ms, int64(33); got != want {
		t.Errorf("block time = %d ms, want %d", got, want)
	}
}

func TestAV1NeedsSequenceHeader(t *testing.T) {
	w, err := NewWith(io.Discard, Track{Codec: "av1", ClockRate: 90000})
	if err != nil {
		t.Fatal(err)
	}
	frame := []byte{0x12, 0x00, 0x32, 0x02, 0xAA, 0xBB} // TD, then a 2-byte OBU_FRAME
	if err := w.WriteFrame(0, true, frame); !errors.Is(err, ErrNeedParameterSets) {
		t.Errorf("err = %v, want ErrNeedParameterSets", err)
	}
	if err := w.WriteFrame(0, true, []byte{0x12, 0x00, 0x32, 0x09}); !errors.Is(err, ErrBadFrame) {
		t.Errorf("OBU size past the end: err = %v, want ErrBadFrame", err)
	}
	if err := w.WriteFrame(0, true, []byte{0x12, 0x00}); !errors.Is(err, ErrBadFrame) {
		t.Errorf("only a temporal delimiter: err = %v, want ErrBadFrame", err)
	}
	tu := append(append([]byte{0x12, 0x00}, testAV1SeqHeader...), 0x32, 0x02, 0xAA, 0xBB)
	if err := w.WriteFrame(0, true, tu); err != nil {
		t.Fatal(err)
	}
	if got := w.Track(); got.Width != 320 || got.Height != 240 {
		t.Errorf("size = %dx%d, want 320x240", got.Width, got.Height)
	}
}

// Clusters are written before a video keyframe, before they span 1 s,
// and on Flush; until then nothing but the header reaches the output.
func TestClusterBoundaries(t *testing.T) {
	t.Run("audio", func(t *testing.T) {
		w, err := NewWith(io.Discard, Track{Codec: "opus", ClockRate: 48000})
		if err != nil {
			t.Fatal(err)
		}
		var header int64
		for i := int64(0); i < 50; i++ { // 0 to 980 ms
			if err := w.WriteFrame(i*960, true, []byte{0xFC, 1, 2}); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				header = w.Bytes()
			}
		}
		if got := w.Bytes(); got != header {
			t.Fatalf("a cluster spanning 980 ms was written (%d bytes, header %d)", got, header)
		}
		if err := w.WriteFrame(50*960, true, []byte{0xFC, 1, 2}); err != nil { // 1000 ms
			t.Fatal(err)
		}
		if got := w.Bytes(); got <= header {
			t.Fatal("the frame at 1000 ms did not start a new cluster")
		}
		written := w.Bytes()
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if w.Bytes() <= written {
			t.Fatal("Flush wrote nothing")
		}
	})
	t.Run("video", func(t *testing.T) {
		var m memFile
		w, err := NewWith(&m, Track{Codec: "vp8", ClockRate: 90000})
		if err != nil {
			t.Fatal(err)
		}
		for i := int64(0); i < 10; i++ {
			if err := w.WriteFrame(i*3000, i == 0, append(vp8Key(), byte(i))); err != nil {
				t.Fatal(err)
			}
		}
		header := w.Bytes()
		if err := w.WriteFrame(10*3000, true, vp8Key()); err != nil {
			t.Fatal(err)
		}
		if w.Bytes() == header {
			t.Fatal("a keyframe did not start a new cluster")
		}
		// A long gap: the next frame, 40 s later, does not fit in an
		// int16 relative timestamp, nor within 1 s.
		if err := w.WriteFrame(40*90000, false, []byte{1}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		sum, blocks, cues := scanBlocks(t, m.b)
		if got, want := sum.Frames, int64(12); got != want {
			t.Fatalf("frames = %d, want %d", got, want)
		}
		if got, want := blocks[11].ms, int64(40000); got != want {
			t.Errorf("last block at %d ms, want %d", got, want)
		}
		// Cues point at the two clusters that start with a keyframe.
		if got, want := len(cues), 2; got != want {
			t.Fatalf("%d cues, want %d", got, want)
		}
		for _, c := range cues {
			at := w.segData + c.pos
			if at+4 > int64(len(m.b)) || !bytes.Equal(m.b[at:at+4], []byte{0x1F, 0x43, 0xB6, 0x75}) {
				t.Errorf("cue at %d ms points at offset %d, which is not a Cluster", c.ms, at)
			}
		}
		if got, want := cues[1].ms, int64(333); got != want {
			t.Errorf("second cue at %d ms, want %d", got, want)
		}
	})
}

// Timestamps are rounded to the nearest millisecond.
func TestTimestampRounding(t *testing.T) {
	for _, tc := range []struct {
		clock int
		pts   int64
		ms    int64
	}{
		{90000, 44, 0},
		{90000, 45, 1}, // 0.5 ms rounds up
		{90000, 3000, 33},
		{90000, 6000, 67},
		{48000, 23, 0},
		{48000, 24, 1},
		{48000, 960, 20},
		{90000, 1 << 62, (1<<62/90000)*1000 + ((1<<62%90000)*1000+45000)/90000},
	} {
		w, err := NewWith(io.Discard, Track{Codec: "vp8", ClockRate: tc.clock})
		if err != nil {
			t.Fatal(err)
		}
		if got := w.toMS(tc.pts); got != tc.ms {
			t.Errorf("toMS(%d) at %d Hz = %d, want %d", tc.pts, tc.clock, got, tc.ms)
		}
	}
}

// Without a seeker, Close writes the last cluster only; the file is still
// complete in frames.
func TestCloseWithoutSeeker(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWith(plainWriter{&buf}, Track{Codec: "opus", ClockRate: 48000})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 120; i++ {
		if err := w.WriteFrame(i*960, true, []byte{0xFC, byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := w.Bytes(), int64(buf.Len()); got != want {
		t.Errorf("Bytes() = %d, output has %d", got, want)
	}
	sum, _, _ := scanBlocks(t, buf.Bytes())
	if got, want := sum.Frames, int64(120); got != want {
		t.Errorf("frames = %d, want %d", got, want)
	}
	if got, want := sum.LastPTS, 119*20*time.Millisecond; got != want {
		t.Errorf("last pts = %v, want %v", got, want)
	}
	if sum.Complete || sum.Cues != 0 {
		t.Errorf("Complete=%v Cues=%d, want an unfinalized file", sum.Complete, sum.Cues)
	}
}

// A writer given a seeker that is not at offset 0 patches relative to
// where it started.
func TestSeekerWithOffset(t *testing.T) {
	m := memFile{b: []byte("prefix"), pos: 6}
	w, err := NewWith(&m, Track{Codec: "opus", ClockRate: 48000})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 100; i++ {
		if err := w.WriteFrame(i*960, true, []byte{0xFC, byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := string(m.b[:6]), "prefix"; got != want {
		t.Fatalf("prefix overwritten: %q", got)
	}
	sum, _, _ := scanBlocks(t, m.b[6:])
	if !sum.Complete || sum.Cues != 2 || sum.Frames != 100 {
		t.Errorf("Complete=%v Cues=%d Frames=%d, want a finalized file of 100 frames in 2 clusters", sum.Complete, sum.Cues, sum.Frames)
	}
	if got, want := sum.Duration, 2*time.Second; got != want {
		t.Errorf("duration = %v, want %v (last packet at 1980 ms lasts 20 ms)", got, want)
	}
}

// Closing a writer that got no frame leaves an empty file.
func TestCloseEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.mkv")
	w, err := New(path, Track{Codec: "vp8", ClockRate: 90000})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 0 {
		t.Errorf("size = %d, want 0", st.Size())
	}
}
