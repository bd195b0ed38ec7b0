package cpuload

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMeterSeesNicedWork: a busy loop at a lowered priority shows in
// Niced, at least as much CPU as the loop itself used (read from its
// /proc/PID/stat), and Busy is never below Niced. The loop runs at nice 1,
// not 19: on a machine loaded by other work (the test suite's other
// packages), a nice-19 loop gets almost no CPU, and what the meter must see
// is the work the loop did, whatever it was.
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
	start := time.Now()
	cmd := exec.Command("nice", "-n", "1", "sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	// Until the loop has used a quarter of a second of CPU (10 s at most).
	var loop float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if loop = procCPU(t, cmd.Process.Pid); loop >= 0.25 {
			break
		}
	}
	l, ok := m.Measure()
	elapsed := time.Since(start)
	if !ok {
		t.Fatal("no load measured")
	}
	if loop < 0.25 {
		t.Fatalf("the niced loop used %.2f s of CPU in %v; want at least 0.25 s to measure", loop, elapsed)
	}
	cores := float64(runtime.NumCPU())
	niced := l.Niced * cores * elapsed.Seconds()
	// The ticks are counted per CPU, to 10 ms.
	if niced < 0.9*loop-0.01*cores || l.Busy < l.Niced || l.Busy > 1 {
		t.Errorf("load %+v over %v on %v cores (%.2f s niced) with a niced loop that used %.2f s: want niced ≥ the loop's, niced ≤ busy ≤ 1",
			l, elapsed, cores, niced, loop)
	}
}

// procCPU is the user + system CPU time (s) process pid has used, from
// /proc/PID/stat (in ticks of 1/100 s, the kernel's USER_HZ).
func procCPU(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14 and stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	return (ut + st) / 100
}
