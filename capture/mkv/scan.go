package mkv

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Summary is what Scan found in a file.
type Summary struct {
	// Track is read from the Tracks element. ClockRate is not stored in
	// the file: it is the Opus sampling rate (48000) for audio and 90000
	// for video.
	Track Track
	// Frames and Keyframes count the frames of complete clusters (a laced
	// block counts as its frames); audio frames are all keyframes.
	Frames, Keyframes int64
	// FirstPTS and LastPTS are the times of the first and last of those
	// frames, at the file's TimestampScale (1 ms for this package).
	FirstPTS, LastPTS time.Duration
	// Complete is true for a file finalized by Close: the Segment has a
	// known size and the file holds all of it.
	Complete bool
	// ValidBytes is the offset just past the last complete cluster (past
	// the header when there is no cluster; more precisely, past the last
	// complete Cluster, Info or Tracks element): a damaged or partly
	// written file can be cut there and keeps every frame counted. This
	// holds for files that were not finalized; a finalized file states its
	// Segment size, which a cut would also have to rewrite.
	ValidBytes int64
	// Cues is the number of CuePoints found (0 in a file that was not
	// closed).
	Cues int
	// Duration is the Info Duration, 0 when absent (a file that was not
	// closed).
	Duration time.Duration
}

// Scan reads a Matroska/WebM file written by a Writer, closed or not, and
// reports what it holds. It reads r sequentially and never seeks.
//
// Scan is tolerant: once the header (EBML header, Segment start, Info
// and Tracks) has been read, a truncated final element, or bytes that are
// not a valid element (for example zeros left by a power loss), end the
// scan without an error; the frames of a cluster that is not complete are
// not counted, and ValidBytes tells where the usable part ends. Scan
// returns an error for input that is not Matroska/WebM (ErrNotMatroska),
// for a header cut short (wrapping io.ErrUnexpectedEOF), and for read
// errors of r.
func Scan(r io.Reader) (Summary, error) {
	s := newScanner(r)
	return s.run()
}

// Size limits for elements Scan reads into memory.
const (
	maxEBMLHeader = 4 << 10
	maxInfo       = 1 << 20
	maxTracks     = 16 << 20
	maxCues       = 64 << 20
	maxBlockGroup = 64 << 20
)

// errCorrupt marks bytes that are not a valid element.
var errCorrupt = errors.New("invalid element")

// scannedBlock is one block of a complete cluster, reported to a test hook.
type scannedBlock struct {
	track  uint64
	ms     int64 // cluster Timestamp plus relative timestamp
	key    bool
	frames int
	data   []byte // block payload after the block header
}

// scanner parses a file as a stream.
type scanner struct {
	r   *bufio.Reader
	off int64 // bytes consumed
	sum Summary

	scale      int64  // TimestampScale
	track      uint64 // TrackNumber of the track counted; 0 = any
	headerDone bool   // Tracks was read
	haveFrame  bool

	// Test hooks.
	onBlock func(scannedBlock) // called for each block of complete clusters
	onCue   func(cuePoint)
	pending []scannedBlock
}

func newScanner(r io.Reader) *scanner {
	return &scanner{r: bufio.NewReaderSize(r, 64<<10), scale: timestampScale}
}

// truncated reports whether err means the input ended.
func truncated(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func (s *scanner) run() (Summary, error) {
	if err := s.ebmlHeader(); err != nil {
		return s.sum, err
	}
	// Segment, possibly after Void elements.
	for {
		id, size, unknown, err := s.elemHeader()
		if err != nil {
			return s.sum, s.headerErr(err)
		}
		if id == idSegment {
			segEnd := int64(-1)
			if !unknown {
				segEnd = s.off + int64(min(size, math.MaxInt64/2))
			}
			return s.segment(segEnd)
		}
		if id != idVoid || unknown {
			return s.sum, fmt.Errorf("mkv: scan: element %#x where the Segment should start: %w", id, ErrNotMatroska)
		}
		if err := s.skip(size); err != nil {
			return s.sum, s.headerErr(err)
		}
	}
}

// headerErr turns an error met before the end of the header into Scan's
// error.
func (s *scanner) headerErr(err error) error {
	switch {
	case truncated(err):
		return fmt.Errorf("mkv: scan: truncated header: %w", io.ErrUnexpectedEOF)
	case errors.Is(err, errCorrupt):
		return fmt.Errorf("mkv: scan: header: %v: %w", err, ErrNotMatroska)
	default:
		return fmt.Errorf("mkv: scan: %w", err)
	}
}

// ebmlHeader reads and checks the EBML header.
func (s *scanner) ebmlHeader() error {
	id, size, unknown, err := s.elemHeader()
	if err != nil {
		if errors.Is(err, errCorrupt) {
			return fmt.Errorf("mkv: scan: %w", ErrNotMatroska)
		}
		return s.headerErr(err)
	}
	if id != idEBML || unknown || size > maxEBMLHeader {
		return fmt.Errorf("mkv: scan: %w", ErrNotMatroska)
	}
	body, err := s.readBody(size, maxEBMLHeader)
	if err != nil {
		return s.headerErr(err)
	}
	docType := "matroska"
	ok := children(body, func(id uint32, data []byte) {
		if id == idDocType {
			docType = trimNul(data)
		}
	})
	if !ok || (docType != "webm" && docType != "matroska") {
		return fmt.Errorf("mkv: scan: DocType %q: %w", docType, ErrNotMatroska)
	}
	return nil
}

// segment reads the children of the Segment. segEnd is -1 for a Segment
// of unknown size.
func (s *scanner) segment(segEnd int64) (Summary, error) {
	for {
		if segEnd >= 0 && s.off >= segEnd {
			if !s.headerDone {
				return s.sum, fmt.Errorf("mkv: scan: Segment without Tracks: %w", ErrNotMatroska)
			}
			s.sum.Complete = s.off == segEnd
			return s.sum, nil
		}
		err := s.segmentChild(segEnd)
		if err == nil {
			continue
		}
		if !s.headerDone {
			return s.sum, s.headerErr(err)
		}
		if truncated(err) || errors.Is(err, errCorrupt) {
			return s.sum, nil
		}
		return s.sum, fmt.Errorf("mkv: scan: %w", err)
	}
}

// segmentChild reads one child of the Segment.
func (s *scanner) segmentChild(segEnd int64) error {
	id, size, unknown, err := s.elemHeader()
	if err != nil {
		return err
	}
	if segEnd >= 0 && (unknown || s.off > segEnd || size > uint64(segEnd-s.off)) {
		return errCorrupt
	}
	switch id {
	case idInfo:
		body, err := s.readBody(size, maxInfo)
		if err != nil {
			return err
		}
		if !s.info(body) {
			return errCorrupt
		}
		s.sum.ValidBytes = s.off
	case idTracks:
		body, err := s.readBody(size, maxTracks)
		if err != nil {
			return err
		}
		if !s.tracks(body) {
			return errCorrupt
		}
		s.headerDone = true
		s.sum.ValidBytes = s.off
	case idCluster:
		if err := s.cluster(size, unknown, segEnd); err != nil {
			return err
		}
		s.sum.ValidBytes = s.off
	case idCues:
		body, err := s.readBody(size, maxCues)
		if err != nil {
			return err
		}
		if !s.cues(body) {
			return errCorrupt
		}
	default:
		if unknown {
			return errCorrupt
		}
		if err := s.skip(size); err != nil {
			return err
		}
	}
	return nil
}

// elemHeader reads an element ID and size. It returns io.EOF only when
// the input ends exactly before the element.
func (s *scanner) elemHeader() (id uint32, size uint64, unknown bool, err error) {
	b, err := s.r.Peek(1)
	if err != nil {
		return 0, 0, false, err
	}
	il := vintLen(b[0])
	if il == 0 || il > 4 {
		return 0, 0, false, errCorrupt
	}
	if b, err = s.r.Peek(il + 1); err != nil {
		return 0, 0, false, unexpected(err)
	}
	sl := vintLen(b[il])
	if sl == 0 {
		return 0, 0, false, errCorrupt
	}
	if b, err = s.r.Peek(il + sl); err != nil {
		return 0, 0, false, unexpected(err)
	}
	for _, c := range b[:il] {
		id = id<<8 | uint32(c)
	}
	size, _, unknown = readVint(b[il : il+sl])
	if _, err := s.r.Discard(il + sl); err != nil {
		return 0, 0, false, unexpected(err)
	}
	s.off += int64(il + sl)
	return id, size, unknown, nil
}

// unexpected turns io.EOF in the middle of an element into
// io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// skip discards n bytes.
func (s *scanner) skip(n uint64) error {
	for n > 0 {
		chunk := int(min(n, 1<<30))
		d, err := s.r.Discard(chunk)
		s.off += int64(d)
		n -= uint64(d)
		if err != nil {
			return unexpected(err)
		}
	}
	return nil
}

// readBody reads an element body of size bytes, at most limit. Memory
// grows with the bytes actually read, so a bogus size in a truncated file
// does not allocate it all.
func (s *scanner) readBody(size uint64, limit int64) ([]byte, error) {
	if size > uint64(limit) {
		return nil, errCorrupt
	}
	b, err := io.ReadAll(io.LimitReader(s.r, int64(size)))
	s.off += int64(len(b))
	if err != nil {
		return nil, err
	}
	if uint64(len(b)) < size {
		return nil, io.ErrUnexpectedEOF
	}
	return b, nil
}

// children calls fn for each child of an in-memory master element body.
// It returns false if the body is not a sequence of valid elements.
func children(b []byte, fn func(id uint32, data []byte)) bool {
	for len(b) > 0 {
		il := vintLen(b[0])
		if il == 0 || il > 4 || len(b) < il {
			return false
		}
		var id uint32
		for _, c := range b[:il] {
			id = id<<8 | uint32(c)
		}
		size, sl, unknown := readVint(b[il:])
		if sl == 0 || unknown || size > uint64(len(b)-il-sl) {
			return false
		}
		start := il + sl
		fn(id, b[start:start+int(size)])
		b = b[start+int(size):]
	}
	return true
}

// readUint decodes an unsigned integer element body.
func readUint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// readFloat decodes a float element body (4 or 8 bytes; else 0).
func readFloat(b []byte) float64 {
	switch len(b) {
	case 4:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(b)))
	case 8:
		return math.Float64frombits(binary.BigEndian.Uint64(b))
	}
	return 0
}

// trimNul returns a string element's value without trailing NUL padding.
func trimNul(b []byte) string {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return string(b)
}

// info reads TimestampScale and Duration.
func (s *scanner) info(body []byte) bool {
	var dur float64
	ok := children(body, func(id uint32, data []byte) {
		switch id {
		case idTimestampScal:
			if v := readUint(data); v > 0 && v <= math.MaxInt32 {
				s.scale = int64(v)
			}
		case idDuration:
			dur = readFloat(data)
		}
	})
	if d := dur * float64(s.scale); d > 0 && d < math.MaxInt64/2 {
		s.sum.Duration = time.Duration(d)
	}
	return ok
}

// tracks reads the first TrackEntry.
func (s *scanner) tracks(body []byte) bool {
	found := false
	ok := children(body, func(id uint32, data []byte) {
		if id != idTrackEntry || found {
			return
		}
		found = true
		var t Track
		var typ uint64
		var rate float64
		if !children(data, func(id uint32, v []byte) {
			switch id {
			case idTrackNumber:
				s.track = readUint(v)
			case idTrackType:
				typ = readUint(v)
			case idCodecID:
				t.Codec = codecByID(trimNul(v))
			case idVideo:
				children(v, func(id uint32, v []byte) {
					switch id {
					case idPixelWidth:
						t.Width = int(min(readUint(v), math.MaxInt32))
					case idPixelHeight:
						t.Height = int(min(readUint(v), math.MaxInt32))
					}
				})
			case idAudio:
				children(v, func(id uint32, v []byte) {
					switch id {
					case idSamplingFreq:
						rate = readFloat(v)
					case idChannels:
						t.Channels = int(min(readUint(v), math.MaxInt32))
					}
				})
			}
		}) {
			found = false
		}
		switch {
		case typ == 1:
			t.ClockRate = 90000
		case rate >= 1 && rate <= math.MaxInt32:
			t.ClockRate = int(rate)
		}
		s.sum.Track = t
	})
	return ok && found
}

// cues counts CuePoints.
func (s *scanner) cues(body []byte) bool {
	return children(body, func(id uint32, data []byte) {
		if id != idCuePoint {
			return
		}
		s.sum.Cues++
		if s.onCue == nil {
			return
		}
		var c cuePoint
		c.pos = -1
		children(data, func(id uint32, v []byte) {
			switch id {
			case idCueTime:
				c.ms = int64(min(readUint(v), math.MaxInt64))
			case idCueTrackPos:
				children(v, func(id uint32, v []byte) {
					if id == idCueClusterPos {
						c.pos = int64(min(readUint(v), math.MaxInt64))
					}
				})
			}
		})
		s.onCue(c)
	})
}

// isTopLevel reports whether id is a Segment child that ends a Cluster
// of unknown size.
func isTopLevel(id uint32) bool {
	switch id {
	case idCluster, idCues, idTags, idChapters, idAttachments, idInfo, idTracks, idSeekHead, idSegment, idEBML:
		return true
	}
	return false
}

// clusterCounts gathers a cluster's frames until the cluster is known to
// be complete.
type clusterCounts struct {
	frames, keys int64
	first, last  int64 // ms
	haveFirst    bool
}

// cluster reads a Cluster body. Its frames count only if it is complete.
func (s *scanner) cluster(size uint64, unknown bool, segEnd int64) error {
	end := int64(-1)
	if !unknown {
		end = s.off + int64(min(size, math.MaxInt64/2))
	}
	var ts int64
	var cc clusterCounts
	s.pending = s.pending[:0]
	for {
		if end >= 0 && s.off >= end {
			break
		}
		if unknown {
			if segEnd >= 0 && s.off >= segEnd {
				break
			}
			b, err := s.r.Peek(4)
			if len(b) == 0 && err == io.EOF {
				break
			}
			if len(b) > 0 {
				if il := vintLen(b[0]); il >= 1 && il <= len(b) {
					var id uint32
					for _, c := range b[:il] {
						id = id<<8 | uint32(c)
					}
					if isTopLevel(id) {
						break
					}
				}
			}
		}
		id, csize, cunknown, err := s.elemHeader()
		if err != nil {
			return unexpected(err)
		}
		if cunknown || (end >= 0 && (s.off > end || csize > uint64(end-s.off))) {
			return errCorrupt
		}
		switch id {
		case idTimestamp:
			body, err := s.readBody(csize, 8)
			if err != nil {
				return err
			}
			ts = int64(min(readUint(body), math.MaxInt64/2))
		case idSimpleBlock:
			if err := s.simpleBlock(csize, ts, &cc); err != nil {
				return err
			}
		case idBlockGroup:
			body, err := s.readBody(csize, maxBlockGroup)
			if err != nil {
				return err
			}
			if !s.blockGroup(body, ts, &cc) {
				return errCorrupt
			}
		default:
			if err := s.skip(csize); err != nil {
				return err
			}
		}
	}
	if cc.frames > 0 {
		if !s.haveFrame {
			s.haveFrame = true
			s.sum.FirstPTS = time.Duration(cc.first * s.scale)
		}
		s.sum.LastPTS = time.Duration(cc.last * s.scale)
		s.sum.Frames += cc.frames
		s.sum.Keyframes += cc.keys
	}
	if s.onBlock != nil {
		for _, b := range s.pending {
			s.onBlock(b)
		}
	}
	return nil
}

// blockHeader parses the start of a Block or SimpleBlock: track number,
// relative timestamp, flags, and the lace count byte when laced. It
// returns the header length, or 0 if b is too short or invalid.
func blockHeader(b []byte) (track uint64, rel int16, flags byte, frames, n int) {
	track, tl, _ := readVint(b)
	if tl == 0 || len(b) < tl+3 {
		return 0, 0, 0, 0, 0
	}
	rel = int16(binary.BigEndian.Uint16(b[tl:]))
	flags = b[tl+2]
	n = tl + 3
	frames = 1
	if flags&0x06 != 0 { // laced
		if len(b) < n+1 {
			return 0, 0, 0, 0, 0
		}
		frames = int(b[n]) + 1
		n++
	}
	return track, rel, flags, frames, n
}

// count adds one block to the cluster's counts.
func (s *scanner) count(cc *clusterCounts, blk scannedBlock) {
	if s.track != 0 && blk.track != s.track {
		return
	}
	if !cc.haveFirst {
		cc.haveFirst = true
		cc.first = blk.ms
	}
	cc.last = blk.ms
	cc.frames += int64(blk.frames)
	if blk.key {
		cc.keys += int64(blk.frames)
	}
	if s.onBlock != nil {
		s.pending = append(s.pending, blk)
	}
}

// simpleBlock reads a SimpleBlock of size bytes.
func (s *scanner) simpleBlock(size uint64, ts int64, cc *clusterCounts) error {
	peek := int(min(size, 12))
	b, err := s.r.Peek(peek)
	if err != nil {
		return unexpected(err)
	}
	track, rel, flags, frames, n := blockHeader(b)
	if n == 0 {
		return errCorrupt
	}
	if _, err := s.r.Discard(n); err != nil {
		return unexpected(err)
	}
	s.off += int64(n)
	rest := size - uint64(n)
	blk := scannedBlock{track: track, ms: ts + int64(rel), key: flags&0x80 != 0, frames: frames}
	if s.onBlock != nil {
		if blk.data, err = s.readBody(rest, math.MaxInt64); err != nil {
			return err
		}
	} else if err := s.skip(rest); err != nil {
		return err
	}
	s.count(cc, blk)
	return nil
}

// blockGroup reads an in-memory BlockGroup: a Block is a keyframe when
// the group has no ReferenceBlock.
func (s *scanner) blockGroup(body []byte, ts int64, cc *clusterCounts) bool {
	const idReferenceBlock = 0xFB
	var blk scannedBlock
	have, ref, valid := false, false, true
	ok := children(body, func(id uint32, data []byte) {
		switch id {
		case idBlock:
			track, rel, _, frames, n := blockHeader(data)
			if n == 0 {
				valid = false
				return
			}
			have = true
			blk = scannedBlock{track: track, ms: ts + int64(rel), frames: frames, data: data[n:]}
		case idReferenceBlock:
			ref = true
		}
	})
	if !ok || !valid {
		return false
	}
	if have {
		blk.key = !ref
		s.count(cc, blk)
	}
	return true
}

// FirstCluster is the offset of the first Cluster of a Matroska file, or −1
// when r is not one or has no cluster in its first MiB. What follows it is
// media only: a Writer appends clusters, and patches only what comes before
// (the Segment size, the Info Duration, the SeekHead) when it closes the
// file, so the bytes from there on identify the recording, open or closed.
func FirstCluster(r io.ReaderAt) int64 {
	const limit = 1 << 20
	for at := int64(0); at < limit; {
		id, size, unknown, n, err := headerAt(r, at)
		if err != nil {
			return -1
		}
		body := at + int64(n)
		switch {
		case id == idCluster:
			return at
		case id == idSegment:
			at = body // into the segment, whose size may be unknown
		case unknown || size > limit:
			return -1 // an element of unknown or huge size before any cluster
		default:
			at = body + int64(size)
		}
	}
	return -1
}
