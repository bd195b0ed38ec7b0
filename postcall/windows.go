package postcall

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/tapedeck/tapedeck/storage"
)

// Windows rendered during a call, for a render on another node
//
// The recording node renders a call in windows while it is recorded
// (package prerender), into the folder where the post-call render of the
// session keeps and takes finished windows: ReuseDir of the render's output
// folder, one sub-folder per window named by its reuse key. In a cluster
// the render stage runs on whichever node takes the job, so with
// Config.StoreWindows stage 1 also stores each render's kept windows, as one
// tar object under {room}/{session}/windows/{render}/ per part of the session
// (one object, so that a long call's hundreds of windows cost one request
// each way; in a cluster every node's part is stored apart); stage 2 reads
// them into its own folder, taking the windows that folder lacks, and
// deletes the objects once the job is done. The audio mixes (float WAVs,
// 23 MB a minute) stay behind: their loudness summaries travel, and the
// render draws a mix again only for an encode that needs it. Windows are
// only ever an optimisation: when they cannot be stored or read, the render
// draws them.

// OutDir is the folder the post-call render of render for a session writes
// its files to, under the work folder workDir.
func OutDir(workDir, room, session, render string) string {
	return filepath.Join(workDir, room, session, "out", render)
}

// ReuseDir is the folder where the render into outDir keeps its finished
// windows and takes those kept earlier (render.Options.Reuse).
func ReuseDir(outDir string) string {
	return filepath.Join(filepath.Dir(outDir), ".reuse-"+filepath.Base(outDir))
}

// WindowsPrefix is the prefix of a session's stored windows.
func WindowsPrefix(room, session string) string {
	return storage.SessionPrefix(room, session) + "windows/"
}

// windowsKey is the object holding the windows of one render that the
// node recording part (0: the whole session) kept.
func windowsKey(room, session, render string, part int) string {
	name := "session"
	if part > 0 {
		name = fmt.Sprintf("part-%d", part)
	}
	return WindowsPrefix(room, session) + render + "/" + name + ".tar"
}

// windowFile is a file of a kept window: the window's folder name (its key)
// and the file's name in it.
type windowFile struct {
	key, name string
	size      int64
}

// keptWindows lists the files of the windows kept in dir that travel: every
// window folder's regular files but the audio mixes. Folders being written
// (".keep-…") are left out.
func keptWindows(dir string) ([]windowFile, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var files []windowFile
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		inner, err := os.ReadDir(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		for _, f := range inner {
			if !f.Type().IsRegular() || strings.HasSuffix(f.Name(), ".wav") || strings.HasPrefix(f.Name(), ".") {
				continue
			}
			info, err := f.Info()
			if err != nil {
				return nil, err
			}
			files = append(files, windowFile{key: e.Name(), name: f.Name(), size: info.Size()})
		}
	}
	return files, nil
}

// tarSize is the size of the USTAR archive of files: a 512-byte header and
// the content padded to 512 bytes for each, two zero blocks at the end.
func tarSize(files []windowFile) int64 {
	n := int64(1024)
	for _, f := range files {
		n += 512 + (f.size+511)/512*512
	}
	return n
}

// storeWindows stores the windows kept for each render of j on this node,
// which recorded part of the session (0: all of it), if Config.StoreWindows
// says so (stage 1). A window that cannot be stored is only drawn again by
// the render: failures are logged, and only the job's end (ctx) is
// returned.
func (p *Pipeline) storeWindows(ctx context.Context, j Job, part int, log *slog.Logger) error {
	if !p.cfg.StoreWindows {
		return nil
	}
	for _, spec := range j.Renders {
		if spec.Export != nil {
			continue
		}
		dir := ReuseDir(OutDir(p.cfg.WorkDir, j.Room, j.Session, spec.Name))
		files, err := keptWindows(dir)
		if err != nil {
			log.Warn("the windows rendered during the call cannot be listed; the render draws them again", "render", spec.Name, "err", err)
			continue
		}
		if len(files) == 0 {
			continue
		}
		start := time.Now()
		key := windowsKey(j.Room, j.Session, spec.Name, part)
		size, err := putWindows(ctx, p.store, key, dir, files)
		if ctx.Err() != nil {
			return fmt.Errorf("postcall: storing the windows of %s: %w", j.ID(), ctx.Err())
		}
		if err != nil {
			log.Warn("the windows rendered during the call are not stored; a render on another node draws them again",
				"render", spec.Name, "key", key, "err", err)
			continue
		}
		keys := map[string]bool{}
		for _, f := range files {
			keys[f.key] = true
		}
		log.Info("windows rendered during the call stored", "render", spec.Name, "key", key, "windows", len(keys), "files", len(files), "bytes", size,
			"took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// putWindows stores files (of dir) as one tar object under key.
func putWindows(ctx context.Context, store storage.Client, key, dir string, files []windowFile) (int64, error) {
	size := tarSize(files)
	pr, pw := io.Pipe()
	written := make(chan error, 1)
	go func() {
		err := writeWindowsTar(ctx, pw, dir, files)
		_ = pw.CloseWithError(err)
		written <- err
	}()
	h := sha256.New()
	info, err := store.Put(ctx, key, io.TeeReader(pr, h), size)
	_ = pr.CloseWithError(errors.New("postcall: the store stopped reading"))
	if werr := <-written; err == nil && werr != nil {
		err = werr
	}
	if err != nil {
		return 0, err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); info.SHA256 != "" && info.SHA256 != sum {
		return 0, fmt.Errorf("%w: stored %s, sent %s", storage.ErrChecksumMismatch, info.SHA256, sum)
	}
	return size, nil
}

// writeWindowsTar writes the USTAR archive of files (of dir), each named
// "{key}/{name}".
func writeWindowsTar(ctx context.Context, w io.Writer, dir string, files []windowFile) error {
	tw := tar.NewWriter(w)
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.key + "/" + f.name, Size: f.size, Mode: 0o644,
			ModTime: time.Unix(0, 0), Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("window %s: %w", hdr.Name, err)
		}
		in, err := os.Open(filepath.Join(dir, f.key, f.name))
		if err != nil {
			return fmt.Errorf("window %s: %w", hdr.Name, err)
		}
		_, err = io.Copy(tw, in)
		_ = in.Close()
		if err != nil {
			return fmt.Errorf("window %s: %w", hdr.Name, err)
		}
	}
	return tw.Close()
}

// fetchWindows puts into dir (the render's ReuseDir) the stored windows of
// render that dir lacks (stage 2). Each
// window appears whole or not at all, and only once the whole object that
// holds it has been read and matched its size and SHA-256. No stored
// windows is no error (the call was rendered on this node, or not during
// the call); other failures are logged, and only the job's end (ctx) is
// returned.
func (p *Pipeline) fetchWindows(ctx context.Context, j Job, render, dir string, log *slog.Logger) error {
	objs, err := p.store.List(ctx, WindowsPrefix(j.Room, j.Session)+render+"/")
	if ctx.Err() != nil {
		return fmt.Errorf("postcall: reading the windows of %s: %w", j.ID(), ctx.Err())
	}
	if err != nil {
		log.Warn("the windows rendered during the call cannot be listed; the render draws them", "render", render, "err", err)
		return nil
	}
	for _, o := range objs {
		start := time.Now()
		n, err := readWindows(ctx, p.store, o.Key, dir)
		if ctx.Err() != nil {
			return fmt.Errorf("postcall: reading the windows of %s: %w", j.ID(), ctx.Err())
		}
		if err != nil {
			log.Warn("the windows rendered during the call cannot be read; the render draws them", "render", render, "key", o.Key, "err", err)
			continue
		}
		log.Info("windows rendered during the call taken from the store", "render", render, "key", o.Key, "windows", n,
			"took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// readWindows adds to dir the windows in the tar object at key that dir
// lacks, and returns how many; none unless the whole object matched its
// size and SHA-256.
func readWindows(ctx context.Context, store storage.Client, key, dir string) (int, error) {
	obj, err := store.Stat(ctx, key)
	if err != nil {
		return 0, err
	}
	r, err := store.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	defer func() { _ = r.Close() }()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	tmp, err := os.MkdirTemp(dir, ".fetch-")
	if err != nil {
		return 0, err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	h := sha256.New()
	counted := &progressReader{r: io.TeeReader(ctxReader{ctx, r}, h)}
	tr := tar.NewReader(counted)
	var keys []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %w", key, err)
		}
		win, name := path.Split(hdr.Name)
		win = strings.TrimSuffix(win, "/")
		if hdr.Typeflag != tar.TypeReg || win == "" || strings.Contains(win, "/") || !filepath.IsLocal(win) ||
			!filepath.IsLocal(name) || strings.HasPrefix(win, ".") {
			return 0, fmt.Errorf("%s: unexpected entry %q", key, hdr.Name)
		}
		if _, err := os.Stat(filepath.Join(dir, win)); err == nil {
			continue // kept here already
		}
		if err := os.MkdirAll(filepath.Join(tmp, win), 0o755); err != nil {
			return 0, err
		}
		if len(keys) == 0 || keys[len(keys)-1] != win {
			keys = append(keys, win)
		}
		out, err := os.Create(filepath.Join(tmp, win, name))
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %s: %w", key, hdr.Name, err)
		}
	}
	// The rest of the object (the archive's padding), then its check.
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if counted.n != obj.Size || (obj.SHA256 != "" && sum != obj.SHA256) {
		return 0, fmt.Errorf("%s: %w: read %d bytes with SHA-256 %s, the store has %d bytes with %q",
			key, storage.ErrChecksumMismatch, counted.n, sum, obj.Size, obj.SHA256)
	}
	added := 0
	for _, win := range keys {
		if err := os.Rename(filepath.Join(tmp, win), filepath.Join(dir, win)); err != nil {
			if _, serr := os.Stat(filepath.Join(dir, win)); serr == nil {
				continue // kept here meanwhile
			}
			return added, err
		}
		added++
	}
	return added, nil
}

// dropWindows deletes a session's stored windows once its renders are
// done. A failure leaves them in the store, and is logged.
func (p *Pipeline) dropWindows(ctx context.Context, j Job, log *slog.Logger) {
	objs, err := p.store.List(ctx, WindowsPrefix(j.Room, j.Session))
	if err != nil {
		log.Warn("the stored windows of the call are not deleted", "err", err)
		return
	}
	for _, o := range objs {
		if err := p.store.Delete(ctx, o.Key); err != nil {
			log.Warn("the stored windows of the call are not deleted", "key", o.Key, "err", err)
			return
		}
	}
}
