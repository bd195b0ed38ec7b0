package interchange

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// otioNum is a JSON number written the way OpenTimelineIO writes doubles
// (150.0, 29.97002997002997).
type otioNum float64

func (n otioNum) MarshalJSON() ([]byte, error) {
	s := strconv.FormatFloat(float64(n), 'f', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return []byte(s), nil
}

type otioTime struct {
	Schema string  `json:"OTIO_SCHEMA"`
	Rate   otioNum `json:"rate"`
	Value  otioNum `json:"value"`
}

type otioRange struct {
	Schema   string   `json:"OTIO_SCHEMA"`
	Duration otioTime `json:"duration"`
	Start    otioTime `json:"start_time"`
}

// otioMeta is tapedeck's metadata namespace on OTIO objects.
type otioMeta struct {
	Tapedeck *otioTapedeck `json:"tapedeck,omitempty"`
}

type otioTapedeck struct {
	Session       string   `json:"session,omitempty"`
	FPS           string   `json:"fps,omitempty"`
	SessionFrames int64    `json:"session_frames,omitempty"`
	Participant   string   `json:"participant,omitempty"`
	Kind          string   `json:"kind,omitempty"`
	Reference     bool     `json:"reference,omitempty"`
	GainDB        *otioNum `json:"gain_db,omitempty"`
	Mute          bool     `json:"mute,omitempty"`
	Note          string   `json:"note,omitempty"`
}

type otioTimeline struct {
	Schema          string    `json:"OTIO_SCHEMA"`
	Metadata        otioMeta  `json:"metadata"`
	Name            string    `json:"name"`
	GlobalStartTime otioTime  `json:"global_start_time"`
	Tracks          otioStack `json:"tracks"`
}

type otioStack struct {
	Schema      string       `json:"OTIO_SCHEMA"`
	Metadata    otioMeta     `json:"metadata"`
	Name        string       `json:"name"`
	SourceRange *otioRange   `json:"source_range"`
	Effects     []struct{}   `json:"effects"`
	Markers     []otioMarker `json:"markers"`
	Enabled     bool         `json:"enabled"`
	Children    []otioTrack  `json:"children"`
}

type otioTrack struct {
	Schema      string       `json:"OTIO_SCHEMA"`
	Metadata    otioMeta     `json:"metadata"`
	Name        string       `json:"name"`
	SourceRange *otioRange   `json:"source_range"`
	Effects     []struct{}   `json:"effects"`
	Markers     []otioMarker `json:"markers"`
	Enabled     bool         `json:"enabled"`
	Kind        string       `json:"kind"`
	Children    []otioClip   `json:"children"`
}

type otioClip struct {
	Schema          string                `json:"OTIO_SCHEMA"`
	Metadata        otioMeta              `json:"metadata"`
	Name            string                `json:"name"`
	SourceRange     otioRange             `json:"source_range"`
	Effects         []struct{}            `json:"effects"`
	Markers         []otioMarker          `json:"markers"`
	Enabled         bool                  `json:"enabled"`
	MediaReferences map[string]otioExtRef `json:"media_references"`
	ActiveKey       string                `json:"active_media_reference_key"`
}

type otioExtRef struct {
	Schema         string    `json:"OTIO_SCHEMA"`
	Metadata       otioMeta  `json:"metadata"`
	Name           string    `json:"name"`
	AvailableRange otioRange `json:"available_range"`
	ImageBounds    *struct{} `json:"available_image_bounds"`
	TargetURL      string    `json:"target_url"`
}

type otioMarker struct {
	Schema      string    `json:"OTIO_SCHEMA"`
	Metadata    otioMeta  `json:"metadata"`
	Name        string    `json:"name"`
	Color       string    `json:"color"`
	MarkedRange otioRange `json:"marked_range"`
	Comment     string    `json:"comment"`
}

// otioColors are the marker colors, from OpenTimelineIO's Marker.Color.
var otioColors = map[MarkerKind]string{
	MarkerJoin:   "GREEN",
	MarkerLeave:  "YELLOW",
	MarkerRejoin: "CYAN",
	MarkerLoss:   "RED",
	MarkerLayout: "PURPLE",
}

const otioDefaultMedia = "DEFAULT_MEDIA"

// WriteOTIO writes the OTIO JSON that DaVinci Resolve (18.5 and later,
// File > Import > Timeline) and Premiere Pro (2025 and later, File >
// Import) open: a Timeline.1 whose Stack.1 holds one video Track.1 per
// participant with a video stem (then the reference composite's, on top),
// then one audio Track.1 per participant with audio (then the reference's).
// Each Clip.2 has one ExternalReference.1 (target_url: the stem's path as a
// relative URL, available_range: the whole stem) and a source_range into
// it; all times are RationalTime.1 of whole frames at the project's rate.
//
// Volume: OpenTimelineIO releases have no volume effect (an AudioVolume
// schema exists only on its development branch), so a gain is written as
// clip metadata ("tapedeck": {"gain_db": -6}) that no editor applies, and a
// mute as "enabled": false, which OTIO defines as a muted clip. The
// reference composite's audio clip is disabled the same way. Markers are
// on the Stack (the timeline), with a color per kind.
func WriteOTIO(w io.Writer, p *Project) error {
	l, err := newLayout(p)
	if err != nil {
		return fmt.Errorf("interchange: otio: %w", err)
	}
	rt := func(f int64) otioTime {
		return otioTime{Schema: "RationalTime.1", Rate: otioNum(l.r.float()), Value: otioNum(f)}
	}
	rng := func(start, frames int64) otioRange {
		return otioRange{Schema: "TimeRange.1", Duration: rt(frames), Start: rt(start)}
	}
	clipOf := func(s *Stem, c clip, meta *otioTapedeck) otioClip {
		if c.DB != 0 {
			db := otioNum(c.DB)
			meta.GainDB = &db
		}
		meta.Mute = c.Mute
		return otioClip{
			Schema: "Clip.2", Metadata: otioMeta{Tapedeck: meta}, Name: base(s.Path),
			SourceRange: rng(c.Src, c.Frames), Effects: []struct{}{}, Markers: []otioMarker{}, Enabled: !c.Mute,
			MediaReferences: map[string]otioExtRef{otioDefaultMedia: {
				Schema: "ExternalReference.1", Metadata: otioMeta{}, Name: base(s.Path),
				AvailableRange: rng(0, s.Frames), TargetURL: relURL(s.Path),
			}},
			ActiveKey: otioDefaultMedia,
		}
	}
	track := func(name, kind string, meta *otioTapedeck, clips []otioClip) otioTrack {
		return otioTrack{Schema: "Track.1", Metadata: otioMeta{Tapedeck: meta}, Name: name, Effects: []struct{}{},
			Markers: []otioMarker{}, Enabled: true, Kind: kind, Children: clips}
	}
	var video, audio []otioTrack
	for _, pl := range l.parts {
		t := pl.t
		name := displayName(t)
		if t.Video != nil {
			var clips []otioClip
			for _, c := range pl.video {
				clips = append(clips, clipOf(t.Video, c, &otioTapedeck{Participant: t.Participant}))
			}
			video = append(video, track(name, "Video", &otioTapedeck{Participant: t.Participant}, clips))
		}
		if pl.audioStem != nil {
			var clips []otioClip
			for _, c := range pl.audio {
				clips = append(clips, clipOf(pl.audioStem, c, &otioTapedeck{Participant: t.Participant}))
			}
			audio = append(audio, track(name, "Audio", &otioTapedeck{Participant: t.Participant}, clips))
		}
	}
	if rf := l.ref; rf != nil {
		v := rf.clip
		v.Mute = false
		video = append(video, track("Reference", "Video", &otioTapedeck{Reference: true},
			[]otioClip{clipOf(rf.s, v, &otioTapedeck{Reference: true})}))
		if rf.s.Audio {
			audio = append(audio, track("Reference", "Audio", &otioTapedeck{Reference: true, Note: "the rendered composite's audio, muted (enabled false)"},
				[]otioClip{clipOf(rf.s, rf.clip, &otioTapedeck{Reference: true})}))
		}
	}
	markers := []otioMarker{}
	for _, m := range l.markers {
		markers = append(markers, otioMarker{
			Schema: "Marker.2", Metadata: otioMeta{Tapedeck: &otioTapedeck{Kind: string(m.Kind), Participant: m.Participant}},
			Name: m.Name, Color: otioColors[m.Kind], MarkedRange: rng(m.Out, m.Frames), Comment: m.Note,
		})
	}
	tl := otioTimeline{
		Schema: "Timeline.1",
		Metadata: otioMeta{Tapedeck: &otioTapedeck{Session: p.Name, FPS: fmt.Sprintf("%d/%d", l.r.num, l.r.den),
			SessionFrames: p.Frames}},
		Name: p.Name, GlobalStartTime: rt(0),
		Tracks: otioStack{Schema: "Stack.1", Metadata: otioMeta{}, Name: "tracks", Effects: []struct{}{}, Markers: markers,
			Enabled: true, Children: append(video, audio...)},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "    ")
	if err := enc.Encode(&tl); err != nil {
		return fmt.Errorf("interchange: otio: encode: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("interchange: otio: write: %w", err)
	}
	return nil
}

// displayName is the name a participant's tracks carry.
func displayName(t *Track) string {
	if strings.TrimSpace(t.Name) != "" {
		return t.Name
	}
	return t.Participant
}
