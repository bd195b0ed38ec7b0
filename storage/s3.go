package storage

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
)

// S3 is a Client on an S3 bucket (or a prefix in it), through aws-sdk-go-v2.
//
// Every PUT and part carries its SHA-256 (x-amz-checksum-sha256), which the server checks. An object up to
// one part goes up with a single PutObject; a larger or unknown-size one as a multipart upload with
// ChecksumAlgorithm SHA256 (type COMPOSITE, the only type S3 and versitygw allow for SHA-256), parts sent
// one after another, each retried with backoff, the upload aborted on failure. When it completes, the
// server's composite checksum must equal the one computed here, and the whole-object SHA-256 is kept in
// the object's "sha256" tag so Stat can return it.
//
// Part sizes: for a known size, max(PartSize or 8 MiB, size/10,000 rounded up to a MiB), so at most
// 10,000 parts (the largest object is 10,000 × 5 GiB). For an unknown size, parts start at PartSize or
// 16 MiB and double every 2,000 parts: with 16 MiB parts that allows 31 × 2,000 × 16 MiB = 968.75 GiB
// (parts of up to 256 MiB, held in memory one at a time); pass the size for anything larger.
type S3 struct {
	api         *s3.Client
	presign     *s3.PresignClient
	bucket      string
	prefix      string // "" or "dir/…/" with a trailing slash
	url         string // s3://bucket/prefix
	endpoint    string // for messages
	partSize    int64  // 0: automatic
	maxAttempts int
	backoff     time.Duration
	log         *slog.Logger
}

var _ Client = (*S3)(nil)

// Part size limits and defaults of S3 multipart uploads.
const (
	MinPartSize         = 5 << 20  // S3's smallest part (but the last)
	MaxPartSize         = 5 << 30  // S3's largest part
	MaxParts            = 10000    // S3's most parts in one upload
	DefaultPartSize     = 8 << 20  // smallest part for a known size
	UnknownSizePartSize = 16 << 20 // first part size for an unknown size
	unknownGrowEvery    = 2000     // unknown size: parts double every this many parts
	maxBackoff          = 5 * time.Second
	minBackoff          = 200 * time.Millisecond
	sumTag              = "sha256" // tag and metadata holding the whole object's hex SHA-256
)

// MaxUnknownSize is the largest object Put accepts with size -1 when parts start at base bytes (0: the
// default 16 MiB): 968.75 GiB by default.
func MaxUnknownSize(base int64) int64 {
	var total int64
	for n := 1; n <= MaxParts; n++ {
		total += unknownPartSize(n, base)
	}
	return total
}

func unknownPartSize(n int, base int64) int64 {
	if base == 0 {
		base = UnknownSizePartSize
	}
	return min(base<<((n-1)/unknownGrowEvery), MaxPartSize)
}

// knownPartSize is the part size for an object of size bytes: at least min (0: 8 MiB), grown in whole
// MiB so that the object fits in MaxParts parts.
func knownPartSize(size, min int64) int64 {
	if min == 0 {
		min = DefaultPartSize
	}
	ps := min
	if need := (size + MaxParts - 1) / MaxParts; need > ps {
		const mib = 1 << 20
		ps = (need + mib - 1) / mib * mib
	}
	return ps
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func openS3(ctx context.Context, u *url.URL, opts Options) (*S3, error) {
	shown := "s3://" + u.Host + u.Path
	bucket := u.Host
	if bucket == "" {
		return nil, fmt.Errorf("storage: bad URL %q: no bucket (want s3://bucket or s3://bucket/prefix)", shown)
	}
	if !bucketName.MatchString(bucket) {
		return nil, fmt.Errorf("storage: bad URL %q: %q is not a valid bucket name "+
			"(3 to 63 lowercase letters, digits, dots and hyphens)", shown, bucket)
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		if err := validatePath(prefix); err != nil {
			return nil, fmt.Errorf("storage: bad URL %q: prefix: %w", shown, err)
		}
		prefix += "/"
	}
	shown = "s3://" + bucket
	if prefix != "" {
		shown += "/" + strings.TrimSuffix(prefix, "/")
	}
	if opts.Endpoint != "" {
		e, err := url.Parse(opts.Endpoint)
		if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || e.User != nil {
			return nil, fmt.Errorf("storage: %s: endpoint %q is not valid: want http://host[:port] or https://host[:port]",
				shown, redactURL(opts.Endpoint))
		}
	}

	log := opts.Logger.With("storage", shown)
	load := []func(*config.LoadOptions) error{
		config.WithLogger(sdkLogger{log: log}),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = opts.MaxAttempts
				o.MaxBackoff = maxBackoff
			})
		}),
	}
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	if opts.HTTPClient != nil {
		load = append(load, config.WithHTTPClient(opts.HTTPClient))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("storage: %s: load AWS configuration: %w", shown, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	api := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	endpoint := "AWS S3 in " + cfg.Region
	if e := api.Options().BaseEndpoint; e != nil && *e != "" {
		endpoint = *e
	}
	c := &S3{
		api:         api,
		presign:     s3.NewPresignClient(api),
		bucket:      bucket,
		prefix:      prefix,
		url:         shown,
		endpoint:    endpoint,
		partSize:    opts.PartSize,
		maxAttempts: opts.MaxAttempts,
		backoff:     minBackoff,
		log:         log,
	}

	if cfg.Credentials == nil {
		return nil, c.noCredentials(errors.New("no credentials provider"))
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, c.noCredentials(err)
	}
	if !creds.HasKeys() {
		return nil, c.noCredentials(errors.New("empty access key or secret"))
	}
	if err := c.checkBucket(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *S3) noCredentials(err error) error {
	return fmt.Errorf("storage: %s: no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "+
		"(or AWS_PROFILE, or run where an instance role is available): %w", c.url, err)
}

// checkBucket tells a missing bucket, refused credentials and an unreachable endpoint apart.
func (c *S3) checkBucket(ctx context.Context) error {
	_, err := c.api.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(c.bucket)}, func(o *s3.Options) {
		o.Retryer = retry.AddWithMaxAttempts(o.Retryer, min(c.maxAttempts, 3))
	})
	if err == nil {
		return nil
	}
	switch st := httpStatus(err); {
	case st == 404:
		return fmt.Errorf("storage: %s: bucket %q does not exist at endpoint %s", c.url, c.bucket, c.endpoint)
	case st == 403 || st == 401:
		return fmt.Errorf("storage: %s: access to bucket %q at endpoint %s is denied: check the credentials "+
			"and that they may list the bucket (HTTP %d)", c.url, c.bucket, c.endpoint, st)
	case st == 301 || st == 307:
		return fmt.Errorf("storage: %s: bucket %q is not in region %q at endpoint %s (HTTP %d): set the region",
			c.url, c.bucket, c.api.Options().Region, c.endpoint, st)
	case st == 0 && ctx.Err() == nil:
		return fmt.Errorf("storage: %s: cannot reach endpoint %s: %w", c.url, c.endpoint, err)
	default:
		return fmt.Errorf("storage: %s: check bucket %q at endpoint %s: %w", c.url, c.bucket, c.endpoint, err)
	}
}

// String returns "s3://bucket/prefix".
func (c *S3) String() string { return c.url }

func (c *S3) objectKey(key string) *string { return aws.String(c.prefix + key) }

func (c *S3) where(key string) string { return c.url + "/" + key }

// Put implements Client.
func (c *S3) Put(ctx context.Context, key string, r io.Reader, size int64) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("storage: put: %w", err)
	}
	info, err := c.put(ctx, key, r, size)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("storage: put %s: %w", c.where(key), c.explain(err))
	}
	return info, nil
}

// Get implements Client.
func (c *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, fmt.Errorf("storage: get: %w", err)
	}
	out, err := c.api.GetObject(ctx, &s3.GetObjectInput{Bucket: &c.bucket, Key: c.objectKey(key)})
	if err != nil {
		return nil, fmt.Errorf("storage: get %s: %w", c.where(key), c.explain(err))
	}
	return out.Body, nil
}

// Stat implements Client. SHA256 comes from the server's full-object checksum, else the "sha256"
// metadata or tag written by Put.
func (c *S3) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("storage: stat: %w", err)
	}
	info, composite, err := c.head(ctx, key)
	if err == nil && info.SHA256 == "" && composite {
		info.SHA256, err = c.taggedSum(ctx, key)
	}
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("storage: stat %s: %w", c.where(key), c.explain(err))
	}
	return info, nil
}

// head returns what HeadObject tells, and whether the object's checksum is a composite one (whose
// whole-object SHA-256 is only in the tag).
func (c *S3) head(ctx context.Context, key string) (ObjectInfo, bool, error) {
	out, err := c.api.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: &c.bucket, Key: c.objectKey(key), ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return ObjectInfo{}, false, err
	}
	info, composite := headInfo(key, out)
	return info, composite, nil
}

// headETag is head for afterPut: one attempt, a missing key is ErrNotFound.
func (c *S3) headETag(ctx context.Context, key string) (ObjectInfo, string, error) {
	out, err := c.api.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: &c.bucket, Key: c.objectKey(key), ChecksumMode: types.ChecksumModeEnabled,
	}, noRetry)
	if err != nil {
		return ObjectInfo{}, "", c.explain(err)
	}
	info, _ := headInfo(key, out)
	return info, aws.ToString(out.ETag), nil
}

func headInfo(key string, out *s3.HeadObjectOutput) (ObjectInfo, bool) {
	info := ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}
	composite := out.ChecksumType == types.ChecksumTypeComposite || aws.ToInt32(out.PartsCount) > 1 ||
		strings.Contains(aws.ToString(out.ETag), "-")
	if cs := aws.ToString(out.ChecksumSHA256); cs != "" {
		if strings.Contains(cs, "-") {
			composite = true
		} else if raw, err := base64.StdEncoding.DecodeString(cs); err == nil && len(raw) == 32 && !composite {
			info.SHA256 = hex.EncodeToString(raw)
		}
	}
	if info.SHA256 == "" && validHexSum(out.Metadata[sumTag]) {
		info.SHA256 = out.Metadata[sumTag]
	}
	return info, composite
}

func (c *S3) taggedSum(ctx context.Context, key string) (string, error) {
	out, err := c.api.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: &c.bucket, Key: c.objectKey(key)})
	if err != nil {
		return "", fmt.Errorf("read tags: %w", err)
	}
	for _, t := range out.TagSet {
		if aws.ToString(t.Key) == sumTag && validHexSum(aws.ToString(t.Value)) {
			return aws.ToString(t.Value), nil
		}
	}
	return "", nil
}

func validHexSum(s string) bool {
	raw, err := hex.DecodeString(s)
	return err == nil && len(raw) == 32 && s == strings.ToLower(s)
}

// List implements Client.
func (c *S3) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("storage: list: %w", err)
	}
	list := []ObjectInfo{}
	pages := s3.NewListObjectsV2Paginator(c.api, &s3.ListObjectsV2Input{
		Bucket: &c.bucket, Prefix: aws.String(c.prefix + prefix),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("storage: list %s: %w", c.where(prefix), c.explain(err))
		}
		for _, o := range page.Contents {
			key, ok := strings.CutPrefix(aws.ToString(o.Key), c.prefix)
			if !ok || ValidateKey(key) != nil {
				// A folder marker ("a/") or a key written by another tool that this package cannot address.
				c.log.Debug("storage: list: skipping key", "key", aws.ToString(o.Key))
				continue
			}
			list = append(list, ObjectInfo{Key: key, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Key < list[j].Key })
	return list, nil
}

// Delete implements Client.
func (c *S3) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("storage: delete: %w", err)
	}
	_, err := c.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &c.bucket, Key: c.objectKey(key)})
	if err != nil && !(httpStatus(err) == 404 && apiCode(err) != "NoSuchBucket") {
		return fmt.Errorf("storage: delete %s: %w", c.where(key), c.explain(err))
	}
	return nil
}

// maxLinkTTL is the longest validity of a SigV4 presigned URL.
const maxLinkTTL = 7 * 24 * time.Hour

// Link implements Client: a presigned GET URL valid for ttl (at most 7 days).
func (c *S3) Link(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", fmt.Errorf("storage: link: %w", err)
	}
	if ttl <= 0 || ttl > maxLinkTTL {
		return "", fmt.Errorf("storage: link %s: ttl %v is out of range (0, %v]", c.where(key), ttl, maxLinkTTL)
	}
	if _, _, err := c.head(ctx, key); err != nil {
		return "", fmt.Errorf("storage: link %s: %w", c.where(key), c.explain(err))
	}
	req, err := c.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &c.bucket, Key: c.objectKey(key)},
		s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("storage: link %s: %w", c.where(key), err)
	}
	return req.URL, nil
}

// explain turns SDK errors into this package's: a missing key wraps ErrNotFound, a missing bucket says
// so.
func (c *S3) explain(err error) error {
	if httpStatus(err) != 404 {
		return err
	}
	switch apiCode(err) {
	case "NoSuchBucket":
		return fmt.Errorf("bucket %q does not exist at endpoint %s: %w", c.bucket, c.endpoint, err)
	case "NoSuchUpload":
		return err
	}
	return fmt.Errorf("%w (%w)", ErrNotFound, err)
}

func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// retryable tells whether a failed request may succeed if sent again.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return false
	}
	var invalid smithy.InvalidParamsError
	if errors.As(err, &invalid) {
		return false
	}
	st := httpStatus(err)
	if st == 0 || st >= 500 || st == 408 || st == 429 {
		return true // network errors (the server is down or restarting), server errors, throttling
	}
	switch apiCode(err) {
	case "RequestTimeout", "RequestTimeTooSkewed", "BadDigest", "XAmzContentSHA256Mismatch", "SlowDown":
		return true
	}
	return false
}

// retry calls fn until it succeeds, fails for good, ctx ends or c.maxAttempts are used, backing off
// exponentially (with jitter) between attempts. fn's requests must not retry themselves (noRetry).
func (c *S3) retry(ctx context.Context, op string, fn func(ctx context.Context, attempt int) error) error {
	delay := c.backoff
	for attempt := 1; ; attempt++ {
		err := fn(ctx, attempt)
		if err == nil {
			return nil
		}
		if attempt >= c.maxAttempts || !retryable(ctx, err) {
			if attempt > 1 {
				return fmt.Errorf("%s: failed %d times, last: %w", op, attempt, err)
			}
			return fmt.Errorf("%s: %w", op, err)
		}
		wait := delay/2 + rand.N(delay/2+1)
		c.log.Warn("storage: request failed, retrying", "op", op, "attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (while retrying after: %v)", op, ctx.Err(), err)
		case <-t.C:
		}
		delay = min(2*delay, maxBackoff)
	}
}

// noRetry makes one request a single attempt: retry handles it.
func noRetry(o *s3.Options) {
	o.Retryer = retry.AddWithMaxAttempts(o.Retryer, 1)
}

// sdkLogger sends the SDK's log lines to slog.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(cls logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if cls == logging.Warn {
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, "aws-sdk: "+fmt.Sprintf(format, v...))
}
