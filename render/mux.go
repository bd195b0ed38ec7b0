package render

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// outDirName is the work-folder subfolder the muxes write into; its entries
// are moved to the output folder when everything succeeded.
const outDirName = "out"

// Audio bitrates (kbit/s).
const (
	aacBitrate  = 128
	opusBitrate = 128
)

// The encoded mix, one file per audio codec the profiles need.
const (
	aacFile  = "audio-aac.m4a"
	opusFile = "audio-opus.webm"
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

// AudioEncodes returns the commands that encode the mix, once per audio
// codec the profiles need (AAC, Opus), bringing it to the target loudness
// measured by the audio mix. They run as soon as the mix is done, beside the
// video jobs, so that the muxes only copy.
func (p *Program) AudioEncodes(l Loudness) []Command {
	af := loudnessFilters(&p.settings, l)
	var cmds []Command
	switch {
	case len(p.aacWindows) > 0:
		// Encoded in windows (aacwindows.go), then joined.
		cmds = append(p.aacWindowCommands(af), p.aacJoin())
	case p.needsAAC():
		cmds = append(cmds, p.encodeMix("audio encode aac", aacFile, af, "-c:a", "aac", "-b:a", fmt.Sprintf("%dk", aacBitrate), "-f", "mp4"))
	}
	if p.needsOpus() {
		cmds = append(cmds, p.encodeMix("audio encode opus", opusFile, af, "-c:a", "libopus", "-b:a", fmt.Sprintf("%dk", opusBitrate), "-f", "webm"))
	}
	return cmds
}

// encodeMix is the command that encodes the whole mix with the filters af
// and the codec options into out.
func (p *Program) encodeMix(name, out string, af []string, codec ...string) Command {
	args := append(baseArgs(), "-i", mixFile)
	var files map[string]string
	if p.audioList != "" {
		args = append(baseArgs(), audioWindowsInput()...)
		files = map[string]string{audioWindowList: p.audioList}
	}
	if len(af) > 0 {
		args = append(args, "-af", strings.Join(af, ","))
	}
	args = append(args, "-vn")
	args = append(args, codec...)
	args = append(args, "-ar", "48000", "-ac", "2", out)
	return Command{Name: name, Args: args, Files: files, Outputs: []string{out}, Duration: p.Duration}
}

// aacInput is the input options that read the encoded AAC mix, and the
// output options its copy needs: the windows' packets joined
// (aacJoinedFile), timed by aacSetts (the encoder's priming before output
// time 0, the last packet ending on the mix's last sample), or the single
// encode's MP4.
func (p *Program) aacInput() (in, out []string) {
	if len(p.aacWindows) == 0 {
		return []string{"-i", aacFile}, nil
	}
	return []string{"-f", "aac", "-i", aacJoinedFile}, []string{"-bsf:a", aacSetts(samplesOfFrames(p.Frames, p.FPS))}
}

// needsAAC reports whether some profile carries AAC (all but WebM), and
// needsOpus whether some carries Opus (WebM).
func (p *Program) needsAAC() bool {
	return slices.ContainsFunc(p.profiles, func(pr Profile) bool { return pr.kind != kindWebM })
}

func (p *Program) needsOpus() bool {
	return slices.ContainsFunc(p.profiles, func(pr Profile) bool { return pr.kind == kindWebM })
}

// aacByMux is the AAC encoded by the one mux that carries it rather than
// apart (Program.muxMayEncodeAAC), with the filters that bring the mix to
// its loudness.
type aacByMux struct {
	filters []string
}

// muxMayEncodeAAC reports whether the program's AAC may be encoded by the
// mux that carries it: the mix is one encoded audio window (a call of up to
// one window) and one profile carries AAC, an MP4 or the M4A. Encoded
// apart, its packets would go to that mux only, through a second FFmpeg
// start (0.23 G instructions: a twentieth of a 10-s call's whole render).
// The packets are the same: the same encoder fed the same samples, and
// timed as the join times them (the priming before 0, the last packet
// ending on the mix's last sample).
func (p *Program) muxMayEncodeAAC() bool {
	if len(p.aacWindows) != 1 {
		return false
	}
	carriers := 0
	for _, pr := range p.profiles {
		switch pr.kind {
		case kindWebM:
		case kindHLS:
			return false // its renditions each copy the AAC
		default:
			carriers++
		}
	}
	return carriers == 1
}

// Mux returns the commands that produce the final outputs from the job
// outputs and the encoded audio, by copying. They write under the work
// folder's out/ (see OutputName).
func (p *Program) Mux() []Command { return p.muxes(nil) }

// muxes are the Mux commands; with aac set, the one mux that carries the
// AAC encodes it (muxMayEncodeAAC).
func (p *Program) muxes(aac *aacByMux) []Command {
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
	var cmds []Command
	for _, pr := range p.profiles {
		var c Command
		switch pr.kind {
		case kindAudio:
			c = p.muxAudio(aac)
		case kindHLS:
			c = p.muxHLS(pr)
		default:
			c = p.muxFile(pr, aac)
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

// muxFile muxes one MP4 or WebM file: the concatenated video and the
// encoded audio, copied, or the AAC encoded (aac set).
func (p *Program) muxFile(pr Profile, aac *aacByMux) Command {
	e, _ := encodingOf(p.Encodings, pr, pr.lines[0])
	webm := pr.kind == kindWebM
	files := map[string]string{}
	var audio audioOpts
	if webm {
		audio = audioOpts{in: []string{"-i", opusFile}, out: []string{"-c:a", "copy"}}
	} else {
		audio = p.aacAudio(aac, files)
	}
	args := baseArgs()
	if !webm && len(p.jobs) == 1 {
		// One file, as its encoder wrote it: its parameter sets are the
		// MP4's (the concat demuxer would otherwise put them before every
		// keyframe, in Annex B, for the muxer to undo; they are needed
		// there only where files made apart are joined).
		args = append(args, "-auto_convert", "0")
	}
	args = append(args, concatInput(e)...)
	args = append(args, audio.in...)
	subs := p.settings.Captions == CaptionsTrack && len(p.cues) > 0
	if subs {
		files["captions.srt"] = captionsSRT(p.cues)
		args = append(args, "-f", "srt", "-i", "captions.srt")
	}
	args = append(args, "-map", "0:v", "-map", "1:a")
	if subs {
		args = append(args, "-map", "2:s")
	}
	args = append(args, "-c:v", "copy")
	args = append(args, audio.out...)
	out := path.Join(outDirName, OutputName(pr.Name))
	if webm {
		if subs {
			args = append(args, "-c:s", "webvtt")
		}
		args = append(args, "-f", "webm", out)
	} else {
		if subs {
			args = append(args, "-c:s", "mov_text", "-metadata:s:s:0", "language=und")
		}
		// The edit lists (the AAC's priming, the end of its last packet)
		// in 1/48000 s: the default millisecond timescale would cut the
		// last packet by up to 47 samples.
		args = append(args, "-movie_timescale", "48000", "-movflags", "+faststart", "-f", "mp4", out)
	}
	return Command{Args: args, Files: files, Outputs: []string{out}}
}

// audioOpts is how a mux gets its audio: its input options, and the output
// options that copy or encode it.
type audioOpts struct {
	in, out []string
}

// aacAudio is how a mux gets the AAC: encoded from the mix (aac set: the
// one encoded audio window's input, its files added to files), or copied
// (aacInput).
func (p *Program) aacAudio(aac *aacByMux, files map[string]string) audioOpts {
	if aac != nil {
		w := p.aacWindowInput(0, aac.filters)
		for name, body := range w.files {
			files[name] = body
		}
		return audioOpts{in: w.in, out: append([]string{"-af", w.filter}, aacEncoderArgs()...)}
	}
	in, bsf := p.aacInput()
	return audioOpts{in: in, out: append([]string{"-c:a", "copy"}, bsf...)}
}

// muxAudio writes the encoded mix alone as an M4A file, copied or encoded
// (aac set).
func (p *Program) muxAudio(aac *aacByMux) Command {
	out := path.Join(outDirName, OutputName(ProfileAudio))
	files := map[string]string{}
	audio := p.aacAudio(aac, files)
	args := append(append(baseArgs(), audio.in...), "-map", "0:a")
	args = append(args, audio.out...)
	args = append(args, "-movie_timescale", "48000", "-movflags", "+faststart", "-f", "mp4", out)
	return Command{Args: args, Files: files, Outputs: []string{out}}
}

// muxHLS writes the renditions as HLS (MPEG-TS segments of about
// hlsSegmentSeconds, cut at keyframes) with a master playlist.
func (p *Program) muxHLS(pr Profile) Command {
	args := baseArgs()
	var encs []Encoding
	for _, l := range pr.lines {
		e, _ := encodingOf(p.Encodings, pr, l)
		encs = append(encs, e)
		args = append(args, concatInput(e)...)
	}
	audioIn, audioOut := p.aacInput()
	args = append(args, audioIn...)
	var streams []string
	for i, e := range encs {
		args = append(args, "-map", fmt.Sprintf("%d:v", i), "-map", fmt.Sprintf("%d:a", len(encs)))
		streams = append(streams, fmt.Sprintf("v:%d,a:%d,name:%dp", i, i, e.Lines))
	}
	dir := path.Join(outDirName, path.Dir(OutputName(ProfileHLS)))
	args = append(args, "-c", "copy")
	args = append(args, audioOut...)
	args = append(args, "-f", "hls", "-hls_time", itoa(hlsSegmentSeconds), "-hls_playlist_type", "vod", "-hls_flags", "independent_segments",
		"-hls_segment_type", "mpegts", "-hls_segment_filename", dir+"/%v/seg-%05d.ts",
		"-master_pl_name", path.Base(OutputName(ProfileHLS)), "-var_stream_map", strings.Join(streams, " "),
		dir+"/%v/index.m3u8")
	return Command{Args: args, Outputs: []string{path.Join(outDirName, OutputName(ProfileHLS))}}
}
