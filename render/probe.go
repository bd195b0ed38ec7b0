package render

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"time"

	ffmpeg "github.com/u2takey/ffmpeg-go"
)

// This file is the only use of ffmpeg-go (github.com/u2takey/ffmpeg-go) in
// tapedeck, and ffmpeg_go_test.go keeps it so: ffmpeg-go runs ffprobe on a
// finished output and returns its JSON, which it does without loss. The
// FFmpeg commands are built by graph.go and the builders beside it and run
// by run.go. ffmpeg-go's Input/Filter/Output builder was tried on them
// (issue 10) and cannot express them: a filter needs an input, so source
// filters (color, anullsrc) must become lavfi inputs; it identifies nodes
// by content, so two identical chains (two scenes of the same length, one
// person's label in two scenes) become one node and it panics; it sorts
// options and names every pad s0, s1, …; and the niceness, process-group
// kill, progress pipe and stderr tail of run.go would still be ours to add
// (Compile ignores its options). README (Render) gives the binary's figures
// with and without it.

// probeTimeout bounds one ffprobe run: ffmpeg-go's probe takes no context,
// only a timeout.
const probeTimeout = 2 * time.Minute

// probeInfo is the part of ffprobe's JSON that the checks read.
type probeInfo struct {
	Format struct {
		Duration   string `json:"duration"`
		FormatName string `json:"format_name"`
	} `json:"format"`
	Streams []probeStream `json:"streams"`
}

// probeStream is one stream of ffprobe's JSON.
type probeStream struct {
	CodecType  string `json:"codec_type"`
	CodecName  string `json:"codec_name"`
	Width      int    `json:"width"`
	Height     int    `json:"height"`
	Channels   int    `json:"channels"`
	SampleRate string `json:"sample_rate"`
	DurationTS int64  `json:"duration_ts"`
	NbFrames   string `json:"nb_frames"`
}

// stream returns the first stream of a type, or nil.
func (p *probeInfo) stream(kind string) *probeStream {
	for i := range p.Streams {
		if p.Streams[i].CodecType == kind {
			return &p.Streams[i]
		}
	}
	return nil
}

// haveFFprobe reports whether ffprobe is in PATH (ffmpeg-go runs it by
// name).
func haveFFprobe() bool {
	_, err := exec.LookPath("ffprobe")
	return err == nil
}

// probeFile runs ffprobe (the one in PATH: ffmpeg-go runs it by name) on a
// file, through ffmpeg-go. ffmpeg-go cannot stop a running probe, so a
// cancelled ctx is checked before it starts; the run itself is bounded by
// probeTimeout (a probe of a finished local file takes milliseconds).
func probeFile(ctx context.Context, path string) (*probeInfo, error) {
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("ffprobe %s: %w", path, err)
	}
	timeout := probeTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
		if timeout <= 0 {
			return nil, fmt.Errorf("ffprobe %s: %w", path, context.DeadlineExceeded)
		}
	}
	out, err := ffmpeg.ProbeWithTimeout(path, timeout, ffmpeg.KwArgs{"v": "error"})
	if err != nil {
		return nil, fmt.Errorf("ffprobe %s: %w", path, err)
	}
	var info probeInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		return nil, fmt.Errorf("ffprobe %s: %w", path, err)
	}
	return &info, nil
}

// codecs returns the codec names of the streams of a type.
func (p *probeInfo) codecs(kind string) []string {
	var out []string
	for _, s := range p.Streams {
		if s.CodecType == kind {
			out = append(out, s.CodecName)
		}
	}
	return out
}
