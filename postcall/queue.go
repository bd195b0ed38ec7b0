package postcall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Names in JetStream.
const (
	// Stream is the work-queue stream of every job.
	Stream = "TAPEDECK_JOBS"
	// SubjectPrefix prefixes every job subject.
	SubjectPrefix = "tapedeck.jobs"
	// RenderSubject carries stage-2 jobs; RenderConsumer is the durable consumer every renderer shares.
	RenderSubject  = SubjectPrefix + ".render"
	RenderConsumer = "render"
	// StateBucket is the key-value bucket of job states; a state is kept StateTTL after its last change.
	StateBucket = "tapedeck_jobs"
	StateTTL    = 30 * 24 * time.Hour
)

// UploadSubject carries the stage-1 jobs of a recording node.
func UploadSubject(node string) string { return SubjectPrefix + ".upload." + node }

// UploadConsumer is the durable consumer of a recording node's stage-1 jobs.
func UploadConsumer(node string) string { return "upload-" + node }

// Job is the message of both stages.
type Job struct {
	Room    string `json:"room"`
	Session string `json:"session"`
	// Node recorded the session; Dir is the session folder on it.
	Node string `json:"node"`
	Dir  string `json:"dir"`
	// Renders are the outputs to render (resolved from the node's RenderConfig when enqueued).
	Renders []RenderSpec `json:"renders"`
	// Webhook is told when the session is stored and rendered ("" for none).
	Webhook  string    `json:"webhook,omitempty"`
	Enqueued time.Time `json:"enqueued"`
	// Rerender marks a re-render an operator asked for (Pipeline.Rerender), not the render after the
	// call: the renderer may give it more of the machine (RenderSpec.Rerender).
	Rerender bool `json:"rerender,omitempty"`
}

// ID is "{room}/{session}".
func (j Job) ID() string { return j.Room + "/" + j.Session }

func (j Job) validate() error {
	if !validName(j.Room) || !validName(j.Session) || !validName(j.Node) {
		return fmt.Errorf("postcall: job %q on node %q: room, session and node must be 1–64 letters, digits, '_', '-', '.'",
			j.ID(), j.Node)
	}
	seen := map[string]bool{}
	for _, s := range j.Renders {
		if !validName(s.Name) || seen[s.Name] {
			return fmt.Errorf("postcall: job %s: render name %q is invalid or repeated", j.ID(), s.Name)
		}
		seen[s.Name] = true
		if err := s.Check(); err != nil {
			return fmt.Errorf("postcall: job %s: %w", j.ID(), err)
		}
	}
	return nil
}

func decodeJob(b []byte) (Job, error) {
	var j Job
	if err := json.Unmarshal(b, &j); err != nil {
		return Job{}, fmt.Errorf("postcall: bad job message: %w", err)
	}
	return j, j.validate()
}

// setupStream creates or updates the stream and the state bucket.
func setupStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, jetstream.KeyValue, error) {
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        Stream,
		Description: "tapedeck post-call jobs (work queue)",
		Subjects:    []string{SubjectPrefix + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Duplicates:  10 * time.Minute,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("postcall: create stream %s: %w", Stream, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      StateBucket,
		Description: "tapedeck post-call job states, by {room}/{session}",
		History:     1,
		TTL:         StateTTL,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("postcall: create key-value bucket %s: %w", StateBucket, err)
	}
	return st, kv, nil
}

// consumer creates or updates a durable pull consumer with explicit acks.
func consumer(ctx context.Context, st jetstream.Stream, name, subject string, cfg Config) (jetstream.Consumer, error) {
	c, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       name,
		FilterSubject: subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 1000,
	})
	if err != nil {
		return nil, fmt.Errorf("postcall: create consumer %s: %w", name, err)
	}
	return c, nil
}

// publish puts a job on a subject; msgID makes a repeated publish within the stream's duplicate
// window a no-op, reported as duplicate.
func publish(ctx context.Context, js jetstream.JetStream, subject, msgID string, j Job) (duplicate bool, err error) {
	b, err := json.Marshal(j)
	if err != nil {
		return false, fmt.Errorf("postcall: encode job: %w", err)
	}
	ack, err := js.Publish(ctx, subject, b, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(Stream))
	if err != nil {
		return false, fmt.Errorf("postcall: publish job %s to %s: %w", j.ID(), subject, err)
	}
	return ack.Duplicate, nil
}

// retryDelay is the delay before attempt n+1 after attempt n failed: 5 s doubling up to 5 min.
func retryDelay(n uint64) time.Duration {
	d := 5 * time.Second
	for i := uint64(1); i < n && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// permanentError marks an error that another attempt cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
