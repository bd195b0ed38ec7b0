//go:build unix

package storagetest

import (
	"syscall"
	"testing"
)

// Pause freezes the server with SIGSTOP: it keeps its port, the kernel still accepts connections,
// and every request waits without an answer until Resume — a deterministic point at which an upload
// is in progress. Stop works on a paused server.
func (g *VersityGW) Pause(t testing.TB) {
	t.Helper()
	g.signal(t, syscall.SIGSTOP)
}

// Resume lets a paused server go on (SIGCONT).
func (g *VersityGW) Resume(t testing.TB) {
	t.Helper()
	g.signal(t, syscall.SIGCONT)
}

func (g *VersityGW) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd == nil {
		t.Fatalf("storagetest: %v to versitygw: it is not running", sig)
	}
	if err := g.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("storagetest: %v to versitygw: %v", sig, err)
	}
}
