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

func TestParseSPS(t *testing.T) {
	info, ok := parseSPS(testSPS[4:])
	if !ok {
		t.Fatal("parseSPS failed")
	}
	if info.width != 320 || info.height != 240 || info.profile != 66 {
		t.Errorf("SPS = %+v, want 320x240 profile 66", info)
	}
	for n := 0; n < len(testSPS)-4; n++ {
		parseSPS(testSPS[4 : 4+n]) // must not panic
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

// ue and se write H.264 Exp-Golomb codes.
func (w *bitWriter) ue(v uint64) {
	n := 0
	for (v+1)>>uint(n) > 1 {
		n++
	}
	w.put(0, n)
	w.put(v+1, n+1)
}

func (w *bitWriter) se(v int64) {
	if v > 0 {
		w.ue(uint64(2*v - 1))
	} else {
		w.ue(uint64(-2 * v))
	}
}

// escapeRBSP inserts emulation prevention bytes.
func escapeRBSP(rbsp []byte) []byte {
	var out []byte
	zeros := 0
	for _, c := range rbsp {
		if zeros >= 2 && c <= 3 {
			out = append(out, 3)
			zeros = 0
		}
		out = append(out, c)
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

// An interlaced 1080i High profile SPS with scaling lists, picture order
// count type 1 and bottom cropping exercises the rest of the parser.
func TestParseSPSHigh(t *testing.T) {
	var w bitWriter
	w.put(100, 8) // profile_idc
	w.put(0, 8)   // constraint flags
	w.put(40, 8)  // level_idc
	w.ue(0)       // seq_parameter_set_id
	w.ue(1)       // chroma_format_idc 4:2:0
	w.ue(2)       // bit_depth_luma_minus8
	w.ue(2)       // bit_depth_chroma_minus8
	w.put(0, 1)   // qpprime_y_zero_transform_bypass_flag
	w.put(1, 1)   // seq_scaling_matrix_present_flag
	for i := 0; i < 8; i++ {
		switch i {
		case 0: // 4x4 list ending at once: delta -8 makes next 0
			w.put(1, 1)
			w.se(-8)
		case 6: // 8x8 list of 64 explicit entries
			w.put(1, 1)
			for j := 0; j < 64; j++ {
				w.se(int64(j%3) - 1)
			}
		default:
			w.put(0, 1)
		}
	}
	w.ue(0)     // log2_max_frame_num_minus4
	w.ue(1)     // pic_order_cnt_type
	w.put(0, 1) // delta_pic_order_always_zero_flag
	w.se(-1)    // offset_for_non_ref_pic
	w.se(2)     // offset_for_top_to_bottom_field
	w.ue(2)     // num_ref_frames_in_pic_order_cnt_cycle
	w.se(1)     // offset_for_ref_frame[0]
	w.se(-1)    // offset_for_ref_frame[1]
	w.ue(4)     // max_num_ref_frames
	w.put(0, 1) // gaps_in_frame_num_value_allowed_flag
	w.ue(119)   // pic_width_in_mbs_minus1: 1920
	w.ue(33)    // pic_height_in_map_units_minus1: 34 field MB rows = 1088
	w.put(0, 1) // frame_mbs_only_flag
	w.put(1, 1) // mb_adaptive_frame_field_flag
	w.put(1, 1) // direct_8x8_inference_flag
	w.put(1, 1) // frame_cropping_flag
	w.ue(0)     // left
	w.ue(0)     // right
	w.ue(0)     // top
	w.ue(2)     // bottom: 2 units of 4 lines
	w.put(0, 1) // vui_parameters_present_flag
	w.put(1, 1) // rbsp_stop_one_bit
	nal := append([]byte{0x67}, escapeRBSP(w.bytes())...)
	info, ok := parseSPS(nal)
	if !ok {
		t.Fatal("parseSPS failed")
	}
	want := spsInfo{profile: 100, chromaFormat: 1, bitDepthLuma: 10, bitDepthChroma: 10, width: 1920, height: 1080}
	if info != want {
		t.Errorf("SPS = %+v, want %+v", info, want)
	}
	rec, _, _, err := avcConfig([][]byte{nal}, [][]byte{{0x68, 1}})
	if err != nil {
		t.Fatal(err)
	}
	if ext := rec[len(rec)-4:]; !bytes.Equal(ext, []byte{0xFD, 0xFA, 0xFA, 0}) {
		t.Errorf("High profile avcC extension = % x, want fd fa fa 00", ext)
	}
}
