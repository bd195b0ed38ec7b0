package postcall

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/tapedeck/tapedeck/capture"
)

// LedgerName is the file in a session folder that lists the confirmed uploads of its files, one JSON
// object a line (LedgerEntry). It is local bookkeeping and is never uploaded.
const LedgerName = "uploaded.jsonl"

// LedgerEntry records one confirmed upload.
type LedgerEntry struct {
	Path   string    `json:"path"`  // relative to the session folder, slash-separated
	Store  string    `json:"store"` // storage.Client.String()
	Key    string    `json:"key"`
	Size   int64     `json:"size"`
	SHA256 string    `json:"sha256"`
	At     time.Time `json:"at"`
}

// readLedger returns the entries of a session folder's ledger for one store ("" for any), by path (the
// last entry of a path wins). A missing ledger is empty; a torn last line is skipped.
func readLedger(dir, store string) (map[string]LedgerEntry, error) {
	b, err := os.ReadFile(filepath.Join(dir, LedgerName))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]LedgerEntry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("postcall: read ledger: %w", err)
	}
	out := map[string]LedgerEntry{}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		var e LedgerEntry
		if len(bytes.TrimSpace(line)) == 0 || json.Unmarshal(line, &e) != nil {
			continue
		}
		if store == "" || e.Store == store {
			out[e.Path] = e
		}
	}
	return out, nil
}

// appendLedger adds an entry to a session folder's ledger and syncs it. The caller serializes appends
// to one folder.
func appendLedger(dir string, e LedgerEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("postcall: ledger: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, LedgerName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("postcall: ledger: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		_ = f.Close()
		return fmt.Errorf("postcall: ledger: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("postcall: ledger: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("postcall: ledger: %w", err)
	}
	return nil
}

// journalClosed reports whether the session's journal, as written so far, holds the segment_close
// record of the segment file at path (relative to dir). Recovery reads the files of unclosed
// segments only, so a closed segment's file may go once this is true. See docs/manifest.md for the
// journal's format.
func journalClosed(dir, path string) (bool, error) {
	f, err := os.Open(filepath.Join(dir, capture.JournalName))
	if err != nil {
		return false, fmt.Errorf("postcall: read journal: %w", err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	marker := []byte(`"segment_close"`)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, marker) {
			continue
		}
		var r struct {
			Type    string `json:"type"`
			Segment *struct {
				Path string `json:"path"`
			} `json:"segment"`
		}
		if json.Unmarshal(line, &r) == nil && r.Type == "segment_close" && r.Segment != nil && r.Segment.Path == path {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("postcall: read journal: %w", err)
	}
	return false, nil
}
