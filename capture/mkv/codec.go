package mkv

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// codecInfo describes how one RTP codec is stored.
type codecInfo struct {
	name    string // Track.Codec
	id      string // Matroska CodecID
	video   bool
	docType string
}

// lookupCodec returns the storage description of a Track.Codec name
// (case-insensitive).
func lookupCodec(name string) (codecInfo, bool) {
	switch strings.ToLower(name) {
	case "opus":
		return codecInfo{"opus", "A_OPUS", false, "webm"}, true
	case "vp8":
		return codecInfo{"vp8", "V_VP8", true, "webm"}, true
	case "vp9":
		return codecInfo{"vp9", "V_VP9", true, "webm"}, true
	case "av1":
		return codecInfo{"av1", "V_AV1", true, "webm"}, true
	case "h264":
		return codecInfo{"h264", "V_MPEG4/ISO/AVC", true, "matroska"}, true
	}
	return codecInfo{}, false
}

// codecByID maps a Matroska CodecID back to a Track.Codec name; unknown
// IDs are returned as they are.
func codecByID(id string) string {
	switch id {
	case "A_OPUS":
		return "opus"
	case "V_VP8":
		return "vp8"
	case "V_VP9":
		return "vp9"
	case "V_AV1":
		return "av1"
	case "V_MPEG4/ISO/AVC":
		return "h264"
	}
	return id
}

// opusSampleRate is the rate Opus is always decoded at in Matroska.
const opusSampleRate = 48000

// opusHead builds the OpusHead identification header used as A_OPUS
// CodecPrivate (RFC 7845 section 5.1). Pre-skip is 0: RTP timestamps
// already count from the first coded sample, and a WebRTC receiver plays
// the encoder's lookahead rather than discarding it, so sample 0 of the
// decoded file is the first packet's RTP time. Only channel mapping
// family 0 (mono or stereo) is supported.
func opusHead(channels int) ([]byte, error) {
	if channels < 1 || channels > 2 {
		return nil, fmt.Errorf("mkv: opus with %d channels: %w", channels, ErrUnsupportedCodec)
	}
	b := make([]byte, 0, 19)
	b = append(b, "OpusHead"...)
	b = append(b, 1, byte(channels))
	b = binary.LittleEndian.AppendUint16(b, 0) // pre-skip
	b = binary.LittleEndian.AppendUint32(b, opusSampleRate)
	b = binary.LittleEndian.AppendUint16(b, 0) // output gain
	b = append(b, 0)                           // mapping family
	return b, nil
}

// opusPacketSamples returns the number of 48 kHz samples an Opus packet
// decodes to, from its TOC byte and frame count (RFC 6716 section 3.1),
// or 0 if the packet is malformed.
func opusPacketSamples(p []byte) int {
	if len(p) == 0 {
		return 0
	}
	config := int(p[0] >> 3)
	var frame int // samples per frame at 48 kHz
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		frame = [4]int{480, 960, 1920, 2880}[config&3]
	case config < 16: // hybrid: 10, 20 ms
		frame = [2]int{480, 960}[config&1]
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = [4]int{120, 240, 480, 960}[config&3]
	}
	var count int
	switch p[0] & 3 {
	case 0:
		count = 1
	case 1, 2:
		count = 2
	default:
		if len(p) < 2 {
			return 0
		}
		count = int(p[1] & 0x3F)
	}
	return frame * count
}

// vp8Size reads the frame size from a VP8 keyframe header (RFC 6386
// section 9.1).
func vp8Size(f []byte) (w, h int, ok bool) {
	if len(f) < 10 || f[0]&1 != 0 { // not a keyframe
		return 0, 0, false
	}
	if f[3] != 0x9d || f[4] != 0x01 || f[5] != 0x2a {
		return 0, 0, false
	}
	w = int(binary.LittleEndian.Uint16(f[6:]) & 0x3FFF)
	h = int(binary.LittleEndian.Uint16(f[8:]) & 0x3FFF)
	return w, h, w > 0 && h > 0
}

// vp9Size reads the frame size from the uncompressed header of a VP9
// keyframe (VP9 bitstream specification section 6.2).
func vp9Size(f []byte) (w, h int, ok bool) {
	r := bitReader{b: f}
	if r.u(2) != 2 { // frame_marker
		return 0, 0, false
	}
	profile := r.u(1)
	profile |= r.u(1) << 1
	if profile == 3 {
		r.u(1) // reserved_zero
	}
	if r.flag() { // show_existing_frame
		return 0, 0, false
	}
	if r.flag() { // frame_type: 1 = non-keyframe
		return 0, 0, false
	}
	r.u(2) // show_frame, error_resilient_mode
	if r.u(24) != 0x498342 {
		return 0, 0, false
	}
	if profile >= 2 {
		r.u(1) // ten_or_twelve_bit
	}
	const csRGB = 7
	if r.u(3) != csRGB {
		r.u(1) // color_range
		if profile == 1 || profile == 3 {
			r.u(3) // subsampling_x, subsampling_y, reserved_zero
		}
	} else if profile == 1 || profile == 3 {
		r.u(1) // reserved_zero
	}
	w = int(r.u(16)) + 1
	h = int(r.u(16)) + 1
	return w, h, r.ok()
}
