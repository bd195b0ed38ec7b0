package timeline

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
)

func TestSummarizeDemo(t *testing.T) {
	m, s := demo(t)
	sum, err := Summarize(m, s)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(sum.Participants), 3; got != want {
		t.Fatalf("%d participants, want %d", got, want)
	}
	if got, want := len(sum.Lanes), 6; got != want {
		t.Fatalf("%d lanes, want %d", got, want)
	}
	lanes := map[string]LaneSummary{}
	for _, l := range sum.Lanes {
		lanes[l.ID] = l
	}
	// carol dropped and rejoined: one gap in each lane, about 1.5 s.
	for _, id := range []string{"carol/audio", "carol/video"} {
		l := lanes[id]
		if len(l.Gaps) != 1 || l.Gaps[0].Reason != GapRejoin || math.Abs(l.Gaps[0].EndS-l.Gaps[0].StartS-1.5) > 0.1 {
			t.Errorf("%s gaps %+v, want one rejoin of about 1.5 s", id, l.Gaps)
		}
		if l.Tracks != 2 || len(l.Segments) != 2 {
			t.Errorf("%s: %d tracks, %d files, want 2 and 2", id, l.Tracks, len(l.Segments))
		}
	}
	for _, id := range []string{"alice/audio", "alice/video", "bob/audio", "bob/video"} {
		if l := lanes[id]; len(l.Gaps) != 0 || len(l.Segments) != 2 {
			t.Errorf("%s: gaps %+v, %d files; want none and 2 (the rotation is not a gap)", id, l.Gaps, len(l.Segments))
		}
	}
	// Loss: carol's audio lost 8 of 375 packets.
	if l := lanes["carol/audio"]; l.PacketsLost != 8 || math.Abs(l.LossPercent-100*8.0/375) > 1e-9 {
		t.Errorf("carol/audio loss %d, %.3f%%", l.PacketsLost, l.LossPercent)
	}
	if !strings.Contains(strings.Join(sum.Warnings, "\n"), "carol/audio: 2.1% of packets lost (8 of 375)") {
		t.Errorf("warnings %q lack carol's loss", sum.Warnings)
	}
	// bob's wall clock runs 2.5 s ahead of the recorder's.
	var bob ParticipantSummary
	for _, p := range sum.Participants {
		if p.ID == "bob" {
			bob = p
		}
	}
	if len(bob.Clocks) != 1 || math.Abs(bob.Clocks[0].OffsetMS+2500) > 20 {
		t.Errorf("bob's clocks %+v, want one about 2500 ms behind", bob.Clocks)
	}
	if got := lanes["alice/audio"].SenderReports; got != 11 {
		t.Errorf("alice/audio: %d sender reports, want 11", got)
	}
	if g := lanes["alice/video"].Sync.Grade; g != GradeGood {
		t.Errorf("alice/video sync %q, want good", g)
	}
	if len(lanes["alice/audio"].Speaking) == 0 || len(lanes["alice/video"].Speaking) != 0 {
		t.Errorf("speaking: audio %d spans, video %d", len(lanes["alice/audio"].Speaking), len(lanes["alice/video"].Speaking))
	}
	if len(sum.Speakers) == 0 || sum.Speakers[0].Participant != "alice" {
		t.Errorf("speakers %+v, want alice first", sum.Speakers)
	}

	var text bytes.Buffer
	if err := sum.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"session demo/", "carol/audio", "rejoin", "offset -250", "2.13%", "tracks/bob/video-t3-001.mkv", "warnings"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
}

func TestSummarySVG(t *testing.T) {
	m, s := demo(t)
	sum, err := Summarize(m, s)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := sum.WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	// Well-formed XML, an <svg> root, a rect per file, a gap per hole.
	dec := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	counts := map[string]int{}
	root := ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			for _, a := range se.Attr {
				if a.Name.Local == "class" {
					counts[a.Value]++
				}
			}
		}
	}
	if root != "svg" {
		t.Errorf("root element %q, want svg", root)
	}
	if got, want := counts["video"]+counts["audio"], 12+2; got != want { // 12 files, 2 legend swatches
		t.Errorf("%d file rects, want %d", got, want)
	}
	if got, want := counts["gap"], 2+1; got != want {
		t.Errorf("%d gap rects, want %d", got, want)
	}
	// Names are escaped.
	sum.Room = `<a&b>`
	buf.Reset()
	if err := sum.WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "&lt;a&amp;b&gt;") {
		t.Errorf("room name not escaped")
	}
}
