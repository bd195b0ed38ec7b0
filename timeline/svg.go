package timeline

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
)

// This file draws a Summary as an SVG picture: one row per lane over the
// recording's time, with its files, gaps, losses and speaking activity, the
// participants' presence, the active speaker, and each lane's sync grade.

// SVG geometry, pixels.
const (
	svgWidth   = 1200
	svgLabelW  = 170
	svgRight   = 30
	svgTop     = 56
	svgLaneH   = 22
	svgLaneGap = 4
	svgPresH   = 6
	svgPartGap = 14
)

// svgColour is the i-th colour of the participants' palette.
func svgColour(i int) string {
	palette := [...]string{"#4e79a7", "#f28e2b", "#76b7b2", "#b07aa1", "#edc948", "#ff9da7", "#9c755f", "#59a14f", "#bab0ac", "#e15759"}
	return palette[i%len(palette)]
}

func svgEsc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s)) // writing to a bytes.Buffer does not fail
	return b.String()
}

// niceStep returns an axis step (seconds) giving at most about n ticks.
func niceStep(total float64, n int) float64 {
	for _, s := range []float64{0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200} {
		if total/s <= float64(n) {
			return s
		}
	}
	return math.Ceil(total/float64(n)/3600) * 3600
}

// WriteSVG draws the summary as a standalone SVG image.
func (s *Summary) WriteSVG(w io.Writer) error {
	total := math.Max(s.DurationS, 1e-3)
	plotW := float64(svgWidth - svgLabelW - svgRight)
	x := func(t float64) float64 { return svgLabelW + plotW*math.Max(0, math.Min(t, total))/total }
	width := func(a, b float64) float64 { return math.Max(0.5, x(b)-x(a)) }
	colour := map[string]string{}
	for i, p := range s.Participants {
		colour[p.ID] = svgColour(i)
	}

	var body bytes.Buffer
	pr := func(format string, args ...any) { fmt.Fprintf(&body, format, args...) }
	y := float64(svgTop)
	for _, p := range s.Participants {
		// Presence.
		pr(`<text x="8" y="%.1f" class="part">%s</text>`+"\n", y+svgPresH+2, svgEsc(p.ID))
		for _, sp := range p.Present {
			pr(`<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s"><title>%s present %s–%s</title></rect>`+"\n",
				x(sp.StartS), y, width(sp.StartS, sp.EndS), svgPresH, colour[p.ID], svgEsc(p.ID), fmtS(sp.StartS), fmtS(sp.EndS))
		}
		y += svgPresH + svgLaneGap
		for _, l := range s.Lanes {
			if l.Participant != p.ID {
				continue
			}
			grade := map[string]string{GradeGood: "#2ca02c", GradeFair: "#e6a700", GradePoor: "#d62728"}[l.Sync.Grade]
			if grade == "" {
				grade = "#999999"
			}
			pr(`<circle cx="16" cy="%.1f" r="5" fill="%s"><title>sync %s</title></circle>`+"\n", y+svgLaneH/2, grade, svgEsc(l.Sync.Grade))
			pr(`<text x="28" y="%.1f" class="lane">%s</text>`+"\n", y+svgLaneH/2+4, svgEsc(l.ID))
			pr(`<rect x="%d" y="%.1f" width="%.1f" height="%d" class="track"/>`+"\n", svgLabelW, y, plotW, svgLaneH)
			cls := "video"
			if l.Kind == Audio {
				cls = "audio"
			}
			for _, sg := range l.Segments {
				tip := fmt.Sprintf("%s %s–%s, %d frames, %d lost", sg.Path, fmtS(sg.StartS), fmtS(sg.EndS), sg.Frames, sg.Lost)
				pr(`<rect x="%.1f" y="%.1f" width="%.1f" height="%d" class="%s"><title>%s</title></rect>`+"\n",
					x(sg.StartS), y, width(sg.StartS, sg.EndS), svgLaneH, cls, svgEsc(tip))
				pr(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="file"/>`+"\n", x(sg.StartS), y, x(sg.StartS), y+svgLaneH)
				if sg.Lost > 0 {
					pr(`<rect x="%.1f" y="%.1f" width="%.1f" height="3" class="loss"><title>%d packets lost</title></rect>`+"\n",
						x(sg.StartS), y+svgLaneH-3, width(sg.StartS, sg.EndS), sg.Lost)
				}
				if !sg.Closed {
					pr(`<rect x="%.1f" y="%.1f" width="%.1f" height="%d" class="open"><title>%s was not closed by the recorder</title></rect>`+"\n",
						x(sg.StartS), y, width(sg.StartS, sg.EndS), svgLaneH, svgEsc(sg.Path))
					pr(`<text x="%.1f" y="%.1f" class="warn">not closed</text>`+"\n", x(sg.EndS)-3, y+svgLaneH/2+4)
				}
			}
			for _, sp := range l.Speaking {
				pr(`<rect x="%.1f" y="%.1f" width="%.1f" height="%d" class="speech"/>`+"\n", x(sp.StartS), y+4, width(sp.StartS, sp.EndS), svgLaneH-8)
			}
			for _, g := range l.Gaps {
				pr(`<rect x="%.1f" y="%.1f" width="%.1f" height="%d" class="gap"><title>gap %s–%s (%s)</title></rect>`+"\n",
					x(g.StartS), y, width(g.StartS, g.EndS), svgLaneH, fmtS(g.StartS), fmtS(g.EndS), svgEsc(g.Reason))
			}
			y += svgLaneH + svgLaneGap
		}
		y += svgPartGap
	}
	// Active speaker.
	pr(`<text x="8" y="%.1f" class="part">active speaker</text>`+"\n", y+svgLaneH/2+4)
	pr(`<rect x="%d" y="%.1f" width="%.1f" height="%d" class="track"/>`+"\n", svgLabelW, y, plotW, svgLaneH)
	for _, sp := range s.Speakers {
		pr(`<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s"><title>%s %s–%s</title></rect>`+"\n",
			x(sp.StartS), y, width(sp.StartS, sp.EndS), svgLaneH, colour[sp.Participant], svgEsc(sp.Participant), fmtS(sp.StartS), fmtS(sp.EndS))
		if x(sp.EndS)-x(sp.StartS) > 40 {
			pr(`<text x="%.1f" y="%.1f" class="in">%s</text>`+"\n", x(sp.StartS)+4, y+svgLaneH/2+4, svgEsc(sp.Participant))
		}
	}
	y += svgLaneH + 8
	// Axis.
	plotBottom := y
	step := niceStep(total, 12)
	for t := 0.0; t <= total+1e-9; t += step {
		pr(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" class="grid"/>`+"\n", x(t), svgTop-6, x(t), plotBottom)
		label := fmtS(t)
		if step >= 1 {
			label = label[:len(label)-4] // drop the milliseconds
		}
		pr(`<text x="%.1f" y="%.1f" class="tick">%s</text>`+"\n", x(t), plotBottom+14, label)
	}
	y = plotBottom + 34
	// Legend.
	lx := float64(svgLabelW)
	for _, it := range []struct{ cls, text string }{{"video", "video file"}, {"audio", "audio file"}, {"speech", "speaking"}, {"gap", "gap"}, {"loss", "packet loss"}} {
		pr(`<rect x="%.1f" y="%.1f" width="18" height="12" class="%s"/><text x="%.1f" y="%.1f" class="legend">%s</text>`+"\n", lx, y, it.cls, lx+24, y+10, it.text)
		lx += 120
	}
	for _, g := range []struct{ c, t string }{{"#2ca02c", "sync good"}, {"#e6a700", "fair"}, {"#d62728", "poor"}} {
		pr(`<circle cx="%.1f" cy="%.1f" r="5" fill="%s"/><text x="%.1f" y="%.1f" class="legend">%s</text>`+"\n", lx+6, y+6, g.c, lx+16, y+10, g.t)
		lx += 90
	}
	height := int(y + 30)

	out := &errWriter{w: w}
	out.printf(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif">`+"\n", svgWidth, height, svgWidth, height)
	out.printf(`<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">` +
		`<rect width="6" height="6" fill="#fbe3e4"/><line x1="0" y1="0" x2="0" y2="6" stroke="#e15759" stroke-width="3"/></pattern></defs>` + "\n")
	out.printf(`<style>
.part{font-size:13px;font-weight:bold;fill:#222}
.lane{font-size:12px;fill:#333}
.track{fill:#f3f3f3}
.video{fill:#9ecae9}
.audio{fill:#b5dea8}
.speech{fill:#2e7d32}
.gap{fill:url(#hatch);stroke:#e15759;stroke-width:0.5}
.loss{fill:#d62728}
.file{stroke:#ffffff;stroke-width:1.5}
.grid{stroke:#dddddd;stroke-width:1}
.tick{font-size:11px;fill:#555;text-anchor:middle}
.legend{font-size:11px;fill:#333}
.in{font-size:11px;fill:#fff}
.warn{font-size:11px;fill:#d62728;text-anchor:end}
.open{fill:none;stroke:#d62728;stroke-width:1.5;stroke-dasharray:4 3}
.title{font-size:16px;font-weight:bold;fill:#222}
.sub{font-size:12px;fill:#555}
</style>
<rect width="100%%" height="100%%" fill="#ffffff"/>
`)
	out.printf(`<text x="8" y="22" class="title">%s/%s</text>`+"\n", svgEsc(s.Room), svgEsc(s.Session))
	sub := fmt.Sprintf("%d participants, %d lanes, media to %s", len(s.Participants), len(s.Lanes), fmtS(s.DurationS))
	switch n := len(s.Warnings); n {
	case 0:
	case 1:
		sub += ", 1 warning"
	default:
		sub += fmt.Sprintf(", %d warnings", n)
	}
	out.printf(`<text x="8" y="40" class="sub">%s</text>`+"\n", svgEsc(sub))
	if out.err == nil {
		_, out.err = w.Write(body.Bytes())
	}
	out.printf("</svg>\n")
	return out.err
}
