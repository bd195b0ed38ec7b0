package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// tempPrefix starts the name of the local folder's temporary files; keys may not use it.
const tempPrefix = ".tapedeck-tmp-"

// Local is a Client on a local folder: an object is a file at DIR/key.
//
// A Put writes a temporary file in the object's folder, fsyncs it, reads it back to check its SHA-256,
// then renames it over the object and fsyncs the folder: readers see the old or the new object, never a
// part. The SHA-256 is kept in the extended attribute user.tapedeck.sha256 (with the size and mtime it
// belongs to) where the file system allows, and computed by reading the file otherwise. Empty folders
// left by Delete are removed. Unlike S3, "a" and "a/b" cannot both be objects.
type Local struct {
	root string // absolute, cleaned
}

var _ Client = (*Local)(nil)

// OpenLocal returns a Client on the folder dir, creating it if missing.
func OpenLocal(dir string) (*Local, error) {
	return openLocal(dir)
}

func openLocal(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: folder %q: %w", dir, err)
	}
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("storage: %s is not a folder", abs)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("storage: create folder: %w", err)
	}
	return &Local{root: abs}, nil
}

// String returns "file:///abs/dir".
func (l *Local) String() string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(l.root)}).String()
}

// Dir is the folder's absolute path.
func (l *Local) Dir() string { return l.root }

func (l *Local) path(key string) string {
	return filepath.Join(l.root, filepath.FromSlash(key))
}

func (l *Local) where(key string) string {
	return l.String() + "/" + key
}

// Put implements Client.
func (l *Local) Put(ctx context.Context, key string, r io.Reader, size int64) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("storage: put: %w", err)
	}
	info, err := l.put(ctx, key, r, size)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("storage: put %s: %w", l.where(key), err)
	}
	return info, nil
}

func (l *Local) put(ctx context.Context, key string, r io.Reader, size int64) (info ObjectInfo, err error) {
	if size < -1 {
		return ObjectInfo{}, fmt.Errorf("size %d is invalid (want -1 for unknown, or >= 0)", size)
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	dst := l.path(key)
	dir := filepath.Dir(dst)
	tmp, err := l.createTemp(dir)
	if err != nil {
		return ObjectInfo{}, err
	}
	committed := false
	defer func() {
		if !committed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()

	var src io.Reader = ctxReader{ctx: ctx, r: r}
	if size >= 0 {
		src = io.LimitReader(src, size+1) // one more byte tells a body longer than size
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), src)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("write: %w", err)
	}
	if size >= 0 && n != size {
		return ObjectInfo{}, sizeMismatch(n, size)
	}
	if err := tmp.Sync(); err != nil {
		return ObjectInfo{}, fmt.Errorf("sync: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))

	// Read back what reached the file before it replaces the object.
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return ObjectInfo{}, fmt.Errorf("read back: %w", err)
	}
	back, backN, err := hashReader(ctx, tmp)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("read back: %w", err)
	}
	if backN != n || back != sum {
		return ObjectInfo{}, fmt.Errorf("read back: file has %d bytes with SHA-256 %s, wrote %d bytes with %s",
			backN, back, n, sum)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return ObjectInfo{}, fmt.Errorf("chmod: %w", err)
	}
	fi, err := tmp.Stat()
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stat: %w", err)
	}
	// Best effort: without extended attributes, Stat computes the checksum.
	_ = setSumAttr(tmp, sumRecord{size: n, mtime: fi.ModTime().UnixNano(), sha256: sum})
	if err := tmp.Close(); err != nil {
		return ObjectInfo{}, fmt.Errorf("close: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return ObjectInfo{}, fmt.Errorf("rename: %w", err)
	}
	committed = true
	if err := syncDir(dir); err != nil {
		return ObjectInfo{}, fmt.Errorf("sync folder: %w", err)
	}
	return ObjectInfo{Key: key, Size: n, ModTime: fi.ModTime(), SHA256: sum}, nil
}

// createTemp creates a temporary file in dir, creating dir first. A concurrent Delete may remove an
// empty dir between the two steps, so it tries again.
func (l *Local) createTemp(dir string) (*os.File, error) {
	var err error
	for range 5 {
		if err = os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create folder: %w", err)
		}
		var f *os.File
		f, err = os.CreateTemp(dir, tempPrefix+"*")
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	return nil, fmt.Errorf("create temporary file: %w", err)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func sizeMismatch(got, want int64) error {
	if got > want {
		return fmt.Errorf("the reader has more than the %d bytes announced", want)
	}
	return fmt.Errorf("the reader ended after %d of the %d bytes announced", got, want)
}

// hashReader returns the hex SHA-256 of r's bytes and their count.
func hashReader(ctx context.Context, r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx: ctx, r: r})
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// open opens the object file; a missing key or a folder is ErrNotFound.
func (l *Local) open(key string) (*os.File, fs.FileInfo, error) {
	f, err := os.Open(l.path(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil, nil, ErrNotFound
		}
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, nil, ErrNotFound
	}
	return f, fi, nil
}

// Get implements Client.
func (l *Local) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, fmt.Errorf("storage: get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("storage: get %s: %w", l.where(key), err)
	}
	f, _, err := l.open(key)
	if err != nil {
		return nil, fmt.Errorf("storage: get %s: %w", l.where(key), err)
	}
	return f, nil
}

// Stat implements Client. The SHA-256 comes from the extended attribute written by Put when it still
// matches the file's size and mtime, and is computed (and stored) otherwise.
func (l *Local) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("storage: stat: %w", err)
	}
	info, err := l.stat(ctx, key)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("storage: stat %s: %w", l.where(key), err)
	}
	return info, nil
}

func (l *Local) stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	f, fi, err := l.open(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	defer func() { _ = f.Close() }()
	info := ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}
	if rec, err := getSumAttr(f); err == nil && rec.size == fi.Size() && rec.mtime == fi.ModTime().UnixNano() {
		info.SHA256 = rec.sha256
		return info, nil
	}
	sum, n, err := hashReader(ctx, f)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("checksum: %w", err)
	}
	if n != fi.Size() {
		return ObjectInfo{}, fmt.Errorf("checksum: file changed while reading (%d of %d bytes)", n, fi.Size())
	}
	info.SHA256 = sum
	_ = setSumAttr(f, sumRecord{size: n, mtime: fi.ModTime().UnixNano(), sha256: sum})
	return info, nil
}

// List implements Client.
func (l *Local) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("storage: list: %w", err)
	}
	list, err := l.list(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("storage: list %s: %w", l.where(prefix), err)
	}
	return list, nil
}

func (l *Local) list(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	start := l.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = l.path(prefix[:i])
	}
	list := []ObjectInfo{}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && (errors.Is(err, fs.ErrNotExist) || isNotDir(err)) {
				return fs.SkipAll
			}
			if errors.Is(err, fs.ErrNotExist) { // removed while walking
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(l.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if p == start || p == l.root {
				return nil
			}
			// Only descend where keys can still start with prefix.
			if dirKey := key + "/"; !strings.HasPrefix(dirKey, prefix) && !strings.HasPrefix(prefix, dirKey) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), tempPrefix) || !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		list = append(list, ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Key < list[j].Key })
	return list, nil
}

// Delete implements Client. Folders left empty are removed, up to the root.
func (l *Local) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("storage: delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: delete %s: %w", l.where(key), err)
	}
	p := l.path(key)
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil
		}
		return fmt.Errorf("storage: delete %s: %w", l.where(key), err)
	}
	if fi.IsDir() { // not an object
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: delete %s: %w", l.where(key), err)
	}
	for dir := filepath.Dir(p); dir != l.root && strings.HasPrefix(dir, l.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil { // not empty (or gone): stop
			break
		}
	}
	return nil
}

// Link implements Client: a file:// URL of the object's file. ttl is checked but a file URL does not
// expire.
func (l *Local) Link(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", fmt.Errorf("storage: link: %w", err)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("storage: link %s: ttl %v is not positive", l.where(key), ttl)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("storage: link %s: %w", l.where(key), err)
	}
	f, _, err := l.open(key)
	if err != nil {
		return "", fmt.Errorf("storage: link %s: %w", l.where(key), err)
	}
	_ = f.Close()
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(l.path(key))}).String(), nil
}

// sumRecord is what the checksum attribute holds: the SHA-256 of the file when it had this size and
// mtime.
type sumRecord struct {
	size   int64
	mtime  int64 // Unix ns
	sha256 string
}

const sumAttr = "user.tapedeck.sha256"

func (r sumRecord) marshal() []byte {
	return fmt.Appendf(nil, "v1 %d %d %s", r.size, r.mtime, r.sha256)
}

func parseSumRecord(b []byte) (sumRecord, error) {
	var r sumRecord
	if _, err := fmt.Sscanf(string(b), "v1 %d %d %s", &r.size, &r.mtime, &r.sha256); err != nil {
		return sumRecord{}, err
	}
	raw, err := hex.DecodeString(r.sha256)
	if err != nil || len(raw) != sha256.Size || !bytes.Equal([]byte(hex.EncodeToString(raw)), []byte(r.sha256)) {
		return sumRecord{}, errors.New("bad checksum attribute")
	}
	return r, nil
}
