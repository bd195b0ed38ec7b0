package render

import (
	"testing"

	"github.com/tapedeck/tapedeck/capture/mkv"
)

// TestSteadySpan: what aresample would do to a stretch of packets, as
// FFmpeg times them (ms ticks, 48 samples each).
func TestSteadySpan(t *testing.T) {
	// packets of 20 ms from ms a to b (excluded), with times moved by
	// the given ms at the given packet indexes.
	packets := func(a, b int64, moved map[int]int64) []mkv.Packet {
		var pk []mkv.Packet
		for ms := a; ms < b; ms += 20 {
			pk = append(pk, mkv.Packet{Ticks: ms + moved[len(pk)], Samples: 960})
		}
		return pk
	}
	hole := append(packets(0, 1000, nil), packets(1200, 3000, nil)...)
	cases := []struct {
		name      string
		pk        []mkv.Packet
		preSkip   int64
		fromStart bool
		fsS, n    int64
		want      bool // steady
		full      bool
	}{
		{"one packet after the other", packets(0, 3000, nil), 0, true, 0, 2 * 48000, true, true},
		{"from the middle, after a seek", packets(880, 3000, nil), 0, false, 48000, 48000, true, true},
		{"a hole of 200 ms", hole, 0, true, 0, 2 * 48000, false, false},
		{"after a seek, a hole within", hole[40:], 0, false, 40000, 48000, false, false},
		{"the hole after the stretch", hole[40:], 0, false, 40000, 7000, true, true},
		{"the hole before the stretch", hole, 0, true, 60000, 48000, true, true},
		{"the file starting 5 ms into the stretch", packets(5, 3000, nil), 0, true, 0, 48000, false, false},
		{"the stretch starting before the file, after a seek", packets(1000, 3000, nil), 0, false, 47000, 48000, false, false},
		// A packet's time 1 ms late: FFmpeg keeps the position where the
		// previous frame ended to within half a tick, 24 samples off.
		{"a packet 1 ms late", packets(0, 3000, map[int]int64{30: 1}), 0, true, 0, 2 * 48000, true, true},
		{"packets 1 ms late from one on", packets(0, 3000, map[int]int64{30: 1, 31: 1, 32: 1, 33: 1}), 0, true, 0, 2 * 48000, true, true},
		// 2 ms late is past what FFmpeg keeps: it takes the packet's time,
		// 96 samples on, and aresample inserts them.
		{"a packet 2 ms late", packets(0, 3000, map[int]int64{30: 2}), 0, true, 0, 2 * 48000, false, false},
		{"a packet 2 ms early", packets(0, 3000, map[int]int64{30: -2}), 0, true, 0, 2 * 48000, false, false},
		// FFmpeg's own Opus WebM, as its demuxer times it: the first packet
		// 7 ms before 0 (its codec delay, 6.5 ms, rounded), its 312 first
		// samples discarded, so the first kept plays at 0; the next
		// packets' times are 0.5 ms off the samples' (rounded).
		{"FFmpeg's pre-skip", append([]mkv.Packet{{Ticks: -7, Samples: 960}}, packets(14, 3000, nil)...), 312, true, 0, 2 * 48000, true, true},
		// A pre-skip without its codec delay: the first kept sample plays
		// 7 ms late, and aresample puts silence before it.
		{"a pre-skip alone", packets(0, 3000, nil), 312, true, 0, 2 * 48000, false, false},
		{"a packet of unknown length", append(packets(0, 1000, nil), mkv.Packet{Ticks: 1000}), 0, true, 0, 48000, false, false},
		{"no packets", nil, 0, true, 0, 48000, false, false},
		// Steady, but the file ends within the stretch: apad's silence
		// makes it up.
		{"the file ending within the stretch", packets(0, 1000, nil), 0, true, 0, 2 * 48000, true, false},
		{"the file ending within the stretch, after a seek", packets(880, 1500, nil), 0, false, 48000, 48000, true, false},
		{"the file ending where the stretch does", packets(0, 1000, nil), 0, true, 0, 48000, true, true},
		// The last packet's samples less its DiscardPadding (packets'
		// Samples): 10 short.
		{"the file ending 10 samples short", append(packets(0, 980, nil), mkv.Packet{Ticks: 980, Samples: 950}), 0, true, 0, 48000, true, false},
	}
	for _, c := range cases {
		steady, full := steadySpan(c.pk, 48, c.preSkip, c.fromStart, c.fsS, c.n)
		if steady != c.want || full != c.full {
			t.Errorf("%s: steadySpan = %v, %v; want %v, %v", c.name, steady, full, c.want, c.full)
		}
	}
}
