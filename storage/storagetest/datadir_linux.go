package storagetest

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// dataDir is a new folder for the server's buckets: in memory (/dev/shm) when it takes extended
// attributes, which versitygw needs, so that the tests' uploads do not load the disk; else in the
// test's temporary folder. It is removed when the test ends.
func dataDir(t testing.TB) string {
	if dir, err := os.MkdirTemp("/dev/shm", "tapedeck-versitygw-"); err == nil {
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		if unix.Setxattr(dir, "user.tapedeck.probe", []byte("1"), 0) == nil {
			return dir
		}
	}
	return t.TempDir()
}
