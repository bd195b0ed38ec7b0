package render

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// toneSpan is a stretch of a stereo 1 kHz sine: peak level (dBFS) and
// length (s).
type toneSpan struct{ dBFS, secs float64 }

// tones is the interleaved stereo 1 kHz sine of consecutive spans.
func tones(spans ...toneSpan) []float32 {
	var period [sampleRate / 1000]float64
	for k := range period {
		period[k] = math.Sin(2 * math.Pi * float64(k) / float64(len(period)))
	}
	n := 0
	for _, sp := range spans {
		n += int(sp.secs * sampleRate)
	}
	s := make([]float32, 0, 2*n)
	for _, sp := range spans {
		a := math.Pow(10, sp.dBFS/20)
		for range int(sp.secs * sampleRate) {
			v := float32(a * period[len(s)/2%len(period)])
			s = append(s, v, v)
		}
	}
	return s
}

// noise is n stereo samples of bursts of uncorrelated noise at varying
// levels, with pauses of digital silence.
func noise(n int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	s := make([]float32, 2*n)
	var low float64
	for i := range n {
		t := float64(i) / sampleRate
		if math.Mod(t, 5) < 1 {
			continue
		}
		a := math.Pow(10, (-40+30*math.Abs(math.Sin(t/7)))/20)
		low = 0.999*low + 0.02*rng.NormFloat64() // a rumble for the high-pass
		s[2*i] = float32(a * (rng.NormFloat64()*0.3 + low))
		s[2*i+1] = float32(a * rng.NormFloat64() * 0.2)
	}
	return s
}

// TestR128Tech3341 measures the integrated loudness of EBU Tech 3341's
// test signals 1 to 4 (stereo 1 kHz sines).
func TestR128Tech3341(t *testing.T) {
	cases := []struct {
		name  string
		spans []toneSpan
		want  float64
	}{
		{"1: -23 dBFS", []toneSpan{{-23, 20}}, -23},
		{"2: -33 dBFS", []toneSpan{{-33, 20}}, -33},
		{"3: relative gate", []toneSpan{{-36, 10}, {-23, 60}, {-36, 10}}, -23},
		{"4: absolute gate", []toneSpan{{-72, 10}, {-36, 10}, {-23, 20}, {-36, 10}, {-72, 10}}, -23},
	}
	for _, c := range cases {
		for _, start := range []int64{0, 1234567} {
			l := measureSamples(tones(c.spans...), start).loudness()
			if got, want := l.I, c.want; math.Abs(got-want) > 0.1 {
				t.Errorf("case %s from sample %d: I = %.3f LUFS, want %.1f ± 0.1", c.name, start, got, want)
			}
		}
	}
}

// TestR128Tech3342 measures the loudness range of EBU Tech 3342's test
// signals 1 to 4.
func TestR128Tech3342(t *testing.T) {
	cases := []struct {
		spans []toneSpan
		want  float64
	}{
		{[]toneSpan{{-20, 20}, {-30, 20}}, 10},
		{[]toneSpan{{-20, 20}, {-15, 20}}, 5},
		{[]toneSpan{{-40, 20}, {-20, 20}}, 20},
		{[]toneSpan{{-50, 20}, {-35, 20}, {-20, 20}, {-35, 20}, {-50, 20}}, 15},
	}
	for i, c := range cases {
		l := measureSamples(tones(c.spans...), 0).loudness()
		if got, want := l.LRA, c.want; math.Abs(got-want) > 1 {
			t.Errorf("case %d %v: LRA = %.3f LU, want %.0f ± 1", i+1, c.spans, got, want)
		}
	}
	if got, want := measureSamples(tones(toneSpan{-20, 2.9}), 0).loudness().LRA, 0.0; got != want {
		t.Errorf("LRA of 2.9 s (no short-term window) = %v, want %v", got, want)
	}
}

// TestR128Silence: digital silence, or audio below the absolute gate, is
// reported as FFmpeg reports it, which loudnessFilters leaves alone.
func TestR128Silence(t *testing.T) {
	s := &Settings{Loudness: -16}
	for name, b := range map[string]loudnessBlocks{
		"zeros":    measureSamples(make([]float32, 2*10*sampleRate), 0),
		"-75 dBFS": measureSamples(tones(toneSpan{-75, 10}), 0),
		"nothing":  mergeBlocks(),
	} {
		l := b.loudness()
		if l.I != silentLoudness || l.LRA != 0 || !l.Measured {
			t.Errorf("%s: %+v, want I = %v, LRA = 0", name, l, silentLoudness)
		}
		if fs := loudnessFilters(s, l); fs != nil {
			t.Errorf("%s: %+v gives the filters %v, want none", name, l, fs)
		}
	}
	if got := measureSamples(make([]float32, 1000), 0).loudness().Peak; !math.IsInf(got, -1) {
		t.Errorf("peak of zeros = %v dBFS, want -Inf", got)
	}
	m := newMeter(0)
	m.add(noise(3*sampleRate, 9)[:2*sampleRate]) // a second of noise
	m.add(make([]float32, 2*sampleRate))         // a second of silence
	if m.st != [2]kState{} {
		t.Errorf("the filters still ring after a second of silence: %+v", m.st)
	}
}

// TestR128Merge: the summaries of the pieces of a signal, cut anywhere and
// merged in any order, give the loudness of the whole but for the filters'
// restart at each cut, and holes are left out.
func TestR128Merge(t *testing.T) {
	const n = 40 * sampleRate
	s := noise(n, 1)
	const start = 777777 // the signal's first output sample
	whole := measureSamples(s, start)
	cuts := []int{0, 1, 4799, 4800, 96001, 100000, 333333, 1234567, n}
	var parts []loudnessBlocks
	for i := len(cuts) - 2; i >= 0; i-- {
		parts = append(parts, measureSamples(s[2*cuts[i]:2*cuts[i+1]], start+int64(cuts[i])))
	}
	merged := mergeBlocks(parts...)
	if got, want := merged.Samples, int64(n); got != want {
		t.Errorf("merged %d samples, want %d", got, want)
	}
	if got, want := merged.First, whole.First; got != want || len(merged.Sum) != len(whole.Sum) {
		t.Errorf("merged sub-blocks from %d (%d), want from %d (%d)", got, len(merged.Sum), want, len(whole.Sum))
	}
	lw, lm := whole.loudness(), merged.loudness()
	t.Logf("whole %+v, %d pieces %+v", lw, len(parts), lm)
	if got, want := lm.Peak, lw.Peak; got != want {
		t.Errorf("merged peak %v dBFS, want %v", got, want)
	}
	if d := math.Abs(lm.I - lw.I); d > 0.005 {
		t.Errorf("merged I %.4f LUFS, whole %.4f: differ by %.4f LU", lm.I, lw.I, d)
	}
	if d := math.Abs(lm.LRA - lw.LRA); d > 0.05 {
		t.Errorf("merged LRA %.4f LU, whole %.4f: differ by %.4f", lm.LRA, lw.LRA, d)
	}

	// The first 96001 samples and those from 333333 on: the gating blocks
	// touching the hole are left out, as if either side were measured
	// alone.
	before := measureSamples(s[:2*96001], start)
	after := measureSamples(s[2*333333:], start+333333)
	want := append(before.energies(gatingBlock), after.energies(gatingBlock)...)
	got := mergeBlocks(after, before).energies(gatingBlock)
	if len(got) != len(want) {
		t.Fatalf("%d gating blocks around the hole, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("gating block %d around the hole: %g, want %g", i, got[i], want[i])
		}
	}
}

// writeWAV writes a WAV file: the fmt chunk's fields, then the data.
func writeWAV(t testing.TB, path string, tag, channels uint16, rate uint32, bits uint16, data []byte) {
	t.Helper()
	le := binary.LittleEndian
	var b bytes.Buffer
	b.WriteString("RIFF")
	b.Write(le.AppendUint32(nil, uint32(4+8+16+8+len(data))))
	b.WriteString("WAVEfmt ")
	b.Write(le.AppendUint32(nil, 16))
	align := channels * bits / 8
	for _, v := range []any{tag, channels, rate, rate * uint32(align), align, bits} {
		if err := binary.Write(&b, le, v); err != nil {
			t.Fatal(err)
		}
	}
	b.WriteString("data")
	b.Write(le.AppendUint32(nil, uint32(len(data))))
	b.Write(data)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// floatBytes encodes samples as little-endian float32s.
func floatBytes(s []float32) []byte {
	p := make([]byte, 0, 4*len(s))
	for _, v := range s {
		p = binary.LittleEndian.AppendUint32(p, math.Float32bits(v))
	}
	return p
}

// ffmpegTool is FFmpeg; the test fails (never skips) without it.
func ffmpegTool(t testing.TB) string {
	t.Helper()
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatalf("this test runs the real FFmpeg (make deps): %v", err)
	}
	return ff
}

// runFFmpeg runs FFmpeg and returns its stderr.
func runFFmpeg(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(ffmpegTool(t), append([]string{"-hide_banner", "-nostdin", "-nostats", "-y"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stderr.String()
}

// lastValue is the number after the last occurrence of key in FFmpeg's log.
func lastValue(t *testing.T, log, key string) float64 {
	t.Helper()
	i := strings.LastIndex(log, key)
	if i < 0 {
		t.Fatalf("no %q in FFmpeg's log:\n%s", key, log)
	}
	f := strings.Fields(log[i+len(key):])
	if len(f) == 0 {
		t.Fatalf("no value after %q in FFmpeg's log", key)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// ffmpegLoudness measures a file with FFmpeg: I and LRA from ebur128 (its
// metadata: three decimals), the peak from astats (six).
func ffmpegLoudness(t *testing.T, path string) Loudness {
	log := runFFmpeg(t, "-i", path, "-af",
		"ebur128=peak=sample:metadata=1,ametadata=mode=print,astats=measure_perchannel=none:measure_overall=Peak_level",
		"-f", "null", "-")
	return Loudness{I: lastValue(t, log, "lavfi.r128.I="), LRA: lastValue(t, log, "lavfi.r128.LRA="),
		Peak: lastValue(t, log, "Peak level dB:"), Measured: true}
}

// TestMeasureWAVFFmpeg cuts a minute of FFmpeg's noise, at varying levels
// with pauses, into windows of uneven lengths written by FFmpeg; their
// merged summaries must give FFmpeg's ebur128 measurement of the whole, and
// that of the whole measured at once.
func TestMeasureWAVFFmpeg(t *testing.T) {
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole.wav")
	const total = 60 * sampleRate
	runFFmpeg(t, "-filter_complex",
		"anoisesrc=d=60:c=pink:r=48000:a=0.5:seed=1[a];anoisesrc=d=60:c=brown:r=48000:a=0.5:seed=2[b];"+
			"[a][b]join=inputs=2:channel_layout=stereo,"+
			"volume='if(lt(mod(t,7),1.5),0,pow(10,(-34+28*abs(sin(t/9)))/20))':eval=frame",
		"-c:a", "pcm_f32le", "-f", "wav", whole)
	// 7 s, 10 s, 13.37 s, 50 ms, then odd lengths.
	cuts := []int64{0, 336000, 816000, 1457760, 1460160, 1666577, 2222222, total}
	var parts []loudnessBlocks
	for i := range len(cuts) - 1 {
		w := filepath.Join(dir, "mix-"+strconv.Itoa(i)+".wav")
		runFFmpeg(t, "-i", whole, "-af", "atrim=start_sample="+strconv.FormatInt(cuts[i], 10)+":end_sample="+strconv.FormatInt(cuts[i+1], 10),
			"-c:a", "pcm_f32le", "-f", "wav", w)
		b, err := measureWAV(w, cuts[i])
		if err != nil {
			t.Fatal(err)
		}
		if got, want := b.Samples, cuts[i+1]-cuts[i]; got != want {
			t.Fatalf("%s: %d samples, want %d", w, got, want)
		}
		parts = append(parts, b)
	}
	windows := mergeBlocks(parts...).loudness()
	b, err := measureWAV(whole, 0)
	if err != nil {
		t.Fatal(err)
	}
	once := b.loudness()
	ff := ffmpegLoudness(t, whole)
	t.Logf("FFmpeg ebur128: I %.3f LUFS, LRA %.3f LU, peak %.6f dBFS", ff.I, ff.LRA, ff.Peak)
	t.Logf("whole in Go:    I %.4f LUFS, LRA %.4f LU, peak %.6f dBFS", once.I, once.LRA, once.Peak)
	t.Logf("%d windows:      I %.4f LUFS, LRA %.4f LU, peak %.6f dBFS", len(parts), windows.I, windows.LRA, windows.Peak)
	t.Logf("windows − FFmpeg: ΔI %+.4f LU, ΔLRA %+.4f LU, Δpeak %+.6f dB; windows − whole: ΔI %+.5f LU, ΔLRA %+.5f LU",
		windows.I-ff.I, windows.LRA-ff.LRA, windows.Peak-ff.Peak, windows.I-once.I, windows.LRA-once.LRA)
	if d := math.Abs(windows.I - ff.I); d > 0.1 {
		t.Errorf("I: windows %.4f LUFS, FFmpeg %.3f: differ by %.4f LU", windows.I, ff.I, d)
	}
	if d := math.Abs(windows.LRA - ff.LRA); d > 0.5 {
		t.Errorf("LRA: windows %.4f LU, FFmpeg %.3f: differ by %.4f LU", windows.LRA, ff.LRA, d)
	}
	if d := math.Abs(windows.Peak - ff.Peak); d > 0.01 {
		t.Errorf("peak: windows %.6f dBFS, FFmpeg %.6f: differ by %.6f dB", windows.Peak, ff.Peak, d)
	}
	if d := math.Abs(windows.I - once.I); d > 0.01 {
		t.Errorf("I: windows %.5f LUFS, whole %.5f: differ by %.5f LU", windows.I, once.I, d)
	}
	if d := math.Abs(windows.LRA - once.LRA); d > 0.05 {
		t.Errorf("LRA: windows %.5f LU, whole %.5f: differ by %.5f LU", windows.LRA, once.LRA, d)
	}
	if windows.Peak != once.Peak {
		t.Errorf("peak: windows %v dBFS, whole %v", windows.Peak, once.Peak)
	}
}

// TestMeasureWAVFormats reads the WAVs measureWAV meets: FFmpeg's
// (WAVE_FORMAT_EXTENSIBLE, fact and LIST chunks), FFmpeg's to a pipe (no
// sizes), and a plain float WAV; each must hold exactly the samples.
func TestMeasureWAVFormats(t *testing.T) {
	dir := t.TempDir()
	s := noise(sampleRate*7/2, 3)
	want := measureSamples(s, 4321)
	plain := filepath.Join(dir, "plain.wav")
	writeWAV(t, plain, wavFloat, 2, sampleRate, 32, floatBytes(s))
	seekable := filepath.Join(dir, "ffmpeg.wav")
	runFFmpeg(t, "-i", plain, "-c:a", "pcm_f32le", "-f", "wav", seekable)
	piped := filepath.Join(dir, "pipe.wav")
	cmd := exec.Command(ffmpegTool(t), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", plain, "-c:a", "pcm_f32le", "-f", "wav", "-")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint32(out[4:]); got != 0xFFFFFFFF {
		t.Fatalf("FFmpeg wrote the RIFF size %#x to a pipe", got)
	}
	if err := os.WriteFile(piped, out, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{plain, seekable, piped} {
		got, err := measureWAV(path, 4321)
		if err != nil {
			t.Fatal(err)
		}
		if got.First != want.First || got.Samples != want.Samples || got.Peak != want.Peak || !equalFloats(got.Sum, want.Sum) {
			t.Errorf("%s: measured %d samples from sub-block %d, peak %v; want %d from %d, peak %v (or sums differ)",
				path, got.Samples, got.First, got.Peak, want.Samples, want.First, want.Peak)
		}
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestMeasureWAVErrors: files that are not 48 kHz stereo float WAVs, or
// are cut short, give an error naming the file, never a panic or a
// measurement of part of them.
func TestMeasureWAVErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.wav")
	writeWAV(t, good, wavFloat, 2, sampleRate, 32, floatBytes(noise(sampleRate/2, 4)))
	valid, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	ffmpegWAV := filepath.Join(dir, "ffmpeg.wav")
	runFFmpeg(t, "-i", good, "-c:a", "pcm_f32le", "-f", "wav", ffmpegWAV)
	file := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	unsized := bytes.Clone(valid)
	binary.LittleEndian.PutUint32(unsized[40:], 0xFFFFFFFF)
	s16 := filepath.Join(dir, "s16.wav")
	runFFmpeg(t, "-i", good, "-c:a", "pcm_s16le", "-f", "wav", s16)
	f44 := filepath.Join(dir, "44k.wav")
	runFFmpeg(t, "-i", good, "-ar", "44100", "-c:a", "pcm_f32le", "-f", "wav", f44)
	mono := filepath.Join(dir, "mono.wav")
	runFFmpeg(t, "-i", good, "-ac", "1", "-c:a", "pcm_f32le", "-f", "wav", mono)
	noFmt := append([]byte("RIFF\x00\x00\x00\x00WAVEdata\x08\x00\x00\x00"), make([]byte, 8)...)

	cases := []struct{ path, want string }{
		{filepath.Join(dir, "missing.wav"), "no such file"},
		{file("empty.wav", nil), "reading WAV header: unexpected EOF"},
		{file("text.wav", []byte("this is not audio, just some words.")), "not a RIFF WAVE file"},
		{file("header.wav", valid[:30]), "reading WAV fmt chunk: unexpected EOF"},
		{file("nodata.wav", valid[:36]), "no data chunk"},
		{file("short.wav", valid[:len(valid)-1000]), "WAV truncated"},
		{file("midsample.wav", unsized[:len(unsized)-3]), "ends inside a sample"},
		{file("nofmt.wav", noFmt), "data chunk before its fmt chunk"},
		{s16, "format 0x1, 2 channels, 48000 Hz, 16 bits"},
		{f44, "44100 Hz"},
		{mono, "1 channels"},
	}
	for _, c := range cases {
		_, err := measureWAV(c.path, 0)
		if err == nil {
			t.Errorf("%s: measured", filepath.Base(c.path))
			continue
		}
		if !strings.HasPrefix(err.Error(), "render: loudness "+c.path+": ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want one naming the file and saying %q", filepath.Base(c.path), err, c.want)
		}
	}
	if _, err := measureWAV(filepath.Join(dir, "missing.wav"), 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}

	// Every cut of FFmpeg's WAV through its header and first samples, and
	// every garbled byte of its header, gives an error or a measurement,
	// never a panic.
	fw, err := os.ReadFile(ffmpegWAV)
	if err != nil {
		t.Fatal(err)
	}
	for n := range min(len(fw), 200) {
		if _, err := measureWAVFrom(bytes.NewReader(fw[:n]), 0); err == nil && n < 100 {
			t.Errorf("FFmpeg's WAV cut after %d bytes: measured", n)
		}
		g := bytes.Clone(fw)
		g[n] ^= 0xA5
		_, _ = measureWAVFrom(bytes.NewReader(g), 0) // must not panic
	}
	if _, err := measureWAVFrom(bytes.NewReader(fw), 0); err != nil {
		t.Errorf("FFmpeg's WAV: %v", err)
	}
}

// BenchmarkMeasureWAV reads and measures a minute of float WAV (11.5 MB).
func BenchmarkMeasureWAV(b *testing.B) {
	path := filepath.Join(b.TempDir(), "mix.wav")
	const secs = 60
	writeWAV(b, path, wavFloat, 2, sampleRate, 32, floatBytes(noise(secs*sampleRate, 5)))
	b.SetBytes(secs * sampleRate * 8)
	b.ResetTimer()
	for b.Loop() {
		if _, err := measureWAV(path, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/secs, "ns/s-audio")
}
