package render

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// WithOverlays returns o with every scene composed with the overlay chain,
// never with xstack (the benchmark compares the two).
func WithOverlays(o Options) Options {
	o.overlays = true
	return o
}

// WithAudioResampled returns o with every audio piece placed by aresample,
// whether or not its file shows it steady (sourceaudio.go).
func WithAudioResampled(o Options) Options {
	o.resampleAll = true
	return o
}

// Composed counts how a program's scenes were composed (FrameHashes).
type Composed struct {
	Scenes   int // scenes in the program's jobs
	Stacked  int // scenes composed by the stack (stackScene)
	Canvases int // full-frame canvases (a stacked scene's tiles leave some of the frame uncovered)
	Unpadded int // tiles whose picture is the tile's size, neither resized nor padded
}

// FrameHashes runs the video jobs of plan's program (default profile) with
// their encoders replaced by FFmpeg's framemd5 muxer, in the folder work, and
// returns the hash of every output frame's picture, in order, and how its
// scenes were composed. overlays composes every scene with the overlay chain
// instead.
func FrameHashes(ctx context.Context, plan *timeline.Plan, sessionDir, work string, overlays bool) (hashes []string, comp Composed, err error) {
	profiles, err := parseProfiles(nil)
	if err != nil {
		return nil, comp, err
	}
	prog, err := Compile(plan, Settings{SessionDir: sessionDir, Profiles: profiles, FontFile: findFont(ctx), Preset: "veryfast", overlays: overlays})
	if err != nil {
		return nil, comp, err
	}
	// stackScene's canvas: the output's size, cut to the scene's frames
	// (a tile's background frames are cut to 2 and retimed).
	stacked := regexp.MustCompile(`\[xs\d+\](;|$)`)
	unpadded := regexp.MustCompile(`scale=w=\d+:h=\d+:eval=frame:flags=bilinear,setsar=1\[`)
	canvas := regexp.MustCompile(fmt.Sprintf(`color=c=[^,:]+:s=%dx%d:r=[^,]+,trim=end_frame=\d+,format=yuv420p\[`, plan.Width, plan.Height))
	for i, c := range prog.Video {
		for name, body := range c.Files {
			if err := os.WriteFile(filepath.Join(work, name), []byte(body), 0o644); err != nil {
				return nil, comp, err
			}
			comp.Stacked += len(stacked.FindAllString(body, -1))
			comp.Canvases += len(canvas.FindAllString(body, -1))
			comp.Unpadded += len(unpadded.FindAllString(body, -1))
		}
		enc := slices.Index(c.Args, "-c:v")
		if enc < 0 {
			return nil, comp, fmt.Errorf("%s: no encoder in %q", c.Name, c.Args)
		}
		for _, a := range c.Args {
			if strings.HasPrefix(a, "[") && strings.HasSuffix(a, "]") && !strings.Contains(a, ";") {
				continue // a -map of a stacked scene's pad, not a scene
			}
			comp.Stacked += len(stacked.FindAllString(a, -1))
			comp.Canvases += len(canvas.FindAllString(a, -1))
			comp.Unpadded += len(unpadded.FindAllString(a, -1))
		}
		out := filepath.Join(work, fmt.Sprintf("video-%03d.md5", i))
		args := append(append(append([]string{"-loglevel", "error"}, c.Args[:enc]...), "-f", "framemd5"), out)
		cmd := exec.CommandContext(ctx, "ffmpeg", args...)
		cmd.Dir = work
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, comp, fmt.Errorf("%s: %w\n%s", c.Name, err, b)
		}
		f, err := os.Open(out)
		if err != nil {
			return nil, comp, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if line := sc.Text(); !strings.HasPrefix(line, "#") {
				fields := strings.Split(line, ",")
				hashes = append(hashes, strings.TrimSpace(fields[len(fields)-1]))
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, comp, err
		}
	}
	for _, j := range prog.jobs {
		comp.Scenes += len(j.Scenes)
	}
	return hashes, comp, nil
}

// JointOutputs compiles plan (profiles; default when none) in windows of
// window, and runs every joint command (joint.go) in the folder joint, and
// the video job and the audio window it stands for, each alone, in the
// folder apart. It returns the files they wrote, by name (the same in both
// folders), and how many joint commands ran.
func JointOutputs(ctx context.Context, plan *timeline.Plan, sessionDir string, profiles []string, window time.Duration, joint, apart string) (files []string, joints int, err error) {
	ps, err := parseProfiles(profiles)
	if err != nil {
		return nil, 0, err
	}
	prog, err := Compile(plan, Settings{SessionDir: sessionDir, Profiles: ps, FontFile: findFont(ctx), Preset: "veryfast",
		MaxJobFrames: frameAt(window, plan.FPS), AudioWindows: true})
	if err != nil {
		return nil, 0, err
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return nil, 0, err
	}
	run := func(dir string, c Command) error {
		r := &runner{ffmpeg: ffmpeg, dir: dir, log: slog.New(slog.DiscardHandler)}
		_, err := r.run(ctx, c, func(time.Duration) {})
		return err
	}
	for i, j := range prog.joint {
		if j.audio < 0 {
			continue
		}
		if err := run(joint, j.Command); err != nil {
			return nil, 0, err
		}
		if err := run(apart, prog.Video[i]); err != nil {
			return nil, 0, err
		}
		if err := run(apart, prog.AudioWindows[j.audio]); err != nil {
			return nil, 0, err
		}
		files = append(files, j.Outputs...)
		joints++
	}
	return files, joints, nil
}

// MuxEncodingAAC is the mux that encodes the AAC itself, with the loudness
// l's filters, when the program's AAC may be left to its mux (nil
// otherwise): the golden files show it beside the encode and the copy.
func (p *Program) MuxEncodingAAC(l Loudness) []Command {
	if !p.muxMayEncodeAAC() {
		return nil
	}
	copying := p.Mux()
	var cmds []Command
	for i, c := range p.muxes(&aacByMux{filters: loudnessFilters(&p.settings, l)}) {
		if !slices.Equal(c.Args, copying[i].Args) { // the one that encodes
			c.Name += ", encoding the AAC"
			cmds = append(cmds, c)
		}
	}
	return cmds
}

// NormalizationFilters are the filters with which a render brings a mix,
// the 48-kHz stereo float WAV at path, to the default loudness target (none
// for silence): the benchmark gives its hand-written command the same gain.
func NormalizationFilters(path string) ([]string, error) {
	b, err := measureWAV(path, 0)
	if err != nil {
		return nil, err
	}
	return loudnessFilters(&Settings{Loudness: DefaultLoudness}, b.loudness()), nil
}
