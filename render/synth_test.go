package render_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/internal/marks"
	"github.com/tapedeck/tapedeck/timeline"
)

// A synthetic session is a session folder written without WebRTC: FFmpeg
// encodes each participant's media (a test picture with a white flash every
// second, a 1 kHz tone burst every second), and the manifest is computed from
// a known truth: the recorder's clock is true time, participant p's media of
// file time f was captured at Join + f/(1+Skew) and arrived 1 ms later, and
// its sender reports carry its wall clock (true time + Offset). The sync
// model must then place file time f at recording time Join + f/(1+Skew) +
// 1 ms (it places media at capture + the sender's floor delay).

// synthPart is one participant of a synthetic session.
type synthPart struct {
	ID     string
	Video  string // "vp8", "h264" or "" (audio only)
	Audio  bool
	W, H   int
	FPS    int
	Join   time.Duration // recording time of its first media
	Length time.Duration
	Skew   float64       // its RTP clocks run this much fast (0.001 = 1000 ppm)
	Offset time.Duration // its wall clock error
	// PortraitAt, if set, switches the video to H×W from that file time on
	// (a whole number of seconds).
	PortraitAt time.Duration
	// Marks adds the flashes and tones (else plain test picture and a quiet
	// sine).
	Marks bool
	// AudioGap drops the audio packets [AudioGap[0], AudioGap[1]) from the
	// file, leaving a hole in its timestamps (packet loss).
	AudioGap [2]int
	// RecorderOpus makes the audio file as the recorder writes Opus: two
	// channels (opus/48000/2) and no pre-skip (WebRTC plays the encoder's
	// lookahead), where FFmpeg's encoder of the test's one-channel sound
	// writes one channel and a 312-sample pre-skip.
	RecorderOpus bool
	// Keys, if not nil, are the file times of the video's keyframes after
	// its first frame (nil: one every second).
	Keys []time.Duration
	// VideoFile and AudioFile, if set, are used (linked) instead of
	// encoding the media; they must match the other fields.
	VideoFile, AudioFile string
}

// synthSession is a written session and its truth.
type synthSession struct {
	Dir      string
	Manifest *timeline.Manifest
	// Flashes and Tones are, per participant, the recording times (s) at
	// which its flashes and tone onsets must play: measured in its files,
	// mapped through the truth.
	Flashes, Tones map[string][]float64
}

const synthDelay = time.Millisecond // arrival − capture of every packet

// makeSession writes a synthetic session into dir.
func makeSession(t testing.TB, dir string, parts []synthPart) *synthSession {
	t.Helper()
	requireFFmpeg(t)
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).UnixNano()
	m := &timeline.Manifest{Version: timeline.ManifestVersion, Room: "synth", Session: "20261123T120000Z-synth", StartUnixNS: t0}
	ss := &synthSession{Dir: dir, Manifest: m, Flashes: map[string][]float64{}, Tones: map[string][]float64{}}
	end := int64(0)
	trackN := 0
	for pi, p := range parts {
		if p.FPS == 0 {
			p.FPS = 30
		}
		start := t0 + int64(p.Join)
		stop := start + int64(float64(p.Length)/(1+p.Skew))
		end = max(end, stop)
		pub := fmt.Sprintf("pub-%s", p.ID)
		m.Participants = append(m.Participants, timeline.Participant{ID: p.ID, Name: p.ID,
			Publishes: []timeline.Publish{{ID: pub, StartUnixNS: start, EndUnixNS: stop + int64(20*time.Millisecond), EndReason: "synthetic"}}})
		// recording seconds of file time f
		rec := func(f float64) float64 {
			return p.Join.Seconds() + f/(1+p.Skew) + synthDelay.Seconds()
		}
		if p.Video != "" {
			trackN++
			id := fmt.Sprintf("t%d", trackN)
			ext := ".webm"
			if p.Video == "h264" {
				ext = ".mkv"
			}
			rel := fmt.Sprintf("tracks/%s/video-%s-000%s", p.ID, id, ext)
			path := fileOf(t, filepath.Join(dir, "tracks", p.ID), filepath.Base(rel))
			if p.VideoFile != "" {
				link(t, p.VideoFile, path)
			} else {
				synthVideo(t, path, p)
			}
			frames := int64(p.Length.Seconds() * float64(p.FPS))
			tick := int64(90000 / p.FPS)
			tr := synthTrack(id, pub, uint32(1000+pi), timeline.Codec{Name: p.Video, ClockRate: 90000}, start, p.Skew, p.Offset, p.Length)
			rtp0 := tr.SenderReports[0].RTP
			sg := timeline.Segment{Index: 0, Path: rel, FirstRTP: rtp0, LastRTP: rtp0 + (frames-1)*tick,
				FirstArrivalUnixNS: start + int64(synthDelay), LastArrivalUnixNS: stop, Frames: frames, Keyframes: frames / int64(p.FPS),
				Width: p.W, Height: p.H, Closed: true, Packets: frames}
			tr.Segments = []timeline.Segment{sg}
			if p.PortraitAt > 0 {
				at := int64(p.PortraitAt.Seconds() * 90000)
				tr.Events = append(tr.Events, timeline.Event{Kind: timeline.EventResolution, RTP: rtp0 + at,
					ArrivalUnixNS: start + int64(float64(p.PortraitAt)/(1+p.Skew)) + int64(synthDelay), Width: p.H, Height: p.W})
			}
			m.Lanes = append(m.Lanes, timeline.Lane{ID: p.ID + "/video", Participant: p.ID, Kind: timeline.Video, Tracks: []timeline.Track{tr}})
			if p.Marks {
				pts, luma, err := marks.Luma(path)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range marks.Flashes(pts, luma) {
					ss.Flashes[p.ID] = append(ss.Flashes[p.ID], rec(f))
				}
			}
		}
		if p.Audio {
			trackN++
			id := fmt.Sprintf("t%d", trackN)
			rel := fmt.Sprintf("tracks/%s/audio-%s-000.webm", p.ID, id)
			path := fileOf(t, filepath.Join(dir, "tracks", p.ID), filepath.Base(rel))
			if p.AudioFile != "" {
				link(t, p.AudioFile, path)
			} else {
				synthAudio(t, path, p)
			}
			frames := int64(p.Length / (20 * time.Millisecond))
			tr := synthTrack(id, pub, uint32(2000+pi), timeline.Codec{Name: "opus", ClockRate: 48000, Channels: 2}, start, p.Skew, p.Offset, p.Length)
			rtp0 := tr.SenderReports[0].RTP
			tr.Segments = []timeline.Segment{{Index: 0, Path: rel, FirstRTP: rtp0, LastRTP: rtp0 + (frames-1)*960,
				FirstArrivalUnixNS: start + int64(synthDelay), LastArrivalUnixNS: stop, Frames: frames, Closed: true, Packets: frames}}
			for k := int64(0); k < frames; k += 12 {
				tr.Levels = append(tr.Levels, timeline.AudioLevel{RTP: rtp0 + k*960, Level: 30 + pi*10})
			}
			m.Lanes = append(m.Lanes, timeline.Lane{ID: p.ID + "/audio", Participant: p.ID, Kind: timeline.Audio, Tracks: []timeline.Track{tr}})
			if p.Marks {
				pcm, err := marks.PCM(path)
				if err != nil {
					t.Fatal(err)
				}
				// marks.PCM puts sample 0 at the file's start time, which
				// is negative for FFmpeg's Opus (its encoder delay); the
				// renderer reads file time as stored.
				st := probeFloat(t, path, "", "format=start_time")
				for _, f := range marks.Tones(pcm, 0.5) {
					ss.Tones[p.ID] = append(ss.Tones[p.ID], rec(f+st))
				}
			}
		}
	}
	m.EndUnixNS = end + int64(100*time.Millisecond)
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return ss
}

// synthTrack returns a track's timing evidence: a sender report and an
// arrival sample every second of its media.
func synthTrack(id, pub string, ssrc uint32, c timeline.Codec, start int64, skew float64, offset time.Duration, length time.Duration) timeline.Track {
	tr := timeline.Track{ID: id, Publish: pub, SSRC: ssrc, Codec: c}
	rtp0 := int64(ssrc) * 100000
	n := int(length.Seconds()/(1)) + 1
	for k := 0; k < n; k++ {
		tt := start + int64(k)*int64(time.Second)
		rtp := rtp0 + int64(math.Round(float64(k)*float64(c.ClockRate)*(1+skew)))
		tr.SenderReports = append(tr.SenderReports, timeline.SenderReport{NTPUnixNS: tt + int64(offset), RTP: rtp,
			ArrivalUnixNS: tt + int64(synthDelay), Packets: uint32(k * 50), Octets: uint32(k * 5000)})
		tr.Arrivals = append(tr.Arrivals, timeline.ArrivalSample{RTP: rtp, ArrivalUnixNS: tt + int64(synthDelay)})
	}
	tr.PacketsReceived = int64(length.Seconds() * 50)
	return tr
}

// synthVideo encodes a participant's test picture.
func synthVideo(t testing.TB, path string, p synthPart) {
	t.Helper()
	clip := func(out string, w, h int, d time.Duration) {
		src := fmt.Sprintf("testsrc2=s=%dx%d:r=%d:d=%s", w, h, p.FPS, sec(d))
		if p.Marks {
			src += fmt.Sprintf(",drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='eq(mod(n\\,%d)\\,0)'", p.FPS)
		}
		args := []string{"-f", "lavfi", "-i", src, "-pix_fmt", "yuv420p"}
		gop := fmt.Sprint(p.FPS)
		if p.Keys != nil {
			// Only the first frame and the frames at Keys.
			gop = fmt.Sprint(int(d.Seconds()*float64(p.FPS)) + 1)
			var at []string
			for _, k := range p.Keys {
				at = append(at, sec(k))
			}
			if len(at) > 0 {
				args = append(args, "-force_key_frames", strings.Join(at, ","))
			}
		}
		if p.Video == "h264" {
			args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline", "-g", gop, "-bf", "0", "-f", "matroska", out)
		} else {
			args = append(args, "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "16", "-b:v", "300k", "-g", gop,
				"-auto-alt-ref", "0", "-f", "webm", out)
		}
		ffrun(t, args...)
	}
	if p.PortraitAt <= 0 {
		clip(path, p.W, p.H, p.Length)
		return
	}
	a, b := path+".a"+filepath.Ext(path), path+".b"+filepath.Ext(path)
	clip(a, p.W, p.H, p.PortraitAt)
	clip(b, p.H, p.W, p.Length-p.PortraitAt)
	list := path + ".txt"
	if err := os.WriteFile(list, []byte(fmt.Sprintf("file '%s'\nfile '%s'\n", filepath.Base(a), filepath.Base(b))), 0o644); err != nil {
		t.Fatal(err)
	}
	ffrun(t, "-f", "concat", "-safe", "0", "-i", list, "-c", "copy", path)
	for _, f := range []string{a, b, list} {
		_ = os.Remove(f)
	}
}

// synthAudio encodes a participant's sound: a 40 ms 1 kHz burst at every
// whole second (with Marks), a quiet tone under it.
func synthAudio(t testing.TB, path string, p synthPart) {
	t.Helper()
	expr := "0.05*sin(2*PI*330*t)"
	if p.Marks {
		expr = "if(lt(mod(t\\,1)\\,0.04)\\,0.45*sin(2*PI*1000*t)\\,0)"
	}
	out := path
	if p.AudioGap[1] > p.AudioGap[0] {
		out = path + ".whole.webm"
	}
	args := []string{"-f", "lavfi", "-i", fmt.Sprintf("aevalsrc=%s:s=48000:d=%s", expr, sec(p.Length))}
	if p.RecorderOpus {
		args = append(args, "-ac", "2")
	}
	ffrun(t, append(args, "-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20", "-f", "webm", out)...)
	if p.RecorderOpus {
		noPreSkip(t, out)
	}
	if out != path {
		ffrun(t, "-i", out, "-c", "copy", "-bsf:a", fmt.Sprintf("noise=drop=between(n\\,%d\\,%d)", p.AudioGap[0], p.AudioGap[1]-1), "-f", "webm", path)
		_ = os.Remove(out)
	}
}

// noPreSkip sets the pre-skip of an FFmpeg-written Opus WebM to 0, in its
// OpusHead and its CodecDelay, as the recorder writes them; the file keeps
// its size.
func noPreSkip(t testing.TB, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head := bytes.Index(b, []byte("OpusHead"))
	if head < 0 || len(b) < head+19 {
		t.Fatalf("%s: no OpusHead", path)
	}
	b[head+10], b[head+11] = 0, 0
	// CodecDelay (0x56AA), a one-byte size, then its value.
	if i := bytes.Index(b[:head], []byte{0x56, 0xAA}); i >= 0 && b[i+2]&0xF0 == 0x80 {
		clear(b[i+3 : i+3+int(b[i+2]&0x0F)])
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func sec(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// link makes dst a symbolic link to src.
func link(t testing.TB, src, dst string) {
	t.Helper()
	abs, err := filepath.Abs(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(abs, dst); err != nil {
		t.Fatal(err)
	}
}
