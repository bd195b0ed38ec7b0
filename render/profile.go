package render

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Profile names.
const (
	ProfileMP4_720  = "mp4-720p"
	ProfileMP4_1080 = "mp4-1080p"
	ProfileMP4_360  = "mp4-360p"
	ProfileWebM720  = "webm-720p"
	ProfileHLS      = "hls"
	ProfileAudio    = "audio"
	// DefaultProfile is rendered when no profile is asked for.
	DefaultProfile = ProfileMP4_720
)

// Container kinds of a profile.
const (
	kindMP4   = "mp4"
	kindWebM  = "webm"
	kindHLS   = "hls"
	kindAudio = "audio"
)

// Video codecs of an encoding.
const (
	codecH264 = "h264"
	codecVP9  = "vp9"
)

// Profile is one output format: a container and the video encodings it
// carries (none for audio).
type Profile struct {
	Name string
	kind string
	// lines are the short sides of the video renditions (720 for 1280x720),
	// largest first.
	lines []int
}

// Profiles lists the known profile names.
func Profiles() []string {
	return []string{ProfileMP4_720, ProfileMP4_1080, ProfileMP4_360, ProfileWebM720, ProfileHLS, ProfileAudio}
}

// ParseProfile returns the profile with that name.
func ParseProfile(name string) (Profile, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case ProfileMP4_720, "":
		return Profile{Name: ProfileMP4_720, kind: kindMP4, lines: []int{720}}, nil
	case ProfileMP4_1080:
		return Profile{Name: ProfileMP4_1080, kind: kindMP4, lines: []int{1080}}, nil
	case ProfileMP4_360:
		return Profile{Name: ProfileMP4_360, kind: kindMP4, lines: []int{360}}, nil
	case ProfileWebM720:
		return Profile{Name: ProfileWebM720, kind: kindWebM, lines: []int{720}}, nil
	case ProfileHLS:
		return Profile{Name: ProfileHLS, kind: kindHLS, lines: []int{720, 360}}, nil
	case ProfileAudio:
		return Profile{Name: ProfileAudio, kind: kindAudio}, nil
	}
	return Profile{}, fmt.Errorf("render: profile %q: want one of %s", name, strings.Join(Profiles(), ", "))
}

// parseProfiles parses names, dropping duplicates; none gives the default.
func parseProfiles(names []string) ([]Profile, error) {
	if len(names) == 0 {
		names = []string{DefaultProfile}
	}
	var out []Profile
	for _, n := range names {
		p, err := ParseProfile(n)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(out, func(q Profile) bool { return q.Name == p.Name }) {
			out = append(out, p)
		}
	}
	return out, nil
}

// Encoding is one video encoding the jobs produce: a codec at a size. Several
// profiles can share one (mp4-720p and the 720p rendition of hls).
type Encoding struct {
	Codec         string
	Width, Height int
	// Lines is the nominal short side (720 for 1280x720).
	Lines int
}

// key names the encoding in file names.
func (e Encoding) key() string { return fmt.Sprintf("%s-%dx%d", e.Codec, e.Width, e.Height) }

// ext is the extension of the encoding's intermediate files.
func (e Encoding) ext() string {
	if e.Codec == codecVP9 {
		return ".webm"
	}
	return ".mp4"
}

// sizeFor returns the output size whose short side is lines, for a picture of
// the given aspect (width/height), both even.
func sizeFor(lines int, aspect float64) (int, int) {
	evenRound := func(v float64) int { return int(math.Round(v/2)) * 2 }
	if aspect >= 1 {
		return max(16, evenRound(float64(lines)*aspect)), lines
	}
	return lines, max(16, evenRound(float64(lines)/aspect))
}

// encodingsFor returns the distinct video encodings the profiles need, for a
// picture of the given aspect, largest first.
func encodingsFor(profiles []Profile, aspect float64) []Encoding {
	var out []Encoding
	for _, p := range profiles {
		codec := codecH264
		if p.kind == kindWebM {
			codec = codecVP9
		}
		for _, l := range p.lines {
			w, h := sizeFor(l, aspect)
			e := Encoding{Codec: codec, Width: w, Height: h, Lines: l}
			if !slices.Contains(out, e) {
				out = append(out, e)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Width*out[i].Height > out[j].Width*out[j].Height })
	return out
}

// encodingOf returns the encoding a profile uses for its rendition of the
// given short side.
func encodingOf(encs []Encoding, p Profile, lines int) (Encoding, bool) {
	codec := codecH264
	if p.kind == kindWebM {
		codec = codecVP9
	}
	for _, e := range encs {
		if e.Codec == codec && e.Lines == lines {
			return e, true
		}
	}
	return Encoding{}, false
}

// videoBitrate is the cap (kbit/s) of an encoding: a constant-quality encode
// that never exceeds what platforms expect at that size.
func videoBitrate(e Encoding) int {
	px := e.Width * e.Height
	switch {
	case px >= 1920*1080:
		return 6000
	case px >= 1280*720:
		return 3000
	case px >= 854*480:
		return 1500
	default:
		return 1000
	}
}

// encoderArgs are the output options of an encoding. gop is the keyframe
// interval in frames.
func encoderArgs(e Encoding, preset string, gop int) []string {
	rate := videoBitrate(e)
	switch e.Codec {
	case codecVP9:
		return []string{"-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "7", "-row-mt", "1",
			"-crf", "32", "-b:v", fmt.Sprintf("%dk", rate*2/3), "-maxrate", fmt.Sprintf("%dk", rate),
			"-g", itoa(gop), "-keyint_min", itoa(gop), "-pix_fmt", "yuv420p", "-f", "webm"}
	}
	return []string{"-c:v", "libx264", "-preset", preset, "-profile:v", "high", "-pix_fmt", "yuv420p",
		"-crf", "23", "-maxrate", fmt.Sprintf("%dk", rate), "-bufsize", fmt.Sprintf("%dk", rate*2),
		"-g", itoa(gop), "-keyint_min", itoa(gop), "-sc_threshold", "0", "-f", "mp4"}
}
