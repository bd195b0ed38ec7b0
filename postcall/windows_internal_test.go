package postcall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/storage/storagetest"
)

// TestWindowsTravel: the windows kept in a render's reuse folder go to the
// store as one object and come back into another node's folder: every
// window's files but the audio mixes, byte for byte; windows the folder
// has already are left as they are; a corrupted object adds nothing and
// leaves nothing behind. On a local folder and on S3 (versitygw).
func TestWindowsTravel(t *testing.T) {
	gw := storagetest.StartVersityGW(t)
	stores := map[string]storage.Client{
		"local": func() storage.Client {
			c, err := storage.OpenLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return c
		}(),
		"s3": gw.Open(t, "windows", "prod", storage.Options{}),
	}
	for name, store := range stores {
		t.Run(name, func(t *testing.T) { testWindowsTravel(t, store) })
	}
}

func testWindowsTravel(t *testing.T, store storage.Client) {
	ctx := t.Context()
	src := t.TempDir()
	// Three windows as the render keeps them, a folder being written, and
	// a stray file.
	content := map[string][]byte{
		"aaaa/video-mp4-360p-000.mp4":      bytes.Repeat([]byte("v"), 70_000),
		"bbbb/mix-000.wav":                 bytes.Repeat([]byte("w"), 90_000),
		"bbbb/mix-000.wav.loudness.json":   []byte(`{"samples":96000}`),
		"cccc/aac-000.adts":                bytes.Repeat([]byte("a"), 511),
		".keep-123/video-mp4-360p-001.mp4": []byte("half"),
	}
	for rel, b := range content {
		path := filepath.Join(src, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "stray"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := keptWindows(src)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(files), 3; got != want {
		t.Fatalf("%d files travel (%v), want %d: the mix and the folder being written stay", got, files, want)
	}
	key := windowsKey("room", "s1", "default", 2)
	size, err := putWindows(ctx, store, key, src, files)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := store.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size != size || size != tarSize(files) {
		t.Errorf("stored %d bytes, put reported %d, the archive should be %d", obj.Size, size, tarSize(files))
	}

	// Into another node's empty folder: every window but the mix.
	dst := filepath.Join(t.TempDir(), ".reuse-default")
	n, err := readWindows(ctx, store, key, dst)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("%d windows added, want 3", n)
	}
	for rel, b := range content {
		got, err := os.ReadFile(filepath.Join(dst, filepath.FromSlash(rel)))
		switch {
		case strings.HasSuffix(rel, ".wav") || strings.HasPrefix(rel, "."):
			if err == nil {
				t.Errorf("%s travelled", rel)
			}
		case err != nil:
			t.Errorf("%s did not travel: %v", rel, err)
		case !bytes.Equal(got, b):
			t.Errorf("%s: %d bytes arrived, differ from the %d kept", rel, len(got), len(b))
		}
	}
	if left := leftovers(t, dst); len(left) != 0 {
		t.Errorf("left in the folder: %v", left)
	}

	// Into a folder that has one of the windows already: that one is left
	// as it is.
	dst2 := t.TempDir()
	mine := []byte("drawn here")
	if err := os.MkdirAll(filepath.Join(dst2, "aaaa"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst2, "aaaa", "video-mp4-360p-000.mp4"), mine, 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := readWindows(ctx, store, key, dst2); err != nil || n != 2 {
		t.Errorf("into a folder with one window: %d added (%v), want 2", n, err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst2, "aaaa", "video-mp4-360p-000.mp4")); !bytes.Equal(got, mine) {
		t.Errorf("a window kept here was replaced")
	}

	// A corrupted read adds nothing.
	dst3 := t.TempDir()
	n, err = readWindows(ctx, flipStore{store}, key, dst3)
	if !errors.Is(err, storage.ErrChecksumMismatch) || n != 0 {
		t.Errorf("corrupted object: %d added, %v; want none and a checksum mismatch", n, err)
	}
	if left := leftovers(t, dst3); len(left) != 0 {
		t.Errorf("a corrupted object left %v", left)
	}

	// A cancelled read adds nothing either.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	dst4 := t.TempDir()
	if n, err := readWindows(cctx, store, key, dst4); err == nil || n != 0 {
		t.Errorf("cancelled read: %d added, %v; want none and an error", n, err)
	}
	if left := leftovers(t, dst4); len(left) != 0 {
		t.Errorf("a cancelled read left %v", left)
	}
}

// leftovers lists what is in dir but windows: folders being written.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || !e.IsDir() {
			left = append(left, e.Name())
		}
	}
	return slices.Clip(left)
}

// flipStore is a store whose reads come back with one byte changed, as a
// bad disk or network would return them.
type flipStore struct{ storage.Client }

func (f flipStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := f.Client.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(r)
	_ = r.Close()
	if err != nil {
		return nil, err
	}
	b[1000] ^= 0xff // in the first window's file
	return io.NopCloser(bytes.NewReader(b)), nil
}

// BenchmarkWindowsTravel: what storing and taking the windows of a
// 30-minute call adds to its post-call job in a cluster, through versitygw
// on loopback: 180 windows of 10 s, each a 2.5 MB video window (2 Mbit/s,
// about what a 720p30 veryfast composite of four people takes), its
// 160 KB AAC window and its loudness summary.
func BenchmarkWindowsTravel(b *testing.B) {
	gw := storagetest.StartVersityGW(b)
	store := gw.Open(b, "windows", "bench", storage.Options{})
	src := b.TempDir()
	chunk := make([]byte, 2_500_000)
	for i := range chunk {
		chunk[i] = byte(i*7919 + i>>8)
	}
	const windows = 180
	for i := range windows {
		for _, f := range []struct {
			name string
			size int
		}{{"video-mp4-720p-%03d.mp4", 2_500_000}, {"aac-%03d.adts", 160_000}, {"mix-%03d.wav.loudness.json", 900}} {
			dir := filepath.Join(src, fmt.Sprintf("%s-%03d", f.name[:3], i))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf(f.name, i)), chunk[:f.size], 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	files, err := keptWindows(src)
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	var put, read time.Duration
	var size int64
	for b.Loop() {
		start := time.Now()
		size, err = putWindows(ctx, store, "r/s/windows/default/part-1.tar", src, files)
		if err != nil {
			b.Fatal(err)
		}
		put += time.Since(start)
		dst := b.TempDir()
		start = time.Now()
		n, err := readWindows(ctx, store, "r/s/windows/default/part-1.tar", dst)
		if err != nil || n != 3*windows {
			b.Fatalf("read %d windows (%v), want %d", n, err, 3*windows)
		}
		read += time.Since(start)
		if err := os.RemoveAll(dst); err != nil {
			b.Fatal(err)
		}
	}
	mb := float64(size) / 1e6
	b.ReportMetric(mb, "MB")
	b.ReportMetric(put.Seconds()/float64(b.N), "s/put")
	b.ReportMetric(read.Seconds()/float64(b.N), "s/read")
	fmt.Printf("windows of a 30-minute call: %.0f MB in one tar; stored in %.1f s (%.0f MB/s), taken in %.1f s (%.0f MB/s) through versitygw on loopback\n",
		mb, put.Seconds()/float64(b.N), mb*float64(b.N)/put.Seconds(), read.Seconds()/float64(b.N), mb*float64(b.N)/read.Seconds())
}
