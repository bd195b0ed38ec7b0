package interchange

import (
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// Frame rounding
//
// Every time the timelines hold is a whole frame of the project's rate.
// Times of the recording (cuts, mutes, joins, holes) become frames through
// FrameAt: the nearest frame boundary, a time exactly halfway between two
// boundaries going to the earlier one. Because the audio and the video
// clips of a participant are both cut at the frames of the same kept
// ranges, a cut moves both by the same amount (at most half a frame) and
// they stay together.

// FrameAt returns the frame boundary of fps nearest to d: frame n starts
// at n·Den/Num seconds; a time exactly halfway between two boundaries goes
// to the earlier one. Negative times give 0; an unset or invalid fps gives
// 0. It is exact (128-bit arithmetic) for every time.Duration.
func FrameAt(d time.Duration, fps timeline.Rational) int64 {
	r, ok := reduce(fps)
	if !ok || d <= 0 {
		return 0
	}
	// d·num / (den·1e9), rounded to nearest, ties down.
	hi, lo := bits.Mul64(uint64(d), uint64(r.num))
	div := uint64(r.den) * uint64(time.Second)
	if hi >= div {
		return math.MaxInt64
	}
	q, rem := bits.Div64(hi, lo, div)
	if rem > div-rem { // rem/div > 1/2
		q++
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

// FrameTime returns the time at which frame f of fps starts, to the
// nearest nanosecond (ties down). Negative frames and an invalid fps give
// 0.
func FrameTime(f int64, fps timeline.Rational) time.Duration {
	r, ok := reduce(fps)
	if !ok || f <= 0 {
		return 0
	}
	// f·den·1e9 / num.
	hi, lo := bits.Mul64(uint64(f), uint64(r.den)*uint64(time.Second))
	if hi >= uint64(r.num) {
		return math.MaxInt64
	}
	q, rem := bits.Div64(hi, lo, uint64(r.num))
	if rem > uint64(r.num)-rem {
		q++
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(q)
}

// Frame rates the three formats express: whole rates from 1 to 240 fps,
// and the NTSC rates N·1000/1001 (FCP7 XML has only a whole "timebase"
// and an "ntsc" flag).
const maxFPS = 240

// rate is a frame rate in lowest terms: num/den frames per second.
type rate struct{ num, den int64 }

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// reduce returns fps in lowest terms; false when it is not positive.
func reduce(fps timeline.Rational) (rate, bool) {
	num, den := int64(fps.Num), int64(fps.Den)
	if num <= 0 || den <= 0 {
		return rate{}, false
	}
	g := gcd(num, den)
	return rate{num / g, den / g}, true
}

// newRate reduces fps and checks that the three formats can express it.
func newRate(fps timeline.Rational) (rate, error) {
	r, ok := reduce(fps)
	if !ok {
		return rate{}, fmt.Errorf("frame rate %d/%d: want a positive rational", fps.Num, fps.Den)
	}
	num, den := r.num, r.den
	if num < den || num > maxFPS*den {
		return rate{}, fmt.Errorf("frame rate %s: want 1 to %d frames per second", fps, maxFPS)
	}
	if den != 1 && !(den == 1001 && num%1000 == 0) {
		return rate{}, fmt.Errorf("frame rate %s: want a whole rate (25, 30, ...) or an NTSC rate (24000/1001, 30000/1001, 60000/1001): FCP7 XML has no other", fps)
	}
	return rate{num, den}, nil
}

// float returns the rate as OTIO writes it: frames per second.
func (r rate) float() float64 { return float64(r.num) / float64(r.den) }

// timebase and ntsc are FCP7 XML's way of saying the rate.
func (r rate) timebase() int64 {
	if r.den == 1001 {
		return r.num / 1000
	}
	return r.num
}

func (r rate) ntsc() bool { return r.den == 1001 }

// fcpTime writes f frames as an FCPXML time: a rational number of seconds
// whose denominator is the rate's numerator ("1001/30000s" per frame at
// 29.97 fps, "1/30s" at 30), so every value sits on the frame grid.
func (r rate) fcpTime(f int64) string {
	if f == 0 {
		return "0s"
	}
	return fmt.Sprintf("%d/%ds", f*r.den, r.num)
}

// frameDuration is FCPXML's format frameDuration: one frame.
func (r rate) frameDuration() string { return fmt.Sprintf("%d/%ds", r.den, r.num) }

// samples returns how many samples of sampleRate f frames last.
func (r rate) samples(f int64, sampleRate int) float64 {
	return float64(f) * float64(r.den) * float64(sampleRate) / float64(r.num)
}
