// Package clustertest runs an external NATS server with JetStream for tests of
// several tapedeck nodes (StartNATS).
package clustertest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/internal/testbin"
)

// NATS is a nats-server with JetStream run by a test on 127.0.0.1. Start it
// with StartNATS; it stops when the test ends.
type NATS struct {
	URL string // "nats://127.0.0.1:PORT"

	bin, addr, dir, logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// natsHelp is how to get the binary.
const natsHelp = "run `make deps` (it installs nats-server into .bin with " +
	"`GOBIN=$PWD/.bin go install github.com/nats-io/nats-server/v2@v2.15.2`), or set TAPEDECK_NATS_SERVER to its path"

// Binary finds nats-server: $TAPEDECK_NATS_SERVER, else <repo root>/.bin/nats-server
// (the repo root holds go.mod, looking up from the working directory), else PATH.
func Binary() (string, error) {
	return testbin.Find("nats-server", "TAPEDECK_NATS_SERVER", natsHelp)
}

// StartNATS starts nats-server -js on a free loopback port with a new store
// folder and waits until it accepts connections. A missing binary fails the
// test (it is never skipped).
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("clustertest: %v", err)
	}
	tmp := t.TempDir()
	n := &NATS{bin: bin, dir: filepath.Join(tmp, "js"), logPath: filepath.Join(tmp, "nats-server.log")}
	t.Cleanup(func() { n.Stop() })
	for try := 1; ; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("clustertest: find a free port: %v", err)
		}
		n.addr = l.Addr().String()
		_ = l.Close()
		n.URL = "nats://" + n.addr
		err = n.start()
		if err == nil {
			return n
		}
		if try == 3 {
			b, _ := os.ReadFile(n.logPath)
			t.Fatalf("clustertest: start nats-server: %v\n%s", err, b)
		}
	}
}

func (n *NATS) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return errors.New("already running")
	}
	host, port, err := net.SplitHostPort(n.addr)
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = logf.Close() }()
	cmd := exec.Command(n.bin, "-js", "-a", host, "-p", port, "-sd", n.dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", n.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	n.cmd, n.done = cmd, done
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-done:
			n.cmd, n.done = nil, nil
			return errors.New("nats-server exited at start")
		default:
		}
		c, err := net.DialTimeout("tcp", n.addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			n.cmd, n.done = nil, nil
			return fmt.Errorf("nats-server did not accept connections on %s within 15 s: %w", n.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server and waits for it to exit. Stopping a stopped server
// does nothing.
func (n *NATS) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.done
	n.cmd, n.done = nil, nil
}
