package render

import (
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/tapedeck/tapedeck/capture/mkv"
)

// sourceFiles answers what a render needs to know of a session's media
// files beyond the plan: the frame playing at an instant of a video file
// (before), and how a stretch of an Opus file decodes (audio, in
// sourceaudio.go). The files' clusters are indexed once per render, and
// each answer kept (a render compiles its plan twice); a file that cannot be
// read so (another container, or gone) gets the answer that assumes
// nothing.
type sourceFiles struct {
	sessionDir string
	log        *slog.Logger

	mu      sync.Mutex
	indexes map[string]*mkv.Clusters // by plan path; nil: not indexable
	frames  map[frameQuery]frameAnswer
	audios  map[audioQuery]audioStretch
}

type frameQuery struct {
	path string
	t    float64
}

type frameAnswer struct {
	at float64
	ok bool
}

func newSourceFiles(sessionDir string, log *slog.Logger) *sourceFiles {
	return &sourceFiles{sessionDir: sessionDir, log: log, indexes: map[string]*mkv.Clusters{},
		frames: map[frameQuery]frameAnswer{}, audios: map[audioQuery]audioStretch{}}
}

// open opens the plan's file path with its cluster index, or returns a nil
// index when it cannot be read so; f.mu is held. The caller closes the
// file.
func (f *sourceFiles) open(path string) (*os.File, *mkv.Clusters) {
	x, seen := f.indexes[path]
	if seen && x == nil {
		return nil, nil
	}
	file, err := os.Open(sessionFile(f.sessionDir, path))
	if err != nil {
		return nil, nil
	}
	if !seen {
		if x, err = mkv.IndexClusters(file); err != nil {
			f.log.Debug("render: file not indexed", "file", path, "err", err)
			x = nil
		}
		f.indexes[path] = x
	}
	if x == nil {
		file.Close()
		return nil, nil
	}
	return file, x
}

// before returns the file time (seconds) of the last frame of the plan's
// video file path at or before file time t, and false when it cannot tell
// (Settings.lastFrame). A piece drawn from the middle of its file, at the
// start of a window or of a scene (a join, a leave, a new speaker), must
// show the frame playing there, which a screen share or a stalled camera
// may have sent seconds before; the piece's stretch of its file reaches
// back only a frame otherwise, and the tile would be empty until the next
// frame (or, at the end of a file, to the end of the piece).
func (f *sourceFiles) before(path string, t float64) (float64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := frameQuery{path, t}
	a, done := f.frames[q]
	if !done {
		a.at, a.ok = f.frameBefore(path, t)
		f.frames[q] = a
	}
	return a.at, a.ok
}

// frameBefore is before, read from the file; f.mu is held.
func (f *sourceFiles) frameBefore(path string, t float64) (float64, bool) {
	file, x := f.open(path)
	if x == nil {
		return 0, false
	}
	defer file.Close()
	at, ok, err := x.FrameBefore(file, time.Duration(t*float64(time.Second)))
	if err != nil {
		f.log.Debug("render: frame times not read", "file", path, "err", err)
		return 0, false
	}
	return at.Seconds(), ok
}
