package postcall_test

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/storage"
)

// The test binary doubles as a render worker process when POSTCALL_TEST_WORKER is set (to the NATS
// URL), so that a test can kill a worker with SIGKILL in the middle of a render.
func TestMain(m *testing.M) {
	if url := os.Getenv("POSTCALL_TEST_WORKER"); url != "" {
		if err := runTestWorker(url); err != nil {
			fmt.Fprintln(os.Stderr, "test worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const workerAckWait = 2 * time.Second

// runTestWorker is a render worker with the slow FFmpeg renderer, until SIGTERM.
func runTestWorker(url string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("pid", os.Getpid())
	store, err := storage.Open(ctx, os.Getenv("POSTCALL_TEST_STORE"), storage.Options{})
	if err != nil {
		return err
	}
	nc, err := postcall.Connect(ctx, url, "test-worker", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return err
	}
	r := &ffmpegRenderer{ffmpeg: ffmpeg, slow: true, markers: os.Getenv("POSTCALL_TEST_MARKERS")}
	p, err := postcall.New(ctx, nc, store, r, postcall.Config{
		WorkDir: os.Getenv("POSTCALL_TEST_WORK"), RenderConcurrency: 1, AckWait: workerAckWait,
		WebhookSecret: os.Getenv("POSTCALL_TEST_SECRET"),
	}, log)
	if err != nil {
		return err
	}
	fmt.Println("worker ready")
	return p.Run(ctx)
}

// TestWorkerKilledMidRender runs the recording side in this process and two render workers as
// processes, all on one NATS server. The worker that takes the render is killed with SIGKILL while
// FFmpeg runs: the job must be redelivered to the other worker after AckWait and finish exactly once
// (one webhook delivery, two render starts in all: heartbeats keep a live render from being
// redelivered although it lasts longer than AckWait).
func TestWorkerKilledMidRender(t *testing.T) {
	t.Parallel()
	requireTool(t, "ffmpeg")
	requireTool(t, "nice")
	srv, nc := startNATS(t)
	storeDir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Second)
	defer cancel()
	store, err := storage.Open(ctx, storeDir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hook := startWebhook(t, "hush", 0)
	markers := t.TempDir()

	workers := map[int]*exec.Cmd{}
	for i := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "POSTCALL_TEST_WORKER="+srv.URL(), "POSTCALL_TEST_STORE="+storeDir,
			"POSTCALL_TEST_MARKERS="+markers, "POSTCALL_TEST_WORK="+t.TempDir(), "POSTCALL_TEST_SECRET=hush")
		cmd.Stdout, cmd.Stderr = testWriter{t}, testWriter{t}
		if err := cmd.Start(); err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
		workers[cmd.Process.Pid] = cmd
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}

	p, err := postcall.New(ctx, nc, store, nil, postcall.Config{
		Node: "rec1", WorkDir: t.TempDir(), AckWait: workerAckWait, Webhook: hook.URL,
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(runCtx) }()
	defer func() { stop(); <-runDone }()
	ended := make(chan capture.SessionEnded, 1)
	rec := startRecorder(t, capture.Config{
		DataDir: t.TempDir(), Grace: 500 * time.Millisecond, OnSegmentClosed: p.SegmentClosed,
		OnSessionEnd: func(ctx context.Context, ev capture.SessionEnded) { p.SessionEnded(ctx, ev); ended <- ev },
	})
	publish(t, rec.base+"/whip/review", "bob", 3*time.Second)
	s := waitSession(t, ended, 30*time.Second)

	// Kill the worker that starts the render first, while its FFmpeg runs.
	var victim int
	for victim == 0 {
		starts := renderStarts(t, markers)
		if len(starts) > 0 {
			victim = starts[0]
			break
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("no worker started the render")
		}
	}
	time.Sleep(500 * time.Millisecond)
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatalf("kill worker %d: %v", victim, err)
	}
	killed := time.Now()
	_ = workers[victim].Wait()

	st, err := p.Wait(ctx, s.Room, s.Session)
	if err != nil {
		t.Fatal(err)
	}
	if st.Done.IsZero() {
		t.Fatalf("job not done: %+v", st)
	}
	t.Logf("job done %v after the kill", time.Since(killed).Round(time.Millisecond))
	// Leave time for any wrong redelivery to show.
	time.Sleep(3 * workerAckWait)

	_, deliveries, bad := hook.snapshot()
	if len(bad) > 0 {
		t.Errorf("webhook receiver rejected deliveries: %v", bad)
	}
	if got, want := len(deliveries), 1; got != want {
		t.Errorf("webhook deliveries = %d, want %d", got, want)
	}
	starts := renderStarts(t, markers)
	if got, want := len(starts), 2; got != want {
		t.Errorf("render starts = %d (pids %v), want %d: the killed one and the redelivered one", got, starts, want)
	} else if starts[1] == victim {
		t.Errorf("the render was started again by the killed worker %d", victim)
	}
	res, ok := st.Renders["default"]
	if !ok || len(res.Files) != 1 {
		t.Fatalf("state renders = %+v, want one file of render default", st.Renders)
	}
	checkStored(t, store, res.Files[0].Key, res.Files[0].SHA256)
	if got, want := res.Files[0].Key, storage.RenderKey(s.Room, s.Session, "default", "composite.mp4"); got != want {
		t.Errorf("composite key = %s, want %s", got, want)
	}
}

// renderStarts returns the pids of the render starts in markers, oldest first.
func renderStarts(t *testing.T, markers string) []int {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(markers, "start-*"))
	if err != nil {
		t.Fatal(err)
	}
	type start struct{ pid, at int }
	var all []start
	for _, n := range names {
		f := strings.Split(filepath.Base(n), "-")
		pid, _ := strconv.Atoi(f[1])
		at, _ := strconv.Atoi(f[2])
		all = append(all, start{pid, at})
	}
	slices.SortFunc(all, func(a, b start) int { return cmp.Compare(a.at, b.at) })
	out := make([]int, len(all))
	for i, s := range all {
		out[i] = s.pid
	}
	return out
}
