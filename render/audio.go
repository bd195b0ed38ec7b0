package render

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// Audio is mixed at 48 kHz stereo.
const sampleRate = 48000

// DefaultLoudness is the integrated loudness target (EBU R128), in LUFS.
const DefaultLoudness = -16.0

// peakLimit is the highest sample peak after normalization, in dBFS.
const peakLimit = -1.5

// Gains applied by normalization are kept within these bounds (dB), so that
// a nearly silent recording is not blown up into noise.
const (
	maxGainDB = 24
	minGainDB = -40
)

// audioPiece is a stretch of one audio file in the mix.
type audioPiece struct {
	s0, s1 int64 // output samples [s0, s1)
	// At is the output time at which Src.FileStart plays.
	At   time.Duration
	Src  timeline.Source
	Gain float64
}

// fileAt is the file time playing at output time t (seconds).
func (p *audioPiece) fileAt(t float64) float64 {
	return p.Src.FileStart + (t-p.At.Seconds())*p.Src.Speed
}

// audioLane is one lane's pieces, in output order.
type audioLane struct {
	ID     string
	Pieces []audioPiece
}

// audioLanes collects the plan's audio by lane (in order of first
// appearance), merging pieces that continue each other, clipped to total
// samples.
func audioLanes(p *timeline.Plan, total int64) []audioLane {
	var lanes []audioLane
	index := map[string]int{}
	for i := range p.Intervals {
		iv := &p.Intervals[i]
		s0, s1 := sampleAt(iv.Start), min(sampleAt(iv.End), total)
		if s1 <= s0 {
			continue
		}
		for _, a := range iv.Audio {
			k, ok := index[a.Lane]
			if !ok {
				k = len(lanes)
				index[a.Lane] = k
				lanes = append(lanes, audioLane{ID: a.Lane})
			}
			ln := &lanes[k]
			if n := len(ln.Pieces); n > 0 {
				last := &ln.Pieces[n-1]
				if last.s1 == s0 && last.Gain == a.GainDB && last.Src.Path == a.Source.Path && last.Src.Segment == a.Source.Segment &&
					math.Abs(last.Src.Speed-a.Source.Speed) < 1e-9 && math.Abs(last.fileAt(iv.Start.Seconds())-a.Source.FileStart) < 0.002 {
					last.s1 = s1
					continue
				}
			}
			ln.Pieces = append(ln.Pieces, audioPiece{s0: s0, s1: s1, At: iv.Start, Src: a.Source, Gain: a.GainDB})
		}
	}
	return lanes
}

// audioMix is the command that mixes every lane into one float WAV of
// exactly the video's length and measures its loudness.
func audioMix(p *timeline.Plan, prog *Program) Command {
	s := &prog.settings
	total := samplesOfFrames(prog.Frames, p.FPS)
	g := newGraph()
	mix := mixLanes(g, s, audioLanes(p, total), 0, total)
	args := append(baseArgs(), "-copyts")
	args = append(args, g.inputs...)
	out := mix
	if !s.LoudnessOff {
		out = g.label("out")
		meas := g.label("meas")
		g.chain([]string{mix}, []string{"asplit=2"}, out+"]["+meas)
		g.chain([]string{meas}, []string{"ebur128=peak=sample:framelog=verbose"}, "measured")
	}
	if s.LoudnessOff && s.measureSide {
		out = g.label("out")
		side := g.label("side")
		g.chain([]string{mix}, []string{"asplit=2"}, out+"]["+side)
		g.chain([]string{side}, []string{"pan=mono|c0=c0-c1", "astats=measure_perchannel=none:measure_overall=Peak_level"}, "measured")
	}
	measure := !s.LoudnessOff || s.measureSide
	args = append(args, "-filter_complex", g.filter(), "-map", "["+out+"]", "-c:a", "pcm_f32le", "-rf64", "auto", "-f", "wav", mixFile)
	if measure {
		args = append(args, "-map", "[measured]", "-f", "null", "-")
	}
	return Command{Name: "audio mix", Args: args, Files: g.files, Outputs: []string{mixFile},
		Duration: prog.Duration, Measure: measure}
}

// mixLanes adds the mix of lanes over output samples [sa, sb) and returns
// its pad: each lane's pieces within the span, silence between them, summed.
// A lane heard in one piece is that piece's chain, the silence after it
// added by apad and the silence before it, if any, by one source and a
// concat (adelay would copy every frame): FFmpeg's scheduler looks through
// every filter of a graph each time it runs one, so each filter a lane
// does without counts.
func mixLanes(g *graph, s *Settings, lanes []audioLane, sa, sb int64) string {
	var lanePads []string
	// retimed: some lane keeps its file's timestamps; cut: some lane's
	// last piece runs on past the span's end (audioSource's runsOn).
	retimed, cut := false, false
	for _, ln := range lanes {
		var pieces []audioPiece
		for _, pc := range ln.Pieces {
			pc.s0, pc.s1 = max(pc.s0, sa), min(pc.s1, sb)
			if pc.s1 > pc.s0 {
				pieces = append(pieces, pc)
			}
		}
		switch len(pieces) {
		case 0:
			continue // not heard in the span
		case 1:
			pc := &pieces[0]
			pad, rt, on := audioSource(g, s, pc, pc.s0-sa, sb-pc.s1, false, pc.s1 == sb)
			lanePads, retimed, cut = append(lanePads, pad), retimed || rt, cut || on
			continue
		}
		var segs []string
		at := sa
		for i := range pieces {
			pc := &pieces[i]
			if pc.s0 > at {
				segs = append(segs, silence(g, pc.s0-at))
			}
			pad, rt, on := audioSource(g, s, pc, 0, 0, true, pc.s1 == sb)
			segs, retimed, cut = append(segs, pad), retimed || rt, cut || on
			at = pc.s1
		}
		if sb > at {
			segs = append(segs, silence(g, sb-at))
		}
		pad := segs[0]
		if len(segs) > 1 {
			pad = g.label("lane")
			g.chain(segs, []string{fmt.Sprintf("concat=n=%d:v=0:a=1", len(segs))}, pad)
		}
		lanePads = append(lanePads, pad)
	}
	var filters []string
	switch len(lanePads) {
	case 0:
		return silence(g, sb-sa)
	case 1:
		if !retimed && !cut {
			return lanePads[0]
		}
	default:
		filters = append(filters, fmt.Sprintf("amix=inputs=%d:duration=longest:dropout_transition=0:normalize=0", len(lanePads)))
	}
	if cut {
		// One cut of the mix instead of one a lane: atrim counts the
		// samples it is given, and every lane starts at the span's start.
		filters = append(filters, fmt.Sprintf("atrim=end_sample=%d", sb-sa))
	}
	if retimed {
		// amix times its output by its first input's frames, and a
		// lane placed without aresample keeps its file's timestamps.
		filters = append(filters, "asetpts=N/SR/TB")
	}
	mix := g.label("mix")
	g.chain(lanePads, filters, mix)
	return mix
}

// Windowed audio (Settings.AudioWindows): the mix is drawn in the video's
// windows, each its own command and file, kept and reused as the video's are
// (so the render during a call draws it too). Each window's loudness is
// measured in Go (r128.go, mixloudness.go) and the measurements added up;
// the encodes read the windows joined (the concat demuxer: sample for
// sample), the AAC one in windows too (aacwindows.go).

// audioWindowFile is the work-folder file of audio window i.
func audioWindowFile(i int) string { return fmt.Sprintf("mix-%03d.wav", i) }

// audioWindowList is the concat script of the audio windows.
const audioWindowList = "mix.ffconcat"

// audioWindows are the commands that mix the program's audio in the spans of
// its video windows.
func audioWindows(p *timeline.Plan, prog *Program) []Command {
	s := &prog.settings
	total := samplesOfFrames(prog.Frames, p.FPS)
	lanes := audioLanes(p, total)
	var windows []Command
	var names []string
	var durs []float64
	for i, sp := range prog.audioSpans {
		sa, sb := samplesOfFrames(sp.From, p.FPS), samplesOfFrames(sp.To, p.FPS)
		g := newGraph()
		outArgs := audioWindowGraph(g, s, lanes, prog, i)
		args := append(baseArgs(), "-copyts")
		args = append(args, g.inputs...)
		args = append(args, "-filter_complex", g.filter())
		args = append(args, outArgs...)
		out := audioWindowFile(i)
		windows = append(windows, Command{Name: fmt.Sprintf("audio %d/%d", i+1, len(prog.audioSpans)), Args: args, Files: g.files,
			Outputs: []string{out}, Duration: time.Duration(float64(sb-sa) / sampleRate * float64(time.Second))})
		names = append(names, out)
		durs = append(durs, float64(sb-sa)/sampleRate)
	}
	// The encodes read the windows through the same script: the whole mix
	// is never written out.
	prog.audioList = wavConcat(names, durs)
	return windows
}

// audioWindowGraph adds audio window i's mix to g and returns its output
// arguments.
func audioWindowGraph(g *graph, s *Settings, lanes []audioLane, prog *Program, i int) []string {
	sp := prog.audioSpans[i]
	mix := mixLanes(g, s, lanes, samplesOfFrames(sp.From, prog.FPS), samplesOfFrames(sp.To, prog.FPS))
	return []string{"-map", "[" + mix + "]", "-c:a", "pcm_f32le", "-f", "wav", audioWindowFile(i)}
}

// audioWindowsInput reads the audio windows as one stream, sample for
// sample.
func audioWindowsInput() []string {
	return []string{"-f", "concat", "-safe", "0", "-i", audioWindowList}
}

// silence adds n samples of silence and returns its pad: one source, its
// length given in microseconds that round to exactly n samples (FFmpeg
// rounds a duration to the nearest sample), in frames of at most 100 ms.
// Its format is the one the concat or mix it feeds settles on.
func silence(g *graph, n int64) string {
	pad := g.label("z")
	us := int64(math.Round(float64(n) * 1e6 / sampleRate))
	g.chain(nil, []string{fmt.Sprintf("anullsrc=r=%d:cl=stereo:n=%d:d=%dus", sampleRate, min(n, sampleRate/10), us)}, pad)
	return pad
}

// audioSource adds one piece: its input, trimmed in file time, placed by its
// timestamps (holes become silence), stretched by 1/Speed, with its gain,
// cut to its exact length, after lead samples of silence and before trail
// more. It returns the pad.
//
// A piece may begin after its file's last sample: the plan ends a segment
// at its last packet plus the mean interval between its frames, which lost
// packets lengthen, and a window can start in between. Its chain then gets
// no audio, and apad's silence comes without timestamps; concat refuses
// such frames (FFmpeg 5.1 logs "Error while filtering" and ends the output
// early, yet exits 0), so a piece for concat (joined) is timed by its
// sample count, which is what its timestamps are whenever it has audio.
//
// retimed is true when the samples keep the file's timestamps (a steady
// stretch not joined to anything, or one whose file holds all its
// samples): the mix they go to must be timed by its sample count.
//
// open is true when the piece ends at the end of the span mixed: a piece
// whose file holds all its samples is then not cut itself, and runsOn is
// true; mixLanes cuts the mix (the samples after the piece's end, at most
// its loose cut's 0.1 s, are the mix's cut's).
func audioSource(g *graph, s *Settings, pc *audioPiece, lead, trail int64, joined, open bool) (pad string, retimed, runsOn bool) {
	speed := pc.Src.Speed
	if speed <= 0 || math.IsNaN(speed) {
		speed = 1
	}
	if q := s.audioQuantum; q > 0 {
		snapped := *pc
		snapped.Src, snapped.At = snapPlacement(pc.Src, speed, pc.At, float64(pc.s0)/sampleRate, float64(pc.s1-pc.s0)/sampleRate, q)
		pc, speed = &snapped, snapped.Src.Speed
	}
	n := pc.s1 - pc.s0
	fs := pc.fileAt(float64(pc.s0) / sampleRate)
	te := fs + float64(n)/sampleRate*speed + 0.1
	var in []string
	seek := fs - 0.5
	if seek > 0 {
		in = append(in, "-ss", num(seek))
	}
	in = append(in, "-i", s.sessionPath(pc.Src.Path))
	k := g.input(in...)
	trim := "atrim=end=" + fnum(te)
	if fs > 0 {
		trim = fmt.Sprintf("atrim=start=%s:end=%s", fnum(fs), fnum(te))
	}
	stretched := math.Abs(speed-1) > speedTolerance
	var span audioStretch
	if s.stretchOf != nil && !stretched {
		span = s.stretchOf(pc.Src.Path, fs, n, seek > 0)
	}
	// whole: the stretch's frames, as the file holds them, are the
	// piece's samples and more; they need no placing, no padding, and
	// no retiming before a concat (their timestamps are the file's, and
	// the mix after them is retimed).
	whole := span.steady && span.full && trail == 0
	var filters []string
	if !whole || fs > 0 {
		filters = append(filters, trim)
	}
	switch {
	case span.steady:
		// Placed as aresample would leave it (sourceaudio.go): the
		// samples follow each other from fs; the timestamps are the
		// file's, made the mix's by its asetpts (mixLanes).
		if !span.stereo {
			filters = append(filters, "aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo")
		}
	default:
		filters = append(filters, "aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo",
			"asetpts="+quoteExpr(fmt.Sprintf("round((T%s)/TB)", signed(-fs))),
			"aresample=async=1:min_hard_comp=0.001:first_pts=0")
	}
	if stretched {
		// Played at 1/Speed: the samples, upsampled 4×, are declared at
		// 192 kHz·Speed (5 ppm steps) and resampled back to 48 kHz.
		filters = append(filters, "aresample=192000", fmt.Sprintf("asetrate=%d", int64(math.Round(192000*speed))),
			"aresample=48000", "asetpts=N/SR/TB")
	}
	if pc.Gain != 0 {
		filters = append(filters, "volume="+num(pc.Gain)+"dB")
	}
	switch {
	case whole && open:
		runsOn = true // cut by the mix's cut (mixLanes)
	case whole:
		// Cut to its length by their count; the loose cut in file time
		// before it is needed only where it trims the start.
		filters = append(filters, fmt.Sprintf("atrim=end_sample=%d", n))
	case trail > 0:
		// Cut to at most its length, then padded to its length and the
		// silence after it: the same samples as padding it to its length,
		// cutting it there and adding the silence.
		filters = append(filters, fmt.Sprintf("atrim=end_sample=%d", n), fmt.Sprintf("apad=whole_len=%d", n+trail))
	default:
		filters = append(filters, fmt.Sprintf("apad=whole_len=%d", n), fmt.Sprintf("atrim=end_sample=%d", n))
	}
	// A piece after a lead is joined to its silence by a concat too; one
	// whose samples all come from its file keeps the file's timestamps
	// there (concat adds its segments' lengths to them, and no silence
	// of apad's reaches it without any).
	retimed = span.steady && (whole || !joined && lead == 0)
	if !whole && (joined || lead > 0) {
		filters = append(filters, "asetpts=N/SR/TB")
	}
	pad = fmt.Sprintf("%d:a", k)
	if len(filters) > 0 {
		pad = g.label("a")
		g.chain([]string{fmt.Sprintf("%d:a", k)}, filters, pad)
	}
	if lead > 0 {
		// The silence before it, one source and a concat: adelay, one
		// filter, would copy every frame through its delay line.
		led := g.label("a")
		g.chain([]string{silence(g, lead), pad}, []string{"concat=n=2:v=0:a=1"}, led)
		pad = led
	}
	return pad, retimed, runsOn
}

// Loudness is the EBU R128 measurement of the mix.
type Loudness struct {
	// I is the integrated loudness (LUFS; −70 or less for silence), LRA
	// the loudness range (LU), Peak the sample peak (dBFS, −Inf for
	// silence).
	I, LRA, Peak float64
	Measured     bool
}

// errNoMeasurement is returned when FFmpeg's output holds no ebur128
// summary.
var errNoMeasurement = errors.New("no loudness measurement in FFmpeg's output")

// summaryField reads "name: value unit" from ebur128's summary.
func summaryField(summary, name string) (float64, error) {
	i := strings.Index(summary, name+":")
	if i < 0 {
		return 0, fmt.Errorf("%w: no %s", errNoMeasurement, name)
	}
	f := strings.Fields(summary[i+len(name)+1:])
	if len(f) == 0 {
		return 0, fmt.Errorf("%w: no value for %s", errNoMeasurement, name)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, fmt.Errorf("render: loudness measurement %s=%q: %w", name, f[0], err)
	}
	return v, nil
}

// parseLoudness reads the ebur128 filter's summary from FFmpeg's stderr.
func parseLoudness(stderr string) (Loudness, error) {
	i := strings.LastIndex(stderr, "Summary:")
	if i < 0 {
		return Loudness{}, errNoMeasurement
	}
	summary := stderr[i:]
	var l Loudness
	var err error
	if l.I, err = summaryField(summary, "I"); err != nil {
		return Loudness{}, err
	}
	if l.LRA, err = summaryField(summary, "LRA"); err != nil {
		return Loudness{}, err
	}
	if l.Peak, err = summaryField(summary, "Peak"); err != nil {
		return Loudness{}, err
	}
	l.Measured = true
	return l, nil
}

// loudnessFilters are the filters that bring the mix to the target
// loudness: a gain, then (when the peaks would pass peakLimit) a lookahead
// limiter whose delay is compensated. None when normalization is
// off or the mix is silent.
func loudnessFilters(s *Settings, l Loudness) []string {
	if s.LoudnessOff || !l.Measured || math.IsInf(l.I, 0) || math.IsNaN(l.I) || l.I <= -70 || math.IsInf(l.Peak, -1) {
		return nil
	}
	gain := normalGain(s, l)
	fs := []string{"volume=" + num(gain) + "dB"}
	if l.Peak+gain > peakLimit {
		fs = append(fs, fmt.Sprintf("alimiter=limit=%s:level=false:latency=true", num(math.Pow(10, peakLimit/20))))
	}
	return fs
}
