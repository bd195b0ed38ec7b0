package publisher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

const (
	// mediaVersion is part of every cache file name: bump it when the
	// generated content changes.
	mediaVersion = "v1"

	audioRate          = 48000
	samplesPerPacket   = audioRate / 50 // 20 ms
	toneHz             = 1000
	toneSamples        = audioRate * 40 / 1000 // a 40 ms burst
	toneAmplitude      = 0.45                  // RMS 0.318: about -10 dBov
	audioBitrate       = 48000
	assumedOpusPreSkip = 312 // libopus' look-ahead at 48 kHz (6.5 ms)
)

// Media describes the generated media of a Config, as files in MediaDir.
//
// Video: frame i of the file is sent at Start + i/FPS (looping after Frames
// frames); frame k*FPS*MarkPeriod is a full white frame.
//
// Audio: the Ogg file holds one 20 ms Opus packet per page. The publisher
// sends the file's packets from the second one on (packet 1 is sent at
// Start, and the run loops over the same Length). The tone bursts start
// exactly at k*MarkPeriod in the send timeline, that is in the decoder output
// of the RTP stream. Because of the Opus encoder's look-ahead, in ffmpeg's
// decoding of the file (pre-skip removed) sample j is send-timeline sample
// j - AudioLead.
type Media struct {
	Video     string        // path of the IVF (VP8) or Annex B (H.264) file; "" without video
	Audio     string        // path of the Ogg Opus file; "" without audio
	Length    time.Duration // one loop of the media
	Frames    int           // video frames in one loop
	Packets   int           // audio packets in one loop
	AudioLead int           // samples at 48 kHz, see above
}

// videoClip is a video file read into memory: one encoded frame (VP8 frame
// or H.264 access unit in Annex B) per entry.
type videoClip struct {
	codec     string
	frames    [][]byte
	keyframes int
}

// audioClip is an Ogg Opus file read into memory, one 20 ms packet per
// entry, in send order (the file's first packet is left out).
type audioClip struct {
	packets [][]byte
	preSkip int
	levels  []uint8 // RFC 6464 level per packet of one mark period
}

// PrepareMedia generates (or finds in cfg.MediaDir) the media that Run with
// cfg would send; log may be nil. Only the media fields of cfg (and Participant, whose name
// is drawn on the picture) matter.
func PrepareMedia(ctx context.Context, cfg Config, log *slog.Logger) (Media, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Media{}, err
	}
	m, _, _, err := prepareMedia(ctx, cfg, log)
	return m, err
}

func prepareMedia(ctx context.Context, cfg Config, log *slog.Logger) (Media, *videoClip, *audioClip, error) {
	m := Media{Length: cfg.clipLength()}
	var vc *videoClip
	var ac *audioClip
	if cfg.Video != "" {
		path, clip, err := prepareVideo(ctx, cfg, log)
		if err != nil {
			return m, nil, nil, err
		}
		m.Video, m.Frames, vc = path, len(clip.frames), clip
	}
	if cfg.Audio {
		path, clip, err := prepareAudio(ctx, cfg, log)
		if err != nil {
			return m, nil, nil, err
		}
		m.Audio, m.Packets, m.AudioLead, ac = path, len(clip.packets), samplesPerPacket-clip.preSkip, clip
	}
	return m, vc, ac, nil
}

// ---- video

func videoFileName(cfg Config) string {
	ext := ".ivf"
	if cfg.Video == H264 {
		ext = ".h264"
	}
	name := safeName(cfg.Participant)
	if name == "" {
		name = "anon"
	}
	return fmt.Sprintf("%s-%dx%d-%dfps-%dbps-p%dms-k%dms-%dms-%s-%s%s", cfg.Video, cfg.Width, cfg.Height, cfg.FPS,
		cfg.Bitrate, cfg.MarkPeriod.Milliseconds(), cfg.KeyframeEvery.Milliseconds(), cfg.clipLength().Milliseconds(), name, mediaVersion, ext)
}

func prepareVideo(ctx context.Context, cfg Config, log *slog.Logger) (string, *videoClip, error) {
	frames := int(cfg.clipLength() * time.Duration(cfg.FPS) / time.Second)
	path := filepath.Join(cfg.MediaDir, videoFileName(cfg))
	err := ensureFile(ctx, cfg, log, path, func(ctx context.Context, tmp string) error {
		err := runFFmpeg(ctx, cfg.FFmpeg, "video encode", videoArgs(cfg, frames, tmp, cfg.Participant != ""))
		if err == nil || ctx.Err() != nil || cfg.Participant == "" {
			return err
		}
		// drawtext needs libfreetype and a font; without them, go on
		// without the text.
		log.Warn("publisher: drawing text on the video failed, generating it without text", "err", err)
		return runFFmpeg(ctx, cfg.FFmpeg, "video encode", videoArgs(cfg, frames, tmp, false))
	})
	if err != nil {
		return "", nil, err
	}
	clip, err := loadVideo(path, cfg.Video)
	if err != nil {
		return "", nil, err
	}
	if len(clip.frames) < frames {
		return "", nil, fmt.Errorf("publisher: %s holds %d frames, want %d (delete it to regenerate)", path, len(clip.frames), frames)
	}
	clip.frames = clip.frames[:frames]
	if clip.keyframes == 0 || !isKeyframe(cfg.Video, clip.frames[0]) {
		return "", nil, fmt.Errorf("publisher: %s does not start with a keyframe (delete it to regenerate)", path)
	}
	return path, clip, nil
}

// videoArgs is the ffmpeg command line for the test picture: testsrc2, the
// participant name and running time at the bottom (if text), and a white
// frame every mark period.
func videoArgs(cfg Config, frames int, out string, text bool) []string {
	src := fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", cfg.Width, cfg.Height, cfg.FPS)
	if text {
		size := max(10, cfg.Height/14)
		src += fmt.Sprintf(",drawtext=text='%s %%{pts\\:hms}':x=8:y=h-th-8:fontsize=%d:fontcolor=white:box=1:boxcolor=black@0.6",
			safeName(cfg.Participant), size)
	}
	src += fmt.Sprintf(",drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='eq(mod(n,%d),0)'", cfg.framesPerMark())
	br := strconv.Itoa(cfg.Bitrate)
	gop := strconv.Itoa(cfg.framesPerKeyframe())
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", src, "-frames:v", strconv.Itoa(frames), "-pix_fmt", "yuv420p"}
	switch cfg.Video {
	case H264:
		args = append(args, "-c:v", "libx264", "-profile:v", "baseline", "-preset", "veryfast", "-tune", "zerolatency",
			"-b:v", br, "-maxrate", br, "-bufsize", br, "-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-bf", "0",
			"-x264-params", "repeat-headers=1", "-bsf:v", "h264_mp4toannexb", "-f", "h264", out)
	default:
		args = append(args, "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
			"-b:v", br, "-minrate", br, "-maxrate", br, "-bufsize", br, "-g", gop, "-keyint_min", gop,
			"-auto-alt-ref", "0", "-lag-in-frames", "0", "-f", "ivf", out)
	}
	return args
}

func loadVideo(path, codec string) (*videoClip, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("publisher: read video: %w", err)
	}
	clip := &videoClip{codec: codec}
	switch codec {
	case H264:
		clip.frames, err = accessUnits(data)
	default:
		clip.frames, err = ivfFrames(data)
	}
	if err != nil {
		return nil, fmt.Errorf("publisher: read %s: %w", path, err)
	}
	for _, f := range clip.frames {
		if isKeyframe(codec, f) {
			clip.keyframes++
		}
	}
	return clip, nil
}

func ivfFrames(data []byte) ([][]byte, error) {
	r, hdr, err := ivfreader.NewWith(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("ivf header: %w", err)
	}
	if hdr.FourCC != "VP80" {
		return nil, fmt.Errorf("ivf holds %q, want VP80", hdr.FourCC)
	}
	var frames [][]byte
	for {
		f, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("ivf frame %d: %w", len(frames), err)
		}
		if len(f) == 0 {
			return nil, fmt.Errorf("ivf frame %d is empty", len(frames))
		}
		frames = append(frames, f)
	}
	return frames, nil
}

// accessUnits splits an H.264 Annex B stream into access units (one per
// frame), each in Annex B with 4-byte start codes. Access unit delimiters
// are left out; SEI are left out by h264reader.
func accessUnits(data []byte) ([][]byte, error) {
	r, err := h264reader.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("h264: %w", err)
	}
	var aus [][]byte
	var cur []byte
	hasVCL := false
	flush := func() {
		if len(cur) > 0 && hasVCL {
			aus = append(aus, cur)
		}
		cur, hasVCL = nil, false
	}
	for {
		nal, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("h264 NAL after %d access units: %w", len(aus), err)
		}
		if nal == nil || len(nal.Data) == 0 {
			continue
		}
		switch t := nal.UnitType; t {
		case h264reader.NalUnitTypeAUD, h264reader.NalUnitTypeSPS, h264reader.NalUnitTypePPS, h264reader.NalUnitTypeSEI:
			// These come before the slices of a new picture.
			if hasVCL {
				flush()
			}
			if t == h264reader.NalUnitTypeAUD {
				continue
			}
		case h264reader.NalUnitTypeCodedSliceNonIdr, h264reader.NalUnitTypeCodedSliceIdr:
			// first_mb_in_slice is the first ue(v) of the slice header: a
			// leading 1 bit means 0, the first slice of a new picture.
			if hasVCL && len(nal.Data) > 1 && nal.Data[1]&0x80 != 0 {
				flush()
			}
			hasVCL = true
		}
		cur = append(cur, 0, 0, 0, 1)
		cur = append(cur, nal.Data...)
	}
	flush()
	if len(aus) == 0 {
		return nil, errors.New("h264: no coded picture")
	}
	return aus, nil
}

// isKeyframe tells whether an encoded frame can be decoded on its own.
func isKeyframe(codec string, frame []byte) bool {
	if codec == H264 {
		for i := 0; i+4 < len(frame); i++ {
			if frame[i] == 0 && frame[i+1] == 0 && frame[i+2] == 1 && frame[i+3]&0x1f == 5 {
				return true
			}
		}
		return false
	}
	// VP8 frame tag: bit 0 of the first byte is 0 for a key frame.
	return len(frame) > 0 && frame[0]&0x01 == 0
}

// ---- audio

func audioFileName(cfg Config, preSkip int) string {
	return fmt.Sprintf("opus-p%dms-%dms-skip%d-%s.ogg", cfg.MarkPeriod.Milliseconds(), cfg.clipLength().Milliseconds(), preSkip, mediaVersion)
}

func prepareAudio(ctx context.Context, cfg Config, log *slog.Logger) (string, *audioClip, error) {
	packets := int(cfg.clipLength() / audioPacket)
	// The tone is placed knowing the encoder's look-ahead (the Ogg
	// pre-skip). If the encoder says otherwise, generate again with its
	// figure.
	preSkip := assumedOpusPreSkip
	for range 2 {
		path := filepath.Join(cfg.MediaDir, audioFileName(cfg, preSkip))
		err := ensureFile(ctx, cfg, log, path, func(ctx context.Context, tmp string) error {
			return runFFmpeg(ctx, cfg.FFmpeg, "audio encode", audioArgs(cfg, preSkip, tmp))
		})
		if err != nil {
			return "", nil, err
		}
		clip, err := loadAudio(path)
		if err != nil {
			return "", nil, err
		}
		if clip.preSkip != preSkip {
			log.Info("publisher: the Opus encoder's pre-skip differs from the assumed one; generating the audio again",
				"assumed", preSkip, "actual", clip.preSkip)
			preSkip = clip.preSkip
			continue
		}
		if len(clip.packets) < packets+1 {
			return "", nil, fmt.Errorf("publisher: %s holds %d packets, want at least %d (delete it to regenerate)", path, len(clip.packets), packets+1)
		}
		// Send from the file's second packet on: see Media.
		clip.packets = clip.packets[1 : packets+1]
		clip.levels = audioLevels(cfg.packetsPerMark())
		return path, clip, nil
	}
	return "", nil, fmt.Errorf("publisher: the Opus encoder's pre-skip is %d, more than one 20 ms packet or unstable", preSkip)
}

// toneShift is where, in the periodic mark signal, sample 0 of the encoder
// input lies, so that the decoder output of the file's packet 1 starts at
// mark signal sample 0.
func toneShift(periodSamples, preSkip int) int {
	return periodSamples + preSkip - samplesPerPacket
}

// audioArgs is the ffmpeg command line for the test sound: silence with a
// 1 kHz tone burst starting at every mark.
func audioArgs(cfg Config, preSkip int, out string) []string {
	period := cfg.packetsPerMark() * samplesPerPacket
	pos := fmt.Sprintf("mod(n+%d,%d)", toneShift(period, preSkip), period)
	expr := fmt.Sprintf("if(lt(%s,%d),%g*sin(2*PI*%d*%s/%d),0)", pos, toneSamples, toneAmplitude, toneHz, pos, audioRate)
	total := int(cfg.clipLength()/audioPacket)*samplesPerPacket + samplesPerPacket
	src := fmt.Sprintf("aevalsrc=exprs='%s':s=%d:c=mono:n=%d:d=%s", expr, audioRate, samplesPerPacket,
		strconv.FormatFloat(float64(total)/audioRate, 'f', 6, 64))
	return []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", src, "-c:a", "libopus", "-b:a", strconv.Itoa(audioBitrate), "-frame_duration", "20",
		"-application", "audio", "-vbr", "off", "-page_duration", "20000", "-f", "ogg", out}
}

// markSample is the mark signal at sample n of a mark period.
func markSample(n int) float64 {
	if n >= toneSamples {
		return 0
	}
	return toneAmplitude * math.Sin(2*math.Pi*toneHz*float64(n)/audioRate)
}

// audioLevels is the RFC 6464 audio level (-dBov, 127 for silence) of each
// 20 ms packet of one mark period of the mark signal.
func audioLevels(packetsPerMark int) []uint8 {
	levels := make([]uint8, packetsPerMark)
	for p := range levels {
		var sum float64
		for m := range samplesPerPacket {
			v := markSample(p*samplesPerPacket + m)
			sum += v * v
		}
		levels[p] = 127
		if rms := math.Sqrt(sum / samplesPerPacket); rms > 0 {
			levels[p] = uint8(min(127, max(0, math.Round(-20*math.Log10(rms)))))
		}
	}
	return levels
}

func loadAudio(path string) (*audioClip, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("publisher: read audio: %w", err)
	}
	r, hdr, err := oggreader.NewWith(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("publisher: read %s: ogg header: %w", path, err)
	}
	clip := &audioClip{preSkip: int(hdr.PreSkip)}
	var granule uint64
	for {
		payload, ph, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("publisher: read %s: ogg page %d: %w", path, len(clip.packets), err)
		}
		if t, ok := ph.HeaderType(payload); ok && (t == oggreader.HeaderOpusTags || t == oggreader.HeaderOpusID) {
			continue
		}
		if len(payload) == 0 {
			continue
		}
		// With -page_duration 20000 every page holds one 20 ms packet: its
		// granule position grows by 960 (less on the last page, which is
		// trimmed).
		if d := ph.GranulePosition - granule; ph.GranulePosition < granule || d > samplesPerPacket {
			return nil, fmt.Errorf("publisher: read %s: ogg page %d spans %d samples, want one 20 ms packet per page",
				path, len(clip.packets), int64(d))
		}
		granule = ph.GranulePosition
		clip.packets = append(clip.packets, payload)
	}
	if len(clip.packets) == 0 {
		return nil, fmt.Errorf("publisher: read %s: no Opus packet", path)
	}
	return clip, nil
}

// ---- files and ffmpeg

// ensureFile makes sure path exists, generating it with gen otherwise. gen
// writes to a temporary name in the same folder, which is then renamed:
// concurrent publishers may both generate, but nobody reads a half-written
// file.
func ensureFile(ctx context.Context, cfg Config, log *slog.Logger, path string, gen func(ctx context.Context, tmp string) error) error {
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("publisher: media folder: %w", err)
	}
	if _, err := exec.LookPath(cfg.FFmpeg); err != nil {
		return fmt.Errorf("publisher: ffmpeg not found at %q (install ffmpeg or set Config.FFmpeg): %w", cfg.FFmpeg, err)
	}
	tmp := fmt.Sprintf("%s.tmp-%d-%08x", path, os.Getpid(), rand.Uint32())
	defer os.Remove(tmp) // a no-op once renamed
	began := time.Now()
	if err := gen(ctx, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("publisher: media file: %w", err)
	}
	log.Info("publisher: generated media", "file", path, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// runFFmpeg runs ffmpeg; a failure carries the tail of its standard error.
func runFFmpeg(ctx context.Context, bin, what string, args []string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr tailBuffer
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("publisher: ffmpeg %s: %w", what, ctx.Err())
		}
		return fmt.Errorf("publisher: ffmpeg %s failed: %w; ffmpeg said: %s", what, err, stderr.String())
	}
	return nil
}

// tailBuffer keeps the last 2 KiB written to it.
type tailBuffer struct{ b []byte }

const tailMax = 2048

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailMax {
		t.b = append(t.b[:0], t.b[len(t.b)-tailMax:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	s := strings.TrimSpace(string(t.b))
	if s == "" {
		return "(nothing)"
	}
	return s
}

// safeName keeps the characters of a participant name that need no escaping
// in a file name or an ffmpeg filter.
func safeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 64 {
			break
		}
	}
	return strings.Trim(b.String(), ".")
}
