package main

import (
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/postcall"
)

// TestPostCallRenderOptions: a post-call render keeps its finished windows in
// the job's folder beside its output (so a retry resumes), draws as many
// windows at once as --render-parallel says (0: render's default), and a
// negative --render-parallel is a usage error.
func TestPostCallRenderOptions(t *testing.T) {
	out := filepath.Join(t.TempDir(), "job", "out", "grid")
	spec := postcall.RenderSpec{Name: "grid", Profile: "mp4-360p,mp4-720p", Layout: "grid", Nice: 12}
	for _, parallel := range []int{0, 3} {
		r := sessionRenderer{parallel: parallel}
		opts, err := r.options(spec, out)
		if err != nil {
			t.Fatal(err)
		}
		if got := opts.Parallel; got != parallel {
			t.Errorf("--render-parallel %d: %d windows at once", parallel, got)
		}
		if got, want := opts.Reuse, filepath.Join(filepath.Dir(out), ".reuse-grid"); got != want {
			t.Errorf("windows kept in %s, want %s (beside the output, in the job's folder)", got, want)
		}
		if got, want := strings.Join(opts.Profiles, ","), spec.Profile; got != want || opts.Nice != 12 || opts.OutDir != out {
			t.Errorf("options %+v do not follow the spec", opts)
		}
	}
	// A re-render an operator asked for: half the CPUs unless
	// --rerender-parallel says; the render during the call's windows.
	for _, rp := range []int{0, 5} {
		r := sessionRenderer{parallel: 1, rerenderParallel: rp, window: 10 * time.Second}
		re := spec
		re.Rerender = true
		opts, err := r.options(re, out)
		if err != nil {
			t.Fatal(err)
		}
		want := rp
		if rp == 0 {
			want = max(1, runtime.NumCPU()/2)
		}
		if got := opts.Parallel; got != want {
			t.Errorf("--rerender-parallel %d: a re-render draws %d windows at once, want %d", rp, got, want)
		}
		if got := opts.MaxJobDuration; got != 10*time.Second {
			t.Errorf("windows of %v, want those of the render during the call (10s)", got)
		}
	}
	f := &pipelineFlags{renderConcurrency: 1, renderParallel: -1}
	_, err := startPipeline(t.Context(), f, roleWorker, "", nil)
	var ue *usageErr
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--render-parallel") {
		t.Errorf("--render-parallel -1: %v, want a usage error naming the flag", err)
	}
}
