package interchange

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strings"
)

// ErrInvalidProject is wrapped by every error of Validate.
var ErrInvalidProject = errors.New("invalid project")

// maxFrames bounds every frame count (about 145 years at 240 fps), so that
// no sum or product of the writers overflows.
const maxFrames = 1 << 40

// Audio sample rates FCPXML's sequence audioRate can name.
var fcpAudioRates = map[int]string{32000: "32k", 44100: "44.1k", 48000: "48k", 88200: "88.2k", 96000: "96k", 176400: "176.4k", 192000: "192k"}

// Validate checks that the three writers can express the project: a frame
// rate every format has (whole, or NTSC), a session of at least one frame,
// stems exactly as long as the session, unique participant IDs, relative
// paths inside the export folder, kept ranges inside the session in
// ascending order without overlaps, gains inside the session without
// overlaps and within MinGainDB..MaxGainDB, and markers inside the session.
// The writers call it first.
func (p *Project) Validate() error {
	if p == nil {
		return fmt.Errorf("interchange: %w: nil project", ErrInvalidProject)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("interchange: %w: %s", ErrInvalidProject, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(p.Name) == "" {
		return bad("name is empty: it names the timeline")
	}
	if _, err := newRate(p.FPS); err != nil {
		return bad("%v", err)
	}
	if p.Frames <= 0 || p.Frames > maxFrames {
		return bad("session length %d frames: want 1 to %d", p.Frames, int64(maxFrames))
	}
	if _, ok := fcpAudioRates[p.SampleRate]; !ok {
		return bad("sample rate %d Hz: want one of 32000, 44100, 48000, 88200, 96000, 176400, 192000", p.SampleRate)
	}
	if p.Width < 0 || p.Height < 0 || p.Width > 16384 || p.Height > 16384 || (p.Width == 0) != (p.Height == 0) {
		return bad("size %dx%d: want both from 1 to 16384 (or both 0 for the default 1280x720)", p.Width, p.Height)
	}
	if len(p.Tracks) == 0 {
		return bad("no tracks: a timeline needs at least one participant")
	}
	paths := map[string]string{}
	// stem checks one file; session says it must last the session.
	stem := func(what string, s *Stem, wantAudio, wantVideo, session bool) error {
		if err := checkPath(s.Path); err != nil {
			return bad("%s: %v", what, err)
		}
		if prev, ok := paths[s.Path]; ok {
			return bad("%s: path %q is also %s", what, s.Path, prev)
		}
		paths[s.Path] = what
		if s.Frames <= 0 || s.Frames > maxFrames {
			return bad("%s %q: length %d frames: want 1 to %d", what, s.Path, s.Frames, int64(maxFrames))
		}
		if session && s.Frames != p.Frames {
			return bad("%s %q: %d frames, the session has %d: every stem lasts the session", what, s.Path, s.Frames, p.Frames)
		}
		if wantVideo && (s.Width <= 0 || s.Height <= 0) {
			return bad("%s %q: size %dx%d: a video file needs one", what, s.Path, s.Width, s.Height)
		}
		if wantAudio || s.Audio {
			if s.Channels != 1 && s.Channels != 2 {
				return bad("%s %q: %d audio channels: want 1 or 2", what, s.Path, s.Channels)
			}
		}
		if wantAudio {
			// An audio file lasts its frames: not a sample shorter (the
			// last clip would run past the media; ceil(frames·rate/fps)
			// samples is safe), at most a frame longer.
			r, _ := newRate(p.FPS)
			want := r.samples(s.Frames, p.SampleRate)
			if n := float64(s.Samples); n < math.Ceil(want)-1 || n > want+r.samples(1, p.SampleRate) {
				return bad("%s %q: %d samples for %d frames: want %.0f (%d Hz; from one sample less to one frame more)",
					what, s.Path, s.Samples, s.Frames, math.Ceil(want), p.SampleRate)
			}
		}
		return nil
	}
	ids := map[string]bool{}
	videos := false
	for i := range p.Tracks {
		t := &p.Tracks[i]
		if t.Participant == "" {
			return bad("tracks[%d]: empty participant ID", i)
		}
		if ids[t.Participant] {
			return bad("tracks[%d]: participant %q listed twice", i, t.Participant)
		}
		ids[t.Participant] = true
		if t.Video == nil && t.Audio == nil {
			return bad("participant %q: no video and no audio stem", t.Participant)
		}
		if t.Video != nil {
			videos = true
			if err := stem(fmt.Sprintf("participant %q video", t.Participant), t.Video, false, true, true); err != nil {
				return err
			}
		}
		if t.Audio != nil {
			if err := stem(fmt.Sprintf("participant %q audio", t.Participant), t.Audio, true, false, true); err != nil {
				return err
			}
		}
		if err := checkGains(p, t); err != nil {
			return bad("%v", err)
		}
	}
	if videos && p.Width == 0 {
		return bad("size unset: the timeline's format needs the video stems' size")
	}
	if r := p.Reference; r != nil {
		if err := stem("reference", r, false, true, false); err != nil {
			return err
		}
	}
	var prev *Range
	for i := range p.Edit {
		r := &p.Edit[i]
		if r.Frames <= 0 || r.Start < 0 || r.End() > p.Frames {
			return bad("edit[%d]: frames %d+%d: want a non-empty range inside the session's %d frames", i, r.Start, r.Frames, p.Frames)
		}
		if prev != nil && r.Start < prev.End() {
			return bad("edit[%d]: frames %d+%d start before the end of edit[%d] (%d): kept ranges are in ascending order without overlaps (cuts close up, they do not reorder)",
				i, r.Start, r.Frames, i-1, prev.End())
		}
		prev = r
	}
	for i, m := range p.Markers {
		switch m.Kind {
		case MarkerJoin, MarkerLeave, MarkerRejoin, MarkerLoss, MarkerLayout:
		default:
			return bad("markers[%d]: kind %q: want join, leave, rejoin, loss or layout", i, m.Kind)
		}
		if strings.TrimSpace(m.Name) == "" {
			return bad("markers[%d]: empty name", i)
		}
		if m.Frame < 0 || m.Duration < 0 || m.Frame >= p.Frames || m.Frame+m.Duration > p.Frames {
			return bad("markers[%d] %q: frames %d+%d: want inside the session's %d frames", i, m.Name, m.Frame, m.Duration, p.Frames)
		}
	}
	return nil
}

// checkPath accepts a slash-separated path relative to the export folder
// that stays inside it: not absolute, no "." or ".." element, no empty
// element, no backslash and no colon (a Windows drive or a URL scheme).
func checkPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case strings.ContainsAny(p, `\:`):
		return fmt.Errorf("path %q: want a slash-separated path relative to the export folder (no backslash, drive or scheme)", p)
	case !fs.ValidPath(p) || p == ".":
		return fmt.Errorf("path %q: want a path relative to the export folder that stays inside it (not absolute, no . or ..)", p)
	}
	return nil
}

// checkGains checks a track's gains: inside the session, not overlapping,
// finite and within the formats' range, on a participant with audio.
func checkGains(p *Project, t *Track) error {
	if len(t.Gains) == 0 {
		return nil
	}
	if t.Audio == nil && (t.Video == nil || !t.Video.Audio) {
		return fmt.Errorf("participant %q: gains but no audio", t.Participant)
	}
	for i, g := range t.Gains {
		if g.Frames <= 0 || g.Start < 0 || g.End() > p.Frames {
			return fmt.Errorf("participant %q gains[%d]: frames %d+%d: want a non-empty range inside the session's %d frames", t.Participant, i, g.Start, g.Frames, p.Frames)
		}
		if !g.Mute && (math.IsNaN(g.DB) || g.DB < MinGainDB || g.DB > MaxGainDB) {
			return fmt.Errorf("participant %q gains[%d]: %g dB: the formats hold %g to %+g dB (a mute below)", t.Participant, i, g.DB, MinGainDB, MaxGainDB)
		}
		for j := range i {
			h := t.Gains[j]
			if g.Start < h.End() && h.Start < g.End() {
				return fmt.Errorf("participant %q gains[%d] (frames %d+%d) overlaps gains[%d] (frames %d+%d)", t.Participant, i, g.Start, g.Frames, j, h.Start, h.Frames)
			}
		}
	}
	return nil
}
