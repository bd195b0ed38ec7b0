package storage

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

func TestKnownPartSize(t *testing.T) {
	const mib = 1 << 20
	for _, tt := range []struct{ size, min, want int64 }{
		{0, 0, 8 * mib},
		{100 * mib, 0, 8 * mib},
		{8 * mib * MaxParts, 0, 8 * mib},         // exactly 10,000 parts
		{8*mib*MaxParts + 1, 0, 9 * mib},         // grows by whole MiB
		{1 << 40, 0, 105 * mib},                  // 1 TiB
		{MaxParts * MaxPartSize, 0, MaxPartSize}, // the largest object
		{100 * mib, 5 * mib, 5 * mib},
		{100 * mib, 64 * mib, 64 * mib},
	} {
		got := knownPartSize(tt.size, tt.min)
		if got != tt.want {
			t.Errorf("knownPartSize(%d, %d) = %d, want %d", tt.size, tt.min, got, tt.want)
		}
		if parts := (tt.size + got - 1) / got; parts > MaxParts || got < MinPartSize || got > MaxPartSize {
			t.Errorf("knownPartSize(%d, %d) = %d: %d parts", tt.size, tt.min, got, parts)
		}
	}
}

func TestUnknownPartSize(t *testing.T) {
	const mib = 1 << 20
	for _, tt := range []struct {
		n          int
		base, want int64
	}{
		{1, 0, 16 * mib}, {2000, 0, 16 * mib}, {2001, 0, 32 * mib}, {8001, 0, 256 * mib}, {10000, 0, 256 * mib},
		{1, 5 * mib, 5 * mib}, {10000, 1 << 30, MaxPartSize},
	} {
		if got := unknownPartSize(tt.n, tt.base); got != tt.want {
			t.Errorf("unknownPartSize(%d, %d) = %d, want %d", tt.n, tt.base, got, tt.want)
		}
	}
	// The documented limit: 968.75 GiB with the default 16 MiB start.
	if got, want := MaxUnknownSize(0), int64(968.75*(1<<30)); got != want {
		t.Errorf("MaxUnknownSize(0) = %d, want %d", got, want)
	}
}

func TestChunker(t *testing.T) {
	data := []byte("0123456789abcdefghij") // 20 bytes
	for _, tt := range []struct {
		name  string
		r     io.Reader
		sizes []int // buffer per call
		want  []string
		last  int // index of the call that reports last
	}{
		{"exact", bytes.NewReader(data), []int{10, 10}, []string{"0123456789", "abcdefghij"}, 1},
		{"short tail", bytes.NewReader(data), []int{8, 8, 8}, []string{"01234567", "89abcdef", "ghij"}, 2},
		{"one byte reads", iotest.OneByteReader(bytes.NewReader(data)), []int{10, 10}, []string{"0123456789", "abcdefghij"}, 1},
		{"data and EOF together", iotest.DataErrReader(bytes.NewReader(data)), []int{20}, []string{string(data)}, 0},
		{"empty", bytes.NewReader(nil), []int{4}, []string{""}, 0},
		{"empty buffer", bytes.NewReader(nil), []int{0}, []string{""}, 0},
		{"more than buffer", bytes.NewReader(data), []int{0}, []string{""}, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := chunker{r: tt.r}
			for i, size := range tt.sizes {
				buf := make([]byte, size)
				n, last, err := c.next(buf)
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				if got, want := string(buf[:n]), tt.want[i]; got != want {
					t.Errorf("call %d: %q, want %q", i, got, want)
				}
				if got, want := last, i == tt.last; got != want {
					t.Errorf("call %d: last = %v, want %v", i, got, want)
				}
			}
		})
	}
	c := chunker{r: iotest.ErrReader(io.ErrClosedPipe)}
	if _, _, err := c.next(make([]byte, 4)); err != io.ErrClosedPipe {
		t.Errorf("failing reader: err = %v, want %v", err, io.ErrClosedPipe)
	}
}
