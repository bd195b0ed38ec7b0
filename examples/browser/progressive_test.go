package browser_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/capture/capturetest"
	"github.com/tapedeck/tapedeck/examples/browser"
	"github.com/tapedeck/tapedeck/internal/marks"
	"github.com/tapedeck/tapedeck/prerender"
	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

// TestBrowserProgressive has a headless Chromium publish sync marks for
// 14 s while the call is rendered in windows of 2 s (video, audio mix and
// AAC), as serve does: Chromium's own RTP timestamps, sender reports and
// pacing, not our publisher's. The render after the call takes those
// windows, and its composite has the frame count, the flash frames and the
// beep instants of a render of the same session that reused nothing.
func TestBrowserProgressive(t *testing.T) {
	bin := chromiumPath(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir := t.TempDir()
	opts := render.Options{Profiles: []string{render.ProfileMP4_360}, Layout: timeline.LayoutGrid, Reuse: filepath.Join(dir, "windows"),
		Nice: 10, Log: log, MaxJobDuration: 2 * time.Second}
	pr, err := prerender.New(prerender.Config{
		Window: 2 * time.Second, Every: 500 * time.Millisecond, Margin: 500 * time.Millisecond,
		Manifests: func(dir string) func() (*timeline.Manifest, error) { return capture.NewCompactor(dir).Manifest },
		Options: func(room, session string) (render.Options, bool) {
			o := opts
			o.OutDir = filepath.Join(dir, "prerender")
			return o, true
		},
		Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	ended := make(chan capture.SessionEnded, 1)
	srv := capturetest.Start(t, capture.Config{
		Grace:          2 * time.Second,
		OnSessionStart: func(s capture.SessionStarted) { pr.Start(s.Room, s.Session, s.Dir) },
		OnSessionEnd: func(_ context.Context, s capture.SessionEnded) {
			pr.Stop(s.Room, s.Session)
			ended <- s
		},
	}, log, func(mux *http.ServeMux) { mux.Handle("/publish/", browser.Handler()) })
	const d = 14 * time.Second
	url := fmt.Sprintf("%s/publish/?room=progressive&participant=anna&mode=sync&period=%d&autostart=1&duration=%d",
		srv.Base, int(markPeriod*1000), int(d.Seconds()))
	if err := runBrowser(t.Context(), t, bin, url, d); err != nil {
		t.Fatal(err)
	}
	var e capture.SessionEnded
	select {
	case e = <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the session did not end")
	}
	st := pr.Stats()
	t.Logf("during the call: %d windows rendered (%d again), %d of the audio encoded, %d deferred, %d failed",
		st.Windows, st.Again, st.AudioEncoded, st.Deferred, st.Failed)
	if st.Windows == 0 || st.AudioEncoded == 0 || st.Failed > 0 {
		t.Fatalf("want windows of video and of audio rendered during the call, none failed: %+v", st)
	}
	post := opts
	post.OutDir, post.Parallel = filepath.Join(dir, "post"), 2
	got, err := render.Session(t.Context(), e.Dir, post)
	if err != nil {
		t.Fatal(err)
	}
	plain := opts
	plain.OutDir, plain.Reuse, plain.Parallel = filepath.Join(dir, "plain"), "", 2
	want, err := render.Session(t.Context(), e.Dir, plain)
	if err != nil {
		t.Fatal(err)
	}
	gp, _, err := marks.Packets(got[0].Path, "v")
	if err != nil {
		t.Fatal(err)
	}
	wp, _, err := marks.Packets(want[0].Path, "v")
	if err != nil {
		t.Fatal(err)
	}
	if len(gp) != len(wp) {
		t.Fatalf("the composite from the call's windows has %d frames, the plain render %d", len(gp), len(wp))
	}
	flashes := func(path string) []float64 {
		t.Helper()
		pts, luma, err := marks.Luma(path)
		if err != nil {
			t.Fatal(err)
		}
		return marks.Flashes(pts, luma)
	}
	fa, fb := flashes(got[0].Path), flashes(want[0].Path)
	if len(fa) != len(fb) || len(fa) < 8 {
		t.Fatalf("%d flashes from the call's windows, %d in the plain render (want the same, at least 8)", len(fa), len(fb))
	}
	// A window drawn during the call is taken only when it is the very job
	// the final sync model makes (its sources on the same cells of the
	// placement grid): every flash on the same frame.
	for i := range fa {
		if math.Abs(fa[i]-fb[i]) > 0.001 {
			t.Errorf("flash %d at %.3f s from the call's windows, at %.3f s in the plain render", i, fa[i], fb[i])
		}
	}
	pcm := func(path string) []float64 {
		t.Helper()
		s, err := marks.PCM(path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	pa, pb := pcm(got[0].Path), pcm(want[0].Path)
	ba, bb := marks.Tones(pa, 0.2), marks.Tones(pb, 0.2)
	if len(ba) != len(bb) || len(ba) < 8 {
		t.Fatalf("%d beeps from the call's windows, %d in the plain render (want the same, at least 8)", len(ba), len(bb))
	}
	// A kept audio window may hold its source up to 0.5 ms from the final
	// placement at its start and 1 ms at its end (the reuse keys' cells).
	// Each beep of the plain render is looked for in the other by
	// correlation, to the sample (marks.Lag): its onset, found at half its
	// peak, moves with the AAC's few percent of difference.
	var worst float64
	for i, at := range bb {
		lag, corr := marks.ToneLag(pb, pa, at)
		worst = max(worst, math.Abs(lag))
		if !(corr > 0.9) {
			t.Errorf("beep %d at %.3f s in the plain render: correlation %.4f with the call's windows' render", i, at, corr)
		}
	}
	t.Logf("%d frames; %d flashes; %d beeps within %.2f ms of the plain render's", len(gp), len(fa), len(ba), worst*1000)
	if worst > 0.0015 {
		t.Errorf("a beep %.2f ms from the plain render's", worst*1000)
	}
}
