package render

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// span is a range of output frames [From, To).
type span struct{ From, To int64 }

func (s span) frames() int64 { return s.To - s.From }

// duration is the output time the span covers at fps.
func (s span) duration(fps timeline.Rational) time.Duration {
	return time.Duration(float64(s.frames()) * float64(fps.Den) / float64(fps.Num) * float64(time.Second))
}

// clip returns s ∩ c and whether it is not empty.
func (s span) clip(c span) (span, bool) {
	r := span{max(s.From, c.From), min(s.To, c.To)}
	return r, r.To > r.From
}

// tileKey is what makes a tile look the same from one interval to the next:
// who, where and how it is drawn. A scene is a run of intervals with the same
// tile keys in the same order.
type tileKey struct {
	Participant, Lane string
	Rect              timeline.Rect
	Z                 int
	Fit, Name, Label  string
}

func keyOf(t *timeline.Tile) tileKey {
	return tileKey{Participant: t.Participant, Lane: t.Lane, Rect: t.Rect, Z: t.Z, Fit: t.Fit, Name: t.Name, Label: t.Label}
}

// piece is a stretch of one video file shown in a tile.
type piece struct {
	span
	// At is the output time at which Src.FileStart plays.
	At  time.Duration
	Src timeline.Source
}

// fileAt is the file time playing at output time t (seconds).
func (p *piece) fileAt(t float64) float64 {
	return p.Src.FileStart + (t-p.At.Seconds())*p.Src.Speed
}

// sceneTile is one tile of a scene: its video pieces and the frames where
// it shows a placeholder.
type sceneTile struct {
	tileKey
	Video   []piece
	Holders []span
}

// scene is a run of output frames during which the tiles stay in place.
type scene struct {
	span
	Tiles []sceneTile
}

// inputs is the number of FFmpeg inputs the scene reads.
func (s *scene) inputs() int {
	n := 0
	for _, t := range s.Tiles {
		n += len(t.Video)
	}
	return n
}

// clip returns the part of the scene within c.
func (s *scene) clip(c span) scene {
	out := scene{span: span{max(s.From, c.From), min(s.To, c.To)}}
	for _, t := range s.Tiles {
		nt := sceneTile{tileKey: t.tileKey}
		for _, p := range t.Video {
			if sp, ok := p.span.clip(c); ok {
				p.span = sp
				nt.Video = append(nt.Video, p)
			}
		}
		for _, h := range t.Holders {
			if sp, ok := h.clip(c); ok {
				nt.Holders = append(nt.Holders, sp)
			}
		}
		out.Tiles = append(out.Tiles, nt)
	}
	return out
}

// errShort is returned for a plan shorter than one frame.
var errShort = errors.New("the output is shorter than one frame")

// quantize returns the plan's intervals with every interval shorter than a
// frame merged into its predecessor (or, at the start, its successor), and
// the output's length in frames. A merged interval's time goes to its
// neighbour's tiles: their sources play on (a held frame at worst).
func quantize(p *timeline.Plan) ([]timeline.Interval, int64, error) {
	if p.FPS.Num <= 0 || p.FPS.Den <= 0 {
		return nil, 0, fmt.Errorf("frame rate %s", p.FPS)
	}
	total := frameAt(p.Duration, p.FPS)
	if total <= 0 {
		return nil, 0, errShort
	}
	fd := frameDuration(p.FPS)
	var out []timeline.Interval
	carry := time.Duration(-1)
	for i := range p.Intervals {
		iv := p.Intervals[i]
		if iv.End <= iv.Start {
			continue
		}
		if iv.End-iv.Start < fd {
			if n := len(out); n > 0 {
				out[n-1].End, out[n-1].RecEnd = iv.End, iv.RecEnd
			} else if carry < 0 {
				carry = iv.Start
			}
			continue
		}
		if carry >= 0 {
			iv = startEarlier(iv, carry)
			carry = -1
		}
		out = append(out, iv)
	}
	if len(out) == 0 && len(p.Intervals) > 0 {
		// Only short intervals: the last one stands for the whole output.
		out = append(out, startEarlier(p.Intervals[len(p.Intervals)-1], 0))
	}
	if len(out) == 0 {
		return nil, 0, errShort
	}
	return out, total, nil
}

// startEarlier moves an interval's start back to s, its sources with it.
func startEarlier(iv timeline.Interval, s time.Duration) timeline.Interval {
	d := (iv.Start - s).Seconds()
	iv.RecStart -= iv.Start - s
	iv.Start = s
	tiles := make([]timeline.Tile, len(iv.Tiles))
	for i, t := range iv.Tiles {
		if t.Source != nil {
			src := *t.Source
			src.FileStart -= d * src.Speed
			t.Source = &src
		}
		tiles[i] = t
	}
	iv.Tiles = tiles
	return iv
}

// continues reports whether src, starting at output time at, is the same
// file playing on from p.
func continues(p *piece, src *timeline.Source, at time.Duration) bool {
	return p.Src.Path == src.Path && p.Src.Segment == src.Segment && math.Abs(p.Src.Speed-src.Speed) < 1e-9 &&
		math.Abs(p.fileAt(at.Seconds())-src.FileStart) < 0.002
}

// buildScenes cuts the (quantized) intervals into scenes.
func buildScenes(ivs []timeline.Interval, total int64, fps timeline.Rational) []scene {
	var scenes []scene
	var keys []tileKey
	for i := range ivs {
		iv := &ivs[i]
		sp := span{frameAt(iv.Start, fps), frameAt(iv.End, fps)}
		if i == len(ivs)-1 {
			sp.To = total
		}
		if sp.To <= sp.From {
			continue
		}
		ks := make([]tileKey, len(iv.Tiles))
		for j := range iv.Tiles {
			ks[j] = keyOf(&iv.Tiles[j])
		}
		if len(scenes) == 0 || !slices.Equal(ks, keys) {
			sc := scene{span: sp, Tiles: make([]sceneTile, len(ks))}
			for j, k := range ks {
				sc.Tiles[j].tileKey = k
			}
			scenes = append(scenes, sc)
			keys = ks
		}
		sc := &scenes[len(scenes)-1]
		sc.To = sp.To
		for j := range iv.Tiles {
			t, st := &iv.Tiles[j], &sc.Tiles[j]
			if t.Source == nil {
				if n := len(st.Holders); n > 0 && st.Holders[n-1].To == sp.From {
					st.Holders[n-1].To = sp.To
				} else {
					st.Holders = append(st.Holders, sp)
				}
				continue
			}
			if n := len(st.Video); n > 0 && st.Video[n-1].To == sp.From && continues(&st.Video[n-1], t.Source, iv.Start) {
				last := &st.Video[n-1]
				last.To = sp.To
				if last.Src.Width != t.Source.Width || last.Src.Height != t.Source.Height {
					// The picture changes size on the way (a camera turned):
					// the piece has no single size.
					last.Src.Width, last.Src.Height = 0, 0
				}
				continue
			}
			st.Video = append(st.Video, piece{span: sp, At: iv.Start, Src: *t.Source})
		}
	}
	return scenes
}

// job is the work of one FFmpeg process: consecutive scenes (clipped).
type job struct {
	span
	Scenes []scene
}

// planJobs groups scenes into jobs of at most maxFrames frames and (unless a
// single scene needs more) maxInputs inputs, splitting long scenes. Jobs never
// cross a multiple of maxFrames (the window grid): where a job ends depends
// only on what comes before it in its window, so the windows of a call's
// beginning stay the same however the call goes on (reuse, see reuse.go).
func planJobs(scenes []scene, maxFrames int64, maxInputs int) []job {
	var jobs []job
	var cur job
	inputs := 0
	flush := func() {
		if len(cur.Scenes) > 0 {
			jobs = append(jobs, cur)
		}
		cur, inputs = job{}, 0
	}
	for i := range scenes {
		sc := &scenes[i]
		for at := sc.From; at < sc.To; {
			if len(cur.Scenes) > 0 && at%maxFrames == 0 {
				flush() // a grid line
				continue
			}
			room := (at/maxFrames+1)*maxFrames - at
			part := sc.clip(span{at, min(sc.To, at+room)})
			if len(cur.Scenes) > 0 && inputs+part.inputs() > maxInputs {
				flush()
				continue
			}
			if len(cur.Scenes) == 0 {
				cur.From = part.From
			}
			cur.To = part.To
			cur.Scenes = append(cur.Scenes, part)
			inputs += part.inputs()
			at = part.To
		}
	}
	flush()
	return jobs
}
