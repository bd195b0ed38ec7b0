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

// TestServeKeyframeInterval: by default the recorder asks for keyframes on
// the progressive windows' boundaries; an interval that does not divide the
// window is a usage error; a negative one turns the requests off.
func TestServeKeyframeInterval(t *testing.T) {
	base := func(keyframes time.Duration) *serveFlags {
		f := &serveFlags{listen: "127.0.0.1:8080", data: t.TempDir(), corsOrigins: []string{"*"}, turnTTL: capture.DefaultTURNTTL, keyframes: keyframes}
		f.post.progressive = progressiveFlags{on: true, window: 30 * time.Second}
		return f
	}
	for _, c := range []struct {
		flag, want time.Duration
	}{{0, 30 * time.Second}, {10 * time.Second, 10 * time.Second}, {-1, -1}} {
		cfg, err := base(c.flag).config()
		if err != nil {
			t.Fatalf("--keyframe-interval %v: %v", c.flag, err)
		}
		if got := cfg.KeyframeInterval; got != c.want {
			t.Errorf("--keyframe-interval %v with --progressive-window 30s: %v, want %v", c.flag, got, c.want)
		}
	}
	_, err := base(7 * time.Second).config()
	var ue *usageErr
	if err == nil || !strings.Contains(err.Error(), "--keyframe-interval 7s does not divide --progressive-window 30s") || !errors.As(err, &ue) {
		t.Errorf("--keyframe-interval 7s: %v, want a usage error saying it does not divide the window", err)
	}
	// Without the render during calls, any interval goes.
	f := base(7 * time.Second)
	f.post.progressive.on = false
	if cfg, err := f.config(); err != nil || cfg.KeyframeInterval != 7*time.Second {
		t.Errorf("--keyframe-interval 7s --progressive=false: %v, %v", cfg.KeyframeInterval, err)
	}
}
