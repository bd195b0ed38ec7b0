// Package cpuload measures how busy the machine's CPUs are.
package cpuload

import (
	"bytes"
	"os"
	"strconv"
	"sync"
)

// Meter measures the fraction of all cores busy between two calls of
// Measure, from /proc/stat. Its zero value is ready.
type Meter struct {
	mu         sync.Mutex
	before     jiffies
	haveBefore bool
}

// Load is the CPU use over an interval, as fractions of all cores.
type Load struct {
	// Busy is every non-idle CPU; Niced the part of it spent in processes
	// running at a lowered priority (nice above 0), such as renders that
	// yield to capture.
	Busy, Niced float64
}

// Measure returns the CPU use since the last call; ok is false the first
// time, or when /proc/stat cannot be read.
func (m *Meter) Measure() (l Load, ok bool) {
	now, read := readProcStat()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !read {
		return Load{}, false
	}
	before, had := m.before, m.haveBefore
	m.before, m.haveBefore = now, true
	if !had || now.all <= before.all {
		return Load{}, false
	}
	all := float64(now.all - before.all)
	return Load{Busy: float64(now.busy-before.busy) / all, Niced: float64(now.nice-before.nice) / all}, true
}

// jiffies are CPU time counters of all cores.
type jiffies struct{ busy, nice, all uint64 }

// readProcStat reads the counters of the first line of /proc/stat.
func readProcStat() (jiffies, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return jiffies{}, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return jiffies{}, false
	}
	var j jiffies
	var idle uint64
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return jiffies{}, false
		}
		if i >= 8 { // guest times are counted in user and nice already
			break
		}
		j.all += n
		switch i {
		case 1:
			j.nice = n
		case 3, 4: // idle, iowait
			idle += n
		}
	}
	j.busy = j.all - idle
	return j, true
}
