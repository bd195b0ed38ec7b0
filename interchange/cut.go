package interchange

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// Cut is what a plan built with edits asks of the timelines: the kept
// ranges of the session (Project.Edit) and each participant's gains
// (Track.Gains), on the frame grid.
type Cut struct {
	// Kept are the kept ranges, in output order.
	Kept []Range
	// Gains maps a participant ID to its gains (participants without any
	// are absent).
	Gains map[string][]Gain
	// Notes say what the timelines cannot carry exactly (a gain clamped to
	// MaxGainDB, a lane-level edit on a participant with several audio
	// lanes), one line each, for the command's summary.
	Notes []string
}

// CutFromPlan returns the kept ranges of plan and the gains of e (resolved
// against m), in frames of fps for a session of frames frames. See
// KeptRanges and GainsFromEdits.
func CutFromPlan(m *timeline.Manifest, e *timeline.Edits, plan *timeline.Plan, fps timeline.Rational, frames int64) (*Cut, error) {
	kept, err := KeptRanges(plan, fps, frames)
	if err != nil {
		return nil, err
	}
	gains, notes, err := GainsFromEdits(m, e, fps, frames)
	if err != nil {
		return nil, err
	}
	return &Cut{Kept: kept, Gains: gains, Notes: notes}, nil
}

// KeptRanges returns the ranges of the recording a plan keeps, in output
// order, in frames of fps, clipped to the session's frames. The plan's
// intervals carry their recording time (RecStart, RecEnd); consecutive
// intervals that continue each other in recording time are one kept range,
// and a cut is where the next interval's RecStart differs from the
// previous one's RecEnd. Each bound becomes a frame by FrameAt (nearest,
// ties to the earlier frame), so audio and video are cut at the same
// frames; a kept range shorter than half a frame disappears, and a cut
// shorter than half a frame closes (the ranges on both sides join).
func KeptRanges(plan *timeline.Plan, fps timeline.Rational, frames int64) ([]Range, error) {
	if plan == nil {
		return nil, errors.New("interchange: kept ranges: nil plan")
	}
	if _, err := newRate(fps); err != nil {
		return nil, fmt.Errorf("interchange: kept ranges: %w", err)
	}
	if frames <= 0 {
		return nil, fmt.Errorf("interchange: kept ranges: session of %d frames", frames)
	}
	type span struct{ a, b int64 } // recording ns
	var spans []span
	for i, iv := range plan.Intervals {
		if iv.RecEnd < iv.RecStart {
			return nil, fmt.Errorf("interchange: kept ranges: interval %d ends (%s) before it starts (%s)", i, iv.RecEnd, iv.RecStart)
		}
		if n := len(spans); n > 0 {
			if int64(iv.RecStart) < spans[n-1].b {
				return nil, fmt.Errorf("interchange: kept ranges: interval %d starts at %s, before the previous one ends (%s): the plan goes back in the recording",
					i, iv.RecStart, timeOf(spans[n-1].b))
			}
			if int64(iv.RecStart) == spans[n-1].b {
				spans[n-1].b = int64(iv.RecEnd)
				continue
			}
		}
		spans = append(spans, span{int64(iv.RecStart), int64(iv.RecEnd)})
	}
	var out []Range
	for _, s := range spans {
		a := min(FrameAt(timeOf(s.a), fps), frames)
		b := min(FrameAt(timeOf(s.b), fps), frames)
		if n := len(out); n > 0 && a <= out[n-1].End() {
			a = out[n-1].End()
			if b > a {
				out[n-1].Frames += b - a
			}
			continue
		}
		if b > a {
			out = append(out, Range{Start: a, Frames: b - a})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("interchange: kept ranges: the plan keeps no whole frame of the recording")
	}
	return out, nil
}

// GainsFromEdits returns each participant's gains from the edits' mutes,
// gains and excludes, resolved against m the way the renderer resolves
// them: a lane's own gain or mute where set, else its participant's; the
// last entry for a reference wins; an excluded participant is muted
// throughout. Mute ranges are recording time (session time), turned into
// frames by FrameAt. A gain above MaxGainDB is clamped to it, one at or
// below MinGainDB becomes a mute (each with a note). A lane-level gain or
// mute applies to the participant's audio stem only when the participant
// has one audio lane (the stem is their only audio); otherwise it is left
// out, with a note.
//
// The gains come from the edits, not from the plan's AudioSource, because
// the plan leaves a muted lane out of an interval's audio just as it leaves
// out a lane with no media there: from the plan alone a mute cannot be told
// from a hole, and a gain only exists where someone spoke.
func GainsFromEdits(m *timeline.Manifest, e *timeline.Edits, fps timeline.Rational, frames int64) (map[string][]Gain, []string, error) {
	out := map[string][]Gain{}
	if e == nil {
		return out, nil, nil
	}
	if m == nil {
		return nil, nil, errors.New("interchange: gains: nil manifest")
	}
	if _, err := newRate(fps); err != nil {
		return nil, nil, fmt.Errorf("interchange: gains: %w", err)
	}
	if err := e.Validate(m); err != nil {
		return nil, nil, fmt.Errorf("interchange: gains: %w", err)
	}
	audioLanes := map[string][]string{} // participant → audio lane IDs
	laneOwner := map[string]string{}
	for _, l := range m.Lanes {
		laneOwner[l.ID] = l.Participant
		if l.Kind == timeline.Audio {
			audioLanes[l.Participant] = append(audioLanes[l.Participant], l.ID)
		}
	}
	type state struct {
		gain, laneGain float64
		hasLaneGain    bool
		mute, laneMute timeline.Toggle
		excluded       bool
	}
	st := map[string]*state{}
	get := func(id string) *state {
		if st[id] == nil {
			st[id] = &state{}
		}
		return st[id]
	}
	var notes []string
	for _, le := range e.Lanes {
		if owner, ok := laneOwner[le.Ref]; ok {
			l, _ := m.Lane(le.Ref)
			if l.Kind != timeline.Audio {
				continue // hide: video, not carried
			}
			if len(audioLanes[owner]) != 1 {
				if le.GainDB != 0 || le.Mute.Always || len(le.Mute.Ranges) > 0 {
					notes = append(notes, fmt.Sprintf("%s: the gain or mute of this lane is not on the timelines: %s's audio stem mixes %d lanes",
						le.Ref, owner, len(audioLanes[owner])))
				}
				continue
			}
			s := get(owner)
			s.laneMute = le.Mute
			if le.GainDB != 0 {
				s.laneGain, s.hasLaneGain = le.GainDB, true
			}
			continue
		}
		s := get(le.Ref)
		s.gain, s.mute, s.excluded = le.GainDB, le.Mute, le.Exclude
	}
	ids := make([]string, 0, len(st))
	for id := range st {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		s := st[id]
		if len(audioLanes[id]) == 0 {
			continue // no audio: nothing to mute
		}
		g := s.gain
		if s.hasLaneGain {
			g = s.laneGain
		}
		var muted []Range // session frames, merged
		all := Range{Start: 0, Frames: frames}
		if s.excluded || s.mute.Always || s.laneMute.Always {
			muted = []Range{all}
		}
		if g > MaxGainDB {
			notes = append(notes, fmt.Sprintf("%s: gain %+g dB clamped to %+g dB, the most FCPXML and FCP7 XML hold", id, g, MaxGainDB))
			g = MaxGainDB
		}
		if g <= MinGainDB {
			notes = append(notes, fmt.Sprintf("%s: gain %g dB written as a mute (the formats stop at %g dB)", id, g, MinGainDB))
			g, muted = 0, []Range{all}
		}
		for _, r := range append(append([]timeline.Range(nil), s.mute.Ranges...), s.laneMute.Ranges...) {
			a, b := min(FrameAt(r.Start, fps), frames), min(FrameAt(r.End, fps), frames)
			if b > a {
				muted = append(muted, Range{Start: a, Frames: b - a})
			}
		}
		muted = mergeRanges(muted)
		var gains []Gain
		pos := int64(0)
		for _, mr := range muted {
			if g != 0 && mr.Start > pos {
				gains = append(gains, Gain{Range: Range{Start: pos, Frames: mr.Start - pos}, DB: g})
			}
			gains = append(gains, Gain{Range: mr, DB: g, Mute: true})
			pos = mr.End()
		}
		if g != 0 && pos < frames {
			gains = append(gains, Gain{Range: Range{Start: pos, Frames: frames - pos}, DB: g})
		}
		if len(gains) > 0 {
			out[id] = gains
		}
	}
	return out, notes, nil
}

// timeOf converts nanoseconds to a duration.
func timeOf(ns int64) time.Duration { return time.Duration(ns) }

// mergeRanges sorts ranges and merges those that overlap or touch.
func mergeRanges(rs []Range) []Range {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Start < rs[j].Start })
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 && r.Start <= out[n-1].End() {
			if r.End() > out[n-1].End() {
				out[n-1].Frames = r.End() - out[n-1].Start
			}
			continue
		}
		out = append(out, r)
	}
	return out
}
