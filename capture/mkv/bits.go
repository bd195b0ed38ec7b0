package mkv

// bitReader reads big-endian bit fields from a byte slice. Reading past
// the end sets a sticky failure flag and yields zeros, so header parsers
// can read a run of fields and check ok() once at the end.
type bitReader struct {
	b    []byte
	pos  int // in bits
	fail bool
}

// u reads an n-bit unsigned field, n <= 64.
func (r *bitReader) u(n int) uint64 {
	var v uint64
	for i := 0; i < n; i++ {
		if r.pos >= len(r.b)*8 {
			r.fail = true
			return 0
		}
		bit := r.b[r.pos/8] >> (7 - uint(r.pos%8)) & 1
		v = v<<1 | uint64(bit)
		r.pos++
	}
	return v
}

// flag reads one bit.
func (r *bitReader) flag() bool { return r.u(1) == 1 }

// ue reads an unsigned Exp-Golomb code (H.264).
func (r *bitReader) ue() uint64 {
	zeros := 0
	for !r.flag() {
		if r.fail || zeros >= 32 {
			r.fail = true
			return 0
		}
		zeros++
	}
	return 1<<uint(zeros) - 1 + r.u(zeros)
}

// se reads a signed Exp-Golomb code (H.264).
func (r *bitReader) se() int64 {
	k := r.ue()
	if k&1 == 1 {
		return int64(k+1) / 2
	}
	return -int64(k / 2)
}

// uvlc reads an AV1 variable-length unsigned code.
func (r *bitReader) uvlc() uint64 {
	zeros := 0
	for !r.flag() {
		if r.fail || zeros >= 32 {
			r.fail = true
			return 0
		}
		zeros++
	}
	return r.u(zeros) + 1<<uint(zeros) - 1
}

// ok reports whether every read so far stayed inside the data.
func (r *bitReader) ok() bool { return !r.fail }
