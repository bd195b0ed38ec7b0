package mkv

import (
	"errors"
)

// AV1 OBU types used here (AV1 specification section 6.2.2).
const (
	obuSequenceHeader    = 1
	obuTemporalDelimiter = 2
)

var errBadOBU = errors.New("malformed AV1 OBU")

// obu is one Open Bitstream Unit of a temporal unit.
type obu struct {
	typ     byte
	header  []byte // obu_header, with the extension byte if any
	payload []byte
	whole   []byte // header, size field and payload as found
}

// obuIter walks the OBUs of a temporal unit in the low overhead bitstream
// format (AV1 specification section 5.2): each OBU has obu_has_size_field
// set, except that the last one may omit it and fill the rest.
type obuIter struct {
	rest []byte
	err  error
}

func (it *obuIter) next() (obu, bool) {
	if len(it.rest) == 0 || it.err != nil {
		return obu{}, false
	}
	b := it.rest
	h := b[0]
	if h&0x80 != 0 { // obu_forbidden_bit
		it.err = errBadOBU
		return obu{}, false
	}
	hl := 1
	if h&0x04 != 0 { // obu_extension_flag
		hl = 2
	}
	if len(b) < hl {
		it.err = errBadOBU
		return obu{}, false
	}
	end := len(b)
	start := hl
	if h&0x02 != 0 { // obu_has_size_field
		size, n := readLeb128(b[hl:])
		if n == 0 || size > uint64(len(b)-hl-n) {
			it.err = errBadOBU
			return obu{}, false
		}
		start = hl + n
		end = start + int(size)
	}
	o := obu{typ: h >> 3 & 0x0F, header: b[:hl], payload: b[start:end], whole: b[:end]}
	it.rest = b[end:]
	return o, true
}

// readLeb128 decodes an unsigned LEB128 value of at most 8 bytes whose
// value fits in 32 bits. n is 0 if the encoding is invalid or truncated.
func readLeb128(b []byte) (v uint64, n int) {
	for i := 0; i < 8 && i < len(b); i++ {
		v |= uint64(b[i]&0x7F) << (7 * uint(i))
		if b[i]&0x80 == 0 {
			if v > 1<<32-1 {
				return 0, 0
			}
			return v, i + 1
		}
	}
	return 0, 0
}

// appendLeb128 appends v in the shortest LEB128 encoding.
func appendLeb128(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// av1Len validates a temporal unit and returns its size once temporal
// delimiter OBUs are removed (the Matroska AV1 mapping says they SHOULD
// be), and the number of OBUs kept.
func av1Len(tu []byte) (size, count int, err error) {
	it := obuIter{rest: tu}
	for o, ok := it.next(); ok; o, ok = it.next() {
		if o.typ != obuTemporalDelimiter {
			size += len(o.whole)
			count++
		}
	}
	return size, count, it.err
}

// appendAV1 appends a temporal unit without its temporal delimiter OBUs.
// The unit must have passed av1Len.
func appendAV1(dst, tu []byte) []byte {
	it := obuIter{rest: tu}
	for o, ok := it.next(); ok; o, ok = it.next() {
		if o.typ != obuTemporalDelimiter {
			dst = append(dst, o.whole...)
		}
	}
	return dst
}

// av1SeqHeader is what tapedeck needs from an AV1 sequence header.
type av1SeqHeader struct {
	profile, level, tier        uint64
	highBitDepth, twelveBit     bool
	mono                        bool
	subX, subY, chromaSamplePos uint64
	width, height               int
}

// av1Config finds the sequence header OBU of a temporal unit and builds
// the AV1CodecConfigurationRecord (av1C) used as V_AV1 CodecPrivate, with
// the sequence header as its only configOBU. It also returns the maximum
// frame size the sequence header announces.
func av1Config(tu []byte) (rec []byte, width, height int, err error) {
	it := obuIter{rest: tu}
	for o, ok := it.next(); ok; o, ok = it.next() {
		if o.typ != obuSequenceHeader {
			continue
		}
		s, ok := parseAV1SeqHeader(o.payload)
		if !ok {
			return nil, 0, 0, errBadOBU
		}
		rec = append(rec,
			0x81, // marker, version 1
			byte(s.profile<<5|s.level&0x1F),
			byte(s.tier<<7|b2u(s.highBitDepth)<<6|b2u(s.twelveBit)<<5|b2u(s.mono)<<4|
				s.subX<<3|s.subY<<2|s.chromaSamplePos&3),
			0, // no initial_presentation_delay
		)
		// configOBUs must carry obu_has_size_field.
		rec = append(rec, o.header[0]|0x02)
		rec = append(rec, o.header[1:]...)
		rec = appendLeb128(rec, uint64(len(o.payload)))
		rec = append(rec, o.payload...)
		return rec, s.width, s.height, nil
	}
	if it.err != nil {
		return nil, 0, 0, it.err
	}
	return nil, 0, 0, ErrNeedParameterSets
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// parseAV1SeqHeader reads a sequence_header_obu payload up to the end of
// color_config (AV1 specification section 5.5).
func parseAV1SeqHeader(p []byte) (av1SeqHeader, bool) {
	var s av1SeqHeader
	r := bitReader{b: p}
	s.profile = r.u(3)
	r.u(1) // still_picture
	reduced := r.flag()
	if reduced {
		s.level = r.u(5)
	} else {
		decoderModelInfo := false
		bufferDelayLen := 0
		if r.flag() { // timing_info_present_flag
			r.u(32)       // num_units_in_display_tick
			r.u(32)       // time_scale
			if r.flag() { // equal_picture_interval
				r.uvlc() // num_ticks_per_picture_minus_1
			}
			decoderModelInfo = r.flag()
			if decoderModelInfo {
				bufferDelayLen = int(r.u(5)) + 1
				r.u(32) // num_units_in_decoding_tick
				r.u(10) // buffer_removal_time_length_minus_1, frame_presentation_time_length_minus_1
			}
		}
		initialDisplayDelay := r.flag()
		points := int(r.u(5)) + 1
		for i := 0; i < points && r.ok(); i++ {
			r.u(12) // operating_point_idc
			level := r.u(5)
			var tier uint64
			if level > 7 {
				tier = r.u(1)
			}
			if i == 0 {
				s.level, s.tier = level, tier
			}
			if decoderModelInfo && r.flag() {
				r.u(2*bufferDelayLen + 1) // decoder/encoder_buffer_delay, low_delay_mode_flag
			}
			if initialDisplayDelay && r.flag() {
				r.u(4) // initial_display_delay_minus_1
			}
		}
	}
	wBits := int(r.u(4)) + 1
	hBits := int(r.u(4)) + 1
	s.width = int(r.u(wBits)) + 1
	s.height = int(r.u(hBits)) + 1
	if !reduced && r.flag() { // frame_id_numbers_present_flag
		r.u(7) // delta_frame_id_length_minus_2, additional_frame_id_length_minus_1
	}
	r.u(3) // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
	if !reduced {
		r.u(4) // interintra, masked compound, warped motion, dual filter
		orderHint := r.flag()
		if orderHint {
			r.u(2) // enable_jnt_comp, enable_ref_frame_mvs
		}
		forceScreenContent := uint64(2) // SELECT_SCREEN_CONTENT_TOOLS
		if !r.flag() {                  // seq_choose_screen_content_tools
			forceScreenContent = r.u(1)
		}
		if forceScreenContent > 0 && !r.flag() { // seq_choose_integer_mv
			r.u(1) // seq_force_integer_mv
		}
		if orderHint {
			r.u(3) // order_hint_bits_minus_1
		}
	}
	r.u(3) // enable_superres, enable_cdef, enable_restoration

	// color_config
	s.highBitDepth = r.flag()
	if s.profile == 2 && s.highBitDepth {
		s.twelveBit = r.flag()
	}
	if s.profile != 1 {
		s.mono = r.flag()
	}
	cp, tc, mc := uint64(2), uint64(2), uint64(2) // unspecified
	if r.flag() {                                 // color_description_present_flag
		cp, tc, mc = r.u(8), r.u(8), r.u(8)
	}
	const (
		cpBT709     = 1
		tcSRGB      = 13
		mcIdentity  = 0
		profileMain = 0
		profileHigh = 1
	)
	switch {
	case s.mono:
		r.u(1) // color_range
		s.subX, s.subY = 1, 1
	case cp == cpBT709 && tc == tcSRGB && mc == mcIdentity:
		// 4:4:4, full range.
	default:
		r.u(1) // color_range
		switch s.profile {
		case profileMain:
			s.subX, s.subY = 1, 1
		case profileHigh:
		default:
			if s.twelveBit {
				s.subX = r.u(1)
				if s.subX == 1 {
					s.subY = r.u(1)
				}
			} else {
				s.subX = 1
			}
		}
		if s.subX == 1 && s.subY == 1 {
			s.chromaSamplePos = r.u(2)
		}
	}
	return s, r.ok() && s.profile <= 7
}
