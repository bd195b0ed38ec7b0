package mkv

import (
	"encoding/binary"
	"io"
	"math"
)

// EBML and Matroska element IDs used by this package. IDs are kept with
// their length marker bits, exactly as they appear in the file.
const (
	idEBML               = 0x1A45DFA3
	idEBMLVersion        = 0x4286
	idEBMLReadVersion    = 0x42F7
	idEBMLMaxIDLength    = 0x42F2
	idEBMLMaxSizeLength  = 0x42F3
	idDocType            = 0x4282
	idDocTypeVersion     = 0x4287
	idDocTypeReadVersion = 0x4285
	idVoid               = 0xEC
	idCRC32              = 0xBF

	idSegment       = 0x18538067
	idSeekHead      = 0x114D9B74
	idSeek          = 0x4DBB
	idSeekID        = 0x53AB
	idSeekPosition  = 0x53AC
	idInfo          = 0x1549A966
	idTimestampScal = 0x2AD7B1
	idDuration      = 0x4489
	idMuxingApp     = 0x4D80
	idWritingApp    = 0x5741
	idTracks        = 0x1654AE6B
	idTrackEntry    = 0xAE
	idTrackNumber   = 0xD7
	idTrackUID      = 0x73C5
	idTrackType     = 0x83
	idFlagLacing    = 0x9C
	idLanguage      = 0x22B59C
	idCodecID       = 0x86
	idCodecPrivate  = 0x63A2
	idCodecDelay    = 0x56AA
	idSeekPreRoll   = 0x56BB
	idVideo         = 0xE0
	idPixelWidth    = 0xB0
	idPixelHeight   = 0xBA
	idAudio         = 0xE1
	idSamplingFreq  = 0xB5
	idChannels      = 0x9F
	idCluster       = 0x1F43B675
	idTimestamp     = 0xE7
	idSimpleBlock   = 0xA3
	idBlockGroup    = 0xA0
	idBlock         = 0xA1
	idDiscardPad    = 0x75A2 // DiscardPadding: ns of a Block's end that a decoder drops
	idCues          = 0x1C53BB6B
	idCuePoint      = 0xBB
	idCueTime       = 0xB3
	idCueTrackPos   = 0xB7
	idCueTrack      = 0xF7
	idCueClusterPos = 0xF1
	idTags          = 0x1254C367
	idChapters      = 0x1043A770
	idAttachments   = 0x1941A469
)

// unknownSize is the 8-byte EBML size value meaning "unknown size"
// (all value bits set).
const unknownSize = 1<<56 - 1

// idLen returns the number of bytes of an element ID.
func idLen(id uint32) int {
	switch {
	case id <= 0xFF:
		return 1
	case id <= 0xFFFF:
		return 2
	case id <= 0xFFFFFF:
		return 3
	default:
		return 4
	}
}

// appendID appends an element ID.
func appendID(b []byte, id uint32) []byte {
	switch idLen(id) {
	case 1:
		return append(b, byte(id))
	case 2:
		return append(b, byte(id>>8), byte(id))
	case 3:
		return append(b, byte(id>>16), byte(id>>8), byte(id))
	default:
		return append(b, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	}
}

// sizeLen returns the length of the shortest EBML variable-size integer
// that holds v. The all-ones value of each length is reserved (it means
// unknown size), so it is avoided.
func sizeLen(v uint64) int {
	n := 1
	for n < 8 && v >= 1<<(7*uint(n))-1 {
		n++
	}
	return n
}

// appendSizeN appends v as an EBML variable-size integer of exactly n
// bytes (1..8). v must fit in 7*n bits.
func appendSizeN(b []byte, v uint64, n int) []byte {
	v |= 1 << (7 * uint(n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*uint(i))))
	}
	return b
}

// appendSize appends v as the shortest EBML variable-size integer.
func appendSize(b []byte, v uint64) []byte {
	return appendSizeN(b, v, sizeLen(v))
}

// uintLen is the number of bytes of the shortest big-endian encoding of
// v; zero takes one byte.
func uintLen(v uint64) int {
	n := 1
	for n < 8 && v>>(8*uint(n)) != 0 {
		n++
	}
	return n
}

// appendUint appends an unsigned integer element.
func appendUint(b []byte, id uint32, v uint64) []byte {
	n := uintLen(v)
	b = appendID(b, id)
	b = append(b, byte(0x80|n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*uint(i))))
	}
	return b
}

// appendFloat appends an 8-byte float element.
func appendFloat(b []byte, id uint32, v float64) []byte {
	b = appendID(b, id)
	b = append(b, 0x88)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(v))
}

// appendBytes appends a binary (or string) element.
func appendBytes(b []byte, id uint32, v []byte) []byte {
	b = appendID(b, id)
	b = appendSize(b, uint64(len(v)))
	return append(b, v...)
}

// appendString appends a string element.
func appendString(b []byte, id uint32, v string) []byte {
	b = appendID(b, id)
	b = appendSize(b, uint64(len(v)))
	return append(b, v...)
}

// appendMaster appends a master element with known size holding body.
func appendMaster(b []byte, id uint32, body []byte) []byte {
	return appendBytes(b, id, body)
}

// appendVoid appends a Void element whose total length (ID, size and
// payload) is exactly n bytes. n must be at least 2.
func appendVoid(b []byte, n int) []byte {
	b = append(b, idVoid)
	switch {
	case n-2 <= 126:
		b = appendSizeN(b, uint64(n-2), 1)
		n -= 2
	default:
		b = appendSizeN(b, uint64(n-9), 8)
		n -= 9
	}
	for ; n > 0; n-- {
		b = append(b, 0)
	}
	return b
}

// readVint decodes an EBML variable-size integer at the start of b. It
// returns the value with the length marker removed, its length in bytes,
// and whether the value was "all ones" (unknown size). n is 0 if b is too
// short or the first byte is invalid (zero).
func readVint(b []byte) (v uint64, n int, allOnes bool) {
	if len(b) == 0 || b[0] == 0 {
		return 0, 0, false
	}
	n = vintLen(b[0])
	if len(b) < n {
		return 0, 0, false
	}
	v = uint64(b[0]) & (0xFF >> uint(n))
	for i := 1; i < n; i++ {
		v = v<<8 | uint64(b[i])
	}
	return v, n, v == 1<<(7*uint(n))-1
}

// vintLen returns the length in bytes of a variable-size integer from its
// first byte, or 0 if the byte is zero (invalid).
func vintLen(first byte) int {
	for n := 1; n <= 8; n++ {
		if first&(0x80>>uint(n-1)) != 0 {
			return n
		}
	}
	return 0
}

// headerAt reads the ID and size of the element at at, and the length of
// both.
func headerAt(r io.ReaderAt, at int64) (id uint32, size uint64, unknown bool, n int, err error) {
	var b [12]byte // an ID (at most 4 bytes) and a size (at most 8)
	k, err := r.ReadAt(b[:], at)
	if k == 0 {
		if err == nil {
			err = io.EOF
		}
		return 0, 0, false, 0, err
	}
	il := vintLen(b[0])
	if il == 0 || il > 4 || il >= k {
		return 0, 0, false, 0, errCorrupt
	}
	for _, c := range b[:il] {
		id = id<<8 | uint32(c)
	}
	size, sl, unknown := readVint(b[il:k])
	if sl == 0 {
		return 0, 0, false, 0, errCorrupt
	}
	return id, size, unknown, il + sl, nil
}
