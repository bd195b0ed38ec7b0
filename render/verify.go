package render

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"slices"
	"strconv"
)

// verifyOutput checks a finished output: the streams its profile promises
// and the program's length (to within a frame and an audio frame's
// padding). It does nothing when ffprobe is not installed.
func verifyOutput(ctx context.Context, o Output, prog *Program) error {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		return nil
	}
	info, err := probeFile(ctx, o.Path)
	if err != nil {
		return fmt.Errorf("render: check %s: %w", o.Profile, err)
	}
	p, err := ParseProfile(o.Profile)
	if err != nil {
		return err
	}
	want := map[string]string{"video": codecH264, "audio": "aac"}
	switch p.kind {
	case kindWebM:
		want = map[string]string{"video": codecVP9, "audio": "opus"}
	case kindAudio:
		want = map[string]string{"audio": "aac"}
	}
	for kind, codec := range want {
		if !slices.Contains(info.codecs(kind), codec) {
			return fmt.Errorf("render: check %s: %s has no %s %s stream (streams: video %v, audio %v)", o.Profile, o.Path, codec, kind,
				info.codecs("video"), info.codecs("audio"))
		}
	}
	if p.kind == kindAudio && len(info.codecs("video")) > 0 {
		return fmt.Errorf("render: check %s: %s has a video stream", o.Profile, o.Path)
	}
	d, err := strconv.ParseFloat(info.Format.Duration, 64)
	if err != nil {
		return fmt.Errorf("render: check %s: duration %q: %w", o.Profile, info.Format.Duration, err)
	}
	tol := frameTime(1, prog.FPS) + 0.05
	if math.Abs(d-prog.Duration.Seconds()) > tol {
		return fmt.Errorf("render: check %s: %s lasts %.3f s, the plan %.3f s", o.Profile, o.Path, d, prog.Duration.Seconds())
	}
	return nil
}
