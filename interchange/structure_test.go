package interchange

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
)

// parsers read each format back (parse_test.go).
func parsers() map[string]func([]byte, *Project) (*parsedTimeline, error) {
	return map[string]func([]byte, *Project) (*parsedTimeline, error){
		".otio":   func(b []byte, p *Project) (*parsedTimeline, error) { return parseOTIO(b, p.FPS) },
		".fcpxml": parseFCPXML,
		".xml":    parseXMEML,
	}
}

// TestStructure reads every format of every fixture back and checks what
// an editor relies on (see checkStructure).
func TestStructure(t *testing.T) {
	for _, fx := range fixtures(t) {
		for _, w := range formats() {
			t.Run(fx.name+w.ext, func(t *testing.T) {
				pt, err := parsers()[w.ext](write(t, w.write, fx.p), fx.p)
				if err != nil {
					t.Fatalf("read back: %v", err)
				}
				if err := checkStructure(fx.p, pt); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

// expectedTrack is a track the writers promise for p.
type expectedTrack struct {
	kind, who string
	stem      *Stem
	gains     []Gain
}

func expectedTracks(p *Project) []expectedTrack {
	var v, a []expectedTrack
	for _, t := range p.Tracks {
		if t.Video != nil {
			v = append(v, expectedTrack{"video", t.Participant, t.Video, nil})
		}
		switch {
		case t.Audio != nil:
			a = append(a, expectedTrack{"audio", t.Participant, t.Audio, t.Gains})
		case t.Video != nil && t.Video.Audio:
			a = append(a, expectedTrack{"audio", t.Participant, t.Video, t.Gains})
		}
	}
	if r := p.Reference; r != nil {
		v = append(v, expectedTrack{"video", "reference", r, nil})
		if r.Audio {
			a = append(a, expectedTrack{"audio", "reference", r, nil})
		}
	}
	return append(v, a...)
}

// checkStructure checks a timeline read back against its project:
//   - the tracks are the expected ones (kind, participant, order);
//   - every clip's path is relative and is its stem's path, and the file
//     is declared as long as the stem; every clip's source range lies
//     inside its stem;
//   - each track's clips follow each other from output frame 0 without
//     gaps or overlaps, and the timeline is as long as the sum of the kept
//     ranges;
//   - the clips of a participant's track, joined where they continue each
//     other in the stem, are exactly the kept ranges;
//   - audio and video are split at the same frames: every video split is
//     an audio split, and the audio's other splits are gain bounds;
//   - every audio clip carries the gain in force over all of it (mute:
//     disabled), and the gain does not change inside a clip;
//   - the markers are the placed ones, inside the timeline.
//
// Times on the frame grid are checked by the parsers (a value off the grid
// does not read).
func checkStructure(p *Project, pt *parsedTimeline) error {
	out := p.OutputFrames()
	if pt.length != out {
		return fmt.Errorf("timeline length %d frames, want the kept ranges' %d", pt.length, out)
	}
	want := expectedTracks(p)
	if len(pt.tracks) != len(want) {
		return fmt.Errorf("%d tracks, want %d", len(pt.tracks), len(want))
	}
	splits := map[string]map[string][]int64{} // participant → kind → output split frames
	for i, tr := range pt.tracks {
		e := want[i]
		if tr.kind != e.kind || tr.who != e.who {
			return fmt.Errorf("track %d is %s of %q, want %s of %q", i, tr.kind, tr.who, e.kind, e.who)
		}
		name := fmt.Sprintf("%s track of %s", tr.kind, tr.who)
		if len(tr.clips) == 0 {
			return fmt.Errorf("%s: no clips", name)
		}
		if got, want := pt.stems[e.stem.Path], e.stem.Frames; got != want {
			return fmt.Errorf("%s: file %q declared %d frames long, the stem has %d", name, e.stem.Path, got, want)
		}
		sort.Slice(tr.clips, func(a, b int) bool { return tr.clips[a].out < tr.clips[b].out })
		var pos int64
		var joined []Range
		var sp []int64
		for _, c := range tr.clips {
			if c.path != e.stem.Path {
				return fmt.Errorf("%s: clip of %q, want %q", name, c.path, e.stem.Path)
			}
			if err := checkPath(c.path); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if c.frames <= 0 || c.src < 0 || c.src+c.frames > e.stem.Frames {
				return fmt.Errorf("%s: clip plays frames %d+%d of %q, which has %d", name, c.src, c.frames, c.path, e.stem.Frames)
			}
			if c.out != pos {
				return fmt.Errorf("%s: clip at output frame %d, want %d (the previous clip's end)", name, c.out, pos)
			}
			if pos > 0 {
				sp = append(sp, pos)
			}
			pos += c.frames
			if n := len(joined); n > 0 && joined[n-1].End() == c.src {
				joined[n-1].Frames += c.frames
			} else {
				joined = append(joined, Range{Start: c.src, Frames: c.frames})
			}
			if tr.kind == "audio" && e.who != "reference" {
				db, mute := gainAt(e.gains, c.src)
				for _, g := range e.gains {
					for _, b := range []int64{g.Start, g.End()} {
						if bdb, bmute := gainAt(e.gains, b); b > c.src && b < c.src+c.frames && (bdb != db || bmute != mute) {
							return fmt.Errorf("%s: clip %d+%d spans a change of gain at frame %d", name, c.src, c.frames, b)
						}
					}
				}
				if c.enabled == mute || math.Abs(c.db-db) > 1e-4 {
					return fmt.Errorf("%s: clip %d+%d has %g dB enabled %v, want %g dB mute %v", name, c.src, c.frames, c.db, c.enabled, db, mute)
				}
			}
		}
		if e.who == "reference" {
			if got, want := pos, min(out, e.stem.Frames); got != want {
				return fmt.Errorf("%s: %d frames long, want %d", name, got, want)
			}
			if tr.kind == "audio" && tr.clips[0].enabled {
				return fmt.Errorf("%s: the reference's audio is not muted", name)
			}
			continue
		}
		if pos != out {
			return fmt.Errorf("%s: %d frames long, want %d", name, pos, out)
		}
		if fmt.Sprint(joined) != fmt.Sprint(mergeTouching(p.Kept())) {
			return fmt.Errorf("%s: clips cover %v of the stem, want the kept ranges %v", name, joined, p.Kept())
		}
		if splits[e.who] == nil {
			splits[e.who] = map[string][]int64{}
		}
		splits[e.who][tr.kind] = sp
	}
	for who, s := range splits {
		audio := map[int64]bool{}
		for _, f := range s["audio"] {
			audio[f] = true
		}
		video := map[int64]bool{}
		for _, f := range s["video"] {
			video[f] = true
			if s["audio"] != nil && !audio[f] {
				return fmt.Errorf("%s: video split at output frame %d, audio not", who, f)
			}
		}
		if s["video"] == nil {
			continue
		}
		bounds := gainBoundsOut(p, who)
		for f := range audio {
			if !video[f] && !bounds[f] {
				return fmt.Errorf("%s: audio split at output frame %d, which is neither a cut nor a gain bound", who, f)
			}
		}
	}
	l, err := newLayout(p)
	if err != nil {
		return err
	}
	if len(pt.markers) != len(l.markers) {
		return fmt.Errorf("%d markers, want %d", len(pt.markers), len(l.markers))
	}
	for i, m := range pt.markers {
		wm := l.markers[i]
		// FCPXML gives point markers one frame.
		if m.name != wm.Name || m.out != wm.Out || (m.frames != wm.Frames && !(wm.Frames == 0 && m.frames == 1)) {
			return fmt.Errorf("marker %d: %q at %d+%d, want %q at %d+%d", i, m.name, m.out, m.frames, wm.Name, wm.Out, wm.Frames)
		}
		if m.out < 0 || m.out+m.frames > out {
			return fmt.Errorf("marker %q at %d+%d: outside the timeline's %d frames", m.name, m.out, m.frames, out)
		}
	}
	return nil
}

// mergeTouching joins ranges that continue each other (a cut of no whole
// frame).
func mergeTouching(rs []Range) []Range {
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].End() == r.Start {
			out[n-1].Frames += r.Frames
			continue
		}
		out = append(out, r)
	}
	return out
}

// gainBoundsOut returns the output frames where a participant's gains
// start or end inside a kept range.
func gainBoundsOut(p *Project, who string) map[int64]bool {
	out := map[int64]bool{}
	for _, t := range p.Tracks {
		if t.Participant != who {
			continue
		}
		var off int64
		for _, k := range p.Kept() {
			for _, g := range t.Gains {
				for _, b := range []int64{g.Start, g.End()} {
					if b > k.Start && b < k.End() {
						out[off+b-k.Start] = true
					}
				}
			}
			off += k.Frames
		}
	}
	return out
}

// TestStructureCatches shows that the structure check and the parsers
// catch what they promise to: each case breaks one promise in a written
// file and must be refused.
func TestStructureCatches(t *testing.T) {
	p := editsProject(t)
	cases := []struct {
		name, ext string
		from, to  string
		want      string
	}{
		{"a time off the frame grid", ".fcpxml", `start="375/30s"`, `start="751/60s"`, "not on the frame grid"},
		{"a fractional OTIO frame", ".otio", `"value": 375.0`, `"value": 375.5`, "not a whole frame"},
		{"an OTIO rate that is not the project's", ".otio", `"rate": 30.0`, `"rate": 29.97`, "want the project's"},
		{"an absolute path", ".xml", `<pathurl>alice.wav</pathurl>`, `<pathurl>file://localhost/srv/alice.wav</pathurl>`, "not a relative path"},
		{"an upward path", ".otio", `"target_url": "bob.mp4"`, `"target_url": "../bob.mp4"`, "stays inside it"},
		{"a clip past its stem", ".xml", `<in>825</in>`, `<in>1000</in>`, ""},
		{"audio cut elsewhere than video", ".fcpxml", `offset="240/30s" name="alice.wav" start="375/30s"`, `offset="240/30s" name="alice.wav" start="376/30s"`, ""},
		{"a mute lost", ".xml", "<enabled>FALSE</enabled>", "<enabled>TRUE</enabled>", "want 0 dB mute true"},
		{"a gain lost", ".fcpxml", `<adjust-volume amount="-6dB"/>`, ``, "want -6 dB"},
		{"a stem declared too short", ".otio", `"value": 1350.0`, `"value": 1349.0`, "1349 elsewhere"},
		{"a marker moved", ".xml", "<in>465</in>", "<in>466</in>", `marker 1: "layout: speaker" at 466`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var w format
			for _, f := range formats() {
				if f.ext == c.ext {
					w = f
				}
			}
			good := string(write(t, w.write, p))
			if !strings.Contains(good, c.from) {
				t.Fatalf("the %s fixture no longer contains %q", c.ext, c.from)
			}
			pt, err := parsers()[c.ext]([]byte(strings.Replace(good, c.from, c.to, 1)), p)
			if err == nil {
				err = checkStructure(p, pt)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}
