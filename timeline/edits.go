package timeline

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Edits is what a person wants done to a recording: cuts, layouts, per-lane
// changes, names, a background, overlays and captions. It is read from a
// YAML (or JSON) edit file by ParseEdits or LoadEdits; examples/edits/
// documents the format.
//
// Every time in an edit file is recording time: 0 is the start of the
// session, as an uncut render shows it. Cuts remove output time but do not
// shift the times of the other edits (captions can opt out, see Captions).
type Edits struct {
	// File is the name used in error messages.
	File string
	// Output overrides the output size and frame rate (zero: not set).
	Output Output
	// Trim keeps only [Start, End) of the recording (End 0: to its end).
	Trim *Range
	// Cuts are removed from the output, in file order.
	Cuts []Range
	// Layouts are the layout changes, in time order. Without any, the
	// layout is a grid throughout; before the first, a grid.
	Layouts []LayoutChange
	// Lanes are the per-lane and per-participant changes, in file order.
	Lanes []LaneEdit
	// Labels turns the name labels on tiles on or off (nil: on).
	Labels *bool
	// Background is what shows where no tile is.
	Background Background
	// Overlays are images drawn over the video (a logo), in file order.
	Overlays []Overlay
	// Captions, if set, are drawn over the video.
	Captions *Captions
}

// Pos is where a value was written in an edit file.
type Pos struct {
	Line  int    // 1-based; 0 when the value was not read from a file
	Field string // path of the field, e.g. "cuts[1].end"
}

// Output overrides the output's size and frame rate.
type Output struct {
	Width, Height int      // pixels, even; 0: not set
	FPS           Rational // frames per second; zero: not set
	Pos           Pos
}

// Rational is a frame rate as a fraction (30000/1001) or a whole number
// (Den 1).
type Rational struct {
	Num int `json:"num"`
	Den int `json:"den"`
}

// Float returns the rational as a float64 (0 when unset).
func (r Rational) Float() float64 {
	if r.Den == 0 {
		return 0
	}
	return float64(r.Num) / float64(r.Den)
}

func (r Rational) String() string {
	if r.Den == 1 {
		return fmt.Sprint(r.Num)
	}
	return fmt.Sprintf("%d/%d", r.Num, r.Den)
}

// Range is a span of recording time [Start, End).
type Range struct {
	Start, End time.Duration
	Pos        Pos
}

// LayoutType names a layout.
type LayoutType string

// The layouts.
const (
	// LayoutGrid: every participant in a grid of equal tiles that reflows
	// as people join and leave (ordered by join time, then ID).
	LayoutGrid LayoutType = "grid"
	// LayoutSpeaker: the active speaker fills the frame; the others, if
	// Strip, are small tiles in a strip along the bottom.
	LayoutSpeaker LayoutType = "speaker"
	// LayoutPiP: picture-in-picture; Main (the active speaker when empty)
	// fills the frame and Inset is small in a corner.
	LayoutPiP LayoutType = "pip"
	// LayoutSingle: one participant or lane fills the frame.
	LayoutSingle LayoutType = "single"
	// LayoutCustom: the regions say which lanes go where.
	LayoutCustom LayoutType = "custom"
)

// Fit modes: how a video fills a tile whose aspect differs from its own.
const (
	FitContain = "contain" // scale to fit inside the tile, pad with the background
	FitCover   = "cover"   // scale to fill the tile, crop the overflow
)

// LayoutChange switches the layout at recording time At.
type LayoutChange struct {
	At   time.Duration
	Type LayoutType
	// Gap is the space between tiles in pixels (-1: the default, 1/90 of
	// the output height).
	Gap int
	// Fit is FitContain (the default) or FitCover.
	Fit string
	// Strip (speaker layout) shows the other participants in a strip.
	Strip bool
	// Main and Inset (pip) are lane or participant references; Main empty
	// means the active speaker, Inset empty the first other participant.
	Main, Inset string
	// Corner (pip) is top-left, top-right, bottom-left or bottom-right.
	Corner string
	// Size (pip) is the inset's width as a fraction of the output width.
	Size float64
	// Lane (single) is the lane or participant shown.
	Lane string
	// Regions (custom) place lanes.
	Regions []Region
	Pos     Pos
}

// Region is a rectangle of a custom layout and what it shows: Lanes (lane
// or participant references, arranged in a grid inside it when several are
// present), the active Speaker, or the Others (everyone present that no
// other region of the layout shows).
type Region struct {
	X, Y, Width, Height Length
	Z                   int
	Lanes               []string
	Speaker             bool
	Others              bool
	Fit                 string // "" inherits the layout's
	Pos                 Pos
}

// Length is a size or position in pixels, or a percentage of the output's
// width (for x and widths) or height (for y and heights).
type Length struct {
	Pixels    int
	Percent   float64
	IsPercent bool
}

// Resolve returns the length in pixels against the given total.
func (l Length) Resolve(total int) int {
	if l.IsPercent {
		return int(l.Percent*float64(total)/100 + 0.5)
	}
	return l.Pixels
}

// LaneEdit changes one lane, or every lane of one participant.
type LaneEdit struct {
	// Ref is the lane ID ("alice/video") or participant ID ("alice").
	Ref string
	// Name is the participant's display name; Label the text on its tiles
	// (default: the display name; "" for none). Participants only.
	Name, Label *string
	// Hide shows the video lanes as placeholder tiles.
	Hide Toggle
	// Mute silences the audio lanes.
	Mute Toggle
	// GainDB is added to the audio lanes' level.
	GainDB float64
	// Exclude leaves the participant out entirely: no tile, no sound, never
	// the active speaker. Participants only.
	Exclude bool
	Pos     Pos
}

// Toggle is on throughout (Always) or during Ranges of recording time.
type Toggle struct {
	Always bool
	Ranges []Range
}

// At reports whether the toggle is on at recording time t.
func (g Toggle) At(t time.Duration) bool {
	if g.Always {
		return true
	}
	for _, r := range g.Ranges {
		if t >= r.Start && t < r.End {
			return true
		}
	}
	return false
}

// Background is drawn behind the tiles: a colour, and optionally an image
// scaled to cover the output.
type Background struct {
	Color string // "#rrggbb"; "" is black
	Image string // a path; relative to the edit file when loaded by LoadEdits
	Pos   Pos
}

// Overlay anchors.
const (
	AnchorTopLeft     = "top-left"
	AnchorTopRight    = "top-right"
	AnchorBottomLeft  = "bottom-left"
	AnchorBottomRight = "bottom-right"
	AnchorCenter      = "center"
)

// Overlay is an image (a logo) drawn over the video.
type Overlay struct {
	Image string
	// Position is the corner (or center) it is anchored to; X and Y are its
	// distance from that corner's edges (ignored for center).
	Position string
	X, Y     Length
	// Width of the image; Height 0 keeps the image's aspect.
	Width, Height Length
	Opacity       float64
	// Start and End are recording times; End 0 is the end.
	Start, End time.Duration
	Pos        Pos
}

// Captions are subtitles drawn over the video.
type Captions struct {
	// File is an SRT or WebVTT file (relative to the edit file).
	File string
	// Cues are the captions: read from File by LoadEdits, or written in the
	// edit file.
	Cues []Cue
	// Loaded is true when Cues holds File's captions.
	Loaded bool
	// Offset is added to every cue's times.
	Offset time.Duration
	// OutputTime means the cues' times are output time (a caption file made
	// from a render with the same cuts), not recording time.
	OutputTime bool
	Pos        Pos
}

// ErrInvalidEdits is wrapped by every error about an edit file's content.
var ErrInvalidEdits = errors.New("invalid edits")

// EditError is an error in an edit file: where, which field, and what is
// wrong and allowed.
type EditError struct {
	File  string
	Line  int    // 1-based; 0 when not known
	Field string // e.g. "cuts[1].end"
	Msg   string
}

func (e *EditError) Error() string {
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Field == "" {
		return fmt.Sprintf("timeline: edits %s: %s", where, e.Msg)
	}
	return fmt.Sprintf("timeline: edits %s: %s: %s", where, e.Field, e.Msg)
}

// Unwrap returns ErrInvalidEdits.
func (e *EditError) Unwrap() error { return ErrInvalidEdits }

func (e *Edits) errAt(p Pos, format string, args ...any) error {
	return &EditError{File: e.File, Line: p.Line, Field: p.Field, Msg: fmt.Sprintf(format, args...)}
}

// maxEditsSize bounds the size of an edit file or caption file.
const maxEditsSize = 16 << 20

// LoadEdits reads an edit file, resolves the paths in it (images, captions)
// against the file's folder, and reads its caption file.
func LoadEdits(path string) (*Edits, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("timeline: edits: %w", err)
	}
	defer f.Close()
	e, err := ParseEdits(path, f)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	resolve := func(p string) string {
		if p == "" || filepath.IsAbs(p) || strings.Contains(p, "://") {
			return p
		}
		return filepath.Join(dir, filepath.FromSlash(p))
	}
	e.Background.Image = resolve(e.Background.Image)
	for i := range e.Overlays {
		e.Overlays[i].Image = resolve(e.Overlays[i].Image)
	}
	if c := e.Captions; c != nil && c.File != "" {
		c.File = resolve(c.File)
		cues, err := LoadCaptions(c.File)
		if err != nil {
			return nil, e.errAt(c.Pos, "%v", err)
		}
		c.Cues, c.Loaded = cues, true
	}
	return e, nil
}

// ParseEdits reads an edit file (YAML or JSON) named name (for messages).
// Paths in it are kept as written and caption files are not read (LoadEdits
// does both). It checks everything that does not need the recording;
// Validate checks the rest.
func ParseEdits(name string, r io.Reader) (*Edits, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxEditsSize+1))
	if err != nil {
		return nil, fmt.Errorf("timeline: edits %s: %w", name, err)
	}
	if len(data) > maxEditsSize {
		return nil, &EditError{File: name, Msg: fmt.Sprintf("larger than %d MiB", maxEditsSize>>20)}
	}
	p := &editParser{e: &Edits{File: name}}
	if err := p.parse(data); err != nil {
		return nil, err
	}
	return p.e, nil
}

// Validate checks the edits against a recording: every lane or participant
// they name exists in m and is of a kind the edit applies to.
func (e *Edits) Validate(m *Manifest) error {
	if m == nil {
		return errors.New("timeline: edits: validate against a nil manifest")
	}
	_, err := resolveEdits(m, e)
	return err
}

// editState is the edits resolved against a manifest.
type editState struct {
	names    map[string]string // participant → display name
	labels   map[string]string // participant → tile label
	excluded map[string]bool   // participant
	hideP    map[string]Toggle // participant
	hideL    map[string]Toggle // video lane
	muteP    map[string]Toggle // participant
	muteL    map[string]Toggle // audio lane
	gainP    map[string]float64
	gainL    map[string]float64
}

// refKind is what a reference resolved to.
type refKind int

const (
	refLane refKind = iota
	refParticipant
)

// resolveRef finds a lane (by ID, first) or a participant.
func resolveRef(m *Manifest, ref string) (refKind, *Lane, bool) {
	if l, ok := m.Lane(ref); ok {
		return refLane, l, true
	}
	for _, p := range m.Participants {
		if p.ID == ref {
			return refParticipant, nil, true
		}
	}
	return 0, nil, false
}

// knownRefs lists the references a manifest accepts, for messages.
func knownRefs(m *Manifest) string {
	var out []string
	for _, p := range sortedParticipants(m) {
		out = append(out, p.ID)
		for _, l := range sortedLanes(m) {
			if l.Participant == p.ID {
				out = append(out, l.ID)
			}
		}
	}
	if len(out) == 0 {
		return "none (the recording has no participants)"
	}
	return strings.Join(out, ", ")
}

// checkVideoRef checks a reference used in a layout: a participant or a
// video lane.
func (e *Edits) checkVideoRef(m *Manifest, ref string, p Pos) error {
	k, l, ok := resolveRef(m, ref)
	if !ok {
		return e.errAt(p, "unknown lane or participant %q; known: %s", ref, knownRefs(m))
	}
	if k == refLane && l.Kind != Video {
		return e.errAt(p, "lane %q is %s; a layout places video: name the participant (%q) or a video lane", ref, l.Kind, l.Participant)
	}
	return nil
}

func resolveEdits(m *Manifest, e *Edits) (*editState, error) {
	st := &editState{
		names: map[string]string{}, labels: map[string]string{}, excluded: map[string]bool{},
		hideP: map[string]Toggle{}, hideL: map[string]Toggle{}, muteP: map[string]Toggle{}, muteL: map[string]Toggle{},
		gainP: map[string]float64{}, gainL: map[string]float64{},
	}
	for _, p := range m.Participants {
		st.names[p.ID] = p.Name
		if p.Name == "" {
			st.names[p.ID] = p.ID
		}
	}
	if e == nil {
		e = &Edits{}
	}
	seen := map[string]bool{}
	for _, le := range e.Lanes {
		k, l, ok := resolveRef(m, le.Ref)
		if !ok {
			return nil, e.errAt(le.Pos, "unknown lane or participant %q; known: %s", le.Ref, knownRefs(m))
		}
		seen[le.Ref] = true
		at := func(field string) Pos { return Pos{Line: le.Pos.Line, Field: le.Pos.Field + "." + field} }
		if k == refLane {
			switch {
			case le.Name != nil:
				return nil, e.errAt(at("name"), "names belong to participants: write it under %q", l.Participant)
			case le.Label != nil:
				return nil, e.errAt(at("label"), "labels belong to participants: write it under %q", l.Participant)
			case le.Exclude:
				return nil, e.errAt(at("exclude"), "exclude applies to participants: write it under %q", l.Participant)
			case l.Kind == Audio && (le.Hide.Always || len(le.Hide.Ranges) > 0):
				return nil, e.errAt(at("hide"), "lane %q is audio; hide applies to video (use mute)", l.ID)
			case l.Kind == Video && (le.Mute.Always || len(le.Mute.Ranges) > 0):
				return nil, e.errAt(at("mute"), "lane %q is video; mute applies to audio (use hide)", l.ID)
			case l.Kind == Video && le.GainDB != 0:
				return nil, e.errAt(at("gain"), "lane %q is video; gain applies to audio", l.ID)
			}
			if l.Kind == Video {
				st.hideL[l.ID] = le.Hide
			} else {
				st.muteL[l.ID] = le.Mute
				if le.GainDB != 0 {
					st.gainL[l.ID] = le.GainDB
				}
			}
			continue
		}
		if le.Name != nil {
			st.names[le.Ref] = *le.Name
		}
		if le.Label != nil {
			st.labels[le.Ref] = *le.Label
		}
		st.excluded[le.Ref] = le.Exclude
		st.hideP[le.Ref] = le.Hide
		st.muteP[le.Ref] = le.Mute
		st.gainP[le.Ref] = le.GainDB
	}
	for _, p := range m.Participants {
		if _, ok := st.labels[p.ID]; !ok {
			st.labels[p.ID] = st.names[p.ID]
		}
		if e.Labels != nil && !*e.Labels {
			st.labels[p.ID] = ""
		}
	}
	for i, lc := range e.Layouts {
		at := func(field string) Pos { return Pos{Line: lc.Pos.Line, Field: fmt.Sprintf("layouts[%d].%s", i, field)} }
		for _, c := range []struct{ field, ref string }{{"main", lc.Main}, {"inset", lc.Inset}, {"lane", lc.Lane}} {
			if c.ref == "" {
				continue
			}
			if err := e.checkVideoRef(m, c.ref, at(c.field)); err != nil {
				return nil, err
			}
		}
		for _, rg := range lc.Regions {
			for _, ref := range rg.Lanes {
				if err := e.checkVideoRef(m, ref, Pos{Line: rg.Pos.Line, Field: rg.Pos.Field + ".lanes"}); err != nil {
					return nil, err
				}
			}
		}
	}
	if c := e.Captions; c != nil && c.File != "" && !c.Loaded {
		return nil, e.errAt(c.Pos, "caption file %q was not read: load the edit file with LoadEdits", c.File)
	}
	return st, nil
}

// hidden reports whether the video of participant p's lane (lane may be "")
// is hidden at t.
func (st *editState) hidden(p, lane string, t time.Duration) bool {
	return st.hideP[p].At(t) || (lane != "" && st.hideL[lane].At(t))
}

// muted reports whether audio lane lane of participant p is muted at t.
func (st *editState) muted(p, lane string, t time.Duration) bool {
	return st.muteP[p].At(t) || st.muteL[lane].At(t)
}

// gain returns the gain of an audio lane in dB: the lane's own if set,
// else its participant's.
func (st *editState) gain(p, lane string) float64 {
	if g, ok := st.gainL[lane]; ok {
		return g
	}
	return st.gainP[p]
}

// toggleBounds returns the start and end of every range of the toggles.
func (st *editState) toggleBounds() []time.Duration {
	var out []time.Duration
	for _, mp := range []map[string]Toggle{st.hideP, st.hideL, st.muteP, st.muteL} {
		for _, g := range mp {
			for _, r := range g.Ranges {
				out = append(out, r.Start, r.End)
			}
		}
	}
	return out
}
