package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/storage/storagetest"
	"github.com/tapedeck/tapedeck/timeline"
)

// runCLI runs the command line in this process and returns what it printed.
func runCLI(ctx context.Context, args ...string) (string, error) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

// recordedSession makes a session folder from timeline's demo manifest, with a track file of random
// bytes at every segment path, and returns the folder, its manifest and each file's SHA-256 by path.
func recordedSession(t *testing.T, data string) (string, *timeline.Manifest, map[string]string) {
	t.Helper()
	raw, err := os.ReadFile("../../timeline/testdata/demo-manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := timeline.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(data, m.Room, m.Session)
	sums := map[string]string{}
	n := uint64(0)
	for _, l := range m.Lanes {
		for _, tr := range l.Tracks {
			for _, s := range tr.Segments {
				n++
				b := storagetest.RandomBytes(n, 1000+int(n)*777)
				p := filepath.Join(dir, filepath.FromSlash(s.Path))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
				h := sha256.Sum256(b)
				sums[s.Path] = hex.EncodeToString(h[:])
			}
		}
	}
	for name, b := range map[string][]byte{"manifest.json": raw, "journal.jsonl": []byte(`{"type":"session"}` + "\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, m, sums
}

// TestUploadListShowDownload uploads a data folder to a local store with `tapedeck upload`, runs it
// again (nothing is uploaded twice), lists and shows the session, and downloads its tracks under the
// names editors get, each with the recorded bytes.
func TestUploadListShowDownload(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	data := t.TempDir()
	dir, m, sums := recordedSession(t, data)
	storeDir := t.TempDir()

	out, err := runCLI(ctx, "upload", data, "--to", "file://"+storeDir)
	if err != nil {
		t.Fatalf("upload: %v\n%s", err, out)
	}
	if !strings.Contains(out, "100%") || !strings.Contains(out, "14 file(s) stored") {
		t.Errorf("upload printed no progress or no summary:\n%s", out)
	}
	store, err := storage.Open(ctx, storeDir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	before, err := store.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(before), 14; got != want {
		t.Fatalf("store holds %d objects, want %d (12 tracks, journal, manifest)", got, want)
	}
	for rel, sum := range sums {
		info, err := store.Stat(ctx, storage.SessionPrefix(m.Room, m.Session)+rel)
		if err != nil || info.SHA256 != sum {
			t.Errorf("%s: stored %+v, %v; want SHA-256 %s", rel, info, err, sum)
		}
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
			t.Errorf("%s: removed without --remove: %v", rel, err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	out, err = runCLI(ctx, "upload", dir, "--to", storeDir)
	if err != nil {
		t.Fatalf("second upload: %v\n%s", err, out)
	}
	if strings.Contains(out, "%") {
		t.Errorf("second upload sent bytes again:\n%s", out)
	}
	after, _ := store.List(ctx, "")
	for i := range after {
		if !after[i].ModTime.Equal(before[i].ModTime) {
			t.Errorf("%s was written again", after[i].Key)
		}
	}

	out, err = runCLI(ctx, "sessions", "list", "--store", storeDir)
	if err != nil {
		t.Fatalf("sessions list: %v\n%s", err, out)
	}
	if !strings.Contains(out, m.Room+"/"+m.Session) || !strings.Contains(out, "complete") {
		t.Errorf("sessions list does not show the complete session:\n%s", out)
	}
	out, err = runCLI(ctx, "sessions", "show", m.Session, "--store", storeDir, "--links", "1h")
	if err != nil {
		t.Fatalf("sessions show: %v\n%s", err, out)
	}
	for rel := range sums {
		if !strings.Contains(out, rel) {
			t.Errorf("sessions show does not list %s:\n%s", rel, out)
		}
	}
	if strings.Contains(out, "MISSING") || !strings.Contains(out, "file://") {
		t.Errorf("sessions show: a file missing, or no links:\n%s", out)
	}

	dl := t.TempDir()
	out, err = runCLI(ctx, "download", m.Room+"/"+m.Session, "--store", storeDir, "--tracks", "--out", dl)
	if err != nil {
		t.Fatalf("download: %v\n%s", err, out)
	}
	want := map[string]string{}
	for _, l := range m.Lanes {
		n := 0
		for _, tr := range l.Tracks {
			for _, s := range tr.Segments {
				n++
				want[l.Participant+"-"+string(l.Kind)+"-"+string(rune('0'+n))+filepath.Ext(s.Path)] = sums[s.Path]
			}
		}
	}
	if _, ok := want["alice-video-2.webm"]; !ok {
		t.Fatalf("test data changed: no second alice video file in %v", want)
	}
	entries, _ := os.ReadDir(dl)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	sort.Strings(got)
	if len(got) != len(want)+1 {
		t.Errorf("downloaded %v, want the %d track files and manifest.json", got, len(want))
	}
	for name, sum := range want {
		b, err := os.ReadFile(filepath.Join(dl, name))
		if err != nil {
			t.Errorf("download: %v", err)
			continue
		}
		h := sha256.Sum256(b)
		if hex.EncodeToString(h[:]) != sum {
			t.Errorf("%s: downloaded bytes differ from the recorded file", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dl, "manifest.json")); err != nil {
		t.Errorf("no manifest.json downloaded: %v", err)
	}
	if out, err := runCLI(ctx, "download", m.Session, "--store", storeDir, "--composite", "--out", dl); err == nil ||
		!strings.Contains(err.Error(), "has no composite") {
		t.Errorf("download --composite of a session without renders: %v, want a 'has no composite' error\n%s", err, out)
	}
}
