package capture

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Defaults of the service limits.
const (
	DefaultMinFreeBytes        = 256 << 20
	DefaultHardFloorBytes      = 32 << 20
	DefaultMaxPublishesPerRoom = 50
	DefaultMaxPublishes        = 500
	diskCheckEvery             = 500 * time.Millisecond
)

// Why a publish is refused with 503.
var (
	errDiskLow   = errors.New("the recorder's disk is almost full")
	errTooMany   = errors.New("too many publishes")
	errDraining  = errors.New("the recorder is shutting down")
	errRateLimit = errors.New("too many failed authentications")
)

// counters are the recorder's running totals, read by Stats.
type counters struct {
	packetsReceived atomic.Int64
	packetsLost     atomic.Int64
	packetsWritten  atomic.Int64
	framesWritten   atomic.Int64
	bytesWritten    atomic.Int64
	segmentsClosed  atomic.Int64
	publishes       atomic.Int64
	refused         atomic.Int64
	elsewhere       atomic.Int64
	activeTracks    atomic.Int64
	freeBytes       atomic.Int64 // -1: unknown
}

// Stats is a snapshot of the recorder, for metrics and health checks.
type Stats struct {
	ActiveSessions  int
	ActivePublishes int
	ActiveTracks    int64
	PacketsReceived int64 // every RTP packet read from the network
	PacketsLost     int64 // sequence numbers never received (after NACK)
	PacketsWritten  int64 // packets released in order to the writers
	FramesWritten   int64
	BytesWritten    int64 // bytes of track files on disk
	SegmentsClosed  int64
	Publishes       int64 // publishes accepted since start
	Refused         int64 // publishes refused (503, 429) since start
	Elsewhere       int64 // requests answered for a room another recorder of a cluster records (redirected or proxied)
	FreeBytes       int64 // free space of the data folder; -1 unknown
	DiskLow         bool  // new publishes are refused for disk space
	DiskFull        bool  // below the hard floor: files are closed, nothing written
	Draining        bool
}

// Stats returns a snapshot of the recorder's state and counters.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	sessions, pubs := 0, 0
	for _, s := range r.rooms {
		sessions++
		pubs += len(s.publishes)
	}
	draining := r.draining || r.closed
	r.mu.Unlock()
	c := &r.count
	free := c.freeBytes.Load()
	return Stats{
		ActiveSessions: sessions, ActivePublishes: pubs, ActiveTracks: c.activeTracks.Load(),
		PacketsReceived: c.packetsReceived.Load(), PacketsLost: c.packetsLost.Load(),
		PacketsWritten: c.packetsWritten.Load(), FramesWritten: c.framesWritten.Load(),
		BytesWritten: c.bytesWritten.Load(), SegmentsClosed: c.segmentsClosed.Load(),
		Publishes: c.publishes.Load(), Refused: c.refused.Load(), Elsewhere: c.elsewhere.Load(), FreeBytes: free,
		DiskLow: r.diskLow(), DiskFull: r.diskFull(), Draining: draining,
	}
}

// Ready says whether the recorder accepts publishes now, and if not, why.
func (r *Recorder) Ready() error {
	r.mu.Lock()
	draining := r.draining || r.closed
	r.mu.Unlock()
	switch {
	case draining:
		return errDraining
	case r.diskLow():
		return fmt.Errorf("%w: %s free, publishes need %s", errDiskLow, formatBytes(r.count.freeBytes.Load()), formatBytes(r.cfg.MinFreeBytes))
	}
	return nil
}

func (r *Recorder) diskLow() bool {
	f := r.count.freeBytes.Load()
	return f >= 0 && f < r.cfg.MinFreeBytes
}

func (r *Recorder) diskFull() bool {
	f := r.count.freeBytes.Load()
	return f >= 0 && f < r.cfg.HardFloorBytes
}

// watchDisk keeps freeBytes current until done is closed.
func (r *Recorder) watchDisk(done <-chan struct{}) {
	t := time.NewTicker(diskCheckEvery)
	defer t.Stop()
	wasLow := false
	for {
		f, err := freeBytes(r.cfg.DataDir)
		if err != nil {
			r.log.Warn("cannot read the data folder's free space; disk guard off", "err", err)
			f = -1
		}
		r.count.freeBytes.Store(f)
		if low := r.diskLow(); low != wasLow {
			wasLow = low
			if low {
				r.log.Warn("disk space low: refusing new publishes", "free", formatBytes(f), "min_free", formatBytes(r.cfg.MinFreeBytes))
			} else {
				r.log.Info("disk space back: accepting publishes", "free", formatBytes(f))
			}
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

func formatBytes(n int64) string {
	switch {
	case n < 0:
		return "unknown"
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// admit checks the limits for a new publish in room. Called with r.mu held.
func (r *Recorder) admit(room string) error {
	if r.draining || r.closed {
		return errDraining
	}
	if r.diskLow() {
		return fmt.Errorf("%w (%s free)", errDiskLow, formatBytes(r.count.freeBytes.Load()))
	}
	total := 0
	for _, s := range r.rooms {
		total += len(s.publishes)
	}
	if total >= r.cfg.MaxPublishes {
		return fmt.Errorf("%w: %d on this recorder", errTooMany, total)
	}
	if s := r.rooms[room]; s != nil && !s.ending && len(s.publishes) >= r.cfg.MaxPublishesPerRoom {
		return fmt.Errorf("%w: %d in room %s", errTooMany, len(s.publishes), room)
	}
	return nil
}

func clientAddr(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr
	}
	return host
}

func retryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(d.Seconds())+1))
}
