package mkv

import (
	"fmt"
	"io"
	"math"
	"os"
)

// Track describes the one media track of a file.
type Track struct {
	Codec     string // "opus", "vp8", "vp9", "h264" or "av1" (case-insensitive)
	ClockRate int    // RTP clock rate: 48000 for Opus, 90000 for video
	Channels  int    // audio only; Opus: 1 or 2 (0 means 2, as WebRTC signals it)
	// Width and Height are the video size, optional: when either is 0 the
	// size is read from the first frame if it is a keyframe (VP8, VP9) or
	// carries the parameter sets (H.264 SPS, AV1 sequence header). When it
	// cannot be found the file has no Video element and players take the
	// size from the bitstream.
	Width, Height int
}

const (
	// timestampScale is the Info TimestampScale: 1 ms in nanoseconds.
	timestampScale = 1_000_000
	// clusterSpanMS: a cluster is written before it would span this long.
	clusterSpanMS = 1000
	// maxClusterBytes: a cluster is written before it would grow past this,
	// to bound memory for very high bitrates.
	maxClusterBytes = 32 << 20
	// clusterHdrMax is the room reserved in front of the buffered blocks
	// for the Cluster ID, its size and the cluster Timestamp element.
	clusterHdrMax = 4 + 8 + 2 + 8
	// seekHeadSpace is the size of the Void reserved at the start of the
	// Segment for the SeekHead written by Close.
	seekHeadSpace = 96
	// durationSpace is the size of the Void reserved in Info for the
	// Duration element (2-byte ID, 1-byte size, 8-byte float).
	durationSpace = 11
	// trackNumber is the number of the only track.
	trackNumber = 1
)

// Writer writes one track to a Matroska/WebM file as frames arrive. It is
// not safe for concurrent use.
type Writer struct {
	w     io.Writer
	ws    io.WriteSeeker // nil when the output cannot seek
	f     *os.File       // the file New created, closed by Close
	base  int64          // ws position when the writer was made
	t     Track
	codec codecInfo

	n       int64 // bytes written
	err     error // sticky write error
	closed  bool
	started bool // header written

	// Offsets from the start of the output, known once started.
	segSizePos, segData, seekHeadPos, infoPos, tracksPos, durationPos int64

	// The cluster being gathered: clusterHdrMax reserved bytes, then
	// SimpleBlocks.
	buf        []byte
	open       bool
	clusterMS  int64
	clusterKey bool // the cluster starts with a keyframe

	frames      int64
	lastPTS     int64 // ticks
	lastMS      int64
	prevMS      int64
	lastSamples int // Opus: 48 kHz samples in the last packet
	cues        []cuePoint
}

// cuePoint is a cluster that starts with a keyframe.
type cuePoint struct {
	ms  int64 // cluster time
	pos int64 // cluster offset from the start of the Segment data
}

// New creates (or truncates) the file at path and returns a Writer for it.
// Close finalizes and closes the file.
func New(path string, t Track) (*Writer, error) {
	if _, _, err := checkTrack(t); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("mkv: create: %w", err)
	}
	w, err := NewWith(f, t)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	w.f = f
	return w, nil
}

// NewWith returns a Writer that writes to w. Nothing is written before
// the first frame. If w is also an io.WriteSeeker that can seek, Close
// finalizes the file (Cues, Duration, SeekHead, Segment size); otherwise
// Close only writes the buffered cluster. Close does not close w.
func NewWith(w io.Writer, t Track) (*Writer, error) {
	t, c, err := checkTrack(t)
	if err != nil {
		return nil, err
	}
	wr := &Writer{w: w, t: t, codec: c, buf: make([]byte, clusterHdrMax, 64<<10)}
	if ws, ok := w.(io.WriteSeeker); ok {
		if pos, err := ws.Seek(0, io.SeekCurrent); err == nil {
			wr.ws, wr.base = ws, pos
		}
	}
	return wr, nil
}

// checkTrack validates t and fills in defaults.
func checkTrack(t Track) (Track, codecInfo, error) {
	c, ok := lookupCodec(t.Codec)
	if !ok {
		return t, c, fmt.Errorf("mkv: codec %q: %w", t.Codec, ErrUnsupportedCodec)
	}
	t.Codec = c.name
	if t.ClockRate <= 0 {
		return t, c, fmt.Errorf("mkv: %s track: invalid clock rate %d", c.name, t.ClockRate)
	}
	if c.video {
		if t.Width < 0 || t.Height < 0 {
			return t, c, fmt.Errorf("mkv: %s track: invalid size %dx%d", c.name, t.Width, t.Height)
		}
		t.Channels = 0
	} else {
		if t.Channels == 0 {
			t.Channels = 2
		}
		if _, err := opusHead(t.Channels); err != nil {
			return t, c, err
		}
		t.Width, t.Height = 0, 0
	}
	return t, c, nil
}

// Track returns the track description, with defaults filled in and, once
// the first frame is written, the video size found in it.
func (w *Writer) Track() Track { return w.t }

// Bytes returns the number of bytes written to the output so far; frames
// still gathered in memory are not counted.
func (w *Writer) Bytes() int64 { return w.n }

// toMS converts RTP ticks to milliseconds, rounding to nearest, without
// overflowing for any non-negative pts.
func (w *Writer) toMS(pts int64) int64 {
	cr := int64(w.t.ClockRate)
	return pts/cr*1000 + (pts%cr*1000+cr/2)/cr
}

// WriteFrame adds one frame. pts is the frame's RTP timestamp minus the
// first frame's, in ClockRate ticks (so the first frame is normally 0);
// it must not be negative or smaller than the previous frame's. keyframe
// marks video frames that can be decoded on their own; audio frames are
// always stored as keyframes. data is not retained after the call.
//
// Frames go to a cluster in memory, which is written out whole before a
// video keyframe, before the cluster would span 1 s or more, and by Flush
// and Close. The first frame also writes the file header; for H.264 it
// must carry SPS and PPS, for AV1 a sequence header, or WriteFrame
// returns ErrNeedParameterSets and writes nothing.
//
// A frame rejected with ErrTimestamp, ErrBadFrame or ErrNeedParameterSets
// leaves the writer usable. After an error writing to the output, every
// call returns that error.
func (w *Writer) WriteFrame(pts int64, keyframe bool, data []byte) error {
	if w.closed {
		return fmt.Errorf("mkv: write frame: %w", ErrClosed)
	}
	if w.err != nil {
		return w.err
	}
	if len(data) == 0 {
		return fmt.Errorf("mkv: write frame at pts %d: empty frame: %w", pts, ErrBadFrame)
	}
	if pts < 0 {
		return fmt.Errorf("mkv: write frame: negative pts %d: %w", pts, ErrTimestamp)
	}
	if w.frames > 0 && pts < w.lastPTS {
		return fmt.Errorf("mkv: write frame: pts %d is before the previous frame's %d: %w", pts, w.lastPTS, ErrTimestamp)
	}
	if !w.codec.video {
		keyframe = true
	}

	size := len(data)
	switch w.codec.name {
	case "h264":
		var count int
		if size, count = avcLen(data); count == 0 {
			return fmt.Errorf("mkv: write frame at pts %d: no H.264 NAL unit: %w", pts, ErrBadFrame)
		}
	case "av1":
		var count int
		var err error
		if size, count, err = av1Len(data); err != nil || count == 0 {
			return fmt.Errorf("mkv: write frame at pts %d: AV1 temporal unit has no valid OBU: %w", pts, ErrBadFrame)
		}
	}

	if !w.started {
		if err := w.writeHeader(keyframe, data); err != nil {
			return err
		}
	}

	ms := w.toMS(pts)
	blockLen := 1 + sizeLen(uint64(4+size)) + 4 + size
	if w.open {
		span := ms - w.clusterMS
		if (w.codec.video && keyframe) || span >= clusterSpanMS || span > math.MaxInt16 ||
			len(w.buf)-clusterHdrMax+blockLen > maxClusterBytes {
			if err := w.flushCluster(); err != nil {
				return err
			}
		}
	}
	if !w.open {
		w.open = true
		w.clusterMS = ms
		w.clusterKey = keyframe
		w.buf = w.buf[:clusterHdrMax]
	}

	rel := ms - w.clusterMS
	var flags byte
	if keyframe {
		flags = 0x80
	}
	w.buf = append(w.buf, idSimpleBlock)
	w.buf = appendSize(w.buf, uint64(4+size))
	w.buf = append(w.buf, 0x80|trackNumber, byte(rel>>8), byte(rel), flags)
	switch w.codec.name {
	case "h264":
		w.buf = appendAVC(w.buf, data)
	case "av1":
		w.buf = appendAV1(w.buf, data)
	default:
		w.buf = append(w.buf, data...)
	}

	if w.frames > 0 {
		w.prevMS = w.lastMS
	}
	w.frames++
	w.lastPTS = pts
	w.lastMS = ms
	if w.codec.name == "opus" {
		w.lastSamples = opusPacketSamples(data)
	}
	return nil
}

// Flush writes the cluster gathered in memory, if any, so that it
// survives the process. It does not sync the file to disk.
func (w *Writer) Flush() error {
	if w.closed {
		return fmt.Errorf("mkv: flush: %w", ErrClosed)
	}
	if w.err != nil {
		return w.err
	}
	return w.flushCluster()
}

// Close writes the buffered cluster and, when the output can seek,
// finalizes the file: Cues after the last cluster, then the Duration,
// the SeekHead and the Segment size patched into the header. It closes
// the file if the Writer was made by New. A Writer that was given no
// frame writes nothing, leaving an empty file. Close returns an earlier
// write error if there was one; calling it again returns nil.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.err
	if err == nil {
		err = w.flushCluster()
	}
	if err == nil && w.started && w.ws != nil {
		err = w.finalize()
	}
	if w.f != nil {
		if cerr := w.f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("mkv: close: %w", cerr)
		}
	}
	return err
}

// write writes b in one call and counts it.
func (w *Writer) write(b []byte, what string) error {
	n, err := w.w.Write(b)
	w.n += int64(n)
	if err != nil {
		w.err = fmt.Errorf("mkv: write %s: %w", what, err)
		return w.err
	}
	return nil
}

// flushCluster writes the gathered cluster as one complete element.
func (w *Writer) flushCluster() error {
	if !w.open {
		return nil
	}
	w.open = false
	body := len(w.buf) - clusterHdrMax
	var hdr [clusterHdrMax]byte
	h := appendID(hdr[:0], idCluster)
	h = appendSize(h, uint64(2+uintLen(uint64(w.clusterMS))+body))
	h = appendUint(h, idTimestamp, uint64(w.clusterMS))
	start := clusterHdrMax - len(h)
	copy(w.buf[start:], h)
	pos := w.n
	err := w.write(w.buf[start:], "cluster")
	w.buf = w.buf[:clusterHdrMax]
	if err != nil {
		return err
	}
	if w.clusterKey {
		w.cues = append(w.cues, cuePoint{ms: w.clusterMS, pos: pos - w.segData})
	}
	return nil
}

// durationMS estimates the track duration for Info: the last frame's
// time plus its length, which is exact for Opus (read from the packet's
// TOC) and taken as the last frame interval for video.
func (w *Writer) durationMS() float64 {
	last := w.lastMS - w.prevMS
	if w.codec.name == "opus" && w.lastSamples > 0 {
		return float64(w.lastMS) + float64(w.lastSamples)*1000/opusSampleRate
	}
	if w.frames < 2 {
		last = 0
	}
	return float64(w.lastMS + last)
}

// finalize appends Cues and patches the header. Each step leaves a file
// that players read: Cues are a valid top-level element after the last
// cluster, Duration and SeekHead replace Void elements of the same size,
// and the Segment size, patched last, covers everything written.
func (w *Writer) finalize() error {
	cuesPos := int64(-1)
	if len(w.cues) > 0 {
		var body []byte
		for _, c := range w.cues {
			var tp, cp []byte
			tp = appendUint(tp, idCueTrack, trackNumber)
			tp = appendUint(tp, idCueClusterPos, uint64(c.pos))
			cp = appendUint(cp, idCueTime, uint64(c.ms))
			cp = appendMaster(cp, idCueTrackPos, tp)
			body = appendMaster(body, idCuePoint, cp)
		}
		cuesPos = w.n
		if err := w.write(appendMaster(nil, idCues, body), "cues"); err != nil {
			return err
		}
	}
	end := w.n

	if d := w.durationMS(); d > 0 {
		if err := w.patch(w.durationPos, appendFloat(nil, idDuration, d), "duration"); err != nil {
			return err
		}
	}

	var sh []byte
	sh = appendSeek(sh, idInfo, w.infoPos-w.segData)
	sh = appendSeek(sh, idTracks, w.tracksPos-w.segData)
	if cuesPos >= 0 {
		sh = appendSeek(sh, idCues, cuesPos-w.segData)
	}
	sh = appendMaster(nil, idSeekHead, sh)
	if rest := seekHeadSpace - len(sh); rest > 0 {
		sh = appendVoid(sh, rest)
	}
	if len(sh) != seekHeadSpace {
		return fmt.Errorf("mkv: close: SeekHead of %d bytes does not fit in %d", len(sh), seekHeadSpace)
	}
	if err := w.patch(w.seekHeadPos, sh, "seek head"); err != nil {
		return err
	}

	size := appendSizeN(nil, uint64(end-w.segData), 8)
	if err := w.patch(w.segSizePos, size, "segment size"); err != nil {
		return err
	}
	if _, err := w.ws.Seek(w.base+end, io.SeekStart); err != nil {
		w.err = fmt.Errorf("mkv: close: seek to end: %w", err)
		return w.err
	}
	return nil
}

// patch overwrites bytes at offset off of the output.
func (w *Writer) patch(off int64, b []byte, what string) error {
	if _, err := w.ws.Seek(w.base+off, io.SeekStart); err != nil {
		w.err = fmt.Errorf("mkv: close: seek to %s: %w", what, err)
		return w.err
	}
	if _, err := w.ws.Write(b); err != nil {
		w.err = fmt.Errorf("mkv: close: write %s: %w", what, err)
		return w.err
	}
	return nil
}

// appendSeek appends a SeekHead entry.
func appendSeek(b []byte, id uint32, pos int64) []byte {
	var e []byte
	e = appendBytes(e, idSeekID, appendID(nil, id))
	e = appendUint(e, idSeekPosition, uint64(pos))
	return appendMaster(b, idSeek, e)
}
