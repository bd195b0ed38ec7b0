package render_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/internal/marks"
	"github.com/tapedeck/tapedeck/render"
)

// TestReuseWindows renders a session in 2 s windows three times: once
// without reuse, once keeping its windows, and once after one kept window
// was lost (as a render killed before that window finished would leave
// them). The third runs FFmpeg for that window only and its output decodes
// to exactly the frames of the first. A render stopped midway goes on from
// its finished windows; a copy of the session elsewhere reuses them all; a
// header patched in place reuses them all; changed media (every segment
// re-encoded) makes every window run again.
func TestReuseWindows(t *testing.T) {
	t.Parallel()
	ffmpeg, _ := requireFFmpeg(t)
	dir := t.TempDir()
	ss := makeSession(t, filepath.Join(dir, "session"), threeParts(6*time.Second))
	wrapper, counted := countingFFmpeg(t, ffmpeg, dir)
	// Windows run since the last call: the video's, the audio's and the
	// encoded audio's.
	var audioRan, aacRan, jointRan int
	videoRuns := func() int {
		n := counted()
		audioRan, aacRan, jointRan = n.audio, n.aac, n.joint
		return n.video
	}
	reuse := filepath.Join(dir, "reuse")
	session := ss.Dir
	renderCtx := func(ctx context.Context, name, reuseDir string) (string, error) {
		opts := render.Options{Profiles: []string{render.ProfileMP4_360}, OutDir: filepath.Join(dir, name), Log: testLogger(t),
			MaxJobDuration: 2 * time.Second, FFmpeg: wrapper, Reuse: reuseDir}
		outs, err := render.Session(ctx, session, opts)
		if err != nil {
			return "", err
		}
		return outs[0].Path, nil
	}
	render1 := func(name, reuseDir string) string {
		t.Helper()
		path, err := renderCtx(context.Background(), name, reuseDir)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return path
	}
	kept := func() []string {
		entries, _ := os.ReadDir(reuse)
		var names []string
		for _, e := range entries {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				names = append(names, e.Name())
			}
		}
		slices.Sort(names)
		return names
	}

	plain := render1("plain", "")
	windows := videoRuns()
	audioWindows, aacWindows := audioRan, aacRan
	if windows < 3 || audioWindows != windows || aacWindows != windows {
		t.Fatalf("%d video jobs, %d audio windows and %d encoded audio windows, want at least 3 windows of 2 s of each",
			windows, audioWindows, aacWindows)
	}
	// Each window's video and mix are drawn by one process (joint.go).
	if jointRan != windows {
		t.Errorf("%d of %d video windows drawn with their mixes in one process, want all", jointRan, windows)
	}
	// Counted from here on: every window, video, audio and encoded audio.
	runs := func() int { return videoRuns() + audioRan + aacRan }
	windows += audioWindows + aacWindows
	want := frameHashes(t, plain, "", 0)

	render1("keeping", reuse)
	if got := runs(); got != windows {
		t.Errorf("first render with reuse ran %d windows, want %d", got, windows)
	}
	k := kept()
	if len(k) != windows {
		t.Fatalf("%d windows kept, want %d", len(k), windows)
	}
	// One window lost.
	if err := os.RemoveAll(filepath.Join(reuse, k[1])); err != nil {
		t.Fatal(err)
	}
	again := render1("again", reuse)
	if got := runs(); got != 1 {
		t.Errorf("render after one window was lost ran %d video jobs, want 1", got)
	}
	if got := frameHashes(t, again, "", 0); !slices.Equal(got, want) {
		t.Errorf("render from reused windows: %d frames, differs from the plain render's %d frames", len(got), len(want))
	}
	// The audio, mixed window by window and joined, decodes to the same
	// samples whether its windows were kept or drawn.
	pa, err := marks.PCM(plain)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := marks.PCM(again)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pa, pb) {
		t.Errorf("render from reused windows: %d audio samples, differ from the plain render's %d", len(pb), len(pa))
	}
	if got := len(kept()); got != windows {
		t.Errorf("%d windows kept after the second render, want %d", got, windows)
	}

	// A render stopped once its first window is kept, then run again: it
	// renders only the windows the stopped one had not finished.
	if err := os.RemoveAll(reuse); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { _, err := renderCtx(ctx, "stopped", reuse); stopped <- err }()
	for waiting := true; waiting; {
		select {
		case err = <-stopped:
			waiting = false
		case <-time.After(20 * time.Millisecond):
			if len(kept()) > 0 {
				stop()
			}
		}
	}
	stop()
	if err == nil {
		t.Fatal("the stopped render did not stop")
	}
	runs()
	done := len(kept())
	resumed := render1("resumed", reuse)
	if got, want := runs(), windows-done; got != want {
		t.Errorf("render after a stop with %d windows kept ran %d video jobs, want %d", done, got, want)
	}
	if got := frameHashes(t, resumed, "", 0); !slices.Equal(got, want) {
		t.Errorf("resumed render: %d frames, differs from the plain render's %d frames", len(got), len(want))
	}

	// A copy of the session elsewhere (new paths, new modification times,
	// as the post-call render's fetched copy): every window is reused.
	session = filepath.Join(dir, "copy")
	if out, err := exec.Command("cp", "-r", ss.Dir, session).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	copied := render1("copied", reuse)
	if got := runs(); got != 0 {
		t.Errorf("render of a copy of the session ran %d video jobs, want 0", got)
	}
	if got := frameHashes(t, copied, "", 0); !slices.Equal(got, want) {
		t.Errorf("render of the copy: %d frames, differs from the plain render's %d frames", len(got), len(want))
	}

	segments := func() []string {
		var segs []string
		err := filepath.WalkDir(session, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".webm") || strings.HasSuffix(p, ".mkv")) {
				segs = append(segs, p)
			}
			return err
		})
		if err != nil || len(segs) == 0 {
			t.Fatalf("segments of the copy: %v %v", segs, err)
		}
		return segs
	}
	// Every segment's header changes (its title patched in place, as
	// closing a recorded segment patches its size and duration): the media
	// is the same, every window is reused.
	for _, p := range segments() {
		patchTitle(t, p)
	}
	render1("retitled", reuse)
	if got := runs(); got != 0 {
		t.Errorf("render after the segments' headers changed ran %d video jobs, want 0", got)
	}
	// Every segment's media changes (re-encoded): nothing is reused.
	for _, p := range segments() {
		tmp := p + ".tmp" + filepath.Ext(p)
		codec := "libvpx"
		if strings.HasSuffix(p, ".mkv") {
			codec = "libx264"
		}
		ffrun(t, "-i", p, "-map", "0", "-c:v", codec, "-b:v", "300k", "-c:a", "copy", tmp)
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}
	render1("changed", reuse)
	// Only the video was re-encoded: the audio windows, and the encoded
	// ones, are taken.
	if got, want := runs(), windows-audioWindows-aacWindows; got != want {
		t.Errorf("render after the video segments changed ran %d windows, want %d", got, want)
	}
	t.Logf("%d windows of 2 s (video, audio and encoded audio): %d kept, 1 rendered again after one was lost, %d after a stop with %d kept, 0 for a copy of the session, %d after its segments changed; frames identical to a plain render",
		windows, windows, windows-done, done, windows-audioWindows-aacWindows)
}

// ranWindows counts the windows an FFmpeg ran: the video's, the audio
// mixes and the encoded audio's, and the processes that drew a video window
// and its mix together (joint, counted in video and audio too).
type ranWindows struct{ video, audio, aac, joint int }

// countingFFmpeg is an FFmpeg (a wrapper in dir) that notes every command
// it runs, and what counts, since its last call, the windows it ran.
func countingFFmpeg(t *testing.T, ffmpeg, dir string) (string, func() ranWindows) {
	t.Helper()
	calls := filepath.Join(dir, "calls.txt")
	wrapper := filepath.Join(dir, "ffmpeg")
	script := "#!/bin/sh\necho \"$*\" >> " + calls + "\nexec " + ffmpeg + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return wrapper, func() ranWindows {
		b, _ := os.ReadFile(calls)
		_ = os.Remove(calls)
		var n ranWindows
		for _, l := range strings.Split(string(b), "\n") {
			v, a := strings.Contains(l, " video-"), strings.Contains(l, " mix-")
			switch {
			case v && a:
				n.video, n.audio, n.joint = n.video+1, n.audio+1, n.joint+1
			case v:
				n.video++
			case a:
				n.audio++
			case strings.Contains(l, " -f adts "):
				n.aac++
			}
		}
		return n
	}
}

// patchTitle changes a Matroska file's header in place (the muxing
// application's name, in the Info before the first cluster), as closing a
// recorded segment patches its header.
func patchTitle(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cluster := bytes.Index(b, []byte{0x1F, 0x43, 0xB6, 0x75})
	at := bytes.Index(b, []byte("Lavf"))
	if at < 0 || cluster < 0 || at > cluster {
		t.Fatalf("%s: no muxing application before the first cluster (at %d, cluster at %d)", path, at, cluster)
	}
	b[at+3] = 'g'
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReuseWithoutMixes: the windows of a call rendered on another node
// travel without their audio mixes (float WAVs), only with the mixes'
// loudness summaries. A render that finds every encoded audio window kept
// runs no FFmpeg for the audio, not even to take the mixes; one that lacks
// one encoded audio window draws only the mixes that window reads, then
// encodes it. Both decode to the samples and frames of a plain render.
func TestReuseWithoutMixes(t *testing.T) {
	t.Parallel()
	ffmpeg, _ := requireFFmpeg(t)
	dir := t.TempDir()
	ss := makeSession(t, filepath.Join(dir, "session"), threeParts(6*time.Second))
	wrapper, counted := countingFFmpeg(t, ffmpeg, dir)
	reuse := filepath.Join(dir, "reuse")
	render1 := func(name, reuseDir string) string {
		t.Helper()
		opts := render.Options{Profiles: []string{render.ProfileMP4_360}, OutDir: filepath.Join(dir, name), Log: testLogger(t),
			MaxJobDuration: 2 * time.Second, FFmpeg: wrapper, Reuse: reuseDir}
		outs, err := render.Session(context.Background(), ss.Dir, opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return outs[0].Path
	}
	same := func(name, path string, frames []string, pcm []float64) {
		t.Helper()
		if got := frameHashes(t, path, "", 0); !slices.Equal(got, frames) {
			t.Errorf("%s: %d frames, differ from the plain render's %d", name, len(got), len(frames))
		}
		got, err := marks.PCM(path)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, pcm) {
			t.Errorf("%s: %d audio samples, differ from the plain render's %d", name, len(got), len(pcm))
		}
	}
	plain := render1("plain", "")
	counted()
	frames := frameHashes(t, plain, "", 0)
	pcm, err := marks.PCM(plain)
	if err != nil {
		t.Fatal(err)
	}
	render1("keeping", reuse)
	n := counted()
	video, audio, aac := n.video, n.audio, n.aac
	if video < 3 || audio != video || aac != video {
		t.Fatalf("keeping render: %d video, %d audio and %d encoded audio windows, want at least 3 of each", video, audio, aac)
	}

	// The mixes go, their summaries stay.
	mixes, err := filepath.Glob(filepath.Join(reuse, "*", "mix-*.wav"))
	if err != nil || len(mixes) != audio {
		t.Fatalf("kept mixes: %v (%v), want %d", mixes, err, audio)
	}
	for _, m := range mixes {
		if _, err := os.Stat(m + ".loudness.json"); err != nil {
			t.Fatalf("no loudness summary beside %s: %v", m, err)
		}
		if err := os.Remove(m); err != nil {
			t.Fatal(err)
		}
	}
	out := render1("without-mixes", reuse)
	if n := counted(); n.video+n.audio+n.aac != 0 {
		t.Errorf("render from windows without their mixes ran %d video, %d audio and %d encoded audio windows, want none", n.video, n.audio, n.aac)
	}
	same("render from windows without their mixes", out, frames, pcm)

	// One encoded audio window is lost: only the mixes it reads are drawn.
	lost, err := filepath.Glob(filepath.Join(reuse, "*", "aac-001.adts"))
	if err != nil || len(lost) != 1 {
		t.Fatalf("kept encoded audio window 1: %v (%v)", lost, err)
	}
	if err := os.RemoveAll(filepath.Dir(lost[0])); err != nil {
		t.Fatal(err)
	}
	out = render1("one-encoded-lost", reuse)
	n = counted()
	v, a, c := n.video, n.audio, n.aac
	if v != 0 || c != 1 || a < 1 || a > 2 {
		t.Errorf("render after encoded audio window 1 was lost ran %d video, %d audio and %d encoded audio windows, want 0, 1 or 2 (the mixes it reads), and 1", v, a, c)
	}
	same("render after an encoded audio window was lost", out, frames, pcm)
	t.Logf("%d windows of each kind; without their mixes: nothing run; one encoded audio window lost: %d mixes drawn and 1 encoded", video, a)
}
