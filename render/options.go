package render

import (
	"io"
	"log/slog"
	"runtime"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// Options say what to render and how to run FFmpeg. The zero value renders
// the default profile (MP4 720p) of an unedited session into
// SESSION/renders/default, with FFmpeg found in PATH.
type Options struct {
	// Profiles to render (see Profiles); none renders DefaultProfile. They
	// share one composite: it is drawn once, at the largest size, and
	// scaled for the others.
	Profiles []string
	// Edits (nil: none) as parsed by timeline.LoadEdits or ParseEdits.
	Edits *timeline.Edits
	// Layout, if set, replaces the edits' layouts for the whole output:
	// grid, speaker, pip or single.
	Layout timeline.LayoutType
	// Lane is what the single layout shows (a participant or lane ID); ""
	// is the first participant to join.
	Lane string
	// OutDir receives the outputs (see OutputName); "" is the session's
	// renders/default folder. Existing outputs of the same names are
	// replaced, only once the whole render succeeded.
	OutDir string
	// Captions: burn (default), track or off.
	Captions CaptionMode
	// Loudness is the target integrated loudness in LUFS (0: −16);
	// LoudnessOff leaves the mix's level as recorded.
	Loudness    float64
	LoudnessOff bool
	// Nice is the niceness FFmpeg runs with, so that a render yields to
	// capture on a shared machine; 0 runs it at this process's priority.
	Nice int
	// Parallel is the number of video jobs run at once (0: a quarter of
	// the CPUs, at least 1; x264 uses several threads per job).
	Parallel int
	// FFmpeg is the ffmpeg binary ("": found in PATH).
	FFmpeg string
	// FontFile is the font of names, labels and placeholders: "" finds one
	// with fc-match (DejaVu Sans), "none" draws no text.
	FontFile string
	// Preset is the x264 preset ("": veryfast).
	Preset string
	// Progress, if set, receives the progress: a bar redrawn in place when
	// ProgressTTY, plain lines otherwise.
	Progress    io.Writer
	ProgressTTY bool
	// Log receives what the render does (nil: nothing).
	Log *slog.Logger
	// KeepWork keeps the work folder (intermediate files, FFmpeg's text
	// inputs) for inspection; its path is logged.
	KeepWork bool
	// MaxJobDuration bounds one video job (0: 3 minutes of output).
	MaxJobDuration time.Duration
	// Reuse, if set, is a folder where finished video jobs (windows of the
	// output) are kept, and from which a render with the same options takes
	// the windows it would render identically instead of running FFmpeg
	// again: a render interrupted midway goes on where it stopped (see
	// reuse.go). The caller removes it when the render is no longer needed.
	Reuse string

	// overlays composes every scene with the overlay chain (Settings);
	// set by the tests and the benchmark, through export_test.go.
	overlays bool
	// resampleAll places every audio piece with aresample, as if no file
	// could be read (Settings.stretchOf unset); the tests compare.
	resampleAll bool
}

// Output is one rendered profile.
type Output struct {
	Profile string
	// Path is the main file: the video, the M4A, or the HLS master playlist.
	Path string
	// Files are every file written for the profile, relative to the output
	// folder, slash-separated (the playlists and segments of HLS).
	Files []string
	// Duration is the output's length.
	Duration time.Duration
}

func (o *Options) logger() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

func (o *Options) parallel() int {
	if o.Parallel > 0 {
		return o.Parallel
	}
	return max(1, runtime.NumCPU()/4)
}
