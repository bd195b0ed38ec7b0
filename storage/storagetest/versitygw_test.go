package storagetest_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/storage/storagetest"
)

// Objects survive a stop and restart on the same port and folder.
func TestVersityGWRestart(t *testing.T) {
	g := storagetest.StartVersityGW(t)
	c := g.Open(t, "keep", "", storage.Options{})
	data := storagetest.RandomBytes(1, 1000)
	if _, err := c.Put(t.Context(), "k", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	endpoint := g.Endpoint
	g.Stop(t)
	if _, err := c.Stat(t.Context(), "k"); err == nil {
		t.Fatal("Stat with the server stopped: no error")
	}
	g.Stop(t) // stopping twice is fine
	g.Restart(t)
	if got, want := g.Endpoint, endpoint; got != want {
		t.Errorf("endpoint after restart = %s, want %s", got, want)
	}
	if got := storagetest.ReadObject(t, t.Context(), c, "k"); !bytes.Equal(got, data) {
		t.Errorf("after restart the object has %d bytes, want the %d written", len(got), len(data))
	}
	if _, err := os.Stat(g.Dir + "/keep/k"); err != nil {
		t.Errorf("object not in the posix folder: %v", err)
	}
}

func TestVersityGWBinaryMissing(t *testing.T) {
	t.Setenv("TAPEDECK_VERSITYGW", t.TempDir()+"/nope")
	_, err := storagetest.VersityGWBinary()
	if err == nil || !strings.Contains(err.Error(), "make deps") {
		t.Errorf("VersityGWBinary() with a missing binary = %v, want an error saying to run make deps", err)
	}
}
