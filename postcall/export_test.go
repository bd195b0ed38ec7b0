package postcall

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapedeck/tapedeck/timeline"
)

// TestLoadRenderConfigExport: an entry with export: is an export, its
// fields checked; it travels in a job as JSON and is stored under exports/.
func TestLoadRenderConfigExport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(text string) string {
		p := filepath.Join(dir, "renders.yaml")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := LoadRenderConfig(write(`
rooms:
  podcast:
    - name: default
    - name: editors
      export:
        video: none
        timelines: otio, fcpxml
        fps: 30000/1001
        size: 1280x720
        composite: default
    - name: all
      export: {}
    - name: bare
      export:
        timelines: none
`))
	if err != nil {
		t.Fatal(err)
	}
	specs := c.For("podcast")
	if got, want := len(specs), 4; got != want {
		t.Fatalf("%d specs, want %d", got, want)
	}
	want := ExportSpec{NoVideo: true, Timelines: []string{"otio", "fcpxml"}, FPS: timeline.Rational{Num: 30000, Den: 1001}, Width: 1280,
		Height: 720, Composite: "default"}
	if e := specs[1].Export; e == nil || !jsonEqual(*e, want) {
		t.Errorf("editors: %+v, want %+v", e, want)
	}
	if e := specs[2].Export; e == nil || !jsonEqual(*e, ExportSpec{}) {
		t.Errorf("all: %+v, want the zero ExportSpec", e)
	}
	if e := specs[3].Export; e == nil || !e.NoTimelines {
		t.Errorf("bare: %+v, want no timelines", e)
	}
	if specs[0].Export != nil {
		t.Errorf("default is a render, got an export %+v", specs[0].Export)
	}
	j := Job{Room: "podcast", Session: "s1", Node: "n1", Renders: specs}
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeJob(b)
	if err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(back.Renders, specs) {
		t.Errorf("the job's specs after JSON: %+v, want %+v", back.Renders, specs)
	}
	if got, want := outputKey("podcast", "s1", specs[1], "alice.wav"), "podcast/s1/exports/editors/alice.wav"; got != want {
		t.Errorf("export key %q, want %q", got, want)
	}
	if got, want := outputKey("podcast", "s1", specs[0], "mp4-720p.mp4"), "podcast/s1/renders/default/mp4-720p.mp4"; got != want {
		t.Errorf("render key %q, want %q", got, want)
	}

	for text, msg := range map[string]string{
		"rooms:\n  r:\n    - name: e\n      export: {audio: mp3}\n":                               `audio "mp3"`,
		"rooms:\n  r:\n    - name: e\n      export: {audio: none, video: none}\n":                 "nothing to export",
		"rooms:\n  r:\n    - name: e\n      export: {timelines: [otio, aaf]}\n":                   `timeline "aaf"`,
		"rooms:\n  r:\n    - name: e\n      export: {fps: 500}\n":                                 "frame rate 500",
		"rooms:\n  r:\n    - name: e\n      export: {size: 1281x720}\n":                           "size 1281x720",
		"rooms:\n  r:\n    - name: e\n      profile: mp4-360p\n      export: {}\n":                "no profile or layout",
		"rooms:\n  r:\n    - name: e\n      export: {composite: default}\n":                       `composite "default"`,
		"rooms:\n  r:\n    - name: e\n      export: {fps: 30}\n    - name: e\n      export: {}\n": "used twice",
	} {
		if _, err := LoadRenderConfig(write(text)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v, want an error saying %s", text, err, msg)
		}
	}
	bad := Job{Room: "r", Session: "s", Node: "n", Renders: []RenderSpec{{Name: "e", Export: &ExportSpec{NoAudio: true, NoVideo: true}}}}
	if err := bad.validate(); err == nil {
		t.Error("a job whose export asks for nothing validates")
	}
}

func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}
