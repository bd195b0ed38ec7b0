//go:build !linux

package storagetest

import "testing"

// dataDir is a new folder for the server's buckets, removed when the test ends.
func dataDir(t testing.TB) string { return t.TempDir() }
