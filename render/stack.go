package render

import (
	"fmt"
	"math"
	"strings"

	"github.com/tapedeck/tapedeck/timeline"
)

// The stacked compositor. A scene whose tiles each show one piece for the
// whole scene, side by side, is composed with one xstack instead of a chain
// of overlays: every tile is made a constant-rate stream of the tile's size on
// the output grid and copied into the frame. The overlay chain scales every
// tile into YUVA (overlay takes nothing else as its second input) and blends
// it, alpha 255, onto the canvas; the stack scales into 4:2:0 and copies.
// Both show the same pixels on the same frames (TestStackMatchesOverlays
// compares them frame by frame); the stack costs about a sixth less filter
// and decode CPU, a tenth of the whole render's (docs/render-cpu.md).
//
// What makes a tile's stream show, for every output frame, the source frame
// the overlay would: the fps filter with round=up puts each frame (its time
// already half a frame early, as placed) in the first output slot not before
// it and keeps the latest per slot, which is the overlay's "latest frame not
// after the output frame". Before the first source frame the overlay shows
// the canvas; the stream shows a frame of the background's colour, placed
// before the scene. After the last source frame the overlay repeats it;
// the stream's fps repeats it until a second background frame placed after
// the scene, so that its end never depends on the time the source's end of
// stream carries. The stream is then cut to the scene's frames.

// stackable reports whether scene sc can be composed with xstack on a w×h
// canvas: no background image (bg), no placeholder, every tile's video one
// piece for the whole scene fitted inside (contain; cover's crop cannot
// follow a size that changes mid-stream), every tile on even coordinates
// inside the canvas, and no two tiles overlapping.
func stackable(sc *scene, w, h int, bg string) bool {
	if bg != "" {
		return false
	}
	var rects []timeline.Rect
	for i := range sc.Tiles {
		t := &sc.Tiles[i]
		if len(t.Holders) > 0 || len(t.Video) > 1 {
			return false
		}
		if len(t.Video) == 1 {
			if p := &t.Video[0]; t.Fit == timeline.FitCover || p.From > sc.From || p.To < sc.To {
				return false
			}
		}
		// Every tile, with video or not (its label is drawn after all the
		// videos here, in its turn among them by the overlays).
		r := t.Rect
		if r.X < 0 || r.Y < 0 || r.W < 2 || r.H < 2 || r.X+r.W > w || r.Y+r.H > h || (r.X|r.Y|r.W|r.H)&1 != 0 {
			return false
		}
		for _, o := range rects {
			if r.X < o.X+o.W && o.X < r.X+r.W && r.Y < o.Y+o.H && o.Y < r.Y+r.H {
				return false
			}
		}
		rects = append(rects, r)
	}
	return true
}

// stackScene adds the subgraph of a stackable scene and returns its output
// pad.
func (b *videoBuilder) stackScene(sc *scene) string {
	g := b.g
	var ins, layout []string
	covered := 0 // pixels of the frame the tiles' videos cover
	for i := range sc.Tiles {
		t := &sc.Tiles[i]
		if len(t.Video) == 1 {
			ins = append(ins, b.tileStream(sc, t, &t.Video[0]))
			layout = append(layout, fmt.Sprintf("%d_%d", t.Rect.X, t.Rect.Y))
			covered += t.Rect.W * t.Rect.H
		}
	}
	// The tiles lie inside the frame and do not overlap (stackable): when
	// their areas add up to the frame's, they cover it, and the canvas,
	// which every pixel would be copied over, is left out (one copy of the
	// whole frame less per frame). Otherwise the canvas is the first input,
	// each tile copied over it: xstack copies its inputs in order, one
	// thread here (-filter_complex_threads 1).
	if covered < b.p.Width*b.p.Height {
		ins = append([]string{b.canvas("c", b.p.Width, b.p.Height, sc.frames())}, ins...)
		layout = append([]string{"0_0"}, layout...)
	}
	cur := ins[0]
	if len(ins) > 1 {
		cur = g.label("x")
		g.chain(ins, []string{fmt.Sprintf("xstack=inputs=%d:layout=%s", len(ins), strings.Join(layout, "|"))}, cur)
	}
	l := &layer{g: g, cur: cur}
	for i := range sc.Tiles {
		b.tileLabel(l, &sc.Tiles[i])
	}
	// The tiles' streams have no format of their own: xstack, the
	// interleaves and the fps filters pass the format of their inputs to
	// their output and back, so that this one filter decides it for every
	// tile's scale and background (one format filter a frame instead of one
	// a tile's frame). Every stream into the stack has a square pixel.
	out := g.label("xs") // a stacked scene (FrameHashes counts them)
	l.finish(out, "format=yuv420p")
	return out
}

// tileStream adds piece p of tile t as a stream of exactly the scene's
// frames, each of the tile's size, the picture fitted in its middle on the
// background's colour, and returns its pad.
func (b *videoBuilder) tileStream(sc *scene, t *sceneTile, p *piece) string {
	g, r, color := b.g, t.Rect, ffColor(b.p.Background.Color)
	in, fs := b.placed(sc, p)
	src := g.label("v")
	fit := []string{
		fmt.Sprintf("scale=w=%d:h=%d:force_original_aspect_ratio=decrease:force_divisible_by=2:eval=frame:flags=bilinear", r.W, r.H),
		fmt.Sprintf("pad=w=%d:h=%d:x=(ow-iw)/2:y=(oh-ih)/2:color=%s:eval=frame", r.W, r.H, color), "setsar=1"}
	if p.Src.Width == r.W && p.Src.Height == r.H {
		// The whole piece is the tile's size (the recording saw no change
		// of size in it: buildScenes): the scale passes its frames
		// through, and the pad, which would copy every decoded frame (a
		// decoder keeps its frames, so pad cannot write around them), is
		// left out. Were a frame of another size to come anyway, the scale
		// would stretch it to the tile rather than hand xstack a picture
		// of the wrong size.
		fit = []string{fmt.Sprintf("scale=w=%d:h=%d:eval=frame:flags=bilinear", r.W, r.H), "setsar=1"}
	}
	g.chain([]string{in}, append(fs, fit...), src)
	// The two background frames: 10 s before the scene and at least 10 s
	// after it, far from any source frame the piece shows. A rate of one
	// frame in 10 s makes both whole numbers of its time base, and its
	// duration stops the source after two frames.
	ends := g.label("b")
	after := 10 * math.Ceil(frameTime(sc.frames(), b.p.FPS)/10+1)
	g.chain(nil, []string{fmt.Sprintf("color=c=%s:s=%dx%d:r=1/10:d=20:sar=1", color, r.W, r.H),
		"setpts=" + quoteExpr(fmt.Sprintf("if(N,%s,-10)/TB", num(after)))}, ends)
	out := g.label("t")
	g.chain([]string{ends, src}, []string{"interleave", fmt.Sprintf("fps=fps=%s:round=up:start_time=0", fpsArg(b.p.FPS)),
		fmt.Sprintf("trim=end_frame=%d", sc.frames())}, out)
	return out
}
