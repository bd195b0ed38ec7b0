package postcall

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/timeline"
)

// ErrNotComplete is returned (wrapped) for a session whose manifest is not in storage: its upload
// has not finished (the manifest goes last).
var ErrNotComplete = errors.New("session is not completely stored (no manifest)")

// Progress is told how many bytes of a transfer are done, out of total (-1 if unknown).
type Progress func(done, total int64)

// ReadManifest reads a stored session's manifest.
func ReadManifest(ctx context.Context, store storage.Client, room, session string) (*timeline.Manifest, error) {
	key := storage.ManifestKey(room, session)
	r, err := store.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("postcall: %s/%s in %s: %w", room, session, store, ErrNotComplete)
	}
	if err != nil {
		return nil, fmt.Errorf("postcall: read manifest: %w", err)
	}
	defer func() { _ = r.Close() }()
	b, err := io.ReadAll(io.LimitReader(r, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("postcall: read %s: %w", key, err)
	}
	m, err := timeline.ParseManifest(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("postcall: %s: %w", key, err)
	}
	return m, nil
}

// Download copies the object at key to the file path (its folder is created), checking the copy's
// size and SHA-256 against what the store reports, and returns what it stored. The file appears
// whole or not at all (a temporary file is renamed). A file already at path with the object's size
// and SHA-256 is not downloaded again.
func Download(ctx context.Context, store storage.Client, key, path string, progress Progress) (StoredFile, error) {
	obj, err := store.Stat(ctx, key)
	if err != nil {
		return StoredFile{}, fmt.Errorf("postcall: download %s: %w", key, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() == obj.Size && obj.SHA256 != "" {
		if sum, err := hashFile(ctx, path); err == nil && sum == obj.SHA256 {
			if progress != nil {
				progress(obj.Size, obj.Size)
			}
			return StoredFile{Key: key, Size: obj.Size, SHA256: sum}, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return StoredFile{}, fmt.Errorf("postcall: download %s: %w", key, err)
	}
	r, err := store.Get(ctx, key)
	if err != nil {
		return StoredFile{}, fmt.Errorf("postcall: download %s: %w", key, err)
	}
	defer func() { _ = r.Close() }()
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".part-*")
	if err != nil {
		return StoredFile{}, fmt.Errorf("postcall: download %s: %w", key, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	h := sha256.New()
	var src io.Reader = ctxReader{ctx, r}
	if progress != nil {
		src = &progressReader{r: src, total: obj.Size, fn: progress}
	}
	n, err := io.Copy(io.MultiWriter(tmp, h), src)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return StoredFile{}, fmt.Errorf("postcall: download %s: %w", key, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if n != obj.Size || (obj.SHA256 != "" && sum != obj.SHA256) {
		return StoredFile{}, fmt.Errorf("postcall: download %s: %w: got %d bytes with SHA-256 %s, the store has %d bytes with %q",
			key, storage.ErrChecksumMismatch, n, sum, obj.Size, obj.SHA256)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return StoredFile{}, fmt.Errorf("postcall: download %s: %w", key, err)
	}
	return StoredFile{Key: key, Size: n, SHA256: sum}, nil
}

// FetchSession copies a stored session into dir as it was recorded (manifest.json, and the track
// files at the manifest's paths), for a renderer, and returns its manifest.
func FetchSession(ctx context.Context, store storage.Client, room, session, dir string) (*timeline.Manifest, error) {
	m, err := ReadManifest(ctx, store, room, session)
	if err != nil {
		return nil, err
	}
	for _, rel := range SegmentPaths(m) {
		if err := storage.ValidateKey(rel); err != nil {
			return nil, permanent(fmt.Errorf("postcall: manifest of %s/%s: segment path: %w", room, session, err))
		}
		if _, err := Download(ctx, store, storage.SessionPrefix(room, session)+rel, filepath.Join(dir, filepath.FromSlash(rel)), nil); err != nil {
			return nil, err
		}
	}
	if _, err := Download(ctx, store, storage.ManifestKey(room, session), filepath.Join(dir, capture.ManifestName), nil); err != nil {
		return nil, err
	}
	return m, nil
}

// progressReader reports the bytes read through it.
type progressReader struct {
	r     io.Reader
	n     int64
	total int64
	fn    Progress
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.fn != nil && (n > 0 || errors.Is(err, io.EOF)) {
		p.fn(p.n, p.total)
	}
	return n, err
}

// removeAll removes a folder, ignoring a missing one.
func removeAll(dir string) error {
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
