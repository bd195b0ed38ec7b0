package interchange

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tapedeck/tapedeck/timeline"
)

func markerList(ms []Marker) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%d+%d %s %s %q (%s)\n", m.Frame, m.Duration, m.Kind, m.Participant, m.Name, m.Note)
	}
	return b.String()
}

func TestMarkersFromPlan(t *testing.T) {
	fps := timeline.Rational{Num: 30000, Den: 1001}
	n := FrameAt(60*sec, fps)
	got := markerList(MarkersFromPlan(rejoinSummary(), nil, fps, n))
	// bob joins at 12.5 s (frame 374.6); carol leaves at 20 s (599.4) and
	// rejoins at 35 s (1048.95), and her end at 59.5 s is within a second
	// of the end: no leave; alice's audio (40.2–42 s) and video (40–43.5 s)
	// holes are one marker; her 0.5 s audio hole at 50 s none; carol's
	// rejoin gap is no loss (she is away).
	want := `375+0 join bob "Bob joins" ()
599+0 leave carol "Carol leaves" (rejoins after 15.0 s)
1049+0 rejoin carol "Carol rejoins" (back after 15.0 s)
1199+105 loss alice "Alice: no audio/video (3.5 s)" (no packets for over a second (network loss or a paused camera or microphone))
`
	if got != want {
		t.Errorf("markers:\n%s\nwant:\n%s", got, want)
	}
}

func TestMarkersLayoutAndNames(t *testing.T) {
	fps := timeline.Rational{Num: 30, Den: 1}
	got := markerList(MarkersFromPlan(editsSummary(), editsPlan(), fps, FrameAt(45*sec, fps)))
	// Names from the plan's tiles (the edits' "Bob (guest)"); the layout
	// change at 20 s; carol's 2.5 s hole.
	want := `150+0 join bob "Bob (guest) joins" ()
600+0 layout  "layout: speaker" ()
765+75 loss carol "Carol: no video (2.5 s)" (no packets for over a second (network loss or a paused camera or microphone))
`
	if got != want {
		t.Errorf("markers:\n%s\nwant:\n%s", got, want)
	}
	if ms := MarkersFromPlan(nil, editsPlan(), fps, 100); ms != nil {
		t.Errorf("markers without a summary: %v", ms)
	}
}

// TestMarkerPlacement: markers move with the cuts; one inside a cut goes,
// one whose range reaches past a cut starts where the recording is kept
// again.
func TestMarkerPlacement(t *testing.T) {
	kept := []Range{{Start: 60, Frames: 240}, {Start: 375, Frames: 375}, {Start: 825, Frames: 375}}
	for _, c := range []struct {
		m      Marker
		ok     bool
		out, n int64
	}{
		{Marker{Frame: 150}, true, 90, 0},
		{Marker{Frame: 59}, false, 0, 0},                 // trimmed
		{Marker{Frame: 300}, false, 0, 0},                // first frame of a cut
		{Marker{Frame: 299, Duration: 10}, true, 239, 1}, // stops at the cut
		{Marker{Frame: 350, Duration: 50}, true, 240, 25},
		{Marker{Frame: 350, Duration: 25}, false, 0, 0}, // ends where the recording is kept again
		{Marker{Frame: 1199, Duration: 100}, true, 989, 1},
		{Marker{Frame: 1200}, false, 0, 0},
	} {
		pm, ok := placeMarker(kept, c.m)
		if ok != c.ok || (ok && (pm.Out != c.out || pm.Frames != c.n)) {
			t.Errorf("marker %d+%d: placed %v at %d+%d, want %v at %d+%d", c.m.Frame, c.m.Duration, ok, pm.Out, pm.Frames, c.ok, c.out, c.n)
		}
	}
}
