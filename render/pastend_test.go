package render_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/internal/marks"
	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

// TestAudioPiecePastItsFile: the plan ends a segment at its last packet
// plus the mean interval between its frames, which is longer than the last
// frame when packets were lost (the demo found 0.65 ms past a 5.000-s
// file). A window that starts in such a sliver has the piece begin after the
// file's last sample: its chain gets no audio at all and must still give
// its length of silence, whether it goes to a concat (a lane heard in
// several pieces in the window), to the mix, or out alone. FFmpeg's concat
// refused the silence apad made from nothing (no timestamps), and the whole
// window failed.
func TestAudioPiecePastItsFile(t *testing.T) {
	requireFFmpeg(t)
	dir := t.TempDir()
	// 1-s and 2-s files with a 1 kHz burst at every whole second.
	opus := func(name string, d time.Duration) {
		if err := os.MkdirAll(filepath.Join(dir, "tracks"), 0o755); err != nil {
			t.Fatal(err)
		}
		ffrun(t, "-f", "lavfi", "-i", fmt.Sprintf("aevalsrc=if(lt(mod(t\\,1)\\,0.04)\\,0.45*sin(2*PI*1000*t)\\,0):s=48000:d=%s", sec(d)),
			"-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20", "-f", "webm", filepath.Join(dir, "tracks", name))
	}
	opus("x1.webm", time.Second)
	opus("x2.webm", 2*time.Second)
	opus("y.webm", time.Second)

	ms := time.Millisecond
	audio := func(who, path string, fs float64) timeline.AudioSource {
		return timeline.AudioSource{Participant: who, Lane: who + "/audio",
			Source: timeline.Source{Path: "tracks/" + path, FileStart: fs, FileEnd: fs + 3, Speed: 1}}
	}
	placeholder := func(who string, r timeline.Rect) timeline.Tile {
		return timeline.Tile{Participant: who, Lane: who + "/video", Rect: r, Fit: timeline.FitContain, Placeholder: timeline.PlaceholderAbsent}
	}
	left, right := timeline.Rect{W: 320, H: 360}, timeline.Rect{X: 320, W: 320, H: 360}
	// x: x1 from 10 ms into it, to 1.02 s (30 ms past its file's end),
	// nothing, x2 from 1.5 s; y: the same as x1, then nothing.
	plan := func(withY bool) *timeline.Plan {
		iv := func(a, e time.Duration, src ...timeline.AudioSource) timeline.Interval {
			tiles := []timeline.Tile{placeholder("x", left)}
			if withY {
				tiles = append(tiles, placeholder("y", right))
			}
			var kept []timeline.AudioSource
			for _, s := range src {
				if withY || s.Participant == "x" {
					kept = append(kept, s)
				}
			}
			return timeline.Interval{Start: a, End: e, RecStart: a, RecEnd: e, Layout: timeline.LayoutGrid, Tiles: tiles, Audio: kept}
		}
		return &timeline.Plan{Width: 640, Height: 360, FPS: timeline.Rational{Num: 30, Den: 1}, Duration: 3 * time.Second,
			RecordingDuration: 3 * time.Second, Intervals: []timeline.Interval{
				iv(0, 1020*ms, audio("x", "x1.webm", 0.01), audio("y", "y.webm", 0.01)),
				iv(1020*ms, 1500*ms),
				iv(1500*ms, 3*time.Second, audio("x", "x2.webm", 0)),
			}}
	}
	for _, c := range []struct {
		name  string
		withY bool
	}{{"concat alone", false}, {"concat and a single piece mixed", true}} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+fmt.Sprint(c.withY))
			// 1-s windows: the second starts 20 ms before the pieces end,
			// at file time 1.01 s, after the files' last sample.
			outs, err := render.Render(context.Background(), plan(c.withY), dir, render.Options{OutDir: out, MaxJobDuration: time.Second,
				FontFile: "none", LoudnessOff: true, Log: testLogger(t)})
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if first, end := audioSpan(t, outs[0].Path); first != -1024 || end != 3*48000 {
				t.Errorf("the audio's packets span [%d, %d) samples, want [-1024, %d)", first, end, 3*48000)
			}
			pcm, err := marks.PCM(outs[0].Path)
			if err != nil {
				t.Fatal(err)
			}
			// x's bursts: x1's at 0 (its first 10 ms cut), x2's at 1.5 s
			// and 2.5 s; nothing between 1 s and 1.5 s.
			tones := marks.Tones(pcm, 0.15)
			want := []float64{0, 1.5, 2.5}
			if len(tones) != len(want) {
				t.Fatalf("tones at %v s, want %v", tones, want)
			}
			for i, w := range want {
				if d := tones[i] - w; math.Abs(d) > 0.001 {
					t.Errorf("tone %d at %.4f s, want %.4f s", i, tones[i], w)
				}
			}
			peak := 0.0
			for _, v := range pcm[int(1.001*48000):int(1.499*48000)] {
				peak = math.Max(peak, math.Abs(v))
			}
			if peak > 0.01 {
				t.Errorf("peak %.3f between the pieces, want silence", peak)
			}
		})
	}
}
