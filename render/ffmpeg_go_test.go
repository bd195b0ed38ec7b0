package render

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const ffmpegGoPath = "github.com/u2takey/ffmpeg-go"

// TestFFmpegGoConfined keeps ffmpeg-go where README says it is: imported by
// render/probe.go alone in the whole module, for its ffprobe call.
func TestFFmpegGoConfined(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var importers []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, im := range f.Imports {
			if p, _ := strconv.Unquote(im.Path.Value); p == ffmpegGoPath || strings.HasPrefix(p, ffmpegGoPath+"/") {
				rel, _ := filepath.Rel(root, path)
				importers = append(importers, filepath.ToSlash(rel))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(importers, []string{"render/probe.go"}) {
		t.Fatalf("ffmpeg-go is imported by %v; want render/probe.go alone (README, Render: where ffmpeg-go is used and why)", importers)
	}

	// In probe.go, only the probe.
	f, err := parser.ParseFile(fset, "probe.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	name := "ffmpeg_go"
	for _, im := range f.Imports {
		if p, _ := strconv.Unquote(im.Path.Value); p == ffmpegGoPath && im.Name != nil {
			name = im.Name.Name
		}
	}
	allowed := []string{"ProbeWithTimeout", "KwArgs"}
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if x, ok := sel.X.(*ast.Ident); ok && x.Name == name && !slices.Contains(allowed, sel.Sel.Name) {
			t.Errorf("probe.go uses %s.%s: ffmpeg-go is kept to its probe (%v)", name, sel.Sel.Name, allowed)
		}
		return true
	})
}
