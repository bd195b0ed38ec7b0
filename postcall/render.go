package postcall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"go.yaml.in/yaml/v3"
)

// Renderer renders one output of a session. sessionDir holds the session as recorded
// (manifest.json and the track files at the manifest's relative paths); Render writes its output
// files into outDir (which exists and is empty) and returns their names relative to outDir,
// slash-separated ("composite.mp4", or an HLS playlist and its segments). It must honour ctx and start
// heavy child processes with spec.Nice (nice -n) when it is above 0. outDir's parent folder is the
// job's own, kept across the job's attempts on this node and removed when the job is done: a
// renderer may keep there (under a name starting with '.') what lets a retry resume where an
// interrupted attempt stopped.
type Renderer interface {
	Render(ctx context.Context, sessionDir string, spec RenderSpec, outDir string) ([]string, error)
}

// RenderSpec is one output to render for a session. It travels in the job, so every worker renders
// what the recording node was configured for.
type RenderSpec struct {
	// Name identifies the render: its files are stored under {room}/{session}/renders/{Name}/.
	// 1–64 letters, digits, '_', '-', '.', starting with a letter or a digit.
	Name string `json:"name"`
	// Profile names the output format and size, as the renderer knows them ("" is its default:
	// MP4, H.264 and AAC).
	Profile string `json:"profile,omitempty"`
	// Layout is the layout at the start of the output ("" is the renderer's default, a grid).
	Layout string `json:"layout,omitempty"`
	// Edits is the text of an edit file (YAML or JSON, see timeline.ParseEdits), "" for none;
	// EditsFile is its name for error messages.
	Edits     string `json:"edits,omitempty"`
	EditsFile string `json:"edits_file,omitempty"`
	// Export, if set, makes this an export for editors (per-participant stems and timelines) stored
	// under {room}/{session}/exports/{Name}/ instead of a render; Profile and Layout are then empty and
	// Edits apply to the timelines.
	Export *ExportSpec `json:"export,omitempty"`
	// Nice is the niceness the renderer starts its processes with. It is set by the process that
	// renders (Config.RenderNice) and never carried in a job.
	Nice int `json:"-"`
	// Rerender is set by the process that renders when the job is a re-render an operator asked for
	// (Job.Rerender): nobody waits on a call's end for it, and the renderer may use more CPUs.
	Rerender bool `json:"-"`
}

// Check reports what is wrong with an export spec (nothing for a render).
func (s RenderSpec) Check() error {
	if s.Export == nil {
		return nil
	}
	if s.Profile != "" || s.Layout != "" {
		return fmt.Errorf("%s: an export has no profile or layout (it makes per-participant stems)", s.Name)
	}
	if err := s.Export.Check(); err != nil {
		return fmt.Errorf("%s: %w", s.Name, err)
	}
	return nil
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// validName reports whether s can be a room, session, node or render name: one key segment and one
// subject token apart from '.', which KV keys escape.
func validName(s string) bool { return namePattern.MatchString(s) }

// DefaultRenders is what a room without configuration renders: the renderer's default profile and
// layout, as "default".
func DefaultRenders() []RenderSpec { return []RenderSpec{{Name: "default"}} }

// RenderConfig says what each room renders. The zero value renders DefaultRenders everywhere.
type RenderConfig struct {
	// Default applies to rooms that Rooms does not list; nil means DefaultRenders.
	Default []RenderSpec
	// Rooms maps a room to its renders; an empty list renders nothing (the tracks are still stored
	// and the webhook sent).
	Rooms map[string][]RenderSpec
}

// For returns the renders of a room.
func (c RenderConfig) For(room string) []RenderSpec {
	if r, ok := c.Rooms[room]; ok {
		return append([]RenderSpec(nil), r...)
	}
	if c.Default != nil {
		return append([]RenderSpec(nil), c.Default...)
	}
	return DefaultRenders()
}

// renderFile is the YAML form of a render configuration file.
type renderFile struct {
	Default *[]renderEntry           `yaml:"default"`
	Rooms   map[string][]renderEntry `yaml:"rooms"`
}

type renderEntry struct {
	Name    string       `yaml:"name"`
	Profile string       `yaml:"profile"`
	Layout  string       `yaml:"layout"`
	Edits   string       `yaml:"edits"`  // a path, relative to the configuration file
	Export  *exportEntry `yaml:"export"` // set (even empty: export: {}) for an export for editors
}

// LoadRenderConfig reads a render configuration file (YAML or JSON):
//
//	default:                 # rooms not listed below (omitted: one render named "default")
//	  - name: default
//	rooms:
//	  standup:
//	    - name: default
//	      layout: speaker
//	      edits: standup.yaml  # an edit file, relative to this file; read now, sent with every job
//	    - name: small
//	      profile: mp4-360p
//	    - name: editors        # an export for editors, stored under exports/editors/
//	      edits: standup.yaml  # the timelines apply its cuts; the stems stay whole
//	      export:
//	        audio: wav         # or none
//	        video: mp4         # or none
//	        timelines: otio,fcpxml,xmeml   # or none
//	        fps: 30            # or 25, 30000/1001, ...
//	        size: 1280x720     # default: each participant's largest video
//	        composite: default # a render listed above, put on the timelines muted
//	  quiet: []              # store the tracks, render nothing
//
// Errors name the file and the field.
func LoadRenderConfig(path string) (RenderConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return RenderConfig{}, fmt.Errorf("postcall: render configuration: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f renderFile
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return RenderConfig{}, fmt.Errorf("postcall: render configuration %s: %w", path, err)
	}
	base := filepath.Dir(path)
	load := func(field string, entries []renderEntry) ([]RenderSpec, error) {
		out := make([]RenderSpec, 0, len(entries))
		seen := map[string]bool{}
		for i, e := range entries {
			at := fmt.Sprintf("%s: %s[%d]", path, field, i)
			if !validName(e.Name) {
				return nil, fmt.Errorf("postcall: render configuration %s.name %q: want 1–64 letters, digits, '_', '-', '.', "+
					"starting with a letter or digit", at, e.Name)
			}
			if seen[e.Name] {
				return nil, fmt.Errorf("postcall: render configuration %s.name %q: used twice in %s", at, e.Name, field)
			}
			seen[e.Name] = true
			s := RenderSpec{Name: e.Name, Profile: e.Profile, Layout: e.Layout}
			if e.Export != nil {
				ex, err := e.Export.spec()
				if err != nil {
					return nil, fmt.Errorf("postcall: render configuration %s.export: %w", at, err)
				}
				s.Export = ex
				if err := s.Check(); err != nil {
					return nil, fmt.Errorf("postcall: render configuration %s: %w", at, err)
				}
				if c := ex.Composite; c != "" && (!seen[c] || c == e.Name) {
					return nil, fmt.Errorf("postcall: render configuration %s.export.composite %q: name a render listed before it in %s", at, c, field)
				}
			}
			if e.Edits != "" {
				p := e.Edits
				if !filepath.IsAbs(p) {
					p = filepath.Join(base, p)
				}
				text, err := os.ReadFile(p)
				if err != nil {
					return nil, fmt.Errorf("postcall: render configuration %s.edits: %w", at, err)
				}
				s.Edits, s.EditsFile = string(text), filepath.Base(p)
			}
			out = append(out, s)
		}
		return out, nil
	}
	var c RenderConfig
	if f.Default != nil {
		if c.Default, err = load("default", *f.Default); err != nil {
			return RenderConfig{}, err
		}
	}
	for room, entries := range f.Rooms {
		if !validName(room) {
			return RenderConfig{}, fmt.Errorf("postcall: render configuration %s: rooms: %q is not a valid room name", path, room)
		}
		specs, err := load("rooms."+room, entries)
		if err != nil {
			return RenderConfig{}, err
		}
		if c.Rooms == nil {
			c.Rooms = map[string][]RenderSpec{}
		}
		c.Rooms[room] = specs
	}
	return c, nil
}
