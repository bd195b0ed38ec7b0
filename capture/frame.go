package capture

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pion/rtp/codecs"
	"github.com/tapedeck/tapedeck/capture/mkv"
)

// Frame is one coded video frame or audio packet, reassembled from RTP.
type Frame struct {
	RTP      int64 // extended RTP timestamp
	Keyframe bool
	// Data is the codec payload: a VP8/VP9 frame, an H.264 access unit in
	// Annex B, an Opus packet. It is valid until the next call to push.
	Data    []byte
	Width   int // from the keyframe's header, when known
	Height  int
	Packets int
	Arrival time.Time // arrival of the frame's last packet
}

// rtpClock unwraps 32-bit RTP timestamps into extended ones.
type rtpClock struct {
	started bool
	last    int64
}

func (c *rtpClock) extend(ts uint32) int64 {
	if !c.started {
		c.started = true
		c.last = int64(ts)
		return c.last
	}
	ext := c.last + int64(int32(ts-uint32(c.last)))
	if ext > c.last {
		c.last = ext
	}
	return ext
}

// errUnsupportedCodec is returned for a codec tapedeck does not record.
var errUnsupportedCodec = errors.New("unsupported codec")

// assembler turns in-order RTP packets into frames. Video frames with a
// missing packet are dropped, and so is everything after them until the
// next keyframe, since a decoder could not use them.
type assembler struct {
	codec string
	video bool

	buf     []byte
	cur     Frame
	active  bool // a frame is being collected
	broken  bool // the frame being collected lost a packet
	needKey bool // drop frames until a keyframe
	h264    codecs.H264Packet
	vp8     codecs.VP8Packet
	vp9     codecs.VP9Packet
	av1     codecs.AV1Depacketizer
}

func newAssembler(codec string) (*assembler, error) {
	c := strings.ToLower(codec)
	switch c {
	case "opus":
		return &assembler{codec: c}, nil
	case "vp8", "vp9", "h264", "av1":
		return &assembler{codec: c, video: true, needKey: true}, nil
	}
	return nil, fmt.Errorf("capture: %w %q", errUnsupportedCodec, codec)
}

// push adds the next packet in sequence order. It returns a frame when one
// is complete; wantKey is true when a keyframe should be requested (PLI)
// because frames are being dropped for want of one.
func (a *assembler) push(r *Released, ts int64) (f Frame, ok bool, wantKey bool) {
	p := &r.Packet
	if !a.video {
		if len(p.Payload) == 0 {
			return Frame{}, false, false
		}
		return Frame{RTP: ts, Keyframe: true, Data: p.Payload, Packets: 1, Arrival: r.Arrival}, true, false
	}
	if r.LostBefore > 0 {
		a.active = false
		a.needKey = true
		a.h264 = codecs.H264Packet{}
		a.av1 = codecs.AV1Depacketizer{}
	}
	if a.active && ts != a.cur.RTP {
		// The previous frame never saw its marker bit.
		a.active = false
		a.needKey = true
		a.h264 = codecs.H264Packet{}
		a.av1 = codecs.AV1Depacketizer{}
	}
	if !a.active {
		a.active = true
		a.broken = false
		a.buf = a.buf[:0]
		a.cur = Frame{RTP: ts}
	}
	a.cur.Packets++
	a.cur.Arrival = r.Arrival
	if err := a.depacketize(p.Payload); err != nil {
		a.broken = true
	}
	if !p.Marker {
		return Frame{}, false, a.needKey
	}
	a.active = false
	if a.broken || len(a.buf) == 0 {
		a.needKey = true
		return Frame{}, false, true
	}
	if a.needKey && !a.cur.Keyframe {
		return Frame{}, false, true
	}
	a.needKey = false
	a.cur.Data = a.buf
	return a.cur, true, false
}

func (a *assembler) depacketize(payload []byte) error {
	switch a.codec {
	case "vp8":
		data, err := a.vp8.Unmarshal(payload)
		if err != nil {
			return fmt.Errorf("vp8: %w", err)
		}
		if len(a.buf) == 0 && a.vp8.S == 1 && a.vp8.PID == 0 && len(data) > 0 {
			if data[0]&1 == 0 {
				a.cur.Keyframe = true
				a.cur.Width, a.cur.Height = vp8Size(data)
			}
		}
		a.buf = append(a.buf, data...)
	case "vp9":
		data, err := a.vp9.Unmarshal(payload)
		if err != nil {
			return fmt.Errorf("vp9: %w", err)
		}
		if a.vp9.B && len(a.buf) == 0 && !a.vp9.P {
			a.cur.Keyframe = true
		}
		if a.vp9.V && a.vp9.Y && len(a.vp9.Width) > 0 {
			a.cur.Width, a.cur.Height = int(a.vp9.Width[len(a.vp9.Width)-1]), int(a.vp9.Height[len(a.vp9.Height)-1])
		}
		a.buf = append(a.buf, data...)
	case "av1":
		// The aggregation header's N bit starts a coded video sequence:
		// a keyframe with its sequence header.
		if len(a.buf) == 0 && len(payload) > 0 && payload[0]&0x08 != 0 {
			a.cur.Keyframe = true
		}
		data, err := a.av1.Unmarshal(payload)
		if err != nil {
			return fmt.Errorf("av1: %w", err)
		}
		a.buf = append(a.buf, data...)
	case "h264":
		data, err := a.h264.Unmarshal(payload)
		if err != nil {
			return fmt.Errorf("h264: %w", err)
		}
		if len(data) == 0 {
			return nil // a fragment in progress
		}
		forEachNAL(data, func(nal []byte) {
			switch nal[0] & 0x1f {
			case 5:
				a.cur.Keyframe = true
			case 7:
				if sps, err := mkv.ParseSPS(nal); err == nil {
					a.cur.Width, a.cur.Height = sps.Width, sps.Height
				}
			}
		})
		a.buf = append(a.buf, data...)
	}
	return nil
}

// vp8Size reads the picture size from a VP8 keyframe (RFC 6386, 9.1).
func vp8Size(frame []byte) (int, int) {
	if len(frame) < 10 || frame[3] != 0x9d || frame[4] != 0x01 || frame[5] != 0x2a {
		return 0, 0
	}
	w := int(frame[6]) | int(frame[7]&0x3f)<<8
	h := int(frame[8]) | int(frame[9]&0x3f)<<8
	return w, h
}

// forEachNAL calls fn for each NAL unit of an Annex B byte stream.
func forEachNAL(b []byte, fn func(nal []byte)) {
	start := -1
	i := 0
	for i+2 < len(b) {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				end := i
				for end > start && b[end-1] == 0 {
					end--
				}
				if end > start {
					fn(b[start:end])
				}
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 && start < len(b) {
		fn(b[start:])
	}
}
