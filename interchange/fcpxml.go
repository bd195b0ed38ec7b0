package interchange

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
)

const fcpxmlVersion = "1.10"

type fcpDoc struct {
	XMLName   xml.Name     `xml:"fcpxml"`
	Version   string       `xml:"version,attr"`
	Resources fcpResources `xml:"resources"`
	Library   fcpLibrary   `xml:"library"`
}

type fcpResources struct {
	Formats []fcpFormat `xml:"format"`
	Assets  []fcpAsset  `xml:"asset"`
}

type fcpFormat struct {
	ID            string `xml:"id,attr"`
	FrameDuration string `xml:"frameDuration,attr"`
	Width         int    `xml:"width,attr"`
	Height        int    `xml:"height,attr"`
}

type fcpAsset struct {
	ID            string      `xml:"id,attr"`
	Name          string      `xml:"name,attr"`
	Start         string      `xml:"start,attr"`
	Duration      string      `xml:"duration,attr"`
	HasVideo      string      `xml:"hasVideo,attr,omitempty"`
	Format        string      `xml:"format,attr,omitempty"`
	VideoSources  string      `xml:"videoSources,attr,omitempty"`
	HasAudio      string      `xml:"hasAudio,attr,omitempty"`
	AudioSources  string      `xml:"audioSources,attr,omitempty"`
	AudioChannels string      `xml:"audioChannels,attr,omitempty"`
	AudioRate     string      `xml:"audioRate,attr,omitempty"`
	MediaRep      fcpMediaRep `xml:"media-rep"`
}

type fcpMediaRep struct {
	Kind string `xml:"kind,attr"`
	Src  string `xml:"src,attr"`
}

type fcpLibrary struct {
	Event fcpEvent `xml:"event"`
}

type fcpEvent struct {
	Name    string     `xml:"name,attr"`
	Project fcpProject `xml:"project"`
}

type fcpProject struct {
	Name     string      `xml:"name,attr"`
	Sequence fcpSequence `xml:"sequence"`
}

type fcpSequence struct {
	Format      string   `xml:"format,attr"`
	Duration    string   `xml:"duration,attr"`
	TCStart     string   `xml:"tcStart,attr"`
	TCFormat    string   `xml:"tcFormat,attr"`
	AudioLayout string   `xml:"audioLayout,attr"`
	AudioRate   string   `xml:"audioRate,attr"`
	Spine       fcpSpine `xml:"spine"`
}

type fcpSpine struct {
	Gap fcpGap `xml:"gap"`
}

type fcpGap struct {
	Name     string         `xml:"name,attr"`
	Offset   string         `xml:"offset,attr"`
	Start    string         `xml:"start,attr"`
	Duration string         `xml:"duration,attr"`
	Clips    []fcpAssetClip `xml:"asset-clip"`
	Markers  []fcpMarker    `xml:"marker"`
}

type fcpAssetClip struct {
	Ref       string        `xml:"ref,attr"`
	Lane      int           `xml:"lane,attr"`
	Offset    string        `xml:"offset,attr"`
	Name      string        `xml:"name,attr"`
	Start     string        `xml:"start,attr"`
	Duration  string        `xml:"duration,attr"`
	Enabled   string        `xml:"enabled,attr,omitempty"`
	SrcEnable string        `xml:"srcEnable,attr,omitempty"`
	AudioRole string        `xml:"audioRole,attr,omitempty"`
	Volume    *fcpAdjustVol `xml:"adjust-volume"`
}

type fcpAdjustVol struct {
	Amount string `xml:"amount,attr"`
}

type fcpMarker struct {
	Start     string `xml:"start,attr"`
	Duration  string `xml:"duration,attr"`
	Value     string `xml:"value,attr"`
	Completed string `xml:"completed,attr,omitempty"`
	Note      string `xml:"note,attr,omitempty"`
}

// WriteFCPXML writes an FCPXML 1.10 document (Final Cut Pro 10.6 and
// later, File > Import > XML; DaVinci Resolve's File > Import > Timeline
// reads FCPXML too) that follows
// the FCPXML 1.10 DTD for every element and attribute it uses (checked by
// the package's tests against our own encoding of the DTD's rules):
//
//	fcpxml version="1.10"
//	  resources: format r1 (the timeline: frame duration and size; another
//	             format only for a stem of another size), one asset per stem
//	             with media-rep src = the stem's path as a relative URL
//	  library > event > project > sequence (format r1, tcStart 0s, NDF)
//	    spine > one gap as long as the output: the primary storyline
//	      asset-clips anchored to the gap: participant i's video on lane
//	      i+1 (srcEnable="video": its audio comes from the WAV), its audio
//	      on lane -(i+1); the reference composite's video on the lane above
//	      all, its audio below all, disabled
//	      markers, in the gap's time (the output's)
//
// Every time is a rational number of seconds on the frame grid
// ("N·Den/Num s"): Apple's Timing Attributes page says values off the
// frame grid make Final Cut Pro insert gaps and warn. Volume: a gain is an
// adjust-volume amount in dB on the clip; a mute is a disabled clip
// (enabled="0"), which an editor re-enables with one key. Point markers
// last one frame, as Final Cut Pro writes them; loss markers are to-do
// markers (completed="0").
func WriteFCPXML(w io.Writer, p *Project) error {
	l, err := newLayout(p)
	if err != nil {
		return fmt.Errorf("interchange: fcpxml: %w", err)
	}
	r := l.r
	width, height := timelineSize(p)
	doc := fcpDoc{Version: fcpxmlVersion}
	res := &doc.Resources
	ids := 0
	newID := func() string { ids++; return "r" + strconv.Itoa(ids) }
	seqFormat := fcpFormat{ID: newID(), FrameDuration: r.frameDuration(), Width: width, Height: height}
	res.Formats = append(res.Formats, seqFormat)
	formatOf := func(s *Stem) string {
		for _, f := range res.Formats {
			if f.Width == s.Width && f.Height == s.Height {
				return f.ID
			}
		}
		f := fcpFormat{ID: newID(), FrameDuration: r.frameDuration(), Width: s.Width, Height: s.Height}
		res.Formats = append(res.Formats, f)
		return f.ID
	}
	// Formats first (r1, then one per other size), so that the IDs run
	// in the order of the file.
	for _, t := range p.Tracks {
		if t.Video != nil {
			formatOf(t.Video)
		}
	}
	if p.Reference != nil {
		formatOf(p.Reference)
	}
	assets := map[*Stem]string{}
	assetOf := func(s *Stem, video bool) string {
		if id, ok := assets[s]; ok {
			return id
		}
		a := fcpAsset{ID: newID(), Name: base(s.Path), Start: "0s", Duration: r.fcpTime(s.Frames),
			MediaRep: fcpMediaRep{Kind: "original-media", Src: relURL(s.Path)}}
		if video {
			a.HasVideo, a.Format, a.VideoSources = "1", formatOf(s), "1"
		}
		if !video || s.Audio {
			a.HasAudio, a.AudioSources, a.AudioChannels, a.AudioRate = "1", "1", strconv.Itoa(s.Channels), strconv.Itoa(p.SampleRate)
		}
		assets[s] = a.ID
		res.Assets = append(res.Assets, a)
		return a.ID
	}
	gap := fcpGap{Name: "Session", Offset: "0s", Start: "0s", Duration: r.fcpTime(l.out)}
	place := func(ref string, lane int, name string, c clip, srcEnable, role string) {
		ac := fcpAssetClip{Ref: ref, Lane: lane, Offset: r.fcpTime(c.Out), Name: name, Start: r.fcpTime(c.Src),
			Duration: r.fcpTime(c.Frames), SrcEnable: srcEnable, AudioRole: role}
		if c.Mute {
			ac.Enabled = "0"
		}
		if c.DB != 0 {
			ac.Volume = &fcpAdjustVol{Amount: dB(c.DB)}
		}
		gap.Clips = append(gap.Clips, ac)
	}
	for i, pl := range l.parts {
		t := pl.t
		if t.Video != nil {
			id := assetOf(t.Video, true)
			for _, c := range pl.video {
				place(id, i+1, base(t.Video.Path), c, "video", "")
			}
		}
		if s := pl.audioStem; s != nil {
			id := assetOf(s, s == t.Video)
			srcEnable := ""
			if s == t.Video {
				srcEnable = "audio"
			}
			for _, c := range pl.audio {
				place(id, -(i + 1), base(s.Path), c, srcEnable, "dialogue")
			}
		}
	}
	if rf := l.ref; rf != nil {
		id := assetOf(rf.s, true)
		lane := len(l.parts) + 1
		v := rf.clip
		v.Mute = false
		place(id, lane, base(rf.s.Path), v, "video", "")
		if rf.s.Audio {
			place(id, -lane, base(rf.s.Path), rf.clip, "audio", "")
		}
	}
	for _, m := range l.markers {
		fm := fcpMarker{Start: r.fcpTime(m.Out), Duration: r.fcpTime(max(m.Frames, 1)), Value: m.Name, Note: m.Note}
		if m.Kind == MarkerLoss {
			fm.Completed = "0"
		}
		gap.Markers = append(gap.Markers, fm)
	}
	audioRate := fcpAudioRates[p.SampleRate]
	doc.Library.Event = fcpEvent{Name: p.Name, Project: fcpProject{Name: p.Name, Sequence: fcpSequence{
		Format: seqFormat.ID, Duration: r.fcpTime(l.out), TCStart: "0s", TCFormat: "NDF", AudioLayout: "stereo",
		AudioRate: audioRate, Spine: fcpSpine{Gap: gap},
	}}}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	buf.WriteString("<!DOCTYPE fcpxml>\n")
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "    ")
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("interchange: fcpxml: encode: %w", err)
	}
	buf.WriteByte('\n')
	if _, err := w.Write(selfClose(buf.Bytes())); err != nil {
		return fmt.Errorf("interchange: fcpxml: write: %w", err)
	}
	return nil
}

// dB writes a gain as FCPXML's adjust-volume amount ("-6dB").
func dB(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + "dB" }

// timelineSize is the timeline's frame size: the project's, or 1280x720
// when it has none (an audio-only export).
func timelineSize(p *Project) (int, int) {
	if p.Width > 0 && p.Height > 0 {
		return p.Width, p.Height
	}
	return 1280, 720
}
