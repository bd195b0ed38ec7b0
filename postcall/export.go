package postcall

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/timeline"
)

// ExportSpec makes a RenderSpec an export for editors instead of a render: one WAV and one MP4 per
// participant, aligned, and the timelines that place them (see render.Export). Its files are stored
// under {room}/{session}/exports/{name}/ (ExportKey). The spec's Edits apply to the timelines; its
// Profile and Layout stay empty. The zero ExportSpec exports everything at 30 fps.
type ExportSpec struct {
	// NoAudio leaves out the WAV stems, NoVideo the MP4 stems (not both).
	NoAudio bool `json:"no_audio,omitempty"`
	NoVideo bool `json:"no_video,omitempty"`
	// Timelines are the formats written: "otio", "fcpxml", "xmeml"; nil is all three, NoTimelines
	// none.
	Timelines   []string `json:"timelines,omitempty"`
	NoTimelines bool     `json:"no_timelines,omitempty"`
	// FPS is the frame rate of the video stems and timelines (zero: the edits', else 30).
	FPS timeline.Rational `json:"fps,omitzero"`
	// Width and Height, if set, are every video stem's size; zero: each participant's largest.
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// Composite names a render of the same job (listed before this export) to put on the
	// timelines as a muted reference; "" for none.
	Composite string `json:"composite,omitempty"`
}

// timelineFormats are the formats an ExportSpec may name.
var timelineFormats = []string{"otio", "fcpxml", "xmeml"}

// Check reports what is wrong with the spec.
func (e *ExportSpec) Check() error {
	if e.NoAudio && e.NoVideo {
		return fmt.Errorf("export: audio none and video none: nothing to export")
	}
	for _, f := range e.Timelines {
		if !slices.Contains(timelineFormats, f) {
			return fmt.Errorf("export: timeline %q: want %s", f, strings.Join(timelineFormats, ", "))
		}
	}
	if e.NoTimelines && len(e.Timelines) > 0 {
		return fmt.Errorf("export: timelines none and %v", e.Timelines)
	}
	if r := e.FPS; r != (timeline.Rational{}) && (r.Num <= 0 || r.Den <= 0 || r.Num < r.Den || r.Num > 240*r.Den) {
		return fmt.Errorf("export: frame rate %s: want 1 to 240", r)
	}
	if (e.Width != 0 || e.Height != 0) && (e.Width < 16 || e.Height < 16 || e.Width > 7680 || e.Height > 7680 || e.Width%2 != 0 || e.Height%2 != 0) {
		return fmt.Errorf("export: size %dx%d: want even sizes from 16 to 7680", e.Width, e.Height)
	}
	if e.Composite != "" && !validName(e.Composite) {
		return fmt.Errorf("export: composite %q: want the name of a render", e.Composite)
	}
	return nil
}

// ExportsPrefix is "{room}/{session}/exports/{name}/": every file of one export.
func ExportsPrefix(room, session, name string) string {
	return storage.SessionPrefix(room, session) + "exports/" + name + "/"
}

// ExportKey is "{room}/{session}/exports/{name}/{file}".
func ExportKey(room, session, name, file string) string {
	return ExportsPrefix(room, session, name) + file
}

// outputKey is where a spec's output file is stored: under renders/ or, for an export, exports/.
func outputKey(room, session string, spec RenderSpec, name string) string {
	if spec.Export != nil {
		return ExportKey(room, session, spec.Name, name)
	}
	return storage.RenderKey(room, session, spec.Name, name)
}

// fetchComposite copies the MP4 files of render name of a stored session into
// in/renders/{name}/, where an export's renderer finds its reference.
func (p *Pipeline) fetchComposite(ctx context.Context, j Job, name, in string) error {
	prefix := storage.RendersPrefix(j.Room, j.Session, name)
	objs, err := p.store.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("postcall: composite %s: %w", name, err)
	}
	n := 0
	for _, o := range objs {
		rel := strings.TrimPrefix(o.Key, prefix)
		if strings.Contains(rel, "/") || !strings.EqualFold(path.Ext(rel), ".mp4") {
			continue
		}
		if _, err := Download(ctx, p.store, o.Key, filepath.Join(in, "renders", name, rel), nil); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return permanent(fmt.Errorf("postcall: composite %s: no MP4 stored under %s (list the render before the export)", name, prefix))
	}
	return nil
}

// exportEntry is the YAML form of an ExportSpec.
type exportEntry struct {
	Audio     string     `yaml:"audio"`     // wav (default) or none
	Video     string     `yaml:"video"`     // mp4 (default) or none
	Timelines stringList `yaml:"timelines"` // a list, "otio,fcpxml", or none; default all
	FPS       string     `yaml:"fps"`       // N or N/D
	Size      string     `yaml:"size"`      // WxH
	Composite string     `yaml:"composite"` // a render name of the same room
}

// stringList is a YAML list of strings, or one string of comma-separated items.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = nil
		for _, s := range strings.Split(n.Value, ",") {
			if s = strings.TrimSpace(s); s != "" {
				*l = append(*l, s)
			}
		}
		return nil
	case yaml.SequenceNode:
		var s []string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*l = s
		return nil
	}
	return fmt.Errorf("line %d: want a list of names or a comma-separated string", n.Line)
}

// spec converts the entry.
func (e *exportEntry) spec() (*ExportSpec, error) {
	s := &ExportSpec{Composite: e.Composite}
	switch strings.ToLower(e.Audio) {
	case "", "wav":
	case "none":
		s.NoAudio = true
	default:
		return nil, fmt.Errorf("audio %q: want wav or none", e.Audio)
	}
	switch strings.ToLower(e.Video) {
	case "", "mp4":
	case "none":
		s.NoVideo = true
	default:
		return nil, fmt.Errorf("video %q: want mp4 or none", e.Video)
	}
	for _, f := range e.Timelines {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "none" {
			s.NoTimelines = true
			continue
		}
		s.Timelines = append(s.Timelines, f)
	}
	if e.FPS != "" {
		ns, ds, frac := strings.Cut(e.FPS, "/")
		n, err1 := strconv.Atoi(strings.TrimSpace(ns))
		d, err2 := 1, error(nil)
		if frac {
			d, err2 = strconv.Atoi(strings.TrimSpace(ds))
		}
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("fps %q: want N or N/D", e.FPS)
		}
		s.FPS = timeline.Rational{Num: n, Den: d}
	}
	if e.Size != "" {
		ws, hs, ok := strings.Cut(strings.ToLower(e.Size), "x")
		w, err1 := strconv.Atoi(ws)
		h, err2 := strconv.Atoi(hs)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("size %q: want WxH", e.Size)
		}
		s.Width, s.Height = w, h
	}
	if err := s.Check(); err != nil {
		return nil, err
	}
	return s, nil
}
