package postcall

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/timeline"
)

// UploadConfig configures the uploads of closed segments during the call.
type UploadConfig struct {
	// Concurrency is how many segments upload at once (default 2).
	Concurrency int
	// MaxBacklog is how many closed segments may wait for upload (default 1000). Past it, a segment
	// is not queued: it stays on disk and the session's job uploads it; a warning says so.
	MaxBacklog int
	// RetryMin and RetryMax bound the delay between two attempts at a segment (default 1 s, doubling
	// up to 30 s). A segment is retried until it is stored or the uploader stops.
	RetryMin, RetryMax time.Duration
	// JournalWait is how long an uploaded segment waits for its segment_close record to reach the
	// journal on disk before it is deleted (default 5 s); without it, the file is kept for the job.
	JournalWait time.Duration
	// Hold, if set, keeps the local file of a stored segment while it returns true (the render
	// during the call has not drawn it yet); the file is deleted once it returns false (asked every
	// second) or by the session's job.
	// dir is the session's folder, rel the segment's path in it.
	Hold func(dir, rel string) bool
}

func (c UploadConfig) withDefaults() UploadConfig {
	if c.Concurrency <= 0 {
		c.Concurrency = 2
	}
	if c.MaxBacklog <= 0 {
		c.MaxBacklog = 1000
	}
	if c.RetryMin <= 0 {
		c.RetryMin = time.Second
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(30*time.Second, c.RetryMin)
	}
	if c.JournalWait <= 0 {
		c.JournalWait = 5 * time.Second
	}
	return c
}

// Backlog is what waits for upload during calls.
type Backlog struct {
	Files int   // segments queued or uploading
	Bytes int64 // their size
	// Left counts the segments not queued since the start because the backlog was full; their
	// sessions' jobs upload them.
	Left int
}

// Uploader stores session files: closed segments during the call (SegmentClosed, run by Run) and a
// finished session's files (for stage 1). Every upload is confirmed by size and SHA-256, recorded in
// the session's ledger, and skipped when the store already holds the same bytes under the key.
type Uploader struct {
	store storage.Client
	cfg   UploadConfig
	log   *slog.Logger

	files  [64]sync.Mutex // striped by file: one upload of a file at a time
	ledger sync.Mutex     // appends to ledgers

	mu      sync.Mutex
	queue   []capture.SegmentClosed
	backlog Backlog
	wake    chan struct{}
	held    []heldFile // stored, kept on disk while Hold says so
}

// heldFile is a stored segment whose local file Hold keeps.
type heldFile struct{ dir, rel, local string }

// NewUploader returns an uploader into store.
func NewUploader(store storage.Client, cfg UploadConfig, log *slog.Logger) *Uploader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Uploader{store: store, cfg: cfg.withDefaults(), log: log, wake: make(chan struct{}, 1)}
}

// Backlog returns the current upload backlog.
func (u *Uploader) Backlog() Backlog {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.backlog
}

// SegmentClosed queues a closed segment for upload; use it as capture.Config.OnSegmentClosed. It
// never blocks.
func (u *Uploader) SegmentClosed(ev capture.SegmentClosed) {
	u.mu.Lock()
	if u.backlog.Files >= u.cfg.MaxBacklog {
		u.backlog.Left++
		b := u.backlog
		u.mu.Unlock()
		u.log.Warn("upload backlog full: the segment stays on disk until its session's job uploads it",
			"room", ev.Room, "session", ev.Session, "path", ev.Path, "backlog_files", b.Files, "backlog_bytes", b.Bytes, "left", b.Left)
		return
	}
	u.queue = append(u.queue, ev)
	u.backlog.Files++
	u.backlog.Bytes += ev.Bytes
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// Run uploads queued segments until ctx ends, and logs the backlog every 30 s while there is one.
// Segments still queued then stay on disk for their sessions' jobs.
func (u *Uploader) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if b := u.Backlog(); b.Files > 0 {
					u.log.Info("upload backlog", "files", b.Files, "bytes", b.Bytes, "left_for_jobs", b.Left)
				}
			case <-ctx.Done():
				return
			}
		}
	})
	if u.cfg.Hold != nil {
		wg.Go(func() { u.releaseHeld(ctx) })
	}
	for range u.cfg.Concurrency {
		wg.Go(func() {
			for {
				ev, ok := u.next(ctx)
				if !ok {
					return
				}
				u.uploadSegment(ctx, ev)
				u.mu.Lock()
				u.backlog.Files--
				u.backlog.Bytes -= ev.Bytes
				u.mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// next takes the oldest queued segment, waiting for one.
func (u *Uploader) next(ctx context.Context) (capture.SegmentClosed, bool) {
	for {
		u.mu.Lock()
		if len(u.queue) > 0 {
			ev := u.queue[0]
			u.queue = u.queue[1:]
			more := len(u.queue) > 0
			u.mu.Unlock()
			if more {
				select {
				case u.wake <- struct{}{}:
				default:
				}
			}
			return ev, true
		}
		u.mu.Unlock()
		select {
		case <-u.wake:
		case <-ctx.Done():
			return capture.SegmentClosed{}, false
		}
	}
}

// uploadSegment stores a closed segment, retrying with backoff until it is stored or ctx ends, and
// deletes the local file once the upload is confirmed and the journal records the segment closed.
func (u *Uploader) uploadSegment(ctx context.Context, ev capture.SegmentClosed) {
	log := u.log.With("room", ev.Room, "session", ev.Session, "path", ev.Path)
	delay := u.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		f, err := u.store1(ctx, ev.Dir, ev.Room, ev.Session, ev.Path, removeWhenJournaled)
		if err == nil {
			log.Debug("segment stored", "key", f.Key, "bytes", f.Size)
			if ev.Part > 0 {
				u.snapshotJournal(ctx, ev, log)
			}
			return
		}
		if ctx.Err() != nil {
			log.Info("upload stopped; the segment stays on disk for the session's job", "err", err)
			return
		}
		if isPermanent(err) {
			log.Error("segment not uploaded; the session's job will try again", "err", err)
			return
		}
		b := u.Backlog()
		log.Warn("segment upload failed, retrying", "attempt", attempt, "in", delay, "err", err,
			"backlog_files", b.Files, "backlog_bytes", b.Bytes)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			log.Info("upload stopped; the segment stays on disk for the session's job")
			return
		}
		delay = min(2*delay, u.cfg.RetryMax)
	}
}

// StoreSession stores a finished session folder as its manifest m lists it, in an order that keeps
// the session complete in at least one place at every instant:
//
//  1. every track file, each kept on disk;
//  2. the journal;
//  3. the manifest, last: its presence in storage says the session is complete there;
//  4. only then, with removeTracks, the files of closed segments are deleted from disk.
//
// Until step 3 ends, the session folder holds the manifest and every track file except the closed
// segments uploaded during the call, each of which its ledger records as confirmed in storage (store,
// key, size, SHA-256): the folder and its ledger say where every file is, and ResolveSession reads
// the session from there. From step 3 on, storage holds the whole session. Files already stored with
// the same bytes are not uploaded again. The files of segments a crash left unclosed stay on disk,
// since `tapedeck recover` reads them. It returns how many files the session has in storage.
func (u *Uploader) StoreSession(ctx context.Context, dir string, m *timeline.Manifest, removeTracks bool) (int, error) {
	n := 0
	var closed []string
	for _, l := range m.Lanes {
		for _, t := range l.Tracks {
			for _, s := range t.Segments {
				if _, err := u.store1(ctx, dir, m.Room, m.Session, s.Path, keepLocal); err != nil {
					return n, err
				}
				n++
				if s.Closed {
					closed = append(closed, s.Path)
				}
			}
		}
	}
	for _, rel := range []string{capture.JournalName, capture.ManifestName} {
		// A part of a session (a cluster) stores its journal and manifest
		// under parts/{part}/: the session's manifest is merged from them.
		if _, err := u.storeKeyed(ctx, dir, sessionFileKey(m.Room, m.Session, m.Part, rel), rel, keepLocal); err != nil {
			return n, err
		}
		n++
	}
	if !removeTracks {
		return n, nil
	}
	for _, rel := range closed {
		if err := u.removeStored(dir, m.Room, m.Session, rel); err != nil {
			return n, err
		}
	}
	return n, nil
}

// removeStored deletes the local file of a track that the ledger records as confirmed in this
// uploader's store with the file's size. A file the ledger does not confirm is kept, and said so.
func (u *Uploader) removeStored(dir, room, session, rel string) error {
	local := filepath.Join(dir, filepath.FromSlash(rel))
	lock := &u.files[stripe(local)]
	lock.Lock()
	defer lock.Unlock()
	fi, err := os.Stat(local)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("postcall: %w", err)
	}
	ledger, err := readLedger(dir, u.store.String())
	if err != nil {
		return err
	}
	e, ok := ledger[rel]
	if !ok || e.Key != storage.SessionPrefix(room, session)+rel || e.Size != fi.Size() {
		u.log.Warn("track file kept on disk: the ledger does not confirm it stored with this size",
			"path", rel, "store", u.store.String(), "bytes", fi.Size())
		return nil
	}
	if err := os.Remove(local); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("postcall: stored, but removing the local file: %w", err)
	}
	return nil
}

// removal says what happens to a local file once its upload is confirmed.
type removal int

const (
	keepLocal removal = iota
	removeLocal
	removeWhenJournaled // remove once the journal on disk records the segment closed
)

// store1 makes sure the file at rel (relative to the session folder dir) is stored under
// SessionPrefix(room, session)+rel: it is skipped when the ledger or the file's own SHA-256 says the
// store already holds it, uploaded (and confirmed) otherwise, recorded in the ledger, and removed as
// rm says.
func (u *Uploader) store1(ctx context.Context, dir, room, session, rel string, rm removal) (StoredFile, error) {
	return u.storeKeyed(ctx, dir, storage.SessionPrefix(room, session)+rel, rel, rm)
}

// storeKeyed is store1 under an explicit key.
func (u *Uploader) storeKeyed(ctx context.Context, dir, key, rel string, rm removal) (StoredFile, error) {
	if err := storage.ValidateKey(key); err != nil {
		return StoredFile{}, permanent(fmt.Errorf("postcall: %s: %w", rel, err))
	}
	local := filepath.Join(dir, filepath.FromSlash(rel))
	lock := &u.files[stripe(local)]
	lock.Lock()
	defer lock.Unlock()

	ledger, err := readLedger(dir, u.store.String())
	if err != nil {
		return StoredFile{}, err
	}
	fi, statErr := os.Stat(local)
	if statErr != nil && !errors.Is(statErr, fs.ErrNotExist) {
		return StoredFile{}, fmt.Errorf("postcall: %w", statErr)
	}
	haveLocal := statErr == nil
	obj, err := u.store.Stat(ctx, key)
	found := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return StoredFile{}, fmt.Errorf("postcall: check %s: %w", key, err)
	}

	if e, ok := ledger[rel]; ok && found && obj.Size == e.Size && obj.SHA256 == e.SHA256 && e.Key == key &&
		(!haveLocal || fi.Size() == e.Size) {
		// Confirmed before (perhaps by an attempt that died before removing the file).
		return u.finish(ctx, dir, rel, local, haveLocal, rm, StoredFile{Key: key, Size: e.Size, SHA256: e.SHA256})
	}
	if !haveLocal {
		if found && obj.SHA256 != "" {
			u.log.Warn("file is not on disk and not in the ledger, but stored: keeping the stored copy",
				"key", key, "bytes", obj.Size)
			return StoredFile{Key: key, Size: obj.Size, SHA256: obj.SHA256}, nil
		}
		return StoredFile{}, permanent(fmt.Errorf("postcall: %s is neither on disk (%s) nor confirmed in %s", rel, dir, u.store))
	}
	var sf StoredFile
	if found && obj.Size == fi.Size() && obj.SHA256 != "" {
		sum, err := hashFile(ctx, local)
		if err != nil {
			return StoredFile{}, err
		}
		if sum == obj.SHA256 {
			u.log.Debug("already stored, not uploaded again", "key", key)
			sf = StoredFile{Key: key, Size: obj.Size, SHA256: sum}
		}
	}
	if sf.Key == "" {
		info, err := storage.UploadFile(ctx, u.store, key, local, false)
		if err != nil {
			return StoredFile{}, fmt.Errorf("postcall: %w", err)
		}
		sf = StoredFile{Key: key, Size: info.Size, SHA256: info.SHA256}
	}
	u.ledger.Lock()
	err = appendLedger(dir, LedgerEntry{Path: rel, Store: u.store.String(), Key: key, Size: sf.Size, SHA256: sf.SHA256, At: time.Now().UTC()})
	u.ledger.Unlock()
	if err != nil {
		return StoredFile{}, err
	}
	return u.finish(ctx, dir, rel, local, true, rm, sf)
}

// finish removes the local copy of a stored file as rm says.
func (u *Uploader) finish(ctx context.Context, dir, rel, local string, haveLocal bool, rm removal, sf StoredFile) (StoredFile, error) {
	if !haveLocal || rm == keepLocal {
		return sf, nil
	}
	if rm == removeWhenJournaled {
		ok, err := u.waitJournal(ctx, dir, rel)
		if err != nil || !ok {
			u.log.Info("segment stored; its file stays on disk until the session's job, as the journal does not yet record it closed",
				"path", rel, "err", err)
			return sf, nil
		}
	}
	if rm == removeWhenJournaled && u.cfg.Hold != nil && u.cfg.Hold(dir, rel) {
		u.mu.Lock()
		u.held = append(u.held, heldFile{dir: dir, rel: rel, local: local})
		u.mu.Unlock()
		return sf, nil
	}
	if err := os.Remove(local); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return sf, fmt.Errorf("postcall: stored, but removing the local file: %w", err)
	}
	return sf, nil
}

// releaseHeld deletes, every second until ctx ends, the held files Hold no longer keeps. Files
// still held then stay for their sessions' jobs.
func (u *Uploader) releaseHeld(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		u.mu.Lock()
		held := u.held
		u.held = nil
		u.mu.Unlock()
		var keep []heldFile
		for _, h := range held {
			if u.cfg.Hold(h.dir, h.rel) {
				keep = append(keep, h)
				continue
			}
			if err := os.Remove(h.local); err != nil && !errors.Is(err, fs.ErrNotExist) {
				u.log.Warn("a stored segment's local file could not be removed; its session's job removes it", "path", h.local, "err", err)
			}
		}
		u.mu.Lock()
		u.held = append(keep, u.held...)
		u.mu.Unlock()
	}
}

// waitJournal waits (up to JournalWait, or until ctx ends) for the journal on disk to record the
// segment at rel closed.
func (u *Uploader) waitJournal(ctx context.Context, dir, rel string) (bool, error) {
	deadline := time.Now().Add(u.cfg.JournalWait)
	for {
		ok, err := journalClosed(dir, rel)
		if ok || err != nil || time.Now().After(deadline) {
			return ok, err
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return false, nil
		}
	}
}

func stripe(s string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return int(h.Sum32() % 64)
}

// hashFile returns the lowercase hex SHA-256 of a file.
func hashFile(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("postcall: %w", err)
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", fmt.Errorf("postcall: hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
