package postcall_test

import (
	"context"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/storage"
)

// TestJobStateQueuedRunning follows a job's state as the console shows it:
// queued as soon as the session ends (no worker runs yet), running its
// render stage on this node while FFmpeg runs, and neither once done.
func TestJobStateQueuedRunning(t *testing.T) {
	ffmpeg := requireTool(t, "ffmpeg")
	requireTool(t, "nice")
	store, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, nc := startNATS(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	p, err := postcall.New(ctx, nc, store, &ffmpegRenderer{ffmpeg: ffmpeg, slow: true}, postcall.Config{
		Node: "rec1", WorkDir: t.TempDir(), RenderConcurrency: 1, AckWait: 5 * time.Second,
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan capture.SessionEnded, 1)
	rec := startRecorder(t, capture.Config{
		DataDir: t.TempDir(), Grace: 500 * time.Millisecond,
		OnSessionEnd: func(ctx context.Context, ev capture.SessionEnded) { p.SessionEnded(ctx, ev); ended <- ev },
	})
	publish(t, rec.base+"/whip/jobstate", "jo", 3*time.Second)
	s := waitSession(t, ended, 30*time.Second)

	// No worker runs yet: the job is queued.
	st, err := p.State(ctx, s.Room, s.Session)
	if err != nil {
		t.Fatal(err)
	}
	if st.Queued.IsZero() || !st.Running.IsZero() || st.Finished() {
		t.Fatalf("before any worker runs: %+v, want queued", st)
	}

	runCtx, stop := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(runCtx) }()
	defer func() { stop(); <-runDone }()

	// The render reads its 3 s of media at its native rate: it is seen running.
	var stages []string
	for st.Done.IsZero() && st.Failed.IsZero() {
		if !st.Running.IsZero() {
			if len(stages) == 0 || stages[len(stages)-1] != st.Stage {
				stages = append(stages, st.Stage)
			}
			if got, want := st.Worker, "rec1"; got != want {
				t.Errorf("running on %q, want %q", got, want)
			}
			// A stage queues the next one before it ends (both show for a
			// moment); the render is the last: nothing is queued behind it.
			if st.Stage == "render" && !st.Queued.IsZero() {
				t.Errorf("the render runs and something is queued: %+v", st)
			}
		}
		time.Sleep(50 * time.Millisecond)
		if st, err = p.State(ctx, s.Room, s.Session); err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatalf("the job did not finish: %+v", st)
		}
	}
	if !st.Failed.IsZero() {
		t.Fatalf("job failed: %s", st.Error)
	}
	if len(stages) == 0 || stages[len(stages)-1] != "render" {
		t.Errorf("stages seen running %v, want the render last", stages)
	}
	if !st.Running.IsZero() || !st.Queued.IsZero() || st.Stage != "" || st.Worker != "" {
		t.Errorf("done job still queued or running: %+v", st)
	}
	t.Logf("stages seen running: %v", stages)
}
