package render

import (
	"math"
	"time"

	"github.com/tapedeck/tapedeck/capture/mkv"
)

// A piece's audio chain (audioSource) trims its stretch of the file, makes
// it 48 kHz stereo (aformat), and places its samples by their timestamps
// (asetpts, then aresample=async=1:min_hard_comp=0.001:first_pts=0, which
// fills a hole of more than a millisecond with silence and drops samples
// that overlap by as much). Most stretches of a recording need neither: the
// recorder writes Opus as two channels (opus/48000/2), and a track without
// loss or DTX is one packet after the other. Yet every frame then crosses
// three more filters, and aresample writes it anew, allocating twice its
// size and zeroing it (FFmpeg 5.1); a hand-written command has none of it.
// So the file is read (its packets' headers, sourceFiles.audio) and a
// stretch that aresample would leave as it is goes without it: the samples
// are the same, and only their timestamps are left to the mix's asetpts.

// audioQuery is a piece's stretch of its file: n samples from file time fs
// (seconds), decoded from the file's start or after a seek.
type audioQuery struct {
	path string
	fs   float64
	n    int64
	seek bool
}

// audioStretch is how a stretch of an audio file decodes.
type audioStretch struct {
	// stereo: the file decodes to two channels (its OpusHead says so).
	stereo bool
	// steady: FFmpeg times the stretch's frames so that aresample, as the
	// chain runs it, would neither insert nor drop a sample (steadySpan).
	steady bool
	// full: steady, and the frames after the trim hold all n samples, so
	// that no silence need pad them to their length.
	full bool
}

// audio returns how the plan's file path decodes in n samples from file
// time fs; the zero audioStretch (assume nothing) when it cannot tell.
func (f *sourceFiles) audio(path string, fs float64, n int64, seek bool) audioStretch {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := audioQuery{path, fs, n, seek}
	a, done := f.audios[q]
	if !done {
		a = f.readAudio(q)
		f.audios[q] = a
	}
	return a
}

// readAudio is audio, read from the file; f.mu is held.
func (f *sourceFiles) readAudio(q audioQuery) audioStretch {
	file, x := f.open(q.path)
	if x == nil {
		return audioStretch{}
	}
	defer file.Close()
	head, ok := x.Opus()
	if !ok {
		return audioStretch{}
	}
	span := audioStretch{stereo: head.Channels == 2}
	tps := x.TicksPerSecond()
	if tps <= 0 || sampleRate%tps != 0 || (sampleRate/tps)%2 != 0 {
		return span
	}
	spt := sampleRate / tps // samples per tick
	// FFmpeg's demuxer moves the blocks' times back by the codec delay,
	// rounded to a tick.
	delay := roundHalfAway(head.CodecDelay, int64(time.Second)/tps)
	// atrim's start, as FFmpeg reads it: microseconds, then samples.
	fsS := int64(math.Round(math.Round(q.fs*1e6) * sampleRate / 1e6))
	from, to := int64(math.MinInt64), (fsS+q.n)/spt+1+delay
	if q.seek {
		// The packet holding fs began at most an Opus packet (120 ms)
		// before it.
		from = fsS/spt - tps*3/20 + delay
	}
	var pk []mkv.Packet
	if err := x.Packets(file, from, to, func(p mkv.Packet) {
		p.Ticks -= delay
		pk = append(pk, p)
	}); err != nil {
		f.log.Debug("render: audio packets not read", "file", q.path, "err", err)
		return span
	}
	span.steady, span.full = steadySpan(pk, spt, int64(head.PreSkip), !q.seek, fsS, q.n)
	return span
}

// aresampleTolerance is the drift (samples) that aresample with
// min_hard_comp=0.001 leaves alone: more than a millisecond (48 samples)
// is compensated; a little margin is kept below it.
const aresampleTolerance = 40

// steadySpan reports whether aresample, fed the stretch [fsS, fsS+n)
// (samples) of packets pk (in file order, spt samples per tick of their
// times), would pass every sample through: the frames that reach it after
// the trim start at fsS and follow each other, to within its tolerance;
// and whether, steady, those frames hold at least n samples (full; a
// packet's samples are those left after its DiscardPadding, which FFmpeg
// puts on a file's last Opus packet).
//
// It follows FFmpeg 5.1: ffmpeg.c times each decoded frame with
// av_rescale_delta, which keeps the position where the previous frame
// ended if the packet's time, rounded to its tick, allows it (within half a
// tick), and rounds the packet's time otherwise; the decoder discards the
// OpusHead's pre-skip from the first packet it decodes and moves its time
// by the pre-skip rounded to a tick. fromStart: pk starts at the file's
// first packet and is decoded from there; otherwise (after a seek) the
// first packets' positions are known only to within half a tick, and every
// one of them must do.
func steadySpan(pk []mkv.Packet, spt, preSkip int64, fromStart bool, fsS, n int64) (steady, full bool) {
	if len(pk) == 0 || n <= 0 {
		return false, false
	}
	for i, p := range pk {
		if p.Samples <= 0 || i > 0 && p.Ticks < pk[i-1].Ticks {
			return false, false // a packet of unknown length, or out of order
		}
	}
	half := spt / 2
	run := func(offset int64) (steady, full bool) {
		var last, expect int64 // where the previous frame ended; where aresample expects the next
		seen := false
		for i, p := range pk {
			t, ns := p.Ticks*spt, int64(p.Samples)
			var at int64
			switch {
			case i == 0 && fromStart:
				at = (p.Ticks + roundHalfAway(preSkip, spt)) * spt
				if ns -= preSkip; ns <= 0 {
					return false, false
				}
			case i == 0:
				at = t + offset
			default:
				a, b := t-half, t+half
				if last < 2*a-b || last > 2*b-a {
					at = t
				} else {
					at = min(max(last, a), b)
				}
			}
			last = at + ns
			if last <= fsS {
				continue // trimmed away
			}
			if at >= fsS+n {
				break
			}
			if !seen {
				// The first frame after the trim: first_pts=0 puts
				// it at fsS.
				seen, expect = true, fsS
				if at < fsS {
					ns -= fsS - at
					at = fsS
				}
			}
			if d := at - expect; d > aresampleTolerance || d < -aresampleTolerance {
				return false, false
			}
			expect += ns
		}
		return seen, seen && expect-fsS >= n
	}
	if fromStart {
		return run(0)
	}
	full = true
	for o := -half; o <= half; o++ {
		ok, f := run(o)
		if !ok {
			return false, false
		}
		full = full && f
	}
	return true, full
}

// roundHalfAway is v/d rounded to the nearest integer, halves away from
// zero (FFmpeg's AV_ROUND_NEAR_INF), for d > 0.
func roundHalfAway(v, d int64) int64 {
	if v < 0 {
		return -((-v + d/2) / d)
	}
	return (v + d/2) / d
}
