package render

import (
	"errors"
	"fmt"
	"math"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// Stems are one more kind of output of the same plan machinery: per
// participant instead of composite. Each participant's stem is drawn from a
// plan of its own — timeline.NewPlan with a single-lane layout of that
// participant and every other participant excluded — compiled by Compile
// like any plan, so its frames and samples are placed by the same sync
// model, the same piece placement and the same audio chain as the
// composite's. The composite's own plan cannot serve: it shows only the tiles
// its layout arranges (a speaker layout drops the others), leaves out muted
// and excluded lanes, and is cut.
//
// Every stem plan covers the whole session (no cuts, trims, mutes, gains,
// hides, overlays or captions: stems are whole; the editor timelines apply
// the edits), so every stem of a session has the same number of frames and
// samples. Where the participant is not in the call (before a join, after a
// leave, between a leave and a rejoin), the stem plan has no tile: stemPlan
// adds a placeholder tile there, so that the picture is the same plain frame
// with the participant's name that the composite draws for a participant
// without video (placeholderColor, the name centred in white); a
// packet-loss hole of the video (over timeline.MinGap) shows it too, shorter
// holes hold the last frame; the audio is silence wherever the participant
// sent none.

// Stem sizes.
const (
	// fallbackStemWidth and fallbackStemHeight are a video stem's size when
	// the recording never says the participant's video size.
	fallbackStemWidth  = 1280
	fallbackStemHeight = 720
	// stemAACBitrate is the AAC bitrate (kbit/s) of a video stem's audio,
	// per channel.
	stemAACBitrate = 96
	// sideSilent is the peak (dBFS) of L − R under which a stem's audio is
	// mono: a mono Opus stream decodes to two identical channels.
	sideSilent = -120.0
)

// StemPlan is one participant's stem: the plan that draws it.
type StemPlan struct {
	// Participant is the participant's ID; Name its display name (drawn on
	// the placeholder).
	Participant, Name string
	// Plan covers the whole session; its size is the video stem's size.
	Plan *timeline.Plan
	// Video says the participant sent video (some tile shows a source);
	// Audio that they sent audio.
	Video, Audio bool
	// First is the output time at which the participant first has media
	// (the session's length when never): stems are listed in this order.
	First time.Duration
}

// StemPlanOptions say how the stem plans are drawn.
type StemPlanOptions struct {
	// FPS of the video stems (zero: the edits' frame rate, else 30).
	FPS timeline.Rational
	// Width and Height, if set, are every video stem's size (the
	// participant's video contained in it, its aspect kept); else each stem
	// has its participant's largest video size.
	Width, Height int
	// Sizes gives a participant's video size where the manifest does not
	// (read from its files); the default is 1280x720.
	Sizes map[string][2]int
}

// picSize is a picture's width and height.
type picSize struct{ Width, Height int }

// largestVideo returns the largest video size (by area) that the manifest
// records for the participant: its segments' sizes and its resolution
// changes. Zero when it records none.
func largestVideo(m *timeline.Manifest, participant string) picSize {
	var best picSize
	consider := func(w, h int) {
		if w > 0 && h > 0 && w*h > best.Width*best.Height {
			best = picSize{w, h}
		}
	}
	for _, l := range m.Lanes {
		if l.Participant != participant || l.Kind != timeline.Video {
			continue
		}
		for _, t := range l.Tracks {
			for _, sg := range t.Segments {
				consider(sg.Width, sg.Height)
			}
			for _, ev := range t.Events {
				if ev.Kind == timeline.EventResolution {
					consider(ev.Width, ev.Height)
				}
			}
		}
	}
	return best
}

// evenSize rounds a size down to even numbers of at least 16 (H.264 in
// yuv420p needs even sizes).
func evenSize(w, h int) (int, int) {
	return max(16, w&^1), max(16, h&^1)
}

// displayNames returns every participant's display name: the edits' name,
// else the manifest's, else the ID.
func displayNames(m *timeline.Manifest, e *timeline.Edits) map[string]string {
	names := map[string]string{}
	for _, p := range m.Participants {
		names[p.ID] = p.Name
		if p.Name == "" {
			names[p.ID] = p.ID
		}
	}
	if e != nil {
		for _, le := range e.Lanes {
			if _, ok := names[le.Ref]; ok && le.Name != nil {
				names[le.Ref] = *le.Name
			}
		}
	}
	return names
}

// stemFPS is the stems' frame rate: fps if set, else the edits' output
// frame rate, else 30.
func stemFPS(fps timeline.Rational, e *timeline.Edits) timeline.Rational {
	switch {
	case fps.Num > 0 && fps.Den > 0:
		return fps
	case e != nil && e.Output.FPS.Num > 0 && e.Output.FPS.Den > 0:
		return e.Output.FPS
	}
	return timeline.Rational{Num: timeline.DefaultFPS, Den: 1}
}

// StemPlans builds every participant's stem plan, in the order they first
// have media (then by ID). e (nil: none) gives the display names and the
// frame rate; nothing else of it applies to stems.
func StemPlans(m *timeline.Manifest, s *timeline.Sync, e *timeline.Edits, o StemPlanOptions) ([]StemPlan, error) {
	if m == nil || s == nil {
		return nil, errors.New("render: stems: nil manifest or sync")
	}
	if (o.Width > 0 || o.Height > 0) && (o.Width < 16 || o.Height < 16 || o.Width%2 != 0 || o.Height%2 != 0) {
		return nil, fmt.Errorf("render: stems: size %dx%d: want even sizes of at least 16", o.Width, o.Height)
	}
	fps := stemFPS(o.FPS, e)
	names := displayNames(m, e)
	var out []StemPlan
	for _, p := range m.Participants {
		w, h := o.Width, o.Height
		if w == 0 {
			sz := largestVideo(m, p.ID)
			if sz.Width == 0 {
				if v, ok := o.Sizes[p.ID]; ok && v[0] > 0 && v[1] > 0 {
					sz = picSize{v[0], v[1]}
				} else {
					sz = picSize{fallbackStemWidth, fallbackStemHeight}
				}
			}
			w, h = evenSize(sz.Width, sz.Height)
		}
		sp, err := stemPlan(m, s, p.ID, names, w, h, fps)
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].First != out[j].First {
			return out[i].First < out[j].First
		}
		return out[i].Participant < out[j].Participant
	})
	return out, nil
}

// stemPlan builds one participant's stem plan at w×h.
func stemPlan(m *timeline.Manifest, s *timeline.Sync, id string, names map[string]string, w, h int, fps timeline.Rational) (StemPlan, error) {
	name, none, off := names[id], "", false
	e := &timeline.Edits{
		File:   "(stem of " + id + ")",
		Labels: &off,
		Layouts: []timeline.LayoutChange{{Type: timeline.LayoutSingle, Lane: id, Gap: -1, Fit: timeline.FitContain,
			Pos: timeline.Pos{Field: "stem " + id}}},
	}
	for _, p := range m.Participants {
		if p.ID == id {
			e.Lanes = append(e.Lanes, timeline.LaneEdit{Ref: id, Name: &name, Label: &none})
		} else {
			e.Lanes = append(e.Lanes, timeline.LaneEdit{Ref: p.ID, Exclude: true})
		}
	}
	plan, err := timeline.NewPlan(m, s, e, timeline.PlanOptions{Width: w, Height: h, FPS: fps})
	if err != nil {
		return StemPlan{}, fmt.Errorf("render: stem of %s: %w", id, err)
	}
	lane := ""
	for _, l := range m.Lanes {
		if l.Participant == id && l.Kind == timeline.Video && (lane == "" || l.ID < lane) {
			lane = l.ID
		}
	}
	sp := StemPlan{Participant: id, Name: name, Plan: plan, First: plan.Duration}
	holder := timeline.Tile{Participant: id, Lane: lane, Rect: timeline.Rect{W: w, H: h}, Fit: timeline.FitContain, Name: name,
		Placeholder: timeline.PlaceholderAbsent}
	for i := range plan.Intervals {
		iv := &plan.Intervals[i]
		if len(iv.Tiles) == 0 {
			iv.Tiles = []timeline.Tile{holder}
		}
		has := len(iv.Audio) > 0
		for _, t := range iv.Tiles {
			if t.Source != nil {
				sp.Video, has = true, true
			}
		}
		if len(iv.Audio) > 0 {
			sp.Audio = true
		}
		if has && iv.Start < sp.First {
			sp.First = iv.Start
		}
	}
	return sp, nil
}

// kindStem is the profile kind of a video stem: H.264 at the plan's own
// size, muxed by the stem program (never by Program.Mux).
const kindStem = "stem"

// stemProfile is the profile whose one encoding is w×h H.264.
func stemProfile(w, h int) Profile {
	return Profile{Name: "stem", kind: kindStem, lines: []int{min(w, h)}}
}

// StemProgram is a compiled export of stems: one StemJob per participant
// that has media, every one of the same length.
type StemProgram struct {
	Frames   int64
	FPS      timeline.Rational
	Duration time.Duration
	// Samples is every audio stem's length (48 kHz).
	Samples int64
	Stems   []StemJob
}

// StemJob is one participant's stem: the program of its plan (video jobs
// and the placed audio), then the commands that make its files.
type StemJob struct {
	Participant, Name string
	// Dir is the job's work subfolder (its commands run there).
	Dir string
	// WAV and MP4 are the file names of its stems ("" when not made).
	WAV, MP4 string
	// Width and Height of the MP4.
	Width, Height int
	// Audio says the participant sent audio: it is placed (Program.Audio)
	// and goes into the WAV and the MP4.
	Audio bool
	// Program is the participant's compiled plan: its Video jobs draw the
	// MP4's picture, its Audio command places the participant's audio
	// (measuring whether it is stereo).
	Program *Program
}

// StemSettings say what CompileStems makes.
type StemSettings struct {
	// SessionDir, FontFile, Preset, MaxJobFrames and MaxJobInputs are as in
	// Settings.
	SessionDir   string
	FontFile     string
	Preset       string
	MaxJobFrames int64
	MaxJobInputs int
	// Audio makes PARTICIPANT.wav, Video PARTICIPANT.mp4 (with the
	// participant's audio as AAC when they sent any).
	Audio, Video bool
	// lastFrame and stretchOf are Settings'.
	lastFrame func(path string, t float64) (float64, bool)
	stretchOf func(path string, fs float64, n int64, seek bool) audioStretch
}

// CompileStems translates stem plans into FFmpeg commands. It is pure. A
// participant without audio gets no WAV, one without video no MP4.
func CompileStems(plans []StemPlan, ss StemSettings) (*StemProgram, error) {
	if !ss.Audio && !ss.Video {
		return nil, errors.New("render: stems: neither audio nor video asked")
	}
	sp := &StemProgram{}
	for i, p := range plans {
		if i == 0 {
			sp.FPS = p.Plan.FPS
		} else if p.Plan.FPS != sp.FPS {
			return nil, fmt.Errorf("render: stems: %s at %s fps, %s at %s", plans[0].Participant, sp.FPS, p.Participant, p.Plan.FPS)
		}
		video := ss.Video && p.Video
		audio := p.Audio && (ss.Audio || video)
		if !video && !audio {
			continue
		}
		profile := stemProfile(p.Plan.Width, p.Plan.Height)
		if !video {
			profile = Profile{Name: ProfileAudio, kind: kindAudio}
		}
		prog, err := Compile(p.Plan, Settings{SessionDir: ss.SessionDir, Profiles: []Profile{profile}, FontFile: ss.FontFile,
			Preset: ss.Preset, Captions: CaptionsOff, LoudnessOff: true, MaxJobFrames: ss.MaxJobFrames, MaxJobInputs: ss.MaxJobInputs,
			measureSide: true, lastFrame: ss.lastFrame, stretchOf: ss.stretchOf})
		if err != nil {
			return nil, fmt.Errorf("render: stem of %s: %w", p.Participant, err)
		}
		if len(sp.Stems) == 0 {
			sp.Frames, sp.Duration = prog.Frames, prog.Duration
			sp.Samples = samplesOfFrames(prog.Frames, prog.FPS)
		} else if prog.Frames != sp.Frames {
			return nil, fmt.Errorf("render: stems: %s lasts %d frames, %s %d: every stem must cover the session", sp.Stems[0].Participant,
				sp.Frames, p.Participant, prog.Frames)
		}
		j := StemJob{Participant: p.Participant, Name: p.Name, Dir: p.Participant, Program: prog, Audio: audio}
		for k := range prog.Video {
			prog.Video[k].Name = p.Participant + " " + prog.Video[k].Name
		}
		prog.Audio.Name = p.Participant + " audio"
		if audio && ss.Audio {
			j.WAV = p.Participant + ".wav"
		}
		if video {
			j.MP4 = p.Participant + ".mp4"
			j.Width, j.Height = p.Plan.Width, p.Plan.Height
		}
		sp.Stems = append(sp.Stems, j)
	}
	if len(sp.Stems) == 0 {
		return nil, errors.New("render: stems: no participant sent the media asked for")
	}
	return sp, nil
}

// hasAudio says the stem carries the participant's audio: its placed
// audio is made and encoded.
func (j *StemJob) hasAudio() bool { return j.Audio && (j.WAV != "" || j.MP4 != "") }

// stemOut is the path (in the job's folder) of a finished stem file.
func stemOut(name string) string { return path.Join(outDirName, name) }

// stemAACFile is the encoded audio of a video stem.
const stemAACFile = "stem-aac.m4a"

// downmix is the filter that makes the stem's channels: mono takes the mean
// of two identical channels (exactly either one).
func downmix(stereo bool) []string {
	if stereo {
		return nil
	}
	return []string{"-af", "pan=mono|c0=0.5*c0+0.5*c1"}
}

// Encodes returns the commands that turn the job's placed audio into its
// stem formats: 24-bit PCM WAV and, for the MP4, AAC; mono unless stereo.
func (j *StemJob) Encodes(stereo bool) []Command {
	if !j.hasAudio() {
		return nil
	}
	ch := 1
	if stereo {
		ch = 2
	}
	d := j.Program.Duration
	var cmds []Command
	if j.WAV != "" {
		out := stemOut(j.WAV)
		args := append(baseArgs(), "-i", mixFile)
		args = append(args, downmix(stereo)...)
		args = append(args, "-vn", "-c:a", "pcm_s24le", "-ar", "48000", "-ac", itoa(ch), "-rf64", "auto", "-fflags", "+bitexact", "-f", "wav", out)
		cmds = append(cmds, Command{Name: j.Participant + " wav", Args: args, Outputs: []string{out}, Duration: d})
	}
	if j.MP4 != "" {
		args := append(baseArgs(), "-i", mixFile)
		args = append(args, downmix(stereo)...)
		// Edit lists in 1/48000 s, here and in the mux: the AAC's last
		// packet cut to the session's last sample, not to a millisecond.
		args = append(args, "-vn", "-c:a", "aac", "-b:a", fmt.Sprintf("%dk", stemAACBitrate*ch), "-ar", "48000", "-ac", itoa(ch),
			"-movie_timescale", "48000", "-f", "mp4", stemAACFile)
		cmds = append(cmds, Command{Name: j.Participant + " aac", Args: args, Outputs: []string{stemAACFile}, Duration: d})
	}
	return cmds
}

// Mux returns the command that writes the MP4 stem from the video jobs'
// outputs and the AAC, by copying, moov first; nil without an MP4.
func (j *StemJob) Mux() *Command {
	if j.MP4 == "" {
		return nil
	}
	p := j.Program
	e := p.Encodings[0]
	var names []string
	var durs []float64
	for i := range p.jobs {
		names = append(names, jobOutput(e, i))
		durs = append(durs, frameTime(p.jobs[i].frames(), p.FPS))
	}
	args := append(baseArgs(), concatInput(e)...)
	audio := j.hasAudio()
	if audio {
		args = append(args, "-i", stemAACFile, "-map", "0:v", "-map", "1:a")
	} else {
		args = append(args, "-map", "0:v")
	}
	out := stemOut(j.MP4)
	args = append(args, "-c", "copy", "-movie_timescale", "48000", "-movflags", "+faststart", "-f", "mp4", out)
	return &Command{Name: j.Participant + " mux", Args: args, Files: map[string]string{listFile(e): ffconcat(names, durs)},
		Outputs: []string{out}, Duration: p.Duration}
}

// parseSide reads the peak of L − R (dBFS) from the astats summary that the
// stem's audio command writes to stderr.
func parseSide(stderr string) (float64, error) {
	i := strings.LastIndex(stderr, "Peak level dB:")
	if i < 0 {
		return 0, errors.New("no channel measurement (astats) in FFmpeg's output")
	}
	f := strings.Fields(stderr[i+len("Peak level dB:"):])
	if len(f) == 0 {
		return 0, errors.New("no value in the channel measurement")
	}
	switch strings.ToLower(f[0]) {
	case "-inf":
		return math.Inf(-1), nil
	}
	var v float64
	if _, err := fmt.Sscanf(f[0], "%g", &v); err != nil {
		return 0, fmt.Errorf("channel measurement %q: %w", f[0], err)
	}
	return v, nil
}
