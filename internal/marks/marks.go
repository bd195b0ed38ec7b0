// Package marks finds sync marks — white video flashes and tone bursts — in
// media files, by decoding them with FFmpeg. Tests of capture, render and
// the browser path use it to measure audio/video placement in milliseconds.
package marks

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// Tools returns the paths of ffmpeg and ffprobe, or an error saying how to
// install them.
func Tools() (ffmpeg, ffprobe string, err error) {
	ffmpeg, err1 := exec.LookPath("ffmpeg")
	ffprobe, err2 := exec.LookPath("ffprobe")
	if err := errors.Join(err1, err2); err != nil {
		return "", "", fmt.Errorf("marks: ffmpeg/ffprobe not found (run `make deps`): %w", err)
	}
	return ffmpeg, ffprobe, nil
}

// DecodeStrict decodes every stream of a file with `ffmpeg -xerror` and
// returns an error holding FFmpeg's complaints, if any.
func DecodeStrict(path string) error {
	ff, _, err := Tools()
	if err != nil {
		return err
	}
	// Keep every frame at its own time, in the file's own time base: the
	// null muxer would otherwise resample variable frame rates (browsers
	// send frames a few ms apart at times) and report collisions.
	out, err := exec.Command(ff, "-v", "error", "-xerror", "-i", path, "-fps_mode", "passthrough", "-enc_time_base", "-1", "-f", "null", "-").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		return fmt.Errorf("marks: ffmpeg -xerror %s: %v: %s", path, err, bytes.TrimSpace(out))
	}
	return nil
}

// FrameMD5 returns the MD5 of every decoded frame of the file's first video
// stream (FFmpeg's framemd5), from ss (an -ss argument, "" for the start),
// at most n frames (0: all): two files with the same list decode to the same
// pictures.
func FrameMD5(path, ss string, n int) ([]string, error) {
	ff, _, err := Tools()
	if err != nil {
		return nil, err
	}
	args := []string{"-v", "error"}
	if ss != "" {
		args = append(args, "-ss", ss)
	}
	args = append(args, "-i", path, "-map", "0:v:0")
	if n > 0 {
		args = append(args, "-frames:v", strconv.Itoa(n))
	}
	out, err := exec.Command(ff, append(args, "-f", "framemd5", "-")...).Output()
	if err != nil {
		return nil, fmt.Errorf("marks: framemd5 %s: %w", path, err)
	}
	var hashes []string
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		hashes = append(hashes, strings.TrimSpace(f[len(f)-1]))
	}
	return hashes, nil
}

// Packet is one packet of a file, as ffprobe lists it.
type Packet struct {
	PTS  float64 // seconds
	Key  bool
	Size int64 // bytes
}

// PacketList returns every packet of the file's first stream of the given
// kind ("v" or "a"; "" for stream 0).
func PacketList(path, kind string) ([]Packet, error) {
	_, fp, err := Tools()
	if err != nil {
		return nil, err
	}
	sel := "0"
	if kind != "" {
		sel = kind + ":0"
	}
	// ffprobe prints the fields in its own order: pts_time, size, flags.
	out, err := exec.Command(fp, "-v", "error", "-select_streams", sel, "-show_entries",
		"packet=pts_time,size,flags", "-of", "csv=p=0", path).Output()
	if err != nil {
		return nil, fmt.Errorf("marks: ffprobe %s: %w", path, err)
	}
	var ps []Packet
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("marks: ffprobe %s: packet %q", path, line)
		}
		ps = append(ps, Packet{PTS: v, Key: strings.HasPrefix(f[2], "K"), Size: size})
	}
	return ps, nil
}

// Packets returns the pts (seconds) and keyframe flags of every packet of
// the file's first stream of the given kind ("v" or "a"; "" for stream 0).
func Packets(path, kind string) (pts []float64, key []bool, err error) {
	ps, err := PacketList(path, kind)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range ps {
		pts = append(pts, p.PTS)
		key = append(key, p.Key)
	}
	return pts, key, nil
}

// PCM decodes the first audio stream of a file to 48 kHz mono samples in
// [-1, 1], placing them by their timestamps: gaps (lost packets) become
// silence and sample 0 is time 0 of the file.
func PCM(path string) ([]float64, error) {
	ff, _, err := Tools()
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(ff, "-v", "error", "-i", path, "-map", "0:a:0", "-af", "aresample=async=1:min_hard_comp=0.001:first_pts=0",
		"-ac", "1", "-ar", "48000", "-f", "s16le", "-").Output()
	if err != nil {
		return nil, fmt.Errorf("marks: decode audio of %s: %w", path, err)
	}
	s := make([]float64, len(out)/2)
	for i := range s {
		s[i] = float64(int16(binary.LittleEndian.Uint16(out[2*i:]))) / 32768
	}
	return s, nil
}

// Luma decodes the first video stream of a file to tiny gray frames and
// returns each frame's pts (seconds) and mean luma (0–255).
func Luma(path string) (pts, luma []float64, err error) {
	return LumaRegion(path, 0, 0, 0, 0)
}

// LumaRegion is Luma over the rectangle x, y, w×h of the picture (w or h 0:
// the whole picture): one tile of a composite.
func LumaRegion(path string, x, y, w, h int) (pts, luma []float64, err error) {
	ff, _, err := Tools()
	if err != nil {
		return nil, nil, err
	}
	vf := "scale=8:8,format=gray,showinfo"
	if w > 0 && h > 0 {
		vf = fmt.Sprintf("crop=%d:%d:%d:%d,", w, h, x, y) + vf
	}
	cmd := exec.Command(ff, "-v", "info", "-nostats", "-i", path, "-map", "0:v:0", "-vf", vf,
		"-fps_mode", "passthrough", "-f", "rawvideo", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("marks: decode video of %s: %w: %s", path, err, tail(stderr.String(), 400))
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		i := strings.Index(line, "pts_time:")
		if i < 0 || !strings.Contains(line, "Parsed_showinfo") {
			continue
		}
		f := strings.Fields(line[i+len("pts_time:"):])
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			pts = append(pts, v)
		}
	}
	for i := 0; i+64 <= len(out); i += 64 {
		sum := 0
		for _, b := range out[i : i+64] {
			sum += int(b)
		}
		luma = append(luma, float64(sum)/64)
	}
	if len(pts) != len(luma) {
		return nil, nil, fmt.Errorf("marks: decode video of %s: %d timestamps for %d frames", path, len(pts), len(luma))
	}
	return pts, luma, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Flashes returns the times (seconds) of the frames that start a white
// flash: mean luma above 200 after a frame that was not.
func Flashes(pts, luma []float64) []float64 {
	var out []float64
	for i := range luma {
		if luma[i] > 200 && (i == 0 || luma[i-1] <= 200) {
			out = append(out, pts[i])
		}
	}
	return out
}

// Tones returns the onset times (seconds) of tone bursts in 48 kHz samples:
// where the signal's 1 ms envelope first reaches half of the burst's peak,
// after at least minGap seconds of quiet.
func Tones(s []float64, minGap float64) []float64 {
	const win = 48 // 1 ms
	env := make([]float64, len(s)/win)
	for i := range env {
		m := 0.0
		for _, v := range s[i*win : (i+1)*win] {
			m = math.Max(m, math.Abs(v))
		}
		env[i] = m
	}
	var out []float64
	quiet := int(minGap * 1000)
	last := -quiet
	for i := 0; i < len(env); i++ {
		if env[i] < 0.05 || i-last < quiet {
			continue
		}
		// The burst's peak over the next 20 ms.
		peak := 0.0
		for j := i; j < min(i+20, len(env)); j++ {
			peak = math.Max(peak, env[j])
		}
		// The first sample at half the peak.
		at := i * win
		for k := i * win; k < min((i+20)*win, len(s)); k++ {
			if math.Abs(s[k]) >= peak/2 {
				at = k
				break
			}
		}
		out = append(out, float64(at)/48000)
		last = i
		i += 20
	}
	return out
}

// Pair matches each time in a to the nearest time in b within maxDist and
// returns the differences a−b, in the order of a.
func Pair(a, b []float64, maxDist float64) []float64 {
	var d []float64
	for _, x := range a {
		best, bestD := 0.0, math.Inf(1)
		for _, y := range b {
			if dd := math.Abs(x - y); dd < bestD {
				best, bestD = y, dd
			}
		}
		if bestD <= maxDist {
			d = append(d, x-best)
		}
	}
	return d
}

// Stats are the p50, p95 and max of absolute values, in the input's unit.
type Stats struct {
	N             int
	P50, P95, Max float64
}

// Summarize returns the stats of the absolute values of d.
func Summarize(d []float64) Stats {
	if len(d) == 0 {
		return Stats{}
	}
	a := make([]float64, len(d))
	for i, v := range d {
		a[i] = math.Abs(v)
	}
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
	q := func(p float64) float64 { return a[min(len(a)-1, int(math.Ceil(p*float64(len(a))))-1)] }
	return Stats{N: len(a), P50: q(0.5), P95: q(0.95), Max: a[len(a)-1]}
}

func (s Stats) String() string {
	return fmt.Sprintf("n=%d p50=%.1f p95=%.1f max=%.1f", s.N, s.P50, s.P95, s.Max)
}

// Match pairs times of a with times of b one to one, nearest first: no two
// pairs share an element, and each pair is at most maxDist apart. It returns
// the pairs as indices [i of a, j of b], in the order of a. Unlike Pair, a
// time of b is never used twice, so a window under half the marks' period
// cannot pair a mark with its neighbour's partner.
func Match(a, b []float64, maxDist float64) [][2]int {
	type cand struct {
		i, j int
		d    float64
	}
	var cs []cand
	for i, x := range a {
		for j, y := range b {
			if d := math.Abs(x - y); d <= maxDist {
				cs = append(cs, cand{i, j, d})
			}
		}
	}
	slices.SortStableFunc(cs, func(p, q cand) int { return cmp.Compare(p.d, q.d) })
	usedA, usedB := make([]bool, len(a)), make([]bool, len(b))
	var out [][2]int
	for _, c := range cs {
		if usedA[c.i] || usedB[c.j] {
			continue
		}
		usedA[c.i], usedB[c.j] = true, true
		out = append(out, [2]int{c.i, c.j})
	}
	slices.SortFunc(out, func(p, q [2]int) int { return cmp.Compare(p[0], q[0]) })
	return out
}

// Signed are statistics of signed values (offsets that keep their
// direction), in the input's unit.
type Signed struct {
	N                      int
	Median, Mean, Min, Max float64
}

// SummarizeSigned returns the statistics of d (all zero when d is empty:
// check N).
func SummarizeSigned(d []float64) Signed {
	if len(d) == 0 {
		return Signed{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	sum := 0.0
	for _, v := range s {
		sum += v
	}
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Signed{N: len(s), Median: med, Mean: sum / float64(len(s)), Min: s[0], Max: s[len(s)-1]}
}

// Spread is Max − Min.
func (s Signed) Spread() float64 { return s.Max - s.Min }

func (s Signed) String() string {
	return fmt.Sprintf("n=%d median=%+.1f mean=%+.1f min=%+.1f max=%+.1f spread=%.1f", s.N, s.Median, s.Mean, s.Min, s.Max, s.Spread())
}

// Slope is the Theil–Sen slope of y over x: the median of the slopes
// between every two points (0 with fewer than two distinct x). Unlike a
// least-squares fit, one odd point (a late frame) barely moves it.
func Slope(x, y []float64) float64 {
	var s []float64
	for i := range min(len(x), len(y)) {
		for j := range i {
			if dx := x[i] - x[j]; dx != 0 {
				s = append(s, (y[i]-y[j])/dx)
			}
		}
	}
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// Lag is how many samples later b holds what a holds around sample at: the
// shift l in [-maxLag, maxLag] that best correlates a[at-before:at+after]
// with b[at-before+l:at+after+l] (normalized), and that correlation. It is
// how two renders of the same tone burst are compared: an onset found at
// half the burst's peak moves by whole periods of the tone when two
// participants' bursts overlap and the renders differ in amplitude by a
// few percent (a kept AAC window's, say), while the correlation of the
// stretch does not. The stretch should hold the burst's edges, which tell
// the lag apart from the tone's period; it is cut to a's samples. The
// correlation is NaN where a or b is silent throughout.
func Lag(a, b []float64, at, before, after, maxLag int) (lag int, corr float64) {
	lo, hi := max(0, at-before), min(len(a), at+after)
	var ea float64
	for _, v := range a[lo:hi] {
		ea += v * v
	}
	if ea == 0 {
		return 0, math.NaN()
	}
	corr = math.Inf(-1)
	for l := -maxLag; l <= maxLag; l++ {
		if lo+l < 0 || hi+l > len(b) {
			continue
		}
		var c, eb float64
		for i := lo; i < hi; i++ {
			c += a[i] * b[i+l]
			eb += b[i+l] * b[i+l]
		}
		if eb == 0 {
			continue
		}
		if c /= math.Sqrt(ea * eb); c > corr {
			lag, corr = l, c
		}
	}
	if math.IsInf(corr, -1) {
		return 0, math.NaN()
	}
	return lag, corr
}

// Alone reports whether the tone burst of n samples with its onset at
// sample at is heard alone in s: below quiet for guard samples before it
// and after it (each beyond a margin of 5 ms). Where two participants'
// bursts overlap, a placement that moves one by a fraction of the tone's
// period turns their sum from constructive to destructive: such a stretch
// is compared by neither its onset nor its correlation (Lag).
func Alone(s []float64, at, n, guard int, quiet float64) bool {
	const margin = 240 // 5 ms
	loud := func(from, to int) bool {
		for i := max(0, from); i < min(len(s), to); i++ {
			if math.Abs(s[i]) >= quiet {
				return true
			}
		}
		return false
	}
	return !loud(at-margin-guard, at-margin) && !loud(at+n+margin, at+n+margin+guard)
}

// The stretch the tone helpers look at around a burst's onset: the burst
// (40 ms), 20 ms before it, 20 ms after it, and shifts of up to 10 ms.
const (
	toneBurst  = 1920
	toneBefore = 960
	toneAfter  = 2880
	toneGuard  = 2880
	toneMaxLag = 480
)

// ToneLag is how much later (seconds) b holds the tone burst whose onset
// is at onset seconds in a, 48 kHz samples both, and the correlation of
// the two stretches (Lag).
func ToneLag(a, b []float64, onset float64) (lag, corr float64) {
	l, c := Lag(a, b, int(onset*48000), toneBefore, toneAfter, toneMaxLag)
	return float64(l) / 48000, c
}

// ToneAlone reports whether the tone burst with its onset at onset seconds
// in s (48 kHz) is heard alone: quiet for 60 ms before and after it
// (Alone).
func ToneAlone(s []float64, onset float64) bool {
	return Alone(s, int(onset*48000), toneBurst, toneGuard, 0.02)
}
