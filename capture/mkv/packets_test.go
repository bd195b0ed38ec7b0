package mkv

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPackets: the packets of a recorded Opus track, in a range, with the
// samples each decodes to (20- and 40-ms packets, two frames in one, a
// hole), and its OpusHead.
func TestPackets(t *testing.T) {
	// TOC bytes (RFC 6716 section 3.1): config 1 is SILK 20 ms, config 2
	// SILK 40 ms, config 31 CELT 20 ms; code 1 is two frames.
	const silk20, silk40, celt20x2 = 1 << 3, 2 << 3, 31<<3 | 1
	type pkt struct {
		ms   int64
		toc  byte
		want int
	}
	var pkts []pkt
	for ms := int64(0); ms < 2000; ms += 20 {
		pkts = append(pkts, pkt{ms, silk20, 960})
	}
	pkts = append(pkts, pkt{2000, silk40, 1920}, pkt{2040, celt20x2, 1920})
	// A hole of 500 ms, then 20-ms packets again.
	for ms := int64(2580); ms < 4000; ms += 20 {
		pkts = append(pkts, pkt{ms, silk20, 960})
	}
	var buf bytes.Buffer
	w, err := NewWith(&buf, Track{Codec: "opus", ClockRate: 48000, Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := w.WriteFrame(p.ms*48, true, []byte{p.toc, 0xAA, 0xBB}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(buf.Bytes())
	x, err := IndexClusters(r)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := x.Opus(); !ok || got != (OpusHead{Channels: 2, PreSkip: 0}) {
		t.Errorf("Opus() = %+v, %v; want 2 channels, no pre-skip", got, ok)
	}
	if got, want := x.TicksPerSecond(), int64(1000); got != want {
		t.Errorf("TicksPerSecond() = %d, want %d", got, want)
	}
	for _, c := range []struct{ from, to int64 }{{0, 4000}, {1990, 2600}, {2001, 2040}, {-500, 10}, {3980, 9000}} {
		var got, want []string
		for _, p := range pkts {
			if p.ms >= c.from && p.ms <= c.to {
				want = append(want, strconv.FormatInt(p.ms, 10)+":"+strconv.Itoa(p.want))
			}
		}
		if err := x.Packets(r, c.from, c.to, func(p Packet) {
			got = append(got, strconv.FormatInt(p.Ticks, 10)+":"+strconv.Itoa(p.Samples))
		}); err != nil {
			t.Fatal(err)
		}
		if g, w := strings.Join(got, " "), strings.Join(want, " "); g != w || len(want) == 0 {
			t.Errorf("Packets(%d, %d) = %s\nwant %s", c.from, c.to, g, w)
		}
	}
	// A video file has no OpusHead, and its packets no samples.
	var vbuf bytes.Buffer
	vw, err := NewWith(&vbuf, Track{Codec: "VP8", ClockRate: 90000})
	if err != nil {
		t.Fatal(err)
	}
	for ms := int64(0); ms < 3000; ms += 33 {
		if err := vw.WriteFrame(ms*90, ms%990 == 0, vp8Key()); err != nil {
			t.Fatal(err)
		}
	}
	if err := vw.Close(); err != nil {
		t.Fatal(err)
	}
	vr := bytes.NewReader(vbuf.Bytes())
	vx, err := IndexClusters(vr)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := vx.Opus(); ok {
		t.Error("a VP8 file has an OpusHead")
	}
	n := 0
	if err := vx.Packets(vr, 0, 3000, func(p Packet) {
		n++
		if p.Samples != 0 {
			t.Errorf("VP8 packet at %d: %d samples", p.Ticks, p.Samples)
		}
	}); err != nil || n == 0 {
		t.Errorf("VP8 packets: %d, %v", n, err)
	}
}

// TestPacketsFFmpeg: FFmpeg's Opus WebM: its OpusHead (one channel, its
// encoder's 312-sample pre-skip) and 20-ms packets, as ffprobe lists them.
func TestPacketsFFmpeg(t *testing.T) {
	needFFmpeg(t)
	path := filepath.Join(t.TempDir(), "a.webm")
	if _, err := runErr("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "sine=f=440:d=3",
		"-c:a", "libopus", "-frame_duration", "20", "-f", "webm", path); err != nil {
		t.Fatal(err)
	}
	out := run(t, "ffprobe", "-v", "error", "-select_streams", "a", "-show_entries", "packet=pts,duration", "-of", "csv=p=0", path)
	var want []string
	for _, line := range strings.Fields(string(out)) {
		f := strings.Split(line, ",")
		if len(f) < 2 {
			t.Fatalf("ffprobe: %q", line)
		}
		pts := f[0]
		d, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("ffprobe: %q", line)
		}
		want = append(want, pts+":"+strconv.Itoa(d*48))
	}
	f, x := indexFile(t, path)
	head, ok := x.Opus()
	if !ok || head != (OpusHead{Channels: 1, PreSkip: 312, CodecDelay: 6_500_000}) {
		t.Errorf("Opus() = %+v, %v; want 1 channel, pre-skip 312, codec delay 6.5 ms", head, ok)
	}
	var got []string
	samples := 0
	if err := x.Packets(f, -1000, 10_000, func(p Packet) {
		// ffprobe's times are the blocks' moved back by the codec
		// delay, rounded to a tick (7 ms).
		got = append(got, strconv.FormatInt(p.Ticks-7, 10)+":"+strconv.Itoa(p.Samples))
		samples += p.Samples
	}); err != nil {
		t.Fatal(err)
	}
	// The last packet's duration in ffprobe's list is in milliseconds,
	// and its samples are cut by its DiscardPadding to less than that.
	if len(got) != len(want) || strings.Join(got[:len(got)-1], " ") != strings.Join(want[:len(want)-1], " ") {
		t.Errorf("Packets:\n got %v\nwant %v", got, want)
	}
	// What the decoder gives: the packets' samples less the pre-skip.
	pcm := run(t, "ffmpeg", "-hide_banner", "-loglevel", "error", "-i", path, "-f", "f32le", "-ac", "1", "-")
	if got, want := samples-head.PreSkip, len(pcm)/4; got != want {
		t.Errorf("the packets' samples less the pre-skip: %d, want the %d decoded", got, want)
	}
}

// indexFile opens the file at path, closed when the test ends, and indexes
// its clusters.
func indexFile(t *testing.T, path string) (*os.File, *Clusters) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	x, err := IndexClusters(f)
	if err != nil {
		t.Fatal(err)
	}
	return f, x
}
