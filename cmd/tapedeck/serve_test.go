package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/examples/publisher"
)

func buildSelf(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tapedeck")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freeAddr is a loopback address with a port free now, for a process the
// test starts to listen on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type serveProc struct {
	cmd  *exec.Cmd
	base string
	data string
	done chan error
}

func startServeProc(t *testing.T, bin string) *serveProc {
	t.Helper()
	addr := freeAddr(t)
	p := &serveProc{base: "http://" + addr, data: t.TempDir(), done: make(chan error, 1)}
	p.cmd = exec.Command(bin, "serve", "--listen", addr, "--data", p.data, "--grace", "1s", "--drain-timeout", "30s", "--log-level", "warn")
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	for i := 0; i < 200; i++ {
		if resp, err := http.Get(p.base + "/healthz"); err == nil {
			resp.Body.Close()
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("serve did not start")
	return nil
}

func (p *serveProc) manifests(t *testing.T) []string {
	m, _ := filepath.Glob(filepath.Join(p.data, "*", "*", capture.ManifestName))
	return m
}

// TestServeHealthMetricsDrain checks /healthz, /readyz and /metrics, then
// that SIGTERM drains (new publishes refused, the running one finishes and
// its session is finalized) and that a second signal stops at once.
func TestServeHealthMetricsDrain(t *testing.T) {
	bin := buildSelf(t)
	p := startServeProc(t, bin)
	if code, body := get(t, p.base+"/healthz"); code != 200 {
		t.Errorf("/healthz: %d %s", code, body)
	}
	if code, body := get(t, p.base+"/readyz"); code != 200 {
		t.Errorf("/readyz: %d %s", code, body)
	}
	// CORS is on the WHIP routes (--cors-origin defaults to *), never on
	// the control API or the health routes.
	for _, c := range []struct {
		method, path string
		cors         bool
	}{{"OPTIONS", "/whip/drain", true}, {"GET", "/api/sessions", false}, {"OPTIONS", "/api/sessions", false}, {"GET", "/healthz", false}} {
		req, _ := http.NewRequest(c.method, p.base+c.path, nil)
		req.Header.Set("Origin", "https://app.example.com")
		if c.method == "OPTIONS" {
			req.Header.Set("Access-Control-Request-Method", "POST")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin") != ""; got != c.cors {
			t.Errorf("%s %s: CORS headers %v, want %v", c.method, c.path, got, c.cors)
		}
	}
	cfg := publisher.Config{Endpoint: p.base + "/whip/drain", Participant: "ivy", Duration: 6 * time.Second,
		Video: publisher.VP8, Audio: true, Width: 320, Height: 240, Bitrate: 400_000}
	if _, err := publisher.PrepareMedia(t.Context(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	pubDone := make(chan error, 1)
	go func() { _, err := publisher.Run(t.Context(), cfg, nil); pubDone <- err }()
	time.Sleep(2 * time.Second)
	code, metrics := get(t, p.base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{"tapedeck_sessions_active 1", "tapedeck_tracks_active 2", "tapedeck_packets_received_total", "tapedeck_disk_free_bytes", "tapedeck_upload_backlog_files", "go_goroutines"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if code, body := get(t, p.base+"/readyz"); code != 503 || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz while draining: %d %q, want 503 saying why", code, body)
	}
	resp, err := http.Post(p.base+"/whip/drain?participant=late", "application/sdp", strings.NewReader("v=0\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusServiceUnavailable; got != want {
		t.Errorf("publish while draining: %d, want %d", got, want)
	}
	select {
	case err := <-p.done:
		t.Fatalf("serve exited before its publisher finished: %v", err)
	case err := <-pubDone:
		if err != nil {
			t.Fatalf("publisher during drain: %v", err)
		}
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("serve after drain: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not exit after its last publisher left")
	}
	if got := len(p.manifests(t)); got != 1 {
		t.Errorf("%d manifests after the drain, want 1", got)
	}

	// A second signal does not wait for the publisher.
	p = startServeProc(t, bin)
	cfg.Endpoint, cfg.Duration = p.base+"/whip/drain", 60*time.Second
	if _, err := publisher.PrepareMedia(t.Context(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _, _ = publisher.Run(ctx, cfg, nil) }()
	for i := 0; i < 100; i++ { // until the publish is being recorded
		if _, m := get(t, p.base+"/metrics"); strings.Contains(m, "tapedeck_tracks_active 2") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("serve after two signals: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop after a second signal")
	}
	if got := len(p.manifests(t)); got != 1 {
		t.Errorf("%d manifests after a forced stop, want 1", got)
	}
}
