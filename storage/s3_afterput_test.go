package storage_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/storage/storagetest"
)

// checksumTamper answers the first tamper HEADs (-1: all) with another
// object's SHA-256, as a server whose ETag and checksum are separate
// attributes can while another writer replaces the object (versitygw's
// posix backend did, in a CI run of the suite's Concurrent test).
type checksumTamper struct {
	base   http.RoundTripper
	mu     sync.Mutex
	tamper int
	heads  int
}

func (c *checksumTamper) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err != nil || r.Method != http.MethodHead || resp.Header.Get("X-Amz-Checksum-Sha256") == "" {
		return resp, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.heads++
	if c.tamper == 0 {
		return resp, nil
	}
	if c.tamper > 0 {
		c.tamper--
	}
	other := sha256.Sum256([]byte("another writer's object"))
	resp.Header.Set("X-Amz-Checksum-Sha256", base64.StdEncoding.EncodeToString(other[:]))
	return resp, nil
}

// TestS3PutRereadsMismatch: a Put whose object reads back with its ETag but
// another SHA-256 reads it again; one that stays so fails, naming both.
func TestS3PutRereadsMismatch(t *testing.T) {
	g := storagetest.StartVersityGW(t)
	data := storagetest.RandomBytes(7, 5000)
	for _, tc := range []struct {
		name    string
		tamper  int
		wantErr bool
	}{{"once", 1, false}, {"always", -1, true}} {
		tr := &checksumTamper{base: http.DefaultTransport, tamper: tc.tamper}
		c := g.Open(t, "reread", tc.name, storage.Options{HTTPClient: &http.Client{Transport: tr}})
		info, err := c.Put(t.Context(), "k", bytes.NewReader(data), int64(len(data)))
		switch {
		case tc.wantErr && (err == nil || !strings.Contains(err.Error(), "the stored object has SHA-256")):
			t.Errorf("%s: Put: %v, want an error saying the stored object has another SHA-256", tc.name, err)
		case !tc.wantErr && err != nil:
			t.Errorf("%s: Put: %v, want the mismatch read again and gone", tc.name, err)
		case !tc.wantErr && info.SHA256 != storagetest.SHA256(data):
			t.Errorf("%s: Put's SHA-256 %s, want %s", tc.name, info.SHA256, storagetest.SHA256(data))
		}
		tr.mu.Lock()
		heads := tr.heads
		tr.mu.Unlock()
		if want := map[bool]int{false: 2, true: 3}[tc.wantErr]; heads != want {
			t.Errorf("%s: %d HEADs with a checksum, want %d", tc.name, heads, want)
		}
	}
}
