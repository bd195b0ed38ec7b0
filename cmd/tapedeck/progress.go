package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/storage"
)

// humanBytes formats a size in binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// progressLines prints "NAME  DONE / TOTAL  PCT%" lines for one transfer: at most one a second, and
// the last one when the transfer is complete.
func progressLines(w io.Writer, name string) postcall.Progress {
	last := time.Now() // the first line after a second, or at the end
	finished := false
	return func(done, total int64) {
		complete := total >= 0 && done >= total
		if finished || (!complete && time.Since(last) < time.Second) {
			return
		}
		last, finished = time.Now(), complete
		if total > 0 {
			fmt.Fprintf(w, "%-40s %10s / %-10s %3d%%\n", name, humanBytes(done), humanBytes(total), done*100/total)
		} else {
			fmt.Fprintf(w, "%-40s %10s\n", name, humanBytes(done))
		}
	}
}

// progressStore is a storage.Client whose uploads print progress lines.
type progressStore struct {
	storage.Client
	mu sync.Mutex // one line at a time
	w  io.Writer
}

func (p *progressStore) Put(ctx context.Context, key string, r io.Reader, size int64) (storage.ObjectInfo, error) {
	lines := progressLines(lockedWriter{&p.mu, p.w}, key)
	return p.Client.Put(ctx, key, &countingReader{r: r, total: size, fn: lines}, size)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

type countingReader struct {
	r     io.Reader
	n     int64
	total int64
	fn    postcall.Progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	if n > 0 || err == io.EOF {
		c.fn(c.n, c.total)
	}
	return n, err
}

// progressTo reads a --progress value: where a long operation shows its
// progress (nil: nowhere) and whether as a bar (a terminal) or plain lines.
func progressTo(flag string, w io.Writer) (io.Writer, bool, error) {
	switch flag {
	case "auto":
		return w, isTerminal(w), nil
	case "bar", "plain":
		return w, flag == "bar", nil
	case "off":
		return nil, false, nil
	}
	return nil, false, usageError("--progress %q: want auto, bar, plain or off", flag)
}
