package postcall

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Config configures a Pipeline. It holds no runtime state.
type Config struct {
	// Node names this recording node: stage-1 jobs of the sessions it records are published to
	// tapedeck.jobs.upload.{Node} and run only here. Empty for a process that records nothing (a
	// worker). Same rules as a room name.
	Node string
	// WorkDir is the scratch folder for render inputs and outputs.
	WorkDir string
	// Renders says what each room renders; used when a session is enqueued.
	Renders RenderConfig
	// RenderConcurrency is how many stage-2 jobs (renders) this process runs at once; 0: none, this
	// process leaves them to others.
	RenderConcurrency int
	// RenderNice is the niceness renders run at (see RenderSpec.Nice); 0 means the default, 10;
	// negative means none.
	RenderNice int
	// UploadJobs is how many stage-1 jobs run at once (default 2).
	UploadJobs int
	// Upload configures the uploads during the call.
	Upload UploadConfig
	// Webhook is the URL told about every finished session ("" for none); it travels in the job.
	Webhook string
	// WebhookSecret signs the webhook's body (X-Tapedeck-Signature); it never travels in a job, so
	// every process that runs stage 2 needs it.
	WebhookSecret string
	// WebhookAttempts is how many times one job attempt POSTs the webhook before it gives up and the
	// job is retried later (default 5); the delay doubles from 1 s up to 30 s.
	WebhookAttempts int
	// LinkTTL is how long the webhook's download links are valid (default 24 h; S3 allows up to 7
	// days).
	LinkTTL time.Duration
	// AckWait is how long a job may go without a heartbeat before JetStream gives it to another
	// consumer (default 30 s). Heartbeats are sent every AckWait/3.
	AckWait time.Duration
	// MaxDeliver is how many times a job is attempted (default 20). Failed attempts are retried
	// after 5 s, doubling up to 5 min.
	MaxDeliver int
	// JobTimeout bounds one attempt of one stage (default 6 h).
	JobTimeout time.Duration
	// Parts, set on the nodes of a cluster, says which nodes recorded parts
	// of a session: each node stores its part, and a merge job, run by any
	// node, merges the parts into the session's manifest (see Parts). nil:
	// every session is recorded by one node.
	Parts Parts
	// PartWait is how long a merge waits for a part whose node is gone
	// (dead, and not back) before it merges without it: what the node
	// uploaded during the call is used, the rest is marked missing, and the
	// session is merged again if the node comes back and stores its part
	// (default 2 min). A part whose node is alive is waited for.
	PartWait time.Duration
	// StoreWindows makes stage 1 store the windows rendered during the call
	// (package prerender) with the session, so that a render on another node
	// (a cluster) takes them instead of drawing them (see OutDir). Stage 2
	// always looks for them, and deletes them once the job is done.
	StoreWindows bool
	// MergeJobs is how many merge jobs run at once (default 16; a merge
	// waiting for parts only sleeps).
	MergeJobs int
}

// Defaults used where Config leaves a field zero.
const (
	DefaultRenderNice      = 10
	DefaultUploadJobs      = 2
	DefaultWebhookAttempts = 5
	DefaultLinkTTL         = 24 * time.Hour
	DefaultAckWait         = 30 * time.Second
	DefaultMaxDeliver      = 20
	DefaultJobTimeout      = 6 * time.Hour
	DefaultPartWait        = 2 * time.Minute
	DefaultMergeJobs       = 16
)

func (c Config) withDefaults() (Config, error) {
	if c.Node != "" && !validName(c.Node) {
		return c, fmt.Errorf("postcall: node name %q: want 1–64 letters, digits, '_', '-', '.', starting with a letter or digit", c.Node)
	}
	if c.RenderConcurrency < 0 {
		return c, fmt.Errorf("postcall: render concurrency %d is negative", c.RenderConcurrency)
	}
	if c.WorkDir == "" {
		c.WorkDir = filepath.Join(os.TempDir(), "tapedeck-work")
	}
	switch {
	case c.RenderNice == 0:
		c.RenderNice = DefaultRenderNice
	case c.RenderNice < 0:
		c.RenderNice = 0
	case c.RenderNice > 19:
		return c, fmt.Errorf("postcall: render niceness %d: want 0 to 19", c.RenderNice)
	}
	if c.UploadJobs <= 0 {
		c.UploadJobs = DefaultUploadJobs
	}
	if c.WebhookAttempts <= 0 {
		c.WebhookAttempts = DefaultWebhookAttempts
	}
	if c.LinkTTL <= 0 {
		c.LinkTTL = DefaultLinkTTL
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if c.JobTimeout <= 0 {
		c.JobTimeout = DefaultJobTimeout
	}
	if c.PartWait <= 0 {
		c.PartWait = DefaultPartWait
	}
	if c.MergeJobs <= 0 {
		c.MergeJobs = DefaultMergeJobs
	}
	if c.Webhook != "" {
		if err := checkWebhookURL(c.Webhook); err != nil {
			return c, err
		}
	}
	return c, nil
}
