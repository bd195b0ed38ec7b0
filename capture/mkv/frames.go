package mkv

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"time"
)

// Clusters indexes the clusters of a Matroska/WebM file, closed or still
// being written, by time, so that the frame playing at a given time is
// found with a few small reads: a renderer that starts drawing a source in
// the middle of it needs the last frame before that instant, which may be
// seconds back in a screen share or a stalled camera.
type Clusters struct {
	scale    int64 // ns per timestamp tick
	clusters []clusterRef
	// codec and codecPrivate are the first track's (Tracks).
	codec        string
	codecPrivate []byte
	codecDelay   int64 // ns
}

// clusterRef is one complete cluster: its body and its timestamp (ticks).
type clusterRef struct {
	body, size int64
	ts         int64
}

// IndexClusters reads the header and the clusters' own headers of a file
// (one small read per cluster: the frames are not read). Clusters of
// unknown size, and what follows them, are not indexed; neither is a
// cluster cut short at the end of the file (one being written).
func IndexClusters(r io.ReaderAt) (*Clusters, error) {
	x := &Clusters{scale: int64(time.Millisecond)}
	id, size, unknown, n, err := headerAt(r, 0)
	if err != nil || id != idEBML || unknown || size > maxEBMLHeader {
		return nil, fmt.Errorf("mkv: index: %w", ErrNotMatroska)
	}
	at := int64(n) + int64(size)
	if id, size, unknown, n, err = headerAt(r, at); err != nil || id != idSegment {
		return nil, fmt.Errorf("mkv: index: no Segment: %w", ErrNotMatroska)
	}
	at += int64(n)
	end := int64(math.MaxInt64)
	if !unknown && size < uint64(math.MaxInt64-at) {
		end = at + int64(size)
	}
walk:
	for at < end {
		id, size, unknown, n, err := headerAt(r, at)
		if err != nil || unknown || size > uint64(math.MaxInt64-at-int64(n)) {
			break // the end of what was written, or nothing more to index
		}
		body := at + int64(n)
		switch id {
		case idInfo:
			b, err := readAt(r, body, size, maxInfo)
			if err != nil {
				return nil, fmt.Errorf("mkv: index: Info: %w", err)
			}
			children(b, func(id uint32, data []byte) {
				if v := readUint(data); id == idTimestampScal && v > 0 && v <= math.MaxInt32 {
					x.scale = int64(v)
				}
			})
		case idTracks:
			b, err := readAt(r, body, size, maxTracks)
			if err != nil {
				return nil, fmt.Errorf("mkv: index: Tracks: %w", err)
			}
			x.readTracks(b)
		case idCluster:
			ts, ok, err := clusterTimestamp(r, body, size)
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break walk // being written
			}
			if err != nil {
				return nil, fmt.Errorf("mkv: index: cluster at %d: %w", at, err)
			}
			if ok {
				x.clusters = append(x.clusters, clusterRef{body: body, size: int64(size), ts: ts})
			}
		}
		at = body + int64(size)
	}
	// A cluster cut short (its last bytes not written yet) is dropped: its
	// frames may not all be there.
	if k := len(x.clusters); k > 0 {
		last := x.clusters[k-1]
		var b [1]byte
		if _, err := r.ReadAt(b[:], last.body+last.size-1); err != nil {
			x.clusters = x.clusters[:k-1]
		}
	}
	return x, nil
}

// readTracks keeps the codec of the first TrackEntry of a Tracks body.
func (x *Clusters) readTracks(b []byte) {
	found := false
	children(b, func(id uint32, data []byte) {
		if id != idTrackEntry || found {
			return
		}
		found = true
		children(data, func(id uint32, v []byte) {
			switch id {
			case idCodecID:
				x.codec = codecByID(trimNul(v))
			case idCodecPrivate:
				x.codecPrivate = append([]byte(nil), v...)
			case idCodecDelay:
				x.codecDelay = int64(min(readUint(v), math.MaxInt32))
			}
		})
	})
}

// FrameBefore returns the time of the file's last frame at or before t
// (the file's frame times, as its blocks state them), and false when no
// indexed frame is. The file's blocks are taken to be of its only track.
func (x *Clusters) FrameBefore(r io.ReaderAt, t time.Duration) (time.Duration, bool, error) {
	target := int64(t) / x.scale
	if int64(t) < 0 && int64(t)%x.scale != 0 {
		target-- // floor
	}
	i := sort.Search(len(x.clusters), func(i int) bool { return x.clusters[i].ts > target }) - 1
	// A cluster's first block may start after its timestamp: then the
	// frame is the previous cluster's last.
	for j := i; j >= 0 && j >= i-1; j-- {
		c := x.clusters[j]
		best, found := int64(0), false
		err := blocksAt(r, c, func(ticks int64) {
			if ticks <= target && (!found || ticks > best) {
				best, found = ticks, true
			}
		})
		if err != nil {
			return 0, false, fmt.Errorf("mkv: frame before %v: %w", t, err)
		}
		if found {
			return time.Duration(best * x.scale), true, nil
		}
	}
	return 0, false, nil
}

// blocksAt calls fn with the time (ticks) of each block of cluster c,
// reading only the blocks' headers.
func blocksAt(r io.ReaderAt, c clusterRef, fn func(ticks int64)) error {
	return blocksAtWith(r, c, func(body int64, size uint64, _ int64) error {
		p, err := readPacket(r, c.ts, body, size, false)
		if err == nil {
			fn(p.Ticks)
		}
		return err
	})
}

// blocksAtWith calls block with the body and size of each Block and
// SimpleBlock of cluster c, and the DiscardPadding of its BlockGroup (ns;
// 0 without one).
func blocksAtWith(r io.ReaderAt, c clusterRef, block func(body int64, size uint64, discard int64) error) error {
	return childrenAt(r, c.body, c.body+c.size, func(id uint32, body int64, size uint64) error {
		switch id {
		case idSimpleBlock:
			return block(body, size, 0)
		case idBlockGroup:
			return blockGroupAt(r, body, size, block)
		}
		return nil
	})
}

// blockGroupAt calls block with the Block of the BlockGroup of size bytes
// at body and its DiscardPadding.
func blockGroupAt(r io.ReaderAt, body int64, size uint64, block func(body int64, size uint64, discard int64) error) error {
	at := int64(-1)
	var blockSize uint64
	var discard int64
	err := childrenAt(r, body, body+int64(size), func(id uint32, body int64, size uint64) error {
		switch id {
		case idBlock:
			at, blockSize = body, size
		case idDiscardPad:
			b, err := readAt(r, body, size, 8)
			if err != nil {
				return err
			}
			discard = readInt(b)
		}
		return nil
	})
	if err != nil || at < 0 {
		return err
	}
	return block(at, blockSize, discard)
}

// childrenAt calls fn for each child element of the master element body
// [at, end), reading only the children's headers.
func childrenAt(r io.ReaderAt, at, end int64, fn func(id uint32, body int64, size uint64) error) error {
	for at < end {
		id, size, unknown, n, err := headerAt(r, at)
		if err != nil || unknown || size > uint64(end-at-int64(n)) {
			return fmt.Errorf("element at %d: %w", at, errCorrupt)
		}
		body := at + int64(n)
		if err := fn(id, body, size); err != nil {
			return err
		}
		at = body + int64(size)
	}
	return nil
}

// clusterTimestamp reads a cluster's Timestamp, which a writer puts before
// its blocks; false when it is not among the cluster's first elements.
func clusterTimestamp(r io.ReaderAt, body int64, size uint64) (int64, bool, error) {
	b, err := readAt(r, body, min(size, 64), 64)
	if err != nil {
		return 0, false, err
	}
	ts, ok := int64(0), false
	// The prefix read ends inside a block: children stops there.
	children(b, func(id uint32, data []byte) {
		if id == idTimestamp && !ok {
			ts, ok = int64(readUint(data)), true
		}
	})
	return ts, ok, nil
}

// readAt reads size bytes at at, at most limit.
func readAt(r io.ReaderAt, at int64, size, limit uint64) ([]byte, error) {
	if size > limit {
		return nil, fmt.Errorf("element of %d bytes at %d: %w", size, at, errCorrupt)
	}
	b := make([]byte, size)
	if k, err := r.ReadAt(b, at); k < len(b) {
		return nil, unexpected(err)
	}
	return b, nil
}
