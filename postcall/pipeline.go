package postcall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/storage"
)

// Pipeline runs post-call jobs: it enqueues the sessions its node records and consumes the jobs
// that Config says this process runs. Create it with New and call Run.
type Pipeline struct {
	cfg      Config
	log      *slog.Logger
	js       jetstream.JetStream
	stream   jetstream.Stream
	states   states
	store    storage.Client
	renderer Renderer
	uploader *Uploader
	http     httpDoer
	stats    jobStats
	// mergeLocks serializes the merges of a session's parts (a cluster).
	mergeLocks jetstream.KeyValue
}

// New prepares a pipeline on the NATS connection nc: it creates (or updates) the stream, its
// consumers and the state bucket. store is where sessions go; renderer may be nil (renders are then
// skipped, with a logged reason).
func New(ctx context.Context, nc *nats.Conn, store storage.Client, renderer Renderer, cfg Config, log *slog.Logger) (*Pipeline, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if store == nil {
		return nil, errors.New("postcall: no storage")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("postcall: JetStream: %w", err)
	}
	st, kv, err := setupStream(ctx, js)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{
		cfg: cfg, log: log, js: js, stream: st, states: states{kv}, store: store, renderer: renderer,
		http: defaultHTTPClient(),
	}
	if cfg.Node != "" {
		p.uploader = NewUploader(store, cfg.Upload, log)
	}
	if cfg.Parts != nil {
		if p.mergeLocks, err = setupMergeLocks(ctx, js); err != nil {
			return nil, err
		}
	}
	if renderer == nil && cfg.RenderConcurrency > 0 {
		log.Info("no renderer in this build: post-call jobs store the tracks and skip the render step")
	}
	if cfg.Webhook != "" && cfg.WebhookSecret == "" {
		log.Warn("no webhook secret: the webhook's requests are not signed")
	}
	return p, nil
}

// Store returns the storage jobs write to.
func (p *Pipeline) Store() storage.Client { return p.store }

// Backlog returns the upload backlog of closed segments (zero on a process that records nothing).
func (p *Pipeline) Backlog() Backlog {
	if p.uploader == nil {
		return Backlog{}
	}
	return p.uploader.Backlog()
}

// SegmentClosed queues a closed segment for upload during the call; use it as
// capture.Config.OnSegmentClosed. Run must be running.
func (p *Pipeline) SegmentClosed(ev capture.SegmentClosed) {
	if p.uploader == nil {
		p.log.Error("segment closed on a pipeline that records nothing (no node name)", "path", ev.Path)
		return
	}
	p.uploader.SegmentClosed(ev)
}

// SessionEnded enqueues a finished session's job; use it as capture.Config.OnSessionEnd. It starts
// no goroutine and returns when the job is enqueued, when ctx ends, or within 30 s. It logs errors: a
// session whose job could not be enqueued is enqueued by EnqueueUnfinished at the next start. This
// covers a hook that runs after the pipeline stopped and its NATS connection closed: the publish
// fails at once and says so.
func (p *Pipeline) SessionEnded(ctx context.Context, ev capture.SessionEnded) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.Enqueue(ctx, ev.Room, ev.Session, ev.Dir); err != nil {
		p.log.Error("post-call job not enqueued; it is at the next start", "room", ev.Room, "session", ev.Session, "err", err)
	}
}

// Enqueue publishes the stage-1 job of a session recorded by this node in dir. Enqueueing a session
// twice within ten minutes publishes it once; later, the second job finds the work done.
func (p *Pipeline) Enqueue(ctx context.Context, room, session, dir string) error {
	if p.cfg.Node == "" {
		return errors.New("postcall: enqueue: this pipeline has no node name")
	}
	j := Job{
		Room: room, Session: session, Node: p.cfg.Node, Dir: dir,
		Renders: p.cfg.Renders.For(room), Webhook: p.cfg.Webhook, Enqueued: time.Now().UTC(),
	}
	if err := j.validate(); err != nil {
		return err
	}
	// One ID per node and session folder (IDs are the stream's, not the
	// subject's): the nodes of a cluster that recorded parts of one session
	// each have a job, and a node that recorded two parts has two folders.
	dup, err := p.enqueue(ctx, UploadSubject(p.cfg.Node), "upload/"+p.cfg.Node+"/"+j.Room+"/"+filepath.Base(dir), j, p.log)
	if err != nil {
		return err
	}
	if dup {
		p.log.Info("post-call job already enqueued", "room", room, "session", session)
		return nil
	}
	p.log.Info("post-call job enqueued", "room", room, "session", session, "renders", len(j.Renders))
	return nil
}

// State returns a session's job state (the zero State with Room and Session set when there is none).
func (p *Pipeline) State(ctx context.Context, room, session string) (State, error) {
	st, _, _, err := p.states.get(ctx, room, session)
	return st, err
}

// Wait returns a session's job state once the job is done or has failed.
func (p *Pipeline) Wait(ctx context.Context, room, session string) (State, error) {
	return p.states.wait(ctx, room, session)
}

// Run runs the uploader and the consumers this process has (stage 1 with a node name, stage 2 with
// RenderConcurrency > 0) until ctx ends, then waits for the jobs in progress to stop: their messages
// are NAKed, so they run again at once elsewhere or at the next start.
func (p *Pipeline) Run(ctx context.Context) error {
	var consumers []func()
	if p.cfg.Node != "" {
		c, err := consumer(ctx, p.stream, UploadConsumer(p.cfg.Node), UploadSubject(p.cfg.Node), p.cfg)
		if err != nil {
			return err
		}
		consumers = append(consumers, func() { p.consume(ctx, c, p.cfg.UploadJobs, p.storeSession) })
	}
	if p.cfg.RenderConcurrency > 0 {
		c, err := consumer(ctx, p.stream, RenderConsumer, RenderSubject, p.cfg)
		if err != nil {
			return err
		}
		consumers = append(consumers, func() { p.consume(ctx, c, p.cfg.RenderConcurrency, p.renderSession) })
	}
	if p.cfg.Parts != nil {
		c, err := consumer(ctx, p.stream, MergeConsumer, MergeSubject, p.cfg)
		if err != nil {
			return err
		}
		consumers = append(consumers, func() { p.consume(ctx, c, p.cfg.MergeJobs, p.mergeSession) })
	}
	var wg sync.WaitGroup
	if p.uploader != nil {
		wg.Go(func() { p.uploader.Run(ctx) })
	}
	for _, run := range consumers {
		wg.Go(run)
	}
	wg.Wait()
	return nil
}

// stage is one stage's work on a job.
type stage func(ctx context.Context, j Job, log *slog.Logger) error

// pollWait is how long one pull request waits for a job.
const pollWait = 2 * time.Second

// consume takes jobs from c, at most slots at once, until ctx ends.
func (p *Pipeline) consume(ctx context.Context, c jetstream.Consumer, slots int, run stage) {
	sem := make(chan struct{}, slots)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		// The fetch ends with ctx, so that a stopping pipeline does not wait for the poll.
		fctx, fcancel := context.WithTimeout(ctx, pollWait)
		msg, err := c.Next(jetstream.FetchContext(fctx))
		fcancel()
		if err != nil {
			<-sem
			if ctx.Err() != nil {
				return
			}
			if !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
				p.log.Warn("fetching a job failed", "err", err)
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
					return
				}
			}
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			p.handle(ctx, msg, run)
		})
	}
}

// handle runs one delivery of a job and acknowledges it as its outcome says.
func (p *Pipeline) handle(ctx context.Context, msg jetstream.Msg, run stage) {
	md, err := msg.Metadata()
	if err != nil {
		p.log.Error("job message without metadata; dropped", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	j, err := decodeJob(msg.Data())
	if err != nil {
		p.log.Error("bad job message; dropped", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	log := p.log.With("room", j.Room, "session", j.Session, "stage", md.Consumer, "attempt", md.NumDelivered)
	jctx, cancel := context.WithTimeout(ctx, p.cfg.JobTimeout)
	defer cancel()
	stop := heartbeat(jctx, msg, p.cfg.AckWait/3, log)
	began := p.stats.start(md.Consumer)
	running := p.markRunning(jctx, j, md.Consumer, log)
	err = run(jctx, j, log)
	stop()
	outcome := OutcomeDone
	defer func() { p.stats.end(md.Consumer, outcome, began) }()

	actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer acancel()
	defer func() {
		p.markStopped(actx, j, running, outcome == OutcomeRetried || outcome == OutcomeInterrupted, log)
	}()
	switch {
	case err == nil:
		if err := msg.DoubleAck(actx); err != nil {
			log.Warn("job done but its acknowledgement failed; a redelivery will find it done", "err", err)
		}
	case ctx.Err() != nil:
		outcome = OutcomeInterrupted
		log.Info("job interrupted; it runs again", "err", err)
		p.handBack(actx, msg, log)
	case isPermanent(err) || int(md.NumDelivered) >= p.cfg.MaxDeliver:
		outcome = OutcomeFailed
		log.Error("post-call job failed for good", "err", err)
		if _, serr := p.states.update(actx, j.Room, j.Session, func(s *State) {
			s.Failed, s.Error = time.Now().UTC(), err.Error()
			s.Attempts++
			s.Queued, s.Running, s.Stage, s.Worker = time.Time{}, time.Time{}, "", ""
		}); serr != nil {
			log.Error("recording the failure", "err", serr)
		}
		_ = msg.Term()
	default:
		outcome = OutcomeRetried
		d := retryDelay(md.NumDelivered)
		log.Warn("post-call job failed; retrying", "in", d, "err", err)
		if _, serr := p.states.update(actx, j.Room, j.Session, func(s *State) {
			s.Error = err.Error()
			s.Attempts++
		}); serr != nil {
			log.Error("recording the failure", "err", serr)
		}
		_ = msg.NakWithDelay(d)
	}
}

// handBack returns an interrupted job's message for redelivery at once and waits (up to 2 s) for
// the server to confirm it. The NAK carries a 1 ms delay because only a delayed NAK is written into
// the consumer's stored state: after a plain one, a server restarted with this process (the
// embedded one) would hold the job back for AckWait.
func (p *Pipeline) handBack(ctx context.Context, msg jetstream.Msg, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second) // NATS may be away: do not hold the stop up
	defer cancel()
	body := fmt.Appendf(nil, `-NAK {"delay": %d}`, time.Millisecond.Nanoseconds())
	if _, err := p.js.Conn().RequestWithContext(ctx, msg.Reply(), body); err != nil {
		log.Warn("handing the job back was not confirmed; it runs again after the ack wait", "err", err)
	}
}

// heartbeat tells JetStream every interval that msg is being worked on, until the returned function
// is called.
func heartbeat(ctx context.Context, msg jetstream.Msg, every time.Duration, log *slog.Logger) func() {
	every = max(every, 100*time.Millisecond)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					log.Warn("job heartbeat failed", "err", err)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

// markRunning records in the session's state that this worker runs one of
// its stages (consumer: the stage's consumer name), and returns the instant
// it wrote, which identifies this run to markStopped. The job runs whether
// or not this is written.
func (p *Pipeline) markRunning(ctx context.Context, j Job, consumer string, log *slog.Logger) time.Time {
	stage := "render"
	switch {
	case strings.HasPrefix(consumer, "upload"):
		stage = "store"
	case consumer == MergeConsumer:
		stage = "merge"
	}
	worker := p.cfg.Node
	if worker == "" {
		worker, _ = os.Hostname()
	}
	now := time.Now().UTC()
	if _, err := p.states.update(ctx, j.Room, j.Session, func(s *State) {
		s.Queued, s.Running, s.Stage, s.Worker = time.Time{}, now, stage, worker
	}); err != nil {
		log.Warn("post-call job state: running not recorded", "err", err)
	}
	return now
}

// markStopped records that the run markRunning marked stopped. A job that
// runs again (retried, or interrupted and handed back) is queued again; a job
// that queued its next stage marked it queued before (enqueue). A state that
// shows another run (the next stage may have started already) is left as it
// is.
func (p *Pipeline) markStopped(ctx context.Context, j Job, running time.Time, again bool, log *slog.Logger) {
	if _, err := p.states.update(ctx, j.Room, j.Session, func(s *State) {
		if !s.Running.IsZero() && !s.Running.Equal(running) {
			return
		}
		s.Running, s.Stage, s.Worker = time.Time{}, "", ""
		if again && !s.Finished() {
			s.Queued = time.Now().UTC()
		}
	}); err != nil {
		log.Warn("post-call job state: end of the stage not recorded", "err", err)
	}
}

// enqueue publishes a job of a session's (see publish), after marking the
// session's job queued: marked before, so that the stage that takes the job
// (markRunning) always writes after. The job is published whether or not the
// mark is written.
func (p *Pipeline) enqueue(ctx context.Context, subject, msgID string, j Job, log *slog.Logger) (duplicate bool, err error) {
	if _, err := p.states.update(ctx, j.Room, j.Session, func(s *State) { s.Queued = time.Now().UTC() }); err != nil {
		log.Warn("post-call job state: queued not recorded", "room", j.Room, "session", j.Session, "err", err)
	}
	return publish(ctx, p.js, subject, msgID, j)
}
