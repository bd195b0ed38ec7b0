package render

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// An export is what an editor downloads: one WAV and one MP4 per
// participant, every one starting at session time 0 and as long as the
// session (see stems.go), the timelines that place them (OpenTimelineIO,
// FCPXML, FCP7 XML, written by the interchange package), optionally a
// rendered composite as a reference, and an index (IndexName). It is built
// in a temporary folder beside the output folder and renamed into place
// only once everything succeeded, so that an interrupted or failed export
// leaves nothing.

// Timeline formats an export can write.
const (
	TimelineOTIO   = "otio"
	TimelineFCPXML = "fcpxml"
	TimelineXMEML  = "xmeml"
)

// TimelineFormats lists the timeline formats, in the order they are written.
func TimelineFormats() []string { return []string{TimelineOTIO, TimelineFCPXML, TimelineXMEML} }

// TimelineFile is the file name of a session's timeline in a format.
func TimelineFile(session, format string) string {
	switch format {
	case TimelineOTIO:
		return session + ".otio"
	case TimelineFCPXML:
		return session + ".fcpxml"
	}
	return session + ".xml"
}

// IndexName is the export's index: what it holds, for tools (download,
// the post-call jobs) and for a later export into the same folder, which
// replaces an export but refuses a folder holding anything else.
const IndexName = "tapedeck-export.json"

// referenceDir holds the rendered composite of an export (a folder of its
// own: no participant's stem can take its name).
const referenceDir = "reference"

// ErrOutputNotEmpty is wrapped when the output folder holds files that are
// not a previous export's.
var ErrOutputNotEmpty = errors.New("the output folder holds other files")

// ErrDiskFull is wrapped when the disk filled up during an export.
var ErrDiskFull = errors.New("the disk is full")

// ExportOptions say what to export and how to run FFmpeg.
type ExportOptions struct {
	// Edits (nil: none): the timelines apply their trim, cuts, mutes and
	// gains and mark their layout changes; the stems take only their
	// display names (and frame rate, unless FPS is set). Every participant
	// or lane they name must be in the recording.
	Edits *timeline.Edits
	// Audio makes PARTICIPANT.wav, Video PARTICIPANT.mp4.
	Audio, Video bool
	// Timelines are the formats to write (TimelineFormats); none for none.
	Timelines []string
	// FPS of the video stems and timelines (zero: the edits', else 30).
	FPS timeline.Rational
	// Width and Height, if set, are every video stem's size (each
	// participant's video contained, its aspect kept); zero: each
	// participant's largest video size.
	Width, Height int
	// Composite, if set, is a rendered composite put on the timelines as a
	// muted reference track: a file, a render folder, or the name of a
	// render of the session (SESSION/renders/NAME). It is copied into the
	// export.
	Composite string
	// OutDir receives the export; "" is SESSION/exports/default. It must not
	// exist, be empty, or hold a previous export (replaced once this one
	// succeeded).
	OutDir string
	// Nice, Parallel, FFmpeg, FontFile, Preset, Progress, ProgressTTY, Log
	// and KeepWork are as in Options.
	Nice        int
	Parallel    int
	FFmpeg      string
	FontFile    string
	Preset      string
	Progress    io.Writer
	ProgressTTY bool
	Log         *slog.Logger
	KeepWork    bool
	// MaxJobDuration bounds one video job (0: 3 minutes of output).
	MaxJobDuration time.Duration
}

func (o *ExportOptions) logger() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

// ExportResult says what an export wrote.
type ExportResult struct {
	// Dir is the export folder; Files every file in it (relative,
	// slash-separated, sorted), the index included.
	Dir   string
	Files []string
	// Session is "{room}/{session}".
	Session string
	// Frames, FPS and Duration are every stem's length; Samples every
	// WAV's.
	Frames   int64
	FPS      timeline.Rational
	Duration time.Duration
	Samples  int64
	// Stems are the participants' stems, in the order they joined.
	Stems []StemFile
	// Timelines are the timeline files written.
	Timelines []string
	// Reference is the composite copied into the export ("" for none).
	Reference string
	// Notes say what is not there and why (a participant without audio).
	Notes []string
}

// index is the JSON of IndexName.
type index struct {
	Version   int        `json:"version"`
	Session   string     `json:"session"`
	FPS       string     `json:"fps"`
	Frames    int64      `json:"frames"`
	Samples   int64      `json:"samples"`
	Duration  float64    `json:"duration_s"`
	Stems     []StemFile `json:"stems"`
	Timelines []string   `json:"timelines,omitempty"`
	Reference string     `json:"reference,omitempty"`
	Notes     []string   `json:"notes,omitempty"`
	Files     []string   `json:"files"`
}

// ReadIndex reads an export's index (IndexName in dir) and returns the
// files it lists.
func ReadIndex(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, IndexName))
	if err != nil {
		return nil, fmt.Errorf("render: export index: %w", err)
	}
	var ix index
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("render: export index %s: %w", filepath.Join(dir, IndexName), err)
	}
	for _, f := range ix.Files {
		if !fs.ValidPath(f) || f == "." {
			return nil, fmt.Errorf("render: export index %s: bad file name %q", filepath.Join(dir, IndexName), f)
		}
	}
	return ix.Files, nil
}

// parseTimelines checks timeline format names, dropping duplicates, in the
// order of TimelineFormats.
func parseTimelines(names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		if !slices.Contains(TimelineFormats(), n) {
			return nil, fmt.Errorf("render: timeline format %q: want %s", n, strings.Join(TimelineFormats(), ", "))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		return slices.Index(TimelineFormats(), a) - slices.Index(TimelineFormats(), b)
	})
	return out, nil
}

// CheckTimelineFPS reports whether the three timeline formats can express
// fps: a whole rate from 1 to 240, or an NTSC rate (N·1000/1001).
func CheckTimelineFPS(fps timeline.Rational) error {
	num, den := fps.Num, fps.Den
	if num <= 0 || den <= 0 {
		return fmt.Errorf("frame rate %s: want a positive rate", fps)
	}
	for a, b := num, den; b != 0; {
		a, b = b, a%b
		if b == 0 {
			num, den = num/a, den/a
		}
	}
	switch {
	case num < den || num > 240*den:
		return fmt.Errorf("frame rate %s: want 1 to 240 frames per second", fps)
	case den != 1 && !(den == 1001 && num%1000 == 0):
		return fmt.Errorf("frame rate %s: want a whole rate (25, 30, ...) or an NTSC rate (30000/1001, ...): the editors' formats have no other", fps)
	}
	return nil
}

// checkOutDir says whether dir may receive an export: absent, empty, or
// holding a previous export and nothing else. It reports whether dir
// exists.
func checkOutDir(dir string) (bool, error) {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("render: export: %w", err)
	}
	if !st.IsDir() {
		return false, fmt.Errorf("render: export: %s is a file, not a folder", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("render: export: %w", err)
	}
	if len(entries) == 0 {
		return true, nil
	}
	known := map[string]bool{IndexName: true}
	if files, err := ReadIndex(dir); err == nil {
		for _, f := range files {
			known[strings.Split(f, "/")[0]] = true
		}
	}
	var other []string
	for _, e := range entries {
		if !known[e.Name()] {
			other = append(other, e.Name())
		}
	}
	if len(other) == 0 {
		return true, nil
	}
	more := ""
	if len(other) > 5 {
		more = fmt.Sprintf(" and %d more", len(other)-5)
		other = other[:5]
	}
	return true, fmt.Errorf("render: export into %s: %w (%s%s, not a previous export): choose another folder or empty it",
		dir, ErrOutputNotEmpty, strings.Join(other, ", "), more)
}

// isDiskFull reports whether err (or the FFmpeg run it is) ran out of disk.
func isDiskFull(err error) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	var fe *FFmpegError
	return errors.As(err, &fe) && (strings.Contains(fe.Stderr, "No space left on device") || strings.Contains(fe.Stderr, "Disk quota exceeded"))
}

// loadSession reads a session folder's manifest and places its tracks.
func loadSession(dir string) (*timeline.Manifest, *timeline.Sync, error) {
	f, err := os.Open(filepath.Join(dir, manifestName))
	if err != nil {
		return nil, nil, fmt.Errorf("render: %w", err)
	}
	defer f.Close()
	m, err := timeline.ParseManifest(f)
	if err != nil {
		return nil, nil, fmt.Errorf("render: %s: %w", dir, err)
	}
	s, err := timeline.NewSync(m)
	if err != nil {
		return nil, nil, fmt.Errorf("render: %s: %w", dir, err)
	}
	return m, s, nil
}

// Export exports a recorded session folder for editors (see ExportOptions):
// the stems, the timelines, the reference and the index, into opts.OutDir.
// Nothing is left in or beside the output folder unless the whole export
// succeeds; a cancelled ctx stops every FFmpeg at once.
func Export(ctx context.Context, sessionDir string, opts ExportOptions) (res *ExportResult, err error) {
	log := opts.logger()
	dir, err := sessionFolder(sessionDir)
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	formats, err := parseTimelines(opts.Timelines)
	if err != nil {
		return nil, err
	}
	if !opts.Audio && !opts.Video {
		return nil, errors.New("render: export: no stems asked (audio none and video none): the timelines would place nothing")
	}
	m, s, err := loadSession(dir)
	if err != nil {
		return nil, err
	}
	fps := stemFPS(opts.FPS, opts.Edits)
	if len(formats) > 0 {
		if err := CheckTimelineFPS(fps); err != nil {
			return nil, fmt.Errorf("render: export: %w", err)
		}
	}
	// The edits are checked against the recording before any work: an
	// unknown participant is an error naming the line.
	var edited *timeline.Plan
	if opts.Edits != nil {
		if err := opts.Edits.Validate(m); err != nil {
			return nil, err
		}
	}
	if len(formats) > 0 || opts.Edits != nil {
		if edited, err = timeline.NewPlan(m, s, opts.Edits, timeline.PlanOptions{FPS: fps}); err != nil {
			return nil, fmt.Errorf("render: export: %w", err)
		}
	}
	ffmpeg, err := lookFFmpeg(opts.FFmpeg)
	if err != nil {
		return nil, err
	}
	font := opts.FontFile
	switch font {
	case "":
		if font = findFont(ctx); font == "" {
			log.Warn("render: no font found (install fonts-dejavu-core): names are not drawn on the placeholder frames")
		}
	case "none":
		font = ""
	}
	out := opts.OutDir
	if out == "" {
		out = filepath.Join(dir, "exports", "default")
	}
	if out, err = filepath.Abs(out); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	exists, err := checkOutDir(out)
	if err != nil {
		return nil, err
	}
	composite := ""
	if opts.Composite != "" {
		if composite, err = findComposite(dir, opts.Composite); err != nil {
			return nil, err
		}
	}
	sizes := map[string][2]int{}
	for _, p := range m.Participants {
		if largestVideo(m, p.ID).Width == 0 {
			if sz, ok := probeVideoSize(ctx, dir, m, p.ID); ok {
				sizes[p.ID] = [2]int{sz.Width, sz.Height}
			}
		}
	}
	plans, err := StemPlans(m, s, opts.Edits, StemPlanOptions{FPS: fps, Width: opts.Width, Height: opts.Height, Sizes: sizes})
	if err != nil {
		return nil, err
	}
	var maxFrames int64
	if opts.MaxJobDuration > 0 {
		maxFrames = max(1, frameAt(opts.MaxJobDuration, fps))
	}
	files := newSourceFiles(dir, log)
	sp, err := CompileStems(plans, StemSettings{SessionDir: dir, FontFile: font, Preset: opts.Preset, MaxJobFrames: maxFrames,
		Audio: opts.Audio, Video: opts.Video, lastFrame: files.before, stretchOf: files.audio})
	if err != nil {
		return nil, err
	}

	parent := filepath.Dir(out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("render: export: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".export-")
	if err != nil {
		return nil, fmt.Errorf("render: export: %w", diskFull(err, out))
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	work, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".work-")
	if err != nil {
		return nil, fmt.Errorf("render: export: %w", diskFull(err, out))
	}
	if opts.KeepWork {
		log.Info("render: keeping the work folder", "dir", work)
	} else {
		defer os.RemoveAll(work)
	}
	start := time.Now()
	log.Info("render: export started", "session", m.Room+"/"+m.Session, "duration", sp.Duration, "stems", len(sp.Stems),
		"fps", fps.String(), "timelines", strings.Join(formats, ","))
	pr := newProgress(opts.Progress, opts.ProgressTTY, sp.Duration, nil)
	pr.verb = "export"
	addStemSteps(pr, sp)
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = max(1, (&Options{}).parallel())
	}
	r := &runner{ffmpeg: ffmpeg, nice: opts.Nice, dir: work, log: log, record: opts.KeepWork}
	stems, err := runStems(ctx, r, sp, parallel, pr)
	if err != nil {
		return nil, diskFull(err, out)
	}
	pr.finish()
	res = &ExportResult{Dir: out, Session: m.Room + "/" + m.Session, Frames: sp.Frames, FPS: sp.FPS, Duration: sp.Duration,
		Samples: sp.Samples, Stems: stems}
	for i := range sp.Stems {
		j, st := &sp.Stems[i], stems[i]
		for _, name := range []string{j.WAV, j.MP4} {
			if name == "" {
				continue
			}
			src := stemPath(work, j, name)
			if err := verifyStem(ctx, src, sp, st, name == j.WAV); err != nil {
				return nil, err
			}
			if err := os.Rename(src, filepath.Join(tmp, name)); err != nil {
				return nil, fmt.Errorf("render: export: %w", err)
			}
			res.Files = append(res.Files, name)
		}
	}
	res.Notes = stemNotes(plans, opts.Audio, opts.Video)
	if composite != "" {
		name := path.Join(referenceDir, "composite"+strings.ToLower(filepath.Ext(composite)))
		if err := copyFile(ctx, composite, filepath.Join(tmp, filepath.FromSlash(name))); err != nil {
			return nil, diskFull(fmt.Errorf("render: export: reference %s: %w", composite, err), out)
		}
		res.Reference = name
		res.Files = append(res.Files, name)
	}
	if len(formats) > 0 {
		proj, err := exportProject(ctx, m, s, opts.Edits, edited, res, tmp)
		if err != nil {
			return nil, err
		}
		for _, f := range formats {
			name := TimelineFile(m.Session, f)
			if err := writeTimeline(proj, f, filepath.Join(tmp, name)); err != nil {
				return nil, diskFull(err, out)
			}
			res.Timelines = append(res.Timelines, name)
			res.Files = append(res.Files, name)
		}
	}
	res.Files = append(res.Files, IndexName)
	slices.Sort(res.Files)
	if err := writeIndex(tmp, res); err != nil {
		return nil, diskFull(err, out)
	}
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("render: export: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("render: export: %w", err)
	}
	if err := replaceDir(tmp, out, exists); err != nil {
		return nil, err
	}
	for _, n := range res.Notes {
		log.Info("render: export note", "note", n)
	}
	log.Info("render: export done", "took", time.Since(start).Round(time.Millisecond), "files", len(res.Files), "dir", out)
	return res, nil
}

// diskFull adds what a full disk means to err.
func diskFull(err error, out string) error {
	if err == nil || !isDiskFull(err) {
		return err
	}
	return fmt.Errorf("render: export into %s: %w; nothing was left behind: free some space and export again: %w", out, ErrDiskFull, err)
}

// lookFFmpeg finds the ffmpeg binary.
func lookFFmpeg(ffmpeg string) (string, error) {
	if ffmpeg == "" {
		p, err := exec.LookPath("ffmpeg")
		if err != nil {
			return "", fmt.Errorf("render: %w", errNoFFmpeg)
		}
		return p, nil
	}
	p, err := exec.LookPath(ffmpeg)
	if err != nil {
		return "", fmt.Errorf("render: ffmpeg: %w", err)
	}
	return p, nil
}

// stemNotes says which stems are missing and why.
func stemNotes(plans []StemPlan, audio, video bool) []string {
	var notes []string
	for _, p := range plans {
		switch {
		case !p.Audio && !p.Video:
			notes = append(notes, fmt.Sprintf("%s: nothing was recorded: no stem", p.Participant))
		case audio && !p.Audio:
			notes = append(notes, fmt.Sprintf("%s sent no audio: no %s.wav", p.Participant, p.Participant))
			if video {
				notes = append(notes, fmt.Sprintf("%s.mp4 has no sound", p.Participant))
			}
		case video && !p.Video:
			notes = append(notes, fmt.Sprintf("%s sent no video: no %s.mp4", p.Participant, p.Participant))
		}
	}
	return notes
}

// probeVideoSize reads the size of a participant's first video file.
func probeVideoSize(ctx context.Context, dir string, m *timeline.Manifest, participant string) (picSize, bool) {
	if !haveFFprobe() {
		return picSize{}, false
	}
	for _, l := range m.Lanes {
		if l.Participant != participant || l.Kind != timeline.Video {
			continue
		}
		for _, t := range l.Tracks {
			for _, sg := range t.Segments {
				info, err := probeFile(ctx, filepath.Join(dir, filepath.FromSlash(sg.Path)))
				if err != nil {
					continue
				}
				if v := info.stream("video"); v != nil && v.Width > 0 && v.Height > 0 {
					return picSize{v.Width, v.Height}, true
				}
			}
		}
	}
	return picSize{}, false
}

// findComposite resolves ExportOptions.Composite: a file, a render folder
// (its MP4), or the name of a render of the session.
func findComposite(sessionDir, arg string) (string, error) {
	p := arg
	st, err := os.Stat(p)
	if err != nil && !strings.ContainsAny(arg, `/\`) {
		p = filepath.Join(sessionDir, "renders", arg)
		st, err = os.Stat(p)
	}
	if err != nil {
		return "", fmt.Errorf("render: composite %q: no such file, folder or render of the session (%s): %w", arg,
			filepath.Join(sessionDir, "renders", arg), err)
	}
	if !st.IsDir() {
		return filepath.Abs(p)
	}
	for _, prof := range []string{ProfileMP4_1080, ProfileMP4_720, ProfileMP4_360} {
		f := filepath.Join(p, OutputName(prof))
		if _, err := os.Stat(f); err == nil {
			return filepath.Abs(f)
		}
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return "", fmt.Errorf("render: composite: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() && strings.EqualFold(filepath.Ext(e.Name()), ".mp4") {
			return filepath.Abs(filepath.Join(p, e.Name()))
		}
	}
	return "", fmt.Errorf("render: composite %q: %s holds no MP4 render", arg, p)
}

// copyFile copies src to dst (a hard link when it can), creating dst's
// folder. A dst that is there already is replaced, not written into: it
// may be a link to src (a kept window taken into the work folder that
// drew it), which writing would truncate.
func copyFile(ctx context.Context, src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	si, err := os.Stat(src)
	if err != nil {
		return err
	}
	if di, err := os.Stat(dst); err == nil {
		if os.SameFile(si, di) {
			return nil
		}
		if err := os.Remove(dst); err != nil {
			return err
		}
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	o, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = io.Copy(o, ctxReader{ctx, in})
	if cerr := o.Close(); err == nil {
		err = cerr
	}
	return err
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := context.Cause(c.ctx); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// writeIndex writes the export's index into dir.
func writeIndex(dir string, res *ExportResult) error {
	ix := index{Version: 1, Session: res.Session, FPS: res.FPS.String(), Frames: res.Frames, Samples: res.Samples,
		Duration: res.Duration.Seconds(), Stems: res.Stems, Timelines: res.Timelines, Reference: res.Reference, Notes: res.Notes,
		Files: res.Files}
	b, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return fmt.Errorf("render: export index: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, IndexName), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("render: export index: %w", err)
	}
	return nil
}

// replaceDir puts the finished folder tmp at out: renamed into place, an
// existing out (empty, or a previous export) moved aside first and removed
// after.
func replaceDir(tmp, out string, exists bool) error {
	if !exists {
		if err := os.Rename(tmp, out); err != nil {
			return fmt.Errorf("render: export: %w", err)
		}
		return nil
	}
	old, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+".old-")
	if err != nil {
		return fmt.Errorf("render: export: %w", err)
	}
	if err := os.Remove(old); err != nil {
		return fmt.Errorf("render: export: %w", err)
	}
	if err := os.Rename(out, old); err != nil {
		return fmt.Errorf("render: export: replace %s: %w", out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		_ = os.Rename(old, out)
		return fmt.Errorf("render: export: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("render: export: remove the previous export %s: %w", old, err)
	}
	return nil
}
