package prerender_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/capture/capturetest"
	"github.com/tapedeck/tapedeck/examples/publisher"
	"github.com/tapedeck/tapedeck/internal/marks"
	"github.com/tapedeck/tapedeck/prerender"
	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

// Each participant in a fixed region of a 640×360 output, so that the
// flashes of each can be found in the composite; placeholders (with names)
// where one is away.
const regions = `
layouts:
  - type: custom
    regions:
      - {x: 0, y: 0, width: 320, height: 180, lanes: [alice]}
      - {x: 320, y: 0, width: 320, height: 180, lanes: [bob]}
      - {x: 0, y: 180, width: 320, height: 180, lanes: [carol]}
`

var rects = map[string][4]int{"alice": {0, 0, 320, 180}, "bob": {320, 0, 320, 180}, "carol": {0, 180, 320, 180}}

// TestProgressiveRender records a call while it is rendered in windows of
// 2 s: alice throughout, bob joining late with his clock 3 s off, carol
// leaving and coming back. After the call, the render of the session takes
// the windows rendered during the call and draws only the rest; its output
// equals, frame for frame in timing, a render of the same session that
// reused nothing: the same frame count, every participant's flashes on the
// same frames, the tones at the same instants.
//
// In the speaker layout (who is shown decided from the audio levels, looking
// 2 s ahead), the flashes cannot be told apart: there the composites must
// decode to the same pictures.
//
// TAPEDECK_TEST_KEEP=DIR keeps each call (its session, the windows and both
// composites) in a folder under DIR; TAPEDECK_TEST_DEBUG=1 logs the render.
func TestProgressiveRender(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	t.Run("regions", func(t *testing.T) { progressiveCall(t, "regions.yaml", regions, true) })
	t.Run("speaker", func(t *testing.T) { progressiveCall(t, "speaker.yaml", "layouts:\n  - type: speaker\n", false) })
}

func progressiveCall(t *testing.T, editsName, editsText string, regionsLayout bool) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal(err)
	}
	// What the windows did, told when the composites differ.
	windowsLog := &lineFilter{keep: []string{`msg="prerender:`, `msg="render: window`, `msg="render: started`}}
	log := testLogger(t)
	rlog := slog.New(slog.NewMultiHandler(log.Handler(), slog.NewTextHandler(windowsLog, &slog.HandlerOptions{Level: slog.LevelDebug})))
	dir, dataDir := t.TempDir(), ""
	if k := os.Getenv("TAPEDECK_TEST_KEEP"); k != "" {
		// Kept for inspection: the session, the windows, the composites.
		if dir, err = os.MkdirTemp(k, "call"); err != nil {
			t.Fatal(err)
		}
		dataDir = filepath.Join(dir, "data")
		t.Logf("keeping the call in %s", dir)
	}
	reuse := filepath.Join(dir, "windows")
	edits, err := timeline.ParseEdits(editsName, strings.NewReader(editsText))
	if err != nil {
		t.Fatal(err)
	}
	opts := render.Options{Profiles: []string{render.ProfileMP4_360}, Edits: edits, Reuse: reuse, Nice: 10, Log: rlog,
		MaxJobDuration: 2 * time.Second}
	pr, err := prerender.New(prerender.Config{
		Window: 2 * time.Second, Every: 500 * time.Millisecond, Margin: 500 * time.Millisecond,
		Manifests: func(dir string) func() (*timeline.Manifest, error) { return capture.NewCompactor(dir).Manifest },
		Options: func(room, session string) (render.Options, bool) {
			o := opts
			o.OutDir = filepath.Join(dir, "prerender")
			return o, true
		},
		Log: rlog,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	var midCall []int // windows kept during the call, looked at every 500 ms
	var mu sync.Mutex
	ended := make(chan capture.SessionEnded, 1)
	srv := capturetest.Start(t, capture.Config{
		DataDir:        dataDir,
		Grace:          1500 * time.Millisecond,
		OnSessionStart: func(s capture.SessionStarted) { pr.Start(s.Room, s.Session, s.Dir) },
		OnSessionEnd: func(_ context.Context, s capture.SessionEnded) {
			pr.Stop(s.Room, s.Session)
			ended <- s
		},
	}, log)

	// Mark periods that differ, so that participants' tones seldom overlap.
	periods := map[string]time.Duration{"alice": 1040 * time.Millisecond, "bob": 1320 * time.Millisecond, "carol": 1160 * time.Millisecond}
	cfg := func(name, video string, d, offset time.Duration) publisher.Config {
		return publisher.Config{Endpoint: srv.Base + "/whip/progressive", Participant: name, Video: video, Audio: true, Duration: d,
			Width: 320, Height: 240, FPS: 25, MarkPeriod: periods[name], Bitrate: 400_000, ClockOffset: offset,
			Seed: int64(len(name))}
	}
	type run struct {
		join time.Duration
		cfg  publisher.Config
	}
	runs := []run{
		{0, cfg("alice", publisher.VP8, 14*time.Second, 0)},
		{3 * time.Second, cfg("bob", publisher.H264, 10*time.Second, 3*time.Second)},
		{500 * time.Millisecond, cfg("carol", publisher.VP8, 4*time.Second, 0)},
		{8 * time.Second, cfg("carol", publisher.VP8, 5*time.Second, 0)}, // carol again
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, r := range runs {
		if _, err := publisher.PrepareMedia(ctx, r.cfg, log); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	errs := make([]error, len(runs))
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(r.join - time.Since(start))
			_, errs[i] = publisher.Run(ctx, r.cfg, log)
		}()
	}
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(500 * time.Millisecond):
			}
			mu.Lock()
			midCall = append(midCall, len(keptWindows(reuse)))
			mu.Unlock()
		}
	}()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("publisher %s: %v", runs[i].cfg.Participant, err)
		}
	}
	var sess capture.SessionEnded
	select {
	case sess = <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the session did not end")
	}
	close(stopWatch)
	<-watched
	st := pr.Stats()
	kept := len(keptWindows(reuse))
	t.Logf("during the call: windows kept over time %v; %d rendered (%d again after the sync model moved a source), %d of the audio encoded, %d deferred, %d failed",
		midCall, st.Windows, st.Again, st.AudioEncoded, st.Deferred, st.Failed)
	if st.Windows == 0 || kept == 0 {
		t.Fatalf("no window rendered during the call (stats %+v)", st)
	}
	if st.AudioEncoded == 0 {
		t.Errorf("no window of the audio encoded during the call (stats %+v)", st)
	}
	if st.Failed > 0 {
		t.Errorf("%d windows failed during the call", st.Failed)
	}

	// The render after the call, through an FFmpeg that notes its runs.
	calls := filepath.Join(dir, "calls.txt")
	wrapper := filepath.Join(dir, "ffmpeg")
	script := "#!/bin/sh\necho \"$*\" >> " + calls + "\nexec " + ffmpeg + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var aacRuns int
	videoRuns := func() int {
		b, _ := os.ReadFile(calls)
		_ = os.Remove(calls)
		aacRuns = strings.Count(string(b), " -f adts ")
		return strings.Count(string(b), " video-")
	}
	post := opts
	post.FFmpeg, post.OutDir, post.Parallel = wrapper, filepath.Join(dir, "post"), 2
	began := time.Now()
	outs, err := render.Session(ctx, sess.Dir, post)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	rendered := videoRuns()
	aacRendered := aacRuns
	plain := opts
	plain.FFmpeg, plain.OutDir, plain.Reuse, plain.Parallel = wrapper, filepath.Join(dir, "plain"), "", 2
	began = time.Now()
	ref, err := render.Session(ctx, sess.Dir, plain)
	if err != nil {
		t.Fatal(err)
	}
	tookPlain := time.Since(began)
	windows := videoRuns()
	t.Logf("after the call: %d of %d windows rendered, %d of %d of the audio encoded, %s (%s without the windows of the call) for %s of output",
		rendered, windows, aacRendered, aacRuns, took.Round(time.Millisecond), tookPlain.Round(time.Millisecond), ref[0].Duration.Round(time.Millisecond))
	// How many windows are left after the call is a figure, not a
	// property: 0–3 on a quiet machine (the call's last seconds), more
	// when the machine is short of CPU (the render during the call falls
	// behind by design) or the sync model moved sources past their steps
	// (drawn again). That kept windows are taken is asserted by
	// TestReuseWindows and TestProgressiveKill9; here, that whatever mix of
	// kept and new windows the render used, its output is the same.

	got, want := outs[0].Path, ref[0].Path
	gp, _, err := marks.Packets(got, "v")
	if err != nil {
		t.Fatal(err)
	}
	wp, _, err := marks.Packets(want, "v")
	if err != nil {
		t.Fatal(err)
	}
	if len(gp) != len(wp) {
		t.Fatalf("progressive composite has %d frames, the post-call one %d", len(gp), len(wp))
	}
	for who, r := range rects {
		if !regionsLayout {
			break
		}
		fa := flashes(t, got, r)
		fb := flashes(t, want, r)
		if len(fa) < 3 {
			t.Errorf("%s: %d flashes found in the composite, want at least 3", who, len(fa))
		}
		if fmt.Sprint(fa) != fmt.Sprint(fb) {
			t.Errorf("%s: flashes at %v in the progressive composite, at %v in the post-call one", who, fa, fb)
		}
	}
	pa, err := marks.PCM(got)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := marks.PCM(want)
	if err != nil {
		t.Fatal(err)
	}
	ta, tb := marks.Tones(pa, 0.15), marks.Tones(pb, 0.15)
	if len(ta) != len(tb) || len(ta) < 10 {
		t.Fatalf("%d tones in the progressive composite, %d in the post-call one (want the same, at least 10)", len(ta), len(tb))
	}
	// A kept audio window may hold its sources up to 0.5 ms from the final
	// placement at its start and 1 ms at its end (the reuse keys' cells of
	// placement and rate: snapPlacement). Each tone of the post-call
	// composite heard alone is looked for in the progressive one by
	// correlation (from 20 ms before its onset to 60 ms after), not by its
	// onset, which moves by whole periods of the tone with the AAC's few
	// percent of difference (marks.Lag). Where two participants' tones
	// overlap (their mark periods differ, so rarely), half a millisecond
	// of one against the other is half a period of the 1 kHz tone: the
	// sum, and any measure of it, changes (marks.Alone); those are counted.
	var maxD float64
	var alone int
	for i, at := range tb {
		if !marks.ToneAlone(pb, at) {
			continue
		}
		alone++
		lag, corr := marks.ToneLag(pb, pa, at)
		maxD = max(maxD, math.Abs(lag))
		if math.Abs(lag) > 0.0015 || !(corr > 0.9) {
			t.Errorf("tone %d at %.4f s in the post-call composite: %+.2f ms in the progressive one (correlation %.4f)", i, at, lag*1000, corr)
		}
	}
	if alone < 8 {
		t.Errorf("%d of the %d tones heard alone, want at least 8", alone, len(tb))
	}
	same, total, differ := sameFrames(t, got, want)
	t.Logf("%d frames, %d of them identical in both composites; flashes, and %d of %d tones (those heard alone) at the same instants (within %.2f ms)",
		total, same, alone, len(ta), maxD*1000)
	// A window drawn during the call is taken only when it is the very job
	// the final sync model makes: every frame the same.
	if !regionsLayout && same != total {
		t.Errorf("%d of %d frames identical in both composites, want all (frames %v differ); the windows:\n%s", same, total, differ, windowsLog)
	}
}

// lineFilter keeps the lines written to it that hold one of keep.
type lineFilter struct {
	keep []string
	mu   sync.Mutex
	b    strings.Builder
}

func (f *lineFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range f.keep {
		if bytes.Contains(p, []byte(k)) {
			f.b.Write(p)
			break
		}
	}
	return len(p), nil
}

func (f *lineFilter) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.b.String()
}

// keptWindows lists the windows kept in a reuse folder.
func keptWindows(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names
}

// flashes are the instants (frame times) at which region r turns white.
func flashes(t *testing.T, path string, r [4]int) []string {
	t.Helper()
	pts, luma, err := marks.LumaRegion(path, r[0]+r[2]*35/100, r[1]+r[3]/4, r[2]*30/100, r[3]/2)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range marks.Flashes(pts, luma) {
		out = append(out, fmt.Sprintf("%.3f", f))
	}
	return out
}

// sameFrames counts the frames that decode identically in a and b, and
// lists the runs of frames that do not ("120-179").
func sameFrames(t *testing.T, a, b string) (same, total int, differ []string) {
	t.Helper()
	ha, hb := frameMD5(t, a), frameMD5(t, b)
	total = max(len(ha), len(hb))
	from := -1 // the first frame of a run that differs
	for i := range total {
		if i < min(len(ha), len(hb)) && ha[i] == hb[i] {
			same++
			if from >= 0 {
				differ, from = append(differ, fmt.Sprintf("%d-%d", from, i-1)), -1
			}
		} else if from < 0 {
			from = i
		}
	}
	if from >= 0 {
		differ = append(differ, fmt.Sprintf("%d-%d", from, total-1))
	}
	return same, total, differ
}

func frameMD5(t *testing.T, path string) []string {
	t.Helper()
	hashes, err := marks.FrameMD5(path, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return hashes
}

func testLogger(t testing.TB) *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("TAPEDECK_TEST_DEBUG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: lvl}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
