package mkv

import (
	"bytes"
	"errors"
	"testing"
)

// Parameter sets of a 320x240 constrained baseline stream from x264, with
// start codes.
var (
	testSPS = []byte{0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x0d, 0xda, 0x05, 0x07, 0xec, 0x04, 0x40,
		0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0f, 0x03, 0xc5, 0x0a, 0xa8}
	testPPS = []byte{0, 0, 0, 1, 0x68, 0xce, 0x0f, 0xc8}
	// A 320x240 AV1 sequence header OBU from libaom, with its size field.
	testAV1SeqHeader = []byte{0x0a, 0x0b, 0x00, 0x00, 0x00, 0x04, 0x3c, 0xff, 0xbc, 0xda,
		0xf9, 0x00, 0x40}
)

func TestVint(t *testing.T) {
	for _, v := range []uint64{0, 1, 126, 127, 128, 1<<14 - 2, 1<<14 - 1, 1 << 14, 1<<21 - 2, 1<<28 + 5, 1<<56 - 2} {
		b := appendSize(nil, v)
		got, n, allOnes := readVint(b)
		if got != v || n != len(b) || allOnes {
			t.Errorf("size %d encodes as % x, decodes as %d (n=%d, allOnes=%v)", v, b, got, n, allOnes)
		}
	}
	b := appendSizeN(nil, unknownSize, 8)
	if want := []byte{0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}; !bytes.Equal(b, want) {
		t.Errorf("unknown size = % x, want % x", b, want)
	}
	if _, _, allOnes := readVint(b); !allOnes {
		t.Error("unknown size not recognized")
	}
	if _, n, _ := readVint([]byte{0x00, 0x01}); n != 0 {
		t.Error("a zero first byte decoded as a vint")
	}
	if _, n, _ := readVint([]byte{0x40}); n != 0 {
		t.Error("a truncated vint decoded")
	}
}

func TestElements(t *testing.T) {
	for _, tc := range []struct {
		got, want []byte
	}{
		{appendUint(nil, idTimestamp, 0), []byte{0xE7, 0x81, 0x00}},
		{appendUint(nil, idTimestampScal, 1000000), []byte{0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40}},
		{appendString(nil, idDocType, "webm"), []byte{0x42, 0x82, 0x84, 'w', 'e', 'b', 'm'}},
		{appendFloat(nil, idDuration, 1), []byte{0x44, 0x89, 0x88, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0}},
		{appendID(nil, idCluster), []byte{0x1F, 0x43, 0xB6, 0x75}},
	} {
		if !bytes.Equal(tc.got, tc.want) {
			t.Errorf("got % x, want % x", tc.got, tc.want)
		}
	}
	for n := 2; n < 300; n++ {
		b := appendVoid(nil, n)
		if len(b) != n {
			t.Fatalf("appendVoid(%d) is %d bytes", n, len(b))
		}
		ok := children(b, func(id uint32, data []byte) {
			if id != idVoid {
				t.Fatalf("appendVoid(%d) made element %#x", n, id)
			}
		})
		if !ok {
			t.Fatalf("appendVoid(%d) = % x is not one element", n, b)
		}
	}
}

func TestOpusHead(t *testing.T) {
	got, err := opusHead(2)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{'O', 'p', 'u', 's', 'H', 'e', 'a', 'd', 1, 2, 0, 0, 0x80, 0xbb, 0, 0, 0, 0, 0}
	if !bytes.Equal(got, want) {
		t.Errorf("OpusHead = % x, want % x", got, want)
	}
	if _, err := opusHead(3); !errors.Is(err, ErrUnsupportedCodec) {
		t.Errorf("3 channels: err = %v", err)
	}
}

func TestOpusPacketSamples(t *testing.T) {
	for _, tc := range []struct {
		p    []byte
		want int
	}{
		{[]byte{0xFC}, 960},           // CELT FB 20 ms, one frame
		{[]byte{0xF8 | 1}, 1920},      // two 20 ms frames
		{[]byte{0x08}, 960},           // SILK NB 20 ms
		{[]byte{0x18}, 2880},          // SILK NB 60 ms
		{[]byte{0x78}, 960},           // hybrid FB 20 ms
		{[]byte{0x80 | 3, 0x03}, 360}, // CELT 2.5 ms, 3 frames
		{[]byte{0xFF}, 0},             // code 3 without count byte
		{nil, 0},
	} {
		if got := opusPacketSamples(tc.p); got != tc.want {
			t.Errorf("opusPacketSamples(% x) = %d, want %d", tc.p, got, tc.want)
		}
	}
}

func TestVPxSize(t *testing.T) {
	if w, h, ok := vp8Size(vp8Key()); !ok || w != 320 || h != 240 {
		t.Errorf("vp8Size = %d, %d, %v; want 320, 240", w, h, ok)
	}
	inter := vp8Key()
	inter[0] |= 1
	if _, _, ok := vp8Size(inter); ok {
		t.Error("vp8Size read a size from an inter frame")
	}
	// VP9 profile 0 keyframe: frame_marker 2, profile 0, show_existing 0,
	// frame_type 0, show_frame 1, error_res 0, sync code, color_space 1,
	// color_range 0, width-1 = 319, height-1 = 239.
	var bw bitWriter
	bw.put(2, 2)
	bw.put(0, 2)
	bw.put(0, 1)
	bw.put(0, 1)
	bw.put(1, 1)
	bw.put(0, 1)
	bw.put(0x498342, 24)
	bw.put(1, 3)
	bw.put(0, 1)
	bw.put(319, 16)
	bw.put(239, 16)
	if w, h, ok := vp9Size(bw.bytes()); !ok || w != 320 || h != 240 {
		t.Errorf("vp9Size = %d, %d, %v; want 320, 240", w, h, ok)
	}
	if _, _, ok := vp9Size(bw.bytes()[:5]); ok {
		t.Error("vp9Size read a truncated header")
	}
}

// bitWriter builds bit fields for tests.
type bitWriter struct {
	b []byte
	n int
}

func (w *bitWriter) put(v uint64, bits int) {
	for i := bits - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[len(w.b)-1] |= byte(v>>uint(i)&1) << (7 - uint(w.n%8))
		w.n++
	}
}

func (w *bitWriter) bytes() []byte { return w.b }

func TestNALs(t *testing.T) {
	au := []byte{0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 4, 0, 0, 3, 0, 5, 0}
	var got [][]byte
	it := nalIter{rest: au}
	for nal, ok := it.next(); ok; nal, ok = it.next() {
		got = append(got, nal)
	}
	want := [][]byte{{0x67, 1, 2}, {0x68, 3}, {0x65, 4, 0, 0, 3, 0, 5}}
	if len(got) != len(want) {
		t.Fatalf("NALs = % x, want % x", got, want)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("NAL %d = % x, want % x", i, got[i], want[i])
		}
	}
	size, count := avcLen(au)
	avc := appendAVC(nil, au)
	if size != len(avc) || count != 3 {
		t.Errorf("avcLen = %d, %d; appendAVC made %d bytes", size, count, len(avc))
	}
	wantAVC := []byte{0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 2, 0x68, 3, 0, 0, 0, 7, 0x65, 4, 0, 0, 3, 0, 5}
	if !bytes.Equal(avc, wantAVC) {
		t.Errorf("appendAVC = % x, want % x", avc, wantAVC)
	}
	if _, count := avcLen([]byte{0, 0, 0, 1, 0, 0}); count != 0 {
		t.Errorf("start code only: %d NALs", count)
	}
	// A bare NAL unit without start code is taken whole.
	if got := appendAVC(nil, []byte{0x65, 9}); !bytes.Equal(got, []byte{0, 0, 0, 2, 0x65, 9}) {
		t.Errorf("bare NAL = % x", got)
	}
}

func TestAVCConfig(t *testing.T) {
	sps, pps := paramSets(append(append(append([]byte{}, testSPS...), testPPS...), testSPS...))
	if len(sps) != 1 || len(pps) != 1 {
		t.Fatalf("%d SPS, %d PPS; want 1 each (duplicates dropped)", len(sps), len(pps))
	}
	rec, w, h, err := avcConfig(sps, pps)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0, byte(len(testSPS) - 4)}
	want = append(want, testSPS[4:]...)
	want = append(want, 1, 0, 4)
	want = append(want, testPPS[4:]...)
	if !bytes.Equal(rec, want) || w != 320 || h != 240 {
		t.Errorf("avcC = % x (%dx%d), want % x (320x240)", rec, w, h, want)
	}
	if _, _, _, err := avcConfig(sps, nil); !errors.Is(err, ErrNeedParameterSets) {
		t.Errorf("no PPS: err = %v", err)
	}
}

func TestAV1Config(t *testing.T) {
	tu := append(append([]byte{0x12, 0x00}, testAV1SeqHeader...), 0x32, 0x01, 0x10)
	rec, w, h, err := av1Config(tu)
	if err != nil {
		t.Fatal(err)
	}
	if w != 320 || h != 240 {
		t.Errorf("size = %dx%d, want 320x240", w, h)
	}
	// Main profile, 8-bit 4:2:0: marker/version, profile 0 and the
	// level, then chroma subsampling x and y set.
	// FFmpeg writes 81 00 0c 00 for this stream.
	if !bytes.Equal(rec[:4], []byte{0x81, 0x00, 0x0c, 0x00}) {
		t.Errorf("av1C header = % x", rec)
	}
	if !bytes.Equal(rec[4:], testAV1SeqHeader) {
		t.Errorf("av1C configOBUs = % x, want % x", rec[4:], testAV1SeqHeader)
	}
	size, count, err := av1Len(tu)
	if err != nil || count != 2 || size != len(tu)-2 {
		t.Errorf("av1Len = %d, %d, %v; want %d, 2, nil", size, count, err, len(tu)-2)
	}
	if got := appendAV1(nil, tu); !bytes.Equal(got, tu[2:]) {
		t.Errorf("appendAV1 = % x, want % x", got, tu[2:])
	}
	// A sequence header without size field (last OBU) gets one in av1C.
	noSize := append([]byte{0x08}, testAV1SeqHeader[2:]...)
	rec2, _, _, err := av1Config(noSize)
	if err != nil || !bytes.Equal(rec2[4:], testAV1SeqHeader) {
		t.Errorf("av1C from unsized OBU = % x, %v", rec2, err)
	}
	for n := 0; n < len(testAV1SeqHeader)-2; n++ {
		parseAV1SeqHeader(testAV1SeqHeader[2 : 2+n]) // must not panic
	}
}
