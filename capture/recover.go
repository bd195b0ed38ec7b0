package capture

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
)

// Recover rebuilds the manifest of every session under dataDir that has a
// journal but no manifest: sessions whose recorder was killed. Sessions that
// are being recorded by a running recorder must not be passed in; call it
// before serving. It returns the sessions it finished.
func Recover(dataDir string, log *slog.Logger) ([]SessionEnded, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	journals, err := filepath.Glob(filepath.Join(dataDir, "*", "*", JournalName))
	if err != nil {
		return nil, fmt.Errorf("capture: recover: %w", err)
	}
	sort.Strings(journals)
	var out []SessionEnded
	var errs []error
	for _, j := range journals {
		dir := filepath.Dir(j)
		if _, err := os.Stat(filepath.Join(dir, ManifestName)); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("capture: recover %s: %w", dir, err))
			continue
		}
		ended, err := RecoverSession(dir)
		if err != nil {
			log.Error("session not recovered", "dir", dir, "err", err)
			errs = append(errs, err)
			continue
		}
		log.Info("session recovered", "dir", dir, "lanes", len(ended.Manifest.Lanes))
		out = append(out, ended)
	}
	return out, errors.Join(errs...)
}

// RecoverSession rebuilds and writes the manifest of one session folder
// from its journal and files, whether or not it has a manifest already. It
// writes only a manifest that validates: a journal Compact refuses (its error
// wraps ErrInvalidJournal and names the record) leaves any existing manifest
// untouched.
func RecoverSession(dir string) (SessionEnded, error) {
	m, err := Compact(dir)
	if err != nil {
		return SessionEnded{}, err
	}
	if err := WriteManifest(dir, m); err != nil {
		return SessionEnded{}, err
	}
	return SessionEnded{Room: m.Room, Session: m.Session, Dir: dir, Manifest: m}, nil
}
