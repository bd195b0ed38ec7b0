package timeline

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// Plan is what to show and play at every instant of the output: a list of
// intervals of output time, each with its layout, its tiles and its audio,
// and for every tile and audio lane the exact part of which file to use.
// The same manifest, sync, edits and options always give the same Plan.
//
// Output time 0 is the session start (Sync.SessionStart) minus what the
// cuts and trim remove before it; the output ends with the last media (the
// session end if nothing was recorded). Recording time is the uncut
// timeline (0 = session start), the one edit files use.
type Plan struct {
	Width  int      `json:"width"`
	Height int      `json:"height"`
	FPS    Rational `json:"fps"`
	// SessionStartUnixNS is recording time 0 on the recorder's clock.
	SessionStartUnixNS int64 `json:"session_start_unix_ns"`
	// Duration is the output's length.
	Duration time.Duration `json:"duration_ns"`
	// RecordingDuration is the uncut timeline's length.
	RecordingDuration time.Duration  `json:"recording_duration_ns"`
	Background        PlanBackground `json:"background"`
	// Intervals cover [0, Duration) in order, without gaps or overlaps.
	Intervals []Interval `json:"intervals"`
	// Overlays are drawn over everything, in order.
	Overlays []PlacedOverlay `json:"overlays,omitempty"`
	// Captions, in output time, sorted by start.
	Captions []Cue `json:"captions,omitempty"`
}

// PlanBackground is what shows where no tile is.
type PlanBackground struct {
	Color string `json:"color"`           // "#rrggbb"
	Image string `json:"image,omitempty"` // scaled to cover the output
}

// Interval is a stretch of output time during which nothing changes but
// the media playing: the layout, the tiles, who is heard and from which
// file are constant. Intervals break where a segment starts or ends, a lane
// joins or leaves, the layout changes, a cut joins two parts of the
// recording, or the active speaker changes. An interval can be shorter than
// a frame (a participant's video starting a few ms after its tile appears).
type Interval struct {
	Start time.Duration `json:"start_ns"` // output time, inclusive
	End   time.Duration `json:"end_ns"`   // output time, exclusive
	// RecStart and RecEnd are the same stretch in recording time.
	RecStart time.Duration `json:"rec_start_ns"`
	RecEnd   time.Duration `json:"rec_end_ns"`
	Layout   LayoutType    `json:"layout"`
	// Speaker is the active speaker (a participant ID; "" when nobody is
	// present).
	Speaker string `json:"speaker,omitempty"`
	// Tiles in drawing order: by Z, then as the layout placed them.
	Tiles []Tile `json:"tiles"`
	// Audio lanes to mix.
	Audio []AudioSource `json:"audio"`
}

// Placeholder says why a tile shows a placeholder (the participant's name
// on a plain tile) instead of video.
type Placeholder string

// Placeholder reasons.
const (
	// PlaceholderAbsent: the participant is in the call without video
	// (audio only, before the first frame, after the camera stopped).
	PlaceholderAbsent Placeholder = "absent"
	// PlaceholderLost: the video stopped for a while and comes back (a
	// paused or muted camera, network loss, a rejoin).
	PlaceholderLost Placeholder = "lost"
	// PlaceholderHidden: the edits hide the lane.
	PlaceholderHidden Placeholder = "hidden"
)

// Tile is one participant's video lane (or placeholder) on screen.
type Tile struct {
	Participant string `json:"participant"`
	// Lane is the video lane; "" for a participant without one.
	Lane string `json:"lane,omitempty"`
	Rect Rect   `json:"rect"`
	Z    int    `json:"z"`
	// Fit is FitContain or FitCover: how the video fills Rect.
	Fit string `json:"fit"`
	// Name is the display name, drawn on a placeholder.
	Name string `json:"name"`
	// Label is the text drawn on the tile ("" for none).
	Label string `json:"label,omitempty"`
	// Placeholder is set when no video is shown; Source is nil then.
	Placeholder Placeholder `json:"placeholder,omitempty"`
	Source      *Source     `json:"source,omitempty"`
}

// AudioSource is one audio lane in the mix.
type AudioSource struct {
	Participant string  `json:"participant"`
	Lane        string  `json:"lane"`
	GainDB      float64 `json:"gain_db"`
	Source      Source  `json:"source"`
}

// Source is the part of one segment file that plays during an interval.
type Source struct {
	Track   string `json:"track"`
	Segment int    `json:"segment"`
	// Path is the file, relative to the session folder.
	Path string `json:"path"`
	// FileStart and FileEnd are seconds of file time (decoded media
	// timestamps) at the interval's start and end, computed through the
	// sync model, so they include the track's clock skew: file time f plays
	// at output time Start + (f − FileStart)/Speed. FileStart can be
	// slightly negative (by up to 1 ms, when the file's media starts just
	// after the interval: pad), and FileEnd can run past the file's last
	// frame by up to MinGap where a short hole was bridged: hold the last
	// frame (or play silence) there.
	FileStart float64 `json:"file_start_s"`
	FileEnd   float64 `json:"file_end_s"`
	// Speed is file seconds per output second: the track's effective clock
	// rate over its nominal one. It differs from 1 by the sender's clock
	// skew and drift (±200 ppm is 0.7 s per hour); a renderer stretches the
	// file's media by 1/Speed.
	Speed float64 `json:"speed"`
	// Width and Height are the video's size, when known.
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
}

// PlacedOverlay is an overlay image during a stretch of output time.
type PlacedOverlay struct {
	Image string `json:"image"`
	// Anchor is the output corner (or centre) the image is placed against;
	// X and Y are its distance in pixels from that corner's edges.
	Anchor string `json:"anchor"`
	X      int    `json:"x"`
	Y      int    `json:"y"`
	// Width in pixels; Height 0 keeps the image's aspect.
	Width   int           `json:"width"`
	Height  int           `json:"height,omitempty"`
	Opacity float64       `json:"opacity"`
	Start   time.Duration `json:"start_ns"`
	End     time.Duration `json:"end_ns"`
}

// PlanOptions override the edits, for re-rendering from the command line.
type PlanOptions struct {
	// Width and Height, if set, override the output size (default 1280x720).
	Width, Height int
	// FPS, if set, overrides the frame rate (default 30).
	FPS Rational
	// Layout, if set, replaces the edits' layouts with this one for the
	// whole output: grid, speaker or pip (with their defaults).
	Layout LayoutType
}

// Output defaults.
const (
	DefaultWidth  = 1280
	DefaultHeight = 720
	DefaultFPS    = 30
)

// ErrEmptyPlan is returned when nothing of the recording remains to render.
var ErrEmptyPlan = errors.New("nothing to render")

func defaultLayout(t LayoutType) LayoutChange {
	return LayoutChange{Type: t, Gap: -1, Fit: FitContain, Strip: true, Corner: AnchorBottomRight, Size: 0.25}
}

// NewPlan builds the plan for manifest m, placed by s, with edits e (nil:
// none) and opts.
func NewPlan(m *Manifest, s *Sync, e *Edits, opts PlanOptions) (*Plan, error) {
	if m == nil || s == nil {
		return nil, errors.New("timeline: plan: nil manifest or sync")
	}
	if e == nil {
		e = &Edits{File: "(no edits)"}
	}
	st, err := resolveEdits(m, e)
	if err != nil {
		return nil, err
	}
	md, err := buildMedia(m, s)
	if err != nil {
		return nil, err
	}
	b := &planBuilder{md: md, st: st, e: e}
	if err := b.output(opts); err != nil {
		return nil, err
	}
	if err := b.layoutList(opts); err != nil {
		return nil, err
	}
	if md.end <= 0 {
		return nil, fmt.Errorf("timeline: plan: %w: the recording holds no media", ErrEmptyPlan)
	}
	b.keep()
	if len(b.kept) == 0 {
		return nil, fmt.Errorf("timeline: plan: %w: the trim and cuts remove the whole recording (%s)", ErrEmptyPlan, FormatTime(md.end))
	}
	b.speakers = md.speakers(st)
	if err := b.intervals(); err != nil {
		return nil, err
	}
	b.extras()
	return b.plan, nil
}

type planBuilder struct {
	md       *media
	st       *editState
	e        *Edits
	plan     *Plan
	layouts  []LayoutChange // the first at 0
	kept     []span         // recording time kept, sorted
	speakers []speakerChange
}

func (b *planBuilder) output(opts PlanOptions) error {
	p := &Plan{Width: DefaultWidth, Height: DefaultHeight, FPS: Rational{DefaultFPS, 1}, SessionStartUnixNS: b.md.start,
		RecordingDuration: b.md.end, Background: PlanBackground{Color: "#000000"}}
	if o := b.e.Output; o.Width > 0 && o.Height > 0 {
		p.Width, p.Height = o.Width, o.Height
	}
	if b.e.Output.FPS.Den > 0 {
		p.FPS = b.e.Output.FPS
	}
	if opts.Width > 0 || opts.Height > 0 {
		if opts.Width < minOutputSize || opts.Height < minOutputSize || opts.Width > maxOutputSize || opts.Height > maxOutputSize ||
			opts.Width%2 != 0 || opts.Height%2 != 0 {
			return fmt.Errorf("timeline: plan: output size %dx%d: want even sizes from 16 to 7680", opts.Width, opts.Height)
		}
		p.Width, p.Height = opts.Width, opts.Height
	}
	if opts.FPS.Den != 0 || opts.FPS.Num != 0 {
		if opts.FPS.Den <= 0 || opts.FPS.Num < opts.FPS.Den || opts.FPS.Num > maxFPS*opts.FPS.Den {
			return fmt.Errorf("timeline: plan: frame rate %s: want 1 to 240", opts.FPS)
		}
		p.FPS = opts.FPS
	}
	if c := b.e.Background.Color; c != "" {
		p.Background.Color = c
	}
	p.Background.Image = b.e.Background.Image
	b.plan = p
	return nil
}

func (b *planBuilder) layoutList(opts PlanOptions) error {
	switch opts.Layout {
	case "":
		b.layouts = append(b.layouts, b.e.Layouts...)
		if len(b.layouts) == 0 || b.layouts[0].At > 0 {
			b.layouts = append([]LayoutChange{defaultLayout(LayoutGrid)}, b.layouts...)
		}
	case LayoutGrid, LayoutSpeaker, LayoutPiP:
		b.layouts = []LayoutChange{defaultLayout(opts.Layout)}
	default:
		return fmt.Errorf("timeline: plan: layout %q: want grid, speaker or pip (single and custom need an edit file)", opts.Layout)
	}
	for i, lc := range b.layouts {
		for j, rg := range lc.Regions {
			r := Rect{X: rg.X.Resolve(b.plan.Width), Y: rg.Y.Resolve(b.plan.Height), W: rg.Width.Resolve(b.plan.Width), H: rg.Height.Resolve(b.plan.Height)}
			if r.W < 2 || r.H < 2 || r.X+r.W > b.plan.Width || r.Y+r.H > b.plan.Height {
				p := rg.Pos
				if p.Field == "" {
					p.Field = fmt.Sprintf("layouts[%d].regions[%d]", i, j)
				}
				return b.e.errAt(p, "region %s does not fit the %dx%d output (x+width ≤ %d, y+height ≤ %d, sizes at least 2)",
					r, b.plan.Width, b.plan.Height, b.plan.Width, b.plan.Height)
			}
		}
	}
	return nil
}

// keep computes the recording time kept by the trim and cuts.
func (b *planBuilder) keep() {
	lo, hi := time.Duration(0), b.md.end
	if t := b.e.Trim; t != nil {
		lo = max(lo, t.Start)
		if t.End > 0 {
			hi = min(hi, t.End)
		}
	}
	var kept []span
	if hi > lo {
		kept = []span{{lo, hi}}
	}
	for _, c := range b.e.Cuts {
		var next []span
		for _, k := range kept {
			if c.End <= k.from || c.Start >= k.to {
				next = append(next, k)
				continue
			}
			if c.Start > k.from {
				next = append(next, span{k.from, c.Start})
			}
			if c.End < k.to {
				next = append(next, span{c.End, k.to})
			}
		}
		kept = next
	}
	b.kept = kept
}

// toOutput maps the recording-time range [a, b) to output time ranges
// (several when cuts fall inside it, joined where the output is
// continuous).
func (b *planBuilder) toOutput(a, e time.Duration) []span {
	var out []span
	var off time.Duration // output time of the current kept span's start
	for _, k := range b.kept {
		x, y := max(a, k.from), min(e, k.to)
		if y > x {
			s := span{off + x - k.from, off + y - k.from}
			if n := len(out); n > 0 && out[n-1].to == s.from {
				out[n-1].to = s.to
			} else {
				out = append(out, s)
			}
		}
		off += k.to - k.from
	}
	return out
}

func (b *planBuilder) layoutAt(t time.Duration) int {
	return sort.Search(len(b.layouts), func(i int) bool { return b.layouts[i].At > t }) - 1
}

// rawTile and rawAudio are a tile and an audio lane before their sources
// are computed.
type rawTile struct {
	placed
	name, label string
	ph          Placeholder
	pc          *piece
}

type rawAudio struct {
	part, lane string
	gain       float64
	pc         *piece
}

type rawInterval struct {
	a, b    time.Duration // recording time
	layout  int
	speaker string
	tiles   []rawTile
	audio   []rawAudio
}

// breakpoints returns every recording time at which something may change.
func (b *planBuilder) breakpoints() []time.Duration {
	set := map[time.Duration]bool{0: true, b.md.end: true}
	for _, k := range b.kept {
		set[k.from], set[k.to] = true, true
	}
	for _, lc := range b.layouts {
		set[lc.At] = true
	}
	for _, c := range b.speakers {
		set[c.at] = true
	}
	for _, lm := range b.md.lanes {
		for _, pc := range lm.pieces {
			set[pc.from], set[pc.to] = true, true
		}
	}
	for _, pm := range b.md.parts {
		for _, s := range pm.presence {
			set[s.from], set[s.to] = true, true
		}
	}
	for _, t := range b.st.toggleBounds() {
		set[t] = true
	}
	var out []time.Duration
	for t := range set {
		if t >= 0 && t <= b.md.end {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// state computes what shows and plays at recording time t.
func (b *planBuilder) state(t time.Duration) rawInterval {
	ri := rawInterval{layout: b.layoutAt(t), speaker: speakerAt(b.speakers, t)}
	ctx := layoutCtx{w: b.plan.Width, h: b.plan.Height, speaker: ri.speaker}
	for _, pm := range b.md.parts {
		if b.st.excluded[pm.p.ID] || !pm.present(t) {
			continue
		}
		if len(pm.video) == 0 {
			ctx.slots = append(ctx.slots, slot{part: pm})
		}
		for _, lm := range pm.video {
			ctx.slots = append(ctx.slots, slot{part: pm, lane: lm})
		}
		for _, lm := range pm.audio {
			if pc := lm.at(t); pc != nil && !b.st.muted(pm.p.ID, lm.lane.ID, t) {
				ri.audio = append(ri.audio, rawAudio{part: pm.p.ID, lane: lm.lane.ID, gain: b.st.gain(pm.p.ID, lm.lane.ID), pc: pc})
			}
		}
	}
	ctx.refs = func(ref string) []slot {
		var out []slot
		for _, s := range ctx.slots {
			if s.lane != nil && s.lane.lane.ID == ref {
				return []slot{s}
			}
			if s.part.p.ID == ref {
				out = append(out, s)
			}
		}
		return out
	}
	ps := ctx.arrange(&b.layouts[ri.layout])
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].z < ps[j].z })
	for _, p := range ps {
		id := p.part.p.ID
		laneID := ""
		if p.lane != nil {
			laneID = p.lane.lane.ID
		}
		rt := rawTile{placed: p, name: b.st.names[id], label: b.st.labels[id]}
		if b.st.hidden(id, laneID, t) {
			rt.ph = PlaceholderHidden
		} else {
			rt.pc, rt.ph = p.part.videoAt(p.lane, t)
		}
		ri.tiles = append(ri.tiles, rt)
	}
	return ri
}

func samePiece(a, b *piece) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.track == b.track && a.seg == b.seg && a.width == b.width && a.height == b.height
}

func sameState(x, y *rawInterval) bool {
	if x.layout != y.layout || x.speaker != y.speaker || len(x.tiles) != len(y.tiles) || len(x.audio) != len(y.audio) {
		return false
	}
	for i := range x.tiles {
		a, b := &x.tiles[i], &y.tiles[i]
		if a.slot != b.slot || a.rect != b.rect || a.z != b.z || a.fit != b.fit || a.name != b.name || a.label != b.label ||
			a.ph != b.ph || !samePiece(a.pc, b.pc) {
			return false
		}
	}
	for i := range x.audio {
		a, b := &x.audio[i], &y.audio[i]
		if a.part != b.part || a.lane != b.lane || a.gain != b.gain || !samePiece(a.pc, b.pc) {
			return false
		}
	}
	return true
}

// planSnap: breakpoints closer than this to the previous one do not start
// an interval of their own (the audio and video of one sender start a
// fraction of a millisecond apart). The state of an interval is taken at
// the last breakpoint it absorbed, so a lane that starts within planSnap
// after the interval's start is in it from the start, with a FileStart
// slightly below its file's media start.
const planSnap = time.Millisecond

func (b *planBuilder) intervals() error {
	bps := b.breakpoints()
	hard := map[time.Duration]bool{0: true, b.md.end: true}
	for _, k := range b.kept {
		hard[k.from], hard[k.to] = true, true
	}
	// A breakpoint just before a hard one (the end, a cut) goes.
	kept := bps[:0:0]
	for k, t := range bps {
		if !hard[t] && k+1 < len(bps) && hard[bps[k+1]] && bps[k+1]-t < planSnap {
			continue
		}
		kept = append(kept, t)
	}
	bps = kept
	var raws []rawInterval
	for i := 0; i+1 < len(bps); {
		j := i
		for j+2 < len(bps) && !hard[bps[j+1]] && bps[j+1]-bps[i] < planSnap {
			j++
		}
		a, e := bps[i], bps[j+1]
		eval := bps[j]
		i = j + 1
		if spanAt(b.kept, a) < 0 {
			continue // cut
		}
		ri := b.state(eval)
		ri.a, ri.b = a, e
		if n := len(raws); n > 0 && raws[n-1].b == a && sameState(&raws[n-1], &ri) {
			raws[n-1].b = e
			continue
		}
		raws = append(raws, ri)
	}
	for _, ri := range raws {
		out := b.toOutput(ri.a, ri.b)
		if len(out) != 1 {
			return fmt.Errorf("timeline: plan: interval %s–%s maps to %d output ranges", FormatTime(ri.a), FormatTime(ri.b), len(out))
		}
		iv := Interval{Start: out[0].from, End: out[0].to, RecStart: ri.a, RecEnd: ri.b,
			Layout: b.layouts[ri.layout].Type, Speaker: ri.speaker, Tiles: []Tile{}, Audio: []AudioSource{}}
		for _, rt := range ri.tiles {
			t := Tile{Participant: rt.part.p.ID, Rect: rt.rect, Z: rt.z, Fit: rt.fit, Name: rt.name, Label: rt.label, Placeholder: rt.ph}
			if rt.lane != nil {
				t.Lane = rt.lane.lane.ID
			}
			if rt.pc != nil {
				src, err := b.source(rt.pc, ri.a, ri.b)
				if err != nil {
					return err
				}
				t.Source = &src
			}
			iv.Tiles = append(iv.Tiles, t)
		}
		for _, ra := range ri.audio {
			src, err := b.source(ra.pc, ri.a, ri.b)
			if err != nil {
				return err
			}
			iv.Audio = append(iv.Audio, AudioSource{Participant: ra.part, Lane: ra.lane, GainDB: ra.gain, Source: src})
		}
		b.plan.Intervals = append(b.plan.Intervals, iv)
	}
	if n := len(b.plan.Intervals); n > 0 {
		b.plan.Duration = b.plan.Intervals[n-1].End
	}
	return nil
}

// source maps the recording-time range [a, e) of a piece to its file:
// recording time → recorder clock → RTP (Sync.RTPAt) → file time.
func (b *planBuilder) source(pc *piece, a, e time.Duration) (Source, error) {
	t, sg := pc.track, pc.seg
	rate := float64(t.Codec.ClockRate)
	fileTime := func(d time.Duration) (float64, error) {
		at, ok := add(b.md.start, int64(d))
		if !ok {
			return 0, fmt.Errorf("timeline: plan track %s: time %s: %w", t.ID, FormatTime(d), ErrOutOfRange)
		}
		rtp, err := b.md.s.RTPAt(t.ID, at)
		if err != nil {
			return 0, fmt.Errorf("timeline: plan: %w", err)
		}
		return float64(rtp-sg.FirstRTP+t.CodecDelay) / rate, nil
	}
	fs, err := fileTime(a)
	if err != nil {
		return Source{}, err
	}
	fe, err := fileTime(e)
	if err != nil {
		return Source{}, err
	}
	tr, err := b.md.s.TrackRate(t.ID)
	if err != nil {
		return Source{}, fmt.Errorf("timeline: plan: %w", err)
	}
	return Source{Track: t.ID, Segment: sg.Index, Path: sg.Path, FileStart: fs, FileEnd: max(fs, fe), Speed: tr / rate,
		Width: pc.width, Height: pc.height}, nil
}

// extras places the overlays and captions on the output timeline.
func (b *planBuilder) extras() {
	p := b.plan
	for _, o := range b.e.Overlays {
		end := o.End
		if end == 0 {
			end = b.md.end
		}
		for _, s := range b.toOutput(o.Start, end) {
			p.Overlays = append(p.Overlays, PlacedOverlay{
				Image: o.Image, Anchor: o.Position, X: o.X.Resolve(p.Width), Y: o.Y.Resolve(p.Height),
				Width: o.Width.Resolve(p.Width), Height: o.Height.Resolve(p.Height), Opacity: o.Opacity, Start: s.from, End: s.to,
			})
		}
	}
	c := b.e.Captions
	if c == nil {
		return
	}
	for _, cue := range c.Cues {
		a, e := cue.Start+c.Offset, cue.End+c.Offset
		if c.OutputTime {
			a, e = max(a, 0), min(e, p.Duration)
			if e > a {
				p.Captions = append(p.Captions, Cue{Start: a, End: e, Text: cue.Text})
			}
			continue
		}
		for _, s := range b.toOutput(a, e) {
			p.Captions = append(p.Captions, Cue{Start: s.from, End: s.to, Text: cue.Text})
		}
	}
	sort.SliceStable(p.Captions, func(i, j int) bool { return p.Captions[i].Start < p.Captions[j].Start })
}

// IntervalAt returns the index of the interval containing output time t, or
// -1.
func (p *Plan) IntervalAt(t time.Duration) int {
	i := sort.Search(len(p.Intervals), func(i int) bool { return p.Intervals[i].End > t })
	if i < len(p.Intervals) && p.Intervals[i].Start <= t {
		return i
	}
	return -1
}
