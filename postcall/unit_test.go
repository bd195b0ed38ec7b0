package postcall

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/storage"
)

func TestSignature(t *testing.T) {
	t.Parallel()
	body := []byte(`{"event":"session.stored"}`)
	// HMAC-SHA256("k", body), computed independently with `openssl dgst -sha256 -hmac k`.
	if got, want := Sign([]byte("k"), body), "sha256=a158e1e46a9b4a4d805d8ec8a65f8ef7e5f74543dbcc1ccd2895292011926b81"; got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
	sig := Sign([]byte("k"), body)
	if !VerifySignature([]byte("k"), body, sig) {
		t.Error("a signature does not verify")
	}
	for _, tt := range []struct {
		name, secret, body, header string
	}{
		{"other secret", "x", string(body), sig},
		{"other body", "k", string(body) + " ", sig},
		{"no prefix", "k", string(body), strings.TrimPrefix(sig, "sha256=")},
		{"empty", "k", string(body), ""},
	} {
		if VerifySignature([]byte(tt.secret), []byte(tt.body), tt.header) {
			t.Errorf("%s: verifies, want not", tt.name)
		}
	}
}

func TestStateKey(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ room, session, want string }{
		{"standup", "20261123T163700Z-1a2b3c", "standup/20261123T163700Z-1a2b3c"},
		{"a.b", "s_1", "a=2Eb/s_1"},
		{"a..b", "x", "a=2E=2Eb/x"},
	} {
		if got := StateKey(tt.room, tt.session); got != tt.want {
			t.Errorf("StateKey(%q, %q) = %q, want %q", tt.room, tt.session, got, tt.want)
		}
	}
	if StateKey("a.b", "c") == StateKey("a", "b.c") {
		t.Error("two sessions share a key")
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		n    uint64
		want time.Duration
	}{{1, 5 * time.Second}, {2, 10 * time.Second}, {3, 20 * time.Second}, {7, 5 * time.Minute}, {50, 5 * time.Minute}} {
		if got := retryDelay(tt.n); got != tt.want {
			t.Errorf("retryDelay(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}

func TestLoadRenderConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("standup.yaml", "cuts: []\n")
	good := write("good.yaml", `
default:
  - name: default
rooms:
  standup:
    - name: default
      layout: speaker
      edits: standup.yaml
    - name: small
      profile: mp4-360p
  quiet: []
`)
	c, err := LoadRenderConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.For("standup"); len(got) != 2 || got[0].Layout != "speaker" || got[0].Edits != "cuts: []\n" ||
		got[0].EditsFile != "standup.yaml" || got[1].Profile != "mp4-360p" {
		t.Errorf("standup renders = %+v", got)
	}
	if got := c.For("quiet"); len(got) != 0 {
		t.Errorf("quiet renders = %+v, want none", got)
	}
	if got := c.For("other"); len(got) != 1 || got[0].Name != "default" {
		t.Errorf("other room renders = %+v, want the default", got)
	}
	if got := (RenderConfig{}).For("x"); len(got) != 1 || got[0].Name != "default" {
		t.Errorf("zero config renders = %+v, want the default", got)
	}
	for _, tt := range []struct{ name, text, want string }{
		{"bad name", "rooms:\n  a:\n    - name: ../x\n", "rooms.a[0].name"},
		{"twice", "default:\n  - name: a\n  - name: a\n", "used twice"},
		{"unknown field", "rooms:\n  a:\n    - name: x\n      layuot: grid\n", "layuot"},
		{"missing edits", "rooms:\n  a:\n    - name: x\n      edits: nope.yaml\n", "rooms.a[0].edits"},
		{"bad room", "rooms:\n  ../r: []\n", `"../r" is not a valid room name`},
	} {
		_, err := LoadRenderConfig(write(tt.name+".yaml", tt.text))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one that says %q", tt.name, err, tt.want)
		}
	}
}

func TestJournalClosed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	journal := `{"type":"segment_open","at_unix_ns":1,"track":"t1","segment":{"index":0,"path":"tracks/a/video-t1-000.webm","first_rtp":0,"first_arrival_unix_ns":1}}
{"type":"segment_close","at_unix_ns":2,"track":"t1","segment":{"index":0,"path":"tracks/a/video-t1-000.webm","first_rtp":0,"first_arrival_unix_ns":1}}
{"type":"segment_open","at_unix_ns":3,"track":"t1","segment":{"index":1,"path":"tracks/a/video-t1-001.webm","first_rtp":0,"first_arrival_unix_ns":1}}
{"type":"segment_close","at_unix_ns":4,"track":"t1","segment":{"index":1,"path":"tracks/a/vid`
	if err := os.WriteFile(filepath.Join(dir, "journal.jsonl"), []byte(journal), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"tracks/a/video-t1-000.webm": true,
		"tracks/a/video-t1-001.webm": false, // opened, and its close record is torn
		"tracks/a/video-t1-002.webm": false,
	} {
		got, err := journalClosed(dir, path)
		if err != nil || got != want {
			t.Errorf("journalClosed(%s) = %v, %v; want %v", path, got, err, want)
		}
	}
}

// TestStoreFileIsIdempotent stores a segment, then stores it again after the process "died" before
// removing it: the second run must not upload (the object keeps its modification time) and must
// remove the file. A file that is neither on disk nor stored is a permanent error.
func TestStoreFileIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := storage.Open(ctx, t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := NewUploader(store, UploadConfig{}, slog.New(slog.DiscardHandler))
	dir := filepath.Join(t.TempDir(), "room", "sess")
	rel := "tracks/a/audio-t1-000.webm"
	local := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(local, []byte("opus data"), 0o644); err != nil {
		t.Fatal(err)
	}
	first, err := u.store1(ctx, dir, "room", "sess", rel, keepLocal)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := first.Key, "room/sess/"+rel; got != want {
		t.Errorf("key = %q, want %q", got, want)
	}
	info1, err := store.Stat(ctx, first.Key)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	second, err := u.store1(ctx, dir, "room", "sess", rel, removeLocal)
	if err != nil {
		t.Fatal(err)
	}
	info2, _ := store.Stat(ctx, first.Key)
	if second != first || !info2.ModTime.Equal(info1.ModTime) {
		t.Errorf("second store: %+v at %v, want %+v untouched at %v", second, info2.ModTime, first, info1.ModTime)
	}
	if _, err := os.Stat(local); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file not removed after a confirmed upload: %v", err)
	}
	// Gone from disk, but in the ledger and the store: fine, nothing to do.
	if _, err := u.store1(ctx, dir, "room", "sess", rel, removeLocal); err != nil {
		t.Errorf("third store: %v", err)
	}
	// Gone from disk and from the store: lost, and said so.
	if err := store.Delete(ctx, first.Key); err != nil {
		t.Fatal(err)
	}
	_, err = u.store1(ctx, dir, "room", "sess", rel, removeLocal)
	if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), "neither on disk") {
		t.Errorf("store of a lost file: %v, want a permanent 'neither on disk' error", err)
	}
	// A path that escapes the session is refused before anything is read.
	if _, err := u.store1(ctx, dir, "room", "sess", "../x", keepLocal); err == nil || !isPermanent(err) {
		t.Errorf("store of ../x: %v, want a permanent error", err)
	}
}
