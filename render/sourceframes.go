package render

import (
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/tapedeck/tapedeck/capture/mkv"
)

// sourceFrames finds the last frame of a session's video file at or before
// a file time (Settings.lastFrame). A piece drawn from the middle of its
// file, at the start of a window or of a scene (a join, a leave, a new
// speaker), must show the frame playing there, which a screen share or a
// stalled camera may have sent seconds before; the piece's stretch of its
// file reaches back only a frame otherwise, and the tile would be empty
// until the next frame (or, at the end of a file, to the end of the piece).
// The files' clusters are indexed once per render, and each answer kept (a
// render compiles its plan twice); a file that cannot be read so (another
// container, or gone) keeps the frame's reach.
type sourceFrames struct {
	sessionDir string
	log        *slog.Logger

	mu      sync.Mutex
	indexes map[string]*mkv.Clusters // by plan path; nil: not indexable
	answers map[frameQuery]frameAnswer
}

type frameQuery struct {
	path string
	t    float64
}

type frameAnswer struct {
	at float64
	ok bool
}

func newSourceFrames(sessionDir string, log *slog.Logger) *sourceFrames {
	return &sourceFrames{sessionDir: sessionDir, log: log, indexes: map[string]*mkv.Clusters{}, answers: map[frameQuery]frameAnswer{}}
}

// before returns the file time (seconds) of the last frame of the plan's
// file path at or before file time t, and false when it cannot tell.
func (f *sourceFrames) before(path string, t float64) (float64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := frameQuery{path, t}
	a, done := f.answers[q]
	if !done {
		a.at, a.ok = f.lookUp(path, t)
		f.answers[q] = a
	}
	return a.at, a.ok
}

// lookUp is before, read from the file; f.mu is held.
func (f *sourceFrames) lookUp(path string, t float64) (float64, bool) {
	x, seen := f.indexes[path]
	if seen && x == nil {
		return 0, false
	}
	file, err := os.Open(sessionFile(f.sessionDir, path))
	if err != nil {
		return 0, false
	}
	defer file.Close()
	if !seen {
		if x, err = mkv.IndexClusters(file); err != nil {
			f.log.Debug("render: frame times not read", "file", path, "err", err)
			x = nil
		}
		f.indexes[path] = x
	}
	if x == nil {
		return 0, false
	}
	at, ok, err := x.FrameBefore(file, time.Duration(t*float64(time.Second)))
	if err != nil {
		f.log.Debug("render: frame times not read", "file", path, "err", err)
		return 0, false
	}
	return at.Seconds(), ok
}
