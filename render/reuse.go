package render

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tapedeck/tapedeck/capture/mkv"
	"github.com/tapedeck/tapedeck/timeline"
)

// Reusing finished video jobs (Options.Reuse)
//
// A video job is one window of the output's frame grid, encoded with closed
// GOPs, that the mux concatenates with a stream copy: the same job run again
// writes the same frames. The audio is mixed in the same windows, as float
// WAVs joined sample for sample (audioWindows in audio.go), and its AAC
// encoded in windows whose packets are joined (aacwindows.go; their keys
// hold the keys of the audio windows they read, and the gain). With
// Options.Reuse, each finished job's files are
// kept in that folder under the job's key, and a later render whose job has
// the same key takes them instead of running FFmpeg: a render interrupted
// after some of its windows (a crash, a stop) goes on from there when run
// again, and a render of a session that windows were rendered from while it
// was recorded (package prerender) draws only what those did not.
//
// The key is a SHA-256 of everything the job's output depends on: FFmpeg's
// build (its -version text), the job's arguments and the files it writes for
// itself (filter scripts, text), and the content of every input file it
// reads. Two tolerances make a window rendered during the call match the
// post-call render's:
//
//   - Every render places its video sources on a grid of 1/16 of an output
//     frame (Settings.placeQuantum, videoPlaceSteps), so a video job's own
//     arguments are its key, and a window taken is exactly what the
//     post-call render would draw. An audio window's key is its command with
//     every source's placement rounded to half a millisecond (audioQuantum,
//     snapPlacement).
//     The sync model is refined as sender reports arrive and moves a source
//     by microseconds; a window is rendered again only when one of its
//     sources moves to another cell of the grid or another such step.
//   - A session file (the session's segments, named by their place in the
//     session, so that a copy of the session elsewhere makes the same keys) is
//     identified by its media, not its bytes: a Matroska segment grows at
//     the end while it is recorded and has its header patched when it is
//     closed (mkv.FirstCluster), so its identity is 4 KiB of its clusters, from
//     the first one on (fewer: to its end), which neither changes. Other
//     inputs (images, fonts) are hashed whole.
//
// A changed segment, edit, layout, profile or FFmpeg makes another key.

// snapPlacement returns src, played at speed (its Speed made valid) with
// its FileStart playing at output time at, anchored instead at output time
// from, the start of the stretch it plays in a job (from to from+long
// seconds): the file time playing at from is rounded to a multiple of q
// seconds and the rate so that the end moves by at most q/2. Sources placed
// in the same cells make the same command, hence the same reuse key, and no
// file time of the stretch moves by more than q. The grid is anchored where
// the job starts, not at file time 0 nor where the piece started: a rate
// rounded there would move the stretch by its distance from that anchor
// times the rounding (at 100 ppm, in 10-s jobs on a 1/16-frame grid, 360 ms
// an hour on). At speed 1 the three are the same wherever the anchors lie on
// the grid.
func snapPlacement(src timeline.Source, speed float64, at time.Duration, from, long, q float64) (timeline.Source, time.Duration) {
	fs := src.FileStart + (from-at.Seconds())*speed
	if math.Abs(speed-1) > speedTolerance && long > 0 {
		step := q / long
		speed = math.Round(speed/step) * step
	}
	src.Speed = speed
	src.FileStart = math.Round(fs/q) * q
	return src, time.Duration(math.Round(from * float64(time.Second)))
}

// mediaIdentity is how many bytes of a session segment's clusters identify
// it: compressed media, unique to the recording, and reached within half a
// second even by an Opus track (about 8 KB/s), so that a window drawn during
// the call's first seconds keeps its key.
const mediaIdentity = 4 << 10

// reuseKey is the key of c, or "" when reuse is off or the key cannot be made.
func (r *runner) reuseKey(ctx context.Context, c Command) string {
	if r.reuse == "" {
		return ""
	}
	version, err := r.ffmpegVersion(ctx)
	if err != nil && ctx.Err() != nil {
		return ""
	}
	if err != nil {
		r.log.Warn("render: not reusing video jobs: the FFmpeg build is unknown", "err", err)
		return ""
	}
	h := sha256.New()
	field := func(s string) { fmt.Fprintf(h, "%d:%s\n", len(s), s) }
	field(version)
	for _, a := range c.Args {
		if !filepath.IsAbs(a) {
			field(a)
			continue
		}
		// A file of the session is named by its place in the session, so
		// that a copy of the session elsewhere (the post-call render's
		// fetched copy) makes the same keys.
		inSession := false
		if rel, err := filepath.Rel(r.build.session, a); err == nil && r.build.session != "" && filepath.IsLocal(rel) {
			field("$SESSION/" + filepath.ToSlash(rel))
			inSession = true
		} else {
			field(a)
		}
		sum, err := r.build.fileSum(ctx, a, inSession)
		if err != nil {
			r.log.Warn("render: not reusing a video job: an input cannot be read", "step", c.Name, "input", a, "err", err)
			return ""
		}
		field(sum)
	}
	names := make([]string, 0, len(c.Files))
	for n := range c.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		field(n)
		field(c.Files[n])
	}
	for _, o := range c.Outputs {
		field(o)
	}
	for _, k := range c.inputKeys {
		if k == "" {
			return "" // an input that is not kept under a key
		}
		field(k)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// ffmpegBuild is what the reuse keys of a render share: the first line of
// `ffmpeg -version` (asked once), the session folder, and the SHA-256 of
// every input file read so far.
type ffmpegBuild struct {
	session string

	once sync.Once
	text string
	err  error

	mu   sync.Mutex
	sums map[string]string // by path; "" for a path that is no regular file
}

// fileSum is the SHA-256 of the file at path ("" when it is not a regular
// file: a device, a folder, an argument that only looks like a path); for a
// Matroska file of the session (media), of its first clusters only.
func (b *ffmpegBuild) fileSum(ctx context.Context, path string, media bool) (string, error) {
	b.mu.Lock()
	sum, ok := b.sums[path]
	b.mu.Unlock()
	if ok {
		return sum, nil
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		f, err := os.Open(path)
		if err != nil {
			return "", err
		}
		h := sha256.New()
		var src io.Reader = ctxReader{ctx, f}
		if media {
			if at := mkv.FirstCluster(f); at >= 0 {
				// A file still shorter than that is read to its end: it
				// matches only itself.
				n := min(mediaIdentity, fi.Size()-at)
				fmt.Fprintf(h, "clusters:%d\n", n)
				src = io.NewSectionReader(f, at, n)
			}
		}
		_, err = io.Copy(h, src)
		f.Close()
		if err != nil {
			return "", err
		}
		sum = hex.EncodeToString(h.Sum(nil))
	}
	b.mu.Lock()
	if b.sums == nil {
		b.sums = map[string]string{}
	}
	b.sums[path] = sum
	b.mu.Unlock()
	return sum, nil
}

// ffmpegVersion is FFmpeg's build, for the reuse keys.
func (r *runner) ffmpegVersion(ctx context.Context) (string, error) {
	if r.build == nil {
		return "", errors.New("render: no FFmpeg build recorded")
	}
	b := r.build
	b.once.Do(func() {
		out, err := exec.CommandContext(ctx, r.ffmpeg, "-hide_banner", "-version").Output()
		if err != nil {
			b.err = fmt.Errorf("render: %s -version: %w", r.ffmpeg, err)
			return
		}
		b.text, _, _ = strings.Cut(string(out), "\n")
	})
	return b.text, b.err
}

// takeReused puts the kept outputs of the job with key into the work folder;
// false (and nothing in the work folder) when they are not all there.
func (r *runner) takeReused(ctx context.Context, key string, c Command) bool {
	if key == "" {
		return false
	}
	src := filepath.Join(r.reuse, key)
	for i, out := range c.Outputs {
		if err := copyFile(ctx, filepath.Join(src, filepath.Base(out)), filepath.Join(r.dir, out)); err != nil {
			for _, done := range c.Outputs[:i+1] {
				_ = os.Remove(filepath.Join(r.dir, done))
			}
			return false
		}
	}
	return true
}

// isKept reports whether every output of the job with key is kept.
func (r *runner) isKept(key string, c Command) bool {
	for _, out := range c.Outputs {
		if fi, err := os.Stat(filepath.Join(r.reuse, key, filepath.Base(out))); err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// keepForReuse keeps a finished job's outputs under its key. The folder
// appears whole or not at all (written aside, then renamed); a failure only
// costs the reuse, and is logged.
func (r *runner) keepForReuse(ctx context.Context, key string, c Command) {
	if key == "" {
		return
	}
	if err := r.keep(ctx, key, c); err != nil {
		r.log.Warn("render: a finished video job is not kept for reuse", "step", c.Name, "err", err)
	}
}

func (r *runner) keep(ctx context.Context, key string, c Command) error {
	if err := os.MkdirAll(r.reuse, 0o755); err != nil {
		return err
	}
	final := filepath.Join(r.reuse, key)
	if _, err := os.Stat(final); err == nil {
		return nil // kept by another render of the same job
	}
	tmp, err := os.MkdirTemp(r.reuse, ".keep-")
	if err != nil {
		return err
	}
	for _, out := range c.Outputs {
		if err := copyFile(ctx, filepath.Join(r.dir, out), filepath.Join(tmp, filepath.Base(out))); err != nil {
			_ = os.RemoveAll(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		_ = os.RemoveAll(tmp)
		if _, serr := os.Stat(final); serr == nil {
			return nil // another render kept it first
		}
		return err
	}
	return nil
}
