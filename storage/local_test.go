package storage_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/storage/storagetest"
)

func openLocal(t *testing.T, dir string) storage.Client {
	t.Helper()
	c, err := storage.Open(t.Context(), dir, storage.Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return c
}

func TestLocalSuite(t *testing.T) {
	t.Parallel()
	storagetest.RunClientSuite(t, func(t *testing.T) storage.Client {
		return openLocal(t, "file://"+t.TempDir())
	})
}

func TestLocalPlainPath(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "new", "folder")
	c := openLocal(t, dir)
	if got, want := c.String(), "file://"+dir; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if _, err := c.Put(t.Context(), "a/b", strings.NewReader("hi"), 2); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "hi"; got != want {
		t.Errorf("file holds %q, want %q", got, want)
	}
	// The same folder by URL sees the object.
	c2 := openLocal(t, "file://"+dir)
	if _, err := c2.Stat(t.Context(), "a/b"); err != nil {
		t.Errorf("Stat through file:// URL: %v", err)
	}
}

// A failed Put leaves no temporary file behind, and List never shows one in progress.
func TestLocalNoTempFilesLeft(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := openLocal(t, dir)
	if _, err := c.Put(t.Context(), "x/y", strings.NewReader("short"), 100); err == nil {
		t.Fatal("Put with a short body: no error")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Put(ctx, "x/z", strings.NewReader("abc"), 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a canceled context = %v, want context.Canceled", err)
	}
	var names []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return nil
	})
	if len(names) != 0 {
		t.Errorf("files left after failed Puts: %q", names)
	}
	// A temporary file from a crash is not an object.
	if err := os.WriteFile(filepath.Join(dir, ".tapedeck-tmp-123"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := c.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("List = %v, want nothing", list)
	}
}

// Stat reads the checksum stored by Put, and recomputes it when the file was changed behind its back.
func TestLocalChecksumFollowsFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := openLocal(t, dir)
	if _, err := c.Put(t.Context(), "k", strings.NewReader("first"), 5); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "k"), []byte("changed outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := c.Stat(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.SHA256, storagetest.SHA256([]byte("changed outside")); got != want {
		t.Errorf("Stat.SHA256 = %q, want %q (of the new content)", got, want)
	}
}

func TestLocalOpenErrors(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ url, want string }{
		{"", "empty storage URL"},
		{"file://relative/dir", `"relative" was read as a host name`},
		{"file://", "no folder"},
		{file, "is not a folder"},
		{"ftp://host/dir", `unsupported scheme "ftp"`},
		{"file:///tmp/x?mode=1", "query and fragment are not supported"},
	} {
		_, err := storage.Open(t.Context(), tt.url, storage.Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Open(%q) = %v, want an error containing %q", tt.url, err, tt.want)
		}
	}
}

func TestLocalDeleteKeepsFolders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := openLocal(t, dir)
	for _, k := range []string{"a/b/c", "a/d"} {
		if _, err := c.Put(t.Context(), k, bytes.NewReader([]byte(k)), int64(len(k))); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Delete(t.Context(), "a/b/c"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "b")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty folder a/b left after Delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "d")); err != nil {
		t.Errorf("a/d: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("root removed: %v", err)
	}
}
