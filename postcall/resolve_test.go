package postcall_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/timeline"
)

// demoSession makes a session folder DATA/demo/SESSION from timeline's demo manifest, with a journal
// and a distinct file at every track path, and returns the folder and the files' SHA-256s by path.
func demoSession(t *testing.T) (string, *timeline.Manifest, map[string]string) {
	t.Helper()
	b, err := os.ReadFile("../timeline/testdata/demo-manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("../timeline/testdata/demo-manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := timeline.ParseManifest(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), m.Room, m.Session)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, capture.ManifestName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, capture.JournalName), []byte(`{"type":"session_start"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	for i, rel := range postcall.SegmentPaths(m) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat(fmt.Sprintf("track %d %s\n", i, rel), 100+i)), 0o644); err != nil {
			t.Fatal(err)
		}
		sums[rel] = sha256File(t, p)
	}
	return dir, m, sums
}

func openFolder(t *testing.T, dir string) storage.Client {
	t.Helper()
	c, err := storage.Open(context.Background(), dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func openAny(ctx context.Context, u string) (storage.Client, error) {
	return storage.Open(ctx, u, storage.Options{})
}

// TestStoreSessionOrder stores a session into a local store whose manifest cannot be written (a
// folder stands where the manifest goes), as a process stopped before the manifest's upload would
// leave it: every track file must still be on disk, the journal stored and the manifest not. Once
// the manifest can be written, a second run stores it without uploading anything again and only
// then deletes the track files.
func TestStoreSessionOrder(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir, m, sums := demoSession(t)
	storeDir := t.TempDir()
	store := openFolder(t, storeDir)
	u := postcall.NewUploader(store, postcall.UploadConfig{}, testLogger(t))

	block := filepath.Join(storeDir, filepath.FromSlash(storage.ManifestKey(m.Room, m.Session)))
	if err := os.MkdirAll(filepath.Join(block, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := u.StoreSession(ctx, dir, m, true); err == nil {
		t.Fatal("StoreSession stored a manifest where a folder stands")
	}
	for rel := range sums {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
			t.Errorf("%s left the disk before the manifest was stored: %v", rel, err)
		}
		checkStored(t, store, storage.SessionPrefix(m.Room, m.Session)+rel, sums[rel])
	}
	checkStored(t, store, storage.JournalKey(m.Room, m.Session), sha256File(t, filepath.Join(dir, capture.JournalName)))

	if err := os.RemoveAll(block); err != nil {
		t.Fatal(err)
	}
	before := map[string]storage.ObjectInfo{}
	for rel := range sums {
		info, err := store.Stat(ctx, storage.SessionPrefix(m.Room, m.Session)+rel)
		if err != nil {
			t.Fatal(err)
		}
		before[rel] = info
	}
	n, err := u.StoreSession(ctx, dir, m, true)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n, len(sums)+2; got != want {
		t.Errorf("StoreSession says %d files stored, want %d", got, want)
	}
	checkStored(t, store, storage.ManifestKey(m.Room, m.Session), sha256File(t, filepath.Join(dir, capture.ManifestName)))
	for rel := range sums {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel))); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still on disk once the manifest is stored: %v", rel, err)
		}
		info, _ := store.Stat(ctx, storage.SessionPrefix(m.Room, m.Session)+rel)
		if !info.ModTime.Equal(before[rel].ModTime) {
			t.Errorf("%s was uploaded again", rel)
		}
	}
}

// TestResolveSession reads a session folder whose track files went to a local store: from the
// store its ledger names, from a store named by the caller once that one moved, and with a precise
// error when the store is gone, holds other bytes, or the folder has no manifest.
func TestResolveSession(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir, m, sums := demoSession(t)
	storeDir := filepath.Join(t.TempDir(), "store")
	store := openFolder(t, storeDir)
	u := postcall.NewUploader(store, postcall.UploadConfig{}, testLogger(t))
	if _, err := u.StoreSession(ctx, dir, m, true); err != nil {
		t.Fatal(err)
	}
	id := m.Room + "/" + m.Session

	// Every track is in the ledger's store; none on disk.
	loc, err := postcall.LocateSession(filepath.Join(dir, capture.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(loc.Missing()), len(sums); got != want {
		t.Fatalf("%d tracks missing from disk, want %d", got, want)
	}
	for _, tr := range loc.Missing() {
		if len(tr.Uploaded) != 1 || tr.Uploaded[0].Store != store.String() || tr.Uploaded[0].SHA256 != sums[tr.Path] {
			t.Errorf("%s: ledger says %+v, want one upload to %s with SHA-256 %s", tr.Path, tr.Uploaded, store, sums[tr.Path])
		}
	}
	if len(loc.ManifestStored) != 1 || loc.ManifestStored[0] != store.String() {
		t.Errorf("manifest stored in %v, want [%s]", loc.ManifestStored, store)
	}

	check := func(name string, r *postcall.ResolvedSession) {
		t.Helper()
		if r.Dir == dir {
			t.Errorf("%s: resolved folder is the session folder, whose tracks are gone", name)
		}
		if got, want := len(r.Fetched), len(sums); got != want {
			t.Errorf("%s: %d files fetched, want %d", name, got, want)
		}
		for rel, want := range sums {
			if got := sha256File(t, filepath.Join(r.Dir, filepath.FromSlash(rel))); got != want {
				t.Errorf("%s: %s has SHA-256 %s, want %s", name, rel, got, want)
			}
		}
		if _, err := os.Stat(filepath.Join(r.Dir, capture.ManifestName)); err != nil {
			t.Errorf("%s: no manifest in the resolved folder: %v", name, err)
		}
		tmp := r.Dir
		if err := r.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: Close left %s", name, tmp)
		}
	}
	r, err := postcall.ResolveSession(ctx, dir, postcall.ResolveOptions{Open: openAny, Command: "tapedeck render " + dir})
	if err != nil {
		t.Fatal(err)
	}
	check("ledger's store", r)

	// The store moved: the error names each file, the store and key it went to, and the flag.
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(storeDir, moved); err != nil {
		t.Fatal(err)
	}
	_, err = postcall.ResolveSession(ctx, dir, postcall.ResolveOptions{Open: openAny, Command: "tapedeck render " + dir})
	var me *postcall.MissingTracksError
	if !errors.As(err, &me) || len(me.Files) != len(sums) {
		t.Fatalf("store gone: err = %v, want a MissingTracksError for %d files", err, len(sums))
	}
	msg := err.Error()
	t.Logf("store gone:\n%s", msg)
	first := postcall.SegmentPaths(m)[0]
	for _, want := range []string{
		fmt.Sprintf("%d of %d track files are not on disk", len(sums), len(sums)),
		first + ": stored in " + store.String() + " as " + storage.SessionPrefix(m.Room, m.Session) + first,
		"the store folder " + storeDir + " does not exist here",
		"fetch them with `tapedeck render " + dir + " --store " + store.String() + "`",
		"`tapedeck download " + id + " --store " + store.String() + " --tracks`",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q", want)
		}
	}
	if _, err := os.Stat(storeDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("resolving created the missing store folder %s", storeDir)
	}

	// Named by the caller (--store), the moved store serves them, checked against the ledger.
	r, err = postcall.ResolveSession(ctx, dir, postcall.ResolveOptions{StoreURL: moved, Open: openAny})
	if err != nil {
		t.Fatal(err)
	}
	check("--store", r)

	// Other bytes under a key: refused, and said so.
	key := storage.SessionPrefix(m.Room, m.Session) + first
	if err := os.WriteFile(filepath.Join(moved, filepath.FromSlash(key)), []byte("not the track"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = postcall.ResolveSession(ctx, dir, postcall.ResolveOptions{StoreURL: moved, Open: openAny})
	if !errors.As(err, &me) || len(me.Files) != 1 || !strings.Contains(err.Error(), "holds other bytes under "+key) {
		t.Errorf("tampered track: err = %v, want one file holding other bytes", err)
	}

	// Without a way to open stores, the files are described, not fetched.
	_, err = postcall.ResolveSession(ctx, dir, postcall.ResolveOptions{})
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "this command does not fetch from storage") {
		t.Errorf("no opener: err = %v", err)
	}

	// A folder whose recorder was killed: no manifest.
	if err := os.Remove(filepath.Join(dir, capture.ManifestName)); err != nil {
		t.Fatal(err)
	}
	_, err = postcall.ResolveSession(ctx, dir, postcall.ResolveOptions{Open: openAny})
	if !errors.Is(err, postcall.ErrNoManifest) || !strings.Contains(err.Error(), "run `tapedeck recover "+dir+"`") {
		t.Errorf("no manifest: err = %v, want ErrNoManifest saying to run tapedeck recover", err)
	}
	t.Logf("no manifest: %v", err)
}

// TestResolveSessionOnDisk returns a session folder whose tracks are all on disk as it is, without
// opening any store.
func TestResolveSessionOnDisk(t *testing.T) {
	t.Parallel()
	dir, _, _ := demoSession(t)
	opened := 0
	r, err := postcall.ResolveSession(t.Context(), dir, postcall.ResolveOptions{
		StoreURL: "s3://nowhere/x",
		Open: func(context.Context, string) (storage.Client, error) {
			opened++
			return nil, errors.New("not expected")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Dir != dir || len(r.Fetched) != 0 || opened != 0 {
		t.Errorf("resolved %s (fetched %d, %d stores opened), want %s as it is", r.Dir, len(r.Fetched), opened, dir)
	}
}
