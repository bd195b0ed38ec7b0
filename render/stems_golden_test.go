package render_test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

// stemsGoldenText writes a stem program's commands for people to read: per
// participant its placed audio, its video jobs, its encodes (mono, as the
// demo's participants send) and its mux.
func stemsGoldenText(sp *render.StemProgram) string {
	var b strings.Builder
	for _, j := range sp.Stems {
		b.WriteString("##### " + j.Participant + " (" + j.Name + "): wav " + j.WAV + ", mp4 " + j.MP4 + "\n\n")
		cmds := append([]render.Command{j.Program.Audio}, j.Program.Video...)
		if j.Audio {
			cmds = append(cmds, j.Encodes(false)...)
		} else {
			cmds = cmds[1:]
		}
		if m := j.Mux(); m != nil {
			cmds = append(cmds, *m)
		}
		for _, c := range cmds {
			b.WriteString(commandText(c))
		}
	}
	return b.String()
}

// commandText writes one command as goldenText does.
func commandText(c render.Command) string {
	var b strings.Builder
	b.WriteString("=== " + c.Name + " (" + c.Duration.String() + ")\n")
	b.WriteString(strings.Join(c.Args, "\n") + "\n")
	b.WriteString("--- outputs: " + strings.Join(c.Outputs, " ") + "\n")
	names := make([]string, 0, len(c.Files))
	for n := range c.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b.WriteString("--- file " + n + "\n" + c.Files[n] + "\n")
	}
	b.WriteString("\n")
	return b.String()
}

// TestGoldenStems pins the translation of the demo session's stem plans
// (alice and bob from the start, carol leaving and rejoining) into FFmpeg
// commands: with video, and audio only.
func TestGoldenStems(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "timeline", "testdata", "demo-manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := timeline.ParseManifest(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err := timeline.NewSync(m)
	if err != nil {
		t.Fatal(err)
	}
	plans, err := render.StemPlans(m, s, parseEdits(t, "lanes:\n  carol: {name: \"Carol C.\"}\n"), render.StemPlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name         string
		audio, video bool
	}{{"stems-demo", true, true}, {"stems-demo-audio", true, false}} {
		t.Run(c.name, func(t *testing.T) {
			sp, err := render.CompileStems(plans, render.StemSettings{SessionDir: "/session", FontFile: "/fonts/DejaVuSans.ttf",
				Audio: c.audio, Video: c.video})
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, c.name, stemsGoldenText(sp))
		})
	}
}
