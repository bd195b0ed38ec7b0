package interchange

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// Marker thresholds.
const (
	// JoinGrace: a participant present within the first second of the
	// session was there from the start (the session starts with the first
	// media, the others' a few hundred ms later), and one present until
	// the last second stayed to the end: neither gets a join or leave
	// marker.
	JoinGrace = time.Second
	// MinLossMarker is the shortest hole in a participant's media that gets
	// a loss marker. A second is where capture itself declares a pause (no
	// packets for over a second inside a file); shorter holes (200 ms to
	// 1 s, between files or after an SSRC change) are a frozen frame or a
	// moment of silence in the stems, not something to navigate to, and a
	// call with 3 % loss has many of them.
	MinLossMarker = time.Second
)

// MarkersFromPlan returns the markers an editor wants on the timelines of
// a session, in session frames of fps (frames: the session's length):
//
//   - join: a participant's first presence, unless within JoinGrace of the
//     session start;
//   - leave: the end of a presence, unless within JoinGrace of the session
//     end;
//   - rejoin: each presence after the first (Note: how long they were
//     away);
//   - loss: a hole of at least MinLossMarker in a participant's audio or
//     video while they are present (a marker with a duration; holes of
//     their lanes that overlap are one marker naming both media);
//   - layout: each change of layout in plan (from the edits), at its
//     recording time.
//
// Presence and holes come from sum (timeline.Summarize of the same
// manifest and sync), display names from plan's tiles (the edits' names)
// or else sum. plan may be nil (no layout markers). Markers are sorted by
// frame.
func MarkersFromPlan(sum *timeline.Summary, plan *timeline.Plan, fps timeline.Rational, frames int64) []Marker {
	if sum == nil || frames <= 0 {
		return nil
	}
	names := map[string]string{}
	if plan != nil {
		for _, iv := range plan.Intervals {
			for _, t := range iv.Tiles {
				if _, ok := names[t.Participant]; !ok && t.Name != "" {
					names[t.Participant] = t.Name
				}
			}
		}
	}
	for _, ps := range sum.Participants {
		if _, ok := names[ps.ID]; !ok {
			names[ps.ID] = ps.Name
			if ps.Name == "" {
				names[ps.ID] = ps.ID
			}
		}
	}
	end := seconds(sum.DurationS)
	var out []Marker
	add := func(from, to time.Duration, kind MarkerKind, who, name, note string) {
		f := min(FrameAt(from, fps), frames-1)
		m := Marker{Frame: f, Kind: kind, Name: name, Note: note, Participant: who}
		if to > from {
			m.Duration = max(0, min(FrameAt(to, fps), frames)-f)
		}
		out = append(out, m)
	}
	for _, ps := range sum.Participants {
		name := names[ps.ID]
		for i, sp := range ps.Present {
			a, b := seconds(sp.StartS), seconds(sp.EndS)
			switch {
			case i > 0:
				away := a - seconds(ps.Present[i-1].EndS)
				add(a, a, MarkerRejoin, ps.ID, name+" rejoins", "back after "+human(away))
			case a >= JoinGrace:
				add(a, a, MarkerJoin, ps.ID, name+" joins", "")
			}
			switch {
			case i+1 < len(ps.Present):
				away := seconds(ps.Present[i+1].StartS) - b
				add(b, b, MarkerLeave, ps.ID, name+" leaves", "rejoins after "+human(away))
			case b <= end-JoinGrace:
				add(b, b, MarkerLeave, ps.ID, name+" leaves", "")
			}
		}
		for _, h := range holes(sum, ps) {
			what := "no " + h.media
			add(h.from, h.to, MarkerLoss, ps.ID, fmt.Sprintf("%s: %s (%s)", name, what, human(h.to-h.from)), h.why)
		}
	}
	if plan != nil {
		for i := 1; i < len(plan.Intervals); i++ {
			iv := plan.Intervals[i]
			if iv.Layout != plan.Intervals[i-1].Layout {
				add(iv.RecStart, iv.RecStart, MarkerLayout, "", "layout: "+string(iv.Layout), "")
			}
		}
	}
	rank := map[MarkerKind]int{MarkerLoss: 0, MarkerLeave: 1, MarkerRejoin: 2, MarkerJoin: 3, MarkerLayout: 4}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Frame != b.Frame {
			return a.Frame < b.Frame
		}
		if rank[a.Kind] != rank[b.Kind] {
			return rank[a.Kind] < rank[b.Kind]
		}
		return a.Name < b.Name
	})
	return out
}

// hole is a stretch of a present participant without some of their media.
type hole struct {
	from, to time.Duration
	media    string // "audio", "video" or "audio/video"
	why      string
}

// holes returns the participant's lane gaps of at least MinLossMarker
// while present, those of different lanes that overlap merged.
func holes(sum *timeline.Summary, ps timeline.ParticipantSummary) []hole {
	type gap struct {
		from, to time.Duration
		kind     timeline.Kind
		reason   string
	}
	var gaps []gap
	for _, ls := range sum.Lanes {
		if ls.Participant != ps.ID {
			continue
		}
		for _, g := range ls.Gaps {
			a, b := seconds(g.StartS), seconds(g.EndS)
			// Only while present: between a leave and a rejoin the
			// leave and rejoin markers say it.
			for _, sp := range ps.Present {
				x, y := max(a, seconds(sp.StartS)), min(b, seconds(sp.EndS))
				if y-x >= MinLossMarker {
					gaps = append(gaps, gap{x, y, ls.Kind, g.Reason})
				}
			}
		}
	}
	sort.SliceStable(gaps, func(i, j int) bool { return gaps[i].from < gaps[j].from })
	var out []hole
	var kinds, reasons map[string]bool
	flush := func() {
		h := &out[len(out)-1]
		switch {
		case kinds["audio"] && kinds["video"]:
			h.media = "audio/video"
		case kinds["audio"]:
			h.media = "audio"
		default:
			h.media = "video"
		}
		var rs []string
		for r := range reasons {
			rs = append(rs, r)
		}
		sort.Strings(rs)
		for i, r := range rs {
			if i > 0 {
				h.why += "; "
			}
			h.why += reasonText(r)
		}
	}
	for _, g := range gaps {
		if n := len(out); n > 0 && g.from < out[n-1].to {
			out[n-1].to = max(out[n-1].to, g.to)
			kinds[string(g.kind)], reasons[g.reason] = true, true
			continue
		}
		if len(out) > 0 {
			flush()
		}
		out = append(out, hole{from: g.from, to: g.to})
		kinds, reasons = map[string]bool{string(g.kind): true}, map[string]bool{g.reason: true}
	}
	if len(out) > 0 {
		flush()
	}
	return out
}

// reasonText says a gap's reason in words.
func reasonText(r string) string {
	switch r {
	case timeline.GapPause:
		return "no packets for over a second (network loss or a paused camera or microphone)"
	case timeline.GapFiles:
		return "between two files of the recording"
	case timeline.GapStream:
		return "the sender started a new stream"
	case timeline.GapRejoin:
		return "the participant published again"
	}
	return r
}

// seconds converts the summary's seconds to a duration (nearest ns).
func seconds(s float64) time.Duration {
	if math.IsNaN(s) || s <= 0 {
		return 0
	}
	if s >= float64(math.MaxInt64)/1e9 {
		return math.MaxInt64
	}
	return time.Duration(math.Round(s * 1e9))
}

// human writes a length for a marker: "3.2 s", "1 min 5 s".
func human(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	s := int64(d.Round(time.Second) / time.Second)
	if s < 3600 {
		return fmt.Sprintf("%d min %d s", s/60, s%60)
	}
	return fmt.Sprintf("%d h %d min", s/3600, s%3600/60)
}
