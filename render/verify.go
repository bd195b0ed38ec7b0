package render

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// verifyOutput checks a finished output before it is published: the
// streams its profile promises and the program's length (to within a frame
// and an audio frame's padding). MP4 and M4A outputs are read in Go
// (verifyMP4), always; WebM and HLS outputs are probed with ffprobe
// (verifyProbed), and not checked when ffprobe is not installed.
func verifyOutput(ctx context.Context, o Output, prog *Program) error {
	p, err := ParseProfile(o.Profile)
	if err != nil {
		return err
	}
	if p.kind == kindWebM || p.kind == kindHLS {
		return verifyProbed(ctx, o, p, prog)
	}
	return verifyMP4(o, p, prog)
}

// verifyMP4 checks an MP4 or M4A output from its boxes (mp4box.go): an
// H.264 video track ('avc1' or 'avc3' sample entries under a 'vide'
// handler) in an MP4 and no video track in an M4A, an AAC audio track
// ('mp4a' under 'soun': mp4a could carry other MPEG audio, but the render
// writes only AAC), and the movie's length (mvhd's duration, which is what
// ffprobe reports as the format duration of FFmpeg's MP4s). Other tracks,
// such as subtitles, are allowed.
func verifyMP4(o Output, p Profile, prog *Program) error {
	info, err := readMP4(o.Path)
	if err != nil {
		return fmt.Errorf("render: check %s: %w", o.Profile, err)
	}
	has := func(handler string, codecs ...string) bool {
		return slices.ContainsFunc(info.Tracks, func(t mp4Track) bool {
			return t.Handler == handler && (len(codecs) == 0 || slices.Contains(codecs, t.Codec))
		})
	}
	if p.kind == kindAudio {
		if has("vide") {
			return fmt.Errorf("render: check %s: %s has a video track (tracks as handler/codec: %q)", o.Profile, o.Path, info.Tracks)
		}
	} else if !has("vide", "avc1", "avc3") {
		return fmt.Errorf("render: check %s: %s has no H.264 video track (avc1 or avc3 under handler vide; tracks as handler/codec: %q)",
			o.Profile, o.Path, info.Tracks)
	}
	if !has("soun", "mp4a") {
		return fmt.Errorf("render: check %s: %s has no AAC audio track (mp4a under handler soun; tracks as handler/codec: %q)",
			o.Profile, o.Path, info.Tracks)
	}
	return checkLength(o, prog, info.Duration())
}

// verifyProbed checks a WebM or HLS output with ffprobe: VP9 and Opus in
// WebM, H.264 and AAC in HLS (the master playlist, which ffprobe follows to
// its renditions). It does nothing when ffprobe is not installed.
func verifyProbed(ctx context.Context, o Output, p Profile, prog *Program) error {
	if !haveFFprobe() {
		return nil
	}
	info, err := probeFile(ctx, o.Path)
	if err != nil {
		return fmt.Errorf("render: check %s: %w", o.Profile, err)
	}
	want := map[string]string{"video": codecH264, "audio": "aac"}
	if p.kind == kindWebM {
		want = map[string]string{"video": codecVP9, "audio": "opus"}
	}
	for kind, codec := range want {
		if !slices.Contains(info.codecs(kind), codec) {
			return fmt.Errorf("render: check %s: %s has no %s %s stream (streams: video %v, audio %v)", o.Profile, o.Path, codec, kind,
				info.codecs("video"), info.codecs("audio"))
		}
	}
	d, err := strconv.ParseFloat(info.Format.Duration, 64)
	if err != nil {
		return fmt.Errorf("render: check %s: duration %q: %w", o.Profile, info.Format.Duration, err)
	}
	return checkLength(o, prog, d)
}

// checkLength checks that an output lasting d seconds has the program's
// length, to within a frame and an audio frame's padding (0.05 s).
func checkLength(o Output, prog *Program, d float64) error {
	tol := frameTime(1, prog.FPS) + 0.05
	if math.Abs(d-prog.Duration.Seconds()) > tol {
		return fmt.Errorf("render: check %s: %s lasts %.3f s, the plan %.3f s", o.Profile, o.Path, d, prog.Duration.Seconds())
	}
	return nil
}
