package mkv

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
	"time"
)

// boundary is the state of the output after the writer wrote something.
type boundary struct {
	bytes  int64 // output size
	frames int64 // frames in it
	last   time.Duration
}

// syntheticVideo writes a VP8-like track of small frames (30 fps, a
// keyframe every 45 frames) to m and records each point where a cluster
// reached the output. The last cluster is flushed; the writer is closed
// if close is set.
func syntheticVideo(t testing.TB, m *memFile, n int, close bool) (header int64, bounds []boundary) {
	t.Helper()
	w, err := NewWith(m, Track{Codec: "vp8", ClockRate: 90000})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	var lastMS int64
	for i := 0; i < n; i++ {
		before := w.Bytes()
		data := vp8Key()
		if i%45 != 0 {
			data = make([]byte, 1+rng.Intn(60))
			data[0] = 1
		}
		pts := int64(i) * 3000
		if err := w.WriteFrame(pts, i%45 == 0, data); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			header = w.Bytes()
		} else if w.Bytes() > before {
			bounds = append(bounds, boundary{w.Bytes(), int64(i), time.Duration(lastMS) * time.Millisecond})
		}
		lastMS = w.toMS(pts)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	bounds = append(bounds, boundary{w.Bytes(), int64(n), time.Duration(lastMS) * time.Millisecond})
	if close {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return header, bounds
}

// Cutting a closed file anywhere past the header never makes Scan fail,
// and Scan reports exactly the clusters that are whole.
func TestScanTruncated(t *testing.T) {
	var m memFile
	header, bounds := syntheticVideo(t, &m, 100, true)
	if len(bounds) < 4 {
		t.Fatalf("only %d clusters", len(bounds))
	}
	file := m.b
	for off := 0; off <= len(file); off++ {
		sum, err := Scan(bytes.NewReader(file[:off]))
		if int64(off) < header {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("cut at %d, inside the %d-byte header: err = %v, want io.ErrUnexpectedEOF", off, header, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("cut at %d: %v", off, err)
		}
		want := boundary{bytes: header}
		for _, b := range bounds {
			if b.bytes <= int64(off) {
				want = b
			}
		}
		if sum.Frames != want.frames || sum.ValidBytes != want.bytes || (want.frames > 0 && sum.LastPTS != want.last) {
			t.Fatalf("cut at %d: frames %d, valid %d, last %v; want %d, %d, %v",
				off, sum.Frames, sum.ValidBytes, sum.LastPTS, want.frames, want.bytes, want.last)
		}
		if got, want := sum.Complete, off == len(file); got != want {
			t.Fatalf("cut at %d of %d: Complete = %v", off, len(file), got)
		}
	}
}

// Garbage after the last whole cluster (as a power loss can leave) ends
// the scan quietly; garbage instead of a file is an error.
func TestScanGarbage(t *testing.T) {
	var m memFile
	_, bounds := syntheticVideo(t, &m, 60, false)
	crashed := m.b[:bounds[len(bounds)-2].bytes] // as if killed before the last flush
	want := bounds[len(bounds)-2]
	for name, tail := range map[string][]byte{
		"zeros":          make([]byte, 4096),
		"ones":           bytes.Repeat([]byte{0xFF}, 100),
		"huge cluster":   {0x1F, 0x43, 0xB6, 0x75, 0x01, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0xE7, 0x81},
		"unknown-size":   {0x1F, 0x43, 0xB6, 0x75, 0xFF, 0xE7, 0x81, 0x00, 0xA3, 0x85, 0x81, 0x00, 0x00, 0x80, 0xAA},
		"partial header": {0x1F, 0x43},
	} {
		file := append(append([]byte{}, crashed...), tail...)
		sum, err := Scan(bytes.NewReader(file))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		frames := want.frames
		if name == "unknown-size" {
			frames++ // a valid live-style cluster holding one block
		}
		if sum.Frames != frames || sum.Complete {
			t.Errorf("%s: frames %d complete %v; want %d, false", name, sum.Frames, sum.Complete, frames)
		}
		if name != "unknown-size" && sum.ValidBytes != want.bytes {
			t.Errorf("%s: ValidBytes %d, want %d", name, sum.ValidBytes, want.bytes)
		}
	}

	for name, data := range map[string][]byte{
		"text":      []byte("hello, world, this is not a video"),
		"ogg":       []byte("OggS\x00\x02"),
		"zeros":     make([]byte, 100),
		"wrong doc": appendMaster(nil, idEBML, appendString(nil, idDocType, "mp4")),
	} {
		if _, err := Scan(bytes.NewReader(data)); !errors.Is(err, ErrNotMatroska) {
			t.Errorf("%s: err = %v, want ErrNotMatroska", name, err)
		}
	}
	if _, err := Scan(bytes.NewReader(nil)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("empty input: err = %v, want io.ErrUnexpectedEOF", err)
	}
}

// errReader fails after its data.
type errReader struct{ r io.Reader }

func (e errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, errors.New("disk on fire")
	}
	return n, err
}

// A read error is reported, not taken for the end of the file.
func TestScanReadError(t *testing.T) {
	var m memFile
	syntheticVideo(t, &m, 60, true)
	if _, err := Scan(errReader{bytes.NewReader(m.b[:len(m.b)-10])}); err == nil {
		t.Error("Scan hid a read error")
	}
}

// Scan also counts blocks this package does not write: BlockGroups (a
// keyframe when there is no ReferenceBlock) and laced SimpleBlocks, and
// ignores other tracks.
func TestScanBlockKinds(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWith(plainWriter{&buf}, Track{Codec: "vp8", ClockRate: 90000})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(0, true, vp8Key()); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	block := func(track byte, rel int16, flags byte, data ...byte) []byte {
		return append([]byte{0x80 | track, byte(rel >> 8), byte(rel), flags}, data...)
	}
	var c []byte
	c = appendUint(c, idTimestamp, 100)
	c = appendMaster(c, idBlockGroup, append(appendBytes(nil, idBlock, block(1, 0, 0, 1, 2)), 0xFB, 0x81, 0xF6))
	c = appendMaster(c, idBlockGroup, appendBytes(nil, idBlock, block(1, 10, 0, 3)))
	c = appendBytes(c, idSimpleBlock, block(1, 20, 0x82, 2, 1, 1, 7, 8, 9)) // Xiph lacing, 3 frames
	c = appendBytes(c, idSimpleBlock, block(2, 30, 0x80, 5))                // another track
	c = appendVoid(c, 4)
	file := appendMaster(buf.Bytes(), idCluster, c)
	sum, err := Scan(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Frames != 6 || sum.Keyframes != 5 || sum.LastPTS != 120*time.Millisecond || sum.ValidBytes != int64(len(file)) {
		t.Errorf("got %d frames, %d keyframes, last %v, valid %d; want 6, 5, 120ms, %d",
			sum.Frames, sum.Keyframes, sum.LastPTS, sum.ValidBytes, len(file))
	}
}

// FirstCluster finds the first cluster of a file being written and of the
// same file closed at the same offset, just past the header, and closing
// changes the header but not a byte from there on; what is not Matroska
// has none.
func TestFirstCluster(t *testing.T) {
	var open, closed memFile
	header, _ := syntheticVideo(t, &open, 100, false)
	syntheticVideo(t, &closed, 100, true)
	a, b := FirstCluster(bytes.NewReader(open.b)), FirstCluster(bytes.NewReader(closed.b))
	if a != header || b != header {
		t.Fatalf("first cluster at %d (open) and %d (closed), want %d (the end of the header)", a, b, header)
	}
	if got, want := open.b[a:a+4], []byte{0x1F, 0x43, 0xB6, 0x75}; !bytes.Equal(got, want) {
		t.Fatalf("bytes at the first cluster % X, want the Cluster ID % X", got, want)
	}
	if bytes.Equal(open.b[:a], closed.b[:a]) {
		t.Error("closing left the header as it was; want the Segment size and Duration patched")
	}
	if !bytes.Equal(open.b[a:], closed.b[a:len(open.b)]) {
		t.Error("closing changed bytes after the first cluster's start")
	}
	for _, b := range [][]byte{nil, []byte("RIFF\x00\x00\x00\x00WAVEfmt "), open.b[:header/2]} {
		if got := FirstCluster(bytes.NewReader(b)); got != -1 {
			t.Errorf("FirstCluster(% X...) = %d, want -1", b[:min(len(b), 8)], got)
		}
	}
}
