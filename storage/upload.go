package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrChecksumMismatch is returned (wrapped) by UploadFile when the stored object's SHA-256 is not the
// local file's, or cannot be confirmed.
var ErrChecksumMismatch = errors.New("checksum mismatch")

// UploadFile uploads the file at path to key and checks that the stored object is the file: it hashes
// the file (SHA-256), uploads it with Put (S3 sends the SHA-256 of each part, which the server checks),
// requires Put's confirmed SHA-256 to match, then Stats the object and requires the same size and
// SHA-256. Only then, with removeAfter, it deletes the file. On any error the file is left in place.
func UploadFile(ctx context.Context, c Client, key, path string, removeAfter bool) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("storage: upload %s: %w", path, err)
	}
	info, err := uploadFile(ctx, c, key, path, removeAfter)
	if err != nil {
		return info, fmt.Errorf("storage: upload %s to %s/%s: %w", path, c, key, err)
	}
	return info, nil
}

func uploadFile(ctx context.Context, c Client, key, path string, removeAfter bool) (ObjectInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return ObjectInfo{}, err
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return ObjectInfo{}, err
	}
	if !fi.Mode().IsRegular() {
		return ObjectInfo{}, fmt.Errorf("%s is not a regular file", path)
	}
	want, n, err := hashReader(ctx, f)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("checksum: %w", err)
	}
	if n != fi.Size() {
		return ObjectInfo{}, fmt.Errorf("file changed while reading it (%d bytes, then %d)", fi.Size(), n)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return ObjectInfo{}, err
	}
	put, err := c.Put(ctx, key, f, n)
	if err != nil {
		return ObjectInfo{}, err
	}
	if put.SHA256 != want {
		return ObjectInfo{}, fmt.Errorf("%w: file has SHA-256 %s, the upload confirmed %q", ErrChecksumMismatch, want, put.SHA256)
	}
	got, err := c.Stat(ctx, key)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("check stored object: %w", err)
	}
	if got.Size != n || got.SHA256 != want {
		return ObjectInfo{}, fmt.Errorf("%w: file has %d bytes with SHA-256 %s, the stored object %d bytes with %q",
			ErrChecksumMismatch, n, want, got.Size, got.SHA256)
	}
	if removeAfter {
		_ = f.Close()
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return got, fmt.Errorf("uploaded, but removing the local file: %w", err)
		}
	}
	return got, nil
}
