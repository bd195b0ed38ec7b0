package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/storage/storagetest"
)

// The S3 tests run against a real versitygw on loopback. They set AWS_* variables, so they are not
// parallel.

func TestS3Suite(t *testing.T) {
	g := storagetest.StartVersityGW(t)
	n := 0
	storagetest.RunClientSuite(t, func(t *testing.T) storage.Client {
		// A new bucket per subtest; every other one used through a prefix.
		n++
		bucket, prefix := fmt.Sprintf("suite-%d", n), ""
		if n%2 == 0 {
			prefix = "some/prefix"
		}
		c := g.Open(t, bucket, prefix, storage.Options{PartSize: storagetest.PartSize})
		want := "s3://" + bucket
		if prefix != "" {
			want += "/" + prefix
		}
		if got := c.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
		return c
	})
}

// TestS3Checksums looks at what reached the server: a single PUT has a full-object SHA-256, a multipart
// upload a composite one over its parts plus the "sha256" tag; a failed multipart upload is aborted.
func TestS3Checksums(t *testing.T) {
	g := storagetest.StartVersityGW(t)
	replaced := newLogCounter("replaced")
	c := g.Open(t, "sums", "p", storage.Options{PartSize: storagetest.PartSize, Logger: slog.New(replaced)})
	api := g.S3API()
	ctx := t.Context()

	small := storagetest.RandomBytes(1, 1000)
	big := storagetest.RandomBytes(2, storagetest.MultipartSize)
	for _, tt := range []struct {
		key       string
		data      []byte
		size      int64
		composite string // suffix of the server's checksum
	}{
		{"small", small, int64(len(small)), ""},
		{"big", big, int64(len(big)), "-3"},
		{"big-unknown", big, -1, "-3"},
		{"exact-part", big[:storagetest.PartSize], -1, ""},
	} {
		info, err := c.Put(ctx, tt.key, bytes.NewReader(tt.data), tt.size)
		if err != nil {
			t.Fatalf("Put(%s): %v", tt.key, err)
		}
		if got, want := info.SHA256, storagetest.SHA256(tt.data); got != want {
			t.Errorf("Put(%s).SHA256 = %q, want %q", tt.key, got, want)
		}
		head, err := api.HeadObject(ctx, &s3.HeadObjectInput{
			Bucket: aws.String("sums"), Key: aws.String("p/" + tt.key), ChecksumMode: types.ChecksumModeEnabled,
		})
		if err != nil {
			t.Fatalf("HeadObject(%s): %v", tt.key, err)
		}
		sum := aws.ToString(head.ChecksumSHA256)
		if sum == "" {
			t.Errorf("%s: the server has no SHA-256 checksum", tt.key)
		}
		if tt.composite != "" {
			if !strings.HasSuffix(sum, tt.composite) {
				t.Errorf("%s: server checksum %q, want a composite one ending in %q", tt.key, sum, tt.composite)
			}
			tags, err := api.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("sums"), Key: aws.String("p/" + tt.key)})
			if err != nil {
				t.Fatalf("GetObjectTagging(%s): %v", tt.key, err)
			}
			if got, want := tags.TagSet, storagetest.SHA256(tt.data); len(got) != 1 || aws.ToString(got[0].Value) != want {
				t.Errorf("%s: tags %v, want sha256=%s", tt.key, got, want)
			}
		} else if strings.Contains(sum, "-") {
			t.Errorf("%s: server checksum %q is composite, want a single PUT's", tt.key, sum)
		}
		// Put's description comes from the object it wrote (same ETag), not from a guess.
		if got, want := info.ModTime, aws.ToTime(head.LastModified); !got.Equal(want) {
			t.Errorf("Put(%s).ModTime = %v, HeadObject says %v", tt.key, got, want)
		}
	}
	if got := replaced.count(); got != 0 {
		t.Errorf("%d Puts saw their object replaced, want 0 (no concurrent writer)", got)
	}

	// A multipart upload that fails after its first part is aborted.
	data := storagetest.RandomBytes(3, 3*storagetest.PartSize)
	r := io.MultiReader(bytes.NewReader(data[:storagetest.PartSize+10]), iotestErrReader{})
	if _, err := c.Put(ctx, "failed", r, int64(len(data))); err == nil {
		t.Fatal("Put with a failing reader: no error")
	}
	ups, err := api.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("sums")})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left after a failed Put, want 0", len(ups.Uploads))
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// logCounter is a slog.Handler that counts records whose message contains match, and tells the first.
type logCounter struct {
	match string
	mu    sync.Mutex
	n     int
	first chan struct{}
}

func newLogCounter(match string) *logCounter {
	return &logCounter{match: match, first: make(chan struct{})}
}

func (h *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logCounter) WithGroup(string) slog.Handler            { return h }
func (h *logCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.match) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.n++
		if h.n == 1 {
			close(h.first)
		}
	}
	return nil
}

func (h *logCounter) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// gateReader yields data, but stops at gate bytes: it closes reached and waits for release.
type gateReader struct {
	data    []byte
	off     int
	gate    int
	reached chan struct{}
	release chan struct{}
}

func (g *gateReader) Read(p []byte) (int, error) {
	if g.off == g.gate && g.reached != nil {
		close(g.reached)
		g.reached = nil
		<-g.release
	}
	if g.off >= len(g.data) {
		return 0, io.EOF
	}
	end := len(g.data)
	if g.off < g.gate {
		end = g.gate
	}
	n := copy(p, g.data[g.off:end])
	g.off += n
	return n, nil
}

// gatedClient's Put reads through a gateReader (UploadFile opens the file itself).
type gatedClient struct {
	storage.Client
	gate func(r io.Reader) io.Reader
}

func (g gatedClient) Put(ctx context.Context, key string, r io.Reader, size int64) (storage.ObjectInfo, error) {
	return g.Client.Put(ctx, key, g.gate(r), size)
}

// TestS3ServerRestartMidUpload stops versitygw after the first part of a multipart UploadFile and starts
// it again once a part has failed: the upload completes after retries, the object is intact, and the
// local file stays until then.
func TestS3ServerRestartMidUpload(t *testing.T) {
	g := storagetest.StartVersityGW(t)
	log := newLogCounter("retrying")
	c := g.Open(t, "fault", "", storage.Options{PartSize: storagetest.PartSize, MaxAttempts: 10, Logger: slog.New(log)})

	data := storagetest.RandomBytes(4, 3*storagetest.PartSize+1234)
	path := filepath.Join(t.TempDir(), "track.webm")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	reached, release := make(chan struct{}), make(chan struct{})
	gated := gatedClient{Client: c, gate: func(r io.Reader) io.Reader {
		b, err := io.ReadAll(r)
		if err != nil {
			t.Error(err)
		}
		// Part 1 and the byte read ahead of it go through; part 2 waits.
		return &gateReader{data: b, gate: storagetest.PartSize + 1, reached: reached, release: release}
	}}
	type result struct {
		info storage.ObjectInfo
		err  error
	}
	done := make(chan result, 1)
	go func() {
		info, err := storage.UploadFile(t.Context(), gated, "room/s/tracks/a.webm", path, true)
		done <- result{info, err}
	}()

	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the upload did not reach the second part")
	}
	g.Stop(t)
	close(release)
	select {
	case <-log.first:
	case r := <-done:
		t.Fatalf("UploadFile ended while the server was down: %v", r.err)
	case <-time.After(30 * time.Second):
		t.Fatal("no retry while the server was down")
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("local file gone while the upload is still retrying: %v", err)
	}
	g.Restart(t)

	var r result
	select {
	case r = <-done:
	case <-time.After(45 * time.Second):
		t.Fatal("UploadFile did not finish after the server came back")
	}
	if r.err != nil {
		t.Fatalf("UploadFile: %v", r.err)
	}
	if got := log.count(); got < 1 {
		t.Errorf("%d retries logged, want at least 1", got)
	}
	if got, want := r.info.SHA256, storagetest.SHA256(data); got != want {
		t.Errorf("UploadFile: SHA256 = %q, want %q", got, want)
	}
	if got := storagetest.ReadObject(t, t.Context(), c, "room/s/tracks/a.webm"); !bytes.Equal(got, data) {
		t.Errorf("stored object: %d bytes (SHA-256 %s), want %d (%s)", len(got), storagetest.SHA256(got), len(data), storagetest.SHA256(data))
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("local file after a confirmed upload: %v, want removed", err)
	}
}

// With the server down for good, UploadFile fails once its attempts are used and keeps the file.
func TestS3ServerDownKeepsFile(t *testing.T) {
	g := storagetest.StartVersityGW(t)
	c := g.Open(t, "down", "", storage.Options{PartSize: storagetest.PartSize, MaxAttempts: 3})
	for _, n := range []int{1000, storagetest.MultipartSize} {
		path := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(path, storagetest.RandomBytes(5, n), 0o644); err != nil {
			t.Fatal(err)
		}
		g.Stop(t)
		start := time.Now()
		_, err := storage.UploadFile(t.Context(), c, "x", path, true)
		if err == nil {
			t.Fatalf("UploadFile(%d bytes) with the server down: no error", n)
		}
		if !strings.Contains(err.Error(), "failed 3 times") {
			t.Errorf("UploadFile(%d bytes) = %v, want it to say it tried 3 times", n, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("UploadFile took %v to give up", d)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("local file after a failed upload: %v", err)
		}
		g.Restart(t)
		if _, err := storage.UploadFile(t.Context(), c, "x", path, true); err != nil {
			t.Errorf("UploadFile after the restart: %v", err)
		}
	}
}

// Bad URLs, missing credentials and a missing bucket give errors that say so, never with the secret.
func TestS3OpenErrors(t *testing.T) {
	g := storagetest.StartVersityGW(t)
	g.CreateBucket(t, "exists")
	closed := "http://127.0.0.1:1"

	tests := []struct {
		name  string
		url   string
		opts  storage.Options
		creds bool
		want  string
	}{
		{"no bucket", "s3:///prefix", g.Options(), true, "no bucket"},
		{"bad bucket", "s3://Bad_Bucket/x", g.Options(), true, `"Bad_Bucket" is not a valid bucket name`},
		{"port in bucket", "s3://bucket:9000/x", g.Options(), true, "not a valid bucket name"},
		{"bad prefix", "s3://exists/a/../b", g.Options(), true, `contains a ".." segment`},
		{"credentials in URL", "s3://AKIAEXAMPLE:" + g.SecretKey + "@exists/x", g.Options(), true, "credentials in the URL are not supported"},
		{"query", "s3://exists/x?region=eu", g.Options(), true, "query and fragment are not supported"},
		{"scheme", "gs://exists/x", g.Options(), true, `unsupported scheme "gs"`},
		{"bad endpoint", "s3://exists", storage.Options{Endpoint: "127.0.0.1:7070"}, true, `endpoint "127.0.0.1:7070" is not valid`},
		{"small part size", "s3://exists", storage.Options{Endpoint: g.Endpoint, PartSize: 1 << 20}, true, "part size 1048576 is out of range"},
		{"missing credentials", "s3://exists/x", g.Options(), false, "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"},
		{"missing bucket", "s3://nope/x", g.Options(), true, fmt.Sprintf("bucket %q does not exist at endpoint %s", "nope", g.Endpoint)},
		{"unreachable", "s3://exists", storage.Options{Endpoint: closed, PathStyle: true, MaxAttempts: 1}, true, "cannot reach endpoint " + closed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.creds {
				g.SetEnv(t)
			} else {
				storagetest.IsolateAWSEnv(t)
			}
			_, err := storage.Open(t.Context(), tt.url, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open(%q) = %v, want an error containing %q", tt.url, err, tt.want)
			}
			t.Logf("%v", err)
			if strings.Contains(err.Error(), g.SecretKey) {
				t.Errorf("the error shows the secret key: %v", err)
			}
		})
	}

	t.Run("wrong secret", func(t *testing.T) {
		g.SetEnv(t)
		t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-"+g.SecretKey)
		_, err := storage.Open(t.Context(), "s3://exists", g.Options())
		if want := "access to bucket \"exists\" at endpoint " + g.Endpoint + " is denied"; err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Open with a wrong secret = %v, want an error containing %q", err, want)
		}
		if strings.Contains(err.Error(), g.SecretKey) {
			t.Errorf("the error shows the secret key: %v", err)
		}
	})

	t.Run("string has no credentials", func(t *testing.T) {
		g.SetEnv(t)
		c, err := storage.Open(t.Context(), "s3://exists/a/b/", g.Options())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.String(), "s3://exists/a/b"; got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	})
}
