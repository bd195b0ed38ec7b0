package render

import (
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// Output frame k is the instant k/fps of the output. Everything that changes
// in the picture changes at a frame: an instant t belongs to frame round(t·fps)
// and a boundary at t falls before that frame.

// frameAt returns round(d·fps), rounding halves up, exactly.
func frameAt(d time.Duration, fps timeline.Rational) int64 {
	num := new(big.Int).Mul(big.NewInt(int64(d)), big.NewInt(int64(fps.Num)))
	den := new(big.Int).Mul(big.NewInt(int64(fps.Den)), big.NewInt(int64(time.Second)))
	// floor((2·num + den) / (2·den))
	num.Mul(num, big.NewInt(2)).Add(num, den)
	den.Mul(den, big.NewInt(2))
	return num.Div(num, den).Int64() // Euclidean: the floor, den being positive
}

// frameTime returns the instant of frame k in seconds.
func frameTime(k int64, fps timeline.Rational) float64 {
	return float64(k) * float64(fps.Den) / float64(fps.Num)
}

// frameDuration is the length of one frame.
func frameDuration(fps timeline.Rational) time.Duration {
	return time.Duration(int64(time.Second) * int64(fps.Den) / int64(fps.Num))
}

// sampleAt returns round(d·48000) samples.
func sampleAt(d time.Duration) int64 {
	return frameAt(d, timeline.Rational{Num: sampleRate, Den: 1})
}

// samplesOfFrames is the number of audio samples in n frames, rounded.
func samplesOfFrames(n int64, fps timeline.Rational) int64 {
	num := new(big.Int).Mul(big.NewInt(n), big.NewInt(int64(fps.Den)*sampleRate))
	num.Mul(num, big.NewInt(2)).Add(num, big.NewInt(int64(fps.Num)))
	return num.Div(num, big.NewInt(2*int64(fps.Num))).Int64()
}

// gopFrames is the keyframe interval: the most frames in two seconds.
func gopFrames(fps timeline.Rational) int {
	return max(1, 2*fps.Num/fps.Den)
}

// num formats a number of seconds (or any value) for a filter argument:
// fixed point, at most 6 decimals, no trailing zeros.
func num(v float64) string {
	if v == 0 {
		return "0"
	}
	s := strconv.FormatFloat(v, 'f', 6, 64)
	s = strings.TrimRight(s, "0")
	s = strings.TrimSuffix(s, ".")
	if s == "-0" {
		return "0"
	}
	return s
}

// fnum formats a number with more precision (9 decimals), for speeds and
// offsets that must stay exact over an hour.
func fnum(v float64) string {
	s := strconv.FormatFloat(v, 'f', 9, 64)
	s = strings.TrimRight(s, "0")
	s = strings.TrimSuffix(s, ".")
	if s == "-0" || s == "" {
		return "0"
	}
	return s
}

func itoa[T ~int | ~int64](v T) string { return strconv.FormatInt(int64(v), 10) }

// fpsArg formats a frame rate for FFmpeg ("30" or "30000/1001").
func fpsArg(r timeline.Rational) string {
	if r.Den == 1 {
		return itoa(r.Num)
	}
	return itoa(r.Num) + "/" + itoa(r.Den)
}
