package render_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/render"
)

// TestReuseWindows renders a session in 2 s windows three times: once
// without reuse, once keeping its windows, and once after one kept window
// was lost (as a render killed before that window finished would leave
// them). The third runs FFmpeg for that window only and its output decodes
// to exactly the frames of the first. Then a changed input (every segment
// touched) makes every window run again.
func TestReuseWindows(t *testing.T) {
	t.Parallel()
	ffmpeg, _ := requireFFmpeg(t)
	dir := t.TempDir()
	ss := makeSession(t, filepath.Join(dir, "session"), threeParts(6*time.Second))
	// FFmpeg through a wrapper that notes every command it runs.
	calls := filepath.Join(dir, "calls.txt")
	wrapper := filepath.Join(dir, "ffmpeg")
	script := "#!/bin/sh\necho \"$*\" >> " + calls + "\nexec " + ffmpeg + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	videoRuns := func() int {
		b, _ := os.ReadFile(calls)
		_ = os.Remove(calls)
		n := 0
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, " video-") {
				n++
			}
		}
		return n
	}
	reuse := filepath.Join(dir, "reuse")
	renderCtx := func(ctx context.Context, name, reuseDir string) (string, error) {
		opts := render.Options{Profiles: []string{render.ProfileMP4_360}, OutDir: filepath.Join(dir, name), Log: testLogger(t),
			MaxJobDuration: 2 * time.Second, FFmpeg: wrapper, Reuse: reuseDir}
		outs, err := render.Session(ctx, ss.Dir, opts)
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
	if windows < 3 {
		t.Fatalf("%d video jobs, want at least 3 windows of 2 s", windows)
	}
	want := frameHashes(t, plain, "", 0)

	render1("keeping", reuse)
	if got := videoRuns(); got != windows {
		t.Errorf("first render with reuse ran %d video jobs, want %d", got, windows)
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
	if got := videoRuns(); got != 1 {
		t.Errorf("render after one window was lost ran %d video jobs, want 1", got)
	}
	if got := frameHashes(t, again, "", 0); !slices.Equal(got, want) {
		t.Errorf("render from reused windows: %d frames, differs from the plain render's %d frames", len(got), len(want))
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
	var err error
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
	videoRuns()
	done := len(kept())
	resumed := render1("resumed", reuse)
	if got, want := videoRuns(), windows-done; got != want {
		t.Errorf("render after a stop with %d windows kept ran %d video jobs, want %d", done, got, want)
	}
	if got := frameHashes(t, resumed, "", 0); !slices.Equal(got, want) {
		t.Errorf("resumed render: %d frames, differs from the plain render's %d frames", len(got), len(want))
	}

	// Every segment changes (touched): nothing is reused.
	later := time.Now().Add(time.Minute)
	err = filepath.WalkDir(ss.Dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".webm") || strings.HasSuffix(p, ".mkv")) {
			return os.Chtimes(p, later, later)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	render1("changed", reuse)
	if got := videoRuns(); got != windows {
		t.Errorf("render after the segments changed ran %d video jobs, want %d", got, windows)
	}
	t.Logf("%d windows of 2 s: %d kept, 1 rendered again after one was lost, %d after a stop with %d kept, %d after the inputs changed; frames identical to a plain render",
		windows, windows, windows-done, done, windows)
}
