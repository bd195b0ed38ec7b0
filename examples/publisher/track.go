package publisher

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// rtpMTU bounds the size of an RTP packet (header, extensions, payload).
const rtpMTU = 1200

// payloadMTU leaves room for the 12-byte header and the header extensions
// (abs-send-time and audio level: 12 bytes with the one-byte profile).
const payloadMTU = rtpMTU - 12 - 16

// localTrack is a webrtc.TrackLocal that packetizes frames itself, so that
// it chooses the RTP timestamps (frame i at exactly i/FPS from the start)
// and sets the audio level of every audio packet.
type localTrack struct {
	id, streamID string
	kind         webrtc.RTPCodecType
	codec        webrtc.RTPCodecCapability
	payloader    rtp.Payloader

	mu        sync.Mutex
	bound     bool
	writer    webrtc.TrackLocalWriter
	pt        uint8
	ssrc      uint32
	mime      string
	absSendID uint8 // 0 when not negotiated
	levelID   uint8 // 0 when not negotiated
	seq       uint16
	ts0       uint32
	clock     func() time.Time

	// For the sender reports: when ts0 is due, and what was sent.
	start           time.Time
	packets, octets uint32
}

func newLocalTrack(kind webrtc.RTPCodecType, codec webrtc.RTPCodecCapability, id, streamID string, clock func() time.Time) (*localTrack, error) {
	t := &localTrack{id: id, streamID: streamID, kind: kind, codec: codec, clock: clock,
		seq: uint16(rand.Uint32()), ts0: rand.Uint32()}
	switch strings.ToLower(codec.MimeType) {
	case strings.ToLower(webrtc.MimeTypeVP8):
		t.payloader = &codecs.VP8Payloader{EnablePictureID: true}
	case strings.ToLower(webrtc.MimeTypeH264):
		t.payloader = &codecs.H264Payloader{}
	case strings.ToLower(webrtc.MimeTypeOpus):
		t.payloader = &codecs.OpusPayloader{}
	default:
		return nil, fmt.Errorf("publisher: no payloader for %s", codec.MimeType)
	}
	return t, nil
}

// Bind is called by the PeerConnection once the answer is known.
func (t *localTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	var chosen *webrtc.RTPCodecParameters
	for _, c := range ctx.CodecParameters() {
		if !strings.EqualFold(c.MimeType, t.codec.MimeType) {
			continue
		}
		if chosen == nil {
			chosen = &c
		}
		// For H.264, prefer the negotiated entry that matches our fmtp
		// (packetization-mode=1).
		if c.SDPFmtpLine == t.codec.SDPFmtpLine || strings.Contains(c.SDPFmtpLine, "packetization-mode=1") {
			chosen = &c
			break
		}
	}
	if chosen == nil {
		return webrtc.RTPCodecParameters{}, fmt.Errorf("publisher: the receiver did not accept %s: %w", t.codec.MimeType, webrtc.ErrUnsupportedCodec)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bound {
		return webrtc.RTPCodecParameters{}, errors.New("publisher: track bound twice")
	}
	t.bound = true
	t.writer = ctx.WriteStream()
	t.pt = uint8(chosen.PayloadType)
	t.ssrc = uint32(ctx.SSRC())
	t.mime = chosen.MimeType
	for _, e := range ctx.HeaderExtensions() {
		switch e.URI {
		case sdp.ABSSendTimeURI:
			t.absSendID = uint8(e.ID)
		case sdp.AudioLevelURI:
			if t.kind == webrtc.RTPCodecTypeAudio {
				t.levelID = uint8(e.ID)
			}
		}
	}
	return *chosen, nil
}

// Unbind is called when the PeerConnection stops the sender.
func (t *localTrack) Unbind(webrtc.TrackLocalContext) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bound, t.writer = false, nil
	return nil
}

func (t *localTrack) ID() string                { return t.id }
func (t *localTrack) RID() string               { return "" }
func (t *localTrack) StreamID() string          { return t.streamID }
func (t *localTrack) Kind() webrtc.RTPCodecType { return t.kind }

// trackInfo is what the track knows once bound.
type trackInfo struct {
	bound       bool
	mime        string
	pt          uint8
	ssrc        uint32
	ts0         uint32
	levelExt    bool
	absSendTime bool
}

func (t *localTrack) info() trackInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return trackInfo{bound: t.bound, mime: t.mime, pt: t.pt, ssrc: t.ssrc, ts0: t.ts0, levelExt: t.levelID != 0, absSendTime: t.absSendID != 0}
}

// writeFrame packetizes one frame with RTP timestamp ts0+offset and writes
// it. level is the RFC 6464 audio level (negative: none). It returns the
// number of packets written.
func (t *localTrack) writeFrame(frame []byte, offset uint32, level int) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.bound || t.writer == nil {
		return 0, errors.New("publisher: track is not bound")
	}
	payloads := t.payloader.Payload(payloadMTU, frame)
	var ext []byte
	if t.absSendID != 0 {
		b, err := rtp.NewAbsSendTimeExtension(t.clock()).Marshal()
		if err != nil {
			return 0, fmt.Errorf("publisher: abs-send-time: %w", err)
		}
		ext = b
	}
	var levelExt []byte
	if t.levelID != 0 && level >= 0 {
		b, err := rtp.AudioLevelExtension{Level: uint8(level), Voice: level < 127}.Marshal()
		if err != nil {
			return 0, fmt.Errorf("publisher: audio level: %w", err)
		}
		levelExt = b
	}
	for i, p := range payloads {
		h := &rtp.Header{
			Version:        2,
			Marker:         i == len(payloads)-1,
			PayloadType:    t.pt,
			SequenceNumber: t.seq,
			Timestamp:      t.ts0 + offset,
			SSRC:           t.ssrc,
		}
		t.seq++
		if ext != nil {
			if err := h.SetExtension(t.absSendID, ext); err != nil {
				return i, fmt.Errorf("publisher: set abs-send-time: %w", err)
			}
		}
		if levelExt != nil {
			if err := h.SetExtension(t.levelID, levelExt); err != nil {
				return i, fmt.Errorf("publisher: set audio level: %w", err)
			}
		}
		if _, err := t.writer.WriteRTP(h, p); err != nil {
			return i, fmt.Errorf("publisher: write %s RTP: %w", t.kind, err)
		}
		t.packets++
		t.octets += uint32(len(p))
	}
	return len(payloads), nil
}
