package interchange

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/tapedeck/tapedeck/timeline"
)

// randomProject builds a project from a seed: any frame rate the formats
// have, up to four participants with any mix of stems, kept ranges (some
// touching), gains and mutes, markers (some in cuts) and a reference of
// any length. Most are valid; some are not (a marker past the end, ...).
func randomProject(t testing.TB, seed uint64) *Project {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	rates := []timeline.Rational{{Num: 30, Den: 1}, {Num: 25, Den: 1}, {Num: 30000, Den: 1001}, {Num: 24000, Den: 1001},
		{Num: 60, Den: 1}, {Num: 24, Den: 1}, {Num: 60000, Den: 1001}, {Num: 50, Den: 2}}
	fps := rates[r.IntN(len(rates))]
	frames := 1 + r.Int64N(5000)
	p := &Project{Name: fmt.Sprintf("random-%d", seed), FPS: fps, Width: 1280, Height: 720, SampleRate: 48000, Frames: frames}
	for i := range 1 + r.IntN(4) {
		id := fmt.Sprintf("p%d", i)
		tr := Track{Participant: id, Name: strings.Repeat("<&\"'>", r.IntN(2)) + id}
		switch r.IntN(4) {
		case 0:
			tr.Video = videoStem(id+".mp4", frames, 640+2*r.IntN(2), 360, r.IntN(3))
		case 1:
			tr.Audio = audioStem(t, "a/"+id+" file.wav", frames, fps, 1+r.IntN(2))
		default:
			tr.Video = videoStem(id+".mp4", frames, 1280, 720, r.IntN(2))
			tr.Audio = audioStem(t, "a/"+id+" file.wav", frames, fps, 1+r.IntN(2))
		}
		if tr.Audio != nil || tr.Video.Audio {
			tr.Gains = randomGains(r, frames)
		}
		p.Tracks = append(p.Tracks, tr)
	}
	if n := r.IntN(5); n > 0 && frames > int64(2*n) {
		pts := map[int64]bool{}
		for len(pts) < 2*n {
			pts[r.Int64N(frames+1)] = true
		}
		var s []int64
		for x := range pts {
			s = append(s, x)
		}
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		for i := 0; i+1 < len(s); i += 2 {
			a := s[i]
			if i > 0 && r.IntN(4) == 0 {
				a = s[i-1] // touching the previous range
			}
			p.Edit = append(p.Edit, Range{Start: a, Frames: s[i+1] - a})
		}
	}
	kinds := []MarkerKind{MarkerJoin, MarkerLeave, MarkerRejoin, MarkerLoss, MarkerLayout}
	for range r.IntN(6) {
		f := r.Int64N(frames)
		m := Marker{Frame: f, Kind: kinds[r.IntN(len(kinds))], Name: fmt.Sprintf("m%d", f), Note: strings.Repeat("n", r.IntN(3))}
		if r.IntN(2) == 0 {
			m.Duration = r.Int64N(frames - f + 1)
		}
		p.Markers = append(p.Markers, m)
	}
	if r.IntN(2) == 0 {
		p.Reference = videoStem("renders/composite.mp4", 1+r.Int64N(2*p.OutputFrames()), 1280, 720, 2*r.IntN(2))
	}
	if r.IntN(20) == 0 {
		p.Markers = append(p.Markers, Marker{Frame: frames, Kind: MarkerJoin, Name: "past the end"})
	}
	return p
}

func randomGains(r *rand.Rand, frames int64) []Gain {
	var out []Gain
	pos := int64(0)
	for range r.IntN(4) {
		if pos >= frames {
			break
		}
		a := pos + r.Int64N(frames-pos)
		b := a + 1 + r.Int64N(frames-a)
		g := Gain{Range: Range{Start: a, Frames: b - a}}
		if r.IntN(3) == 0 {
			g.Mute = true
		} else {
			g.DB = float64(r.IntN(108)-96) + float64(r.IntN(4))/4
		}
		out = append(out, g)
		pos = b
	}
	return out
}

// checkAll writes p in every format, reads each back and checks its
// structure (and the FCPXML against the DTD's rules); an invalid project
// must be refused by every writer.
func checkAll(t *testing.T, p *Project) {
	t.Helper()
	if err := p.Validate(); err != nil {
		for _, w := range formats() {
			if werr := w.write(&strings.Builder{}, p); !errors.Is(werr, ErrInvalidProject) {
				t.Fatalf("%s: invalid project (%v) written: %v", w.ext, err, werr)
			}
		}
		return
	}
	for _, w := range formats() {
		out := write(t, w.write, p)
		pt, err := parsers()[w.ext](out, p)
		if err != nil {
			t.Fatalf("%s: read back: %v", w.ext, err)
		}
		if err := checkStructure(p, pt); err != nil {
			t.Fatalf("%s: %v", w.ext, err)
		}
		if w.ext == ".fcpxml" {
			if err := checkFCPXMLDTD(out); err != nil {
				t.Fatalf("fcpxml: %v", err)
			}
		}
	}
}

// TestRandomProjects runs the property check over a fixed set of seeds.
func TestRandomProjects(t *testing.T) {
	valid := 0
	for seed := range uint64(300) {
		p := randomProject(t, seed)
		if p.Validate() == nil {
			valid++
		}
		t.Run(fmt.Sprint(seed), func(t *testing.T) { checkAll(t, p) })
	}
	if valid < 200 {
		t.Errorf("only %d of 300 random projects are valid: the generator should make mostly valid ones", valid)
	}
}

// FuzzProject: for any generated project, every format reads back with
// clips inside their stems, covering exactly the kept ranges, audio and
// video cut at the same frames, on the frame grid, with relative paths.
func FuzzProject(f *testing.F) {
	for _, s := range []uint64{1, 7, 42, 1 << 40} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		checkAll(t, randomProject(t, seed))
	})
}
