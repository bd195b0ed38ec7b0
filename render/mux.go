package render

import (
	"fmt"
	"path"
	"strings"
)

// outDirName is the work-folder subfolder the muxes write into; its entries
// are moved to the output folder when everything succeeded.
const outDirName = "out"

// audio bitrates (kbit/s).
const (
	aacBitrate     = 128
	aacOnlyBitrate = 160
	opusBitrate    = 128
)

// hlsSegmentSeconds is the target length of an HLS segment (a multiple of
// the 2 s keyframe interval).
const hlsSegmentSeconds = 4

// OutputName is the file (relative to the output folder, slash-separated)
// that holds a profile's result: its playlist for HLS.
func OutputName(profile string) string {
	switch profile {
	case ProfileAudio:
		return "audio.m4a"
	case ProfileHLS:
		return "hls/master.m3u8"
	case ProfileWebM720:
		return profile + ".webm"
	}
	return profile + ".mp4"
}

// listFile is the concat script of an encoding's job outputs.
func listFile(e Encoding) string { return "list-" + e.key() + ".ffconcat" }

// Mux returns the commands that produce the final outputs, given the
// loudness the audio mix measured. They write under the work folder's
// out/ (see OutputName).
func (p *Program) Mux(l Loudness) []Command {
	files := map[string]string{}
	for _, e := range p.Encodings {
		var names []string
		var durs []float64
		for i := range p.jobs {
			names = append(names, jobOutput(e, i))
			durs = append(durs, frameTime(p.jobs[i].frames(), p.FPS))
		}
		files[listFile(e)] = ffconcat(names, durs)
	}
	af := loudnessFilters(&p.settings, l)
	var cmds []Command
	for _, pr := range p.profiles {
		var c Command
		switch pr.kind {
		case kindAudio:
			c = p.muxAudio(af)
		case kindHLS:
			c = p.muxHLS(pr, af)
		default:
			c = p.muxFile(pr, af)
		}
		c.Name = "mux " + pr.Name
		c.Duration = p.Duration
		if c.Files == nil {
			c.Files = map[string]string{}
		}
		for _, in := range c.Args {
			if body, ok := files[in]; ok {
				c.Files[in] = body
			}
		}
		cmds = append(cmds, c)
	}
	return cmds
}

// concatInput is the input options reading an encoding's job outputs as one
// stream.
func concatInput(e Encoding) []string {
	return []string{"-f", "concat", "-safe", "0", "-i", listFile(e)}
}

// audioMap maps the mix (input k), through the loudness filters if any, as
// count copies; it returns the filtergraph (or "") and the map arguments.
func audioMap(k int, af []string, count int) (string, []string) {
	var maps []string
	if len(af) == 0 {
		for range count {
			maps = append(maps, "-map", fmt.Sprintf("%d:a", k))
		}
		return "", maps
	}
	var pads []string
	for i := range count {
		pads = append(pads, fmt.Sprintf("a%d", i))
		maps = append(maps, "-map", fmt.Sprintf("[a%d]", i))
	}
	fs := append([]string(nil), af...)
	if count > 1 {
		fs = append(fs, fmt.Sprintf("asplit=%d", count))
	}
	return fmt.Sprintf("[%d:a]%s[%s]", k, strings.Join(fs, ","), strings.Join(pads, "][")), maps
}

// muxFile muxes one MP4 or WebM file: the concatenated video, copied, and
// the mix, encoded.
func (p *Program) muxFile(pr Profile, af []string) Command {
	e, _ := encodingOf(p.Encodings, pr, pr.lines[0])
	webm := pr.kind == kindWebM
	args := append(baseArgs(), concatInput(e)...)
	args = append(args, "-i", mixFile)
	files := map[string]string{}
	subs := p.settings.Captions == CaptionsTrack && len(p.cues) > 0
	if subs {
		files["captions.srt"] = captionsSRT(p.cues)
		args = append(args, "-f", "srt", "-i", "captions.srt")
	}
	graph, maps := audioMap(1, af, 1)
	if graph != "" {
		args = append(args, "-filter_complex", graph)
	}
	args = append(args, "-map", "0:v")
	args = append(args, maps...)
	if subs {
		args = append(args, "-map", "2:s")
	}
	args = append(args, "-c:v", "copy")
	out := path.Join(outDirName, OutputName(pr.Name))
	if webm {
		args = append(args, "-c:a", "libopus", "-b:a", fmt.Sprintf("%dk", opusBitrate), "-ar", "48000", "-ac", "2")
		if subs {
			args = append(args, "-c:s", "webvtt")
		}
		args = append(args, "-f", "webm", out)
	} else {
		args = append(args, "-c:a", "aac", "-b:a", fmt.Sprintf("%dk", aacBitrate), "-ar", "48000", "-ac", "2")
		if subs {
			args = append(args, "-c:s", "mov_text", "-metadata:s:s:0", "language=und")
		}
		args = append(args, "-movflags", "+faststart", "-f", "mp4", out)
	}
	return Command{Args: args, Files: files, Outputs: []string{out}}
}

// muxAudio writes the mix alone as AAC in an M4A file.
func (p *Program) muxAudio(af []string) Command {
	out := path.Join(outDirName, OutputName(ProfileAudio))
	args := append(baseArgs(), "-i", mixFile)
	if len(af) > 0 {
		args = append(args, "-af", strings.Join(af, ","))
	}
	args = append(args, "-vn", "-c:a", "aac", "-b:a", fmt.Sprintf("%dk", aacOnlyBitrate), "-ar", "48000", "-ac", "2",
		"-movflags", "+faststart", "-f", "mp4", out)
	return Command{Args: args, Outputs: []string{out}}
}

// muxHLS writes the renditions as HLS (MPEG-TS segments of about
// hlsSegmentSeconds, cut at keyframes) with a master playlist.
func (p *Program) muxHLS(pr Profile, af []string) Command {
	args := baseArgs()
	var encs []Encoding
	for _, l := range pr.lines {
		e, _ := encodingOf(p.Encodings, pr, l)
		encs = append(encs, e)
		args = append(args, concatInput(e)...)
	}
	args = append(args, "-i", mixFile)
	graph, amaps := audioMap(len(encs), af, len(encs))
	if graph != "" {
		args = append(args, "-filter_complex", graph)
	}
	var streams []string
	for i, e := range encs {
		args = append(args, "-map", fmt.Sprintf("%d:v", i), amaps[2*i], amaps[2*i+1])
		streams = append(streams, fmt.Sprintf("v:%d,a:%d,name:%dp", i, i, e.Lines))
	}
	dir := path.Join(outDirName, path.Dir(OutputName(ProfileHLS)))
	args = append(args, "-c:v", "copy", "-c:a", "aac", "-b:a", fmt.Sprintf("%dk", aacBitrate), "-ar", "48000", "-ac", "2",
		"-f", "hls", "-hls_time", itoa(hlsSegmentSeconds), "-hls_playlist_type", "vod", "-hls_flags", "independent_segments",
		"-hls_segment_type", "mpegts", "-hls_segment_filename", dir+"/%v/seg-%05d.ts",
		"-master_pl_name", path.Base(OutputName(ProfileHLS)), "-var_stream_map", strings.Join(streams, " "),
		dir+"/%v/index.m3u8")
	return Command{Args: args, Outputs: []string{path.Join(outDirName, OutputName(ProfileHLS))}}
}
