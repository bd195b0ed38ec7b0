package storage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Put records the checksum in an extended attribute, and Stat uses it without reading the file.
func TestLocalChecksumAttribute(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := l.Put(t.Context(), "a/b", strings.NewReader("hello"), 5)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	rec, err := getSumAttr(f)
	if err != nil {
		t.Skipf("no extended attributes here (%v): Stat computes checksums instead", err)
	}
	if got, want := rec.sha256, info.SHA256; got != want {
		t.Errorf("attribute holds %q, want %q", got, want)
	}
	// Stat trusts the attribute while size and mtime match: a planted value shows it was used.
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	planted := strings.Repeat("ab", 32)
	if err := setSumAttr(f, sumRecord{size: fi.Size(), mtime: fi.ModTime().UnixNano(), sha256: planted}); err != nil {
		t.Fatal(err)
	}
	got, err := l.Stat(t.Context(), "a/b")
	if err != nil {
		t.Fatal(err)
	}
	if got.SHA256 != planted {
		t.Errorf("Stat.SHA256 = %q, want the attribute's %q", got.SHA256, planted)
	}
}

func TestParseSumRecord(t *testing.T) {
	good := sumRecord{size: 5, mtime: 123, sha256: strings.Repeat("0f", 32)}
	if got, err := parseSumRecord(good.marshal()); err != nil || got != good {
		t.Errorf("parseSumRecord(marshal(%v)) = %v, %v", good, got, err)
	}
	for _, bad := range []string{"", "v2 5 123 " + good.sha256, "v1 5 123 xyz", "v1 5 123 " + strings.ToUpper(good.sha256), "v1 x 1 " + good.sha256} {
		if _, err := parseSumRecord([]byte(bad)); err == nil {
			t.Errorf("parseSumRecord(%q): no error", bad)
		}
	}
}
