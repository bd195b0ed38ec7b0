// Package interchange writes the timelines editors open: OpenTimelineIO
// (.otio), Final Cut Pro XML 1.10 (.fcpxml) and Final Cut Pro 7 XML
// (xmeml, .xml). Each places a session's per-participant stems — one video
// file and one audio file per participant, every one starting at session
// time 0 and as long as the session — on a timeline, with the session's cuts
// and markers. The writers are pure functions of a Project: no FFmpeg, no
// I/O beyond the io.Writer. It depends only on timeline.
package interchange

import "github.com/tapedeck/tapedeck/timeline"

// Project is what the writers place on a timeline. All times are whole
// frames of FPS on the session's timeline (frame 0 is session time 0).
type Project struct {
	// Name names the timeline, sequence or project (the session ID).
	Name string
	// FPS is the frame rate of the video stems and of the timeline.
	FPS timeline.Rational
	// Width and Height are the video stems' size (the timeline's format).
	Width, Height int
	// SampleRate is the audio stems' sample rate (48000).
	SampleRate int
	// Frames is the session's length: every stem is this long.
	Frames int64
	// Tracks: one per participant, in display order.
	Tracks []Track
	// Reference is an optional rendered composite, placed on a track of its
	// own, muted, for the editor to compare against.
	Reference *Stem
	// Edit lists the ranges of the session kept, in output order: the
	// timelines place them one after the other (clips split at each cut and
	// closed up, audio and video together). Empty: the whole session.
	Edit []Range
	// Markers, in session frames.
	Markers []Marker
}

// Track is one participant's stems.
type Track struct {
	Participant string // the participant's ID (unique in the project)
	Name        string // the display name
	// Video is the participant's video stem, nil when they sent no video
	// (or video stems were not asked for).
	Video *Stem
	// Audio is the participant's audio stem (WAV), nil when they sent no
	// audio (or audio stems were not asked for).
	Audio *Stem
	// Gains set the participant's volume over ranges of the session (from
	// the edits' mutes and gains); outside them the volume is 0 dB.
	Gains []Gain
}

// Stem is one media file of the export.
type Stem struct {
	// Path is the file's path relative to the export folder, slash-separated,
	// so that the folder can be moved.
	Path string
	// Frames is the file's length in frames of the project's FPS (for audio
	// stems too).
	Frames int64
	// Samples is an audio file's length in samples per channel; 0 for a
	// video file without audio.
	Samples int64
	// Channels of the audio (1 or 2); 0 for a video file without audio.
	Channels int
	// Width and Height of a video file; 0 for audio.
	Width, Height int
	// Audio says a video file also carries the participant's audio.
	Audio bool
}

// Range is a stretch of the session's timeline: frames [Start, Start+Frames).
type Range struct {
	Start, Frames int64
}

// Gain is a participant's volume over a range of the session.
type Gain struct {
	Range
	DB   float64 // gain in dB, used when Mute is false
	Mute bool
}

// MarkerKind says what a marker marks.
type MarkerKind string

// Marker kinds.
const (
	MarkerJoin   MarkerKind = "join"   // a participant joins
	MarkerLeave  MarkerKind = "leave"  // a participant leaves
	MarkerRejoin MarkerKind = "rejoin" // a participant comes back
	MarkerLoss   MarkerKind = "loss"   // a long packet-loss hole
	MarkerLayout MarkerKind = "layout" // a layout change of the edits
)

// Marker is a point (or a stretch) of the session an editor wants to find.
type Marker struct {
	Frame    int64 // session frame
	Duration int64 // frames; 0 for a point
	Kind     MarkerKind
	Name     string // short, e.g. "alice joins"
	Note     string // longer, optional
	// Participant is the ID of the participant the marker concerns (""
	// for none, e.g. a layout change).
	Participant string
}

// Gain limits the three formats hold: Final Cut Pro's volume runs from
// -96 dB (its floor, silence) to +12 dB, and FCP7 XML's "Audio Levels"
// level from 0 to 3.98109 (+12 dB). A Gain outside them does not validate;
// GainsFromEdits clamps louder ones and turns quieter ones into mutes.
const (
	MaxGainDB = 12.0
	MinGainDB = -96.0
)

// End returns the frame after the range: Start+Frames.
func (r Range) End() int64 { return r.Start + r.Frames }

// Kept returns the ranges of the session the timelines place, in output
// order: Edit, or the whole session when Edit is empty.
func (p *Project) Kept() []Range {
	if len(p.Edit) > 0 {
		return p.Edit
	}
	return []Range{{Start: 0, Frames: p.Frames}}
}

// OutputFrames returns the timelines' length: the sum of the kept ranges.
func (p *Project) OutputFrames() int64 {
	var n int64
	for _, r := range p.Kept() {
		n += r.Frames
	}
	return n
}
