package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// chunker cuts a reader into parts and tells which part is the last, reading one byte ahead.
type chunker struct {
	r       io.Reader
	ahead   [1]byte
	hasNext bool // ahead holds the next part's first byte
}

// next fills buf (fewer bytes only at the end of r) and reports whether r has nothing after it.
func (c *chunker) next(buf []byte) (n int, last bool, err error) {
	if c.hasNext && len(buf) > 0 {
		buf[0] = c.ahead[0]
		n, c.hasNext = 1, false
	}
	m, err := io.ReadFull(c.r, buf[n:])
	n += m
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return n, !c.hasNext, nil
	case err != nil:
		return n, false, err
	case c.hasNext:
		return n, false, nil
	}
	for {
		k, err := c.r.Read(c.ahead[:])
		if k == 1 {
			c.hasNext = true
			return n, false, nil
		}
		if errors.Is(err, io.EOF) {
			return n, true, nil
		}
		if err != nil {
			return n, false, err
		}
	}
}

// upload is one multipart upload in progress.
type upload struct {
	id    string
	parts []types.CompletedPart
	sums  []byte // the parts' raw SHA-256s, concatenated (for the composite checksum)
}

func (c *S3) put(ctx context.Context, key string, r io.Reader, size int64) (info ObjectInfo, err error) {
	if size < -1 {
		return ObjectInfo{}, fmt.Errorf("size %d is invalid (want -1 for unknown, or >= 0)", size)
	}
	if size > MaxParts*MaxPartSize {
		return ObjectInfo{}, fmt.Errorf("%d bytes is more than S3 allows in one object (%d)", size, int64(MaxParts*MaxPartSize))
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	partSize := func(n int) int64 { return unknownPartSize(n, c.partSize) }
	if size >= 0 {
		ps := knownPartSize(size, c.partSize)
		partSize = func(int) int64 { return ps }
	}

	var (
		ch    = chunker{r: r}
		whole = sha256.New()
		buf   []byte
		total int64
		up    *upload
	)
	defer func() {
		if err != nil && up != nil {
			c.abort(ctx, key, up.id)
		}
	}()
	for n := 1; ; n++ {
		if n > MaxParts {
			return ObjectInfo{}, fmt.Errorf("the body is larger than %d bytes, the most an upload of unknown size "+
				"holds with parts starting at %d bytes: pass the size", MaxUnknownSize(c.partSize), partSize(1))
		}
		want := partSize(n)
		if size >= 0 {
			want = min(want, size-total)
		}
		if int64(cap(buf)) < want {
			buf = make([]byte, want)
		}
		got, last, err := ch.next(buf[:want])
		total += int64(got)
		if err != nil {
			return ObjectInfo{}, fmt.Errorf("read: %w", err)
		}
		if size >= 0 && (last && total != size || !last && total >= size) {
			if !last {
				total++
			}
			return ObjectInfo{}, sizeMismatch(total, size)
		}
		part := buf[:got]
		whole.Write(part)
		if n == 1 && last {
			return c.putSingle(ctx, key, part, whole)
		}
		if up == nil {
			if up, err = c.createUpload(ctx, key); err != nil {
				return ObjectInfo{}, err
			}
		}
		if err := c.uploadPart(ctx, key, up, int32(n), part); err != nil {
			return ObjectInfo{}, err
		}
		if last {
			break
		}
	}
	return c.complete(ctx, key, up, total, hex.EncodeToString(whole.Sum(nil)))
}

func (c *S3) putSingle(ctx context.Context, key string, body []byte, whole hash.Hash) (ObjectInfo, error) {
	raw := whole.Sum(nil)
	sum, b64 := hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw)
	var out *s3.PutObjectOutput
	err := c.retry(ctx, "put object", func(ctx context.Context, _ int) error {
		var err error
		out, err = c.api.PutObject(ctx, &s3.PutObjectInput{
			Bucket:            &c.bucket,
			Key:               c.objectKey(key),
			Body:              bytes.NewReader(body),
			ContentLength:     aws.Int64(int64(len(body))),
			ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
			ChecksumSHA256:    aws.String(b64),
			Metadata:          map[string]string{sumTag: sum},
		}, noRetry)
		return err
	})
	if err != nil {
		return ObjectInfo{}, err
	}
	confirmed := aws.ToString(out.ChecksumSHA256)
	switch {
	case confirmed == b64:
	case confirmed == "":
		c.log.Warn("storage: the server did not confirm the SHA-256 of an upload", "key", key)
		sum = ""
	default:
		return ObjectInfo{}, fmt.Errorf("the server stored SHA-256 %s, sent %s", confirmed, b64)
	}
	return c.afterPut(ctx, key, int64(len(body)), sum, aws.ToString(out.ETag))
}

// afterPutReads bounds the reads of afterPut that find this put's ETag with
// another size or SHA-256.
const afterPutReads = 3

// afterPut reads back the object's time (PUT answers do not have it) and checks its size. sum is the
// SHA-256 the upload confirmed, etag the server's answer. If another writer replaced the object in the
// meantime (another ETag), the object this Put wrote is described from what was sent.
//
// A server that keeps an object's attributes apart (versitygw's posix backend: the ETag and the
// checksum are separate extended attributes) can, while other writers replace the object, answer
// with this put's ETag and another writer's checksum. So a mismatch is read again, a little later,
// before it is an error: a stored object that really differs from what was sent differs every time.
func (c *S3) afterPut(ctx context.Context, key string, size int64, sum, etag string) (ObjectInfo, error) {
	for read := 1; ; read++ {
		var info ObjectInfo
		var headETag string
		err := c.retry(ctx, "check stored object", func(ctx context.Context, _ int) error {
			var err error
			info, headETag, err = c.headETag(ctx, key)
			return err
		})
		if err != nil && !errors.Is(err, ErrNotFound) {
			return ObjectInfo{}, err
		}
		if err != nil || etag == "" || headETag != etag {
			c.log.Debug("storage: object replaced right after its put", "key", key)
			return ObjectInfo{Key: key, Size: size, ModTime: time.Now().Truncate(time.Second), SHA256: sum}, nil
		}
		var mismatch error
		switch {
		case info.Size != size:
			mismatch = fmt.Errorf("the stored object has %d bytes, sent %d", info.Size, size)
		case info.SHA256 != "" && sum != "" && info.SHA256 != sum:
			mismatch = fmt.Errorf("the stored object has SHA-256 %s, sent %s", info.SHA256, sum)
		}
		if mismatch == nil {
			info.SHA256 = sum
			return info, nil
		}
		if read == afterPutReads {
			return ObjectInfo{}, mismatch
		}
		c.log.Debug("storage: the stored object does not match its put yet; reading it again", "key", key, "err", mismatch)
		select {
		case <-ctx.Done():
			return ObjectInfo{}, fmt.Errorf("%w (%w)", mismatch, ctx.Err())
		case <-time.After(time.Duration(read) * 100 * time.Millisecond):
		}
	}
}

func (c *S3) createUpload(ctx context.Context, key string) (*upload, error) {
	var out *s3.CreateMultipartUploadOutput
	err := c.retry(ctx, "create multipart upload", func(ctx context.Context, _ int) error {
		var err error
		out, err = c.api.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket:            &c.bucket,
			Key:               c.objectKey(key),
			ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
			ChecksumType:      types.ChecksumTypeComposite,
		}, noRetry)
		return err
	})
	if err != nil {
		return nil, err
	}
	c.log.Debug("storage: multipart upload started", "key", key, "upload", aws.ToString(out.UploadId))
	return &upload{id: aws.ToString(out.UploadId)}, nil
}

func (c *S3) uploadPart(ctx context.Context, key string, up *upload, n int32, body []byte) error {
	raw := sha256.Sum256(body)
	b64 := base64.StdEncoding.EncodeToString(raw[:])
	var out *s3.UploadPartOutput
	err := c.retry(ctx, "upload part "+strconv.Itoa(int(n)), func(ctx context.Context, _ int) error {
		var err error
		out, err = c.api.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:            &c.bucket,
			Key:               c.objectKey(key),
			UploadId:          &up.id,
			PartNumber:        aws.Int32(n),
			Body:              bytes.NewReader(body),
			ContentLength:     aws.Int64(int64(len(body))),
			ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
			ChecksumSHA256:    aws.String(b64),
		}, noRetry)
		return err
	})
	if err != nil {
		return err
	}
	if got := aws.ToString(out.ChecksumSHA256); got != "" && got != b64 {
		return fmt.Errorf("part %d: the server stored SHA-256 %s, sent %s", n, got, b64)
	}
	up.parts = append(up.parts, types.CompletedPart{
		ETag: out.ETag, PartNumber: aws.Int32(n), ChecksumSHA256: aws.String(b64),
	})
	up.sums = append(up.sums, raw[:]...)
	c.log.Debug("storage: part uploaded", "key", key, "part", n, "bytes", len(body))
	return nil
}

func (c *S3) complete(ctx context.Context, key string, up *upload, size int64, sum string) (ObjectInfo, error) {
	compositeRaw := sha256.Sum256(up.sums)
	composite := base64.StdEncoding.EncodeToString(compositeRaw[:]) + "-" + strconv.Itoa(len(up.parts))
	var confirmed, etag string
	err := c.retry(ctx, "complete multipart upload", func(ctx context.Context, attempt int) error {
		out, err := c.api.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          &c.bucket,
			Key:             c.objectKey(key),
			UploadId:        &up.id,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: up.parts},
			ChecksumType:    types.ChecksumTypeComposite,
			MpuObjectSize:   aws.Int64(size),
		}, noRetry)
		if err == nil {
			confirmed, etag = aws.ToString(out.ChecksumSHA256), aws.ToString(out.ETag)
			return nil
		}
		// An earlier attempt may have completed the upload and lost the answer.
		if attempt > 1 && apiCode(err) == "NoSuchUpload" {
			h, herr := c.api.HeadObject(ctx, &s3.HeadObjectInput{
				Bucket: &c.bucket, Key: c.objectKey(key), ChecksumMode: types.ChecksumModeEnabled,
			})
			if herr == nil && aws.ToString(h.ChecksumSHA256) == composite {
				confirmed, etag = composite, aws.ToString(h.ETag)
				return nil
			}
		}
		return err
	})
	if err != nil {
		return ObjectInfo{}, err
	}
	switch {
	case confirmed == composite:
	case confirmed == "":
		c.log.Warn("storage: the server did not confirm the checksum of a multipart upload", "key", key)
		sum = ""
	default:
		return ObjectInfo{}, fmt.Errorf("the server's composite SHA-256 is %s, want %s", confirmed, composite)
	}
	if sum != "" {
		err := c.retry(ctx, "tag object", func(ctx context.Context, _ int) error {
			_, err := c.api.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{
				Bucket:  &c.bucket,
				Key:     c.objectKey(key),
				Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String(sumTag), Value: aws.String(sum)}}},
			}, noRetry)
			return err
		})
		if err != nil {
			// The object is complete and checked; only Stat will not know its SHA-256.
			c.log.Warn("storage: could not tag the object with its SHA-256", "key", key, "err", err)
		}
	}
	c.log.Debug("storage: multipart upload completed", "key", key, "parts", len(up.parts), "bytes", size)
	return c.afterPut(ctx, key, size, sum, etag)
}

// abort abandons a multipart upload, even when ctx is already done, so its parts do not linger.
func (c *S3) abort(ctx context.Context, key, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := c.api.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: &c.bucket, Key: c.objectKey(key), UploadId: &id,
	})
	if err != nil && apiCode(err) != "NoSuchUpload" {
		c.log.Warn("storage: could not abort a multipart upload; a lifecycle rule should clean it up",
			"key", key, "upload", id, "err", err)
		return
	}
	c.log.Debug("storage: multipart upload aborted", "key", key, "upload", id)
}
