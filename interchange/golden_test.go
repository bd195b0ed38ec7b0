package interchange

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// format is one writer and the extension of its files.
type format struct {
	ext   string
	write func(io.Writer, *Project) error
}

// formats are the three writers.
func formats() []format {
	return []format{{".otio", WriteOTIO}, {".fcpxml", WriteFCPXML}, {".xml", WriteXMEML}}
}

// write runs one writer and returns its output.
func write(t *testing.T, f func(io.Writer, *Project) error, p *Project) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f(&buf, p); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestGolden pins each format's output for each fixture; run with -update
// to rewrite testdata/ after a deliberate change, and review the diff.
func TestGolden(t *testing.T) {
	for _, fx := range fixtures(t) {
		for _, w := range formats() {
			t.Run(fx.name+w.ext, func(t *testing.T) {
				got := write(t, w.write, fx.p)
				path := filepath.Join("testdata", fx.name+w.ext)
				if *update {
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./interchange -run TestGolden -update to create it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from the golden file; run with -update and review the diff\n%s", path, firstDiff(got, want))
				}
			})
		}
	}
}

// TestDeterministic: the same project always gives the same bytes.
func TestDeterministic(t *testing.T) {
	for _, fx := range fixtures(t) {
		for _, w := range formats() {
			if a, b := write(t, w.write, fx.p), write(t, w.write, fx.p); !bytes.Equal(a, b) {
				t.Errorf("%s%s: two runs differ\n%s", fx.name, w.ext, firstDiff(a, b))
			}
		}
	}
}

// firstDiff shows the first line where got and want differ.
func firstDiff(got, want []byte) string {
	g, w := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
	for i := 0; i < len(g) || i < len(w); i++ {
		var a, b []byte
		if i < len(g) {
			a = g[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if !bytes.Equal(a, b) {
			return "line " + strconv.Itoa(i+1) + ":\n  got:  " + string(a) + "\n  want: " + string(b)
		}
	}
	return "(no line differs)"
}
