package mkv

import (
	"io"
	"testing"
)

// BenchmarkWriteFrame measures one WriteFrame call, the per-RTP-frame
// cost, writing to io.Discard; clusters are written as they fill.
func BenchmarkWriteFrame(b *testing.B) {
	filler := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + 1)
		}
		return b
	}
	h264Key := append(append(append([]byte{}, testSPS...), testPPS...), append([]byte{0, 0, 0, 1, 0x65}, filler(4000)...)...)
	h264Delta := append([]byte{0, 0, 0, 1, 0x41}, filler(1200)...)
	vp8Delta := append([]byte{0x01}, filler(1200)...)
	for _, bc := range []struct {
		name       string
		track      Track
		step       int64
		key, delta []byte
		gop        int
	}{
		{"opus", Track{Codec: "opus", ClockRate: 48000}, 960, nil, append([]byte{0xFC}, filler(80)...), 0},
		{"vp8", Track{Codec: "vp8", ClockRate: 90000}, 3000, append(vp8Key(), filler(4000)...), vp8Delta, 60},
		{"h264", Track{Codec: "h264", ClockRate: 90000}, 3000, h264Key, h264Delta, 60},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w, err := NewWith(io.Discard, bc.track)
			if err != nil {
				b.Fatal(err)
			}
			first := bc.key
			if first == nil {
				first = bc.delta
			}
			if err := w.WriteFrame(0, true, first); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(bc.delta)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 1; i <= b.N; i++ {
				data, key := bc.delta, false
				if bc.gop > 0 && i%bc.gop == 0 {
					data, key = bc.key, true
				}
				if err := w.WriteFrame(int64(i)*bc.step, key, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
