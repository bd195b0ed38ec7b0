package capture

import (
	"encoding/binary"
	"io"
	"math/rand"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/tapedeck/tapedeck/capture/mkv"
)

// vp8Packets makes a VP8 stream of frames packetized like a browser does at
// about 2.5 Mbit/s and 30 fps: ~10 packets of 1100 bytes a frame, a keyframe
// every 60 frames, with a little reordering.
func vp8Packets(n int) []rtp.Packet {
	rng := rand.New(rand.NewSource(1))
	var out []rtp.Packet
	seq := uint16(rng.Intn(65536))
	ts := rng.Uint32()
	for f := 0; len(out) < n; f++ {
		parts := 10
		for p := 0; p < parts; p++ {
			payload := make([]byte, 1100)
			rng.Read(payload)
			payload[0] = 0x00
			if p == 0 {
				payload[0] = 0x10 // S bit, partition 0
				payload[1] = 0x01 // interframe
				if f%60 == 0 {
					payload[1] = 0x00 // keyframe: start code and 320x240
					payload[4], payload[5], payload[6] = 0x9d, 0x01, 0x2a
					binary.LittleEndian.PutUint16(payload[7:], 320)
					binary.LittleEndian.PutUint16(payload[9:], 240)
				}
			}
			out = append(out, rtp.Packet{
				Header:  rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, SSRC: 1, Marker: p == parts-1},
				Payload: payload,
			})
			seq++
		}
		ts += 3000
	}
	// Swap a few neighbours: reordering on the network.
	for i := 1; i+1 < len(out); i += 37 {
		out[i], out[i+1] = out[i+1], out[i]
	}
	return out[:n]
}

// BenchmarkRTPPath measures one packet through the capture path: jitter
// buffer, frame assembly and the Matroska writer (to io.Discard). ns/op and
// allocs/op are per packet.
func BenchmarkRTPPath(b *testing.B) {
	pkts := vp8Packets(6000)
	w, err := mkv.NewWith(io.Discard, mkv.Track{Codec: "vp8", ClockRate: 90000})
	if err != nil {
		b.Fatal(err)
	}
	j := NewJitter(100 * time.Millisecond)
	asm, _ := newAssembler("vp8")
	var clock rtpClock
	var first int64 = -1
	var rel Released
	now := time.Unix(1000, 0)
	var frames int64
	handle := func(r *Released) {
		ts := clock.extend(r.Packet.Timestamp)
		f, ok, _ := asm.push(r, ts)
		if !ok {
			return
		}
		if first < 0 {
			first = ts
		}
		if err := w.WriteFrame(ts-first, f.Keyframe, f.Data); err != nil {
			b.Fatal(err)
		}
		frames++
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(pkts[0].Payload)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := pkts[i%len(pkts)]
		// Keep sequence numbers and timestamps moving across loops.
		loop := i / len(pkts)
		p.SequenceNumber += uint16(loop * len(pkts))
		p.Timestamp += uint32(loop * len(pkts) / 10 * 3000)
		now = now.Add(330 * time.Microsecond)
		j.Push(&p, now)
		for j.Pop(now, &rel) {
			handle(&rel)
		}
	}
	b.StopTimer()
	if frames == 0 && b.N > 1000 {
		b.Fatal("no frame written")
	}
}

// BenchmarkJitter measures the jitter buffer alone, per packet.
func BenchmarkJitter(b *testing.B) {
	pkts := vp8Packets(6000)
	j := NewJitter(100 * time.Millisecond)
	var rel Released
	now := time.Unix(1000, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := pkts[i%len(pkts)]
		p.SequenceNumber += uint16((i / len(pkts)) * len(pkts))
		now = now.Add(330 * time.Microsecond)
		j.Push(&p, now)
		for j.Pop(now, &rel) {
		}
	}
}
