package render

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
)

// Loudness measured in Go, window by window (ITU-R BS.1770-4, EBU Tech 3341
// and 3342). Each audio window's WAV is read once into a loudnessBlocks: its
// K-weighted energy per 100 ms of output time (sub-blocks numbered from
// output sample 0, so that windows cut anywhere fall on the same grid) and
// its sample peak. The summaries of all windows merge by adding the
// energies of the same sub-block, and the loudness of the whole is computed
// from the merged sub-blocks: a 400 ms gating block is 4 consecutive
// sub-blocks, a 3 s short-term window 30. The result is the same however the
// windows were cut, but for the K-weighting filter, which starts from zero
// state at each window (a transient of a few milliseconds at each cut).

// subBlock is the number of samples (per channel) of a sub-block: 100 ms,
// the gating step.
const subBlock = sampleRate / 10

// Sub-blocks per 400 ms gating block and per 3 s short-term window.
const (
	gatingBlock = 4
	shortTerm   = 30
)

// silentLoudness is the integrated loudness reported when no gating block
// passes the absolute gate: the gate itself, as FFmpeg's ebur128 reports it
// (loudnessFilters treats it as silence).
const silentLoudness = -70.0

// K-weighting at 48 kHz (BS.1770-4, tables 1 and 2): the pre-filter (high
// shelf) and the RLB high-pass, as biquads with a0 = 1.
const (
	preB0, preB1, preB2 = 1.53512485958697, -2.69169618940638, 1.19839281085285
	preA1, preA2        = -1.69065929318241, 0.73248077421585
	rlbA1, rlbA2        = -1.99004745483398, 0.99007225036621 // b = 1, −2, 1
)

// loudnessBlocks is the loudness summary of a span of output audio: per
// 100 ms sub-block (sub-block k holds output samples [4800k, 4800(k+1))),
// the sum over its measured samples of the K-weighted squares of both
// channels (weights 1) and how many samples were measured; and the sample
// peak.
type loudnessBlocks struct {
	First int64     // sub-block of Sum[0]
	Sum   []float64 // partial where a window starts or ends inside the sub-block
	N     []int32   // samples (per channel) measured in each sub-block
	Peak  float64   // max |sample| (linear)
	// Samples is the number of samples measured (per channel).
	Samples int64
}

// meter measures consecutive stereo samples into a loudnessBlocks.
type meter struct {
	b   loudnessBlocks
	pos int64 // output sample of the next sample
	// The filter states: per channel the pre-filter's last two inputs and
	// outputs and the RLB filter's last two outputs (its inputs are the
	// pre-filter's outputs).
	st [2]kState
	// acc is the current sub-block's sum per channel, kept across calls
	// of add so that the sums do not depend on how the samples come.
	acc [2]float64
}

// kState is the state of one channel's K-weighting.
type kState struct{ x1, x2, y1, y2, z1, z2 float64 }

// newMeter measures from output sample start, the filters at rest.
func newMeter(start int64) *meter {
	return &meter{b: loudnessBlocks{First: floorDiv(start, subBlock)}, pos: start}
}

// floorDiv is ⌊a/b⌋ for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// add measures interleaved stereo samples (a trailing odd sample is
// ignored).
func (m *meter) add(s []float32) {
	for len(s) >= 2 {
		k := floorDiv(m.pos, subBlock)
		if m.pos == k*subBlock {
			m.acc = [2]float64{}
		}
		n := min(int64(len(s)/2), (k+1)*subBlock-m.pos)
		i := int(k - m.b.First)
		for len(m.b.Sum) <= i {
			m.b.Sum = append(m.b.Sum, 0)
			m.b.N = append(m.b.N, 0)
		}
		m.b.Peak = max(m.b.Peak, m.filter(s[:2*n]))
		m.b.Sum[i] = m.acc[0] + m.acc[1]
		m.b.N[i] += int32(n)
		m.b.Samples += n
		m.pos += n
		s = s[2*n:]
	}
}

// filter K-weights interleaved stereo samples, continuing the filters'
// state, adds their squares to acc and returns their sample peak.
func (m *meter) filter(s []float32) (peak float64) {
	l, r := m.st[0], m.st[1]
	suml, sumr := m.acc[0], m.acc[1]
	for i := 0; i+1 < len(s); i += 2 {
		xl, xr := float64(s[i]), float64(s[i+1])
		// A branch rarely taken, rather than max: no chain of dependent
		// instructions from sample to sample.
		if a := math.Abs(xl); a > peak {
			peak = a
		}
		if a := math.Abs(xr); a > peak {
			peak = a
		}
		// The terms in y1 and z1 last, so that each sample waits for the
		// previous one a multiplication and a subtraction.
		yl := preB0*xl + preB1*l.x1 + preB2*l.x2 - preA2*l.y2 - preA1*l.y1
		zl := yl - 2*l.y1 + l.y2 - rlbA2*l.z2 - rlbA1*l.z1
		l.x2, l.x1, l.y2, l.y1, l.z2, l.z1 = l.x1, xl, l.y1, yl, l.z1, zl
		suml += zl * zl

		yr := preB0*xr + preB1*r.x1 + preB2*r.x2 - preA2*r.y2 - preA1*r.y1
		zr := yr - 2*r.y1 + r.y2 - rlbA2*r.z2 - rlbA1*r.z1
		r.x2, r.x1, r.y2, r.y1, r.z2, r.z1 = r.x1, xr, r.y1, yr, r.z1, zr
		sumr += zr * zr
	}
	m.st[0], m.st[1] = l.flush(), r.flush()
	m.acc = [2]float64{suml, sumr}
	return peak
}

// flush zeroes the state's negligible values: in silence the filters ring
// down into subnormal numbers, which the CPU computes slowly (and which
// can keep ringing), while 1e-30 is some 500 dB below the gates.
func (k kState) flush() kState {
	tiny := func(v float64) float64 {
		if math.Abs(v) < 1e-30 {
			return 0
		}
		return v
	}
	return kState{tiny(k.x1), tiny(k.x2), tiny(k.y1), tiny(k.y2), tiny(k.z1), tiny(k.z2)}
}

// measureSamples measures interleaved stereo samples whose first is output
// sample start.
func measureSamples(interleaved []float32, start int64) loudnessBlocks {
	m := newMeter(start)
	m.add(interleaved)
	return m.b
}

// measureWAV measures a 48 kHz stereo float WAV (as FFmpeg writes it with
// -c:a pcm_f32le -f wav) whose first sample is output sample start. A WAV
// without sizes (FFmpeg writing to a pipe, or killed) is read to its end:
// the caller compares Samples with the window's length.
func measureWAV(path string, start int64) (loudnessBlocks, error) {
	f, err := os.Open(path)
	if err != nil {
		return loudnessBlocks{}, fmt.Errorf("render: loudness %s: %w", path, err)
	}
	defer f.Close()
	b, err := measureWAVFrom(f, start)
	if err != nil {
		return loudnessBlocks{}, fmt.Errorf("render: loudness %s: %w", path, err)
	}
	return b, nil
}

// wavBuffer is the size of the reads of a WAV's samples (a whole number of
// stereo float samples).
const wavBuffer = 256 << 10

// measureWAVFrom measures the WAV read from r.
func measureWAVFrom(r io.Reader, start int64) (loudnessBlocks, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	size, err := wavData(br)
	if err != nil {
		return loudnessBlocks{}, err
	}
	m := newMeter(start)
	buf := make([]byte, wavBuffer)
	samples := make([]float32, wavBuffer/4)
	var read int64
	for size < 0 || read < size {
		p := buf
		if size >= 0 {
			p = buf[:min(int64(len(buf)), size-read)]
		}
		n, err := io.ReadFull(br, p)
		read += int64(n)
		eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		switch {
		case err != nil && !eof:
			return loudnessBlocks{}, err
		case eof && size >= 0:
			return loudnessBlocks{}, fmt.Errorf("WAV truncated: %d of %d data bytes", read, size)
		case n%8 != 0:
			return loudnessBlocks{}, fmt.Errorf("WAV data ends inside a sample (%d bytes)", read)
		}
		decodeFloats(samples, p[:n])
		m.add(samples[:n/4])
		if eof {
			break
		}
	}
	return m.b, nil
}

// decodeFloats decodes little-endian float32s.
func decodeFloats(dst []float32, p []byte) {
	dst = dst[:len(p)/4]
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
	}
}

// wavData reads a WAV's chunks up to its samples and returns their size in
// bytes, or −1 when the size is unknown (FFmpeg writing to a pipe leaves
// 0xFFFFFFFF; RF64 keeps it in ds64): the samples run to the end of the
// file. The format must be 48 kHz stereo 32-bit float.
func wavData(r *bufio.Reader) (int64, error) {
	var h [12]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, fmt.Errorf("reading WAV header: %w", err)
	}
	if id := string(h[:4]); id != "RIFF" && id != "RF64" || string(h[8:]) != "WAVE" {
		return 0, fmt.Errorf("not a RIFF WAVE file (starts %q)", h[:])
	}
	haveFmt := false
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("reading WAV chunks (no data chunk): %w", err)
		}
		id, size := string(ch[:4]), int64(binary.LittleEndian.Uint32(ch[4:]))
		switch id {
		case "fmt ":
			if size < 16 || size > 1024 {
				return 0, fmt.Errorf("WAV fmt chunk of %d bytes", size)
			}
			p := make([]byte, size+size&1)
			if _, err := io.ReadFull(r, p); err != nil {
				return 0, fmt.Errorf("reading WAV fmt chunk: %w", err)
			}
			if err := checkWAVFormat(p[:size]); err != nil {
				return 0, err
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return 0, errors.New("WAV data chunk before its fmt chunk")
			}
			if size == 0xFFFFFFFF || size == 0 {
				return -1, nil
			}
			if size%8 != 0 {
				return 0, fmt.Errorf("WAV data chunk of %d bytes: not a whole number of stereo float samples", size)
			}
			return size, nil
		default: // LIST, fact, ds64...
			if n, err := r.Discard(int(size + size&1)); err != nil {
				return 0, fmt.Errorf("WAV %q chunk truncated (%d of %d bytes; no data chunk): %w", id, n, size, err)
			}
		}
	}
}

// wavFloat is the format tag of IEEE float samples; wavExtensible's
// subformat GUID then holds the tag (FFmpeg writes float WAVs so).
const (
	wavFloat      = 3
	wavExtensible = 0xFFFE
)

// wavGUIDTail is the tail of the subformat GUIDs of WAVE_FORMAT_EXTENSIBLE,
// after their 2-byte format tag.
const wavGUIDTail = "\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"

// checkWAVFormat accepts a fmt chunk of 48 kHz stereo 32-bit float.
func checkWAVFormat(p []byte) error {
	le := binary.LittleEndian
	tag, channels, rate, align, bits := le.Uint16(p), le.Uint16(p[2:]), le.Uint32(p[4:]), le.Uint16(p[12:]), le.Uint16(p[14:])
	if tag == wavExtensible && len(p) >= 40 && string(p[26:40]) == wavGUIDTail {
		tag = le.Uint16(p[24:])
	}
	if tag != wavFloat || channels != 2 || rate != sampleRate || bits != 32 || align != 8 {
		return fmt.Errorf("WAV of format %#x, %d channels, %d Hz, %d bits: want float (3), 2 channels, %d Hz, 32 bits",
			tag, channels, rate, bits, sampleRate)
	}
	return nil
}

// mergeBlocks adds the summaries of spans of output audio. The spans must
// not overlap (a sub-block measured twice counts as incomplete); those not
// measured leave holes, in which no gating block or short-term window is
// taken.
func mergeBlocks(parts ...loudnessBlocks) loudnessBlocks {
	var m loudnessBlocks
	first, end := int64(math.MaxInt64), int64(math.MinInt64)
	for _, p := range parts {
		m.Peak = max(m.Peak, p.Peak)
		m.Samples += p.Samples
		if len(p.Sum) > 0 {
			first, end = min(first, p.First), max(end, p.First+int64(len(p.Sum)))
		}
	}
	if end < first {
		return m
	}
	m.First = first
	m.Sum = make([]float64, end-first)
	m.N = make([]int32, end-first)
	for _, p := range parts {
		for i, s := range p.Sum {
			m.Sum[p.First-first+int64(i)] += s
			m.N[p.First-first+int64(i)] += p.N[i]
		}
	}
	return m
}

// energies are the mean squares (summed over the channels) of every span of
// n consecutive complete sub-blocks, in order.
func (b loudnessBlocks) energies(n int) []float64 {
	var z []float64
	run := 0
	for i := range b.Sum {
		if b.N[i] != subBlock {
			run = 0
			continue
		}
		if run++; run >= n {
			var s float64
			for _, v := range b.Sum[i-n+1 : i+1] {
				s += v
			}
			z = append(z, s/float64(n*subBlock))
		}
	}
	return z
}

// lufs is the loudness of a mean square (BS.1770: −0.691 + 10·log10).
func lufs(z float64) float64 { return -0.691 + 10*math.Log10(z) }

// loudness is the EBU R128 measurement of the summarized audio:
//
//   - I: BS.1770-4 integrated loudness over the 400 ms gating blocks every
//     100 ms that lie in the measured audio; absolute gate: blocks above
//     −70 LUFS; relative gate: above the loudness of their mean energy
//     − 10 LU. silentLoudness (−70) when no block passes.
//   - LRA: EBU Tech 3342 over the 3 s short-term windows every 100 ms:
//     gated at ≥ −70 LUFS then ≥ the loudness of their mean energy − 20 LU;
//     the 95th minus the 10th percentile of what passes, the p-th
//     percentile of n sorted values being the one at index
//     round((n−1)·p/100) from 0 (Tech 3342's MATLAB code). 0 when no window
//     passes (audio shorter than 3 s, or silent).
//   - Peak: the sample peak in dBFS (−Inf for digital silence).
func (b loudnessBlocks) loudness() Loudness {
	return Loudness{I: integrated(b.energies(gatingBlock)), LRA: loudnessRange(b.energies(shortTerm)),
		Peak: 20 * math.Log10(b.Peak), Measured: true}
}

// integrated is the gated loudness of 400 ms blocks of mean squares z.
func integrated(z []float64) float64 {
	gated := func(gate float64) (mean float64, n int) {
		var sum float64
		for _, e := range z {
			if l := lufs(e); l > silentLoudness && l > gate {
				sum += e
				n++
			}
		}
		return sum / float64(n), n
	}
	abs, n := gated(silentLoudness)
	if n == 0 {
		return silentLoudness
	}
	rel, _ := gated(lufs(abs) - 10) // not empty: the loudest block passes
	return lufs(rel)
}

// loudnessRange is the loudness range of short-term mean squares z.
func loudnessRange(z []float64) float64 {
	var st []float64
	var sum float64
	for _, e := range z {
		if l := lufs(e); l >= silentLoudness {
			st = append(st, l)
			sum += e
		}
	}
	if len(st) == 0 {
		return 0
	}
	gate := lufs(sum/float64(len(st))) - 20
	st = slices.DeleteFunc(st, func(l float64) bool { return l < gate })
	slices.Sort(st)
	pc := func(p float64) float64 { return st[int(math.Round(float64(len(st)-1)*p/100))] }
	return pc(95) - pc(10)
}
