package postcall

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/tapedeck/tapedeck/capture"
)

// EnqueueUnfinished enqueues every session under dataDir (dataDir/{room}/{session}/) that has a
// manifest but whose manifest is not confirmed stored (by the folder's ledger, in any store):
// sessions whose job was never enqueued because the recorder stopped in between. It returns how many
// it enqueued. Sessions whose job is pending are enqueued again; the job's steps are idempotent.
// Call it at start, after capture.Recover, and before new sessions can end.
func (p *Pipeline) EnqueueUnfinished(ctx context.Context, dataDir string) (int, error) {
	manifests, err := filepath.Glob(filepath.Join(dataDir, "*", "*", capture.ManifestName))
	if err != nil {
		return 0, fmt.Errorf("postcall: scan %s: %w", dataDir, err)
	}
	sort.Strings(manifests)
	n := 0
	var errs []error
	for _, mp := range manifests {
		dir := filepath.Dir(mp)
		session, room := filepath.Base(dir), filepath.Base(filepath.Dir(dir))
		if !validName(room) || !validName(session) {
			continue
		}
		ledger, err := readLedger(dir, "")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, ok := ledger[capture.ManifestName]; ok {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, capture.JournalName)); err != nil {
			continue // not a session folder
		}
		if m, err := finalize(dir); err == nil {
			// The manifest names the session: the folder of a second part
			// of one session on this node (a cluster) is {session}.p{part}.
			room, session = m.Room, m.Session
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := p.Enqueue(ctx, room, session, abs); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
