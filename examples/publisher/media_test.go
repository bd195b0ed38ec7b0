package publisher

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"testing"
	"time"
)

// decodeGrayMeans decodes a video file with ffmpeg and returns the mean
// luma of every frame.
func decodeGrayMeans(t *testing.T, path string) []float64 {
	t.Helper()
	const w, h = 16, 12
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", path,
		"-vf", "scale=16:12", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-").Output()
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	var means []float64
	for off := 0; off+w*h <= len(out); off += w * h {
		var sum int
		for _, v := range out[off : off+w*h] {
			sum += int(v)
		}
		means = append(means, float64(sum)/(w*h))
	}
	return means
}

// decodePCM decodes an audio file with ffmpeg to 48 kHz mono samples.
func decodePCM(t *testing.T, path string) []int16 {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", path,
		"-f", "s16le", "-ac", "1", "-ar", "48000", "-").Output()
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	pcm := make([]int16, len(out)/2)
	if err := binary.Read(bytes.NewReader(out), binary.LittleEndian, pcm); err != nil {
		t.Fatal(err)
	}
	return pcm
}

func checkVideoMedia(t *testing.T, cfg Config) {
	t.Helper()
	ctx := context.Background()
	m, err := PrepareMedia(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("PrepareMedia: %v", err)
	}
	cfg, _ = cfg.withDefaults()
	wantFrames := int(cfg.clipLength() * time.Duration(cfg.FPS) / time.Second)
	if m.Frames != wantFrames {
		t.Errorf("%d frames, want %d", m.Frames, wantFrames)
	}
	// The flash is the frame at t = k*period, and only that one.
	means := decodeGrayMeans(t, m.Video)
	if len(means) != wantFrames {
		t.Fatalf("ffmpeg decoded %d frames, want %d", len(means), wantFrames)
	}
	fpm := cfg.framesPerMark()
	for i, v := range means {
		flash := v > 200
		if want := i%fpm == 0; flash != want {
			t.Errorf("frame %d: mean luma %.0f, flash %v, want %v", i, v, flash, want)
		}
	}
	// Read back as the publisher does: a keyframe every second (the
	// default KeyframeEvery), first one at frame 0; H.264 keyframes carry
	// SPS and PPS.
	clip, err := loadVideo(m.Video, cfg.Video)
	if err != nil {
		t.Fatal(err)
	}
	if len(clip.frames) != wantFrames {
		t.Errorf("read %d frames, want %d", len(clip.frames), wantFrames)
	}
	for i, f := range clip.frames {
		key := isKeyframe(cfg.Video, f)
		if i%cfg.FPS == 0 && !key {
			t.Errorf("frame %d is not a keyframe", i)
		}
		if key && cfg.Video == H264 && !(bytes.Contains(f, []byte{0, 0, 0, 1, 0x67}) && bytes.Contains(f, []byte{0, 0, 0, 1, 0x68})) {
			t.Errorf("keyframe %d lacks SPS or PPS", i)
		}
	}
	if clip.keyframes < int(cfg.clipLength()/time.Second) {
		t.Errorf("%d keyframes in %v", clip.keyframes, cfg.clipLength())
	}
	// Generated once: a second call finds the file.
	fi, _ := os.Stat(m.Video)
	m2, err := PrepareMedia(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	fi2, _ := os.Stat(m2.Video)
	if m2.Video != m.Video || !fi2.ModTime().Equal(fi.ModTime()) {
		t.Error("the media was generated again")
	}
}

func TestMediaVP8(t *testing.T) {
	needFFmpeg(t)
	checkVideoMedia(t, Config{Participant: "alice", Video: "vp8", Duration: 3 * time.Second,
		Width: 320, Height: 240, FPS: 30, MediaDir: t.TempDir()})
}

func TestMediaH264(t *testing.T) {
	needFFmpeg(t)
	checkVideoMedia(t, Config{Participant: "bob", Video: "h264", Duration: 2 * time.Second,
		Width: 320, Height: 240, FPS: 25, MarkPeriod: 400 * time.Millisecond, MediaDir: t.TempDir()})
}

func TestMediaAudio(t *testing.T) {
	needFFmpeg(t)
	for _, period := range []time.Duration{time.Second, 300 * time.Millisecond} {
		cfg := Config{Participant: "carol", Audio: true, Duration: 2500 * time.Millisecond, MarkPeriod: period, MediaDir: t.TempDir()}
		m, err := PrepareMedia(context.Background(), cfg, testLogger(t))
		if err != nil {
			t.Fatalf("PrepareMedia: %v", err)
		}
		cfg, _ = cfg.withDefaults()
		if want := int(cfg.clipLength() / audioPacket); m.Packets != want {
			t.Errorf("%d packets, want %d", m.Packets, want)
		}
		// Tone onsets, in the send timeline, at k*period within 1 ms.
		pcm := decodePCM(t, m.Audio)
		ps := int(int64(period) * 48000 / int64(time.Second))
		var onsets []int
		last := -1 << 30
		for j, v := range pcm {
			if v > 3000 || v < -3000 {
				if j-last > 4800 {
					onsets = append(onsets, j-m.AudioLead)
				}
				last = j
			}
		}
		wantOnsets := int(cfg.clipLength() / period)
		if len(onsets) < wantOnsets {
			t.Errorf("period %v: %d tone onsets, want at least %d: %v", period, len(onsets), wantOnsets, onsets)
		}
		for k, r := range onsets {
			if d := r - k*ps; d < -48 || d > 48 {
				t.Errorf("period %v: tone %d starts at sample %d of the send timeline, want %d ± 48", period, k, r, k*ps)
			}
		}
		// And they last about 40 ms.
		loud := 0
		for _, v := range pcm[:min(len(pcm), m.AudioLead+ps)] {
			if v > 3000 || v < -3000 {
				loud++
			}
		}
		if loud < 1200 || loud > 2000 {
			t.Errorf("period %v: %d loud samples in the first burst, want about 1700 (40 ms at ~90%% above threshold)", period, loud)
		}
	}
}

func TestAudioLevels(t *testing.T) {
	levels := audioLevels(50)
	for p, l := range levels {
		want := uint8(127)
		if p < 2 {
			want = 10 // the 40 ms tone: RMS 0.45/√2 is -10 dBov
		}
		if l != want {
			t.Errorf("packet %d: level %d, want %d", p, l, want)
		}
	}
}

func TestAccessUnits(t *testing.T) {
	sps := []byte{0x67, 0x42, 0xc0, 0x1f}
	pps := []byte{0x68, 0xce, 0x3c, 0x80}
	idr0 := []byte{0x65, 0x88, 0x84} // first_mb_in_slice 0
	idr1 := []byte{0x65, 0x40, 0x11} // a second slice of the same picture
	p0 := []byte{0x41, 0x9a, 0x02}
	aud := []byte{0x09, 0xf0}
	var stream []byte
	for _, n := range [][]byte{aud, sps, pps, idr0, idr1, aud, p0, p0} {
		stream = append(stream, 0, 0, 0, 1)
		stream = append(stream, n...)
	}
	aus, err := accessUnits(stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(aus) != 3 {
		t.Fatalf("%d access units, want 3", len(aus))
	}
	if !isKeyframe(H264, aus[0]) || isKeyframe(H264, aus[1]) {
		t.Error("keyframe detection")
	}
	want0 := append(append(append(append([]byte{0, 0, 0, 1}, sps...), append([]byte{0, 0, 0, 1}, pps...)...),
		append([]byte{0, 0, 0, 1}, idr0...)...), append([]byte{0, 0, 0, 1}, idr1...)...)
	if !bytes.Equal(aus[0], want0) {
		t.Errorf("access unit 0 is % x, want % x", aus[0], want0)
	}
}
