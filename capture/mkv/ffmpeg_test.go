package mkv

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var fixtureCodecs = []string{"vp8", "vp9", "h264", "av1", "opus"}

// msOf converts a fixture pts to milliseconds, unrounded.
func msOf(codec string, pts int64) float64 {
	return float64(pts) * 1000 / float64(clockOf(codec))
}

func countKeys(frames []testFrame) int64 {
	var n int64
	for _, f := range frames {
		if f.key {
			n++
		}
	}
	return n
}

func countProbeKeys(pkts []probePacket) int64 {
	var n int64
	for _, p := range pkts {
		if p.key {
			n++
		}
	}
	return n
}

// TestClosedFile writes each codec's fixture, closes the file, and checks
// it with FFmpeg and Scan: every frame decodes without error, timestamps
// start at 0 and end where the input does, the duration is set, seeking
// works, and Scan agrees with ffprobe.
func TestClosedFile(t *testing.T) {
	for _, codec := range fixtureCodecs {
		t.Run(codec, func(t *testing.T) {
			t.Parallel()
			_, frames := fixture(t, codec)
			path := filepath.Join(t.TempDir(), "out.mkv")
			w := writeFrames(t, path, trackFor(codec), frames)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			decodeOK(t, path)

			pkts, err := probePackets(path)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(pkts), len(frames); got != want {
				t.Fatalf("ffprobe packets = %d, want %d", got, want)
			}
			if got := pkts[0].ptsMS; got != 0 {
				t.Errorf("first packet pts = %v ms, want 0", got)
			}
			lastMS := msOf(codec, frames[len(frames)-1].pts)
			if got := pkts[len(pkts)-1].ptsMS; math.Abs(got-lastMS) > 1 {
				t.Errorf("last packet pts = %v ms, want %v ±1", got, lastMS)
			}
			if got, want := countProbeKeys(pkts), countKeys(frames); got != want {
				t.Errorf("ffprobe keyframes = %d, want %d", got, want)
			}

			info := probe(t, path)
			dur, err := strconv.ParseFloat(info.Format.Duration, 64)
			if err != nil {
				t.Fatalf("ffprobe duration %q: %v", info.Format.Duration, err)
			}
			frameMS := msOf(codec, frames[1].pts-frames[0].pts)
			if got, want := dur*1000, lastMS+frameMS; math.Abs(got-want) > 1.5 {
				t.Errorf("duration = %v ms, want %v ±1.5", got, want)
			}

			sum := scanFile(t, path)
			if got, want := sum.Frames, int64(len(pkts)); got != want {
				t.Errorf("Scan frames = %d, ffprobe says %d", got, want)
			}
			if got, want := sum.Keyframes, countProbeKeys(pkts); got != want {
				t.Errorf("Scan keyframes = %d, ffprobe says %d", got, want)
			}
			if got, want := sum.LastPTS, time.Duration(math.Round(pkts[len(pkts)-1].ptsMS))*time.Millisecond; got != want {
				t.Errorf("Scan last pts = %v, ffprobe says %v", got, want)
			}
			if got := sum.FirstPTS; got != 0 {
				t.Errorf("Scan first pts = %v, want 0", got)
			}
			if !sum.Complete || sum.Cues == 0 || sum.Duration == 0 {
				t.Errorf("Scan: Complete=%v Cues=%d Duration=%v, want finalized file", sum.Complete, sum.Cues, sum.Duration)
			}
			if got, want := sum.Track.Codec, codec; got != want {
				t.Errorf("Scan codec = %q, want %q", got, want)
			}
			if codec == "opus" {
				if got, want := sum.Track.Channels, 2; got != want {
					t.Errorf("Scan channels = %d, want %d", got, want)
				}
			} else if sum.Track.Width != fixtureW || sum.Track.Height != fixtureH {
				// The size was not given: it comes from the first keyframe.
				t.Errorf("Scan size = %dx%d, want %dx%d", sum.Track.Width, sum.Track.Height, fixtureW, fixtureH)
			}

			// Seeking to the middle lands on the cluster (keyframe) before it.
			out := run(t, "ffprobe", "-v", "error", "-read_intervals", "1.5%+#1", "-select_streams", "0",
				"-show_entries", "packet=pts_time", "-of", "csv=p=0", path)
			first, err := strconv.ParseFloat(strings.TrimSpace(strings.Split(string(out), "\n")[0]), 64)
			if err != nil {
				t.Fatalf("ffprobe seek output %q: %v", out, err)
			}
			if first < 0.9 || first > 1.5 {
				t.Errorf("after seeking to 1.5 s the first packet is at %v s, want within [0.9, 1.5]", first)
			}
			decodeOK(t, path, "-ss", "1.5")
		})
	}
}

// TestOpusStartsAtZero proves that decoded sample 0 is the first frame:
// the stream starts at 0 and every packet decodes to 960 samples, none
// dropped as pre-skip.
func TestOpusStartsAtZero(t *testing.T) {
	t.Parallel()
	_, frames := fixture(t, "opus")
	path := filepath.Join(t.TempDir(), "out.webm")
	w := writeFrames(t, path, trackFor("opus"), frames)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	info := probe(t, path)
	if got, want := info.Streams[0].StartTime, "0.000000"; got != want {
		t.Errorf("start_time = %q, want %q", got, want)
	}
	if got, want := info.Streams[0].Channels, 2; got != want {
		t.Errorf("channels = %d, want %d", got, want)
	}
	pcm := run(t, "ffmpeg", "-v", "error", "-xerror", "-i", path, "-f", "s16le", "-ac", "2", "-ar", "48000", "-")
	if got, want := len(pcm)/4, len(frames)*960; got != want {
		t.Errorf("decoded %d samples per channel, want %d (%d frames of 960)", got, want, len(frames))
	}
}

// TestCodecPrivateMatchesFFmpeg compares the avcC and av1C records, and
// the size read from the first frame, with what FFmpeg finds in the same
// stream. 326x246 needs SPS frame cropping.
func TestCodecPrivateMatchesFFmpeg(t *testing.T) {
	for _, tc := range []struct {
		name, codec string
		w, h        int
	}{
		{"h264", "h264", fixtureW, fixtureH},
		{"h264-cropped", "h264", 326, 246},
		{"h264-high", "h264-high", 326, 246},
		{"av1", "av1", fixtureW, fixtureH},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := makeFixture(t, tc.codec, tc.w, tc.h, 1)
			frames, err := readFixture(tc.codec, in)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			ref := filepath.Join(dir, "ref.mkv")
			run(t, "ffmpeg", "-v", "error", "-i", in, "-c", "copy", ref)
			path := filepath.Join(dir, "out.mkv")
			w := writeFrames(t, path, Track{Codec: strings.TrimSuffix(tc.codec, "-high"), ClockRate: videoClock}, frames[:1])
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			want := hexdumpBytes(t, probe(t, ref).Streams[0].Extradata)
			got := hexdumpBytes(t, probe(t, path).Streams[0].Extradata)
			if len(want) == 0 || !bytes.Equal(got, want) {
				t.Errorf("CodecPrivate\n got % x\nwant % x", got, want)
			}
			if got := w.Track(); got.Width != tc.w || got.Height != tc.h {
				t.Errorf("size = %dx%d, want %dx%d", got.Width, got.Height, tc.w, tc.h)
			}
		})
	}
}

// TestCrashedFile writes each fixture without closing the writer, as if
// the process had been killed, and checks that FFmpeg decodes the file
// without error and that it holds every frame but those of the last
// second at most.
func TestCrashedFile(t *testing.T) {
	for _, codec := range fixtureCodecs {
		t.Run(codec, func(t *testing.T) {
			t.Parallel()
			_, frames := fixture(t, codec)
			path := filepath.Join(t.TempDir(), "out.mkv")
			w := writeFrames(t, path, trackFor(codec), frames)
			// The process dies here: no Flush, no Close. The writer only
			// ever hands whole clusters to the file.
			defer w.Close()

			decodeOK(t, path)
			pkts, err := probePackets(path)
			if err != nil {
				t.Fatal(err)
			}
			lastMS := msOf(codec, frames[len(frames)-1].pts)
			minFrames := 0
			for _, f := range frames {
				if msOf(codec, f.pts) <= lastMS-1000 {
					minFrames++
				}
			}
			if got := len(pkts); got < minFrames || got >= len(frames) {
				t.Fatalf("crashed file has %d frames, want at least %d (all but the last second) and fewer than %d",
					got, minFrames, len(frames))
			}
			if got := pkts[0].ptsMS; got != 0 {
				t.Errorf("first packet pts = %v ms, want 0", got)
			}
			inLast := msOf(codec, frames[len(pkts)-1].pts)
			if got := pkts[len(pkts)-1].ptsMS; math.Abs(got-inLast) > 1 {
				t.Errorf("last packet pts = %v ms, want %v ±1", got, inLast)
			}

			sum := scanFile(t, path)
			if got, want := sum.Frames, int64(len(pkts)); got != want {
				t.Errorf("Scan frames = %d, ffprobe says %d", got, want)
			}
			if got, want := sum.Keyframes, countProbeKeys(pkts); got != want {
				t.Errorf("Scan keyframes = %d, ffprobe says %d", got, want)
			}
			if got, want := sum.LastPTS, time.Duration(math.Round(pkts[len(pkts)-1].ptsMS))*time.Millisecond; got != want {
				t.Errorf("Scan last pts = %v, ffprobe says %v", got, want)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Complete || sum.Cues != 0 || sum.Duration != 0 || sum.ValidBytes != st.Size() {
				t.Errorf("Scan: Complete=%v Cues=%d Duration=%v ValidBytes=%d (size %d), want an unfinished file valid to its end",
					sum.Complete, sum.Cues, sum.Duration, sum.ValidBytes, st.Size())
			}
		})
	}
}

// Environment of the writer process TestSIGKILL kills.
const (
	killOutEnv     = "MKV_TEST_KILL_OUT"
	killFixtureEnv = "MKV_TEST_KILL_FIXTURE"
)

func TestMain(m *testing.M) {
	if out := os.Getenv(killOutEnv); out != "" {
		os.Exit(killHelper(out, os.Getenv(killFixtureEnv)))
	}
	dir, err := os.MkdirTemp("", "mkv-fixtures-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fixtures.dir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// killHelper runs in a child process: it writes the VP8 fixture again and
// again, paced like a live stream, and prints how many frames are on disk
// each time a cluster has been written, until it is killed.
func killHelper(out, fixturePath string) int {
	frames, err := readIVF(fixturePath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	w, err := New(out, Track{Codec: "vp8", ClockRate: videoClock})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	span := frames[len(frames)-1].pts + videoClock/fixtureFPS
	written := 0
	for rep := int64(0); rep < 20; rep++ {
		for _, f := range frames {
			before := w.Bytes()
			if err := w.WriteFrame(rep*span+f.pts, f.key, f.data); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			if w.Bytes() > before && written > 0 {
				fmt.Printf("flushed %d\n", written)
			}
			written++
			time.Sleep(2 * time.Millisecond)
		}
	}
	time.Sleep(time.Minute) // wait to be killed
	return 3
}

// TestSIGKILL kills a process that is writing a file and checks that what
// it left decodes without error and holds every frame it had flushed.
func TestSIGKILL(t *testing.T) {
	t.Parallel()
	in := makeFixture(t, "vp8", fixtureW, fixtureH, fixtureSeconds)
	path := filepath.Join(t.TempDir(), "killed.webm")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killOutEnv+"="+path, killFixtureEnv+"="+in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	flushed, killed := 0, false
	for sc.Scan() {
		n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "flushed "))
		if err != nil {
			t.Fatalf("helper said %q", sc.Text())
		}
		flushed = n
		if !killed && flushed >= 120 {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("helper ended before being killed: %v\n%s", err, stderr.String())
	}
	decodeOK(t, path)
	pkts, err := probePackets(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) < flushed {
		t.Errorf("killed file has %d frames, the writer had flushed %d", len(pkts), flushed)
	}
	sum := scanFile(t, path)
	if got, want := sum.Frames, int64(len(pkts)); got != want {
		t.Errorf("Scan frames = %d, ffprobe says %d", got, want)
	}
	if got, want := sum.LastPTS, time.Duration(math.Round(pkts[len(pkts)-1].ptsMS))*time.Millisecond; got != want {
		t.Errorf("Scan last pts = %v, ffprobe says %v", got, want)
	}
}

// TestRecoverTruncated cuts unfinished files at random offsets (as a torn
// last write would), cuts them again where Scan says the valid part ends,
// and checks that FFmpeg decodes the result without error and finds the
// frames Scan counted. (A finalized file has a known Segment size, so it
// cannot simply be cut: it is not what crash recovery meets.)
func TestRecoverTruncated(t *testing.T) {
	for _, codec := range []string{"h264", "opus"} {
		t.Run(codec, func(t *testing.T) {
			t.Parallel()
			_, frames := fixture(t, codec)
			dir := t.TempDir()
			path := filepath.Join(dir, "out.mkv")
			w := writeFrames(t, path, trackFor(codec), frames)
			header := w.Bytes()
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			file, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewSource(int64(len(file))))
			for i := 0; i < 4; i++ {
				off := header + rng.Int63n(int64(len(file))-header)
				sum, err := Scan(bytes.NewReader(file[:off]))
				if err != nil {
					t.Fatalf("cut at %d: %v", off, err)
				}
				cut := filepath.Join(dir, fmt.Sprintf("cut%d.mkv", i))
				if err := os.WriteFile(cut, file[:sum.ValidBytes], 0o644); err != nil {
					t.Fatal(err)
				}
				decodeOK(t, cut)
				pkts, err := probePackets(cut)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := int64(len(pkts)), sum.Frames; got != want {
					t.Errorf("cut at %d, recovered at %d: ffprobe finds %d frames, Scan %d", off, sum.ValidBytes, got, want)
				}
			}
		})
	}
}
