package render_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/storage"
)

// BenchmarkAvailability: how long after a call ends its composite is stored,
// with the render during the call (package prerender) and without, for calls
// of TAPEDECK_BENCH_CALLS (default 2m,10m,30m): four participants at 720p30
// (benchCall's, joining at 0, 5, 10 and 15 s), windows of 10 s (serve's
// --progressive-window), a local store.
//
// Off is the render of the whole session, then its upload. On is what the
// same render does when the windows the call could render are kept already:
// every window that ends 2.5 s before the call's end (the frontier a live
// call reaches: 1 s of margin behind the media on disk and 1.5 s of journal
// lag; serve's grace period, during which the rest becomes final, is not
// counted), rendered before the clock starts, one look a window as they
// would have been during the call (the audio encoded with the gain of the
// call up to each look); then the render after the call and the upload. A live call
// renders those windows from the recording as it goes; their output is the
// same (TestProgressiveRender), so what is left after the call is too. The
// goal printed is 10 s + 1 % of the call. It asserts nothing.
//
//	go test -run '^$' -bench Availability -benchtime 1x -timeout 90m ./render
func BenchmarkAvailability(b *testing.B) {
	requireFFmpeg(b)
	calls := "2m,10m,30m"
	if s := os.Getenv("TAPEDECK_BENCH_CALLS"); s != "" {
		calls = s
	}
	const window = 10 * time.Second
	const lag = 2500 * time.Millisecond
	for _, c := range strings.Split(calls, ",") {
		length, err := time.ParseDuration(c)
		if err != nil {
			b.Fatalf("TAPEDECK_BENCH_CALLS: %v", err)
		}
		b.Run(c, func(b *testing.B) {
			b.Setenv("TAPEDECK_BENCH_LENGTH", length.String())
			parts, _, _, _ := benchCall(b, length)
			dir := b.TempDir()
			ss := makeSession(b, filepath.Join(dir, "session"), parts)
			store, err := storage.OpenLocal(filepath.Join(dir, "store"))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			opts := render.Options{Profiles: []string{render.ProfileMP4_720}, MaxJobDuration: window, Nice: 10}
			stored := func(name string, o render.Options) time.Duration {
				b.Helper()
				began := time.Now()
				outs, err := render.Session(ctx, ss.Dir, o)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := storage.UploadFile(ctx, store, "bench/"+name+".mp4", outs[0].Path, false); err != nil {
					b.Fatal(err)
				}
				return time.Since(began)
			}
			for range b.N {
				// TAPEDECK_BENCH_OFF=no skips the render without the windows
				// of the call (its figure does not change with them).
				var tOff time.Duration
				if os.Getenv("TAPEDECK_BENCH_OFF") != "no" {
					off := opts
					off.OutDir, off.MaxJobDuration = filepath.Join(dir, "off"), 0 // serve --progressive=false
					tOff = stored("off", off)
				}

				on := opts
				on.OutDir, on.Reuse = filepath.Join(dir, "on"), filepath.Join(dir, "windows")
				plan, err := render.LoadPlan(ss.Dir, on)
				if err != nil {
					b.Fatal(err)
				}
				during := time.Now()
				pre := on
				pre.OutDir = filepath.Join(dir, "during")
				// One look a window, as serve's: each draws the windows that
				// became final and encodes their audio with the gain of the
				// call so far.
				var res render.Prerendered
				var rendered, encoded int
				for at := min(window, plan.Duration-lag); ; at = min(at+window, plan.Duration-lag) {
					res, err = render.Prerender(ctx, plan, ss.Dir, pre, max(0, res.Until-window), at)
					if err != nil {
						b.Fatal(err)
					}
					rendered, encoded = rendered+len(res.Rendered), encoded+len(res.Encoded)
					if at == plan.Duration-lag {
						break
					}
				}
				tDuring := time.Since(during)
				steps := &stepCPU{cpu: map[string]time.Duration{}}
				on.Log = slog.New(steps)
				tOn := stored("on", on)
				goal := 10*time.Second + length/100
				b.Logf("call %s: composite stored %.1f s after the call without the render during it, %.1f s with it (goal %.1f s); "+
					"%d of %d windows rendered during the call and %d of the audio encoded, in %.0f s (%.2f of the call's length)",
					length, tOff.Seconds(), tOn.Seconds(), goal.Seconds(), rendered, res.Windows, encoded, tDuring.Seconds(),
					tDuring.Seconds()/length.Seconds())
				b.Logf("call %s: after the call, CPU by step: %v", length, steps.cpu)
				b.ReportMetric(tOff.Seconds(), "s-off")
				b.ReportMetric(tOn.Seconds(), "s-on")
				b.ReportMetric(goal.Seconds(), "s-goal")
				if err := os.RemoveAll(on.Reuse); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
