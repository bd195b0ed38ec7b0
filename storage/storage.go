package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Client stores objects under string keys. Both implementations (a local folder and S3) are safe for
// concurrent use.
type Client interface {
	// Put stores the bytes of r under key, replacing any object there. size is the number of bytes r
	// yields, or -1 if unknown; a reader that yields a different number of bytes than a known size is an
	// error. A failed Put leaves the previous object (if any) in place. The returned SHA256 is set only
	// when the store confirmed it (see ObjectInfo).
	Put(ctx context.Context, key string, r io.Reader, size int64) (ObjectInfo, error)
	// Get opens the object for reading; the caller closes it. A missing key is ErrNotFound (wrapped).
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat describes an object. A missing key is ErrNotFound (wrapped).
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List returns every object whose key starts with prefix (a plain string prefix, as in S3: "a/b"
	// matches "a/b/c" and "a/bc"), recursively, sorted by key. SHA256 is not filled in.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes an object. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Link returns a download link valid for about ttl: a presigned URL for S3, a file:// URL (which
	// does not expire) for a local folder. A missing key is ErrNotFound (wrapped).
	Link(ctx context.Context, key string, ttl time.Duration) (string, error)
	// String is the URL the client was opened from, never with credentials.
	String() string
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key     string    // relative to the client's root
	Size    int64     // bytes
	ModTime time.Time // last modification, as the store reports it (S3: second precision)
	// SHA256 is the lowercase hex SHA-256 of the whole object, when known: always after a Put or Stat
	// on a local folder, and for S3 when the server confirmed the checksum (x-amz-checksum-sha256 for a
	// single PUT; for a multipart upload, the composite checksum of the parts matched and the whole-object
	// hash is kept in the object's "sha256" tag). Empty when unknown.
	SHA256 string
}

// ErrNotFound is returned (wrapped) by Get, Stat and Link for a key that does not exist.
var ErrNotFound = errors.New("storage: not found")

// ErrInvalidKey is returned (wrapped) for a key or prefix that is not allowed; see ValidateKey.
var ErrInvalidKey = errors.New("invalid key")

// Options configure Open. The zero value is fine for a local folder and for AWS S3.
type Options struct {
	// Endpoint is the base URL of an S3-compatible server ("http://127.0.0.1:7070"); empty for AWS
	// (or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL from the environment).
	Endpoint string
	// Region for signing; empty: the SDK's (AWS_REGION, shared config), else "us-east-1".
	Region string
	// PathStyle addresses buckets as ENDPOINT/bucket/key instead of bucket.ENDPOINT/key (most
	// S3-compatible servers need this).
	PathStyle bool
	// PartSize is the smallest multipart part size in bytes (at least 5 MiB); 0 = automatic: 8 MiB for a
	// known size, 16 MiB for an unknown one. Parts grow as needed to stay within 10,000 parts.
	PartSize int64
	// MaxAttempts is how many times one S3 request (a part, a PUT, a read) is tried before giving up
	// (0 = 8). Retries back off exponentially from 200 ms to 5 s.
	MaxAttempts int
	// Logger receives retries, aborted uploads and SDK warnings; nil discards them.
	Logger *slog.Logger
	// HTTPClient for S3 requests; nil: the SDK's default.
	HTTPClient *http.Client
}

const defaultMaxAttempts = 8

// Open returns a Client for rawURL:
//
//   - "file:///abs/dir" or a plain path ("recordings", "/var/lib/tapedeck"): a local folder, created if
//     missing;
//   - "s3://bucket" or "s3://bucket/prefix": an S3 bucket (credentials from the SDK's standard chain:
//     AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, shared files, IMDS, …). Open checks that
//     credentials exist and that the bucket is reachable.
func Open(ctx context.Context, rawURL string, opts Options) (Client, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PartSize != 0 && (opts.PartSize < MinPartSize || opts.PartSize > MaxPartSize) {
		return nil, fmt.Errorf("storage: part size %d is out of range: want 0 (automatic) or %d..%d bytes",
			opts.PartSize, int64(MinPartSize), int64(MaxPartSize))
	}
	if opts.MaxAttempts < 0 {
		return nil, fmt.Errorf("storage: max attempts %d is negative", opts.MaxAttempts)
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = defaultMaxAttempts
	}
	if strings.TrimSpace(rawURL) == "" {
		return nil, errors.New("storage: empty storage URL: want a folder, file:///abs/dir or s3://bucket/prefix")
	}
	if !strings.Contains(rawURL, "://") {
		return openLocal(rawURL)
	}
	shown := redactURL(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Parse's error repeats the URL, which may hold credentials: say what is wrong without it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("storage: bad URL %q: %w", shown, err)
	}
	if u.User != nil {
		return nil, fmt.Errorf("storage: bad URL %q: credentials in the URL are not supported; "+
			"use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or another source of the AWS SDK's chain)", shown)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("storage: bad URL %q: query and fragment are not supported; use Options", shown)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("storage: bad URL %q: a file URL needs an absolute path, file:///abs/dir "+
				"(%q was read as a host name)", shown, u.Host)
		}
		if u.Path == "" {
			return nil, fmt.Errorf("storage: bad URL %q: no folder", shown)
		}
		return openLocal(u.Path)
	case "s3":
		return openS3(ctx, u, opts)
	default:
		return nil, fmt.Errorf("storage: bad URL %q: unsupported scheme %q (want file:// or s3://)", shown, u.Scheme)
	}
}

// redactURL hides the user information of a URL-like string.
func redactURL(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw
	}
	rest := raw[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		return raw[:i+3] + "REDACTED@" + rest[at+1:]
	}
	return raw
}

// MaxKeyLen is the longest key accepted, in bytes (S3's limit, less room for a prefix).
const MaxKeyLen = 900

// ValidateKey reports whether key can name an object: a non-empty, slash-separated relative path of
// valid UTF-8 without empty, "." or ".." segments, without a leading or trailing "/", backslashes or
// control characters, at most MaxKeyLen bytes, and with no segment starting with the reserved
// ".tapedeck-tmp-" (the local folder's temporary files). The error wraps ErrInvalidKey.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if strings.HasSuffix(key, "/") {
		return fmt.Errorf("%w %q: ends with \"/\"", ErrInvalidKey, key)
	}
	return validatePath(key)
}

// validatePrefix checks a List prefix: empty, or like a key but possibly ending with "/".
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return validatePath(strings.TrimSuffix(prefix, "/"))
}

func validatePath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w %q: empty", ErrInvalidKey, p)
	case len(p) > MaxKeyLen:
		return fmt.Errorf("%w: %d bytes long, the limit is %d", ErrInvalidKey, len(p), MaxKeyLen)
	case !utf8.ValidString(p):
		return fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidKey, p)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("%w %q: starts with \"/\" (keys are relative)", ErrInvalidKey, p)
	case strings.Contains(p, `\`):
		return fmt.Errorf("%w %q: contains a backslash (use \"/\")", ErrInvalidKey, p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w %q: contains a control character", ErrInvalidKey, p)
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%w %q: empty segment (\"//\")", ErrInvalidKey, p)
		case seg == "." || seg == "..":
			return fmt.Errorf("%w %q: contains a %q segment", ErrInvalidKey, p, seg)
		case strings.HasPrefix(seg, tempPrefix):
			return fmt.Errorf("%w %q: segment %q uses the reserved prefix %q", ErrInvalidKey, p, seg, tempPrefix)
		}
	}
	return nil
}

// ctxReader fails reads once ctx is done, so copies of large local files stop on cancel.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
