package timeline

import (
	"math"
	"testing"
	"time"
)

// speakerChanges returns the active speaker's changes in a plan, as
// (recording seconds, participant).
func speakerChanges(p *Plan) []speakerChange {
	var out []speakerChange
	for _, iv := range p.Intervals {
		if n := len(out); n == 0 || out[n-1].participant != iv.Speaker {
			out = append(out, speakerChange{at: iv.RecStart, participant: iv.Speaker})
		}
	}
	return out
}

func TestSpeakerHysteresis(t *testing.T) {
	const loud, silent = 10, 127
	on := func(spans ...[2]float64) func(float64) int {
		return func(sec float64) int {
			if inSpans(sec, spans) {
				return loud
			}
			return silent
		}
	}
	// 0–6 a talks, with a 0.5 s interjection from b at 3; 6–12 b talks;
	// 12–20 both talk over each other in half-second turns, a a little
	// louder; 20–21 a; 21–30 b.
	var aTurns, bTurns [][2]float64
	for s := 12.0; s < 20; s += 1 {
		aTurns = append(aTurns, [2]float64{s, s + 0.5})
		bTurns = append(bTurns, [2]float64{s + 0.5, s + 1})
	}
	loudA := on(append([][2]float64{{0, 6}, {20, 21}}, aTurns...)...)
	a := func(sec float64) int {
		if inSpans(sec, aTurns) {
			return loud // −10 dBov
		}
		return loudA(sec)
	}
	b := func(sec float64) int {
		if inSpans(sec, bTurns) {
			return 25 // −25 dBov: quieter than a
		}
		return on([2]float64{3, 3.5}, [2]float64{6, 12}, [2]float64{21, 30})(sec)
	}
	m := mkManifest(
		tp{id: "a", pubs: [][2]float64{{0, 30}}, level: a},
		tp{id: "b", pubs: [][2]float64{{0, 30}}, level: b},
		tp{id: "c", pubs: [][2]float64{{0, 30}}}, // never speaks
	)
	p := mustPlan(t, m, parseEdits(t, "layouts: [{type: speaker}]\n"), PlanOptions{})
	ch := speakerChanges(p)
	t.Logf("changes: %v", ch)
	if len(ch) == 0 || ch[0].participant != "a" || ch[0].at != 0 {
		t.Fatalf("first speaker %v, want a from 0", ch)
	}
	// b takes over once it talks for good: close to 6 s (the look-ahead
	// lets the switch anticipate), never for the interjection at 3 s.
	var toB []time.Duration
	for i, c := range ch {
		if i > 0 && c.at-ch[i-1].at < speakerHold {
			t.Errorf("switch to %s at %v only %v after the previous one (hold %v)", c.participant, c.at, c.at-ch[i-1].at, speakerHold)
		}
		if c.participant == "b" {
			toB = append(toB, c.at)
		}
		if c.participant == "c" {
			t.Errorf("c never speaks but became the speaker at %v", c.at)
		}
	}
	if len(toB) == 0 || toB[0] < 5500*time.Millisecond || toB[0] > 6500*time.Millisecond {
		t.Errorf("switches to b at %v, want the first within 0.5 s of 6 s", toB)
	}
	// Talking over each other, a slightly louder: b, who had the floor,
	// keeps it (until a's solo at 20 s comes into view).
	for _, c := range ch {
		if c.at > 12*time.Second && c.at < 18*time.Second {
			t.Errorf("switch to %s at %v while a and b talk over each other", c.participant, c.at)
		}
	}
	// a's single second at 20–21 is too short to win the floor back for long,
	// and b has it at the end.
	if last := ch[len(ch)-1]; last.participant != "b" {
		t.Errorf("last speaker %s, want b", last.participant)
	}
	// The speaker layout follows: the speaker's tile is the big one.
	for _, sec := range []float64{2, 9, 25} {
		iv := at(t, p, sec)
		if len(iv.Tiles) == 0 || iv.Tiles[0].Participant != iv.Speaker || iv.Tiles[0].Rect.W != 1280 {
			t.Errorf("at %vs speaker %s, first tile %+v", sec, iv.Speaker, iv.Tiles)
		}
	}
}

func TestSpeakerLeavesAndMute(t *testing.T) {
	talk := func(float64) int { return 20 }
	m := mkManifest(
		tp{id: "a", pubs: [][2]float64{{0, 5}}, level: talk},
		tp{id: "b", pubs: [][2]float64{{0, 10}}, level: func(s float64) int { return 45 }},
		tp{id: "c", pubs: [][2]float64{{0, 10}}},
	)
	// a speaks loudest until it leaves at 5 s: b (quieter, but speaking)
	// takes over at once, without waiting for the hold. With b muted from
	// 7 s, c (silent) is the speaker: the earliest joined who is left.
	p := mustPlan(t, m, parseEdits(t, "lanes: {b: {mute: [{start: 7, end: 10}]}}\n"), PlanOptions{})
	ch := speakerChanges(p)
	want := []speakerChange{{0, "a"}, {5 * time.Second, "b"}, {7 * time.Second, "c"}}
	if len(ch) != len(want) {
		t.Fatalf("changes %v, want %v", ch, want)
	}
	for i := range ch {
		if ch[i].participant != want[i].participant || math.Abs((ch[i].at-want[i].at).Seconds()) > 0.001 {
			t.Errorf("change %d = %v, want %v", i, ch[i], want[i])
		}
	}
}

func TestActivity(t *testing.T) {
	for _, c := range []struct {
		level int
		want  float64
	}{{0, 1}, {30, 0.5}, {59, 1.0 / 60}, {60, 0}, {127, 0}, {-5, 1}} {
		if got := activity(c.level); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("activity(%d) = %v, want %v", c.level, got, c.want)
		}
	}
}

// TestSpeakerHold: b talks for 1.5 s between a and c. b wins the floor,
// and c, who starts talking right after, gets it only once b has held it
// for speakerHold.
func TestSpeakerHold(t *testing.T) {
	talk := func(from, to float64) func(float64) int {
		return func(s float64) int {
			if s >= from && s < to {
				return 10
			}
			return 127
		}
	}
	m := mkManifest(
		tp{id: "a", pubs: [][2]float64{{0, 12}}, level: talk(0, 4)},
		tp{id: "b", pubs: [][2]float64{{0, 12}}, level: talk(4, 5.5)},
		tp{id: "c", pubs: [][2]float64{{0, 12}}, level: talk(5.5, 12)},
	)
	ch := speakerChanges(mustPlan(t, m, nil, PlanOptions{}))
	if len(ch) != 3 || ch[0].participant != "a" || ch[1].participant != "b" || ch[2].participant != "c" {
		t.Fatalf("changes %v, want a, b, c", ch)
	}
	if ch[1].at < 3500*time.Millisecond || ch[1].at > 4500*time.Millisecond {
		t.Errorf("b takes over at %v, want about 4 s", ch[1].at)
	}
	if got := ch[2].at - ch[1].at; got != speakerHold {
		t.Errorf("c takes over %v after b, want the hold, %v", got, speakerHold)
	}
}
