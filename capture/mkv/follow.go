package mkv

import (
	"fmt"
	"io"
)

// A Follower scans a file that a Writer is still writing, again and again:
// after its first Scan, each reads only what was added since the last, from
// the end of the last complete cluster on (Summary.ValidBytes), and reports
// what Scan of the whole file would. The file must only grow, as a Writer's
// does until Close patches its header; a finalized file is Scan's. The zero
// Follower is ready; it is not safe for concurrent use.
type Follower struct {
	sum   Summary
	scale int64
	track uint64
	// headerDone: the header was read, and the next Scan resumes.
	headerDone, haveFrame bool
}

// Scan reports what the file holds now (see Scan).
func (f *Follower) Scan(r io.ReadSeeker) (Summary, error) {
	if !f.headerDone {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return Summary{}, fmt.Errorf("mkv: follow: %w", err)
		}
		s := newScanner(r)
		sum, err := s.run()
		if err == nil && s.headerDone && !sum.Complete {
			f.keep(s)
		}
		return sum, err
	}
	if _, err := r.Seek(f.sum.ValidBytes, io.SeekStart); err != nil {
		return Summary{}, fmt.Errorf("mkv: follow: %w", err)
	}
	s := newScanner(r)
	s.off, s.sum, s.scale, s.track, s.headerDone, s.haveFrame = f.sum.ValidBytes, f.sum, f.scale, f.track, true, f.haveFrame
	sum, err := s.segment(-1)
	if err == nil {
		f.keep(s)
	}
	return sum, err
}

// keep notes where s stopped.
func (f *Follower) keep(s *scanner) {
	f.sum, f.scale, f.track, f.headerDone, f.haveFrame = s.sum, s.scale, s.track, true, s.haveFrame
}
