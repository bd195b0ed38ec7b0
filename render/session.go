package render

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tapedeck/tapedeck/timeline"
)

// manifestName is the manifest's file name in a session folder (as capture
// writes it).
const manifestName = "manifest.json"

// Session renders a recorded session folder (or its manifest.json) with
// opts: it reads the manifest, places every track with the sync model,
// applies the edits and the layout override, and renders the plan.
func Session(ctx context.Context, sessionDir string, opts Options) ([]Output, error) {
	dir, err := sessionFolder(sessionDir)
	if err != nil {
		return nil, err
	}
	plan, err := LoadPlan(dir, opts)
	if err != nil {
		return nil, err
	}
	return Render(ctx, plan, dir, opts)
}

// LoadPlan builds the plan Session renders: at the size of the largest
// profile (or the edits' output size, the profiles then scaled from it),
// with opts.Layout replacing the edits' layouts.
func LoadPlan(sessionDir string, opts Options) (*timeline.Plan, error) {
	dir, err := sessionFolder(sessionDir)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, manifestName))
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	defer f.Close()
	m, err := timeline.ParseManifest(f)
	if err != nil {
		return nil, fmt.Errorf("render: %s: %w", dir, err)
	}
	s, err := timeline.NewSync(m)
	if err != nil {
		return nil, fmt.Errorf("render: %s: %w", dir, err)
	}
	plan, err := PlanOf(m, s, opts)
	if err != nil {
		return nil, fmt.Errorf("render: %s: %w", dir, err)
	}
	return plan, nil
}

// PlanOf is LoadPlan's plan of a manifest already read and placed (a
// session being recorded, compacted from its journal).
func PlanOf(m *timeline.Manifest, s *timeline.Sync, opts Options) (*timeline.Plan, error) {
	profiles, err := parseProfiles(opts.Profiles)
	if err != nil {
		return nil, err
	}
	po, e, err := planOptions(m, profiles, opts)
	if err != nil {
		return nil, err
	}
	return timeline.NewPlan(m, s, e, po)
}

// sessionFolder accepts a session folder or its manifest file.
func sessionFolder(p string) (string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("render: session: %w", err)
	}
	if !st.IsDir() {
		p = filepath.Dir(p)
	}
	return p, nil
}

// planOptions derives the plan's size from the profiles and applies the
// layout override.
func planOptions(m *timeline.Manifest, profiles []Profile, opts Options) (timeline.PlanOptions, *timeline.Edits, error) {
	var po timeline.PlanOptions
	e := opts.Edits
	lines := 0
	for _, p := range profiles {
		for _, l := range p.lines {
			lines = max(lines, l)
		}
	}
	if lines == 0 {
		lines = 360 // audio only: the picture is never encoded
	}
	if e == nil || e.Output.Width == 0 {
		po.Width, po.Height = sizeFor(lines, 16.0/9)
	}
	switch opts.Layout {
	case "":
	case timeline.LayoutGrid, timeline.LayoutSpeaker, timeline.LayoutPiP:
		po.Layout = opts.Layout
	case timeline.LayoutSingle:
		ref := opts.Lane
		if ref == "" && len(m.Participants) > 0 {
			ref = m.Participants[0].ID
		}
		var ec timeline.Edits
		if e != nil {
			ec = *e
		} else {
			ec.File = "(command line)"
		}
		ec.Layouts = []timeline.LayoutChange{{Type: timeline.LayoutSingle, Lane: ref, Gap: -1, Fit: timeline.FitContain,
			Pos: timeline.Pos{Field: "--layout single"}}}
		e = &ec
	default:
		return po, nil, fmt.Errorf("render: layout %q: want grid, speaker, pip or single", opts.Layout)
	}
	return po, e, nil
}
