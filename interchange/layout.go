package interchange

import (
	"bytes"
	"math"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strings"
)

// layout is what every writer places, computed once from a valid Project:
// the clips of each track in output frames, and the markers in output
// frames. The writers only translate it into their format.
type layout struct {
	r       rate
	kept    []Range // output order
	out     int64   // output length in frames
	parts   []partLayout
	ref     *refLayout
	markers []placedMarker
}

// clip is a stretch of a stem on the output timeline: output frames
// [Out, Out+Frames) play stem frames [Src, Src+Frames).
type clip struct {
	Out, Src, Frames int64
	DB               float64 // volume (audio)
	Mute             bool    // the clip is disabled (audio)
}

// partLayout is one participant's clips.
type partLayout struct {
	t     *Track
	video []clip // one per kept range; nil without a video stem
	// audio is split at the kept ranges and at the gains' bounds.
	audio []clip
	// audioStem is the file the audio clips use: the WAV, or the video
	// file when there is no WAV and it carries the participant's audio.
	audioStem *Stem
}

// refLayout is the reference composite: one clip from output frame 0.
type refLayout struct {
	s    *Stem
	clip clip
}

// placedMarker is a marker on the output timeline.
type placedMarker struct {
	Marker
	Out, Frames int64 // output frame and length (0: a point)
}

// newLayout validates p and lays it out.
func newLayout(p *Project) (*layout, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	r, _ := newRate(p.FPS)
	l := &layout{r: r, kept: p.Kept(), out: p.OutputFrames()}
	for i := range p.Tracks {
		t := &p.Tracks[i]
		pl := partLayout{t: t, audioStem: t.Audio}
		if pl.audioStem == nil && t.Video != nil && t.Video.Audio {
			pl.audioStem = t.Video
		}
		var off int64
		for _, k := range l.kept {
			if t.Video != nil {
				pl.video = append(pl.video, clip{Out: off, Src: k.Start, Frames: k.Frames})
			}
			if pl.audioStem != nil {
				pl.audio = append(pl.audio, splitAtGains(off, k, t.Gains)...)
			}
			off += k.Frames
		}
		l.parts = append(l.parts, pl)
	}
	if s := p.Reference; s != nil {
		l.ref = &refLayout{s: s, clip: clip{Out: 0, Src: 0, Frames: min(s.Frames, l.out), Mute: true}}
	}
	for _, m := range p.Markers {
		if pm, ok := placeMarker(l.kept, m); ok {
			l.markers = append(l.markers, pm)
		}
	}
	sort.SliceStable(l.markers, func(i, j int) bool { return l.markers[i].Out < l.markers[j].Out })
	return l, nil
}

// gainAt returns the gain in force at session frame f.
func gainAt(gains []Gain, f int64) (db float64, mute bool) {
	for _, g := range gains {
		if f >= g.Start && f < g.End() {
			if g.Mute && (math.IsNaN(g.DB) || g.DB < MinGainDB || g.DB > MaxGainDB) {
				return 0, true // the volume under a mute is kept only when the formats hold it
			}
			return g.DB, g.Mute
		}
	}
	return 0, false
}

// splitAtGains returns the audio clips of the kept range k placed at output
// frame off: split wherever a gain starts or ends inside it, neighbours of
// equal gain merged.
func splitAtGains(off int64, k Range, gains []Gain) []clip {
	cuts := []int64{k.Start, k.End()}
	for _, g := range gains {
		for _, f := range []int64{g.Start, g.End()} {
			if f > k.Start && f < k.End() {
				cuts = append(cuts, f)
			}
		}
	}
	sort.Slice(cuts, func(i, j int) bool { return cuts[i] < cuts[j] })
	var out []clip
	for i := 0; i+1 < len(cuts); i++ {
		a, b := cuts[i], cuts[i+1]
		if b <= a {
			continue
		}
		db, mute := gainAt(gains, a)
		if n := len(out); n > 0 && out[n-1].DB == db && out[n-1].Mute == mute {
			out[n-1].Frames += b - a
			continue
		}
		out = append(out, clip{Out: off + a - k.Start, Src: a, Frames: b - a, DB: db, Mute: mute})
	}
	return out
}

// placeMarker puts a session-frame marker on the output timeline: where its
// start is kept; a marker with a duration that starts in a cut begins where
// its range is next kept. Its length stops at the end of that kept range.
// A marker wholly inside cuts is dropped.
func placeMarker(kept []Range, m Marker) (placedMarker, bool) {
	var off int64
	for _, k := range kept {
		if m.Frame >= k.Start && m.Frame < k.End() {
			return placedMarker{Marker: m, Out: off + m.Frame - k.Start, Frames: min(m.Duration, k.End()-m.Frame)}, true
		}
		if m.Duration > 0 && k.Start > m.Frame && k.Start < m.Frame+m.Duration {
			return placedMarker{Marker: m, Out: off, Frames: min(m.Frame+m.Duration, k.End()) - k.Start}, true
		}
		off += k.Frames
	}
	return placedMarker{}, false
}

// relURL writes a stem's relative path as a relative URL reference: each
// element percent-encoded, slashes kept. Resolved against the timeline
// file's own URL, it names the stem beside it.
func relURL(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// base returns a stem's file name, the name NLEs give its clips.
func base(p string) string { return path.Base(p) }

// selfClose rewrites the empty elements encoding/xml writes as a start and
// an end tag ("<format ...></format>") as empty-element tags ("<format
// .../>"), the form editors write. encoding/xml escapes '<' and '>' in
// attribute values and text, so a tag is never matched inside a value.
func selfClose(doc []byte) []byte {
	re := regexp.MustCompile(`<([A-Za-z][A-Za-z0-9._-]*)((?:\s[^<>]*)?)></([A-Za-z][A-Za-z0-9._-]*)>`)
	return re.ReplaceAllFunc(doc, func(m []byte) []byte {
		sub := re.FindSubmatch(m)
		if !bytes.Equal(sub[1], sub[3]) {
			return m
		}
		out := append([]byte{'<'}, sub[1]...)
		out = append(out, sub[2]...)
		return append(out, '/', '>')
	})
}
