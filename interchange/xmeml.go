package interchange

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
)

const xmemlVersion = "5"

type xmDoc struct {
	XMLName  xml.Name   `xml:"xmeml"`
	Version  string     `xml:"version,attr"`
	Sequence xmSequence `xml:"sequence"`
}

type xmRate struct {
	Timebase int64  `xml:"timebase"`
	NTSC     string `xml:"ntsc"`
}

type xmTimecode struct {
	Rate          xmRate `xml:"rate"`
	String        string `xml:"string"`
	Frame         int64  `xml:"frame"`
	DisplayFormat string `xml:"displayformat"`
}

type xmSequence struct {
	ID       string     `xml:"id,attr"`
	Name     string     `xml:"name"`
	Duration int64      `xml:"duration"`
	Rate     xmRate     `xml:"rate"`
	Timecode xmTimecode `xml:"timecode"`
	Media    xmSeqMedia `xml:"media"`
	Markers  []xmMarker `xml:"marker"`
}

type xmSeqMedia struct {
	Video xmSeqVideo `xml:"video"`
	Audio xmSeqAudio `xml:"audio"`
}

type xmSeqVideo struct {
	Format xmVideoFormat `xml:"format"`
	Tracks []xmTrack     `xml:"track"`
}

type xmSeqAudio struct {
	NumOutputChannels int           `xml:"numOutputChannels"`
	Format            xmAudioFormat `xml:"format"`
	Tracks            []xmTrack     `xml:"track"`
}

type xmVideoFormat struct {
	SampleCharacteristics xmVideoSample `xml:"samplecharacteristics"`
}

type xmAudioFormat struct {
	SampleCharacteristics xmAudioSample `xml:"samplecharacteristics"`
}

type xmVideoSample struct {
	Rate             xmRate `xml:"rate"`
	Width            int    `xml:"width"`
	Height           int    `xml:"height"`
	Anamorphic       string `xml:"anamorphic"`
	PixelAspectRatio string `xml:"pixelaspectratio"`
	FieldDominance   string `xml:"fielddominance"`
}

type xmAudioSample struct {
	Depth      int `xml:"depth"`
	SampleRate int `xml:"samplerate"`
}

type xmTrack struct {
	Clips   []xmClipItem `xml:"clipitem"`
	Enabled string       `xml:"enabled"`
	Locked  string       `xml:"locked"`
}

type xmClipItem struct {
	ID          string         `xml:"id,attr"`
	Name        string         `xml:"name"`
	Enabled     string         `xml:"enabled"`
	Duration    int64          `xml:"duration"`
	Rate        xmRate         `xml:"rate"`
	Start       int64          `xml:"start"`
	End         int64          `xml:"end"`
	In          int64          `xml:"in"`
	Out         int64          `xml:"out"`
	File        *xmFile        `xml:"file"`
	SourceTrack *xmSourceTrack `xml:"sourcetrack"`
	Filter      *xmFilter      `xml:"filter"`
}

type xmFile struct {
	ID       string       `xml:"id,attr"`
	Name     string       `xml:"name,omitempty"`
	PathURL  string       `xml:"pathurl,omitempty"`
	Rate     *xmRate      `xml:"rate"`
	Duration int64        `xml:"duration,omitempty"`
	Timecode *xmTimecode  `xml:"timecode"`
	Media    *xmFileMedia `xml:"media"`
}

type xmFileMedia struct {
	Video *xmFileVideo `xml:"video"`
	Audio *xmFileAudio `xml:"audio"`
}

type xmFileVideo struct {
	SampleCharacteristics xmVideoSample `xml:"samplecharacteristics"`
}

type xmFileAudio struct {
	SampleCharacteristics xmAudioSample `xml:"samplecharacteristics"`
	ChannelCount          int           `xml:"channelcount"`
}

type xmSourceTrack struct {
	MediaType  string `xml:"mediatype"`
	TrackIndex int    `xml:"trackindex"`
}

type xmFilter struct {
	Effect xmEffect `xml:"effect"`
}

type xmEffect struct {
	Name           string      `xml:"name"`
	EffectID       string      `xml:"effectid"`
	EffectCategory string      `xml:"effectcategory"`
	EffectType     string      `xml:"effecttype"`
	MediaType      string      `xml:"mediatype"`
	Parameter      xmParameter `xml:"parameter"`
}

type xmParameter struct {
	ParameterID string `xml:"parameterid"`
	Name        string `xml:"name"`
	ValueMin    string `xml:"valuemin"`
	ValueMax    string `xml:"valuemax"`
	Value       string `xml:"value"`
}

type xmMarker struct {
	Comment string `xml:"comment"`
	Name    string `xml:"name"`
	In      int64  `xml:"in"`
	Out     int64  `xml:"out"`
}

// xmLevelMax is the "Audio Levels" level's maximum: +12 dB.
const xmLevelMax = "3.98109"

// WriteXMEML writes an XML Interchange Format document, version 5, the
// interchange Premiere Pro (File > Import) and DaVinci Resolve (File >
// Import > Timeline) read: one sequence with its rate (timebase and ntsc),
// a video track per participant with a video stem (then the reference
// composite's), an audio track per participant with audio (then the
// reference's, its clip disabled), clipitems whose start/end (output) and
// in/out (stem) are whole frames, each stem described once by a file
// element and referred to by its id after that, and the markers on the
// sequence.
//
// Paths: pathurl holds the stem's path as a relative URL ("alice.mp4").
// The format has no documented relative form: Premiere Pro and Resolve
// write absolute file://localhost/ URLs, and a relative one is likely to
// come in offline. Resolve then asks for the folder to search (its "Import
// Timeline" dialog: media not found at the file paths are looked for in a
// folder the user picks), Premiere Pro offers Link Media: pointing either
// at the export folder links every stem, since they are all in it. (OTIO's
// target_url and FCPXML's media-rep src are URLs, where a relative
// reference is resolved against the timeline file's own location.)
//
// Volume: a gain is the "Audio Levels" filter's level (linear: 10^(dB/20),
// 0 to 3.98109 = +12 dB), a mute a disabled clipitem.
func WriteXMEML(w io.Writer, p *Project) error {
	l, err := newLayout(p)
	if err != nil {
		return fmt.Errorf("interchange: xmeml: %w", err)
	}
	rate := xmRate{Timebase: l.r.timebase(), NTSC: boolText(l.r.ntsc())}
	tc := xmTimecode{Rate: rate, String: "00:00:00:00", Frame: 0, DisplayFormat: "NDF"}
	width, height := timelineSize(p)
	videoSample := func(wd, ht int) xmVideoSample {
		return xmVideoSample{Rate: rate, Width: wd, Height: ht, Anamorphic: "FALSE", PixelAspectRatio: "square", FieldDominance: "none"}
	}
	files := map[*Stem]string{}
	fileOf := func(s *Stem) *xmFile {
		if id, ok := files[s]; ok {
			return &xmFile{ID: id}
		}
		id := "file-" + strconv.Itoa(len(files)+1)
		files[s] = id
		f := &xmFile{ID: id, Name: base(s.Path), PathURL: relURL(s.Path), Rate: &rate, Duration: s.Frames, Timecode: &tc, Media: &xmFileMedia{}}
		if s.Width > 0 {
			f.Media.Video = &xmFileVideo{SampleCharacteristics: videoSample(s.Width, s.Height)}
		}
		if s.Channels > 0 {
			f.Media.Audio = &xmFileAudio{SampleCharacteristics: xmAudioSample{Depth: 24, SampleRate: p.SampleRate}, ChannelCount: s.Channels}
		}
		return f
	}
	items := 0
	item := func(s *Stem, c clip, audio bool) xmClipItem {
		items++
		ci := xmClipItem{ID: "clipitem-" + strconv.Itoa(items), Name: base(s.Path), Enabled: boolText(!c.Mute), Duration: s.Frames,
			Rate: rate, Start: c.Out, End: c.Out + c.Frames, In: c.Src, Out: c.Src + c.Frames, File: fileOf(s)}
		if audio {
			ci.SourceTrack = &xmSourceTrack{MediaType: "audio", TrackIndex: 1}
			if c.DB != 0 {
				ci.Filter = &xmFilter{Effect: xmEffect{Name: "Audio Levels", EffectID: "audiolevels", EffectCategory: "audiolevels",
					EffectType: "audiolevels", MediaType: "audio", Parameter: xmParameter{ParameterID: "level", Name: "Level",
						ValueMin: "0", ValueMax: xmLevelMax, Value: level(c.DB)}}}
			}
		}
		return ci
	}
	track := func(clips []xmClipItem) xmTrack { return xmTrack{Clips: clips, Enabled: "TRUE", Locked: "FALSE"} }
	seq := xmSequence{ID: "sequence-1", Name: p.Name, Duration: l.out, Rate: rate, Timecode: tc}
	seq.Media.Video.Format.SampleCharacteristics = videoSample(width, height)
	seq.Media.Audio.NumOutputChannels = 2
	seq.Media.Audio.Format.SampleCharacteristics = xmAudioSample{Depth: 24, SampleRate: p.SampleRate}
	for _, pl := range l.parts {
		if v := pl.t.Video; v != nil {
			var clips []xmClipItem
			for _, c := range pl.video {
				clips = append(clips, item(v, c, false))
			}
			seq.Media.Video.Tracks = append(seq.Media.Video.Tracks, track(clips))
		}
	}
	if rf := l.ref; rf != nil {
		v := rf.clip
		v.Mute = false
		seq.Media.Video.Tracks = append(seq.Media.Video.Tracks, track([]xmClipItem{item(rf.s, v, false)}))
	}
	for _, pl := range l.parts {
		if s := pl.audioStem; s != nil {
			var clips []xmClipItem
			for _, c := range pl.audio {
				clips = append(clips, item(s, c, true))
			}
			seq.Media.Audio.Tracks = append(seq.Media.Audio.Tracks, track(clips))
		}
	}
	if rf := l.ref; rf != nil && rf.s.Audio {
		seq.Media.Audio.Tracks = append(seq.Media.Audio.Tracks, track([]xmClipItem{item(rf.s, rf.clip, true)}))
	}
	for _, m := range l.markers {
		out := int64(-1)
		if m.Frames > 0 {
			out = m.Out + m.Frames
		}
		seq.Markers = append(seq.Markers, xmMarker{Comment: m.Note, Name: m.Name, In: m.Out, Out: out})
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	buf.WriteString("<!DOCTYPE xmeml>\n")
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "    ")
	if err := enc.Encode(&xmDoc{Version: xmemlVersion, Sequence: seq}); err != nil {
		return fmt.Errorf("interchange: xmeml: encode: %w", err)
	}
	buf.WriteByte('\n')
	if _, err := w.Write(selfClose(buf.Bytes())); err != nil {
		return fmt.Errorf("interchange: xmeml: write: %w", err)
	}
	return nil
}

func boolText(b bool) string {
	if b {
		return "TRUE"
	}
	return "FALSE"
}

// level is the "Audio Levels" value of a gain: linear, 6 significant
// digits (within 0.0001 dB), written without an exponent.
func level(db float64) string {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(math.Pow(10, db/20), 'g', 6, 64), 64)
	return strconv.FormatFloat(v, 'f', -1, 64)
}
