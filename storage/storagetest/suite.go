// Package storagetest holds the tests every storage.Client passes (RunClientSuite) and a versitygw S3
// server for tests (StartVersityGW).
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/storage"
)

// PartSize is the part size factories should give S3 clients (Options.PartSize) so that the suite's
// multipart object (MultipartSize bytes) takes three parts.
const PartSize = storage.MinPartSize

// MultipartSize is the size of the suite's multipart-sized object: 2.5 parts.
const MultipartSize = 2*PartSize + PartSize/2

// RunClientSuite runs the behaviour every storage.Client must have. newClient returns a client on an
// empty store (a new folder, or a new prefix); it is called once per subtest.
func RunClientSuite(t *testing.T, newClient func(t *testing.T) storage.Client) {
	tests := []struct {
		name string
		fn   func(t *testing.T, c storage.Client)
	}{
		{"RoundTrip", testRoundTrip},
		{"UnknownSize", testUnknownSize},
		{"Stat", testStat},
		{"NotFound", testNotFound},
		{"List", testList},
		{"Delete", testDelete},
		{"Overwrite", testOverwrite},
		{"Empty", testEmpty},
		{"Multipart", testMultipart},
		{"WrongSize", testWrongSize},
		{"FailedPutKeepsOld", testFailedPutKeepsOld},
		{"Canceled", testCanceled},
		{"Link", testLink},
		{"Concurrent", testConcurrent},
		{"InvalidKeys", testInvalidKeys},
		{"UploadFile", testUploadFile},
		{"UploadFileFailure", testUploadFileFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newClient(t)) })
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// RandomBytes returns n pseudo-random bytes from seed.
func RandomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// SHA256 is the hex SHA-256 of b.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func put(t *testing.T, c storage.Client, key string, data []byte) storage.ObjectInfo {
	t.Helper()
	info, err := c.Put(ctxT(t), key, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
	return info
}

// ReadObject returns the content of the object at key.
func ReadObject(t testing.TB, ctx context.Context, c storage.Client, key string) []byte {
	t.Helper()
	rc, err := c.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer func() { _ = rc.Close() }()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%s): read: %v", key, err)
	}
	return b
}

func checkObject(t *testing.T, c storage.Client, key string, want []byte) {
	t.Helper()
	got := ReadObject(t, ctxT(t), c, key)
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%s): %d bytes with SHA-256 %s, want %d bytes with %s", key, len(got), SHA256(got), len(want), SHA256(want))
	}
	info, err := c.Stat(ctxT(t), key)
	if err != nil {
		t.Fatalf("Stat(%s): %v", key, err)
	}
	if got, want := info.Size, int64(len(want)); got != want {
		t.Errorf("Stat(%s).Size = %d, want %d", key, got, want)
	}
	if got, want := info.SHA256, SHA256(want); got != want {
		t.Errorf("Stat(%s).SHA256 = %q, want %q", key, got, want)
	}
	if got, want := info.Key, key; got != want {
		t.Errorf("Stat(%s).Key = %q, want %q", key, got, want)
	}
}

func testRoundTrip(t *testing.T, c storage.Client) {
	data := RandomBytes(1, 100_000)
	key := "room/session/tracks/alice/audio-t1-000.webm"
	info := put(t, c, key, data)
	if got, want := info.Key, key; got != want {
		t.Errorf("Put: Key = %q, want %q", got, want)
	}
	if got, want := info.Size, int64(len(data)); got != want {
		t.Errorf("Put: Size = %d, want %d", got, want)
	}
	if got, want := info.SHA256, SHA256(data); got != want {
		t.Errorf("Put: SHA256 = %q, want %q", got, want)
	}
	checkObject(t, c, key, data)
	if s := c.String(); s == "" {
		t.Errorf("String() is empty")
	}
}

// onlyReader hides every method but Read (no WriterTo, Seeker, Len…).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func testUnknownSize(t *testing.T, c storage.Client) {
	for _, n := range []int{1, 4096, 300_001} {
		data := RandomBytes(uint64(n), n)
		key := fmt.Sprintf("unknown/%d.bin", n)
		info, err := c.Put(ctxT(t), key, onlyReader{bytes.NewReader(data)}, -1)
		if err != nil {
			t.Fatalf("Put(%s, size -1): %v", key, err)
		}
		if got, want := info.Size, int64(n); got != want {
			t.Errorf("Put(%s): Size = %d, want %d", key, got, want)
		}
		if got, want := info.SHA256, SHA256(data); got != want {
			t.Errorf("Put(%s): SHA256 = %q, want %q", key, got, want)
		}
		checkObject(t, c, key, data)
	}
}

func testStat(t *testing.T, c storage.Client) {
	before := time.Now().Add(-2 * time.Second) // S3 times have second precision
	data := RandomBytes(2, 1234)
	put(t, c, "a/b.json", data)
	after := time.Now().Add(2 * time.Second)
	info, err := c.Stat(ctxT(t), "a/b.json")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.ModTime.Before(before) || info.ModTime.After(after) {
		t.Errorf("Stat: ModTime = %v, want between %v and %v", info.ModTime, before, after)
	}
	checkObject(t, c, "a/b.json", data)
}

func testNotFound(t *testing.T, c storage.Client) {
	ctx := ctxT(t)
	put(t, c, "present/x", []byte("x"))
	for _, key := range []string{"missing", "present/missing", "present/x/below", "present"} {
		if _, err := c.Get(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Get(%s) = %v, want ErrNotFound", key, err)
		}
		if _, err := c.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat(%s) = %v, want ErrNotFound", key, err)
		}
		if _, err := c.Link(ctx, key, time.Minute); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Link(%s) = %v, want ErrNotFound", key, err)
		}
		if err := c.Delete(ctx, key); err != nil {
			t.Errorf("Delete(%s) of a missing key = %v, want nil", key, err)
		}
	}
	checkObject(t, c, "present/x", []byte("x"))
}

func keysOf(list []storage.ObjectInfo) []string {
	keys := []string{}
	for _, o := range list {
		keys = append(keys, o.Key)
	}
	return keys
}

func testList(t *testing.T, c storage.Client) {
	ctx := ctxT(t)
	objects := map[string]int{
		"r1/s1/manifest.json":             10,
		"r1/s1/tracks/alice/audio.webm":   20,
		"r1/s1/tracks/bob/video.webm":     30,
		"r1/s2/manifest.json":             11,
		"r10/s1/manifest.json":            12,
		"r1.x":                            13,
		"r2/s1/renders/grid/out.mp4":      14,
		"r2/s1/renders/grid-2/out.mp4":    15,
		"r2/s1/renders/grid/thumb/01.jpg": 16,
	}
	for key, n := range objects {
		put(t, c, key, RandomBytes(uint64(n), n))
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"r1.x", "r1/s1/manifest.json", "r1/s1/tracks/alice/audio.webm", "r1/s1/tracks/bob/video.webm",
			"r1/s2/manifest.json", "r10/s1/manifest.json", "r2/s1/renders/grid-2/out.mp4", "r2/s1/renders/grid/out.mp4",
			"r2/s1/renders/grid/thumb/01.jpg"}},
		{"r1/", []string{"r1/s1/manifest.json", "r1/s1/tracks/alice/audio.webm", "r1/s1/tracks/bob/video.webm", "r1/s2/manifest.json"}},
		{"r1", []string{"r1.x", "r1/s1/manifest.json", "r1/s1/tracks/alice/audio.webm", "r1/s1/tracks/bob/video.webm",
			"r1/s2/manifest.json", "r10/s1/manifest.json"}},
		{"r1/s1/tracks/", []string{"r1/s1/tracks/alice/audio.webm", "r1/s1/tracks/bob/video.webm"}},
		{"r1/s1/tracks/a", []string{"r1/s1/tracks/alice/audio.webm"}},
		{"r2/s1/renders/grid/", []string{"r2/s1/renders/grid/out.mp4", "r2/s1/renders/grid/thumb/01.jpg"}},
		{"r2/s1/renders/grid", []string{"r2/s1/renders/grid-2/out.mp4", "r2/s1/renders/grid/out.mp4", "r2/s1/renders/grid/thumb/01.jpg"}},
		{"r1/s1/manifest.json", []string{"r1/s1/manifest.json"}},
		{"nothing/", []string{}},
		{"r3", []string{}},
		{"r1/s1/manifest.json/x", []string{}},
	}
	for _, tt := range tests {
		list, err := c.List(ctx, tt.prefix)
		if err != nil {
			t.Errorf("List(%q): %v", tt.prefix, err)
			continue
		}
		if got := keysOf(list); !slices.Equal(got, tt.want) {
			t.Errorf("List(%q) = %q, want %q", tt.prefix, got, tt.want)
		}
		for _, o := range list {
			if got, want := o.Size, int64(objects[o.Key]); got != want {
				t.Errorf("List(%q): %s has Size %d, want %d", tt.prefix, o.Key, got, want)
			}
			if o.ModTime.IsZero() {
				t.Errorf("List(%q): %s has no ModTime", tt.prefix, o.Key)
			}
		}
	}
}

func testDelete(t *testing.T, c storage.Client) {
	ctx := ctxT(t)
	put(t, c, "d/keep", []byte("keep"))
	put(t, c, "d/gone/deep/x", []byte("x"))
	if err := c.Delete(ctx, "d/gone/deep/x"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := c.Stat(ctx, "d/gone/deep/x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat after Delete = %v, want ErrNotFound", err)
	}
	if err := c.Delete(ctx, "d/gone/deep/x"); err != nil {
		t.Errorf("second Delete = %v, want nil", err)
	}
	list, err := c.List(ctx, "d/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got, want := keysOf(list), []string{"d/keep"}; !slices.Equal(got, want) {
		t.Errorf("List after Delete = %q, want %q", got, want)
	}
	// Where a deleted object's "folder" was, an object can now be.
	put(t, c, "d/gone", []byte("file"))
	checkObject(t, c, "d/gone", []byte("file"))
	checkObject(t, c, "d/keep", []byte("keep"))
}

func testOverwrite(t *testing.T, c storage.Client) {
	v1, v2 := RandomBytes(3, 5000), RandomBytes(4, 777)
	put(t, c, "o/x", v1)
	checkObject(t, c, "o/x", v1)
	info := put(t, c, "o/x", v2)
	if got, want := info.SHA256, SHA256(v2); got != want {
		t.Errorf("second Put: SHA256 = %q, want %q", got, want)
	}
	checkObject(t, c, "o/x", v2)
	list, err := c.List(ctxT(t), "o/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got, want := keysOf(list), []string{"o/x"}; !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
}

func testEmpty(t *testing.T, c storage.Client) {
	empty := SHA256(nil)
	info := put(t, c, "e/known", nil)
	if got, want := info.SHA256, empty; got != want {
		t.Errorf("Put(empty): SHA256 = %q, want %q", got, want)
	}
	checkObject(t, c, "e/known", []byte{})
	info, err := c.Put(ctxT(t), "e/unknown", onlyReader{bytes.NewReader(nil)}, -1)
	if err != nil {
		t.Fatalf("Put(empty, size -1): %v", err)
	}
	if got, want := info.Size, int64(0); got != want {
		t.Errorf("Put(empty, size -1): Size = %d, want %d", got, want)
	}
	checkObject(t, c, "e/unknown", []byte{})
}

func testMultipart(t *testing.T, c storage.Client) {
	data := RandomBytes(5, MultipartSize)
	info := put(t, c, "big/known.bin", data)
	if got, want := info.SHA256, SHA256(data); got != want {
		t.Errorf("Put: SHA256 = %q, want %q", got, want)
	}
	checkObject(t, c, "big/known.bin", data)
	info, err := c.Put(ctxT(t), "big/unknown.bin", onlyReader{bytes.NewReader(data)}, -1)
	if err != nil {
		t.Fatalf("Put(size -1): %v", err)
	}
	if got, want := info.SHA256, SHA256(data); got != want {
		t.Errorf("Put(size -1): SHA256 = %q, want %q", got, want)
	}
	checkObject(t, c, "big/unknown.bin", data)
	// Exactly one part's worth, and one byte more.
	for _, n := range []int{PartSize, PartSize + 1} {
		d := data[:n]
		key := fmt.Sprintf("big/%d", n)
		if _, err := c.Put(ctxT(t), key, onlyReader{bytes.NewReader(d)}, -1); err != nil {
			t.Fatalf("Put(%s, size -1): %v", key, err)
		}
		checkObject(t, c, key, d)
	}
}

func testWrongSize(t *testing.T, c storage.Client) {
	data := RandomBytes(6, 1000)
	for _, tt := range []struct {
		name string
		data []byte
		size int64
	}{
		{"short", data[:500], 1000},
		{"long", data, 500},
		{"long-empty", data[:1], 0},
		{"short-multipart", RandomBytes(7, PartSize+10), PartSize + 11},
		{"long-multipart", RandomBytes(7, 2*PartSize+10), 2*PartSize + 9},
		{"negative", data, -2},
	} {
		key := "w/" + tt.name
		if _, err := c.Put(ctxT(t), key, bytes.NewReader(tt.data), tt.size); err == nil {
			t.Errorf("Put(%s) of %d bytes with size %d: no error", key, len(tt.data), tt.size)
		}
		if _, err := c.Stat(ctxT(t), key); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat(%s) after a wrong-size Put = %v, want ErrNotFound", key, err)
		}
	}
}

// failingReader yields n bytes of data, then fails.
type failingReader struct {
	data []byte
	n    int
}

var errReader = errors.New("storagetest: reader failed")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errReader
	}
	k := copy(p, f.data[:min(len(p), f.n)])
	f.data, f.n = f.data[k:], f.n-k
	return k, nil
}

func testFailedPutKeepsOld(t *testing.T, c storage.Client) {
	old := RandomBytes(8, 3000)
	put(t, c, "f/x", old)
	for _, n := range []int{0, 100, PartSize + 100} {
		data := RandomBytes(9, 2*PartSize)
		_, err := c.Put(ctxT(t), "f/x", &failingReader{data: data, n: n}, int64(len(data)))
		if !errors.Is(err, errReader) {
			t.Errorf("Put with a reader failing after %d bytes = %v, want the reader's error", n, err)
		}
		checkObject(t, c, "f/x", old)
	}
	list, err := c.List(ctxT(t), "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got, want := keysOf(list), []string{"f/x"}; !slices.Equal(got, want) {
		t.Errorf("List after failed Puts = %q, want %q", got, want)
	}
}

func testCanceled(t *testing.T, c storage.Client) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Put(ctx, "c/x", bytes.NewReader([]byte("x")), 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a canceled context = %v, want context.Canceled", err)
	}
	// Canceled in the middle of a multipart-sized body.
	ctx, cancel = context.WithCancel(t.Context())
	data := RandomBytes(10, 2*PartSize)
	r := &hookReader{r: bytes.NewReader(data), at: PartSize + 1, hook: cancel}
	if _, err := c.Put(ctx, "c/y", r, int64(len(data))); !errors.Is(err, context.Canceled) {
		t.Errorf("Put canceled midway = %v, want context.Canceled", err)
	}
	if _, err := c.Stat(ctxT(t), "c/y"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat after a canceled Put = %v, want ErrNotFound", err)
	}
}

// hookReader calls hook once when at bytes have been read.
type hookReader struct {
	r    io.Reader
	at   int
	read int
	hook func()
}

func (h *hookReader) Read(p []byte) (int, error) {
	if h.read < h.at && h.read+len(p) > h.at {
		p = p[:h.at-h.read]
	}
	n, err := h.r.Read(p)
	h.read += n
	if h.read == h.at && h.hook != nil {
		h.hook()
		h.hook = nil
	}
	return n, err
}

// FetchLink downloads a Link: a file:// URL is read from disk, an http(s) one fetched with net/http.
func FetchLink(ctx context.Context, link string) ([]byte, error) {
	u, err := url.Parse(link)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "file":
		return os.ReadFile(filepath.FromSlash(u.Path))
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET: %s: %.200s", resp.Status, b)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("link %q has an unexpected scheme", link)
	}
}

func testLink(t *testing.T, c storage.Client) {
	data := RandomBytes(11, 4321)
	key := "l/some file+name.bin"
	put(t, c, key, data)
	link, err := c.Link(ctxT(t), key, time.Minute)
	if err != nil {
		t.Fatalf("Link: %v", err)
	}
	got, err := FetchLink(ctxT(t), link)
	if err != nil {
		t.Fatalf("fetch %s: %v", link, err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("link %s gave %d bytes (SHA-256 %s), want %d (%s)", link, len(got), SHA256(got), len(data), SHA256(data))
	}
	if _, err := c.Link(ctxT(t), key, 0); err == nil {
		t.Errorf("Link with ttl 0: no error")
	}
}

func testConcurrent(t *testing.T, c storage.Client) {
	const n = 8
	ctx := ctxT(t)
	versions := make([][]byte, n)
	for i := range versions {
		versions[i] = RandomBytes(uint64(100+i), 50_000+i*1000)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			// Distinct keys, and all writers on one key.
			if _, err := c.Put(ctx, fmt.Sprintf("cc/own/%d", i), bytes.NewReader(versions[i]), int64(len(versions[i]))); err != nil {
				errs <- err
			}
			if _, err := c.Put(ctx, "cc/shared", bytes.NewReader(versions[i]), int64(len(versions[i]))); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Put: %v", err)
	}
	for i := range n {
		checkObject(t, c, fmt.Sprintf("cc/own/%d", i), versions[i])
	}
	got := ReadObject(t, ctx, c, "cc/shared")
	i := slices.IndexFunc(versions, func(v []byte) bool { return bytes.Equal(v, got) })
	if i < 0 {
		t.Fatalf("cc/shared holds %d bytes that are none of the versions written", len(got))
	}
	checkObject(t, c, "cc/shared", versions[i])
	list, err := c.List(ctx, "cc/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got, want := len(list), n+1; got != want {
		t.Errorf("List after concurrent Puts has %d objects, want %d: %q", got, want, keysOf(list))
	}
}

// InvalidKeys are keys every Client rejects with storage.ErrInvalidKey.
var InvalidKeys = []string{"", "/abs", "a/../b", "..", ".", "a/./b", `a\b`, "a//b", "a/", "x/\x00", "bad\xff",
	"a/.tapedeck-tmp-1", strings.Repeat("k", storage.MaxKeyLen+1)}

func testInvalidKeys(t *testing.T, c storage.Client) {
	ctx := ctxT(t)
	for _, key := range InvalidKeys {
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("%s(%.40q) = %v, want ErrInvalidKey", op, key, err)
			}
		}
		_, err := c.Put(ctx, key, bytes.NewReader([]byte("x")), 1)
		check("Put", err)
		_, err = c.Get(ctx, key)
		check("Get", err)
		_, err = c.Stat(ctx, key)
		check("Stat", err)
		check("Delete", c.Delete(ctx, key))
		_, err = c.Link(ctx, key, time.Minute)
		check("Link", err)
	}
	for _, prefix := range []string{"/", "/a", "../", "a/../", `a\`} {
		if _, err := c.List(ctx, prefix); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("List(%q) = %v, want ErrInvalidKey", prefix, err)
		}
	}
	list, err := c.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != 0 {
		t.Errorf("after invalid keys, List = %q, want nothing", keysOf(list))
	}
}

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "upload.bin")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func fileExists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Stat(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func testUploadFile(t *testing.T, c storage.Client) {
	for _, n := range []int{0, 1000, MultipartSize} {
		data := RandomBytes(uint64(20+n), n)
		for _, remove := range []bool{false, true} {
			p := writeFile(t, data)
			key := fmt.Sprintf("u/%d-%v", n, remove)
			info, err := storage.UploadFile(ctxT(t), c, key, p, remove)
			if err != nil {
				t.Fatalf("UploadFile(%d bytes, remove %v): %v", n, remove, err)
			}
			if got, want := info.SHA256, SHA256(data); got != want {
				t.Errorf("UploadFile: SHA256 = %q, want %q", got, want)
			}
			if got, want := fileExists(t, p), !remove; got != want {
				t.Errorf("UploadFile(remove %v): file exists = %v, want %v", remove, got, want)
			}
			checkObject(t, c, key, data)
		}
	}
}

// FailingClient's Put reads the whole body, then fails without storing anything.
type FailingClient struct{ storage.Client }

// ErrInjected is FailingClient's error.
var ErrInjected = errors.New("storagetest: injected failure")

// Put implements storage.Client.
func (f FailingClient) Put(_ context.Context, _ string, r io.Reader, _ int64) (storage.ObjectInfo, error) {
	_, _ = io.Copy(io.Discard, r)
	return storage.ObjectInfo{}, ErrInjected
}

// CorruptingClient stores the body with one byte changed, as a faulty store would.
type CorruptingClient struct{ storage.Client }

// Put implements storage.Client.
func (c CorruptingClient) Put(ctx context.Context, key string, r io.Reader, size int64) (storage.ObjectInfo, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	if len(b) > 0 {
		b[len(b)/2] ^= 0x40
	}
	return c.Client.Put(ctx, key, bytes.NewReader(b), size)
}

// LyingClient stores a corrupted body but reports the SHA-256 of the original: only the check of the
// stored object (Stat) can catch it.
type LyingClient struct{ storage.Client }

// Put implements storage.Client.
func (c LyingClient) Put(ctx context.Context, key string, r io.Reader, size int64) (storage.ObjectInfo, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	sum := SHA256(b)
	if len(b) > 0 {
		b[0] ^= 0x01
	}
	info, err := c.Client.Put(ctx, key, bytes.NewReader(b), size)
	info.SHA256 = sum
	return info, err
}

func testUploadFileFailure(t *testing.T, c storage.Client) {
	data := RandomBytes(30, 10_000)
	for _, tt := range []struct {
		name   string
		client storage.Client
		is     error
	}{
		{"put-fails", FailingClient{c}, ErrInjected},
		{"stored-corrupt", CorruptingClient{c}, storage.ErrChecksumMismatch},
		{"stored-corrupt-unnoticed-by-put", LyingClient{c}, storage.ErrChecksumMismatch},
	} {
		p := writeFile(t, data)
		_, err := storage.UploadFile(ctxT(t), tt.client, "uf/"+tt.name, p, true)
		if !errors.Is(err, tt.is) {
			t.Errorf("UploadFile through %s = %v, want %v", tt.name, err, tt.is)
		}
		if !fileExists(t, p) {
			t.Errorf("UploadFile through %s removed the local file after failing", tt.name)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	p := writeFile(t, data)
	if _, err := storage.UploadFile(ctx, c, "uf/canceled", p, true); !errors.Is(err, context.Canceled) {
		t.Errorf("UploadFile with a canceled context = %v, want context.Canceled", err)
	}
	if !fileExists(t, p) {
		t.Errorf("UploadFile with a canceled context removed the local file")
	}
	if _, err := storage.UploadFile(ctxT(t), c, "uf/missing", filepath.Join(t.TempDir(), "nope"), true); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("UploadFile of a missing file = %v, want os.ErrNotExist", err)
	}
	if _, err := storage.UploadFile(ctxT(t), c, "../x", p, true); !errors.Is(err, storage.ErrInvalidKey) || !fileExists(t, p) {
		t.Errorf("UploadFile to an invalid key = %v (file kept: %v), want ErrInvalidKey and the file kept", err, fileExists(t, p))
	}
}
