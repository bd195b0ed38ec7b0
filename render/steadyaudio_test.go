package render_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

// TestSteadyAudioSameSamples: a piece whose file is steady in its stretch
// is placed without aresample (and without aformat when its file decodes
// to stereo), and the mix is the same, byte for byte, as with aresample
// on every piece: files written as the recorder writes Opus (two channels,
// no pre-skip) and as FFmpeg does (one channel, a 312-sample pre-skip and
// its codec delay), a lead before a late joiner, 2-s windows whose pieces
// start after a seek, and a hole of 200 ms in a file, whose windows keep
// aresample. A steady piece whose file holds all its samples goes without
// apad, and without its loose cut in file time where it starts at its
// file's start; with a cut, two such pieces of one file are joined by a
// concat with their files' timestamps, the mix still the same.
func TestSteadyAudioSameSamples(t *testing.T) {
	requireFFmpeg(t)
	dir := t.TempDir()
	ss := makeSession(t, filepath.Join(dir, "session"), []synthPart{
		// alice's video makes the render's windows (the mix is drawn in
		// the video's).
		{ID: "alice", Video: "vp8", W: 320, H: 180, FPS: 15, Audio: true, RecorderOpus: true, Marks: true, Length: 6 * time.Second},
		// Packets 100 to 109 of bob's file (2 to 2.2 s into it) are lost.
		{ID: "bob", Audio: true, RecorderOpus: true, Marks: true, Join: 1300 * time.Millisecond, Length: 4500 * time.Millisecond,
			AudioGap: [2]int{100, 110}},
		{ID: "carol", Audio: true, Marks: true, Join: 700 * time.Millisecond, Length: 5 * time.Second},
	})
	plan, err := render.LoadPlan(ss.Dir, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		mixes    [][]byte
		commands string
	}
	run := func(name string, plan *timeline.Plan, opts render.Options) result {
		out := filepath.Join(dir, name)
		opts.OutDir, opts.MaxJobDuration, opts.FontFile, opts.LoudnessOff, opts.KeepWork, opts.Log =
			out, 2*time.Second, "none", true, true, testLogger(t)
		if _, err := render.Render(context.Background(), plan, ss.Dir, opts); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		work, err := filepath.Glob(filepath.Join(out, ".render-*"))
		if err != nil || len(work) != 1 {
			t.Fatalf("%s: work folders %v, %v", name, work, err)
		}
		wavs, err := filepath.Glob(filepath.Join(work[0], "mix-*.wav"))
		if err != nil || len(wavs) == 0 {
			t.Fatalf("%s: no mix windows (%v)", name, err)
		}
		var r result
		for _, w := range wavs {
			b, err := os.ReadFile(w)
			if err != nil {
				t.Fatal(err)
			}
			r.mixes = append(r.mixes, b)
		}
		cmds, err := os.ReadFile(filepath.Join(work[0], "commands.sh"))
		if err != nil {
			t.Fatal(err)
		}
		r.commands = string(cmds)
		return r
	}
	same := func(steady, resampled result) {
		t.Helper()
		if got, want := len(steady.mixes), len(resampled.mixes); got != want || got < 3 {
			t.Fatalf("%d mix windows, want %d (and 3 or more)", got, want)
		}
		for i := range steady.mixes {
			if !bytes.Equal(steady.mixes[i], resampled.mixes[i]) {
				t.Errorf("mix window %d differs from aresample's (%d and %d bytes)", i, len(steady.mixes[i]), len(resampled.mixes[i]))
			}
		}
	}
	steady := run("steady", plan, render.Options{})
	resampled := run("resampled", plan, render.WithAudioResampled(render.Options{}))
	same(steady, resampled)

	// What each render placed: a piece's chain starts at its input.
	pieces := regexp.MustCompile(`\[\d+:a\][^\[;]*`)
	count := func(cmds string) (all, resampled, converted, padded int) {
		for _, chain := range pieces.FindAllString(cmds, -1) {
			all++
			if strings.Contains(chain, "aresample=async") {
				resampled++
			}
			if strings.Contains(chain, "aformat=") {
				converted++
			}
			if strings.Contains(chain, "apad=") {
				padded++
			}
		}
		return
	}
	all, res, conv, pad := count(resampled.commands)
	if res != all || conv != all || pad != all || all < 6 {
		t.Fatalf("with aresample everywhere: %d pieces, %d with aresample, %d with aformat, %d with apad", all, res, conv, pad)
	}
	all, res, conv, pad = count(steady.commands)
	// Of the 9 pieces (three participants, three windows), the one of
	// bob's file that reaches over its hole (file times 2 to 2.2 s, in
	// the second window) keeps aresample and aformat; carol's file (one
	// channel) keeps aformat; the others go without both.
	if all != 9 || res != 1 || conv != 4 {
		t.Errorf("%d pieces, %d placed by aresample, %d converted by aformat; want 9, 1 (bob's over his hole), 4 (carol's and that one)", all, res, conv)
	}
	// bob's and carol's pieces of the last window reach past their files'
	// ends, and bob's over his hole is placed by aresample: those three
	// are padded to their length; the others' files hold all their
	// samples (alice's 6 s to the end of the last window).
	if pad != 3 {
		t.Errorf("%d pieces padded by apad, want 3 (bob's and carol's in the last window, bob's over his hole):\n%s",
			pad, strings.Join(pieces.FindAllString(steady.commands, -1), "\n"))
	}
	t.Logf("%d pieces: %d placed by aresample (bob's hole), %d converted to stereo (carol's file, and bob's over his hole)", all, res, conv)
	// In each window pieces end with the window in files that hold all
	// their samples (alice's 6 s, the others' in the first two windows):
	// they are not cut themselves, their window's mix is (the mixes the
	// same as aresample's, above).
	if got := regexp.MustCompile(`amix=[^\[;]*,atrim=end_sample=\d+`).FindAllString(steady.commands, -1); len(got) != 3 {
		t.Errorf("%d mixes cut after amix, want 3 (one a window):\n%s", len(got), strings.Join(got, "\n"))
	}

	// With 1 to 1.2 s of the recording cut, alice's and carol's lanes are
	// each two pieces of one file in the first window, joined by a concat
	// with their files' timestamps (neither padded nor retimed).
	edits := parseEdits(t, "cuts:\n  - {start: 1, end: 1.2}\n")
	cut, err := render.LoadPlan(ss.Dir, render.Options{Edits: edits})
	if err != nil {
		t.Fatal(err)
	}
	steady = run("cut-steady", cut, render.Options{Edits: edits})
	same(steady, run("cut-resampled", cut, render.WithAudioResampled(render.Options{Edits: edits})))
	n := 0
	for _, cmd := range strings.Split(steady.commands, "\n# ") { // commands.sh: a comment before each command
		whole := map[string]bool{} // a piece's pad: whether it is whole
		for _, m := range regexp.MustCompile(`\[\d+:a\]([^\[;]*)\[(a\d+)\]`).FindAllStringSubmatch(cmd, -1) {
			whole[m[2]] = !strings.Contains(m[1], "apad=") && !strings.Contains(m[1], "asetpts=") && !strings.Contains(m[1], "aresample=")
		}
		for _, m := range regexp.MustCompile(`((?:\[\w+\])+)concat=n=\d+:v=0:a=1`).FindAllStringSubmatch(cmd, -1) {
			pieces, all := 0, true
			for _, pad := range regexp.MustCompile(`a\d+`).FindAllString(m[1], -1) {
				pieces++
				all = all && whole[pad]
			}
			if pieces >= 2 && all {
				n++
			}
		}
	}
	if n != 2 {
		t.Errorf("%d concats of two whole pieces, want 2 (alice's and carol's across the cut)", n)
	}
}
