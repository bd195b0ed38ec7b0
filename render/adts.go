package render

import (
	"errors"
	"fmt"
)

// Chunked AAC: the mix's AAC is encoded in chunks (during the call, or in
// parallel) whose packets are spliced into the one stream a one-pass encode
// would have made.
//
// FFmpeg's native encoder (aac) delays its output by aacPriming samples and
// emits one packet per aacFrameSamples: packet k is the MDCT of source
// samples [(k−1)·1024, (k+1)·1024) (the source preceded by 1024 zeros), and
// its window decision looks into the next frame, [(k+1)·1024, (k+2)·1024).
// A source of n samples gives aacPackets(n) = ⌈n/1024⌉+1 packets; a decoder
// makes source frame k−1 from packets k−1 and k.
//
// A chunk that contributes the packets [From, To) of the whole is encoded
// alone from source sample Start = max(0, From−preroll)·1024 to End =
// min(n, (To+tail)·1024): the preroll frames bring the encoder's state and
// any stateful filter before it (a limiter) to the one-pass encoder's, the
// tail frames give its last packet's window decision the lookahead it needs
// (two, with a limiter, whose output ends differently near End). Its
// packets [From−Start/1024, To−Start/1024) replace the one-pass encoder's
// [From, To). The window decision remembers three frames: with preroll ≥ 4
// the window sequences on both sides of a junction are the one-pass
// encoder's (fewer make the overlap-add of the junction frame fail: a click).
// The rate control (lambda) and bit reservoir remember longer, so the
// packets are not the one-pass encoder's bit for bit; preroll 8 makes them
// as good near the junctions as elsewhere.
// The chunks write ADTS (-f adts), whose frame headers carry each packet's
// length; joinADTS cuts and joins them. The joined stream is put in MP4 by
// stream copy with aacSetts, which shifts it by the priming (an edit list
// skipping 1024 samples, as a one-pass -f mp4 encode writes) and gives its
// last packet the duration that ends it on the source's last sample.

const (
	// aacFrameSamples is the number of samples (per channel) of one AAC-LC
	// packet.
	aacFrameSamples = 1024
	// aacPriming is the initial padding of FFmpeg's native AAC encoder.
	aacPriming = 1024
)

// aacPackets returns how many packets FFmpeg's native AAC encoder emits for
// n samples: the priming and the samples, in whole frames.
func aacPackets(n int64) int {
	return int((n + aacPriming + aacFrameSamples - 1) / aacFrameSamples)
}

// aacLastDuration returns the duration (samples) of the last of the
// aacPackets(n) packets, the part of it that holds source samples: the
// whole's decoded length is then exactly n after the priming is skipped.
func aacLastDuration(n int64) int64 {
	return n + aacPriming - int64(aacPackets(n)-1)*aacFrameSamples
}

// aacChunk is one chunk of a chunked AAC encode.
type aacChunk struct {
	// From and To are the packets of the whole that the chunk
	// contributes: [From, To).
	From, To int
	// Start and End are the source samples the chunk's encode is fed:
	// [Start, End). Start is a multiple of aacFrameSamples.
	Start, End int64
}

// skip returns the number of the chunk encode's packets (its preroll)
// before those it contributes.
func (c aacChunk) skip() int { return c.From - int(c.Start/aacFrameSamples) }

// packets returns the number of packets the chunk's encode emits.
func (c aacChunk) packets() int { return aacPackets(c.End - c.Start) }

// errADTS is wrapped by the errors of malformed ADTS streams.
var errADTS = errors.New("malformed ADTS stream")

// adtsHeader is the fixed part of an ADTS frame header that must not change
// within a stream, and the frame's lengths.
type adtsHeader struct {
	// Profile is the MPEG-4 audio object type minus one (1: AAC-LC),
	// Rate the sampling-frequency index (3: 48 kHz), Channels the
	// channel configuration.
	Profile, Rate, Channels int
	// HeaderLen is 7, or 9 with a CRC; FrameLen the whole frame's
	// length, header included (bytes).
	HeaderLen, FrameLen int
}

// sameStream reports whether h and o describe the same audio format.
func (h adtsHeader) sameStream(o adtsHeader) bool {
	return h.Profile == o.Profile && h.Rate == o.Rate && h.Channels == o.Channels
}

// parseADTSHeader reads the ADTS header at the start of b. It accepts only
// frames of one raw data block (1024 samples), as FFmpeg's ADTS muxer
// writes them.
func parseADTSHeader(b []byte) (adtsHeader, error) {
	if len(b) < 7 {
		return adtsHeader{}, fmt.Errorf("%w: %d bytes left, short of a header", errADTS, len(b))
	}
	if b[0] != 0xff || b[1]&0xf6 != 0xf0 {
		return adtsHeader{}, fmt.Errorf("%w: no syncword (% x)", errADTS, b[:2])
	}
	h := adtsHeader{
		Profile:   int(b[2] >> 6),
		Rate:      int(b[2] >> 2 & 0xf),
		Channels:  int(b[2]&1)<<2 | int(b[3]>>6),
		HeaderLen: 7,
		FrameLen:  int(b[3]&3)<<11 | int(b[4])<<3 | int(b[5]>>5),
	}
	if b[1]&1 == 0 {
		h.HeaderLen = 9
	}
	if blocks := int(b[6]&3) + 1; blocks != 1 {
		return adtsHeader{}, fmt.Errorf("%w: %d raw data blocks in a frame", errADTS, blocks)
	}
	if h.FrameLen <= h.HeaderLen {
		return adtsHeader{}, fmt.Errorf("%w: frame length %d", errADTS, h.FrameLen)
	}
	if h.FrameLen > len(b) {
		return adtsHeader{}, fmt.Errorf("%w: frame of %d bytes, %d left", errADTS, h.FrameLen, len(b))
	}
	return h, nil
}

// splitADTS cuts an ADTS stream into its frames (each with its header), all
// of one format, which it returns too.
func splitADTS(data []byte) ([][]byte, adtsHeader, error) {
	var frames [][]byte
	var first adtsHeader
	for off := 0; off < len(data); {
		h, err := parseADTSHeader(data[off:])
		if err != nil {
			return nil, adtsHeader{}, fmt.Errorf("render: ADTS frame %d at byte %d: %w", len(frames), off, err)
		}
		if len(frames) == 0 {
			first = h
		} else if !h.sameStream(first) {
			return nil, adtsHeader{}, fmt.Errorf("render: ADTS frame %d at byte %d: %w: format %+v after %+v", len(frames), off, errADTS, h, first)
		}
		frames = append(frames, data[off:off+h.FrameLen])
		off += h.FrameLen
	}
	if len(frames) == 0 {
		return nil, adtsHeader{}, fmt.Errorf("render: %w: no frames", errADTS)
	}
	return frames, first, nil
}

// joinADTS splices the chunks' ADTS streams, streams[i] the whole output of
// plan[i]'s encode, into the whole's ADTS stream: from each, the packets
// it contributes. Each stream must hold exactly the packets its encode
// emits (a check of the encoder's framing and priming) and all must be of
// one format.
func joinADTS(plan []aacChunk, streams [][]byte) ([]byte, error) {
	if len(plan) != len(streams) {
		return nil, fmt.Errorf("render: joining AAC: %d chunks, %d streams", len(plan), len(streams))
	}
	var out []byte
	var format adtsHeader
	next := 0
	for i, c := range plan {
		if c.From != next || c.To <= c.From || c.Start < 0 || c.Start%aacFrameSamples != 0 || c.skip() < 0 {
			return nil, fmt.Errorf("render: joining AAC: chunk %d %+v does not follow packet %d", i, c, next)
		}
		frames, h, err := splitADTS(streams[i])
		if err != nil {
			return nil, fmt.Errorf("render: joining AAC: chunk %d: %w", i, err)
		}
		if i == 0 {
			format = h
		} else if !h.sameStream(format) {
			return nil, fmt.Errorf("render: joining AAC: chunk %d: format %+v after %+v", i, h, format)
		}
		if len(frames) != c.packets() {
			return nil, fmt.Errorf("render: joining AAC: chunk %d: %d packets for %d samples, want %d", i, len(frames), c.End-c.Start, c.packets())
		}
		if c.skip()+c.To-c.From > len(frames) {
			return nil, fmt.Errorf("render: joining AAC: chunk %d: %d packets, short of %d", i, len(frames), c.skip()+c.To-c.From)
		}
		for _, f := range frames[c.skip() : c.skip()+c.To-c.From] {
			out = append(out, f...)
		}
		next = c.To
	}
	return out, nil
}

// aacSetts returns the setts bitstream filter that puts the joined stream of
// n samples (its aacPackets(n) packets, each of 1024 samples when read as
// ADTS) in MP4 as a one-pass encode does: shifted back by one packet's
// duration, the priming, which the muxer writes as an edit list, and its last
// packet cut to aacLastDuration(n). The expressions scale the packets' own
// durations, so they hold in whatever time base the filter is given (FFmpeg
// 5.1 gives it the muxer's, 1/48000, not the ADTS demuxer's). With
// -movie_timescale 48000 the edit list's length is exact too.
func aacSetts(n int64) string {
	return fmt.Sprintf(`setts=ts=TS-DURATION:duration=if(eq(N\,%d)\,DURATION*%d/%d\,DURATION)`,
		aacPackets(n)-1, aacLastDuration(n), aacFrameSamples)
}
