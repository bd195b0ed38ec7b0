package render

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"
)

// StemFile is one participant's finished stems.
type StemFile struct {
	Participant string `json:"participant"`
	Name        string `json:"name"`
	// WAV and MP4 are the files' names in the output folder ("" when not
	// made).
	WAV string `json:"wav,omitempty"`
	MP4 string `json:"mp4,omitempty"`
	// Channels of the audio (1 or 2; 0 without audio).
	Channels int `json:"channels,omitempty"`
	// Width and Height of the MP4.
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
}

// addStemSteps declares the program's steps to the progress.
func addStemSteps(pr *progress, sp *StemProgram) {
	for i := range sp.Stems {
		j := &sp.Stems[i]
		for _, c := range j.Program.Video {
			pr.add(c.Name, c.Duration, weightVideo)
		}
		if j.hasAudio() {
			pr.add(j.Program.Audio.Name, j.Program.Audio.Duration, weightAudio)
			for _, c := range j.Encodes(false) {
				pr.add(c.Name, c.Duration, weightEncode)
			}
		}
		if m := j.Mux(); m != nil {
			pr.add(m.Name, m.Duration, weightMux)
		}
	}
}

// runStems runs a stem program in work (one subfolder per participant):
// the video jobs at most parallel at a time, beside them each participant's
// audio (placed, measured, encoded; at most half the CPUs at a time), then
// each participant's mux. The first failure cancels the rest. It returns
// the stems, with their files still in the work folder (see stemPath).
func runStems(ctx context.Context, base *runner, sp *StemProgram, parallel int, pr *progress) ([]StemFile, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel(err)
		}
	}
	run := func(r *runner, c Command) (string, error) {
		stderr, err := r.run(ctx, c, func(d time.Duration) { pr.update(c.Name, d) })
		if err == nil {
			pr.update(c.Name, c.Duration)
		}
		return stderr, err
	}
	videoSem := make(chan struct{}, max(1, parallel))
	audioSem := make(chan struct{}, max(1, runtime.NumCPU()/2))
	acquire := func(sem chan struct{}) bool {
		select {
		case sem <- struct{}{}:
			return ctx.Err() == nil
		case <-ctx.Done():
			return false
		}
	}
	out := make([]StemFile, len(sp.Stems))
	var all sync.WaitGroup
	for i := range sp.Stems {
		j := &sp.Stems[i]
		r := *base
		r.dir = filepath.Join(base.dir, j.Dir)
		if err := os.MkdirAll(r.dir, 0o755); err != nil {
			return nil, fmt.Errorf("render: stems: %w", err)
		}
		out[i] = StemFile{Participant: j.Participant, Name: j.Name, WAV: j.WAV, MP4: j.MP4, Width: j.Width, Height: j.Height}
		all.Add(1)
		go func() {
			defer all.Done()
			var parts sync.WaitGroup
			ok := true
			var okMu sync.Mutex
			failed := func(err error) {
				okMu.Lock()
				ok = false
				okMu.Unlock()
				fail(err)
			}
			if j.hasAudio() {
				parts.Go(func() {
					if !acquire(audioSem) {
						failed(context.Cause(ctx))
						return
					}
					defer func() { <-audioSem }()
					stderr, err := run(&r, j.Program.Audio)
					if err != nil {
						failed(err)
						return
					}
					side, err := parseSide(stderr)
					if err != nil {
						failed(fmt.Errorf("render: %s: %w", j.Program.Audio.Name, err))
						return
					}
					stereo := side > sideSilent
					out[i].Channels = 1
					if stereo {
						out[i].Channels = 2
					}
					for _, c := range j.Encodes(stereo) {
						if _, err := run(&r, c); err != nil {
							failed(err)
							return
						}
					}
					// The placed audio is no longer needed: free its disk.
					_ = os.Remove(filepath.Join(r.dir, mixFile))
				})
			}
			for _, c := range j.Program.Video {
				parts.Go(func() {
					if !acquire(videoSem) {
						failed(context.Cause(ctx))
						return
					}
					defer func() { <-videoSem }()
					if _, err := run(&r, c); err != nil {
						failed(err)
					}
				})
			}
			parts.Wait()
			if !ok || ctx.Err() != nil {
				return
			}
			if m := j.Mux(); m != nil {
				if _, err := run(&r, *m); err != nil {
					fail(err)
				}
			}
		}()
	}
	all.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("render: %w", context.Cause(ctx))
	}
	return out, nil
}

// stemPath is where a finished stem file is in the work folder.
func stemPath(work string, j *StemJob, name string) string {
	return filepath.Join(work, j.Dir, filepath.FromSlash(stemOut(name)))
}

// errStemCheck is wrapped by the checks of finished stems.
var errStemCheck = errors.New("stem check failed")

// verifyStem checks a finished stem file with ffprobe: its codecs, its
// length (the exact number of samples, of frames) and its channels and
// size. It does nothing when ffprobe is not installed.
func verifyStem(ctx context.Context, file string, sp *StemProgram, st StemFile, wav bool) error {
	if !haveFFprobe() {
		return nil
	}
	info, err := probeFile(ctx, file)
	if err != nil {
		return fmt.Errorf("render: check %s: %w", filepath.Base(file), err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("render: check %s: %w: %s", filepath.Base(file), errStemCheck, fmt.Sprintf(format, args...))
	}
	if wav {
		a := info.stream("audio")
		if a == nil || a.CodecName != "pcm_s24le" {
			return bad("no 24-bit PCM audio (streams: audio %v)", info.codecs("audio"))
		}
		if a.Channels != st.Channels || a.SampleRate != "48000" {
			return bad("%d channels at %s Hz, want %d at 48000", a.Channels, a.SampleRate, st.Channels)
		}
		if a.DurationTS != sp.Samples {
			return bad("%d samples, the session %d", a.DurationTS, sp.Samples)
		}
		return nil
	}
	v := info.stream("video")
	if v == nil || v.CodecName != codecH264 {
		return bad("no H.264 video (streams: video %v)", info.codecs("video"))
	}
	if v.Width != st.Width || v.Height != st.Height {
		return bad("%dx%d, want %dx%d", v.Width, v.Height, st.Width, st.Height)
	}
	if n, err := strconv.ParseInt(v.NbFrames, 10, 64); err != nil || n != sp.Frames {
		return bad("%s frames, the session %d", v.NbFrames, sp.Frames)
	}
	if want := st.Channels > 0; want != slices.Contains(info.codecs("audio"), "aac") {
		return bad("AAC audio %v, want %v (streams: audio %v)", !want, want, info.codecs("audio"))
	}
	d, err := strconv.ParseFloat(info.Format.Duration, 64)
	if err != nil || math.Abs(d-sp.Duration.Seconds()) > frameTime(1, sp.FPS)+0.05 {
		return bad("lasts %s s, the session %.3f s", info.Format.Duration, sp.Duration.Seconds())
	}
	return nil
}
