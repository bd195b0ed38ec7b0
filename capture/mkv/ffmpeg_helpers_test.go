package mkv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// testFrame is one frame of a fixture, with its pts in RTP ticks relative
// to the first frame.
type testFrame struct {
	pts  int64
	key  bool
	data []byte
}

// fixture parameters.
const (
	fixtureFPS     = 30
	fixtureSeconds = 3
	fixtureW       = 320
	fixtureH       = 240
	videoClock     = 90000
	opusClock      = 48000
	// rtpStart is an arbitrary first RTP timestamp: the frames get RTP
	// timestamps from it and the writer is given them minus it, as the
	// capture code does.
	rtpStart = 3_141_592_653
)

// needFFmpeg skips the test when FFmpeg is not installed, except in CI
// where it must be.
func needFFmpeg(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (run `make deps`): %v", tool, err)
		}
	}
}

// run runs a command and returns its stdout; it fails the test on error.
func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := runErr(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func runErr(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	if stderr.Len() > 0 && name == "ffmpeg" {
		return nil, fmt.Errorf("%s %s: unexpected messages:\n%s", name, strings.Join(args, " "), stderr.String())
	}
	return stdout.Bytes(), nil
}

// encodeArgs returns the FFmpeg arguments that make each fixture.
func encodeArgs(codec, out string, w, h, seconds int) []string {
	video := []string{"-v", "error", "-y", "-f", "lavfi", "-i",
		fmt.Sprintf("testsrc=size=%dx%d:rate=%d:duration=%d", w, h, fixtureFPS, seconds),
		"-pix_fmt", "yuv420p", "-g", strconv.Itoa(fixtureFPS), "-threads", "1"}
	switch codec {
	case "vp8":
		return append(video, "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k", out)
	case "vp9":
		return append(video, "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k", out)
	case "av1":
		return append(video, "-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", "-b:v", "300k", out)
	case "h264":
		return append(video, "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline",
			"-bsf:v", "h264_mp4toannexb", "-f", "h264", out)
	case "h264-high": // High profile (8x8 transform, CABAC), no B-frames as in WebRTC
		return append(video, "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-bf", "0",
			"-bsf:v", "h264_mp4toannexb", "-f", "h264", out)
	case "opus":
		return []string{"-v", "error", "-y", "-f", "lavfi", "-i",
			fmt.Sprintf("sine=frequency=440:sample_rate=48000:duration=%d", seconds),
			"-ac", "2", "-threads", "1", "-c:a", "libopus", "-b:a", "32k", "-frame_duration", "20",
			"-page_duration", "20000", out}
	}
	return nil
}

// fixtureExt is the file extension for each codec's fixture.
func fixtureExt(codec string) string {
	switch codec {
	case "h264", "h264-high":
		return ".h264"
	case "opus":
		return ".ogg"
	}
	return ".ivf"
}

// makeFixture encodes a short clip with FFmpeg and returns its path.
// Each fixture is encoded once per test binary run and shared, read-only,
// by the tests that use it.
var fixtures struct {
	mu    sync.Mutex
	dir   string // made by TestMain, removed after the tests
	paths map[string]*fixtureFile
}

type fixtureFile struct {
	once sync.Once
	path string
	err  error
}

func makeFixture(t testing.TB, codec string, w, h, seconds int) string {
	t.Helper()
	needFFmpeg(t)
	key := fmt.Sprintf("%s-%dx%d-%ds", codec, w, h, seconds)
	fixtures.mu.Lock()
	if fixtures.paths == nil {
		fixtures.paths = make(map[string]*fixtureFile)
	}
	f := fixtures.paths[key]
	if f == nil {
		f = &fixtureFile{}
		fixtures.paths[key] = f
	}
	dir := fixtures.dir
	fixtures.mu.Unlock()
	if dir == "" {
		t.Fatal("fixture directory not set up by TestMain")
	}
	f.once.Do(func() {
		f.path = filepath.Join(dir, key+fixtureExt(codec))
		_, f.err = runErr("ffmpeg", encodeArgs(codec, f.path, w, h, seconds)...)
	})
	if f.err != nil {
		t.Fatal(f.err)
	}
	return f.path
}

// fixture encodes a clip and returns its path and its frames with
// RTP-style pts.
func fixture(t testing.TB, codec string) (string, []testFrame) {
	t.Helper()
	path := makeFixture(t, codec, fixtureW, fixtureH, fixtureSeconds)
	frames, err := readFixture(codec, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) == 0 {
		t.Fatalf("%s fixture has no frames", codec)
	}
	keys := 0
	for _, f := range frames {
		if f.key {
			keys++
		}
	}
	if keys == 0 {
		t.Fatalf("%s fixture has no keyframe", codec)
	}
	return path, frames
}

// readFixture reads the frames of a fixture file.
func readFixture(codec, path string) ([]testFrame, error) {
	switch codec {
	case "h264", "h264-high":
		return readH264(path)
	case "opus":
		return readOgg(path)
	default:
		return readIVF(path)
	}
}

// rtpToFile turns an RTP timestamp into the writer's pts, as the capture
// code does: relative to the first frame's RTP timestamp.
func rtpToFile(rtp int64) int64 { return rtp - rtpStart }

// readIVF reads VP8, VP9 or AV1 frames. Keyframes are taken from
// ffprobe's packet flags for the IVF file, independently of this package.
func readIVF(path string) ([]testFrame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, hdr, err := ivfreader.NewWith(f)
	if err != nil {
		return nil, err
	}
	pkts, err := probePackets(path)
	if err != nil {
		return nil, err
	}
	var frames []testFrame
	for {
		data, fh, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(frames) >= len(pkts) {
			return nil, fmt.Errorf("%s: more IVF frames than ffprobe packets (%d)", path, len(pkts))
		}
		// FFmpeg numbers IVF frames 0, 1, 2... in a 1/fps time base.
		if got, want := int64(fh.Timestamp), int64(len(frames))*int64(hdr.TimebaseDenominator)/int64(hdr.TimebaseNumerator); got != want {
			return nil, fmt.Errorf("%s: frame %d has IVF timestamp %d, want %d", path, len(frames), got, want)
		}
		rtp := rtpStart + int64(len(frames))*videoClock/fixtureFPS
		frames = append(frames, testFrame{pts: rtpToFile(rtp), key: pkts[len(frames)].key, data: data})
	}
	if len(frames) != len(pkts) {
		return nil, fmt.Errorf("%s: %d IVF frames, ffprobe saw %d packets", path, len(frames), len(pkts))
	}
	return frames, nil
}

// readH264 groups the NAL units of an Annex B stream into access units (a
// new one starts at an AUD, SPS, PPS or SEI after a slice, or at a slice
// with first_mb_in_slice 0) and gives them pts from the frame index.
func readH264(path string) ([]testFrame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := h264reader.NewReader(f)
	if err != nil {
		return nil, err
	}
	var frames []testFrame
	var cur []byte
	curKey, curHasSlice := false, false
	flush := func() {
		if len(cur) > 0 {
			rtp := rtpStart + int64(len(frames))*videoClock/fixtureFPS
			frames = append(frames, testFrame{pts: rtpToFile(rtp), key: curKey, data: cur})
		}
		cur, curKey, curHasSlice = nil, false, false
	}
	for {
		nal, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		typ := nal.Data[0] & 0x1F
		isSlice := typ == 1 || typ == 5
		switch {
		case !isSlice && curHasSlice && (typ == 6 || typ == 7 || typ == 8 || typ == 9):
			flush()
		case isSlice && curHasSlice && len(nal.Data) > 1 && nal.Data[1]&0x80 != 0:
			flush()
		}
		if isSlice {
			curHasSlice = true
		}
		if typ == 5 {
			curKey = true
		}
		cur = append(cur, 0, 0, 0, 1)
		cur = append(cur, nal.Data...)
	}
	flush()
	return frames, nil
}

// readOgg reads Opus packets; FFmpeg was told to put each packet on its
// own page, which the granule positions confirm.
func readOgg(path string) ([]testFrame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, _, err := oggreader.NewWith(f)
	if err != nil {
		return nil, err
	}
	var frames []testFrame
	var lastGranule uint64
	for {
		payload, ph, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if bytes.HasPrefix(payload, []byte("OpusTags")) || bytes.HasPrefix(payload, []byte("OpusHead")) {
			continue
		}
		// The last page's granule is cut to the real end of the audio.
		if len(frames) > 0 && ph.GranulePosition > lastGranule+960 {
			return nil, fmt.Errorf("%s: page %d holds more than one 20 ms packet (granule %d after %d)",
				path, len(frames), ph.GranulePosition, lastGranule)
		}
		lastGranule = ph.GranulePosition
		rtp := rtpStart + int64(len(frames))*960
		frames = append(frames, testFrame{pts: rtpToFile(rtp), key: true, data: payload})
	}
	return frames, nil
}

// probePacket is one packet as ffprobe reports it.
type probePacket struct {
	ptsMS float64
	key   bool
}

// probePackets lists the packets of the first stream of a file.
func probePackets(path string) ([]probePacket, error) {
	out, err := runErr("ffprobe", "-v", "error", "-select_streams", "0", "-show_entries",
		"packet=pts_time,flags", "-of", "csv=p=0", path)
	if err != nil {
		return nil, err
	}
	var pkts []probePacket
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		fields := strings.Split(line, ",")
		if len(fields) < 2 {
			return nil, fmt.Errorf("ffprobe packet line %q", line)
		}
		var p probePacket
		if fields[0] != "N/A" {
			s, err := strconv.ParseFloat(fields[0], 64)
			if err != nil {
				return nil, fmt.Errorf("ffprobe packet line %q: %v", line, err)
			}
			p.ptsMS = s * 1000
		}
		p.key = strings.Contains(fields[1], "K")
		pkts = append(pkts, p)
	}
	return pkts, nil
}

// probeInfo is what ffprobe says about a file's first stream and format.
type probeInfo struct {
	Streams []struct {
		CodecName  string `json:"codec_name"`
		StartTime  string `json:"start_time"`
		Width      int    `json:"width"`
		Height     int    `json:"height"`
		Channels   int    `json:"channels"`
		SampleRate string `json:"sample_rate"`
		Extradata  string `json:"extradata"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func probe(t testing.TB, path string) probeInfo {
	t.Helper()
	out := run(t, "ffprobe", "-v", "error", "-show_streams", "-show_format", "-show_data", "-of", "json", path)
	var info probeInfo
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("ffprobe json: %v", err)
	}
	if len(info.Streams) != 1 {
		t.Fatalf("ffprobe found %d streams in %s, want 1", len(info.Streams), path)
	}
	return info
}

// hexdumpBytes decodes the hexdump ffprobe prints for -show_data
// ("00000000: 0164 001e ffe1 ...  .d......").
func hexdumpBytes(t testing.TB, dump string) []byte {
	t.Helper()
	var out []byte
	for _, line := range strings.Split(dump, "\n") {
		_, rest, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		// The hex part is 40 characters: 8 groups of 4 hex digits.
		if len(rest) > 40 {
			rest = rest[:40]
		}
		for _, g := range strings.Fields(rest) {
			for i := 0; i+2 <= len(g); i += 2 {
				v, err := strconv.ParseUint(g[i:i+2], 16, 8)
				if err != nil {
					t.Fatalf("hexdump line %q: %v", line, err)
				}
				out = append(out, byte(v))
			}
		}
	}
	return out
}

// decodeOK decodes a whole file with FFmpeg, failing on any error.
func decodeOK(t testing.TB, path string, extra ...string) {
	t.Helper()
	args := append([]string{"-v", "error", "-xerror", "-threads", "1"}, extra...)
	args = append(args, "-i", path, "-f", "null", "-")
	run(t, "ffmpeg", args...)
}

// writeFrames writes frames to a new file with New and returns the writer
// (not closed).
func writeFrames(t testing.TB, path string, tr Track, frames []testFrame) *Writer {
	t.Helper()
	w, err := New(path, tr)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		if err := w.WriteFrame(f.pts, f.key, f.data); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	return w
}

// trackFor returns the Track for a fixture codec.
func trackFor(codec string) Track {
	if codec == "opus" {
		return Track{Codec: codec, ClockRate: opusClock, Channels: 2}
	}
	return Track{Codec: codec, ClockRate: videoClock}
}

// clockOf returns the RTP clock of a fixture codec.
func clockOf(codec string) int64 {
	if codec == "opus" {
		return opusClock
	}
	return videoClock
}

// scanFile runs Scan on a file.
func scanFile(t testing.TB, path string) Summary {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := Scan(f)
	if err != nil {
		t.Fatalf("Scan(%s): %v", path, err)
	}
	return s
}
