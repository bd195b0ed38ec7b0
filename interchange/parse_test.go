package interchange

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/url"
	"strconv"
	"strings"

	"github.com/tapedeck/tapedeck/timeline"
)

// The three formats read back into one model, so that the structure tests
// check the same promises of each: parsedTimeline is what an editor would
// see after importing the file.

type parsedClip struct {
	path             string // the stem's path, URL-decoded
	out, src, frames int64
	enabled          bool
	db               float64
}

type parsedTrack struct {
	kind  string // "video" or "audio"
	who   string // participant ID, or "reference"
	clips []parsedClip
}

type parsedMarker struct {
	name        string
	out, frames int64
}

type parsedTimeline struct {
	length  int64
	tracks  []parsedTrack
	markers []parsedMarker
	// stems maps each referenced path to the length its file declares.
	stems map[string]int64
}

// urlPath turns a relative URL reference back into the stem's path; it
// fails for anything absolute (a scheme, a host, a leading slash).
func urlPath(ref string) (string, error) {
	u, err := url.Parse(ref)
	if err != nil {
		return "", err
	}
	if u.Scheme != "" || u.Host != "" || u.IsAbs() || strings.HasPrefix(u.Path, "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q is not a relative path reference", ref)
	}
	if err := checkPath(u.Path); err != nil {
		return "", err
	}
	return u.Path, nil
}

// ---- OpenTimelineIO ----

type jsonTime struct {
	Schema string   `json:"OTIO_SCHEMA"`
	Rate   *float64 `json:"rate"`
	Value  *float64 `json:"value"`
}

type jsonRange struct {
	Schema   string   `json:"OTIO_SCHEMA"`
	Start    jsonTime `json:"start_time"`
	Duration jsonTime `json:"duration"`
}

type jsonTapedeck struct {
	Participant string   `json:"participant"`
	Reference   bool     `json:"reference"`
	GainDB      *float64 `json:"gain_db"`
	Kind        string   `json:"kind"`
}

type jsonMeta struct {
	Tapedeck *jsonTapedeck `json:"tapedeck"`
}

type jsonRef struct {
	Schema         string     `json:"OTIO_SCHEMA"`
	TargetURL      string     `json:"target_url"`
	AvailableRange *jsonRange `json:"available_range"`
}

type jsonItem struct {
	Schema          string             `json:"OTIO_SCHEMA"`
	Name            string             `json:"name"`
	Kind            string             `json:"kind"`
	Metadata        jsonMeta           `json:"metadata"`
	SourceRange     *jsonRange         `json:"source_range"`
	Enabled         *bool              `json:"enabled"`
	Markers         []jsonMarker       `json:"markers"`
	Children        []jsonItem         `json:"children"`
	MediaReferences map[string]jsonRef `json:"media_references"`
	ActiveKey       string             `json:"active_media_reference_key"`
}

type jsonMarker struct {
	Schema      string    `json:"OTIO_SCHEMA"`
	Name        string    `json:"name"`
	Color       string    `json:"color"`
	MarkedRange jsonRange `json:"marked_range"`
}

type jsonTimeline struct {
	Schema          string   `json:"OTIO_SCHEMA"`
	Name            string   `json:"name"`
	GlobalStartTime jsonTime `json:"global_start_time"`
	Tracks          jsonItem `json:"tracks"`
}

// frameOf checks that an OTIO time is a whole frame at the project's rate.
func frameOf(t jsonTime, fps timeline.Rational) (int64, error) {
	r, _ := newRate(fps)
	if t.Schema != "RationalTime.1" || t.Rate == nil || t.Value == nil {
		return 0, fmt.Errorf("time %+v: want a RationalTime.1 with rate and value", t)
	}
	if *t.Rate != r.float() {
		return 0, fmt.Errorf("time rate %v, want the project's %v", *t.Rate, r.float())
	}
	if *t.Value != math.Trunc(*t.Value) || math.Abs(*t.Value) > 1<<52 {
		return 0, fmt.Errorf("time value %v is not a whole frame", *t.Value)
	}
	return int64(*t.Value), nil
}

func rangeOf(r *jsonRange, fps timeline.Rational) (start, frames int64, err error) {
	if r == nil || r.Schema != "TimeRange.1" {
		return 0, 0, fmt.Errorf("range %+v: want a TimeRange.1", r)
	}
	if start, err = frameOf(r.Start, fps); err != nil {
		return 0, 0, err
	}
	frames, err = frameOf(r.Duration, fps)
	return start, frames, err
}

// parseOTIO reads an OTIO file the way the structure tests need it.
func parseOTIO(data []byte, fps timeline.Rational) (*parsedTimeline, error) {
	var tl jsonTimeline
	if err := json.Unmarshal(data, &tl); err != nil {
		return nil, err
	}
	if tl.Schema != "Timeline.1" || tl.Tracks.Schema != "Stack.1" {
		return nil, fmt.Errorf("schemas %q / %q, want Timeline.1 / Stack.1", tl.Schema, tl.Tracks.Schema)
	}
	if _, err := frameOf(tl.GlobalStartTime, fps); err != nil {
		return nil, fmt.Errorf("global_start_time: %w", err)
	}
	pt := &parsedTimeline{stems: map[string]int64{}}
	for _, tr := range tl.Tracks.Children {
		if tr.Schema != "Track.1" || (tr.Kind != "Video" && tr.Kind != "Audio") {
			return nil, fmt.Errorf("track %q: schema %q kind %q", tr.Name, tr.Schema, tr.Kind)
		}
		ptr := parsedTrack{kind: strings.ToLower(tr.Kind)}
		if md := tr.Metadata.Tapedeck; md != nil {
			ptr.who = md.Participant
			if md.Reference {
				ptr.who = "reference"
			}
		}
		var out int64
		for _, c := range tr.Children {
			if c.Schema != "Clip.2" || c.Enabled == nil {
				return nil, fmt.Errorf("track %q: child %q schema %q", tr.Name, c.Name, c.Schema)
			}
			ref, ok := c.MediaReferences[c.ActiveKey]
			if !ok || ref.Schema != "ExternalReference.1" {
				return nil, fmt.Errorf("clip %q: no active ExternalReference.1", c.Name)
			}
			path, err := urlPath(ref.TargetURL)
			if err != nil {
				return nil, fmt.Errorf("clip %q: %w", c.Name, err)
			}
			as, af, err := rangeOf(ref.AvailableRange, fps)
			if err != nil {
				return nil, fmt.Errorf("clip %q available_range: %w", c.Name, err)
			}
			if as != 0 {
				return nil, fmt.Errorf("clip %q: available range starts at %d, stems start at 0", c.Name, as)
			}
			if prev, ok := pt.stems[path]; ok && prev != af {
				return nil, fmt.Errorf("clip %q: %s declared %d frames long here, %d elsewhere", c.Name, path, af, prev)
			}
			pt.stems[path] = af
			s, f, err := rangeOf(c.SourceRange, fps)
			if err != nil {
				return nil, fmt.Errorf("clip %q source_range: %w", c.Name, err)
			}
			pc := parsedClip{path: path, out: out, src: s, frames: f, enabled: *c.Enabled}
			if md := c.Metadata.Tapedeck; md != nil && md.GainDB != nil {
				pc.db = *md.GainDB
			}
			ptr.clips = append(ptr.clips, pc)
			out += f
		}
		pt.length = max(pt.length, out)
		pt.tracks = append(pt.tracks, ptr)
	}
	for _, m := range tl.Tracks.Markers {
		s, f, err := rangeOf(&m.MarkedRange, fps)
		if err != nil {
			return nil, fmt.Errorf("marker %q: %w", m.Name, err)
		}
		if m.Schema != "Marker.2" || m.Color == "" {
			return nil, fmt.Errorf("marker %q: schema %q color %q", m.Name, m.Schema, m.Color)
		}
		pt.markers = append(pt.markers, parsedMarker{name: m.Name, out: s, frames: f})
	}
	return pt, nil
}

// ---- XML, generically ----

// node is an XML element: its name, attributes in order, children and
// text.
type node struct {
	name     string
	attrs    []xml.Attr
	children []*node
	text     string
}

func (n *node) attr(name string) (string, bool) {
	for _, a := range n.attrs {
		if a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

func (n *node) child(name string) *node {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (n *node) all(name string) []*node {
	var out []*node
	for _, c := range n.children {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

// childText is the trimmed text of the named child ("" if none).
func (n *node) childText(name string) string {
	if c := n.child(name); c != nil {
		return strings.TrimSpace(c.text)
	}
	return ""
}

// parseXML reads a document into a node tree, and its DOCTYPE.
func parseXML(data []byte) (*node, string, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var root *node
	var stack []*node
	doctype := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, "", err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{name: t.Name.Local, attrs: append([]xml.Attr(nil), t.Attr...)}
			if len(stack) > 0 {
				top := stack[len(stack)-1]
				top.children = append(top.children, n)
			} else if root == nil {
				root = n
			} else {
				return nil, "", fmt.Errorf("second root element <%s>", n.name)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(t)
			}
		case xml.Directive:
			doctype = strings.TrimSpace(string(t))
		}
	}
	if root == nil {
		return nil, "", fmt.Errorf("no root element")
	}
	return root, doctype, nil
}

// ---- FCPXML ----

// fcpFrames parses an FCPXML time ("N/Ds", "Ns") and checks that it is a
// whole number of frames at fps.
func fcpFrames(v string, fps timeline.Rational) (int64, error) {
	s, ok := strings.CutSuffix(v, "s")
	if !ok {
		return 0, fmt.Errorf("time %q: want a rational number of seconds (\"1001/30000s\")", v)
	}
	q, ok := new(big.Rat).SetString(s)
	if !ok || strings.ContainsAny(s, ".eE") {
		return 0, fmt.Errorf("time %q: want N/Ds or Ns with whole N and D", v)
	}
	f := new(big.Rat).Mul(q, big.NewRat(int64(fps.Num), int64(fps.Den)))
	if !f.IsInt() {
		return 0, fmt.Errorf("time %q is not on the frame grid of %s fps", v, fps)
	}
	return f.Num().Int64(), nil
}

func parseFCPXML(data []byte, p *Project) (*parsedTimeline, error) {
	root, _, err := parseXML(data)
	if err != nil {
		return nil, err
	}
	fps := p.FPS
	attrFrames := func(n *node, a string) (int64, error) {
		v, ok := n.attr(a)
		if !ok {
			return 0, fmt.Errorf("<%s> has no %s", n.name, a)
		}
		return fcpFrames(v, fps)
	}
	pt := &parsedTimeline{stems: map[string]int64{}}
	assets := map[string]string{}
	res := root.child("resources")
	if res == nil {
		return nil, fmt.Errorf("no resources")
	}
	for _, a := range res.all("asset") {
		id, _ := a.attr("id")
		mr := a.child("media-rep")
		if mr == nil {
			return nil, fmt.Errorf("asset %s: no media-rep", id)
		}
		src, _ := mr.attr("src")
		path, err := urlPath(src)
		if err != nil {
			return nil, fmt.Errorf("asset %s: %w", id, err)
		}
		d, err := attrFrames(a, "duration")
		if err != nil {
			return nil, fmt.Errorf("asset %s: %w", id, err)
		}
		if st, err := attrFrames(a, "start"); err != nil || st != 0 {
			return nil, fmt.Errorf("asset %s: start %d (%v), stems start at 0", id, st, err)
		}
		assets[id] = path
		pt.stems[path] = d
	}
	seq := root.child("library").child("event").child("project").child("sequence")
	if pt.length, err = attrFrames(seq, "duration"); err != nil {
		return nil, err
	}
	gaps := seq.child("spine").all("gap")
	if len(gaps) != 1 {
		return nil, fmt.Errorf("%d gaps in the spine, want 1", len(gaps))
	}
	gap := gaps[0]
	if d, err := attrFrames(gap, "duration"); err != nil || d != pt.length {
		return nil, fmt.Errorf("gap duration %d (%v), sequence %d", d, err, pt.length)
	}
	byLane := map[int]*parsedTrack{}
	var lanes []int
	n := len(p.Tracks)
	for _, c := range gap.all("asset-clip") {
		ref, _ := c.attr("ref")
		lv, _ := c.attr("lane")
		lane, err := strconv.Atoi(lv)
		if err != nil || lane == 0 {
			return nil, fmt.Errorf("asset-clip of %s: lane %q", ref, lv)
		}
		tr := byLane[lane]
		if tr == nil {
			tr = &parsedTrack{kind: "video"}
			if lane < 0 {
				tr.kind = "audio"
			}
			switch k := max(lane, -lane) - 1; {
			case k < n:
				tr.who = p.Tracks[k].Participant
			case k == n:
				tr.who = "reference"
			}
			byLane[lane] = tr
			lanes = append(lanes, lane)
		}
		if se, _ := c.attr("srcEnable"); (se == "video" && tr.kind != "video") || (se == "audio" && tr.kind != "audio") {
			return nil, fmt.Errorf("asset-clip of %s on lane %d: srcEnable %q", ref, lane, se)
		}
		pc := parsedClip{path: assets[ref], enabled: true}
		if e, _ := c.attr("enabled"); e == "0" {
			pc.enabled = false
		}
		for a, dst := range map[string]*int64{"offset": &pc.out, "start": &pc.src, "duration": &pc.frames} {
			if *dst, err = attrFrames(c, a); err != nil {
				return nil, fmt.Errorf("asset-clip of %s: %w", ref, err)
			}
		}
		if av := c.child("adjust-volume"); av != nil {
			amt, _ := av.attr("amount")
			v, ok := strings.CutSuffix(amt, "dB")
			if pc.db, err = strconv.ParseFloat(v, 64); !ok || err != nil {
				return nil, fmt.Errorf("adjust-volume amount %q", amt)
			}
		}
		tr.clips = append(tr.clips, pc)
	}
	// Tracks in the writers' order: videos by lane upwards, then audio by
	// lane downwards.
	for _, want := range []string{"video", "audio"} {
		for k := 1; k <= n+1; k++ {
			lane := k
			if want == "audio" {
				lane = -k
			}
			if tr, ok := byLane[lane]; ok {
				pt.tracks = append(pt.tracks, *tr)
			}
		}
	}
	if len(pt.tracks) != len(lanes) {
		return nil, fmt.Errorf("lanes %v: some outside 1..%d", lanes, n+1)
	}
	for _, m := range gap.all("marker") {
		v, _ := m.attr("value")
		s, err := attrFrames(m, "start")
		if err != nil {
			return nil, err
		}
		d, err := attrFrames(m, "duration")
		if err != nil {
			return nil, err
		}
		pt.markers = append(pt.markers, parsedMarker{name: v, out: s, frames: d})
	}
	return pt, nil
}

// ---- FCP7 XML ----

func parseXMEML(data []byte, p *Project) (*parsedTimeline, error) {
	root, _, err := parseXML(data)
	if err != nil {
		return nil, err
	}
	seq := root.child("sequence")
	if seq == nil {
		return nil, fmt.Errorf("no sequence")
	}
	r, _ := newRate(p.FPS)
	checkRate := func(n *node, where string) error {
		if n == nil {
			return fmt.Errorf("%s: no rate", where)
		}
		if tb, ntsc := n.childText("timebase"), n.childText("ntsc"); tb != strconv.FormatInt(r.timebase(), 10) || ntsc != boolText(r.ntsc()) {
			return fmt.Errorf("%s: rate %s/%s, want timebase %d ntsc %s", where, tb, ntsc, r.timebase(), boolText(r.ntsc()))
		}
		return nil
	}
	if err := checkRate(seq.child("rate"), "sequence"); err != nil {
		return nil, err
	}
	num := func(n *node, name string) (int64, error) {
		v, err := strconv.ParseInt(n.childText(name), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("<%s> of <%s>: %w", name, n.name, err)
		}
		return v, nil
	}
	pt := &parsedTimeline{stems: map[string]int64{}}
	if pt.length, err = num(seq, "duration"); err != nil {
		return nil, err
	}
	files := map[string]string{}
	media := seq.child("media")
	for _, kind := range []string{"video", "audio"} {
		var whos []string
		for _, t := range p.Tracks {
			if (kind == "video" && t.Video != nil) || (kind == "audio" && (t.Audio != nil || t.Video != nil && t.Video.Audio)) {
				whos = append(whos, t.Participant)
			}
		}
		if p.Reference != nil && (kind == "video" || p.Reference.Audio) {
			whos = append(whos, "reference")
		}
		tracks := media.child(kind).all("track")
		if len(tracks) != len(whos) {
			return nil, fmt.Errorf("%d %s tracks, want %d", len(tracks), kind, len(whos))
		}
		for i, tn := range tracks {
			tr := parsedTrack{kind: kind, who: whos[i]}
			for _, ci := range tn.all("clipitem") {
				if err := checkRate(ci.child("rate"), "clipitem"); err != nil {
					return nil, err
				}
				f := ci.child("file")
				if f == nil {
					return nil, fmt.Errorf("clipitem without file")
				}
				id, _ := f.attr("id")
				if pu := f.childText("pathurl"); pu != "" {
					if _, dup := files[id]; dup {
						return nil, fmt.Errorf("file %s described twice", id)
					}
					path, err := urlPath(pu)
					if err != nil {
						return nil, fmt.Errorf("file %s: %w", id, err)
					}
					d, err := num(f, "duration")
					if err != nil {
						return nil, err
					}
					if err := checkRate(f.child("rate"), "file"); err != nil {
						return nil, err
					}
					files[id] = path
					pt.stems[path] = d
				}
				path, ok := files[id]
				if !ok {
					return nil, fmt.Errorf("file %s used before it is described", id)
				}
				pc := parsedClip{path: path, enabled: ci.childText("enabled") == "TRUE"}
				var start, end, in, out int64
				for name, dst := range map[string]*int64{"start": &start, "end": &end, "in": &in, "out": &out} {
					if *dst, err = num(ci, name); err != nil {
						return nil, err
					}
				}
				if end-start != out-in || end <= start {
					return nil, fmt.Errorf("clipitem start %d end %d in %d out %d: lengths differ", start, end, in, out)
				}
				pc.out, pc.src, pc.frames = start, in, end-start
				if fl := ci.child("filter"); fl != nil {
					e := fl.child("effect")
					par := e.child("parameter")
					if e.childText("effectid") != "audiolevels" || par.childText("parameterid") != "level" {
						return nil, fmt.Errorf("filter %q is not Audio Levels", e.childText("name"))
					}
					v, err := strconv.ParseFloat(par.childText("value"), 64)
					if err != nil || v <= 0 || v > 3.98109 {
						return nil, fmt.Errorf("audio level %q: want 0 < level ≤ 3.98109", par.childText("value"))
					}
					pc.db = 20 * math.Log10(v)
				}
				tr.clips = append(tr.clips, pc)
			}
			pt.tracks = append(pt.tracks, tr)
		}
	}
	for _, m := range seq.all("marker") {
		in, err := num(m, "in")
		if err != nil {
			return nil, err
		}
		out, err := num(m, "out")
		if err != nil {
			return nil, err
		}
		pm := parsedMarker{name: m.childText("name"), out: in}
		if out != -1 {
			pm.frames = out - in
		}
		pt.markers = append(pt.markers, pm)
	}
	return pt, nil
}
