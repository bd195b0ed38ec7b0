package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
)

// TestServeICEFlags: the WHIP reach flags become the recorder's
// configuration, and each bad value is a usage error that names the flag.
func TestServeICEFlags(t *testing.T) {
	base := func() *serveFlags {
		return &serveFlags{listen: "127.0.0.1:8080", data: t.TempDir(), corsOrigins: []string{"*"}, turnTTL: capture.DefaultTURNTTL}
	}
	f := base()
	f.corsOrigins = []string{"https://app.example.com", "http://localhost:3000"}
	f.iceServers = []string{"stun:stun.example.net:3478", "turn:turn.example.net:3478?transport=tcp"}
	f.turnSecret, f.turnTTL, f.tcpPort = "s", time.Hour, 8443
	cfg, err := f.config()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(cfg.ICE.Servers), 2; got != want {
		t.Fatalf("servers %d, want %d", got, want)
	}
	if got, want := cfg.ICE.TCPPort, 8443; got != want {
		t.Errorf("TCP port %d, want %d", got, want)
	}
	if got, want := strings.Join(cfg.CORSOrigins, " "), "https://app.example.com http://localhost:3000"; got != want {
		t.Errorf("CORS origins %q, want %q", got, want)
	}
	for _, c := range []struct {
		name string
		set  func(*serveFlags)
		want string
	}{
		{"origin with a path", func(f *serveFlags) { f.corsOrigins = []string{"https://app.example.com/page"} }, "--cors-origin"},
		{"origin without scheme", func(f *serveFlags) { f.corsOrigins = []string{"app.example.com"} }, "--cors-origin"},
		{"bad server", func(f *serveFlags) { f.iceServers = []string{"http://x"} }, "--ice-server"},
		{"turn without credentials", func(f *serveFlags) { f.iceServers = []string{"turn:t.example.net"} }, "--turn-secret"},
		{"username alone", func(f *serveFlags) { f.iceUser = "u" }, "--ice-username and --ice-credential"},
		{"tcp port", func(f *serveFlags) { f.tcpPort = 70000 }, "--tcp-port"},
		{"ttl", func(f *serveFlags) { f.turnTTL = 0 }, "--turn-ttl"},
	} {
		f := base()
		c.set(f)
		_, err := f.config()
		var ue *usageErr
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.As(err, &ue) {
			t.Errorf("%s: %v, want a usage error naming %s", c.name, err, c.want)
		}
	}
}
