package cpuload

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

// TestMeterSeesNicedWork: a busy loop at nice 19 shows in Niced, and Busy
// is never below it.
func TestMeterSeesNicedWork(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/stat only on Linux")
	}
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip(err)
	}
	var m Meter
	if _, ok := m.Measure(); ok {
		t.Fatal("the first measure knows a load; want none (no interval yet)")
	}
	cmd := exec.Command("nice", "-n", "19", "sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	time.Sleep(500 * time.Millisecond)
	l, ok := m.Measure()
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if !ok {
		t.Fatal("no load measured")
	}
	cores := float64(runtime.NumCPU())
	// One core of nice 19 work: at least half a core's share.
	if l.Niced < 0.5/cores || l.Busy < l.Niced || l.Busy > 1 {
		t.Errorf("load %+v with one niced busy loop on %v cores: want niced ≥ %.2f and niced ≤ busy ≤ 1", l, cores, 0.5/cores)
	}
}
