package timeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// This file reads an edit file. It walks yaml.v3's node tree itself rather
// than decoding into structs: that way every error names the line and the
// full path of the field, unknown fields are errors that list the fields
// allowed there (what yaml.v3's KnownFields does, with a better message),
// and the values that can be written two ways (a time as a number or a
// clock string, a size in pixels or percent, a toggle as a bool or a list of
// ranges) are checked where they are read.

// maxEditTime bounds every time in an edit file.
const maxEditTime = 1000 * time.Hour

// Limits of the values an edit file may set.
const (
	minOutputSize = 16
	maxOutputSize = 7680
	maxFPS        = 240
	maxGainDB     = 40
	minGainDB     = -100
)

type editParser struct {
	e *Edits
}

func (p *editParser) fail(n *yaml.Node, field, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &EditError{File: p.e.File, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func pos(n *yaml.Node, field string) Pos { return Pos{Line: n.Line, Field: field} }

// deref follows aliases to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing"
		}
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return strconv.Quote(v)
	}
	return "an unexpected value"
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func subPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// entry is one field of a mapping.
type entry struct{ key, val *yaml.Node }

// fields checks that n is a mapping whose keys are all allowed and returns
// its fields by name.
func (p *editParser) fields(n *yaml.Node, path string, allowed ...string) (map[string]entry, error) {
	if n.Kind != yaml.MappingNode {
		return nil, p.fail(n, path, "want a mapping (with fields %s), got %s", strings.Join(allowed, ", "), describe(n))
	}
	out := map[string]entry{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k == nil || v == nil {
			return nil, p.fail(n, path, "unresolved alias")
		}
		if k.Kind != yaml.ScalarNode {
			return nil, p.fail(k, path, "a field name must be a plain word, got %s", describe(k))
		}
		name := k.Value
		if !slices.Contains(allowed, name) {
			where := path
			if where == "" {
				where = "the top level"
			}
			return nil, p.fail(k, subPath(path, name), "unknown field; allowed in %s: %s", where, strings.Join(allowed, ", "))
		}
		if prev, dup := out[name]; dup {
			return nil, p.fail(k, subPath(path, name), "set twice (first on line %d)", prev.key.Line)
		}
		out[name] = entry{k, v}
	}
	return out, nil
}

// list returns the items of a sequence (nothing for null).
func (p *editParser) list(n *yaml.Node, path, what string) ([]*yaml.Node, error) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.fail(n, path, "want a list of %s, got %s", what, describe(n))
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		if out[i] = deref(c); out[i] == nil {
			return nil, p.fail(n, path, "unresolved alias")
		}
	}
	return out, nil
}

func (p *editParser) scalar(n *yaml.Node, path, want string) error {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return p.fail(n, path, "want %s, got %s", want, describe(n))
	}
	return nil
}

func (p *editParser) str(n *yaml.Node, path string) (string, error) {
	if err := p.scalar(n, path, "a text"); err != nil {
		return "", err
	}
	return n.Value, nil
}

func (p *editParser) nonEmpty(n *yaml.Node, path, what string) (string, error) {
	s, err := p.str(n, path)
	if err == nil && strings.TrimSpace(s) == "" {
		err = p.fail(n, path, "want %s, got an empty text", what)
	}
	return s, err
}

func (p *editParser) boolean(n *yaml.Node, path string) (bool, error) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		return false, p.fail(n, path, "want true or false, got %s", describe(n))
	}
	return b, nil
}

func (p *editParser) number(n *yaml.Node, path string, lo, hi float64, want string) (float64, error) {
	var f float64
	tag := n.ShortTag()
	if n.Kind != yaml.ScalarNode || (tag != "!!int" && tag != "!!float") || n.Decode(&f) != nil ||
		math.IsNaN(f) || math.IsInf(f, 0) || f < lo || f > hi {
		return 0, p.fail(n, path, "want %s, got %s", want, describe(n))
	}
	return f, nil
}

func (p *editParser) integer(n *yaml.Node, path string, lo, hi int, want string) (int, error) {
	var v int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil || v < int64(lo) || v > int64(hi) {
		return 0, p.fail(n, path, "want %s, got %s", want, describe(n))
	}
	return int(v), nil
}

func (p *editParser) enum(n *yaml.Node, path string, allowed ...string) (string, error) {
	if n.Kind == yaml.ScalarNode && !isNull(n) && slices.Contains(allowed, n.Value) {
		return n.Value, nil
	}
	return "", p.fail(n, path, "want one of %s, got %s", strings.Join(allowed, ", "), describe(n))
}

const timeWant = `a time: seconds (90 or 90.5) or "hh:mm:ss.mmm" / "mm:ss"`

// time reads a time: a number of seconds, or a clock string.
func (p *editParser) time(n *yaml.Node, path string) (time.Duration, error) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!int", "!!float":
			f, err := p.number(n, path, 0, maxEditTime.Seconds(), timeWant+" (0 or more, under 1000 hours)")
			if err != nil {
				return 0, err
			}
			return time.Duration(math.Round(f * 1e9)), nil
		case "!!str":
			if d, ok := parseClock(strings.TrimSpace(n.Value), '.'); ok && d <= maxEditTime {
				return d, nil
			}
		}
	}
	return 0, p.fail(n, path, "want %s, got %s", timeWant, describe(n))
}

// parseClock parses "ss", "ss.fff", "mm:ss(.fff)" or "hh:mm:ss(.fff)" with
// the given fraction separator. The first component is unbounded; the
// others are two digits under 60.
func parseClock(s string, fracSep byte) (time.Duration, bool) {
	parts := strings.Split(s, ":")
	if len(parts) > 3 {
		return 0, false
	}
	var secs int64
	var frac time.Duration
	for i, part := range parts {
		whole := part
		if i == len(parts)-1 {
			if j := strings.IndexByte(part, fracSep); j >= 0 {
				whole = part[:j]
				f := part[j+1:]
				if f == "" || len(f) > 9 || !digits(f) {
					return 0, false
				}
				v, _ := strconv.ParseInt(f+strings.Repeat("0", 9-len(f)), 10, 64)
				frac = time.Duration(v)
			}
		}
		if whole == "" || len(whole) > 9 || !digits(whole) || (i > 0 && len(whole) != 2) {
			return 0, false
		}
		v, _ := strconv.ParseInt(whole, 10, 64)
		if i > 0 && v >= 60 {
			return 0, false
		}
		secs = secs*60 + v
		if secs > int64(maxEditTime/time.Second) {
			return 0, false
		}
	}
	return time.Duration(secs)*time.Second + frac, true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

const lengthWant = `pixels (a whole number, 0 or more) or a percentage ("25%")`

var percentRE = regexp.MustCompile(`^([0-9]{1,3}(?:\.[0-9]{1,6})?)%$`)

func (p *editParser) length(n *yaml.Node, path string) (Length, error) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!int":
			v, err := p.integer(n, path, 0, maxOutputSize, lengthWant+", at most 7680")
			return Length{Pixels: v}, err
		case "!!str":
			if m := percentRE.FindStringSubmatch(strings.TrimSpace(n.Value)); m != nil {
				f, _ := strconv.ParseFloat(m[1], 64)
				if f <= 100 {
					return Length{Percent: f, IsPercent: true}, nil
				}
			}
		}
	}
	return Length{}, p.fail(n, path, "want %s, got %s", lengthWant, describe(n))
}

var colorRE = regexp.MustCompile(`^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

func (p *editParser) color(n *yaml.Node, path string) (string, error) {
	if n.Kind == yaml.ScalarNode && colorRE.MatchString(n.Value) {
		c := strings.ToLower(n.Value)
		if len(c) == 4 {
			c = string([]byte{'#', c[1], c[1], c[2], c[2], c[3], c[3]})
		}
		return c, nil
	}
	return "", p.fail(n, path, `want a colour "#rrggbb" or "#rgb", got %s`, describe(n))
}

// refs reads one lane or participant reference, or a list of them.
func (p *editParser) refs(n *yaml.Node, path string) ([]string, error) {
	if n.Kind == yaml.ScalarNode {
		s, err := p.nonEmpty(n, path, "a lane or participant ID")
		return []string{s}, err
	}
	items, err := p.list(n, path, "lane or participant IDs")
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, p.fail(n, path, "want at least one lane or participant ID")
	}
	out := make([]string, len(items))
	for i, it := range items {
		if out[i], err = p.nonEmpty(it, fmt.Sprintf("%s[%d]", path, i), "a lane or participant ID"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (p *editParser) parse(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file: no edits
		}
		return &EditError{File: p.e.File, Msg: err.Error()}
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		line := more.Line
		if err != nil {
			return &EditError{File: p.e.File, Msg: err.Error()}
		}
		return &EditError{File: p.e.File, Line: line, Msg: "more than one YAML document; write one"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	if root = deref(root); root == nil || isNull(root) {
		return nil
	}
	f, err := p.fields(root, "", "version", "output", "trim", "cuts", "layouts", "lanes", "labels", "background", "overlays", "captions")
	if err != nil {
		return err
	}
	if v, ok := f["version"]; ok {
		if _, err := p.integer(v.val, "version", 1, 1, "1 (the only version of the format)"); err != nil {
			return err
		}
	}
	steps := []struct {
		name string
		fn   func(*yaml.Node) error
	}{
		{"output", p.output}, {"trim", p.trim}, {"cuts", p.cuts}, {"layouts", p.layouts}, {"lanes", p.lanes},
		{"labels", p.labels}, {"background", p.background}, {"overlays", p.overlays}, {"captions", p.captions},
	}
	for _, s := range steps {
		if v, ok := f[s.name]; ok {
			if err := s.fn(v.val); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *editParser) output(n *yaml.Node) error {
	f, err := p.fields(n, "output", "width", "height", "fps")
	if err != nil {
		return err
	}
	o := Output{Pos: pos(n, "output")}
	w, hasW := f["width"]
	h, hasH := f["height"]
	if hasW != hasH {
		return p.fail(n, "output", "set both width and height, or neither")
	}
	const sizeWant = "an even number of pixels from 16 to 7680"
	if hasW {
		if o.Width, err = p.integer(w.val, "output.width", minOutputSize, maxOutputSize, sizeWant); err != nil {
			return err
		}
		if o.Height, err = p.integer(h.val, "output.height", minOutputSize, maxOutputSize, sizeWant); err != nil {
			return err
		}
		if o.Width%2 != 0 {
			return p.fail(w.val, "output.width", "want %s, got %d (H.264 needs even sizes)", sizeWant, o.Width)
		}
		if o.Height%2 != 0 {
			return p.fail(h.val, "output.height", "want %s, got %d (H.264 needs even sizes)", sizeWant, o.Height)
		}
	}
	if v, ok := f["fps"]; ok {
		if o.FPS, err = p.fps(v.val, "output.fps"); err != nil {
			return err
		}
	}
	p.e.Output = o
	return nil
}

var fpsRE = regexp.MustCompile(`^([0-9]{1,6})/([0-9]{1,6})$`)

func (p *editParser) fps(n *yaml.Node, path string) (Rational, error) {
	const want = `a frame rate from 1 to 240: a whole number (30) or a fraction ("30000/1001")`
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!int":
			v, err := p.integer(n, path, 1, maxFPS, want)
			return Rational{Num: v, Den: 1}, err
		case "!!str":
			if m := fpsRE.FindStringSubmatch(strings.TrimSpace(n.Value)); m != nil {
				num, _ := strconv.Atoi(m[1])
				den, _ := strconv.Atoi(m[2])
				if den > 0 && num >= den && num <= maxFPS*den {
					return Rational{Num: num, Den: den}, nil
				}
			}
		}
	}
	return Rational{}, p.fail(n, path, "want %s, got %s", want, describe(n))
}

// rangeOf reads {start, end}; needStart/needEnd say which are required.
func (p *editParser) rangeOf(n *yaml.Node, path string, needStart, needEnd bool) (Range, error) {
	f, err := p.fields(n, path, "start", "end")
	if err != nil {
		return Range{}, err
	}
	r := Range{Pos: pos(n, path)}
	s, hasS := f["start"]
	e, hasE := f["end"]
	switch {
	case needStart && !hasS:
		return r, p.fail(n, path+".start", "missing; want %s", timeWant)
	case needEnd && !hasE:
		return r, p.fail(n, path+".end", "missing; want %s", timeWant)
	case !hasS && !hasE:
		return r, p.fail(n, path, "set start, end or both")
	}
	if hasS {
		if r.Start, err = p.time(s.val, path+".start"); err != nil {
			return r, err
		}
	}
	if hasE {
		if r.End, err = p.time(e.val, path+".end"); err != nil {
			return r, err
		}
		if r.End <= r.Start {
			return r, p.fail(e.val, path+".end", "%s is not after start %s", FormatTime(r.End), FormatTime(r.Start))
		}
	}
	return r, nil
}

func (p *editParser) trim(n *yaml.Node) error {
	r, err := p.rangeOf(n, "trim", false, false)
	if err != nil {
		return err
	}
	p.e.Trim = &r
	return nil
}

func (p *editParser) ranges(n *yaml.Node, path string) ([]Range, error) {
	items, err := p.list(n, path, "{start, end} ranges")
	if err != nil {
		return nil, err
	}
	out := make([]Range, 0, len(items))
	for i, it := range items {
		r, err := p.rangeOf(it, fmt.Sprintf("%s[%d]", path, i), true, true)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (p *editParser) cuts(n *yaml.Node) error {
	var err error
	p.e.Cuts, err = p.ranges(n, "cuts")
	return err
}

// layoutFields lists the fields a layout of type t accepts.
func layoutFields(t LayoutType) []string {
	common := []string{"at", "type", "gap", "fit"}
	switch t {
	case LayoutSpeaker:
		return append(common, "strip")
	case LayoutPiP:
		return append(common, "main", "inset", "corner", "size")
	case LayoutSingle:
		return append(common, "lane")
	case LayoutCustom:
		return append(common, "regions")
	}
	return common
}

func (p *editParser) layouts(n *yaml.Node) error {
	items, err := p.list(n, "layouts", "layout changes")
	if err != nil {
		return err
	}
	for i, it := range items {
		lc, err := p.layout(it, fmt.Sprintf("layouts[%d]", i))
		if err != nil {
			return err
		}
		if i > 0 && lc.At <= p.e.Layouts[i-1].At {
			return p.fail(it, fmt.Sprintf("layouts[%d].at", i), "%s is not after the previous layout's %s: list layouts in time order",
				FormatTime(lc.At), FormatTime(p.e.Layouts[i-1].At))
		}
		p.e.Layouts = append(p.e.Layouts, lc)
	}
	return nil
}

func (p *editParser) layout(n *yaml.Node, path string) (LayoutChange, error) {
	lc := LayoutChange{Gap: -1, Fit: FitContain, Strip: true, Corner: AnchorBottomRight, Size: 0.25, Pos: pos(n, path)}
	if n.Kind != yaml.MappingNode {
		return lc, p.fail(n, path, "want a mapping with at and type, got %s", describe(n))
	}
	var typeNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := deref(n.Content[i]); k != nil && k.Kind == yaml.ScalarNode && k.Value == "type" {
			typeNode = deref(n.Content[i+1])
		}
	}
	types := []string{string(LayoutGrid), string(LayoutSpeaker), string(LayoutPiP), string(LayoutSingle), string(LayoutCustom)}
	if typeNode == nil {
		return lc, p.fail(n, path+".type", "missing; want one of %s", strings.Join(types, ", "))
	}
	t, err := p.enum(typeNode, path+".type", types...)
	if err != nil {
		return lc, err
	}
	lc.Type = LayoutType(t)
	f, err := p.fields(n, path, layoutFields(lc.Type)...)
	if err != nil {
		var ee *EditError
		if errors.As(err, &ee) && strings.HasPrefix(ee.Msg, "unknown field") {
			ee.Msg = fmt.Sprintf("not a field of a %s layout; allowed: %s", lc.Type, strings.Join(layoutFields(lc.Type), ", "))
		}
		return lc, err
	}
	if v, ok := f["at"]; ok {
		if lc.At, err = p.time(v.val, path+".at"); err != nil {
			return lc, err
		}
	}
	if v, ok := f["gap"]; ok {
		if lc.Gap, err = p.integer(v.val, path+".gap", 0, 500, "a number of pixels from 0 to 500"); err != nil {
			return lc, err
		}
	}
	if v, ok := f["fit"]; ok {
		if lc.Fit, err = p.enum(v.val, path+".fit", FitContain, FitCover); err != nil {
			return lc, err
		}
	}
	if v, ok := f["strip"]; ok {
		if lc.Strip, err = p.boolean(v.val, path+".strip"); err != nil {
			return lc, err
		}
	}
	for _, s := range []struct {
		name string
		dst  *string
	}{{"main", &lc.Main}, {"inset", &lc.Inset}, {"lane", &lc.Lane}} {
		if v, ok := f[s.name]; ok {
			if *s.dst, err = p.nonEmpty(v.val, path+"."+s.name, "a lane or participant ID"); err != nil {
				return lc, err
			}
		}
	}
	if lc.Type == LayoutSingle && lc.Lane == "" {
		return lc, p.fail(n, path+".lane", "missing; a single layout needs the lane or participant it shows")
	}
	if lc.Main != "" && lc.Main == lc.Inset {
		return lc, p.fail(f["inset"].val, path+".inset", "%q is also main; pick another lane or participant", lc.Inset)
	}
	if v, ok := f["corner"]; ok {
		if lc.Corner, err = p.enum(v.val, path+".corner", AnchorTopLeft, AnchorTopRight, AnchorBottomLeft, AnchorBottomRight); err != nil {
			return lc, err
		}
	}
	if v, ok := f["size"]; ok {
		if lc.Size, err = p.number(v.val, path+".size", 0.05, 0.5, "the inset's width as a fraction of the output's, from 0.05 to 0.5"); err != nil {
			return lc, err
		}
	}
	if lc.Type == LayoutCustom {
		v, ok := f["regions"]
		if !ok {
			return lc, p.fail(n, path+".regions", "missing; a custom layout needs a list of regions")
		}
		items, err := p.list(v.val, path+".regions", "regions")
		if err != nil {
			return lc, err
		}
		if len(items) == 0 {
			return lc, p.fail(v.val, path+".regions", "want at least one region")
		}
		others := false
		for i, it := range items {
			rp := fmt.Sprintf("%s.regions[%d]", path, i)
			rg, err := p.region(it, rp)
			if err != nil {
				return lc, err
			}
			if rg.Others && others {
				return lc, p.fail(it, rp+".others", "only one region can show the others")
			}
			others = others || rg.Others
			lc.Regions = append(lc.Regions, rg)
		}
	}
	return lc, nil
}

func (p *editParser) region(n *yaml.Node, path string) (Region, error) {
	rg := Region{Pos: pos(n, path)}
	f, err := p.fields(n, path, "x", "y", "width", "height", "z", "lanes", "speaker", "others", "fit")
	if err != nil {
		return rg, err
	}
	for _, s := range []struct {
		name     string
		dst      *Length
		required bool
	}{{"x", &rg.X, false}, {"y", &rg.Y, false}, {"width", &rg.Width, true}, {"height", &rg.Height, true}} {
		v, ok := f[s.name]
		if !ok {
			if s.required {
				return rg, p.fail(n, path+"."+s.name, "missing; want %s", lengthWant)
			}
			continue
		}
		if *s.dst, err = p.length(v.val, path+"."+s.name); err != nil {
			return rg, err
		}
	}
	if v, ok := f["z"]; ok {
		if rg.Z, err = p.integer(v.val, path+".z", -100, 100, "a stacking order from -100 to 100 (higher is in front)"); err != nil {
			return rg, err
		}
	}
	if v, ok := f["fit"]; ok {
		if rg.Fit, err = p.enum(v.val, path+".fit", FitContain, FitCover); err != nil {
			return rg, err
		}
	}
	set := 0
	if v, ok := f["lanes"]; ok {
		if rg.Lanes, err = p.refs(v.val, path+".lanes"); err != nil {
			return rg, err
		}
		set++
	}
	for _, s := range []struct {
		name string
		dst  *bool
	}{{"speaker", &rg.Speaker}, {"others", &rg.Others}} {
		if v, ok := f[s.name]; ok {
			if *s.dst, err = p.boolean(v.val, path+"."+s.name); err != nil {
				return rg, err
			}
			if *s.dst {
				set++
			}
		}
	}
	if set != 1 {
		return rg, p.fail(n, path, "say what the region shows: exactly one of lanes (a list), speaker: true or others: true")
	}
	return rg, nil
}

func (p *editParser) lanes(n *yaml.Node) error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return p.fail(n, "lanes", "want a mapping from lane or participant ID to changes, got %s", describe(n))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k == nil || v == nil {
			return p.fail(n, "lanes", "unresolved alias")
		}
		if k.Kind != yaml.ScalarNode || isNull(k) || k.Value == "" {
			return p.fail(k, "lanes", "want a lane or participant ID as the key, got %s", describe(k))
		}
		path := "lanes." + k.Value
		if line, dup := seen[k.Value]; dup {
			return p.fail(k, path, "set twice (first on line %d)", line)
		}
		seen[k.Value] = k.Line
		le := LaneEdit{Ref: k.Value, Pos: pos(k, path)}
		f, err := p.fields(v, path, "name", "label", "hide", "mute", "gain", "exclude")
		if err != nil {
			return err
		}
		for _, s := range []struct {
			name string
			dst  **string
		}{{"name", &le.Name}, {"label", &le.Label}} {
			if e, ok := f[s.name]; ok {
				var str string
				if isNull(e.val) {
					str = "" // label: ~ means no label
				} else if str, err = p.str(e.val, path+"."+s.name); err != nil {
					return err
				}
				if s.name == "name" && strings.TrimSpace(str) == "" {
					return p.fail(e.val, path+".name", "want a display name, got an empty text")
				}
				*s.dst = &str
			}
		}
		for _, s := range []struct {
			name string
			dst  *Toggle
		}{{"hide", &le.Hide}, {"mute", &le.Mute}} {
			if e, ok := f[s.name]; ok {
				if *s.dst, err = p.toggle(e.val, path+"."+s.name); err != nil {
					return err
				}
			}
		}
		if e, ok := f["gain"]; ok {
			if le.GainDB, err = p.number(e.val, path+".gain", minGainDB, maxGainDB, "a gain in dB from -100 to 40"); err != nil {
				return err
			}
		}
		if e, ok := f["exclude"]; ok {
			if le.Exclude, err = p.boolean(e.val, path+".exclude"); err != nil {
				return err
			}
		}
		p.e.Lanes = append(p.e.Lanes, le)
	}
	return nil
}

// toggle reads true/false or a list of {start, end} ranges.
func (p *editParser) toggle(n *yaml.Node, path string) (Toggle, error) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		b, err := p.boolean(n, path)
		return Toggle{Always: b}, err
	}
	if n.Kind != yaml.SequenceNode {
		return Toggle{}, p.fail(n, path, "want true, false or a list of {start, end} ranges, got %s", describe(n))
	}
	r, err := p.ranges(n, path)
	return Toggle{Ranges: r}, err
}

func (p *editParser) labels(n *yaml.Node) error {
	b, err := p.boolean(n, "labels")
	p.e.Labels = &b
	return err
}

func (p *editParser) background(n *yaml.Node) error {
	bg := Background{Pos: pos(n, "background")}
	var err error
	if n.Kind == yaml.ScalarNode {
		if bg.Color, err = p.color(n, "background"); err != nil {
			return err
		}
		p.e.Background = bg
		return nil
	}
	f, err := p.fields(n, "background", "color", "image")
	if err != nil {
		return err
	}
	if v, ok := f["color"]; ok {
		if bg.Color, err = p.color(v.val, "background.color"); err != nil {
			return err
		}
	}
	if v, ok := f["image"]; ok {
		if bg.Image, err = p.nonEmpty(v.val, "background.image", "an image path"); err != nil {
			return err
		}
	}
	p.e.Background = bg
	return nil
}

func (p *editParser) overlays(n *yaml.Node) error {
	items, err := p.list(n, "overlays", "overlays")
	if err != nil {
		return err
	}
	for i, it := range items {
		path := fmt.Sprintf("overlays[%d]", i)
		o := Overlay{
			Position: AnchorTopRight, X: Length{Pixels: 24}, Y: Length{Pixels: 24},
			Width: Length{Percent: 15, IsPercent: true}, Opacity: 1, Pos: pos(it, path),
		}
		f, err := p.fields(it, path, "image", "position", "x", "y", "width", "height", "opacity", "start", "end")
		if err != nil {
			return err
		}
		v, ok := f["image"]
		if !ok {
			return p.fail(it, path+".image", "missing; want the path of an image (PNG with transparency works best)")
		}
		if o.Image, err = p.nonEmpty(v.val, path+".image", "an image path"); err != nil {
			return err
		}
		if v, ok := f["position"]; ok {
			if o.Position, err = p.enum(v.val, path+".position", AnchorTopLeft, AnchorTopRight, AnchorBottomLeft, AnchorBottomRight, AnchorCenter); err != nil {
				return err
			}
		}
		for _, s := range []struct {
			name string
			dst  *Length
		}{{"x", &o.X}, {"y", &o.Y}, {"width", &o.Width}, {"height", &o.Height}} {
			if v, ok := f[s.name]; ok {
				if *s.dst, err = p.length(v.val, path+"."+s.name); err != nil {
					return err
				}
			}
		}
		if (!o.Width.IsPercent && o.Width.Pixels == 0) || (o.Width.IsPercent && o.Width.Percent == 0) {
			return p.fail(f["width"].val, path+".width", "want a width above 0")
		}
		if v, ok := f["opacity"]; ok {
			if o.Opacity, err = p.number(v.val, path+".opacity", 0, 1, "an opacity from 0 (invisible) to 1 (opaque)"); err != nil {
				return err
			}
		}
		if v, ok := f["start"]; ok {
			if o.Start, err = p.time(v.val, path+".start"); err != nil {
				return err
			}
		}
		if v, ok := f["end"]; ok {
			if o.End, err = p.time(v.val, path+".end"); err != nil {
				return err
			}
			if o.End <= o.Start {
				return p.fail(v.val, path+".end", "%s is not after start %s", FormatTime(o.End), FormatTime(o.Start))
			}
		}
		p.e.Overlays = append(p.e.Overlays, o)
	}
	return nil
}

func (p *editParser) captions(n *yaml.Node) error {
	c := &Captions{Pos: pos(n, "captions")}
	var err error
	if n.Kind == yaml.ScalarNode {
		if c.File, err = p.nonEmpty(n, "captions", "the path of an SRT or WebVTT file"); err != nil {
			return err
		}
		p.e.Captions = c
		return nil
	}
	f, err := p.fields(n, "captions", "file", "cues", "offset", "timeline")
	if err != nil {
		return err
	}
	v, hasFile := f["file"]
	if hasFile {
		if c.File, err = p.nonEmpty(v.val, "captions.file", "the path of an SRT or WebVTT file"); err != nil {
			return err
		}
	}
	cv, hasCues := f["cues"]
	if hasFile == hasCues {
		return p.fail(n, "captions", "set file (an SRT or WebVTT file) or cues (a list of {start, end, text}), one of them")
	}
	if hasCues {
		items, err := p.list(cv.val, "captions.cues", "{start, end, text} cues")
		if err != nil {
			return err
		}
		for i, it := range items {
			path := fmt.Sprintf("captions.cues[%d]", i)
			cf, err := p.fields(it, path, "start", "end", "text")
			if err != nil {
				return err
			}
			for _, name := range []string{"start", "end", "text"} {
				if _, ok := cf[name]; !ok {
					return p.fail(it, path+"."+name, "missing")
				}
			}
			var cue Cue
			if cue.Start, err = p.time(cf["start"].val, path+".start"); err != nil {
				return err
			}
			if cue.End, err = p.time(cf["end"].val, path+".end"); err != nil {
				return err
			}
			if cue.End <= cue.Start {
				return p.fail(cf["end"].val, path+".end", "%s is not after start %s", FormatTime(cue.End), FormatTime(cue.Start))
			}
			if cue.Text, err = p.nonEmpty(cf["text"].val, path+".text", "the caption's text"); err != nil {
				return err
			}
			c.Cues = append(c.Cues, cue)
		}
		c.Loaded = true
	}
	if v, ok := f["offset"]; ok {
		// An offset may be negative: "-2.5" or -2.5.
		neg := false
		val := *v.val
		if val.Kind == yaml.ScalarNode && strings.HasPrefix(val.Value, "-") {
			neg = true
			val.Value = strings.TrimPrefix(val.Value, "-")
		}
		if c.Offset, err = p.time(&val, "captions.offset"); err != nil {
			return err
		}
		if neg {
			c.Offset = -c.Offset
		}
	}
	if v, ok := f["timeline"]; ok {
		tl, err := p.enum(v.val, "captions.timeline", "recording", "output")
		if err != nil {
			return err
		}
		c.OutputTime = tl == "output"
	}
	p.e.Captions = c
	return nil
}
