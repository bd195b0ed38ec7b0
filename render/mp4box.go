package render

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// This file reads, from an MP4's boxes (ISO/IEC 14496-12), what
// verifyOutput checks of an MP4 or M4A output: the movie's length and each
// track's handler and codec. It replaces ffprobe there because starting
// ffprobe (loading FFmpeg's shared libraries) costs about 0.26 G
// instructions per output, far more than this read.
//
// A box is a 32-bit size and a four-character type; a size of 1 means a
// 64-bit size follows, a size of 0 that the box runs to the end of its
// container (the file, at the top level). Full boxes start their body with
// a version byte and 24 bits of flags. Only box headers and the few small
// boxes needed (mvhd, hdlr, the head of stsd) are read, a few dozen bytes
// at a time with ReadAt: mdat is skipped by its size wherever it is (FFmpeg writes moov
// before it with -movflags +faststart, after it otherwise), and so are
// moov's sample tables, which grow with the length of the movie. The boxes
// descended into are fixed (moov, trak, mdia, minf, stbl), so there is no
// recursion to bound.

// maxBoxes bounds the boxes read in one container. Every box takes at least
// 8 bytes, so a walk always ends; the bound keeps a file of millions of
// empty boxes from costing a read each. FFmpeg's MP4s have a handful at
// each level (a fragmented one two per fragment).
const maxBoxes = 1 << 20

// mp4Info is what readMP4 reads of an MP4.
type mp4Info struct {
	// Timescale and Units are mvhd's: the movie lasts Units/Timescale
	// seconds.
	Timescale uint32
	Units     uint64
	Tracks    []mp4Track
}

// Duration is the movie's length in seconds (mvhd's). For FFmpeg's MP4s it
// is the format duration ffprobe reports (ffprobe gives it in whole
// microseconds).
func (m mp4Info) Duration() float64 { return float64(m.Units) / float64(m.Timescale) }

// mp4Track is one trak.
type mp4Track struct {
	// Handler is mdia/hdlr's handler type: "vide", "soun", "sbtl" or
	// "text" (subtitles)…
	Handler string
	// Codec is the type of the first sample entry of mdia/minf/stbl/stsd:
	// "avc1", "mp4a", "tx3g"…
	Codec string
}

// String is the track as handler/codec ("vide/avc1").
func (t mp4Track) String() string { return t.Handler + "/" + t.Codec }

// box is where one box lies in the file.
type box struct {
	typ string
	off int64 // its first byte (of its header)
	hdr int64 // header length: 8, 16 with a 64-bit size, 16 more for a uuid
	len int64 // header included
}

func (b box) body() int64 { return b.off + b.hdr }
func (b box) end() int64  { return b.off + b.len }

// String names the box in errors.
func (b box) String() string { return fmt.Sprintf("%q at %d", b.typ, b.off) }

// readMP4 reads an MP4 file's movie length and tracks (see readMP4From).
func readMP4(path string) (mp4Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return mp4Info{}, fmt.Errorf("read MP4: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return mp4Info{}, fmt.Errorf("read MP4: %w", err)
	}
	info, err := readMP4From(f, st.Size())
	if err != nil {
		return mp4Info{}, fmt.Errorf("read MP4 %s: %w", path, err)
	}
	return info, nil
}

// readMP4From reads the movie length and tracks of the MP4 of size bytes
// in r. The top-level boxes must tile the file exactly, and the boxes on
// the way to what is read must tile their parents: a file cut short (a box
// running past its end) is an error, as is a moov without mvhd, a track
// without hdlr or a sample entry, a box shorter than its header or than
// its fields, or a zero timescale.
func readMP4From(r io.ReaderAt, size int64) (mp4Info, error) {
	var moov box
	var found bool
	var top []string
	err := eachBox(r, 0, size, "the file", func(b box) error {
		if len(top) < 16 {
			top = append(top, b.typ)
		}
		if b.typ != "moov" {
			return nil
		}
		if found {
			return fmt.Errorf("two moov boxes, at %d and %d", moov.off, b.off)
		}
		moov, found = b, true
		return nil
	})
	if err != nil {
		return mp4Info{}, err
	}
	if !found {
		return mp4Info{}, fmt.Errorf("no moov box (top-level boxes: %q)", top)
	}

	var info mp4Info
	var mvhd bool
	err = eachBox(r, moov.body(), moov.end(), moov.String(), func(b box) error {
		switch b.typ {
		case "mvhd":
			if mvhd {
				return fmt.Errorf("box %v: a second mvhd at %d", moov, b.off)
			}
			ts, units, err := readMvhd(r, b)
			if err != nil {
				return err
			}
			info.Timescale, info.Units, mvhd = ts, units, true
		case "trak":
			t, err := readTrak(r, b)
			if err != nil {
				return fmt.Errorf("track %d (trak at %d): %w", len(info.Tracks)+1, b.off, err)
			}
			info.Tracks = append(info.Tracks, t)
		}
		return nil
	})
	if err != nil {
		return mp4Info{}, err
	}
	if !mvhd {
		return mp4Info{}, fmt.Errorf("box %v has no mvhd", moov)
	}
	return info, nil
}

// readMvhd reads the movie header's timescale and duration: 32-bit fields
// after two 32-bit times in version 0, a 64-bit duration after two 64-bit
// times in version 1.
func readMvhd(r io.ReaderAt, b box) (timescale uint32, units uint64, err error) {
	var p [32]byte
	body, err := readBody(r, b, p[:], 4)
	if err != nil {
		return 0, 0, err
	}
	switch v := body[0]; v {
	case 0:
		if len(body) < 20 {
			return 0, 0, fmt.Errorf("box %v: %d bytes, too short for version 0 (20)", b, len(body))
		}
		timescale, units = binary.BigEndian.Uint32(body[12:16]), uint64(binary.BigEndian.Uint32(body[16:20]))
		if units == 1<<32-1 {
			return 0, 0, fmt.Errorf("box %v: duration unknown (all ones)", b)
		}
	case 1:
		if len(body) < 32 {
			return 0, 0, fmt.Errorf("box %v: %d bytes, too short for version 1 (32)", b, len(body))
		}
		timescale, units = binary.BigEndian.Uint32(body[20:24]), binary.BigEndian.Uint64(body[24:32])
		if units == 1<<64-1 {
			return 0, 0, fmt.Errorf("box %v: duration unknown (all ones)", b)
		}
	default:
		return 0, 0, fmt.Errorf("box %v: version %d, want 0 or 1", b, v)
	}
	if timescale == 0 {
		return 0, 0, fmt.Errorf("box %v: timescale 0", b)
	}
	return timescale, units, nil
}

// readTrak reads a track's handler (mdia/hdlr) and the type of its first
// sample entry (mdia/minf/stbl/stsd).
func readTrak(r io.ReaderAt, trak box) (mp4Track, error) {
	mdia, err := child(r, trak, "mdia")
	if err != nil {
		return mp4Track{}, err
	}
	hdlr, err := child(r, mdia, "hdlr")
	if err != nil {
		return mp4Track{}, err
	}
	// hdlr is a full box: version and flags, pre_defined, handler_type.
	var p [12]byte
	body, err := readBody(r, hdlr, p[:], 12)
	if err != nil {
		return mp4Track{}, err
	}
	t := mp4Track{Handler: string(body[8:12])}

	stsd := mdia
	for _, typ := range []string{"minf", "stbl", "stsd"} {
		if stsd, err = child(r, stsd, typ); err != nil {
			return mp4Track{}, err
		}
	}
	// stsd is a full box: version and flags, entry_count, then the sample
	// entries, each a box whose type is the codec's.
	body, err = readBody(r, stsd, p[:8], 8)
	if err != nil {
		return mp4Track{}, err
	}
	if binary.BigEndian.Uint32(body[4:8]) == 0 {
		return mp4Track{}, fmt.Errorf("box %v has no sample entry", stsd)
	}
	entry, err := readHeader(r, stsd.body()+8, stsd.end(), stsd.String())
	if err != nil {
		return mp4Track{}, err
	}
	t.Codec = entry.typ
	return t, nil
}

// child returns the first box of a type among parent's children, which it
// checks tile parent.
func child(r io.ReaderAt, parent box, typ string) (box, error) {
	var c box
	var found bool
	err := eachBox(r, parent.body(), parent.end(), parent.String(), func(b box) error {
		if b.typ == typ && !found {
			c, found = b, true
		}
		return nil
	})
	if err != nil {
		return box{}, err
	}
	if !found {
		return box{}, fmt.Errorf("box %v has no %s", parent, typ)
	}
	return c, nil
}

// eachBox calls fn on each box of [start, end), a container's body (in
// names it in errors), in order; they must tile it exactly.
func eachBox(r io.ReaderAt, start, end int64, in string, fn func(box) error) error {
	for n, off := 0, start; off < end; n++ {
		if n == maxBoxes {
			return fmt.Errorf("%s: more than %d boxes", in, maxBoxes)
		}
		b, err := readHeader(r, off, end, in)
		if err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
		off = b.end()
	}
	return nil
}

// readHeader reads the header of the box at off, which must end by end,
// the end of its container (in names it in errors).
func readHeader(r io.ReaderAt, off, end int64, in string) (box, error) {
	if end-off < 8 {
		return box{}, fmt.Errorf("%d stray bytes at %d, at the end of %s (a box header takes 8)", end-off, off, in)
	}
	var h [16]byte
	if err := readFull(r, h[:8], off); err != nil {
		return box{}, err
	}
	b := box{typ: string(h[4:8]), off: off, hdr: 8}
	size := uint64(binary.BigEndian.Uint32(h[:4]))
	switch size {
	case 1:
		if end-off < 16 {
			return box{}, fmt.Errorf("box %v: its 64-bit size runs past the end of %s%s", b, in, cutShort(in))
		}
		if err := readFull(r, h[8:16], off+8); err != nil {
			return box{}, err
		}
		size, b.hdr = binary.BigEndian.Uint64(h[8:16]), 16
	case 0:
		size = uint64(end - off)
	}
	if b.typ == "uuid" {
		b.hdr += 16
	}
	if size < uint64(b.hdr) {
		return box{}, fmt.Errorf("box %v in %s: size %d, shorter than its header (%d bytes)", b, in, size, b.hdr)
	}
	if left := uint64(end - off); size > left {
		return box{}, fmt.Errorf("box %v (%d bytes) runs %d bytes past the end of %s%s", b, size, size-left, in, cutShort(in))
	}
	b.len = int64(size)
	return b, nil
}

// cutShort explains a box running past the end of the file.
func cutShort(in string) string {
	if in == "the file" {
		return ": the file is cut short"
	}
	return ""
}

// readBody reads up to len(p) bytes of b's body into p, and fails if the
// body is shorter than least.
func readBody(r io.ReaderAt, b box, p []byte, least int) ([]byte, error) {
	n := int64(len(p))
	if l := b.len - b.hdr; l < n {
		n = l
	}
	if n < int64(least) {
		return nil, fmt.Errorf("box %v: a body of %d bytes, too short (at least %d)", b, b.len-b.hdr, least)
	}
	if err := readFull(r, p[:n], b.body()); err != nil {
		return nil, err
	}
	return p[:n], nil
}

// readFull reads len(p) bytes at off: the box sizes were checked against
// the file's size, so a short read means the file shrank or failed.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at %d: %w", len(p), off, err)
}
