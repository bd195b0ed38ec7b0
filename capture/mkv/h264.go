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
	info, ok := parseSPS(sps[0])
	if ok && highProfile(info.profile) {
		// The High profile extension carries chroma format and bit depths.
		rec = append(rec, 0xFC|byte(info.chromaFormat), 0xF8|byte(info.bitDepthLuma-8),
			0xF8|byte(info.bitDepthChroma-8), 0)
	}
	if ok {
		width, height = info.width, info.height
	}
	return rec, width, height, nil
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

// spsInfo is what tapedeck needs from an H.264 SPS.
type spsInfo struct {
	profile        int
	chromaFormat   int
	bitDepthLuma   int
	bitDepthChroma int
	width, height  int
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

// parseSPS reads the fields of a sequence parameter set NAL unit (with
// its one-byte NAL header) up to the frame cropping (H.264 section
// 7.3.2.1.1).
func parseSPS(nal []byte) (spsInfo, bool) {
	if len(nal) < 4 || nal[0]&0x1F != nalSPS {
		return spsInfo{}, false
	}
	r := bitReader{b: unescapeRBSP(nal[1:])}
	info := spsInfo{chromaFormat: 1, bitDepthLuma: 8, bitDepthChroma: 8}
	info.profile = int(r.u(8))
	r.u(16) // constraint flags, level_idc
	r.ue()  // seq_parameter_set_id
	separateColourPlane := false
	if highProfile(info.profile) {
		info.chromaFormat = int(r.ue())
		if info.chromaFormat > 3 {
			return spsInfo{}, false
		}
		if info.chromaFormat == 3 {
			separateColourPlane = r.flag()
		}
		info.bitDepthLuma = int(r.ue()) + 8
		info.bitDepthChroma = int(r.ue()) + 8
		if info.bitDepthLuma > 14 || info.bitDepthChroma > 14 {
			return spsInfo{}, false
		}
		r.u(1)        // qpprime_y_zero_transform_bypass_flag
		if r.flag() { // seq_scaling_matrix_present_flag
			lists := 8
			if info.chromaFormat == 3 {
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
	r.ue()          // log2_max_frame_num_minus4
	switch r.ue() { // pic_order_cnt_type
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.u(1) // delta_pic_order_always_zero_flag
		r.se() // offset_for_non_ref_pic
		r.se() // offset_for_top_to_bottom_field
		n := r.ue()
		for i := uint64(0); i < n && r.ok(); i++ {
			r.se()
		}
	}
	r.ue() // max_num_ref_frames
	r.u(1) // gaps_in_frame_num_value_allowed_flag
	wMBs := r.ue() + 1
	hMapUnits := r.ue() + 1
	frameMBsOnly := r.flag()
	if !frameMBsOnly {
		r.u(1) // mb_adaptive_frame_field_flag
	}
	r.u(1) // direct_8x8_inference_flag
	var cropL, cropR, cropT, cropB uint64
	if r.flag() {
		cropL, cropR, cropT, cropB = r.ue(), r.ue(), r.ue(), r.ue()
	}
	if !r.ok() || wMBs > 1<<16 || hMapUnits > 1<<16 {
		return spsInfo{}, false
	}
	fieldFactor := uint64(2)
	if frameMBsOnly {
		fieldFactor = 1
	}
	// Crop units (H.264 equations 7-19 to 7-22).
	cropX, cropY := uint64(1), fieldFactor
	if !separateColourPlane {
		switch info.chromaFormat {
		case 1:
			cropX, cropY = 2, 2*fieldFactor
		case 2:
			cropX = 2
		}
	}
	w := wMBs * 16
	h := hMapUnits * 16 * fieldFactor
	if cw, ch := cropX*(cropL+cropR), cropY*(cropT+cropB); cw < w && ch < h {
		w -= cw
		h -= ch
	}
	info.width, info.height = int(w), int(h)
	return info, true
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
