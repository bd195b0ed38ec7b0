package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/examples/publisher"
	"github.com/tapedeck/tapedeck/storage"
)

// demoPart is one participant of the demo call.
type demoPart struct {
	name     string
	video    string
	join     time.Duration
	duration time.Duration
	offset   time.Duration
	loss     float64
}

func newDemoCmd(g *globals) *cobra.Command {
	var data string
	var length time.Duration
	var post pipelineFlags
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Record a demo call: three synthetic participants (one drops and rejoins, one sends H.264 with a wrong clock)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return runDemo(cmd.Context(), data, length, &post, log, func(format string, a ...any) {
				fmt.Fprintf(cmd.OutOrStdout(), format, a...)
			})
		},
	}
	cmd.Flags().StringVar(&data, "data", "demo", "folder the recording is written to")
	cmd.Flags().DurationVar(&length, "length", 20*time.Second, "length of the call")
	post.register(cmd.Flags(), roleRecorder)
	return cmd
}

func runDemo(ctx context.Context, data string, length time.Duration, post *pipelineFlags, log *slog.Logger, say func(string, ...any)) error {
	if length < 10*time.Second {
		return usageError("--length %v: the demo needs at least 10s", length)
	}
	jobs, err := startPipeline(ctx, post, roleRecorder, data, log)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer jobs.stop()
	ended := make(chan capture.SessionEnded, 1)
	cfg := capture.Config{DataDir: data, Grace: 2 * time.Second, SegmentDuration: length / 2, ICE: capture.ICEConfig{LoopbackOnly: true}}
	jobs.wireCapture(&cfg, func(s capture.SessionEnded) { ended <- s })
	rec, err := capture.New(cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	srv := &http.Server{Handler: rec.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close(); <-served }()
	endpoint := "http://" + ln.Addr().String() + "/whip/demo"
	say("recording a %v demo call at %s into %s\n", length, endpoint, data)

	q := length / 4
	parts := []demoPart{
		{name: "alice", video: publisher.VP8, duration: length},
		{name: "bob", video: publisher.H264, join: q / 2, duration: length - q/2, offset: 2500 * time.Millisecond},
		{name: "carol", video: publisher.VP8, join: q, duration: q, loss: 0.02},
		{name: "carol", video: publisher.VP8, join: 2*q + q/2, duration: length - 2*q - q/2, loss: 0.02},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(p.join):
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			say("  %-6s joins (%s, %v)\n", p.name, p.video, p.duration)
			_, errs[i] = publisher.Run(ctx, publisher.Config{
				Endpoint: endpoint, Participant: p.name, Duration: p.duration, Video: p.video, Audio: true,
				ClockOffset: p.offset, Loss: p.loss, Seed: int64(i + 1),
			}, log)
			say("  %-6s leaves\n", p.name)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_ = rec.Close(context.Background())
		return fmt.Errorf("demo: publisher: %w", err)
	}
	var s capture.SessionEnded
	select {
	case s = <-ended:
	case <-time.After(30 * time.Second):
		return errors.New("demo: the session did not end")
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := rec.Close(ctx); err != nil {
		return err
	}
	say("\nsession %s recorded:\n", s.Session)
	for _, l := range s.Manifest.Lanes {
		segs := 0
		for _, t := range l.Tracks {
			segs += len(t.Segments)
		}
		say("  %-14s %d track(s), %d file(s)\n", l.ID, len(l.Tracks), segs)
	}
	say("manifest: %s\n", filepath.Join(s.Dir, capture.ManifestName))
	return demoStored(ctx, jobs, s, say)
}

// demoStored waits for the session's post-call job and says where its files went.
func demoStored(ctx context.Context, jobs *pipelineRun, s capture.SessionEnded, say func(string, ...any)) error {
	say("\nstoring the session (post-call job)...\n")
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	st, err := jobs.Wait(wctx, s.Room, s.Session)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if !st.Failed.IsZero() {
		return fmt.Errorf("demo: post-call job failed: %s", st.Error)
	}
	store := jobs.Store()
	objs, err := store.List(ctx, storage.SessionPrefix(s.Room, s.Session))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	say("stored in %s/%s:\n", store, strings.TrimSuffix(storage.SessionPrefix(s.Room, s.Session), "/"))
	for _, o := range objs {
		say("  %-50s %s\n", strings.TrimPrefix(o.Key, storage.SessionPrefix(s.Room, s.Session)), humanBytes(o.Size))
	}
	for name, r := range st.Renders {
		if r.Skipped != "" {
			say("render %s skipped: %s\n", name, r.Skipped)
			continue
		}
		for _, f := range r.Files {
			link, err := store.Link(ctx, f.Key, time.Hour)
			if err != nil {
				link = f.Key
			}
			say("\ncomposite (%s): %s\n", name, link)
		}
	}
	return nil
}
