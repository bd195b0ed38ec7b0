package timeline

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// partManifest is one recorder's part of session s1 in room r: alice's audio
// and video, one track each, from start to start+dur seconds.
func partManifest(part int, node, prefix string, start, dur int64) *Manifest {
	const s = int64(1e9)
	pub := Publish{ID: node + "-pub", StartUnixNS: start * s, EndUnixNS: (start + dur) * s, EndReason: "connection failed"}
	seg := func(kind string) Segment {
		return Segment{Path: "tracks/alice/" + kind + "-" + prefix + "1-000.webm", FirstRTP: 1000, LastRTP: 1000 + dur*48000,
			FirstArrivalUnixNS: start * s, LastArrivalUnixNS: (start + dur) * s, Closed: true}
	}
	return &Manifest{
		Version: ManifestVersion, Room: "r", Session: "s1", StartUnixNS: start * s, EndUnixNS: (start + dur) * s, Part: part, Node: node,
		Participants: []Participant{{ID: "alice", Name: "alice", Publishes: []Publish{pub}}},
		Lanes: []Lane{
			{ID: "alice/audio", Participant: "alice", Kind: Audio, Tracks: []Track{{ID: prefix + "1", Publish: pub.ID, Codec: Codec{Name: "opus", ClockRate: 48000}, Segments: []Segment{seg("audio")}}}},
			{ID: "alice/video", Participant: "alice", Kind: Video, Tracks: []Track{{ID: prefix + "2", Publish: pub.ID, Codec: Codec{Name: "vp8", ClockRate: 90000}, Segments: []Segment{seg("video")}}}},
		},
	}
}

func TestMergeParts(t *testing.T) {
	// Part 2 first in the list: the order of the arguments does not matter.
	p2 := partManifest(2, "beta", "p2t", 110, 20)
	p1 := partManifest(1, "alpha", "t", 100, 8)
	p2.Participants = append(p2.Participants, Participant{ID: "bob", Name: "bob", Publishes: []Publish{{ID: "bob-pub", StartUnixNS: 111e9}}})
	p2.Lanes = append(p2.Lanes, Lane{ID: "bob/audio", Participant: "bob", Kind: Audio, Tracks: []Track{{ID: "p2t9", Publish: "bob-pub",
		Codec: Codec{Name: "opus", ClockRate: 48000}, Segments: []Segment{{Path: "tracks/bob/audio-p2t9-000.webm", FirstArrivalUnixNS: 111e9, Closed: true}}}}})
	parts := []PartInfo{{Part: 2, Node: "beta", Status: PartComplete}, {Part: 1, Node: "alpha", Status: PartPartial, Note: "node alpha died"},
		{Part: 3, Node: "gamma", Status: PartMissing, Note: "nothing uploaded"}}
	m, err := MergeParts([]*Manifest{p2, p1}, parts)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.StartUnixNS, int64(100e9); got != want {
		t.Errorf("start %d, want the first part's %d", got, want)
	}
	if got, want := m.EndUnixNS, int64(130e9); got != want {
		t.Errorf("end %d, want the last part's %d", got, want)
	}
	if m.Part != 0 || m.Node != "" || !m.Recovered {
		t.Errorf("part %d node %q recovered %v, want 0, \"\", true (a part is partial)", m.Part, m.Node, m.Recovered)
	}
	if got, want := PartsSignature(m.Parts), "1:partial,2:complete,3:missing"; got != want {
		t.Errorf("parts %s, want %s", got, want)
	}
	if got, want := m.Parts[0].StartUnixNS, int64(100e9); got != want {
		t.Errorf("part 1 starts at %d, want %d", got, want)
	}
	if got, want := len(m.Participants), 2; got != want {
		t.Fatalf("%d participants, want %d", got, want)
	}
	if got, want := len(m.Participants[0].Publishes), 2; got != want {
		t.Errorf("alice has %d publishes, want %d (one per part)", got, want)
	}
	l, ok := m.Lane("alice/video")
	if !ok {
		t.Fatal("no lane alice/video")
	}
	if got, want := len(l.Tracks), 2; got != want {
		t.Fatalf("alice/video has %d tracks, want %d", got, want)
	}
	if got, want := l.Tracks[0].ID+","+l.Tracks[1].ID, "t2,p2t2"; got != want {
		t.Errorf("alice/video tracks %s, want %s (in order of their media)", got, want)
	}
	// The merged manifest round-trips.
	b, err := MarshalManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseManifest(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := PartsSignature(back.Parts), PartsSignature(m.Parts); got != want {
		t.Errorf("parsed back: parts %s, want %s", got, want)
	}
}

func TestMergePartsRefuses(t *testing.T) {
	ok := []PartInfo{{Part: 1, Status: PartComplete}, {Part: 2, Status: PartComplete}}
	for _, c := range []struct {
		name  string
		ms    func() []*Manifest
		parts []PartInfo
		want  string
	}{
		{"no manifest", func() []*Manifest { return nil }, ok, "no part has a manifest"},
		{"track clash", func() []*Manifest {
			return []*Manifest{partManifest(1, "a", "t", 0, 5), partManifest(2, "b", "t", 10, 5)}
		}, ok, "track \"t1\" is in part 1 and in part 2"},
		{"other session", func() []*Manifest {
			m := partManifest(2, "b", "p2t", 10, 5)
			m.Session = "s2"
			return []*Manifest{partManifest(1, "a", "t", 0, 5), m}
		}, ok, "is of r/s2"},
		{"unlisted part", func() []*Manifest {
			return []*Manifest{partManifest(1, "a", "t", 0, 5), partManifest(2, "b", "p2t", 10, 5)}
		}, []PartInfo{{Part: 1, Status: PartComplete}}, "part 2 has a manifest but is not listed"},
		{"listed part without manifest", func() []*Manifest {
			return []*Manifest{partManifest(1, "a", "t", 0, 5)}
		}, ok, "part 2 is complete but has no manifest"},
		{"bad status", func() []*Manifest {
			return []*Manifest{partManifest(1, "a", "t", 0, 5)}
		}, []PartInfo{{Part: 1, Status: "gone"}}, "status \"gone\""},
		{"lane of another kind", func() []*Manifest {
			m := partManifest(2, "b", "p2t", 10, 5)
			m.Lanes[0].Kind = Video
			return []*Manifest{partManifest(1, "a", "t", 0, 5), m}
		}, ok, "lane \"alice/audio\" is audio"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := MergeParts(c.ms(), c.parts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}

func TestValidateParts(t *testing.T) {
	m := partManifest(1, "a", "t", 0, 5)
	m.Parts = []PartInfo{{Part: 1, Status: PartComplete}, {Part: 1, Status: PartMissing}}
	if err := m.Validate(); !errors.Is(err, ErrInvalidManifest) || !strings.Contains(err.Error(), "part 1 listed twice") {
		t.Errorf("a part listed twice: %v", err)
	}
	m.Parts, m.Part = nil, -1
	if err := m.Validate(); !errors.Is(err, ErrInvalidManifest) {
		t.Errorf("a negative part: %v", err)
	}
}
