package mkv

import (
	"encoding/hex"
	"testing"
)

// SPS NAL units written by libx264 (FFmpeg 5.1, one frame of testsrc), with
// what ffprobe reports for their streams. All carry VUI parameters.
const (
	x264Baseline640x360 = "6742c01ed900a02ff97011000003000100000300320f162e48"
	x264Main1280x720    = "674d401feca02802dd80880000030008000003019078c18cb0"
	x264High1920x1080   = "67640028acd940780227e5c044000003000400000300c83c60c658"
	x264High642x362     = "6764001eacd940a42fe224c044000003000400000300c83c58b658"
	x264High422         = "677a000dbcd94141fb011000000300100000030320f1429960"
	x264High444         = "67f4000d919b28283f6022000003000200000300641e28532c"
	x264High10          = "676e000da6cd9416096c0440000003004000000c83c50a6580"
	x264Interlaced      = "6764001eacd940b424d8088000000300800000190f8a14cb"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// spsFields are the fields of a synthetic SPS, written by nal in the order
// of H.264 section 7.3.2.1.1.
type spsFields struct {
	profile, constraints, level uint64
	id                          uint64
	chroma                      uint64 // chroma_format_idc, written for high profiles
	separatePlanes              bool
	depthLuma, depthChroma      uint64 // bit depths minus 8
	scaling                     bool   // lists 0 (4x4, ends at once) and 6 (8x8, 64 entries)
	poc                         uint64 // pic_order_cnt_type
	cycle                       []int64
	wMBs, hMapUnits             uint64
	fields                      bool      // frame_mbs_only_flag 0
	crop                        [4]uint64 // left, right, top, bottom; all 0: no frame_cropping_flag
	vui                         bool
}

func bit(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func (f spsFields) nal() []byte {
	var w bitWriter
	w.put(f.profile, 8)
	w.put(f.constraints, 8)
	w.put(f.level, 8)
	w.ue(f.id)
	if highProfile(int(f.profile)) {
		w.ue(f.chroma)
		if f.chroma == 3 {
			w.put(bit(f.separatePlanes), 1)
		}
		w.ue(f.depthLuma)
		w.ue(f.depthChroma)
		w.put(0, 1) // qpprime_y_zero_transform_bypass_flag
		w.put(bit(f.scaling), 1)
		if f.scaling {
			lists := 8
			if f.chroma == 3 {
				lists = 12
			}
			for i := 0; i < lists; i++ {
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
		}
	}
	w.ue(0) // log2_max_frame_num_minus4
	w.ue(f.poc)
	switch f.poc {
	case 0:
		w.ue(2) // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		w.put(0, 1) // delta_pic_order_always_zero_flag
		w.se(-1)    // offset_for_non_ref_pic
		w.se(2)     // offset_for_top_to_bottom_field
		w.ue(uint64(len(f.cycle)))
		for _, c := range f.cycle {
			w.se(c)
		}
	}
	w.ue(4)     // max_num_ref_frames
	w.put(0, 1) // gaps_in_frame_num_value_allowed_flag
	w.ue(f.wMBs - 1)
	w.ue(f.hMapUnits - 1)
	w.put(bit(!f.fields), 1)
	if f.fields {
		w.put(1, 1) // mb_adaptive_frame_field_flag
	}
	w.put(1, 1) // direct_8x8_inference_flag
	w.put(bit(f.crop != [4]uint64{}), 1)
	if f.crop != [4]uint64{} {
		for _, c := range f.crop {
			w.ue(c)
		}
	}
	w.put(bit(f.vui), 1)
	if f.vui {
		w.put(1, 1)   // aspect_ratio_info_present_flag
		w.put(255, 8) // Extended_SAR
		w.put(4, 16)  // sar_width
		w.put(3, 16)  // sar_height
		w.put(1, 1)   // overscan_info_present_flag
		w.put(0, 1)   // overscan_appropriate_flag
		w.put(1, 1)   // video_signal_type_present_flag
		w.put(5, 3)   // video_format
		w.put(1, 1)   // video_full_range_flag
		w.put(1, 1)   // colour_description_present_flag
		w.put(1, 8)   // colour_primaries
		w.put(1, 8)   // transfer_characteristics
		w.put(1, 8)   // matrix_coefficients
		w.put(1, 1)   // chroma_loc_info_present_flag
		w.ue(0)       // chroma_sample_loc_type_top_field
		w.ue(0)       // chroma_sample_loc_type_bottom_field
		w.put(1, 1)   // timing_info_present_flag
		w.put(1, 32)  // num_units_in_tick
		w.put(60, 32) // time_scale
		w.put(1, 1)   // fixed_frame_rate_flag
		w.put(0, 1)   // nal_hrd_parameters_present_flag
		w.put(0, 1)   // vcl_hrd_parameters_present_flag
		w.put(0, 1)   // pic_struct_present_flag
		w.put(1, 1)   // bitstream_restriction_flag
		w.put(1, 1)   // motion_vectors_over_pic_boundaries_flag
		w.ue(0)       // max_bytes_per_pic_denom
		w.ue(0)       // max_bits_per_mb_denom
		w.ue(16)      // log2_max_mv_length_horizontal
		w.ue(16)      // log2_max_mv_length_vertical
		w.ue(0)       // max_num_reorder_frames
		w.ue(1)       // max_dec_frame_buffering
	}
	w.put(1, 1) // rbsp_stop_one_bit
	return append([]byte{0x67}, escapeRBSP(w.bytes())...)
}

// high1080i is an interlaced 1080i High 10 SPS with scaling lists, picture
// order count type 1 and a bottom crop counted in field pairs.
var high1080i = spsFields{
	profile: 100, level: 40, chroma: 1, depthLuma: 2, depthChroma: 2, scaling: true,
	poc: 1, cycle: []int64{1, -1}, wMBs: 120, hMapUnits: 34, fields: true, crop: [4]uint64{0, 0, 0, 2},
}

// TestParseSPS covers what the two users of ParseSPS need: the Matroska
// writer (profile, level, chroma format and bit depths for avcC; the size for
// the track header) and the capture assembler (the size, for resolution
// events and the manifest): cropping in every chroma format, frame and field
// coding, and VUI parameters, which are not read.
func TestParseSPS(t *testing.T) {
	for _, c := range []struct {
		name string
		nal  []byte
		want SPS
	}{
		{"x264 constrained baseline 320x240", testSPS[4:],
			SPS{Profile: 66, Constraints: 0xc0, Level: 13, ChromaFormat: 1, BitDepthLuma: 8, BitDepthChroma: 8, FrameMBsOnly: true, Width: 320, Height: 240}},
		{"x264 constrained baseline 640x360, cropped from 368", unhex(t, x264Baseline640x360),
			SPS{Profile: 66, Constraints: 0xc0, Level: 30, ChromaFormat: 1, BitDepthLuma: 8, BitDepthChroma: 8, FrameMBsOnly: true, Width: 640, Height: 360}},
		{"x264 main 1280x720", unhex(t, x264Main1280x720),
			SPS{Profile: 77, Constraints: 0x40, Level: 31, ChromaFormat: 1, BitDepthLuma: 8, BitDepthChroma: 8, FrameMBsOnly: true, Width: 1280, Height: 720}},
		{"x264 high 1920x1080, cropped from 1088", unhex(t, x264High1920x1080),
			SPS{Profile: 100, Level: 40, ChromaFormat: 1, BitDepthLuma: 8, BitDepthChroma: 8, FrameMBsOnly: true, Width: 1920, Height: 1080}},
		{"x264 high 642x362, cropped on both axes", unhex(t, x264High642x362),
			SPS{Profile: 100, Level: 30, ChromaFormat: 1, BitDepthLuma: 8, BitDepthChroma: 8, FrameMBsOnly: true, Width: 642, Height: 362}},
		{"x264 high 4:2:2", unhex(t, x264High422),
			SPS{Profile: 122, Level: 13, ChromaFormat: 2, BitDepthLuma: 8, BitDepthChroma: 8, FrameMBsOnly: true, Width: 320, Height: 240}},
		{"x264 high 4:4:4", unhex(t, x264High444),
			SPS{Profile: 244, Level: 13, ChromaFormat: 3, BitDepthLuma: 8, BitDepthChroma: 8, FrameMBsOnly: true, Width: 320, Height: 240}},
		{"x264 high 10", unhex(t, x264High10),
			SPS{Profile: 110, Level: 13, ChromaFormat: 1, BitDepthLuma: 10, BitDepthChroma: 10, FrameMBsOnly: true, Width: 352, Height: 288}},
		{"x264 interlaced 576i", unhex(t, x264Interlaced),
			SPS{Profile: 100, Level: 30, ChromaFormat: 1, BitDepthLuma: 8, BitDepthChroma: 8, FrameMBsOnly: false, Width: 720, Height: 576}},
		{"1080i high 10, scaling lists, poc type 1, crop in field pairs", high1080i.nal(),
			SPS{Profile: 100, Level: 40, ChromaFormat: 1, BitDepthLuma: 10, BitDepthChroma: 10, FrameMBsOnly: false, Width: 1920, Height: 1080}},
		{"every VUI field present, not read", spsFields{profile: 66, level: 11, poc: 2, wMBs: 11, hMapUnits: 9, vui: true}.nal(),
			SPS{Profile: 66, Level: 11, ChromaFormat: 1, BitDepthLuma: 8, BitDepthChroma: 8, FrameMBsOnly: true, Width: 176, Height: 144}},
		{"4:2:2 fields: crop units of 2 by 2", spsFields{profile: 122, level: 30, chroma: 2, wMBs: 40, hMapUnits: 15, fields: true, crop: [4]uint64{1, 1, 1, 1}}.nal(),
			SPS{Profile: 122, Level: 30, ChromaFormat: 2, BitDepthLuma: 8, BitDepthChroma: 8, FrameMBsOnly: false, Width: 636, Height: 476}},
		{"monochrome: crop units of 1 pixel", spsFields{profile: 100, level: 11, chroma: 0, wMBs: 11, hMapUnits: 9, crop: [4]uint64{0, 3, 0, 1}}.nal(),
			SPS{Profile: 100, Level: 11, ChromaFormat: 0, BitDepthLuma: 8, BitDepthChroma: 8, FrameMBsOnly: true, Width: 173, Height: 143}},
		{"4:4:4 separate planes, 12 scaling lists: crop units of 1 pixel", spsFields{profile: 244, level: 13, chroma: 3, separatePlanes: true, scaling: true, wMBs: 20, hMapUnits: 15, crop: [4]uint64{0, 1, 0, 1}}.nal(),
			SPS{Profile: 244, Level: 13, ChromaFormat: 3, BitDepthLuma: 8, BitDepthChroma: 8, FrameMBsOnly: true, Width: 319, Height: 239}},
		{"a crop wider than the picture is ignored, as FFmpeg does", spsFields{profile: 66, level: 13, wMBs: 20, hMapUnits: 15, crop: [4]uint64{100, 100, 0, 0}}.nal(),
			SPS{Profile: 66, Level: 13, ChromaFormat: 1, BitDepthLuma: 8, BitDepthChroma: 8, FrameMBsOnly: true, Width: 320, Height: 240}},
		{"the largest picture a level allows", spsFields{profile: 66, level: 62, wMBs: 1055, hMapUnits: 1055}.nal(),
			SPS{Profile: 66, Level: 62, ChromaFormat: 1, BitDepthLuma: 8, BitDepthChroma: 8, FrameMBsOnly: true, Width: 16880, Height: 16880}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseSPS(c.nal)
			if err != nil {
				t.Fatal(err)
			}
			if want := c.want; got != want {
				t.Errorf("ParseSPS\n got %+v\nwant %+v", got, want)
			}
			// Every prefix parses without panicking; too short for the
			// header, it is refused.
			for n := range c.nal {
				if _, err := ParseSPS(c.nal[:n]); err == nil && n < 4 {
					t.Errorf("ParseSPS of the first %d bytes: no error", n)
				}
			}
		})
	}
}

func TestParseSPSRefuses(t *testing.T) {
	base := spsFields{profile: 100, level: 30, chroma: 1, wMBs: 20, hMapUnits: 15}
	with := func(edit func(*spsFields)) []byte {
		f := base
		edit(&f)
		return f.nal()
	}
	for _, c := range []struct {
		name string
		nal  []byte
		want string
	}{
		{"nothing", nil, "mkv: h264 sps: 0 bytes, too short"},
		{"a PPS", testPPS[4:], "mkv: h264 sps: NAL unit type 8, want 7"},
		{"truncated before the size", testSPS[4:9], "mkv: h264 sps: truncated"},
		{"seq_parameter_set_id 32", with(func(f *spsFields) { f.id = 32 }), "mkv: h264 sps: seq_parameter_set_id 32, want 0 to 31"},
		{"chroma_format_idc 4", with(func(f *spsFields) { f.chroma = 4 }), "mkv: h264 sps: chroma_format_idc 4, want 0 to 3"},
		{"bit depth 15", with(func(f *spsFields) { f.depthLuma = 7 }), "mkv: h264 sps: bit depths 15 and 8, want 8 to 14"},
		{"pic_order_cnt_type 3", with(func(f *spsFields) { f.poc = 3 }), "mkv: h264 sps: pic_order_cnt_type 3, want 0 to 2"},
		{"poc cycle of 256 frames", with(func(f *spsFields) { f.poc, f.cycle = 1, make([]int64, 256) }),
			"mkv: h264 sps: num_ref_frames_in_pic_order_cnt_cycle 256, want 0 to 255"},
		{"wider than any level allows", with(func(f *spsFields) { f.wMBs = 1056 }),
			"mkv: h264 sps: 1056x15 macroblocks, larger than any level allows (1055)"},
		{"taller than any level allows, in field pairs", with(func(f *spsFields) { f.hMapUnits, f.fields = 528, true }),
			"mkv: h264 sps: 20x1056 macroblocks, larger than any level allows (1055)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sps, err := ParseSPS(c.nal)
			if err == nil {
				t.Fatalf("ParseSPS = %+v, want the error %q", sps, c.want)
			}
			if got, want := err.Error(), c.want; got != want {
				t.Errorf("error\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestAVCConfigHigh: the avcC record of a High profile SPS ends with its
// chroma format and bit depths.
func TestAVCConfigHigh(t *testing.T) {
	rec, w, h, err := avcConfig([][]byte{high1080i.nal()}, [][]byte{{0x68, 1}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rec[len(rec)-4:], []byte{0xFD, 0xFA, 0xFA, 0}; string(got) != string(want) {
		t.Errorf("High profile avcC extension = % x, want % x", got, want)
	}
	if got, want := [2]int{w, h}, [2]int{1920, 1080}; got != want {
		t.Errorf("size %v, want %v", got, want)
	}
}

// FuzzParseSPS: ParseSPS never panics, and what it accepts is a size a
// decoder could output and header fields in their ranges.
func FuzzParseSPS(f *testing.F) {
	f.Add(testSPS[4:])
	f.Add(high1080i.nal())
	f.Add(unhex(f, x264High444))
	f.Fuzz(func(t *testing.T, nal []byte) {
		s, err := ParseSPS(nal)
		if err != nil {
			return
		}
		if s.Width < 1 || s.Height < 1 || s.Width > 16*maxMBs || s.Height > 16*maxMBs {
			t.Fatalf("size %dx%d", s.Width, s.Height)
		}
		if s.ChromaFormat < 0 || s.ChromaFormat > 3 || s.BitDepthLuma < 8 || s.BitDepthLuma > 14 || s.BitDepthChroma < 8 || s.BitDepthChroma > 14 {
			t.Fatalf("fields out of range: %+v", s)
		}
	})
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
