package mkv

import (
	"encoding/binary"
	"fmt"
	"io"
	"sort"
	"time"
)

// Packet is one block of an indexed file, as its header and first bytes
// tell it.
type Packet struct {
	// Ticks is the block's time at the file's TimestampScale.
	Ticks int64
	// Samples is, for Opus, the number of 48 kHz samples the packet
	// decodes to (RFC 6716 section 3.1), less those its BlockGroup's
	// DiscardPadding drops from its end (as FFmpeg marks a stream's last
	// packet); 0 for another codec, a laced block (several packets) or a
	// packet that cannot be read.
	Samples int
}

// OpusHead is what a file's Opus identification header (its CodecPrivate,
// RFC 7845 section 5.1) says about decoding.
type OpusHead struct {
	Channels int
	// PreSkip is the number of samples a decoder discards from the start
	// of the stream.
	PreSkip int
	// CodecDelay is the track's CodecDelay (ns): a demuxer moves the
	// blocks' times back by it, so that the first sample kept plays at
	// the first block's time.
	CodecDelay int64
}

// Opus returns the OpusHead of an Opus file, and false for another codec
// or a header it cannot read.
func (x *Clusters) Opus() (OpusHead, bool) {
	h := x.codecPrivate
	if x.codec != "opus" || len(h) < 19 || string(h[:8]) != "OpusHead" || h[9] == 0 {
		return OpusHead{}, false
	}
	return OpusHead{Channels: int(h[9]), PreSkip: int(binary.LittleEndian.Uint16(h[10:])), CodecDelay: x.codecDelay}, true
}

// TicksPerSecond is the number of the file's timestamp ticks in a second
// (1000 for the files this package writes).
func (x *Clusters) TicksPerSecond() int64 { return 1_000_000_000 / x.scale }

// Packets calls fn, in file order, with each block of the indexed clusters
// whose time lies in [from, to] (ticks), reading only each block's header
// and its payload's first bytes. The file's blocks are taken to be of its
// only track.
func (x *Clusters) Packets(r io.ReaderAt, from, to int64, fn func(Packet)) error {
	// A cluster holds no block before its own timestamp: the first that
	// can hold from is the last that starts at or before it.
	i := max(sort.Search(len(x.clusters), func(i int) bool { return x.clusters[i].ts > from })-1, 0)
	for ; i < len(x.clusters) && x.clusters[i].ts <= to; i++ {
		c := x.clusters[i]
		err := blocksAtWith(r, c, func(body int64, size uint64, discard int64) error {
			p, err := readPacket(r, c.ts, body, size, x.codec == "opus")
			if err != nil {
				return err
			}
			if discard > 0 && p.Samples > 0 {
				// As a demuxer turns it into samples to skip: rounded
				// to the nearest (a second at most: an Opus packet is
				// 120 ms at most).
				p.Samples = max(0, p.Samples-int((min(discard, int64(time.Second))*48_000+500_000_000)/1_000_000_000))
			}
			if p.Ticks >= from && p.Ticks <= to {
				fn(p)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("mkv: packets: %w", err)
		}
	}
	return nil
}

// readInt decodes a signed integer element body (big-endian two's
// complement, 0 to 8 bytes).
func readInt(b []byte) int64 {
	if len(b) == 0 {
		return 0
	}
	v := int64(int8(b[0]))
	for _, c := range b[1:] {
		v = v<<8 | int64(c)
	}
	return v
}

// readPacket reads the Block or SimpleBlock of size bytes at at, in a
// cluster of timestamp ts.
func readPacket(r io.ReaderAt, ts, at int64, size uint64, opus bool) (Packet, error) {
	var b [16]byte
	k, err := r.ReadAt(b[:min(uint64(len(b)), size)], at)
	if k == 0 && err != nil {
		return Packet{}, err
	}
	_, tl, _ := readVint(b[:k])
	if tl == 0 || k < tl+3 {
		return Packet{}, fmt.Errorf("block at %d: %w", at, errCorrupt)
	}
	p := Packet{Ticks: ts + int64(int16(binary.BigEndian.Uint16(b[tl:])))}
	if flags := b[tl+2]; opus && flags&0x06 == 0 {
		p.Samples = opusPacketSamples(b[tl+3 : k])
	}
	return p, nil
}
