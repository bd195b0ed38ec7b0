package render

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// speechLike is n stereo samples that are hard on a splice: a voice-like
// harmonic sound whose pitch glides, in syllables 4 a second, with a little
// noise, and tones that start sharply at each of the sample positions at.
func speechLike(n int, at []int64) []float32 {
	s := noise(n, 7)
	var phase float64
	for i := range n {
		t := float64(i) / sampleRate
		env := math.Max(0, math.Sin(2*math.Pi*4*t))
		f0 := 160 + 50*math.Sin(2*math.Pi*0.3*t)
		phase += 2 * math.Pi * f0 / sampleRate
		var v float64
		for h := 1.0; h <= 12; h++ {
			v += math.Sin(h*phase) / h
		}
		v *= 0.15 * env
		s[2*i] = float32(v) + 0.05*s[2*i]
		s[2*i+1] = float32(0.8*v) + 0.05*s[2*i+1]
	}
	for _, a := range at {
		for i := a; i < min(int64(n), a+4800); i++ {
			v := float32(0.3 * math.Sin(2*math.Pi*880*float64(i-a)/sampleRate))
			s[2*i] += v
			s[2*i+1] -= v
		}
	}
	return s
}

// decodeAAC decodes an encoded file's audio to interleaved stereo floats.
func decodeAAC(t *testing.T, path string) []float32 {
	t.Helper()
	cmd := exec.Command(ffmpegTool(t), "-hide_banner", "-nostdin", "-v", "error", "-i", path, "-map", "0:a",
		"-f", "f32le", "-ac", "2", "-ar", "48000", "-")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	s := make([]float32, len(out)/4)
	for i := range s {
		s[i] = math.Float32frombits(binary.LittleEndian.Uint32(out[4*i:]))
	}
	return s
}

// maxErr is the largest |a − b| over stereo samples [from, to).
func maxErr(a, b []float32, from, to int64) float64 {
	var m float64
	for i := 2 * max(0, from); i < 2*min(to, int64(len(a)/2), int64(len(b)/2)); i++ {
		m = max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// snr is the signal-to-error ratio (dB) of got against want.
func snr(want, got []float32) float64 {
	var sig, e float64
	for i := range min(len(want), len(got)) {
		sig += float64(want[i]) * float64(want[i])
		d := float64(got[i] - want[i])
		e += d * d
	}
	return 10 * math.Log10(sig/e)
}

// lagOf is the lag (samples, within ±limit) at which got best matches
// want: 0 when they are aligned.
func lagOf(want, got []float32, limit int) int {
	best, lag := math.Inf(-1), 0
	n := min(len(want), len(got))/2 - limit
	for l := -limit; l <= limit; l++ {
		var c float64
		for i := limit; i < n; i += 3 {
			c += float64(want[2*i]) * float64(got[2*(i+l)])
		}
		if c > best {
			best, lag = c, l
		}
	}
	return lag
}

// TestAACWindows encodes a mix drawn in windows of 2.5 s in encoded audio
// windows and joins them, and compares the result with one encoder over the
// whole mix: the same length to the sample, no shift, and at each splice no
// more error than the codec's own.
func TestAACWindows(t *testing.T) {
	ff := ffmpegTool(t)
	dir := t.TempDir()
	fps := timeline.Rational{Num: 30, Den: 1}
	const frames, window = 380, 75 // 12.67 s in windows of 2.5 s
	total := samplesOfFrames(frames, fps)
	p := &Program{Frames: frames, FPS: fps, profiles: []Profile{{Name: ProfileMP4_360}}}
	var starts []int64
	for f := int64(0); f < frames; f += window {
		p.audioSpans = append(p.audioSpans, span{f, min(frames, f+window)})
		starts = append(starts, samplesOfFrames(f, fps))
	}
	p.aacWindows = aacWindowsOf(starts, total)
	if got, want := len(p.aacWindows), len(starts); got != want {
		t.Fatalf("%d encoded windows for %d audio windows", got, want)
	}
	var junctions []int64
	for _, w := range p.aacWindows[1:] {
		junctions = append(junctions, int64(w.From-1)*aacFrameSamples) // the first sample of the packet's frame
	}
	src := speechLike(int(total), junctions)
	var names []string
	var durs []float64
	for i, sp := range p.audioSpans {
		a, b := samplesOfFrames(sp.From, fps), samplesOfFrames(sp.To, fps)
		writeWAV(t, filepath.Join(dir, audioWindowFile(i)), wavFloat, 2, sampleRate, 32, floatBytes(src[2*a:2*b]))
		names, durs = append(names, audioWindowFile(i)), append(durs, float64(b-a)/sampleRate)
	}
	p.audioList = wavConcat(names, durs)
	r := &runner{ffmpeg: ff, dir: dir, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx := context.Background()
	one := p.encodeMix("one pass", "one.m4a", nil, "-c:a", "aac", "-b:a", fmt.Sprintf("%dk", aacBitrate), "-f", "mp4")
	// Joined, then copied into an M4A as the muxes copy it.
	cmds := append(p.aacWindowCommands(nil), p.aacJoin(), p.muxAudio(nil), one)
	m4a := filepath.Join(dir, outDirName, OutputName(ProfileAudio))
	for _, c := range cmds {
		if _, err := r.run(ctx, c, func(time.Duration) {}); err != nil {
			t.Fatal(err)
		}
	}
	// In MP4 as one encoder's: the packets start one frame early (the
	// priming, an edit list) and the last ends on the mix's last sample.
	out, err := exec.Command(strings.TrimSuffix(ff, "ffmpeg")+"ffprobe", "-v", "error", "-select_streams", "a",
		"-show_entries", "packet=pts,duration", "-of", "csv=p=0", m4a).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var first, end int64
	packets := strings.Fields(string(out))
	for i, l := range packets {
		var pts, dur int64
		if _, err := fmt.Sscanf(l, "%d,%d", &pts, &dur); err != nil {
			t.Fatalf("ffprobe: packet %q: %v", l, err)
		}
		if i == 0 {
			first = pts
		}
		end = pts + dur
	}
	if first != -aacPriming || end != total || len(packets) != aacPackets(total) {
		t.Errorf("joined: first packet at %d, last ending at %d, %d packets; want %d, %d, %d",
			first, end, len(packets), -aacPriming, total, aacPackets(total))
	}
	// Muxed as a render muxes it, with a video.
	runFFmpeg(t, "-f", "lavfi", "-i", "color=size=64x64:rate=30:duration=12.666667", "-i", m4a,
		"-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-c:a", "copy", "-movflags", "+faststart", filepath.Join(dir, "muxed.mp4"))
	joined, single, muxed := decodeAAC(t, m4a), decodeAAC(t, filepath.Join(dir, "one.m4a")),
		decodeAAC(t, filepath.Join(dir, "muxed.mp4"))
	// FFmpeg's decoder leaves the last frame whole: the one pass's
	// length, the source's to within a frame.
	if n := int64(len(single) / 2); n < total || n >= total+aacFrameSamples {
		t.Errorf("one pass: %d samples decoded, want %d to %d", n, total, total+aacFrameSamples-1)
	}
	for name, got := range map[string][]float32{"joined": joined, "muxed": muxed} {
		if got, want := len(got), len(single); got != want {
			t.Errorf("%s: %d samples decoded, want %d as in one pass", name, got/2, want/2)
		}
		if lag := lagOf(src, got, 2048); lag != 0 {
			t.Errorf("%s: decoded %d samples off the source", name, lag)
		}
	}
	sj, so := snr(src, joined), snr(src, single)
	t.Logf("SNR against the source: %.2f dB joined from %d windows, %.2f dB one pass", sj, len(p.aacWindows), so)
	if sj < so-0.5 {
		t.Errorf("joined SNR %.2f dB, want within 0.5 dB of the one pass's %.2f", sj, so)
	}
	for _, b := range junctions {
		// The frames decoded from the packets on either side of the splice.
		from, to := b-2*aacFrameSamples, b+2*aacFrameSamples
		ej, eo := maxErr(src, joined, from, to), maxErr(src, single, from, to)
		t.Logf("splice at sample %d: largest error %.4f, %.4f in one pass", b, ej, eo)
		if ej > 2*eo {
			t.Errorf("splice at sample %d: largest error %.4f, over twice the one pass's %.4f there", b, ej, eo)
		}
	}
}

// TestCopyFileOntoItsLink takes a kept file into the work folder that drew
// it (where the work file is a hard link to the kept one, as when a
// prerender encodes the audio windows it has just drawn): the file is left
// whole, not truncated by writing through the link.
func TestCopyFileOntoItsLink(t *testing.T) {
	dir := t.TempDir()
	work, kept := filepath.Join(dir, "mix-000.wav"), filepath.Join(dir, "key", "mix-000.wav")
	if err := os.WriteFile(work, []byte("samples"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := copyFile(ctx, work, kept); err != nil { // kept
		t.Fatal(err)
	}
	if err := copyFile(ctx, kept, work); err != nil { // taken back
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.wav")
	if err := os.WriteFile(other, []byte("other samples"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(ctx, other, work); err != nil { // replaced
		t.Fatal(err)
	}
	for path, want := range map[string]string{kept: "samples", work: "other samples"} {
		if got, err := os.ReadFile(path); err != nil || string(got) != want {
			t.Errorf("%s holds %q (%v), want %q", path, got, err, want)
		}
	}
}

// TestMuxEncodesAAC encodes the AAC of a mix in one encoded window in the
// mux that carries it, and apart (encoded, joined, copied by the mux): the
// two files hold the same packets (data, timestamps, durations, the
// priming's skip) and decode to the same samples. Only the decoder
// configuration differs: the encoder's own says "no SBR" in 3 more bytes
// than the one made from the ADTS headers.
func TestMuxEncodesAAC(t *testing.T) {
	ff := ffmpegTool(t)
	fps := timeline.Rational{Num: 30, Den: 1}
	const frames = 190 // 6.33 s: not a whole number of AAC frames
	total := samplesOfFrames(frames, fps)
	p := &Program{Frames: frames, FPS: fps, profiles: []Profile{{Name: ProfileAudio, kind: kindAudio}},
		audioSpans: []span{{0, frames}}}
	p.aacWindows = aacWindowsOf([]int64{0}, total)
	if !p.muxMayEncodeAAC() {
		t.Fatal("one encoded window and the audio profile: the mux should be allowed to encode the AAC")
	}
	p.audioList = wavConcat([]string{audioWindowFile(0)}, []float64{float64(total) / sampleRate})
	af := []string{"volume=-3dB"} // a loudness gain
	src := floatBytes(speechLike(int(total), nil))
	var apart, inMux string // the M4A of each way
	for _, encodeApart := range []bool{true, false} {
		dir := t.TempDir()
		writeWAV(t, filepath.Join(dir, audioWindowFile(0)), wavFloat, 2, sampleRate, 32, src)
		r := &runner{ffmpeg: ff, dir: dir, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		cmds := []Command{p.muxAudio(&aacByMux{filters: af})}
		if encodeApart {
			cmds = append(p.aacWindowCommands(af), p.aacJoin(), p.muxAudio(nil))
		}
		for _, c := range cmds {
			if _, err := r.run(t.Context(), c, func(time.Duration) {}); err != nil {
				t.Fatal(err)
			}
		}
		m4a := filepath.Join(dir, outDirName, OutputName(ProfileAudio))
		if encodeApart {
			apart = m4a
		} else {
			inMux = m4a
		}
	}
	packets := func(path string) string {
		out, err := exec.Command(ff, "-hide_banner", "-nostdin", "-v", "error", "-i", path, "-map", "0:a", "-c", "copy",
			"-f", "framemd5", "-").Output()
		if err != nil {
			t.Fatalf("framemd5 %s: %v", path, err)
		}
		var lines []string
		for _, l := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(l, "#") { // the header: the extradata's checksum
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "\n")
	}
	pa, pm := packets(apart), packets(inMux)
	if pa != pm {
		t.Errorf("the packets differ:\napart:\n%s\nin the mux:\n%s", pa, pm)
	}
	if got, want := strings.Count("\n"+pm, "\n0,"), aacPackets(total); got != want {
		t.Errorf("%d packets, want %d", got, want)
	}
	ja, jm := decodeAAC(t, apart), decodeAAC(t, inMux)
	if len(ja) != len(jm) || maxErr(ja, jm, 0, int64(len(ja)/2)) != 0 {
		t.Errorf("decoded: %d and %d samples, largest difference %g; want the same samples", len(ja)/2, len(jm)/2,
			maxErr(ja, jm, 0, int64(len(ja)/2)))
	}

	// Which programs may.
	mp4 := Profile{Name: ProfileMP4_720}
	for _, c := range []struct {
		name     string
		windows  int
		profiles []Profile
		want     bool
	}{
		{"an MP4", 1, []Profile{mp4}, true},
		{"an MP4 and a WebM (Opus)", 1, []Profile{mp4, {Name: ProfileWebM720, kind: kindWebM}}, true},
		{"an MP4 and the M4A", 1, []Profile{mp4, {Name: ProfileAudio, kind: kindAudio}}, false},
		{"HLS", 1, []Profile{{Name: ProfileHLS, kind: kindHLS}}, false},
		{"two encoded windows", 2, []Profile{mp4}, false},
	} {
		q := &Program{profiles: c.profiles, aacWindows: make([]aacWindow, c.windows)}
		if got := q.muxMayEncodeAAC(); got != c.want {
			t.Errorf("%s: muxMayEncodeAAC %v, want %v", c.name, got, c.want)
		}
	}
}
