package render

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tapedeck/tapedeck/interchange"
	"github.com/tapedeck/tapedeck/timeline"
)

// exportProject describes an export for the timeline writers: its stems
// (in the order the participants joined), the edits' kept ranges and gains,
// the markers, and the reference composite copied into dir. The cut's notes
// go to res.Notes.
func exportProject(ctx context.Context, m *timeline.Manifest, s *timeline.Sync, e *timeline.Edits, edited *timeline.Plan,
	res *ExportResult, dir string) (*interchange.Project, error) {
	fps := res.FPS
	p := &interchange.Project{Name: m.Session, FPS: fps, SampleRate: sampleRate, Frames: res.Frames}
	sum, err := timeline.Summarize(m, s)
	if err != nil {
		return nil, fmt.Errorf("render: export: %w", err)
	}
	p.Markers = interchange.MarkersFromPlan(sum, edited, fps, res.Frames)
	gains := map[string][]interchange.Gain{}
	if e != nil {
		cut, err := interchange.CutFromPlan(m, e, edited, fps, res.Frames)
		if err != nil {
			return nil, fmt.Errorf("render: export: %w", err)
		}
		if len(cut.Kept) != 1 || cut.Kept[0] != (interchange.Range{Start: 0, Frames: res.Frames}) {
			p.Edit = cut.Kept
		}
		gains = cut.Gains
		res.Notes = append(res.Notes, cut.Notes...)
	}
	for _, st := range res.Stems {
		t := interchange.Track{Participant: st.Participant, Name: st.Name}
		if st.WAV != "" {
			t.Audio = &interchange.Stem{Path: st.WAV, Frames: res.Frames, Samples: res.Samples, Channels: st.Channels}
		}
		if st.MP4 != "" {
			t.Video = &interchange.Stem{Path: st.MP4, Frames: res.Frames, Width: st.Width, Height: st.Height, Audio: st.Channels > 0}
			if st.Channels > 0 {
				t.Video.Samples, t.Video.Channels = res.Samples, st.Channels
			}
			if st.Width*st.Height > p.Width*p.Height {
				p.Width, p.Height = st.Width, st.Height
			}
		}
		if st.Channels > 0 {
			t.Gains = gains[st.Participant]
		}
		p.Tracks = append(p.Tracks, t)
	}
	if res.Reference != "" {
		ref, err := referenceStem(ctx, filepath.Join(dir, filepath.FromSlash(res.Reference)), res.Reference, fps)
		if err != nil {
			return nil, err
		}
		p.Reference = ref
		if len(p.Edit) > 0 {
			res.Notes = append(res.Notes, res.Reference+" is placed from the start of the cut timeline: it lines up when it was rendered with the same edits")
		}
	}
	return p, nil
}

// referenceStem probes the reference composite.
func referenceStem(ctx context.Context, file, rel string, fps timeline.Rational) (*interchange.Stem, error) {
	info, err := probeFile(ctx, file)
	if err != nil {
		return nil, fmt.Errorf("render: export: reference: %w", err)
	}
	v := info.stream("video")
	if v == nil || v.Width <= 0 || v.Height <= 0 {
		return nil, fmt.Errorf("render: export: reference %s has no video", file)
	}
	d, err := strconv.ParseFloat(info.Format.Duration, 64)
	if err != nil || d <= 0 {
		return nil, fmt.Errorf("render: export: reference %s: duration %q", file, info.Format.Duration)
	}
	frames := max(1, frameAt(time.Duration(d*float64(time.Second)), fps))
	st := &interchange.Stem{Path: rel, Frames: frames, Width: v.Width, Height: v.Height}
	if a := info.stream("audio"); a != nil && (a.Channels == 1 || a.Channels == 2) {
		st.Audio, st.Channels = true, a.Channels
		st.Samples = samplesOfFrames(frames, fps)
	}
	return st, nil
}

// writeTimeline writes the project in one format to path.
func writeTimeline(p *interchange.Project, format, path string) error {
	var write func(io.Writer, *interchange.Project) error
	switch format {
	case TimelineOTIO:
		write = interchange.WriteOTIO
	case TimelineFCPXML:
		write = interchange.WriteFCPXML
	case TimelineXMEML:
		write = interchange.WriteXMEML
	default:
		return fmt.Errorf("render: export: timeline format %q", format)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("render: export: %w", err)
	}
	w := bufio.NewWriter(f)
	err = write(w, p)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("render: export: write %s: %w", filepath.Base(path), err)
	}
	return nil
}
