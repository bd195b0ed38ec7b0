package storage_test

import (
	"errors"
	"testing"

	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/storage/storagetest"
)

func TestKeyLayout(t *testing.T) {
	const room, session = "standup", "20261123T163700Z-1a2b3c"
	for _, tt := range []struct{ got, want string }{
		{storage.SessionPrefix(room, session), "standup/20261123T163700Z-1a2b3c/"},
		{storage.ManifestKey(room, session), "standup/20261123T163700Z-1a2b3c/manifest.json"},
		{storage.JournalKey(room, session), "standup/20261123T163700Z-1a2b3c/journal.jsonl"},
		{storage.TracksPrefix(room, session), "standup/20261123T163700Z-1a2b3c/tracks/"},
		{storage.TrackKey(room, session, "alice/video-t2-000.webm"), "standup/20261123T163700Z-1a2b3c/tracks/alice/video-t2-000.webm"},
		{storage.RendersPrefix(room, session, "grid"), "standup/20261123T163700Z-1a2b3c/renders/grid/"},
		{storage.RenderKey(room, session, "grid", "out.mp4"), "standup/20261123T163700Z-1a2b3c/renders/grid/out.mp4"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	// A room or session that would leave the layout gives an invalid key.
	for _, key := range []string{storage.ManifestKey("..", "s"), storage.ManifestKey("r", ""), storage.TrackKey("r", "s", "../../x"),
		storage.ManifestKey("/r", "s"), storage.RenderKey("r", "s", "a\\b", "x")} {
		if err := storage.ValidateKey(key); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
}

func TestValidateKey(t *testing.T) {
	for _, key := range []string{"a", "a/b/c.webm", "room/2026 session/x+y (1).mp4", "ünïcode/ключ", "a..b/.hidden/x.", "...."} {
		if err := storage.ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", key, err)
		}
	}
	for _, key := range storagetest.InvalidKeys {
		if err := storage.ValidateKey(key); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("ValidateKey(%.40q) = %v, want ErrInvalidKey", key, err)
		}
	}
}
