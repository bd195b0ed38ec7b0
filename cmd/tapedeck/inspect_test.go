package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapedeck/tapedeck/timeline"
)

// sessionDir copies the demo manifest of timeline's testdata into a
// session folder.
func sessionDir(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../timeline/testdata/demo-manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestInspectJSON(t *testing.T) {
	dir := sessionDir(t)
	svg := filepath.Join(t.TempDir(), "lanes.svg")
	out, err := runCmd(t, "inspect", "--json", "--svg", svg, dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got struct {
		timeline.Summary
		Plan *timeline.Plan `json:"plan"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("output is not the summary's JSON: %v\n%s", err, out)
	}
	if got.Room != "demo" || len(got.Participants) != 3 || len(got.Lanes) != 6 || got.Plan != nil {
		t.Errorf("room %q, %d participants, %d lanes, plan %v; want demo, 3, 6, none", got.Room, len(got.Participants), len(got.Lanes), got.Plan)
	}
	var gaps, clocks int
	for _, l := range got.Lanes {
		gaps += len(l.Gaps)
		if l.Sync.Grade == "" {
			t.Errorf("lane %s has no sync grade", l.ID)
		}
	}
	for _, p := range got.Participants {
		clocks += len(p.Clocks)
	}
	if gaps != 2 || clocks != 4 {
		t.Errorf("%d gaps, %d clocks; want 2 (carol's rejoin) and 4 (carol rejoined with another clock)", gaps, clocks)
	}
	// The manifest file itself works too, and the SVG is XML.
	if _, err := runCmd(t, "inspect", filepath.Join(dir, "manifest.json")); err != nil {
		t.Error(err)
	}
	data, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		XMLName xml.Name `xml:"svg"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Errorf("--svg wrote no SVG: %v", err)
	}
}

func TestInspectEdits(t *testing.T) {
	dir := sessionDir(t)
	out, err := runCmd(t, "inspect", "--json", "--edits", "../../examples/edits/interview.yaml", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got struct {
		Plan *timeline.Plan `json:"plan"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Plan == nil || len(got.Plan.Intervals) == 0 || got.Plan.Duration >= got.Plan.RecordingDuration {
		t.Errorf("plan %+v, want a cut one", got.Plan)
	}
	text, err := runCmd(t, "inspect", "--edits", "../../examples/edits/grid.yaml", dir)
	if err != nil || !strings.Contains(text, "plan: 1920x1080 at 30 fps") {
		t.Errorf("text with --edits: %v\n%s", err, text)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("lanes:\n  dave: {mute: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = runCmd(t, "inspect", "--edits", bad, dir)
	if want := "bad.yaml:2: lanes.dave: unknown lane or participant \"dave\"; known: alice, alice/audio"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("bad edits: err = %v, want %q", err, want)
	}
	if _, err := runCmd(t, "inspect", filepath.Join(dir, "missing")); err == nil {
		t.Errorf("missing session: no error")
	}
}
