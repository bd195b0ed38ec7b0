package timeline

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// Summary is what a person needs to trust a recording: who was there, what
// was recorded in which files, where the holes and losses are, and how well
// the tracks could be synchronized. Times are seconds of recording time
// (0 = Sync.SessionStart) unless named _unix_ns.
type Summary struct {
	Room        string `json:"room"`
	Session     string `json:"session"`
	StartUnixNS int64  `json:"start_unix_ns"`
	EndUnixNS   int64  `json:"end_unix_ns"`
	Recovered   bool   `json:"recovered,omitempty"`
	// SessionStartUnixNS is recording time 0 (Sync.SessionStart).
	SessionStartUnixNS int64 `json:"session_start_unix_ns"`
	// DurationS runs from recording time 0 to the end of the last media.
	DurationS    float64              `json:"duration_s"`
	Participants []ParticipantSummary `json:"participants"`
	Lanes        []LaneSummary        `json:"lanes"`
	// Speakers is the active speaker over the recording (without edits).
	Speakers []SpeakerSpan `json:"speakers"`
	// Warnings are the things worth a look, one line each.
	Warnings []string `json:"warnings"`
}

// ParticipantSummary is one participant.
type ParticipantSummary struct {
	ID        string           `json:"id"`
	Name      string           `json:"name"`
	Publishes []PublishSummary `json:"publishes"`
	// Clocks are the participant's estimated sender clocks (one per device:
	// a rejoin from another device has its own); none without sender
	// reports.
	Clocks []ClockSummary `json:"clocks"`
	// Present are the spans during which the participant was in the call.
	Present []SpanS `json:"present"`
}

// PublishSummary is one publish.
type PublishSummary struct {
	ID        string  `json:"id"`
	StartS    float64 `json:"start_s"`
	EndS      float64 `json:"end_s,omitempty"`
	EndReason string  `json:"end_reason,omitempty"`
}

// ClockSummary is one estimated sender clock (see ParticipantClock).
type ClockSummary struct {
	Publishes []string `json:"publishes"`
	OffsetMS  float64  `json:"offset_ms"`
	AtS       float64  `json:"at_s"`
	DriftPPM  float64  `json:"drift_ppm"`
	Samples   int      `json:"samples"`
}

// LaneSummary is one lane: its files, holes, losses and sync quality.
type LaneSummary struct {
	ID          string           `json:"id"`
	Participant string           `json:"participant"`
	Kind        Kind             `json:"kind"`
	Codecs      []string         `json:"codecs"`
	Tracks      int              `json:"tracks"`
	Segments    []SegmentSummary `json:"segments"`
	// FirstS and LastS are the start of its first and the end of its last
	// media; MediaS the time covered.
	FirstS float64 `json:"first_s"`
	LastS  float64 `json:"last_s"`
	MediaS float64 `json:"media_s"`
	// Gaps are the holes of at least MinGap between FirstS and LastS.
	Gaps            []GapSummary `json:"gaps"`
	PacketsReceived int64        `json:"packets_received"`
	PacketsLost     int64        `json:"packets_lost"`
	Duplicates      int64        `json:"duplicates"`
	Late            int64        `json:"late"`
	// LossPercent is lost packets over expected ones (received, without
	// duplicates, plus lost).
	LossPercent   float64     `json:"loss_percent"`
	SenderReports int         `json:"sender_reports"`
	Sync          SyncSummary `json:"sync"`
	// Speaking are the spans its audio levels say someone spoke (audio).
	Speaking []SpanS `json:"speaking,omitempty"`
}

// SegmentSummary is one file.
type SegmentSummary struct {
	Track     string  `json:"track"`
	Index     int     `json:"index"`
	Path      string  `json:"path"`
	StartS    float64 `json:"start_s"`
	EndS      float64 `json:"end_s"`
	Frames    int64   `json:"frames"`
	Keyframes int64   `json:"keyframes,omitempty"`
	Packets   int64   `json:"packets"`
	Lost      int64   `json:"lost"`
	Bytes     int64   `json:"bytes"`
	Width     int     `json:"width,omitempty"`
	Height    int     `json:"height,omitempty"`
	Closed    bool    `json:"closed"`
}

// GapSummary is a hole in a lane; Reason is one of the Gap* constants.
type GapSummary struct {
	StartS float64 `json:"start_s"`
	EndS   float64 `json:"end_s"`
	Reason string  `json:"reason"`
}

// SyncSummary is Sync.LaneConfidence (see Confidence).
type SyncSummary struct {
	Grade            string  `json:"grade"`
	Reports          int     `json:"reports"`
	ReportResidualMS float64 `json:"report_residual_ms"`
	OffsetResidualMS float64 `json:"offset_residual_ms"`
	TrackFloorMS     float64 `json:"track_floor_ms"`
	ArrivalFallback  bool    `json:"arrival_fallback,omitempty"`
	FallbackFraction float64 `json:"fallback_fraction,omitempty"`
}

// SpanS is [StartS, EndS) in seconds.
type SpanS struct {
	StartS float64 `json:"start_s"`
	EndS   float64 `json:"end_s"`
}

// SpeakerSpan is who was the active speaker when.
type SpeakerSpan struct {
	StartS      float64 `json:"start_s"`
	EndS        float64 `json:"end_s"`
	Participant string  `json:"participant"`
}

// Thresholds of the summary's warnings.
const (
	warnLossPercent = 1.0
)

func secs(d time.Duration) float64 { return d.Seconds() }

// Summarize describes the recording m as placed by s.
func Summarize(m *Manifest, s *Sync) (*Summary, error) {
	if m == nil || s == nil {
		return nil, errors.New("timeline: summary: nil manifest or sync")
	}
	md, err := buildMedia(m, s)
	if err != nil {
		return nil, err
	}
	st, err := resolveEdits(m, nil)
	if err != nil {
		return nil, err
	}
	sum := &Summary{
		Room: m.Room, Session: m.Session, StartUnixNS: m.StartUnixNS, EndUnixNS: m.EndUnixNS, Recovered: m.Recovered,
		SessionStartUnixNS: md.start, DurationS: secs(md.end),
		Participants: []ParticipantSummary{}, Lanes: []LaneSummary{}, Speakers: []SpeakerSpan{}, Warnings: []string{},
	}
	warn := func(format string, args ...any) { sum.Warnings = append(sum.Warnings, fmt.Sprintf(format, args...)) }
	if m.Recovered {
		warn("the manifest was rebuilt after a crash: the last second or so of each open file may be missing")
	}
	clocks := s.Clocks()
	for _, p := range sortedParticipants(m) {
		ps := ParticipantSummary{ID: p.ID, Name: p.Name, Publishes: []PublishSummary{}, Clocks: []ClockSummary{}, Present: []SpanS{}}
		for _, pub := range p.Publishes {
			pb := PublishSummary{ID: pub.ID, StartS: float64(pub.StartUnixNS-md.start) / 1e9, EndReason: pub.EndReason}
			if pub.EndUnixNS > 0 {
				pb.EndS = float64(pub.EndUnixNS-md.start) / 1e9
			}
			ps.Publishes = append(ps.Publishes, pb)
		}
		for _, c := range clocks {
			if c.Participant == p.ID {
				ps.Clocks = append(ps.Clocks, ClockSummary{Publishes: c.Publishes, OffsetMS: c.OffsetMS,
					AtS: float64(c.AtUnixNS-md.start) / 1e9, DriftPPM: c.DriftPPM, Samples: c.Samples})
			}
		}
		for _, sp := range md.byPart[p.ID].presence {
			ps.Present = append(ps.Present, SpanS{secs(sp.from), secs(sp.to)})
		}
		sum.Participants = append(sum.Participants, ps)
	}
	for _, lm := range md.lanes {
		ls := laneSummary(md, lm, s)
		if ls.LossPercent >= warnLossPercent {
			warn("%s: %.1f%% of packets lost (%d of %d)", ls.ID, ls.LossPercent, ls.PacketsLost, ls.PacketsLost+ls.PacketsReceived-ls.Duplicates)
		}
		if ls.Sync.Grade != GradeGood && len(ls.Segments) > 0 {
			warn("%s: sync %s (%s)", ls.ID, ls.Sync.Grade, syncWhy(ls.Sync))
		}
		open := 0
		for _, sg := range ls.Segments {
			if !sg.Closed {
				open++
			}
		}
		if open > 0 {
			warn("%s: %d file(s) not closed by the recorder", ls.ID, open)
		}
		if len(ls.Segments) == 0 {
			warn("%s: no media recorded", ls.ID)
		}
		sum.Lanes = append(sum.Lanes, ls)
	}
	ch := md.speakers(st)
	for i, c := range ch {
		end := md.end
		if i+1 < len(ch) {
			end = ch[i+1].at
		}
		if c.participant != "" {
			sum.Speakers = append(sum.Speakers, SpeakerSpan{StartS: secs(c.at), EndS: secs(end), Participant: c.participant})
		}
	}
	return sum, nil
}

// syncWhy says in words why a lane's sync is not good.
func syncWhy(c SyncSummary) string {
	switch {
	case c.Reports == 0 && c.ArrivalFallback:
		return "no sender reports: placed from arrival times, not lip-synced"
	case c.TrackFloorMS > maxTrackFloorMS:
		return fmt.Sprintf("its reports disagree with the sender's other tracks by %.0f ms", c.TrackFloorMS)
	case c.ArrivalFallback:
		return fmt.Sprintf("%.0f%% placed from arrival times", 100*c.FallbackFraction)
	case c.ReportResidualMS > 1:
		return fmt.Sprintf("sender reports scatter by %.1f ms", c.ReportResidualMS)
	case c.OffsetResidualMS > 5:
		return fmt.Sprintf("arrival times scatter by %.1f ms", c.OffsetResidualMS)
	}
	return "short recording or few sender reports"
}

func laneSummary(md *media, lm *laneMedia, s *Sync) LaneSummary {
	l := lm.lane
	ls := LaneSummary{ID: l.ID, Participant: l.Participant, Kind: l.Kind, Codecs: []string{}, Tracks: len(l.Tracks),
		Segments: []SegmentSummary{}, Gaps: []GapSummary{}, MediaS: secs(lm.covered)}
	codecs := map[string]bool{}
	for _, t := range l.Tracks {
		if !codecs[t.Codec.Name] {
			codecs[t.Codec.Name] = true
			ls.Codecs = append(ls.Codecs, t.Codec.Name)
		}
		ls.PacketsReceived += t.PacketsReceived
		ls.PacketsLost += t.PacketsLost
		ls.Duplicates += t.Duplicates
		ls.Late += t.Late
		ls.SenderReports += len(t.SenderReports)
	}
	sort.Strings(ls.Codecs)
	if exp := ls.PacketsReceived - ls.Duplicates + ls.PacketsLost; exp > 0 {
		ls.LossPercent = 100 * float64(ls.PacketsLost) / float64(exp)
	}
	// Segment extents on the recording timeline: from their pieces.
	type key struct {
		t *Track
		s *Segment
	}
	ext := map[key][2]time.Duration{}
	var order []key
	for _, pc := range lm.pieces {
		k := key{pc.track, pc.seg}
		e, ok := ext[k]
		if !ok {
			order = append(order, k)
			e = [2]time.Duration{pc.from, pc.to}
		}
		e[0], e[1] = min(e[0], pc.from), max(e[1], pc.to)
		ext[k] = e
	}
	for _, k := range order {
		sg, e := k.s, ext[k]
		ls.Segments = append(ls.Segments, SegmentSummary{Track: k.t.ID, Index: sg.Index, Path: sg.Path, StartS: secs(e[0]), EndS: secs(e[1]),
			Frames: sg.Frames, Keyframes: sg.Keyframes, Packets: sg.Packets, Lost: sg.Lost, Bytes: sg.Bytes,
			Width: sg.Width, Height: sg.Height, Closed: sg.Closed})
	}
	if n := len(lm.pieces); n > 0 {
		ls.FirstS, ls.LastS = secs(lm.pieces[0].from), secs(lm.pieces[n-1].to)
	}
	for _, g := range lm.gaps {
		ls.Gaps = append(ls.Gaps, GapSummary{StartS: secs(g.from), EndS: secs(g.to), Reason: g.reason})
	}
	if c, ok := s.LaneConfidence(l.ID); ok {
		ls.Sync = SyncSummary{Grade: c.Grade, Reports: c.Reports, ReportResidualMS: c.ReportResidualMS, OffsetResidualMS: c.OffsetResidualMS,
			TrackFloorMS: c.TrackFloorMS, ArrivalFallback: c.ArrivalFallback, FallbackFraction: c.FallbackFraction}
	}
	if l.Kind == Audio {
		var spans []span
		for _, lv := range lm.levels {
			if activity(lv.level) > 0 {
				spans = append(spans, span{lv.from, lv.to})
			}
		}
		for _, sp := range mergeSpans(spans, time.Millisecond, 0, md.end) {
			ls.Speaking = append(ls.Speaking, SpanS{secs(sp.from), secs(sp.to)})
		}
	}
	return ls
}
