package timeline

import (
	"sort"
	"time"
)

// Active speaker
//
// The active speaker is decided from the RFC 6464 audio levels the
// recorder kept (Track.Levels: the loudest level per 250 ms window, in
// −dBov, 0 loudest and 127 silence). A window's activity is
// (quietLevel − level)/quietLevel, 0 at quietLevel −dBov and below. A
// participant's score at time t is the mean activity of its audio over
// [t − speakerLookBack, t + speakerLookAhead): the recording is complete, so
// the switch can anticipate speech rather than lag behind it, and the 3 s
// window evens out people talking over each other in short turns.
//
// Decisions are taken every speakerStep and whenever someone joins, leaves
// or is muted by the edits. The loudest candidate (present, not excluded,
// audio not all muted by the edits; ties go to the earliest joined) replaces
// the speaker
// only if its score is at least speakerMinScore, exceeds the speaker's by
// speakerMargin (hysteresis: two people talking at once do not make the
// picture flicker), and the speaker has held the floor for speakerHold.
// When the speaker leaves (or is muted or excluded), the loudest candidate
// takes over at once — or, when nobody speaks, the earliest joined
// participant.
const (
	speakerStep      = 250 * time.Millisecond
	speakerLookBack  = time.Second
	speakerLookAhead = 2 * time.Second
	speakerHold      = 2 * time.Second
	speakerMargin    = 0.15
	speakerMinScore  = 0.10
	quietLevel       = 60
)

// SpeakerLookAhead is how far past an instant the audio levels decide who
// the active speaker is then: a speaker layout of a call being recorded is
// final that much behind its audio.
const SpeakerLookAhead = speakerLookAhead

// speakerChange: from at on, the active speaker is participant ("": none).
type speakerChange struct {
	at          time.Duration
	participant string
}

// activity is the speech activity of a level, 0..1.
func activity(level int) float64 {
	if level >= quietLevel {
		return 0
	}
	return float64(quietLevel-max(level, 0)) / quietLevel
}

// score is the mean activity of a lane over [a, b).
func (lm *laneMedia) score(a, b time.Duration) float64 {
	lv := lm.levels
	i := sort.Search(len(lv), func(i int) bool { return lv[i].to > a })
	var sum float64
	for ; i < len(lv) && lv[i].from < b; i++ {
		if act := activity(lv[i].level); act > 0 {
			sum += act * float64(min(lv[i].to, b)-max(lv[i].from, a))
		}
	}
	return sum / float64(b-a)
}

// speakers computes the active speaker over the recording.
func (md *media) speakers(st *editState) []speakerChange {
	instants := map[time.Duration]bool{}
	for t := time.Duration(0); t < md.end; t += speakerStep {
		instants[t] = true
	}
	for _, pm := range md.parts {
		for _, s := range pm.presence {
			instants[s.from], instants[s.to] = true, true
		}
	}
	for _, t := range st.toggleBounds() {
		instants[t] = true
	}
	var ts []time.Duration
	for t := range instants {
		if t >= 0 && t < md.end {
			ts = append(ts, t)
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })

	var out []speakerChange
	cur := ""
	var since time.Duration
	scores := map[string]float64{}
	for _, t := range ts {
		// Candidates: present, not excluded, not muted by the edits (unless
		// everyone is), in join order.
		var eligible, unmuted []*partMedia
		for _, pm := range md.parts {
			if st.excluded[pm.p.ID] || !pm.present(t) {
				continue
			}
			eligible = append(eligible, pm)
			muted := len(pm.audio) > 0
			for _, lm := range pm.audio {
				muted = muted && st.muted(pm.p.ID, lm.lane.ID, t)
			}
			if !muted {
				unmuted = append(unmuted, pm)
			}
		}
		if len(unmuted) > 0 {
			eligible = unmuted
		}
		best, bestScore := "", -1.0
		curOK := false
		clear(scores)
		for _, pm := range eligible {
			sc := 0.0
			for _, lm := range pm.audio {
				if !st.muted(pm.p.ID, lm.lane.ID, t) {
					sc = max(sc, lm.score(t-speakerLookBack, t+speakerLookAhead))
				}
			}
			scores[pm.p.ID] = sc
			if sc > bestScore {
				best, bestScore = pm.p.ID, sc
			}
			curOK = curOK || pm.p.ID == cur
		}
		next := cur
		switch {
		case len(eligible) == 0:
			next = ""
		case !curOK:
			next = best
			if bestScore < speakerMinScore {
				next = eligible[0].p.ID
			}
		case best != cur && bestScore >= speakerMinScore && bestScore >= scores[cur]+speakerMargin && t-since >= speakerHold:
			next = best
		}
		if next != cur || len(out) == 0 {
			out = append(out, speakerChange{at: t, participant: next})
			cur, since = next, t
		}
	}
	return out
}

// speakerAt returns the active speaker at t.
func speakerAt(ch []speakerChange, t time.Duration) string {
	i := sort.Search(len(ch), func(i int) bool { return ch[i].at > t }) - 1
	if i < 0 {
		return ""
	}
	return ch[i].participant
}
