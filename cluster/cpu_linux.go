package cluster

import (
	"bytes"
	"os"
	"strconv"
	"sync"
)

// cpuMeter measures the fraction of all cores busy between two calls of
// measure, from /proc/stat.
type cpuMeter struct {
	mu         sync.Mutex
	busy, all  uint64
	haveBefore bool
}

func newCPUMeter() *cpuMeter { return &cpuMeter{} }

// measure returns the CPU fraction busy since the last call (-1 the first
// time, or when /proc/stat cannot be read).
func (m *cpuMeter) measure() float64 {
	busy, all, ok := readProcStat()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !ok {
		return -1
	}
	defer func() { m.busy, m.all, m.haveBefore = busy, all, true }()
	if !m.haveBefore || all <= m.all {
		return -1
	}
	return float64(busy-m.busy) / float64(all-m.all)
}

// readProcStat returns the busy and total jiffies of all CPUs.
func readProcStat() (busy, all uint64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return 0, 0, false
	}
	var idle uint64
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return 0, 0, false
		}
		if i >= 8 { // guest times are counted in user and nice already
			break
		}
		all += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return all - idle, all, true
}
