package capture

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// JournalName is the journal's file name inside a session folder.
const JournalName = "journal.jsonl"

// Journal record types. docs/manifest.md describes them.
const (
	recSession      = "session"
	recSessionEnd   = "session_end"
	recPublish      = "publish"
	recPublishEnd   = "publish_end"
	recTrack        = "track"
	recSegmentOpen  = "segment_open"
	recSegmentClose = "segment_close"
	recSenderReport = "sr"
	recStats        = "stats"
	recEvent        = "event"
)

// record is one line of the journal. Only the fields of its type are set.
type record struct {
	Type string `json:"type"`
	At   int64  `json:"at_unix_ns"` // recorder clock when it was written

	Room    string `json:"room,omitempty"`
	Session string `json:"session,omitempty"`
	Part    int    `json:"part,omitempty"` // session: this recorder's part (a cluster)
	Node    string `json:"node,omitempty"` // session: this recorder's name (a cluster)

	Publish     string `json:"publish,omitempty"`
	Participant string `json:"participant,omitempty"`
	Name        string `json:"name,omitempty"`
	Reason      string `json:"reason,omitempty"`

	Track     string `json:"track,omitempty"`
	Lane      string `json:"lane,omitempty"`
	Kind      string `json:"kind,omitempty"`
	SSRC      uint32 `json:"ssrc,omitempty"`
	Codec     string `json:"codec,omitempty"`
	ClockRate int    `json:"clock_rate,omitempty"`
	Channels  int    `json:"channels,omitempty"`
	Fmtp      string `json:"fmtp,omitempty"`

	Segment *segmentRecord `json:"segment,omitempty"`
	SR      *srRecord      `json:"sr,omitempty"`
	Stats   *statsRecord   `json:"stats,omitempty"`
	Event   *eventRecord   `json:"event,omitempty"`
}

type segmentRecord struct {
	Index         int    `json:"index"`
	Path          string `json:"path"`
	FirstRTP      int64  `json:"first_rtp"`
	FirstArrival  int64  `json:"first_arrival_unix_ns"`
	LastRTP       int64  `json:"last_rtp,omitempty"`
	LastArrival   int64  `json:"last_arrival_unix_ns,omitempty"`
	Packets       int64  `json:"packets,omitempty"`
	Lost          int64  `json:"lost,omitempty"`
	Frames        int64  `json:"frames,omitempty"`
	Keyframes     int64  `json:"keyframes,omitempty"`
	Bytes         int64  `json:"bytes,omitempty"`
	Width         int    `json:"width,omitempty"`
	Height        int    `json:"height,omitempty"`
	FirstKeyframe bool   `json:"first_keyframe,omitempty"`
}

type srRecord struct {
	NTP     int64  `json:"ntp_unix_ns"`
	RTP     int64  `json:"rtp"`
	Arrival int64  `json:"arrival_unix_ns"`
	Packets uint32 `json:"packets"`
	Octets  uint32 `json:"octets"`
}

type statsRecord struct {
	Arrivals   [][2]int64 `json:"arrivals,omitempty"` // (rtp, arrival_unix_ns)
	Levels     [][2]int64 `json:"levels,omitempty"`   // (rtp, level -dBov)
	Received   int64      `json:"received"`
	Lost       int64      `json:"lost"`
	Duplicates int64      `json:"duplicates"`
	Late       int64      `json:"late"`
}

type eventRecord struct {
	Kind    string `json:"kind"`
	RTP     int64  `json:"rtp"`
	Arrival int64  `json:"arrival_unix_ns"`
	Width   int    `json:"width,omitempty"`
	Height  int    `json:"height,omitempty"`
}

// journal appends records to a session's journal file. Records are buffered
// and written out at least every flushEvery; a record is one line, so a
// crash leaves at worst one torn line at the end, which the reader skips.
type journal struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	enc  *json.Encoder
	err  error
	done chan struct{}
	wg   sync.WaitGroup
}

const flushEvery = 500 * time.Millisecond

func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("capture: open journal: %w", err)
	}
	j := &journal{f: f, w: bufio.NewWriterSize(f, 64<<10), done: make(chan struct{})}
	j.enc = json.NewEncoder(j.w)
	j.wg.Add(1)
	go j.flusher()
	return j, nil
}

func (j *journal) flusher() {
	defer j.wg.Done()
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-j.done:
			return
		case <-t.C:
			j.mu.Lock()
			if j.err == nil {
				j.err = j.w.Flush()
			}
			j.mu.Unlock()
		}
	}
}

// append adds a record. Errors are sticky and reported by append and close.
func (j *journal) append(r *record) error {
	if r.At == 0 {
		r.At = time.Now().UnixNano()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	if err := j.enc.Encode(r); err != nil {
		j.err = fmt.Errorf("capture: journal: %w", err)
	}
	return j.err
}

// sync writes out buffered records and fsyncs the file.
func (j *journal) sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	if err := j.w.Flush(); err != nil {
		j.err = fmt.Errorf("capture: journal flush: %w", err)
		return j.err
	}
	if err := j.f.Sync(); err != nil {
		j.err = fmt.Errorf("capture: journal sync: %w", err)
	}
	return j.err
}

// errJournalClosed is what appending to a closed journal returns: a record
// written after the session was finalized would be lost, so it is an error.
var errJournalClosed = errors.New("capture: journal already closed")

func (j *journal) close() error {
	close(j.done)
	j.wg.Wait()
	err := j.sync()
	if cerr := j.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("capture: journal close: %w", cerr)
	}
	j.mu.Lock()
	if j.err == nil {
		j.err = errJournalClosed
	}
	j.mu.Unlock()
	return err
}

// readJournal reads every whole record of a journal. A torn or corrupt line
// (the tail of a crash) ends nothing: it is counted and skipped.
func readJournal(r io.Reader) (recs []record, skipped int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var rec record
		if err := json.Unmarshal(line, &rec); err != nil || rec.Type == "" {
			skipped++
			continue
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return recs, skipped, fmt.Errorf("capture: read journal: %w", err)
	}
	return recs, skipped, nil
}
