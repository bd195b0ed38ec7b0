package capture

import (
	"encoding/hex"
	"testing"

	"github.com/pion/rtp"
)

// TestH264FrameSize: the assembler reads an H.264 keyframe's picture size,
// cropped, from the SPS it carries (mkv.ParseSPS), and a frame without an
// SPS carries no size.
func TestH264FrameSize(t *testing.T) {
	// libx264's SPS of a 642x362 stream: 41x23 macroblocks, cropped on both
	// axes; then a PPS and slices (their bodies do not matter here).
	sps, err := hex.DecodeString("6764001eacd940a42fe224c044000003000400000300c83c58b658")
	if err != nil {
		t.Fatal(err)
	}
	pps := []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}
	idr := []byte{0x65, 0x88, 0x84, 0x00, 0x33}
	nonIDR := []byte{0x41, 0x9a, 0x21, 0x6c}

	asm, err := newAssembler("h264")
	if err != nil {
		t.Fatal(err)
	}
	seq := uint16(100)
	push := func(ts uint32, marker bool, nal []byte) (Frame, bool) {
		t.Helper()
		seq++
		r := Released{Packet: rtp.Packet{
			Header:  rtp.Header{Version: 2, PayloadType: 102, SequenceNumber: seq, Timestamp: ts, Marker: marker},
			Payload: nal,
		}}
		f, ok, _ := asm.push(&r, int64(ts))
		return f, ok
	}
	push(3000, false, sps)
	push(3000, false, pps)
	f, ok := push(3000, true, idr)
	if !ok {
		t.Fatal("keyframe not assembled")
	}
	if got, want := [3]any{f.Keyframe, f.Width, f.Height}, [3]any{true, 642, 362}; got != want {
		t.Errorf("keyframe, width, height = %v, want %v", got, want)
	}
	f, ok = push(6000, true, nonIDR)
	if !ok {
		t.Fatal("delta frame not assembled")
	}
	if got, want := [3]any{f.Keyframe, f.Width, f.Height}, [3]any{false, 0, 0}; got != want {
		t.Errorf("delta frame: keyframe, width, height = %v, want %v", got, want)
	}
	// A corrupt SPS gives no size rather than a wrong one.
	push(9000, false, sps[:6])
	f, ok = push(9000, true, idr)
	if !ok {
		t.Fatal("second keyframe not assembled")
	}
	if got, want := [3]any{f.Keyframe, f.Width, f.Height}, [3]any{true, 0, 0}; got != want {
		t.Errorf("keyframe after a truncated SPS: keyframe, width, height = %v, want %v", got, want)
	}
}
