package interchange

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestXMLLint has libxml2's xmllint (Debian's libxml2-utils) read both XML
// formats of every fixture: a second, independent parser must find them
// well-formed. The tests use real parts: without xmllint this test fails
// (install it with `apt-get install -y libxml2-utils`, as `make deps`
// does).
func TestXMLLint(t *testing.T) {
	lint, err := exec.LookPath("xmllint")
	if err != nil {
		t.Fatalf("xmllint not found (%v): install Debian's libxml2-utils (apt-get install -y libxml2-utils; make deps installs it)", err)
	}
	dir := t.TempDir()
	for _, fx := range fixtures(t) {
		for _, w := range formats() {
			if w.ext == ".otio" {
				continue
			}
			t.Run(fx.name+w.ext, func(t *testing.T) {
				path := filepath.Join(dir, fx.name+w.ext)
				if err := os.WriteFile(path, write(t, w.write, fx.p), 0o644); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(lint, "--noout", "--nonet", path).CombinedOutput()
				if err != nil || len(out) > 0 {
					t.Errorf("xmllint --noout %s: %v\n%s", path, err, out)
				}
			})
		}
	}
}
