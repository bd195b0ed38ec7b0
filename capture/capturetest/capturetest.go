// Package capturetest runs a capture.Recorder on loopback for the tests of
// tapedeck's packages, the way storagetest runs an S3 server.
package capturetest

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
)

// Server is a Recorder serving WHIP (and whatever else the test mounts) on
// a loopback port. It is closed when the test ends.
type Server struct {
	Rec  *capture.Recorder
	Base string // http://127.0.0.1:PORT
	Mux  *http.ServeMux
}

// Start runs a recorder with cfg on loopback: ICE is loopback-only, and the
// disk guard's thresholds are small unless cfg sets them (test machines can
// be short of disk). mount, if given, adds handlers to the mux beside
// /whip/ before it serves.
func Start(t testing.TB, cfg capture.Config, log *slog.Logger, mount ...func(*http.ServeMux)) *Server {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.ICE.LoopbackOnly = true
	if cfg.MinFreeBytes == 0 {
		cfg.MinFreeBytes, cfg.HardFloorBytes = 32<<20, 8<<20
	}
	rec, err := capture.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/whip/", rec.Handler())
	for _, m := range mount {
		m(mux)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := rec.Close(ctx); err != nil {
			t.Errorf("close recorder: %v", err)
		}
	})
	return &Server{Rec: rec, Base: "http://" + ln.Addr().String(), Mux: mux}
}
