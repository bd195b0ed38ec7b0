package render

import (
	"bytes"
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// TestEscapeValue runs FFmpeg with a drawtext whose font file name holds
// every character the filtergraph and option parsers treat specially.
func TestEscapeValue(t *testing.T) {
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatalf("this test runs the real FFmpeg: %v", err)
	}
	font := findFont(context.Background())
	if font == "" {
		t.Fatal("no font found: install fonts-dejavu-core")
	}
	body, err := os.ReadFile(font)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), `we:ird, [dir]; it's`)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	weird := filepath.Join(dir, `a\b:c,d'e.ttf`)
	if err := os.WriteFile(weird, body, 0o644); err != nil {
		t.Fatal(err)
	}
	text := filepath.Join(dir, "t.txt")
	if err := os.WriteFile(text, []byte("x: y, 'z' [w]; 100%"), 0o644); err != nil {
		t.Fatal(err)
	}
	graph := "color=c=black:s=64x64:d=0.1,drawtext=fontfile=" + escValue(weird) + ":textfile=" + escValue(text) + ":expansion=none:fontcolor=white"
	cmd := exec.Command(ff, "-v", "error", "-filter_complex", graph, "-f", "null", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg -filter_complex %q: %v\n%s", graph, err, stderr.String())
	}
}

func TestTextHelpers(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"#1e1f24", "0x1E1F24"}, {"#abc", "0xAABBCC"}, {"red", "0x000000"}, {"#12345g", "0x000000"},
	} {
		if got := ffColor(c.in); got != c.want {
			t.Errorf("ffColor(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got, want := cleanText(" Bob\n(guest)\x07 "), "Bob (guest)"; got != want {
		t.Errorf("cleanText = %q, want %q", got, want)
	}
	if got := cleanText(strings.Repeat("é", 80)); len([]rune(got)) != 60 {
		t.Errorf("cleanText keeps %d characters of 80, want 60", len([]rune(got)))
	}
	if got, want := assTime(3723*time.Second+456*time.Millisecond), "1:02:03.46"; got != want {
		t.Errorf("assTime = %q, want %q", got, want)
	}
	if got, want := srtTime(3723*time.Second+456*time.Millisecond), "01:02:03,456"; got != want {
		t.Errorf("srtTime = %q, want %q", got, want)
	}
	cues := []timeline.Cue{{Start: time.Second, End: 3 * time.Second, Text: "a {b}\nc"}, {Start: 5 * time.Second, End: 6 * time.Second, Text: "late"}}
	script, ok := captionsASS(cues, 2*time.Second, 4*time.Second, 640, 360)
	if !ok || !strings.Contains(script, "Dialogue: 0,0:00:00.00,0:00:01.00,Default,,0,0,0,,a (b)\\Nc\n") || strings.Contains(script, "late") {
		t.Errorf("captions for 2–4 s, shifted to 0:\n%s", script)
	}
	if _, ok := captionsASS(cues, 10*time.Second, 12*time.Second, 640, 360); ok {
		t.Error("captions for 10–12 s hold a cue")
	}
	if got, want := num(1.0/3), "0.333333"; got != want {
		t.Errorf("num(1/3) = %q, want %q", got, want)
	}
	if got, want := num(-0.0000001), "0"; got != want {
		t.Errorf("num(-1e-7) = %q, want %q", got, want)
	}
	if got, want := signed(0.25), "+0.25"; got != want {
		t.Errorf("signed(0.25) = %q, want %q", got, want)
	}
}

func TestParseLoudness(t *testing.T) {
	stderr := `[Parsed_ebur128_27 @ 0x55] Summary:

  Integrated loudness:
    I:         -27.6 LUFS
    Threshold: -37.7 LUFS

  Loudness range:
    LRA:        18.1 LU
    Threshold: -47.8 LUFS
    LRA low:   -38.0 LUFS
    LRA high:  -19.9 LUFS

  Sample peak:
    Peak:       -4.5 dBFS
`
	l, err := parseLoudness("size=N/A time=00:00:05.00\n" + stderr)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Measured || l.I != -27.6 || l.Peak != -4.5 || l.LRA != 18.1 {
		t.Errorf("parsed %+v", l)
	}
	s := &Settings{Loudness: -16}
	// 11.6 dB to the target, set in steps of half a decibel.
	if got := strings.Join(loudnessFilters(s, l), ","); got != "volume=11.5dB,alimiter=limit=0.841395:level=false:latency=true" {
		t.Errorf("filters for %+v: %s", l, got)
	}
	quiet := Loudness{I: -40, Peak: -30, Measured: true}
	if got := strings.Join(loudnessFilters(s, quiet), ","); got != "volume=24dB" {
		t.Errorf("filters for %+v: %s (the gain is capped, no limiter needed)", quiet, got)
	}
	silent, err := parseLoudness(strings.NewReplacer("-27.6 LUFS", "-70.0 LUFS", "-4.5 dBFS", "-inf dBFS").Replace(stderr))
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsInf(silent.Peak, -1) || loudnessFilters(s, silent) != nil {
		t.Errorf("silence: %+v, filters %v; want no normalization", silent, loudnessFilters(s, silent))
	}
	if _, err := parseLoudness("no summary here"); err == nil {
		t.Error("parsed a loudness from nothing")
	}
	if loudnessFilters(&Settings{Loudness: -16, LoudnessOff: true}, l) != nil {
		t.Error("normalization off still gives filters")
	}
}

func TestProgress(t *testing.T) {
	now := time.Unix(0, 0)
	clock := func() time.Time { return now }
	var buf bytes.Buffer
	p := newProgress(&buf, true, 100*time.Second, clock)
	p.add("video", 100*time.Second, weightVideo)
	p.add("audio", 100*time.Second, weightAudio)
	now = now.Add(10 * time.Second)
	p.update("video", 50*time.Second)
	p.update("audio", 100*time.Second)
	frac, speed, eta := p.state()
	if want := (50 + 10) / 110.0; math.Abs(frac-want) > 1e-9 {
		t.Errorf("fraction %.3f, want %.3f", frac, want)
	}
	if want := frac * 100 / 10; math.Abs(speed-want) > 1e-9 {
		t.Errorf("speed %.3f, want %.3f", speed, want)
	}
	if eta < 6*time.Second || eta > 9*time.Second {
		t.Errorf("ETA %v, want about 8.3 s", eta)
	}
	if out := buf.String(); !strings.HasPrefix(out, "\rrendering [") || !strings.Contains(out, " 54%") || !strings.Contains(out, "ETA 0:08") {
		t.Errorf("terminal progress: %q", out)
	}
	now = now.Add(10 * time.Second)
	p.finish()
	if out := buf.String(); !strings.HasSuffix(out, "\n") || !strings.Contains(out, "100%") {
		t.Errorf("final terminal progress: %q", out)
	}

	buf.Reset()
	now = time.Unix(0, 0)
	q := newProgress(&buf, false, 100*time.Second, clock)
	q.add("video", 100*time.Second, 1)
	for i := 1; i <= 10; i++ {
		now = now.Add(time.Second)
		q.update("video", time.Duration(i)*10*time.Second)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 2 || len(lines) > 4 {
		t.Errorf("plain progress over 10 s: %d lines, want one every 5 s:\n%s", len(lines), buf.String())
	}
	if strings.Contains(buf.String(), "\r") {
		t.Errorf("plain progress redraws in place: %q", buf.String())
	}
}

func TestReadProgress(t *testing.T) {
	in := "frame=10\nout_time_us=333333\nspeed=2.5x\nprogress=continue\nframe=30\nout_time_us=1000000\nprogress=end\n"
	var got []time.Duration
	readProgress(strings.NewReader(in), func(d time.Duration) { got = append(got, d) })
	if len(got) != 2 || got[0] != 333333*time.Microsecond || got[1] != time.Second {
		t.Errorf("progress reports %v, want [333.333ms 1s]", got)
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"ffmpeg", "-i", "a b.webm", "-vf", "x='y'", "-f", "null", "-"})
	if want := `ffmpeg -i 'a b.webm' -vf 'x='\''y'\''' -f null -`; got != want {
		t.Errorf("shellJoin = %s, want %s", got, want)
	}
}
