package timeline

import (
	"fmt"
	"math"
)

// The layout engine: given who is present (in join order), the active
// speaker and a layout, where each tile goes. Tiles keep the output's
// aspect ratio in grids and strips; a region that shows one lane is that
// lane's tile. Coordinates are pixels of the output, even so that yuv420p
// scaling and overlays stay on chroma boundaries.

// Rect is a rectangle of the output in pixels.
type Rect struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

func (r Rect) String() string { return fmt.Sprintf("%dx%d+%d+%d", r.W, r.H, r.X, r.Y) }

// slot is one tile's worth of a participant: one of its video lanes, or
// (lane nil) the participant without video.
type slot struct {
	part *partMedia
	lane *laneMedia
}

// placed is a slot with its place.
type placed struct {
	slot
	rect Rect
	z    int
	fit  string
}

func even(v float64) int { return int(math.Floor(v/2)) * 2 }

// gridRects arranges n tiles of the given aspect (width/height) in area,
// gap pixels apart and from the edges: the number of columns that gives the
// largest tiles (fewer columns on a tie), rows filled left to right, the
// last row and the whole block centred.
func gridRects(area Rect, n int, aspect float64, gap int) []Rect {
	if n <= 0 {
		return nil
	}
	bestCols, bestW, bestH := 1, -1.0, 0.0
	for cols := 1; cols <= n; cols++ {
		rows := (n + cols - 1) / cols
		w := float64(area.W-gap*(cols+1)) / float64(cols)
		h := float64(area.H-gap*(rows+1)) / float64(rows)
		if w <= 0 || h <= 0 {
			continue
		}
		if w/h > aspect {
			w = h * aspect
		} else {
			h = w / aspect
		}
		if w > bestW+1e-9 {
			bestCols, bestW, bestH = cols, w, h
		}
	}
	if bestW < 2 && gap > 0 {
		return gridRects(area, n, aspect, 0) // the gaps leave no room: drop them
	}
	cols := bestCols
	rows := (n + cols - 1) / cols
	w, h := max(2, even(bestW)), max(2, even(bestH))
	blockH := rows*h + (rows-1)*gap
	y0 := area.Y + (area.H-blockH)/2
	out := make([]Rect, 0, n)
	for r := 0; r < rows; r++ {
		count := cols
		if r == rows-1 {
			count = n - cols*(rows-1)
		}
		rowW := count*w + (count-1)*gap
		x0 := area.X + (area.W-rowW)/2
		for c := 0; c < count; c++ {
			out = append(out, Rect{X: (x0 + c*(w+gap)) &^ 1, Y: (y0 + r*(h+gap)) &^ 1, W: w, H: h})
		}
	}
	return out
}

// fill places slots in area: one slot takes the whole area, several share
// it in a grid.
func fill(area Rect, slots []slot, aspect float64, gap, z int, fit string) []placed {
	if len(slots) == 1 {
		return []placed{{slot: slots[0], rect: area, z: z, fit: fit}}
	}
	return grid(area, slots, aspect, gap, z, fit)
}

// grid places slots in a grid of area.
func grid(area Rect, slots []slot, aspect float64, gap, z int, fit string) []placed {
	rects := gridRects(area, len(slots), aspect, gap)
	out := make([]placed, len(slots))
	for i, s := range slots {
		out[i] = placed{slot: s, rect: rects[i], z: z, fit: fit}
	}
	return out
}

// layoutCtx is what arranging one instant needs.
type layoutCtx struct {
	w, h    int
	slots   []slot // present, not excluded, in join order
	speaker string
	refs    func(ref string) []slot // the present slots a reference names
}

// defaultGap is the space between tiles when the layout does not set it.
func defaultGap(h int) int { return max(2, even(float64(h)/90)) }

// arrange places the slots for layout lc.
func (c *layoutCtx) arrange(lc *LayoutChange) []placed {
	if len(c.slots) == 0 {
		return nil
	}
	gap := lc.Gap
	if gap < 0 {
		gap = defaultGap(c.h)
	}
	aspect := float64(c.w) / float64(c.h)
	full := Rect{W: c.w, H: c.h}
	of := func(p string) []slot {
		var out []slot
		for _, s := range c.slots {
			if s.part.p.ID == p {
				out = append(out, s)
			}
		}
		return out
	}
	except := func(p string) []slot {
		var out []slot
		for _, s := range c.slots {
			if s.part.p.ID != p {
				out = append(out, s)
			}
		}
		return out
	}
	speaker := c.speaker
	if len(of(speaker)) == 0 {
		speaker = c.slots[0].part.p.ID
	}
	switch lc.Type {
	case LayoutSpeaker:
		main, others := of(speaker), except(speaker)
		if !lc.Strip || len(others) == 0 {
			return fill(full, main, aspect, gap, 0, lc.Fit)
		}
		stripH := even(float64(c.h) / 5)
		out := fill(Rect{W: c.w, H: c.h - stripH}, main, aspect, gap, 0, lc.Fit)
		return append(out, grid(Rect{Y: c.h - stripH, W: c.w, H: stripH}, others, aspect, gap, 0, lc.Fit)...)
	case LayoutPiP:
		var main []slot
		mainID := speaker
		if lc.Main != "" {
			main = c.refs(lc.Main)
			if len(main) > 0 {
				mainID = main[0].part.p.ID
			}
		} else {
			main = of(speaker)
		}
		var inset []slot
		if lc.Inset != "" {
			inset = c.refs(lc.Inset)
		} else if rest := except(mainID); len(rest) > 0 {
			inset = of(rest[0].part.p.ID)
		}
		out := fill(full, main, aspect, gap, 0, lc.Fit)
		if len(inset) == 0 {
			return out
		}
		iw := even(lc.Size * float64(c.w))
		ih := even(float64(iw) / aspect)
		margin := 2 * gap
		r := Rect{X: margin, Y: margin, W: iw, H: ih}
		if lc.Corner == AnchorTopRight || lc.Corner == AnchorBottomRight {
			r.X = c.w - margin - iw
		}
		if lc.Corner == AnchorBottomLeft || lc.Corner == AnchorBottomRight {
			r.Y = c.h - margin - ih
		}
		return append(out, fill(r, inset, aspect, gap/2, 1, lc.Fit)...)
	case LayoutSingle:
		return fill(full, c.refs(lc.Lane), aspect, gap, 0, lc.Fit)
	case LayoutCustom:
		var out []placed
		claimed := map[slot]bool{}
		for _, rg := range lc.Regions {
			switch {
			case rg.Speaker:
				for _, s := range of(speaker) {
					claimed[s] = true
				}
			default:
				for _, ref := range rg.Lanes {
					for _, s := range c.refs(ref) {
						claimed[s] = true
					}
				}
			}
		}
		for _, rg := range lc.Regions {
			var ss []slot
			switch {
			case rg.Speaker:
				ss = of(speaker)
			case rg.Others:
				for _, s := range c.slots {
					if !claimed[s] {
						ss = append(ss, s)
					}
				}
			default:
				seen := map[slot]bool{}
				for _, ref := range rg.Lanes {
					for _, s := range c.refs(ref) {
						if !seen[s] {
							seen[s] = true
							ss = append(ss, s)
						}
					}
				}
			}
			if len(ss) == 0 {
				continue
			}
			fit := rg.Fit
			if fit == "" {
				fit = lc.Fit
			}
			area := Rect{X: rg.X.Resolve(c.w), Y: rg.Y.Resolve(c.h), W: rg.Width.Resolve(c.w), H: rg.Height.Resolve(c.h)}
			out = append(out, fill(area, ss, aspect, gap, rg.Z, fit)...)
		}
		return out
	}
	return grid(full, c.slots, aspect, gap, 0, lc.Fit) // LayoutGrid
}
