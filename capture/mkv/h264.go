package mkv

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// H.264 NAL unit types used here.
const (
	nalSPS = 7
	nalPPS = 8
)

// nalIter walks the NAL units of an Annex B access unit. Bytes before the
// first start code count as a NAL unit too, so a bare NAL unit without a
// start code is accepted. Trailing zero bytes (the zero_byte of the next
// 4-byte start code, trailing_zero_8bits) are not part of a NAL unit.
type nalIter struct{ rest []byte }

// next returns the next non-empty NAL unit.
func (it *nalIter) next() ([]byte, bool) {
	startCode := [3]byte{0, 0, 1}
	for len(it.rest) > 0 {
		var nal []byte
		if i := bytes.Index(it.rest, startCode[:]); i >= 0 {
			nal, it.rest = it.rest[:i], it.rest[i+3:]
		} else {
			nal, it.rest = it.rest, nil
		}
		for len(nal) > 0 && nal[len(nal)-1] == 0 {
			nal = nal[:len(nal)-1]
		}
		if len(nal) > 0 {
			return nal, true
		}
	}
	return nil, false
}

// avcLen returns the size of an Annex B access unit once converted to
// 4-byte length-prefixed NAL units, and the number of NAL units.
func avcLen(au []byte) (size, count int) {
	it := nalIter{rest: au}
	for nal, ok := it.next(); ok; nal, ok = it.next() {
		size += 4 + len(nal)
		count++
	}
	return size, count
}

// appendAVC appends an Annex B access unit as 4-byte length-prefixed NAL
// units (the layout avcC with lengthSizeMinusOne = 3 announces).
func appendAVC(dst, au []byte) []byte {
	it := nalIter{rest: au}
	for nal, ok := it.next(); ok; nal, ok = it.next() {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(nal)))
		dst = append(dst, nal...)
	}
	return dst
}

// paramSets returns the distinct SPS and PPS NAL units of an access unit,
// in order of appearance. The slices alias au.
func paramSets(au []byte) (sps, pps [][]byte) {
	it := nalIter{rest: au}
	for nal, ok := it.next(); ok; nal, ok = it.next() {
		switch nal[0] & 0x1F {
		case nalSPS:
			if !containsBytes(sps, nal) {
				sps = append(sps, nal)
			}
		case nalPPS:
			if !containsBytes(pps, nal) {
				pps = append(pps, nal)
			}
		}
	}
	return sps, pps
}

func containsBytes(list [][]byte, b []byte) bool {
	for _, x := range list {
		if bytes.Equal(x, b) {
			return true
		}
	}
	return false
}

// avcConfig builds an AVCDecoderConfigurationRecord (ISO/IEC 14496-15
// section 5.3.3.1) for the given parameter sets, with 4-byte NAL lengths.
// It also returns the coded picture size from the first SPS when that
// SPS can be parsed (0, 0 otherwise).
func avcConfig(sps, pps [][]byte) (rec []byte, width, height int, err error) {
	if len(sps) == 0 || len(pps) == 0 {
		return nil, 0, 0, ErrNeedParameterSets
	}
	if len(sps[0]) < 4 {
		return nil, 0, 0, fmt.Errorf("h264 SPS of %d bytes is too short: %w", len(sps[0]), ErrBadFrame)
	}
	if len(sps) > 31 || len(pps) > 255 {
		return nil, 0, 0, fmt.Errorf("%d h264 SPS and %d PPS in one access unit: %w", len(sps), len(pps), ErrBadFrame)
	}
	rec = append(rec, 1, sps[0][1], sps[0][2], sps[0][3], 0xFC|3, 0xE0|byte(len(sps)))
	for _, s := range sps {
		if len(s) > 0xFFFF {
			return nil, 0, 0, fmt.Errorf("h264 SPS of %d bytes is too long: %w", len(s), ErrBadFrame)
		}
		rec = binary.BigEndian.AppendUint16(rec, uint16(len(s)))
		rec = append(rec, s...)
	}
	rec = append(rec, byte(len(pps)))
	for _, p := range pps {
		if len(p) > 0xFFFF {
			return nil, 0, 0, fmt.Errorf("h264 PPS of %d bytes is too long: %w", len(p), ErrBadFrame)
		}
		rec = binary.BigEndian.AppendUint16(rec, uint16(len(p)))
		rec = append(rec, p...)
	}
	info, err := ParseSPS(sps[0])
	if err != nil {
		// The record is still right; only the size is not known.
		return rec, 0, 0, nil
	}
	if highProfile(info.Profile) {
		// The High profile extension carries chroma format and bit depths.
		rec = append(rec, 0xFC|byte(info.ChromaFormat), 0xF8|byte(info.BitDepthLuma-8),
			0xF8|byte(info.BitDepthChroma-8), 0)
	}
	return rec, info.Width, info.Height, nil
}

// highProfile reports whether an SPS of this profile_idc carries
// chroma_format_idc and bit depths (H.264 section 7.3.2.1.1).
func highProfile(p int) bool {
	switch p {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		return true
	}
	return false
}

// SPS is what tapedeck reads from an H.264 sequence parameter set: what the
// Matroska track header and its avcC record announce, and the size of the
// pictures a decoder outputs.
type SPS struct {
	Profile     int // profile_idc: 66 Baseline, 77 Main, 100 High, 110 High 10, 122 High 4:2:2, ...
	Constraints int // the byte of constraint_set0..5 flags between profile_idc and level_idc
	Level       int // level_idc: ten times the level (31 is level 3.1)

	ChromaFormat   int // chroma_format_idc: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4
	BitDepthLuma   int // 8 to 14
	BitDepthChroma int // 8 to 14

	// FrameMBsOnly is false when the stream may code fields (interlaced):
	// its height is then counted in pairs of field macroblock rows.
	FrameMBsOnly bool

	// Width and Height are the picture size after the SPS's frame cropping.
	// A cropping window that leaves no picture is ignored, as FFmpeg does.
	Width, Height int
}

// maxMBs is the largest picture width, and height, in macroblocks that any
// H.264 level allows: Sqrt(MaxFS * 8) with the MaxFS of level 6.2, 139264
// (H.264 A.3.1 items f and g).
const maxMBs = 1055

// ParseSPS reads an H.264 sequence parameter set NAL unit (with its one-byte
// NAL header, without start code) up to its frame cropping (H.264 section
// 7.3.2.1.1). The VUI parameters that may follow carry nothing tapedeck uses
// and are not read.
func ParseSPS(nal []byte) (SPS, error) {
	bad := func(format string, args ...any) (SPS, error) {
		return SPS{}, fmt.Errorf("mkv: h264 sps: "+format, args...)
	}
	if len(nal) < 4 {
		return bad("%d bytes, too short", len(nal))
	}
	if t := nal[0] & 0x1F; t != nalSPS {
		return bad("NAL unit type %d, want %d", t, nalSPS)
	}
	r := bitReader{b: unescapeRBSP(nal[1:])}
	info := SPS{ChromaFormat: 1, BitDepthLuma: 8, BitDepthChroma: 8}
	info.Profile = int(r.u(8))
	info.Constraints = int(r.u(8))
	info.Level = int(r.u(8))
	if id := r.ue(); id > 31 {
		return bad("seq_parameter_set_id %d, want 0 to 31", id)
	}
	separateColourPlane := false
	if highProfile(info.Profile) {
		cf := r.ue()
		if cf > 3 {
			return bad("chroma_format_idc %d, want 0 to 3", cf)
		}
		info.ChromaFormat = int(cf)
		if cf == 3 {
			separateColourPlane = r.flag()
		}
		luma, chroma := r.ue(), r.ue()
		if luma > 6 || chroma > 6 {
			return bad("bit depths %d and %d, want 8 to 14", luma+8, chroma+8)
		}
		info.BitDepthLuma, info.BitDepthChroma = int(luma)+8, int(chroma)+8
		r.u(1)        // qpprime_y_zero_transform_bypass_flag
		if r.flag() { // seq_scaling_matrix_present_flag
			lists := 8
			if cf == 3 {
				lists = 12
			}
			for i := 0; i < lists && r.ok(); i++ {
				if r.flag() {
					size := 16
					if i >= 6 {
						size = 64
					}
					skipScalingList(&r, size)
				}
			}
		}
	}
	r.ue() // log2_max_frame_num_minus4
	poc := r.ue()
	switch poc { // pic_order_cnt_type
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.u(1) // delta_pic_order_always_zero_flag
		r.se() // offset_for_non_ref_pic
		r.se() // offset_for_top_to_bottom_field
		n := r.ue()
		if n > 255 {
			return bad("num_ref_frames_in_pic_order_cnt_cycle %d, want 0 to 255", n)
		}
		for i := uint64(0); i < n && r.ok(); i++ {
			r.se() // offset_for_ref_frame
		}
	case 2:
	default:
		if r.ok() {
			return bad("pic_order_cnt_type %d, want 0 to 2", poc)
		}
	}
	r.ue() // max_num_ref_frames
	r.u(1) // gaps_in_frame_num_value_allowed_flag
	wMBs := r.ue() + 1
	hMapUnits := r.ue() + 1
	info.FrameMBsOnly = r.flag()
	if !info.FrameMBsOnly {
		r.u(1) // mb_adaptive_frame_field_flag
	}
	r.u(1) // direct_8x8_inference_flag
	var cropL, cropR, cropT, cropB uint64
	if r.flag() { // frame_cropping_flag
		cropL, cropR, cropT, cropB = r.ue(), r.ue(), r.ue(), r.ue()
	}
	if !r.ok() {
		return bad("truncated")
	}
	fieldFactor := uint64(2)
	if info.FrameMBsOnly {
		fieldFactor = 1
	}
	if wMBs > maxMBs || hMapUnits*fieldFactor > maxMBs {
		return bad("%dx%d macroblocks, larger than any level allows (%d)", wMBs, hMapUnits*fieldFactor, maxMBs)
	}
	// Crop units (H.264 equations 7-19 to 7-22).
	cropX, cropY := uint64(1), fieldFactor
	if !separateColourPlane {
		switch info.ChromaFormat {
		case 1:
			cropX, cropY = 2, 2*fieldFactor
		case 2:
			cropX = 2
		}
	}
	w := wMBs * 16
	h := hMapUnits * 16 * fieldFactor
	// Each crop offset is below 2^32, so these do not overflow.
	if cw, ch := cropX*(cropL+cropR), cropY*(cropT+cropB); cw < w && ch < h {
		w -= cw
		h -= ch
	}
	info.Width, info.Height = int(w), int(h)
	return info, nil
}

// unescapeRBSP removes emulation prevention bytes (00 00 03 -> 00 00).
func unescapeRBSP(nal []byte) []byte {
	out := make([]byte, 0, len(nal))
	zeros := 0
	for _, c := range nal {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		out = append(out, c)
	}
	return out
}

// skipScalingList reads past one scaling_list() (H.264 section 7.3.2.1.1.1).
func skipScalingList(r *bitReader, size int) {
	last, next := int64(8), int64(8)
	for j := 0; j < size && r.ok(); j++ {
		if next != 0 {
			next = (last + r.se() + 256) % 256
		}
		if next != 0 {
			last = next
		}
	}
}
