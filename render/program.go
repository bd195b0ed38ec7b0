package render

import (
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// CaptionMode says what happens to the plan's captions.
type CaptionMode string

// Caption modes.
const (
	// CaptionsBurn draws the captions into the picture (the default).
	CaptionsBurn CaptionMode = "burn"
	// CaptionsTrack adds them as a subtitle track (mov_text in MP4, WebVTT
	// in WebM); HLS and audio outputs get none.
	CaptionsTrack CaptionMode = "track"
	// CaptionsOff leaves them out.
	CaptionsOff CaptionMode = "off"
)

// Settings are what Compile needs beside the plan. Everything in them is a
// plain value: Compile runs nothing and reads no file.
type Settings struct {
	// SessionDir prefixes the plan's relative source paths. Every other
	// file a command names is in the work folder, its working directory
	// (the final outputs under out/), or an absolute path from the plan.
	SessionDir string
	// Profiles to produce, at least one.
	Profiles []Profile
	// FontFile is the font for names and labels; "" draws no text.
	FontFile string
	// Preset is the x264 preset ("veryfast" when empty).
	Preset string
	// Captions: burn (default), track or off.
	Captions CaptionMode
	// LoudnessOff skips loudness normalization; Loudness is the target in
	// LUFS (−16 when 0).
	LoudnessOff bool
	Loudness    float64
	// MaxJobFrames and MaxJobInputs bound one video job (defaults: 3 minutes
	// of frames, 24 inputs).
	MaxJobFrames int64
	MaxJobInputs int

	// measureSide makes the audio command measure the peak of L − R (a
	// stem's audio is mono when it is silent), instead of the loudness.
	measureSide bool
	// placeQuantum rounds every video source's placement (the file time
	// where its job's stretch of it starts, and its rate: snapPlacement) to
	// a multiple of it, in seconds; 0 is 1/16 of an output frame (videoPlaceSteps):
	// every video job then names itself for the reuse keys (see reuse.go).
	placeQuantum float64
	// audioQuantum does the same for audio sources (seconds), whose
	// placement is heard to the sample: the program then names what an
	// audio window mixes with a tolerance, for the reuse keys, and is not
	// run.
	audioQuantum float64
	// lastFrame, if set, is the file time (seconds) of the last frame of a
	// video file (a plan path) at or before file time t, false when it
	// cannot tell (sourceFiles.before): a piece then starts from that frame when
	// it lies further back than a frame before the piece's first output
	// frame. Unset, a piece reaches back a frame.
	lastFrame func(path string, t float64) (float64, bool)
	// stretchOf, if set, tells how n samples of an audio file (a plan
	// path) from file time fs decode, from its start or after a seek
	// (sourceFiles.audio): a steady stretch is placed without aresample,
	// a stereo one without aformat. Unset, every piece has both.
	stretchOf func(path string, fs float64, n int64, seek bool) audioStretch
	// overlays composes every scene with the chain of overlays, never with
	// xstack (stack.go): the tests compare the two.
	overlays bool
	// AudioWindows mixes the audio in the video's windows, one command
	// each, and joins them (what Render does: the windows are kept and
	// reused as the video's are), instead of in one command.
	AudioWindows bool
}

// Command is one FFmpeg run: its arguments (without the program name and
// the runner's own -progress and log options), the text files it reads
// (written into the work folder first), and what it produces.
type Command struct {
	Name string
	// Args are FFmpeg's arguments; none for a step of Go work only (the
	// AAC join).
	Args []string
	// Files maps a work-folder file name to its content.
	Files map[string]string
	// Outputs are the files it writes: work-folder names or final paths.
	Outputs []string
	// Duration is the output time it covers (progress).
	Duration time.Duration
	// Measure marks the audio mix, whose stderr carries the loudness
	// measurement (the runner keeps FFmpeg's info messages for it).
	Measure bool
	// aacJoin are the encoded audio windows whose packets the runner joins
	// (joinAACWindows) before running FFmpeg, if any.
	aacJoin []aacChunk
	// inputKeys are the reuse keys of the windows a command reads from the
	// work folder (encoded audio windows read audio windows): part of its
	// own key.
	inputKeys []string
}

// Program is a compiled render.
type Program struct {
	Frames   int64
	FPS      timeline.Rational
	Duration time.Duration // Frames/FPS
	Width    int
	Height   int
	// Encodings are the video encodings the jobs produce (none for audio
	// only).
	Encodings []Encoding
	// Video are the video jobs (independent, run in parallel).
	Video []Command
	// Audio is the audio mix (independent of the video jobs) and measures
	// its loudness; none with windowed audio, which AudioWindows mix.
	Audio        Command
	AudioWindows []Command
	// AudioOnly is set when the plan has no video lane at all: the video
	// profiles were replaced by the audio profile.
	AudioOnly bool

	settings Settings
	profiles []Profile
	jobs     []job
	// audioSpans are the frames each of AudioWindows covers; audioList is
	// the concat script that joins them.
	audioSpans []span
	audioList  string
	// aacWindows are the encoded audio windows (aacwindows.go), with
	// windowed audio and an AAC profile.
	aacWindows []aacWindow
	// joint are, by video job, the job and the audio window of the same
	// span drawn by one command (joint.go; zero: none).
	joint []jointWindow
	cues  []timeline.Cue
}

// Default job bounds.
const (
	defaultJobSeconds = 180
	defaultJobInputs  = 24
)

// videoPlaceSteps: every render places its video sources on a grid of
// 1/videoPlaceSteps of an output frame (Settings.placeQuantum), so that a
// window drawn during the call with the sync model of that moment is the
// very job the post-call render would run whenever the final model puts
// every source in the same cell (reuse.go), and shows the same frames. Each
// output frame shows the source frame nearest to it by the grid's
// placement, which is the nearest by the model's own except where a source
// frame lies within 1/32 of a frame (1 ms at 30 fps) of the midpoint of two
// output frames: there it may show on either. A source whose rate is
// rounded too (more than 10 ppm from nominal) may move by up to 1/16 of a
// frame at the end of its job's stretch of it (snapPlacement).
const videoPlaceSteps = 16

// Compile translates a plan into FFmpeg commands. It is pure.
func Compile(p *timeline.Plan, s Settings) (*Program, error) {
	if len(s.Profiles) == 0 {
		return nil, fmt.Errorf("render: no profile")
	}
	if p.Width < 16 || p.Height < 16 || p.Width%2 != 0 || p.Height%2 != 0 {
		return nil, fmt.Errorf("render: plan size %dx%d: want even sizes of at least 16", p.Width, p.Height)
	}
	if s.Preset == "" {
		s.Preset = "veryfast"
	}
	if s.Captions == "" {
		s.Captions = CaptionsBurn
	}
	if s.Loudness == 0 {
		s.Loudness = DefaultLoudness
	}
	if s.MaxJobFrames <= 0 {
		s.MaxJobFrames = int64(defaultJobSeconds * p.FPS.Num / max(1, p.FPS.Den))
	}
	if s.MaxJobInputs <= 0 {
		s.MaxJobInputs = defaultJobInputs
	}
	if s.placeQuantum <= 0 && p.FPS.Num > 0 && p.FPS.Den > 0 {
		s.placeQuantum = frameTime(1, p.FPS) / videoPlaceSteps
	}
	ivs, total, err := quantize(p)
	if err != nil {
		return nil, fmt.Errorf("render: plan: %w", err)
	}
	prog := &Program{Frames: total, FPS: p.FPS, Width: p.Width, Height: p.Height, settings: s, profiles: s.Profiles}
	prog.Duration = time.Duration(float64(total) * float64(p.FPS.Den) / float64(p.FPS.Num) * float64(time.Second))
	if !hasVideo(p) {
		prog.AudioOnly = true
		prog.profiles = []Profile{{Name: ProfileAudio, kind: kindAudio}}
	}
	if s.Captions != CaptionsOff {
		prog.cues = p.Captions
	}
	aspect := float64(p.Width) / float64(p.Height)
	prog.Encodings = encodingsFor(prog.profiles, aspect)
	if len(prog.Encodings) > 0 {
		prog.jobs = planJobs(buildScenes(ivs, total, p.FPS), s.MaxJobFrames, s.MaxJobInputs)
		for i := range prog.jobs {
			prog.Video = append(prog.Video, videoJob(p, prog, i))
		}
	}
	if s.AudioWindows && len(prog.jobs) > 0 {
		for from := int64(0); from < total; from += s.MaxJobFrames {
			prog.audioSpans = append(prog.audioSpans, span{from, min(total, from+s.MaxJobFrames)})
		}
		prog.AudioWindows = audioWindows(p, prog)
		prog.joint = jointWindows(p, prog)
		if prog.needsAAC() {
			starts := make([]int64, len(prog.audioSpans))
			for i, sp := range prog.audioSpans {
				starts[i] = samplesOfFrames(sp.From, p.FPS)
			}
			prog.aacWindows = aacWindowsOf(starts, samplesOfFrames(total, p.FPS))
		}
		return prog, nil
	}
	prog.Audio = audioMix(p, prog)
	return prog, nil
}

// hasVideo reports whether any tile of the plan can show video.
func hasVideo(p *timeline.Plan) bool {
	for _, iv := range p.Intervals {
		for _, t := range iv.Tiles {
			if t.Lane != "" {
				return true
			}
		}
	}
	return false
}

// jobOutput is the work-folder file of job i for encoding e.
func jobOutput(e Encoding, i int) string {
	return fmt.Sprintf("video-%s-%03d%s", e.key(), i, e.ext())
}

// mixFile is the work-folder file of the audio mix.
const mixFile = "mix.wav"

// sessionPath resolves a plan path against the session folder.
func (s *Settings) sessionPath(rel string) string { return sessionFile(s.SessionDir, rel) }

// sessionFile resolves a plan path against session folder dir.
func sessionFile(dir, rel string) string {
	if filepath.IsAbs(rel) || rel == "" {
		return rel
	}
	return filepath.Join(dir, filepath.FromSlash(rel))
}

// Profiles returns the profiles the program produces (the audio profile
// alone for an audio-only plan).
func (p *Program) Profiles() []Profile { return slices.Clone(p.profiles) }

// baseArgs start every command.
func baseArgs() []string { return []string{"-hide_banner", "-nostdin", "-y"} }
