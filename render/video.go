package render

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tapedeck/tapedeck/timeline"
)

// Look of the drawn parts.
const (
	placeholderColor = "0x2E3138"
	textColor        = "white"
	labelBox         = "black@0.55"
)

// speedTolerance: a source whose Speed is within this of 1 plays at nominal
// speed (10 ppm is 36 ms per hour).
const speedTolerance = 1e-5

// videoBuilder builds the command of one video job.
type videoBuilder struct {
	p   *timeline.Plan
	s   *Settings
	g   *graph
	job *job
}

// videoJob is the FFmpeg command that renders job i of the program: its
// scenes, concatenated, with overlays and captions, encoded once per
// encoding.
func videoJob(p *timeline.Plan, prog *Program, i int) Command {
	g := newGraph()
	outArgs, outputs := buildVideoJob(p, prog, i, g)
	// Filters run in the main thread: slice threading over small tiles
	// costs more in thread hand-offs than it saves, and the encoders use
	// the other cores.
	args := append(baseArgs(), "-copyts", "-filter_complex_threads", "1")
	args = append(args, g.inputs...)
	args = append(args, "-filter_complex", g.filter())
	args = append(args, outArgs...)
	return Command{Name: fmt.Sprintf("video %d/%d", i+1, len(prog.jobs)), Args: args, Files: g.files, Outputs: outputs,
		Duration: prog.jobs[i].duration(p.FPS)}
}

// buildVideoJob adds job i's inputs and filters to g and returns its
// output arguments (one output per encoding) and its output files.
func buildVideoJob(p *timeline.Plan, prog *Program, i int, g *graph) (outArgs, outputs []string) {
	j := &prog.jobs[i]
	b := &videoBuilder{p: p, s: &prog.settings, g: g, job: j}
	var bg []string
	if img := p.Background.Image; img != "" {
		bg = b.backgroundImage(img, len(j.Scenes))
	}
	outs := make([]string, len(j.Scenes))
	for k := range j.Scenes {
		var bgPad string
		if bg != nil {
			bgPad = bg[k]
		}
		outs[k] = b.scene(&j.Scenes[k], bgPad)
	}
	cur := outs[0]
	if len(outs) > 1 {
		cur = b.g.label("cat")
		b.g.chain(outs, []string{fmt.Sprintf("concat=n=%d:v=1:a=0", len(outs))}, cur)
	}
	l := &layer{g: b.g, cur: cur}
	b.overlays(l)
	b.captions(l, prog.cues, i)
	// One split per encoding, scaled to its size.
	encs := prog.Encodings
	pads := make([]string, len(encs))
	whole := len(encs) == 1 && encs[0].Width == p.Width && encs[0].Height == p.Height
	switch {
	case whole && len(l.pend) == 0:
		pads[0] = l.cur // encoded as drawn: no null filter for a name
	case whole:
		pads[0] = b.g.label("out")
		l.finish(pads[0])
	default:
		var split []string
		for range encs {
			split = append(split, b.g.label("e"))
		}
		l.finish(strings.Join(split, "]["), fmt.Sprintf("split=%d", len(encs)))
		for k, e := range encs {
			if e.Width == p.Width && e.Height == p.Height {
				pads[k] = split[k]
				continue
			}
			pads[k] = b.g.label("out")
			b.g.chain([]string{split[k]}, []string{fmt.Sprintf("scale=w=%d:h=%d", e.Width, e.Height), "setsar=1"}, pads[k])
		}
	}
	gop := gopFrames(p.FPS)
	for k, e := range encs {
		out := jobOutput(e, i)
		outputs = append(outputs, out)
		outArgs = append(outArgs, "-map", "["+pads[k]+"]", "-an", "-sn", "-dn", "-fps_mode", "cfr", "-r", fpsArg(p.FPS),
			"-frames:v", itoa(j.frames()))
		outArgs = append(outArgs, encoderArgs(e, b.s.Preset, gop)...)
		outArgs = append(outArgs, out)
	}
	return outArgs, outputs
}

// backgroundImage adds the background image as an input scaled to cover the
// output, one pad per scene.
func (b *videoBuilder) backgroundImage(img string, scenes int) []string {
	k := b.g.input("-i", img)
	w, h := b.p.Width, b.p.Height
	filters := []string{fmt.Sprintf("scale=w=%d:h=%d:force_original_aspect_ratio=increase", w, h),
		fmt.Sprintf("crop=%d:%d", w, h), "setsar=1", "format=yuv420p"}
	pads := make([]string, scenes)
	for i := range pads {
		pads[i] = b.g.label("bg")
	}
	if scenes > 1 {
		filters = append(filters, fmt.Sprintf("split=%d", scenes))
	}
	b.g.chain([]string{fmt.Sprintf("%d:v", k)}, filters, strings.Join(pads, "]["))
	return pads
}

// enable returns the enable option (with its leading colon) that shows a
// filter during the frames of spans, in the scene's time; "" when they
// cover the whole scene. The bounds sit half a frame before the frames, so
// no frame instant is ever on one.
func (b *videoBuilder) enable(sc *scene, spans []span) string {
	if len(spans) == 1 && spans[0].From <= sc.From && spans[0].To >= sc.To {
		return ""
	}
	var terms []string
	for _, s := range spans {
		a := frameTime(s.From-sc.From, b.p.FPS) - frameTime(1, b.p.FPS)/2
		e := frameTime(s.To-sc.From, b.p.FPS) - frameTime(1, b.p.FPS)/2
		terms = append(terms, fmt.Sprintf("between(t,%s,%s)", num(a), num(e)))
	}
	return ":enable=" + quoteExpr(strings.Join(terms, "+"))
}

// scene adds one scene's subgraph and returns its output pad.
func (b *videoBuilder) scene(sc *scene, bgPad string) string {
	g := b.g
	w, h := b.p.Width, b.p.Height
	if !b.s.overlays && stackable(sc, w, h, bgPad) {
		return b.stackScene(sc)
	}
	l := &layer{g: g, cur: b.canvas("c", w, h, sc.frames())}
	if bgPad != "" {
		l.overlay(bgPad, "overlay=x=0:y=0:eof_action=repeat")
	}
	for i := range sc.Tiles {
		t := &sc.Tiles[i]
		r := t.Rect
		if len(t.Holders) > 0 {
			en := b.enable(sc, t.Holders)
			l.apply(fmt.Sprintf("drawbox=x=%d:y=%d:w=%d:h=%d:color=%s:t=fill%s", r.X, r.Y, r.W, r.H, placeholderColor, en))
			if name := cleanText(t.Name); name != "" && b.s.FontFile != "" && r.H >= 24 {
				size := nameSize(name, r)
				l.apply(fmt.Sprintf("drawtext=fontfile=%s:textfile=%s:expansion=none:fontcolor=%s:fontsize=%d:x=%d+(%d-text_w)/2:y=%d+(%d-text_h)/2%s",
					escValue(b.s.FontFile), g.text(name), textColor, size, r.X, r.W, r.Y, r.H, en))
			}
		}
		for k := range t.Video {
			b.piece(l, sc, t, &t.Video[k])
		}
		b.tileLabel(l, t)
	}
	out := g.label("s")
	l.finish(out, "setsar=1")
	return out
}

// canvas adds a w×h picture of the background's colour, frames long, and
// returns its pad.
func (b *videoBuilder) canvas(prefix string, w, h int, frames int64) string {
	pad := b.g.label(prefix)
	b.g.chain(nil, []string{fmt.Sprintf("color=c=%s:s=%dx%d:r=%s", ffColor(b.p.Background.Color), w, h, fpsArg(b.p.FPS)),
		fmt.Sprintf("trim=end_frame=%d", frames), "format=yuv420p"}, pad)
	return pad
}

// tileLabel draws tile t's label, if it has one and there is room.
func (b *videoBuilder) tileLabel(l *layer, t *sceneTile) {
	if label := cleanText(t.Label); label != "" && b.s.FontFile != "" && t.Rect.H >= 24 {
		b.label(l, labelRect(t), label)
	}
}

// label draws a name label in the bottom-left corner of r. The text is
// drawn once, onto a transparent picture that is then overlaid on every
// frame: far cheaper than drawing text on every frame.
func (b *videoBuilder) label(l *layer, r timeline.Rect, text string) {
	g := b.g
	size := min(36, max(10, r.H/14))
	pad := max(2, size/4)
	// Room for the text: DejaVu Sans averages 0.6 em per character.
	w := min(r.W-2*pad, int(0.72*float64(size)*float64(utf8.RuneCountInString(text)))+3*pad) &^ 1
	h := (size*3/2 + 2*pad + 1) &^ 1
	if w < 2 || h > r.H {
		return
	}
	pic := g.label("lb")
	g.chain(nil, []string{fmt.Sprintf("color=c=black@0:s=%dx%d:r=1", w, h), "format=yuva420p",
		fmt.Sprintf("drawtext=fontfile=%s:textfile=%s:expansion=none:fontcolor=%s:fontsize=%d:box=1:boxcolor=%s:boxborderw=%d:x=%d:y=%d-text_h",
			escValue(b.s.FontFile), g.text(text), textColor, size, labelBox, pad, pad, h-pad),
		"trim=end_frame=1"}, pic)
	l.overlay(pic, fmt.Sprintf("overlay=x=%d:y=%d:eof_action=repeat", r.X+pad, r.Y+r.H-pad-h))
}

// labelRect is where a tile's label goes: the bottom-left corner of its
// video when the video is letterboxed in the tile (contain, every piece of
// the same known aspect), else of the tile.
func labelRect(t *sceneTile) timeline.Rect {
	r := t.Rect
	if t.Fit == timeline.FitCover || len(t.Video) == 0 {
		return r
	}
	w, h := t.Video[0].Src.Width, t.Video[0].Src.Height
	for _, p := range t.Video {
		if w <= 0 || h <= 0 || p.Src.Width*h != p.Src.Height*w {
			return r
		}
	}
	if float64(w)/float64(h) > float64(r.W)/float64(r.H) {
		vh := r.W * h / w
		return timeline.Rect{X: r.X, Y: r.Y + (r.H-vh)/2, W: r.W, H: vh}
	}
	vw := r.H * w / h
	return timeline.Rect{X: r.X + (r.W-vw)/2, Y: r.Y, W: vw, H: r.H}
}

// nameSize is the font size of a placeholder's name: large, but fitting the
// tile's width.
func nameSize(name string, r timeline.Rect) int {
	n := utf8.RuneCountInString(name)
	size := min(r.H/6, int(float64(r.W)*0.8/(0.62*float64(n)+0.5)))
	return min(72, max(10, size))
}

// piece adds one video piece of a tile: its input, placed on the scene's
// clock, scaled into the tile, and drawn during its frames.
func (b *videoBuilder) piece(l *layer, sc *scene, t *sceneTile, p *piece) {
	g, fps := b.g, b.p.FPS
	r := t.Rect
	mode := "decrease"
	if t.Fit == timeline.FitCover {
		mode = "increase"
	}
	src := g.label("v")
	// No frame after the scene's last: once its main input has ended, the
	// overlay would go on drawing the main's last frame at the times of the
	// other input's frames.
	last := "trim=end=" + fnum(frameTime(sc.frames()-1, fps)+1e-7)
	in, fs := b.placed(sc, p)
	g.chain([]string{in}, append(fs, last,
		fmt.Sprintf("scale=w=%d:h=%d:force_original_aspect_ratio=%s:force_divisible_by=2:eval=frame:flags=bilinear", r.W, r.H, mode)), src)
	en := b.enable(sc, []span{p.span})
	if t.Fit == timeline.FitCover {
		// Crop by drawing onto a canvas of the tile's size.
		tc, tv := b.canvas("tc", r.W, r.H, sc.frames()), g.label("tv")
		g.chain([]string{tc, src}, []string{"overlay=x=(main_w-overlay_w)/2:y=(main_h-overlay_h)/2:eval=frame:eof_action=repeat"}, tv)
		l.overlay(tv, fmt.Sprintf("overlay=x=%d:y=%d%s", r.X, r.Y, en))
		return
	}
	l.overlay(src, fmt.Sprintf("overlay=x=%d+(%d-overlay_w)/2:y=%d+(%d-overlay_h)/2:eval=frame:eof_action=repeat%s", r.X, r.W, r.Y, r.H, en))
}

// placed adds the input of piece p and returns its pad and the filters that
// play it on the scene's clock: the piece's file time from one frame before
// the piece to one frame after (the nearest source frame may lie just
// outside), with the source frames' times in the scene's time, half a frame
// early. Where the frame its first output frame shows lies further back (a
// source of few frames a second, or stalled, drawn from a window's or a
// scene's start), its stretch starts at that frame.
func (b *videoBuilder) placed(sc *scene, p *piece) (string, []string) {
	g, fps := b.g, b.p.FPS
	frame := frameTime(1, fps)
	speed := p.Src.Speed
	if speed <= 0 || math.IsNaN(speed) {
		speed = 1
	}
	if q := b.s.placeQuantum; q > 0 {
		snapped := *p
		snapped.Src, snapped.At = snapPlacement(p.Src, speed, p.At, frameTime(p.From, fps), frameTime(p.To-p.From, fps), q)
		p, speed = &snapped, snapped.Src.Speed
	}
	first := p.fileAt(frameTime(p.From, fps))
	ts := first - frame*speed
	te := p.fileAt(frameTime(p.To, fps)) + frame*speed
	if b.s.lastFrame != nil {
		// Shown at the first output frame: the last source frame placed
		// before it and its next half frame (see off).
		if at, ok := b.s.lastFrame(p.Src.Path, first+frame/2*speed); ok && at < ts {
			// Half a millisecond before it: the files' times are whole
			// milliseconds. It is the frame playing then whatever the plan
			// did before: after a hole or a pause a piece starts at its
			// file's next frame, and at a cut's end the frame playing is
			// the one a viewer of the call saw.
			ts = at - 0.0005
		}
	}
	var in []string
	if seek := ts - 0.5; seek > 0 {
		in = append(in, "-ss", num(seek))
	}
	// Decoding threads: the main thread decodes small pictures faster than
	// a pool of frame threads per input.
	threads := "1"
	if p.Src.Width*p.Src.Height > 1280*720 || p.Src.Width == 0 {
		threads = "2"
	}
	in = append(in, "-threads", threads, "-reinit_filter", "0", "-i", b.s.sessionPath(p.Src.Path))
	k := g.input(in...)
	// Scene time at which FileStart plays, half a frame early: the
	// compositor shows the latest frame not after each output frame, which
	// is then the source frame nearest to it.
	off := p.At.Seconds() - frameTime(sc.From, fps) - frame/2
	var pts string
	if math.Abs(speed-1) <= speedTolerance {
		pts = fmt.Sprintf("round((T%s)/TB)", signed(off-p.Src.FileStart))
	} else {
		pts = fmt.Sprintf("round(((T%s)/%s%s)/TB)", signed(-p.Src.FileStart), fnum(speed), signed(off))
	}
	trim := "trim=end=" + num(te)
	if ts > 0 {
		trim = fmt.Sprintf("trim=start=%s:end=%s", num(ts), num(te))
	}
	return fmt.Sprintf("%d:v", k), []string{trim, "settb=AVTB", "setpts=" + quoteExpr(pts)}
}

// signed formats v with its sign ("+1.5", "-0.25").
func signed(v float64) string {
	s := fnum(v)
	if strings.HasPrefix(s, "-") {
		return s
	}
	return "+" + s
}

// overlays draws the plan's overlay images that show during the job.
func (b *videoBuilder) overlays(l *layer) {
	fps := b.p.FPS
	for _, o := range b.p.Overlays {
		sp, ok := span{frameAt(o.Start, fps), frameAt(o.End, fps)}.clip(b.job.span)
		if !ok || o.Image == "" {
			continue
		}
		k := b.g.input("-i", o.Image)
		var fs []string
		switch {
		case o.Width > 0 && o.Height > 0:
			fs = append(fs, fmt.Sprintf("scale=w=%d:h=%d", o.Width, o.Height))
		case o.Width > 0:
			fs = append(fs, fmt.Sprintf("scale=w=%d:h=-2", o.Width))
		case o.Height > 0:
			fs = append(fs, fmt.Sprintf("scale=w=-2:h=%d", o.Height))
		}
		fs = append(fs, "format=yuva420p")
		if o.Opacity > 0 && o.Opacity < 1 {
			fs = append(fs, "colorchannelmixer=aa="+num(o.Opacity))
		}
		pad := b.g.label("ov")
		b.g.chain([]string{fmt.Sprintf("%d:v", k)}, fs, pad)
		x, y := fmt.Sprint(o.X), fmt.Sprint(o.Y)
		switch o.Anchor {
		case timeline.AnchorTopRight:
			x = fmt.Sprintf("main_w-overlay_w-%d", o.X)
		case timeline.AnchorBottomLeft:
			y = fmt.Sprintf("main_h-overlay_h-%d", o.Y)
		case timeline.AnchorBottomRight:
			x, y = fmt.Sprintf("main_w-overlay_w-%d", o.X), fmt.Sprintf("main_h-overlay_h-%d", o.Y)
		case timeline.AnchorCenter:
			x, y = "(main_w-overlay_w)/2", "(main_h-overlay_h)/2"
		}
		whole := scene{span: b.job.span}
		l.overlay(pad, fmt.Sprintf("overlay=x=%s:y=%s:eof_action=repeat%s", x, y, b.enable(&whole, []span{sp})))
	}
}

// captions burns the cues that show during the job.
func (b *videoBuilder) captions(l *layer, cues []timeline.Cue, i int) {
	if b.s.Captions != CaptionsBurn || len(cues) == 0 {
		return
	}
	fps := b.p.FPS
	from := time.Duration(frameTime(b.job.From, fps) * float64(time.Second))
	to := time.Duration(frameTime(b.job.To, fps) * float64(time.Second))
	script, ok := captionsASS(cues, from, to, b.p.Width, b.p.Height)
	if !ok {
		return
	}
	name := fmt.Sprintf("captions-%03d.ass", i)
	b.g.files[name] = script
	l.apply("ass=filename=" + escValue(name))
}
