package timeline

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// This file places every segment of every lane on the recording timeline
// (0 = Sync.SessionStart), the common ground of the plan and the summary.

// MinGap is the shortest hole in a lane that counts as a gap. Shorter holes
// (the moment between two files, an SSRC change) are bridged: the plan
// holds the last video frame (or plays silence) over them, so that a tile
// does not flash a placeholder for a frame or two; the summary does not
// list them.
const MinGap = 200 * time.Millisecond

// Gap reasons.
const (
	GapPause  = "pause" // no packets for over a second inside a file (muted camera, network loss)
	GapFiles  = "between files"
	GapStream = "new stream" // a new SSRC within one publish
	GapRejoin = "rejoin"     // the participant dropped and published again
)

// Defaults where a segment says nothing of its frame rate.
const (
	defaultAudioFrame = 20 * time.Millisecond
	defaultVideoFrame = time.Second / 30
	maxFrame          = 500 * time.Millisecond
	defaultLevelWin   = 250 * time.Millisecond // capture's level window
)

// piece is a stretch of one segment holding media, on the recording
// timeline.
type piece struct {
	track         *Track
	seg           *Segment
	from, to      time.Duration
	width, height int
}

// gap is a hole in a lane.
type gap struct {
	from, to time.Duration
	reason   string
}

// levelSpan is one audio level window on the recording timeline.
type levelSpan struct {
	from, to time.Duration
	level    int
}

// span is [from, to) of recording time.
type span struct{ from, to time.Duration }

type laneMedia struct {
	lane    *Lane
	pieces  []piece // sorted, disjoint; holes under MinGap bridged
	covered time.Duration
	gaps    []gap
	levels  []levelSpan // audio
}

type partMedia struct {
	p        *Participant
	join     time.Duration // start of the first presence; -1 when never present
	presence []span
	video    []*laneMedia // sorted by lane ID
	audio    []*laneMedia
}

type media struct {
	m      *Manifest
	s      *Sync
	start  int64         // Unix ns of recording time 0
	end    time.Duration // end of the last media
	lanes  []*laneMedia  // sorted by lane ID
	parts  []*partMedia  // in join order, then ID
	byPart map[string]*partMedia
}

func sortedParticipants(m *Manifest) []*Participant {
	out := make([]*Participant, len(m.Participants))
	for i := range m.Participants {
		out[i] = &m.Participants[i]
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func sortedLanes(m *Manifest) []*Lane {
	out := make([]*Lane, len(m.Lanes))
	for i := range m.Lanes {
		out[i] = &m.Lanes[i]
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// buildMedia places the manifest's media on the recording timeline.
func buildMedia(m *Manifest, s *Sync) (*media, error) {
	if m == nil || s == nil {
		return nil, errors.New("timeline: plan: nil manifest or sync")
	}
	md := &media{m: m, s: s, start: s.SessionStart(), byPart: map[string]*partMedia{}}
	for _, l := range sortedLanes(m) {
		lm, err := md.lane(l)
		if err != nil {
			return nil, err
		}
		md.lanes = append(md.lanes, lm)
		if n := len(lm.pieces); n > 0 {
			md.end = max(md.end, lm.pieces[n-1].to)
		}
	}
	if md.end == 0 {
		if d, ok := sub(m.EndUnixNS, md.start); ok && m.EndUnixNS > 0 && d > 0 {
			md.end = time.Duration(d)
		}
	}
	for _, p := range sortedParticipants(m) {
		pm := &partMedia{p: p, join: -1}
		for _, lm := range md.lanes {
			if lm.lane.Participant != p.ID {
				continue
			}
			if lm.lane.Kind == Video {
				pm.video = append(pm.video, lm)
			} else {
				pm.audio = append(pm.audio, lm)
			}
		}
		md.presence(pm)
		md.byPart[p.ID] = pm
		md.parts = append(md.parts, pm)
	}
	sort.SliceStable(md.parts, func(i, j int) bool {
		a, b := md.parts[i], md.parts[j]
		if (a.join < 0) != (b.join < 0) {
			return a.join >= 0
		}
		if a.join != b.join {
			return a.join < b.join
		}
		return a.p.ID < b.p.ID
	})
	return md, nil
}

// rec returns the recording time of a track's RTP time.
func (md *media) rec(t *Track, rtp int64) (time.Duration, error) {
	v, err := md.s.RecorderTime(t.ID, rtp)
	if err != nil {
		return 0, fmt.Errorf("timeline: plan track %s: %w", t.ID, err)
	}
	d, ok := sub(v, md.start)
	if !ok || d > maxAbsNS || d < -maxAbsNS {
		return 0, fmt.Errorf("timeline: plan track %s: rtp %d: %w", t.ID, rtp, ErrOutOfRange)
	}
	return time.Duration(d), nil
}

// frameTicks is the segment's frame duration in RTP ticks: its mean frame
// interval (not counting the pauses inside it), or the medium's usual one.
// An audio packet is one frame, so its lost packets are frames missing from
// the count (a 5-s segment that lost 8 of 250 ran 0.65 ms past its file's
// last sample); a video frame spans an unknown number of packets.
func frameTicks(l *Lane, t *Track, sg *Segment, holes [][2]int64) int64 {
	rate := int64(t.Codec.ClockRate)
	def := int64(defaultVideoFrame) * rate / int64(time.Second)
	if l.Kind == Audio {
		def = int64(defaultAudioFrame) * rate / int64(time.Second)
	}
	f := def
	span, intervals := sg.LastRTP-sg.FirstRTP, sg.Frames-1
	if l.Kind == Audio {
		intervals += sg.Lost
	}
	for _, h := range holes {
		if h[0] >= sg.FirstRTP && h[1] <= sg.LastRTP {
			span -= h[1] - h[0]
			intervals--
		}
	}
	if intervals > 0 && span > 0 {
		f = span / intervals
	}
	return max(1, min(f, int64(maxFrame)*rate/int64(time.Second)))
}

// lane places one lane's pieces, gaps and levels.
func (md *media) lane(l *Lane) (*laneMedia, error) {
	lm := &laneMedia{lane: l}
	var all []piece
	for ti := range l.Tracks {
		t := &l.Tracks[ti]
		// Holes: from the frame after a pause to the resume that follows it
		// (RTP ticks). Resolution changes split pieces.
		var pauses, resumes []int64
		var res []Event
		for _, ev := range t.Events {
			switch ev.Kind {
			case EventPause:
				pauses = append(pauses, ev.RTP)
			case EventResume:
				resumes = append(resumes, ev.RTP)
			case EventResolution:
				if ev.Width > 0 && ev.Height > 0 {
					res = append(res, ev)
				}
			}
		}
		sort.Slice(pauses, func(i, j int) bool { return pauses[i] < pauses[j] })
		sort.Slice(resumes, func(i, j int) bool { return resumes[i] < resumes[j] })
		sort.SliceStable(res, func(i, j int) bool { return res[i].RTP < res[j].RTP })
		var holes [][2]int64 // [last packet before the pause, resume)
		for _, r := range resumes {
			if k := sort.Search(len(pauses), func(i int) bool { return pauses[i] >= r }) - 1; k >= 0 {
				holes = append(holes, [2]int64{pauses[k], r})
			}
		}
		for si := range t.Segments {
			sg := &t.Segments[si]
			frame := frameTicks(l, t, sg, holes)
			ranges := [][2]int64{{sg.FirstRTP, sg.LastRTP + frame}}
			for _, h := range holes {
				ranges = cutRange(ranges, h[0]+frame, h[1])
			}
			for _, r := range ranges {
				cuts := []int64{r[0]}
				dims := [][2]int{{sg.Width, sg.Height}}
				for _, ev := range res {
					switch {
					case ev.RTP < sg.FirstRTP || ev.RTP >= r[1]:
					case ev.RTP <= r[0]:
						dims[0] = [2]int{ev.Width, ev.Height}
					default:
						cuts = append(cuts, ev.RTP)
						dims = append(dims, [2]int{ev.Width, ev.Height})
					}
				}
				cuts = append(cuts, r[1])
				for k := 0; k+1 < len(cuts); k++ {
					from, err := md.rec(t, cuts[k])
					if err != nil {
						return nil, err
					}
					to, err := md.rec(t, cuts[k+1])
					if err != nil {
						return nil, err
					}
					if to > from {
						all = append(all, piece{track: t, seg: sg, from: from, to: to, width: dims[k][0], height: dims[k][1]})
					}
				}
			}
		}
		if l.Kind == Audio {
			if err := md.levels(lm, t); err != nil {
				return nil, err
			}
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].from < all[j].from })
	for i := range all {
		cur := all[i]
		lm.covered += cur.to - cur.from
		if n := len(lm.pieces); n > 0 {
			prev := &lm.pieces[n-1]
			if prev.to > cur.from { // overlap: the later piece wins from its start
				lm.covered -= min(prev.to, cur.to) - cur.from
				prev.to = cur.from
			}
			if d := cur.from - prev.to; d >= MinGap {
				reason := GapRejoin
				switch {
				case prev.track == cur.track && prev.seg == cur.seg:
					reason = GapPause
				case prev.track == cur.track:
					reason = GapFiles
				case prev.track.Publish == cur.track.Publish:
					reason = GapStream
				}
				lm.gaps = append(lm.gaps, gap{from: prev.to, to: cur.from, reason: reason})
			} else {
				prev.to = cur.from // bridge
			}
			if prev.to <= prev.from {
				lm.pieces = lm.pieces[:n-1]
			}
		}
		if cur.to > cur.from {
			lm.pieces = append(lm.pieces, cur)
		}
	}
	sort.SliceStable(lm.levels, func(i, j int) bool { return lm.levels[i].from < lm.levels[j].from })
	return lm, nil
}

// cutRange removes [a, b) from the ranges.
func cutRange(rs [][2]int64, a, b int64) [][2]int64 {
	if b <= a {
		return rs
	}
	var out [][2]int64
	for _, r := range rs {
		if b <= r[0] || a >= r[1] {
			out = append(out, r)
			continue
		}
		if a > r[0] {
			out = append(out, [2]int64{r[0], a})
		}
		if b < r[1] {
			out = append(out, [2]int64{b, r[1]})
		}
	}
	return out
}

// levels places a track's audio levels. A level window lasts the smallest
// spacing between two of its samples (capture's window, 250 ms), cut short
// by the next sample.
func (md *media) levels(lm *laneMedia, t *Track) error {
	if len(t.Levels) == 0 {
		return nil
	}
	lv := append([]AudioLevel(nil), t.Levels...)
	sort.SliceStable(lv, func(i, j int) bool { return lv[i].RTP < lv[j].RTP })
	rate := int64(t.Codec.ClockRate)
	win := int64(defaultLevelWin) * rate / int64(time.Second)
	best := int64(0)
	for i := 1; i < len(lv); i++ {
		if d := lv[i].RTP - lv[i-1].RTP; d > 0 && (best == 0 || d < best) {
			best = d
		}
	}
	if best > 0 {
		win = max(rate/100, min(best, rate)) // 10 ms to 1 s
	}
	for i, l := range lv {
		end := l.RTP + win
		if i+1 < len(lv) && lv[i+1].RTP < end {
			end = lv[i+1].RTP
		}
		if end <= l.RTP {
			continue
		}
		from, err := md.rec(t, l.RTP)
		if err != nil {
			return err
		}
		to, err := md.rec(t, end)
		if err != nil {
			return err
		}
		lm.levels = append(lm.levels, levelSpan{from: from, to: to, level: l.Level})
	}
	return nil
}

// presence computes when the participant is in the call: while a publish
// is active or any of its lanes has media, holes under MinGap closed,
// within [0, end).
func (md *media) presence(pm *partMedia) {
	var spans []span
	for _, pub := range pm.p.Publishes {
		from, ok1 := sub(pub.StartUnixNS, md.start)
		endNS := pub.EndUnixNS
		if endNS == 0 {
			endNS = md.m.EndUnixNS
		}
		to, ok2 := sub(endNS, md.start)
		if pub.StartUnixNS > 0 && endNS > 0 && ok1 && ok2 {
			spans = append(spans, span{time.Duration(max(from, 0)), time.Duration(min(to, int64(md.end)))})
		}
	}
	for _, lm := range append(append([]*laneMedia(nil), pm.video...), pm.audio...) {
		for _, pc := range lm.pieces {
			spans = append(spans, span{pc.from, pc.to})
		}
	}
	pm.presence = mergeSpans(spans, MinGap, 0, md.end)
	if len(pm.presence) > 0 {
		pm.join = pm.presence[0].from
	}
}

// mergeSpans sorts spans, clips them to [lo, hi) and merges those closer
// than bridge.
func mergeSpans(spans []span, bridge, lo, hi time.Duration) []span {
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].from < spans[j].from })
	var out []span
	for _, s := range spans {
		s.from, s.to = max(s.from, lo), min(s.to, hi)
		if s.to <= s.from {
			continue
		}
		if n := len(out); n > 0 && s.from-out[n-1].to < bridge {
			out[n-1].to = max(out[n-1].to, s.to)
			continue
		}
		out = append(out, s)
	}
	return out
}

// spanAt returns the index of the span containing t, or -1.
func spanAt(spans []span, t time.Duration) int {
	i := sort.Search(len(spans), func(i int) bool { return spans[i].to > t })
	if i < len(spans) && spans[i].from <= t {
		return i
	}
	return -1
}

// at returns the piece covering t, or nil.
func (lm *laneMedia) at(t time.Duration) *piece {
	i := sort.Search(len(lm.pieces), func(i int) bool { return lm.pieces[i].to > t })
	if i < len(lm.pieces) && lm.pieces[i].from <= t {
		return &lm.pieces[i]
	}
	return nil
}

// present reports whether the participant is in the call at t.
func (pm *partMedia) present(t time.Duration) bool { return spanAt(pm.presence, t) >= 0 }

// videoAt says what a video lane (nil: none) of a present participant shows
// at t: a piece, or why not (absent or lost).
func (pm *partMedia) videoAt(lm *laneMedia, t time.Duration) (*piece, Placeholder) {
	if lm == nil {
		return nil, PlaceholderAbsent
	}
	if pc := lm.at(t); pc != nil {
		return pc, ""
	}
	run := spanAt(pm.presence, t)
	if run < 0 {
		return nil, PlaceholderAbsent
	}
	ra, rb := pm.presence[run].from, pm.presence[run].to
	// Lost: the lane had video earlier in this presence and has video
	// again later in it.
	i := sort.Search(len(lm.pieces), func(i int) bool { return lm.pieces[i].to > t })
	before := i > 0 && lm.pieces[i-1].to > ra
	after := i < len(lm.pieces) && lm.pieces[i].from < rb
	if before && after {
		return nil, PlaceholderLost
	}
	return nil, PlaceholderAbsent
}
