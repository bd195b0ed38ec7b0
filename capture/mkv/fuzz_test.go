package mkv

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

// FuzzScan checks that Scan never panics and keeps its invariants on
// arbitrary input.
func FuzzScan(f *testing.F) {
	var m memFile
	syntheticVideo(f, &m, 40, true)
	f.Add(m.b)
	f.Add(m.b[:len(m.b)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		// The cluster index reads the same bytes: never a frame after the
		// instant asked for.
		if x, err := IndexClusters(bytes.NewReader(data)); err == nil {
			for _, at := range []time.Duration{-time.Second, 0, 500 * time.Millisecond, time.Hour} {
				if got, ok, _ := x.FrameBefore(bytes.NewReader(data), at); ok && got > at {
					t.Fatalf("FrameBefore(%v) = %v", at, got)
				}
			}
		}
		sum, err := Scan(bytes.NewReader(data))
		if err != nil {
			return
		}
		if sum.Frames < 0 || sum.Keyframes < 0 || sum.Keyframes > sum.Frames {
			t.Fatalf("frames %d, keyframes %d", sum.Frames, sum.Keyframes)
		}
		if sum.ValidBytes < 0 || sum.ValidBytes > int64(len(data)) {
			t.Fatalf("ValidBytes %d of %d", sum.ValidBytes, len(data))
		}
		// Cutting the input at ValidBytes keeps every counted frame.
		cut, err := Scan(bytes.NewReader(data[:sum.ValidBytes]))
		if err != nil || cut.Frames != sum.Frames || cut.LastPTS != sum.LastPTS {
			t.Fatalf("cut at ValidBytes %d: %+v, %v; whole input: %+v", sum.ValidBytes, cut, err, sum)
		}
	})
}

// fuzzCodecs are the codecs FuzzWriter picks from.
var fuzzCodecs = []string{"vp8", "vp9", "opus", "h264", "av1"}

// expectedBlock is a frame the writer accepted, as Scan must find it.
type expectedBlock struct {
	ms   int64
	key  bool
	data []byte
}

// FuzzWriter feeds an arbitrary sequence of frames to a Writer and checks
// that Scan finds exactly the frames the writer accepted, and that every
// rejection was for a documented reason.
//
// Input: byte 0 picks the codec (low bits) and whether the output can
// seek (bit 7); then each frame is 4 bytes (pts step, big endian, 16 bits;
// flags; payload length) and its payload. Flag bit 0: keyframe; bit 1:
// step backwards; bit 2: prepend parameter sets (H.264 SPS/PPS, AV1
// sequence header); bit 3: Flush after the frame.
func FuzzWriter(f *testing.F) {
	f.Add([]byte{0x80, 0, 0, 1, 3, 1, 2, 3, 0x0b, 0xb8, 0, 2, 4, 5})
	f.Add([]byte{0x82, 0, 0, 0, 2, 0xFC, 1, 0x03, 0xC0, 8, 1, 0xFC})
	f.Add([]byte{0x03, 0, 0, 5, 4, 0x65, 1, 2, 3, 0x0b, 0xb8, 0, 3, 0x41, 9, 9})
	f.Add([]byte{0x84, 0, 0, 5, 3, 0x10, 0, 0x80, 0xFF, 0xFF, 2, 1, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		codec := fuzzCodecs[int(in[0]&0x7F)%len(fuzzCodecs)]
		seek := in[0]&0x80 != 0
		in = in[1:]
		tr := Track{Codec: codec, ClockRate: 90000}
		if codec == "opus" {
			tr.ClockRate = 48000
		}
		var m memFile
		var out io.Writer = &m
		if !seek {
			out = plainWriter{&m}
		}
		w, err := NewWith(out, tr)
		if err != nil {
			t.Fatal(err)
		}
		var want []expectedBlock
		var pts, last int64
		for len(in) >= 4 {
			step := int64(in[0])<<8 | int64(in[1])
			flags, n := in[2], int(in[3])
			in = in[4:]
			n = min(n, len(in))
			payload := in[:n]
			in = in[n:]

			next := pts + step
			if flags&2 != 0 {
				next = pts - step
			}
			key := flags&1 != 0
			var data []byte
			switch codec {
			case "h264":
				if flags&4 != 0 {
					data = append(append(data, testSPS...), testPPS...)
				}
				data = append(append(data, 0, 0, 1), payload...)
			case "av1":
				if flags&4 != 0 {
					data = append(data, testAV1SeqHeader...)
				}
				data = append(data, payload...)
			default:
				data = append(data, payload...)
			}
			before := w.Bytes()
			err := w.WriteFrame(next, key, data)
			switch {
			case err == nil:
				if len(want) > 0 && next < last || next < 0 {
					t.Fatalf("pts %d accepted after %d", next, last)
				}
				stored := data
				switch codec {
				case "h264":
					stored = appendAVC(nil, data)
				case "av1":
					stored = appendAV1(nil, data)
				}
				want = append(want, expectedBlock{
					ms:   (next*1000 + int64(tr.ClockRate)/2) / int64(tr.ClockRate),
					key:  key || codec == "opus",
					data: stored,
				})
				pts, last = next, next
			case errors.Is(err, ErrTimestamp):
				if next >= 0 && (len(want) == 0 || next >= last) {
					t.Fatalf("pts %d after %d rejected: %v", next, last, err)
				}
			case errors.Is(err, ErrBadFrame), errors.Is(err, ErrNeedParameterSets):
				if w.Bytes() != before {
					t.Fatalf("rejected frame wrote %d bytes: %v", w.Bytes()-before, err)
				}
			default:
				t.Fatalf("unexpected error: %v", err)
			}
			if flags&8 != 0 {
				if err := w.Flush(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got, want := w.Bytes() <= int64(len(m.b)), true; got != want {
			t.Fatalf("Bytes() = %d, output has %d", w.Bytes(), len(m.b))
		}

		s := newScanner(bytes.NewReader(m.b))
		var got []scannedBlock
		s.onBlock = func(b scannedBlock) { got = append(got, b) }
		sum, err := s.run()
		if len(want) == 0 {
			if len(m.b) != 0 {
				t.Fatalf("no frame accepted but %d bytes written", len(m.b))
			}
			return
		}
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("Scan found %d blocks, writer accepted %d", len(got), len(want))
		}
		var keys int64
		for i := range want {
			g, x := got[i], want[i]
			if g.ms != x.ms || g.key != x.key || g.frames != 1 || g.track != trackNumber || !bytes.Equal(g.data, x.data) {
				t.Fatalf("block %d = {%d ms key %v frames %d % x}, want {%d ms key %v % x}",
					i, g.ms, g.key, g.frames, g.data, x.ms, x.key, x.data)
			}
			if x.key {
				keys++
			}
		}
		if sum.Frames != int64(len(want)) || sum.Keyframes != keys ||
			sum.FirstPTS != time.Duration(want[0].ms)*time.Millisecond ||
			sum.LastPTS != time.Duration(want[len(want)-1].ms)*time.Millisecond {
			t.Fatalf("summary %+v does not match the %d accepted frames", sum, len(want))
		}
		if sum.Complete != seek || (sum.Cues > 0) != (seek && keys > 0) {
			t.Fatalf("seekable output %v: Complete=%v Cues=%d", seek, sum.Complete, sum.Cues)
		}
		if sum.ValidBytes > int64(len(m.b)) || (!seek && sum.ValidBytes != int64(len(m.b))) {
			t.Fatalf("ValidBytes %d of %d", sum.ValidBytes, len(m.b))
		}
	})
}
