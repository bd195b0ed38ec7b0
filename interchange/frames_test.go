package interchange

import (
	"math"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

func TestFrameAt(t *testing.T) {
	fps30 := timeline.Rational{Num: 30, Den: 1}
	ntsc := timeline.Rational{Num: 30000, Den: 1001}
	ms := time.Millisecond
	cases := []struct {
		d    time.Duration
		fps  timeline.Rational
		want int64
	}{
		{0, fps30, 0},
		{-5 * sec, fps30, 0},
		{sec, fps30, 30},
		{16 * ms, fps30, 0},          // 0.48 frame
		{17 * ms, fps30, 1},          // 0.51 frame
		{time.Second / 60, fps30, 0}, // 0.49999999 (16.666666 ms): below half
		{50 * ms, timeline.Rational{Num: 10, Den: 1}, 0},          // exactly half: ties to the earlier frame
		{150 * ms, timeline.Rational{Num: 10, Den: 1}, 1},         // 1.5: ties down
		{150*ms + 1, timeline.Rational{Num: 10, Den: 1}, 2},       // just above half
		{60 * sec, ntsc, 1798},                                    // 1798.2
		{1001 * ms, ntsc, 30},                                     // exactly 30 frames
		{500500 * time.Microsecond, ntsc, 15},                     // exactly 15
		{time.Duration(math.MaxInt64), ntsc, 276424736369},        // no overflow
		{sec, timeline.Rational{Num: 60, Den: 2}, 30},             // reduced
		{sec, timeline.Rational{}, 0},                             // unset rate
		{sec, timeline.Rational{Num: 25, Den: 2}, 12},             // 12.5 frames: a tie, to the earlier frame
		{80 * ms, timeline.Rational{Num: 25, Den: 1}, 2},          // exactly 2
		{20 * ms, timeline.Rational{Num: 25, Den: 1}, 0},          // exactly half a frame at 25 fps
		{60 * ms, timeline.Rational{Num: 25, Den: 1}, 1},          // 1.5 → 1
		{1500 * ms, timeline.Rational{Num: 24000, Den: 1001}, 36}, // 35.96
	}
	for _, c := range cases {
		if got, want := FrameAt(c.d, c.fps), c.want; got != want {
			t.Errorf("FrameAt(%v, %s) = %d, want %d", c.d, c.fps, got, want)
		}
	}
}

// FuzzFrameAt compares FrameAt with exact rational arithmetic: nearest
// frame, ties to the earlier, and monotonic.
func FuzzFrameAt(f *testing.F) {
	f.Add(int64(1001000000), 30000, 1001)
	f.Add(int64(50000000), 10, 1)
	f.Add(int64(math.MaxInt64), 240, 1)
	f.Fuzz(func(t *testing.T, ns int64, num, den int) {
		if num <= 0 || den <= 0 || num > 1<<20 || den > 1<<20 {
			return
		}
		fps := timeline.Rational{Num: num, Den: den}
		got := FrameAt(time.Duration(ns), fps)
		if ns <= 0 {
			if got != 0 {
				t.Fatalf("FrameAt(%d) = %d, want 0", ns, got)
			}
			return
		}
		x := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(ns), big.NewInt(int64(num))), new(big.Int).Mul(big.NewInt(1e9), big.NewInt(int64(den))))
		fl := new(big.Int).Quo(x.Num(), x.Denom()) // floor, x > 0
		frac := new(big.Rat).Sub(x, new(big.Rat).SetInt(fl))
		want := new(big.Int).Set(fl)
		if frac.Cmp(big.NewRat(1, 2)) > 0 {
			want.Add(want, big.NewInt(1))
		}
		if !want.IsInt64() {
			if got != math.MaxInt64 {
				t.Fatalf("FrameAt(%d, %s) = %d, want saturation", ns, fps, got)
			}
			return
		}
		if got != want.Int64() {
			t.Fatalf("FrameAt(%d, %s) = %d, want %d", ns, fps, got, want.Int64())
		}
		if ns > 1 && FrameAt(time.Duration(ns-1), fps) > got {
			t.Fatalf("FrameAt not monotonic at %d", ns)
		}
	})
}

func TestFrameTime(t *testing.T) {
	ntsc := timeline.Rational{Num: 30000, Den: 1001}
	for _, f := range []int64{0, 1, 2, 29, 30, 1798, 107892, 1 << 32} {
		if got := FrameAt(FrameTime(f, ntsc), ntsc); got != f {
			t.Errorf("FrameAt(FrameTime(%d)) = %d", f, got)
		}
	}
	if got, want := FrameTime(30, ntsc), 1001*time.Millisecond; got != want {
		t.Errorf("FrameTime(30, 29.97) = %v, want %v", got, want)
	}
}

func TestRates(t *testing.T) {
	for _, c := range []struct {
		fps      timeline.Rational
		timebase int64
		ntsc     bool
		frameDur string
		err      string
	}{
		{fps: timeline.Rational{Num: 30, Den: 1}, timebase: 30, frameDur: "1/30s"},
		{fps: timeline.Rational{Num: 50, Den: 2}, timebase: 25, frameDur: "1/25s"},
		{fps: timeline.Rational{Num: 30000, Den: 1001}, timebase: 30, ntsc: true, frameDur: "1001/30000s"},
		{fps: timeline.Rational{Num: 24000, Den: 1001}, timebase: 24, ntsc: true, frameDur: "1001/24000s"},
		{fps: timeline.Rational{Num: 60000, Den: 1001}, timebase: 60, ntsc: true, frameDur: "1001/60000s"},
		{fps: timeline.Rational{Num: 25, Den: 2}, err: "want a whole rate"},
		{fps: timeline.Rational{Num: 0, Den: 1}, err: "positive"},
		{fps: timeline.Rational{Num: 1, Den: 2}, err: "1 to 240"},
		{fps: timeline.Rational{Num: 241, Den: 1}, err: "1 to 240"},
	} {
		r, err := newRate(c.fps)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("newRate(%s): %v, want an error containing %q", c.fps, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("newRate(%s): %v", c.fps, err)
			continue
		}
		if got, want := r.timebase(), c.timebase; got != want {
			t.Errorf("%s: timebase %d, want %d", c.fps, got, want)
		}
		if got, want := r.ntsc(), c.ntsc; got != want {
			t.Errorf("%s: ntsc %v, want %v", c.fps, got, want)
		}
		if got, want := r.frameDuration(), c.frameDur; got != want {
			t.Errorf("%s: frameDuration %q, want %q", c.fps, got, want)
		}
	}
}
