package timeline

import (
	"errors"
	"fmt"
	"sort"
)

// Statuses of a part in a merged manifest (PartInfo.Status).
const (
	// PartComplete: the node that recorded the part stored all of it.
	PartComplete = "complete"
	// PartPartial: the node did not store its part (it died and has not come
	// back yet); the segments it uploaded during the call are merged, and what
	// it had not uploaded is missing.
	PartPartial = "partial"
	// PartMissing: nothing of the part could be read.
	PartMissing = "missing"
)

// PartInfo describes one part of a session recorded in turn by several
// recorders of a cluster: when a room's recorder dies, the next one that the
// participants reach continues the same session as a new part.
type PartInfo struct {
	Part   int    `json:"part"`
	Node   string `json:"node"`
	Status string `json:"status"`
	// StartUnixNS and EndUnixNS are the part's start and end on its
	// recorder's clock (0 when the part is missing).
	StartUnixNS int64 `json:"start_unix_ns,omitempty"`
	EndUnixNS   int64 `json:"end_unix_ns,omitempty"`
	// Note says what is missing of a partial or missing part, and why.
	Note string `json:"note,omitempty"`
}

func validateParts(parts []PartInfo) error {
	seen := map[int]bool{}
	for _, p := range parts {
		switch {
		case p.Part < 1:
			return fmt.Errorf("part number %d: want 1 or more", p.Part)
		case seen[p.Part]:
			return fmt.Errorf("part %d listed twice", p.Part)
		case p.Status != PartComplete && p.Status != PartPartial && p.Status != PartMissing:
			return fmt.Errorf("part %d: status %q, want %s, %s or %s", p.Part, p.Status, PartComplete, PartPartial, PartMissing)
		}
		seen[p.Part] = true
	}
	return nil
}

// MergeParts merges the manifests of a session's parts into the session's
// manifest. parts lists every part of the session, those without a manifest
// too (status PartMissing): nothing is dropped without being named. Each
// manifest must be listed, under its Part, as complete or partial.
//
// Participants are merged by ID (their publishes in order of start), lanes by
// ID: a participant's lane continues across parts, its tracks ordered by
// their first media, with a gap where the session moved between recorders.
// The session starts with its earliest part and ends with its latest.
//
// Every part's instants are on its own recorder's clock: merging assumes those
// clocks agree (recorders synchronized with NTP; their difference adds to the
// sync model's error, and on one machine it is zero). Track IDs and segment
// paths must be unique across parts (a recorder prefixes those of the parts
// it continues); a clash is an error.
func MergeParts(manifests []*Manifest, parts []PartInfo) (*Manifest, error) {
	if len(manifests) == 0 {
		return nil, errors.New("timeline: merge parts: no part has a manifest")
	}
	if err := validateParts(parts); err != nil {
		return nil, fmt.Errorf("timeline: merge parts: %w", err)
	}
	info := map[int]*PartInfo{}
	infos := append([]PartInfo(nil), parts...)
	sort.Slice(infos, func(i, j int) bool { return infos[i].Part < infos[j].Part })
	for i := range infos {
		info[infos[i].Part] = &infos[i]
	}
	ms := append([]*Manifest(nil), manifests...)
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].Part < ms[j].Part })
	first := ms[0]
	out := &Manifest{Version: ManifestVersion, Room: first.Room, Session: first.Session}
	seenPart := map[int]bool{}
	parts2 := map[string]*Participant{}
	var partOrder []string
	lanes := map[string]*Lane{}
	var laneOrder []string
	trackPart := map[string]int{}
	trackAt := map[string]int64{} // when a track's media starts
	pathPart := map[string]int{}
	for _, m := range ms {
		pi, ok := info[m.Part]
		switch {
		case m.Room != out.Room || m.Session != out.Session:
			return nil, fmt.Errorf("timeline: merge parts: part %d is of %s/%s, part %d of %s/%s", m.Part, m.Room, m.Session, first.Part, out.Room, out.Session)
		case !ok:
			return nil, fmt.Errorf("timeline: merge parts: part %d has a manifest but is not listed", m.Part)
		case seenPart[m.Part]:
			return nil, fmt.Errorf("timeline: merge parts: two manifests of part %d", m.Part)
		case pi.Status == PartMissing:
			return nil, fmt.Errorf("timeline: merge parts: part %d has a manifest but is listed missing", m.Part)
		}
		seenPart[m.Part] = true
		if pi.Node == "" {
			pi.Node = m.Node
		}
		pi.StartUnixNS, pi.EndUnixNS = m.StartUnixNS, m.EndUnixNS
		if out.StartUnixNS == 0 || m.StartUnixNS < out.StartUnixNS {
			out.StartUnixNS = m.StartUnixNS
		}
		out.EndUnixNS = max(out.EndUnixNS, m.EndUnixNS)
		out.Recovered = out.Recovered || m.Recovered || pi.Status != PartComplete
		for _, p := range m.Participants {
			q, ok := parts2[p.ID]
			if !ok {
				q = &Participant{ID: p.ID, Name: p.Name}
				parts2[p.ID] = q
				partOrder = append(partOrder, p.ID)
			}
			if q.Name == "" {
				q.Name = p.Name
			}
			q.Publishes = append(q.Publishes, p.Publishes...)
		}
		for _, l := range m.Lanes {
			ml, ok := lanes[l.ID]
			if !ok {
				ml = &Lane{ID: l.ID, Participant: l.Participant, Kind: l.Kind}
				lanes[l.ID] = ml
				laneOrder = append(laneOrder, l.ID)
			} else if ml.Participant != l.Participant || ml.Kind != l.Kind {
				return nil, fmt.Errorf("timeline: merge parts: lane %q is %s of %q in one part, %s of %q in part %d",
					l.ID, ml.Kind, ml.Participant, l.Kind, l.Participant, m.Part)
			}
			for _, t := range l.Tracks {
				if other, ok := trackPart[t.ID]; ok {
					return nil, fmt.Errorf("timeline: merge parts: track %q is in part %d and in part %d", t.ID, other, m.Part)
				}
				trackPart[t.ID] = m.Part
				trackAt[t.ID] = m.StartUnixNS
				if len(t.Segments) > 0 {
					trackAt[t.ID] = t.Segments[0].FirstArrivalUnixNS
				}
				for _, s := range t.Segments {
					if other, ok := pathPart[s.Path]; ok {
						return nil, fmt.Errorf("timeline: merge parts: segment %s is in part %d and in part %d", s.Path, other, m.Part)
					}
					pathPart[s.Path] = m.Part
				}
				ml.Tracks = append(ml.Tracks, t)
			}
		}
	}
	for _, pi := range infos {
		if pi.Status != PartMissing && !seenPart[pi.Part] {
			return nil, fmt.Errorf("timeline: merge parts: part %d is %s but has no manifest", pi.Part, pi.Status)
		}
	}
	for _, id := range partOrder {
		p := parts2[id]
		sort.SliceStable(p.Publishes, func(i, j int) bool { return p.Publishes[i].StartUnixNS < p.Publishes[j].StartUnixNS })
		out.Participants = append(out.Participants, *p)
	}
	for _, id := range laneOrder {
		l := lanes[id]
		sort.SliceStable(l.Tracks, func(i, j int) bool { return trackAt[l.Tracks[i].ID] < trackAt[l.Tracks[j].ID] })
		out.Lanes = append(out.Lanes, *l)
	}
	sort.SliceStable(out.Lanes, func(i, j int) bool { return out.Lanes[i].ID < out.Lanes[j].ID })
	out.Parts = infos
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("timeline: merge parts: %w", err)
	}
	return out, nil
}

// PartsSignature sums up which parts a merged manifest holds and how
// completely, "1:complete,2:partial": two merges of the same parts with the
// same statuses have the same signature.
func PartsSignature(parts []PartInfo) string {
	ps := append([]PartInfo(nil), parts...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].Part < ps[j].Part })
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("%d:%s", p.Part, p.Status)
	}
	return s
}
