package render

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// mp4Clip has FFmpeg write a short clip into dir: H.264 video at 10 fps
// (video seconds; none: 0), AAC audio (audio seconds; none: 0) and a
// mov_text subtitle track if subs, with moov first if faststart. extra are
// more output options.
func mp4Clip(t testing.TB, dir, name string, video, audio float64, subs, faststart bool, extra ...string) string {
	t.Helper()
	var args, maps []string
	inputs := 0
	input := func(codec ...string) {
		maps = append(append(maps, "-map", strconv.Itoa(inputs)), codec...)
		inputs++
	}
	if video > 0 {
		input("-c:v", "libx264", "-pix_fmt", "yuv420p")
		args = append(args, "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=s=64x48:r=10:d=%g", video))
	}
	if audio > 0 {
		input("-c:a", "aac")
		args = append(args, "-f", "lavfi", "-i", fmt.Sprintf("sine=d=%g:sample_rate=48000", audio))
	}
	if subs {
		srt := filepath.Join(dir, name+".srt")
		if err := os.WriteFile(srt, []byte("1\n00:00:00,000 --> 00:00:00,500\nhello\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		input("-c:s", "mov_text")
		args = append(args, "-f", "srt", "-i", srt)
	}
	if faststart {
		extra = append(extra, "-movflags", "+faststart")
	}
	path := filepath.Join(dir, name)
	runFFmpeg(t, slices.Concat([]string{"-loglevel", "error"}, args, maps, extra, []string{"-f", "mp4", path})...)
	return path
}

// mp4ClipBytes is mp4Clip's file, read.
func mp4ClipBytes(t testing.TB, dir, name string, video, audio float64, subs, faststart bool) []byte {
	t.Helper()
	data, err := os.ReadFile(mp4Clip(t, dir, name, video, audio, subs, faststart))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// ffprobeDuration is ffprobe's format duration of a file.
func ffprobeDuration(t testing.TB, path string) float64 {
	t.Helper()
	fp, err := exec.LookPath("ffprobe")
	if err != nil {
		t.Fatalf("this test runs the real ffprobe (make deps): %v", err)
	}
	out, err := exec.Command(fp, "-v", "error", "-show_entries", "format=duration", "-of", "default=nw=1:nk=1", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		t.Fatalf("ffprobe %s: duration %q: %v", path, out, err)
	}
	return d
}

// testBox is a box found by findBox in a test file.
type testBox struct{ off, hdr, size int }

// findBox finds the box at a path of types ("moov", "trak", "mdia") in an
// MP4 held in memory: the first of each type. It reads only 32-bit sizes,
// which is all FFmpeg writes in these small files (a test helper, kept
// apart from the reader it checks).
func findBox(t testing.TB, data []byte, path ...string) testBox {
	t.Helper()
	start, end := 0, len(data)
	var b testBox
	for _, typ := range path {
		found := false
		for off := start; off+8 <= end; {
			size := int(binary.BigEndian.Uint32(data[off:]))
			if size < 8 {
				t.Fatalf("findBox %v: box at %d has size %d", path, off, size)
			}
			if string(data[off+4:off+8]) == typ {
				b, found = testBox{off: off, hdr: 8, size: size}, true
				break
			}
			off += size
		}
		if !found {
			t.Fatalf("findBox %v: no %s", path, typ)
		}
		start, end = b.off+b.hdr, b.off+b.size
	}
	return b
}

// topBoxEnds returns the ends of the top-level boxes of an MP4 in memory.
func topBoxEnds(t testing.TB, data []byte) []int {
	t.Helper()
	var ends []int
	for off := 0; off < len(data); {
		size := int(binary.BigEndian.Uint32(data[off:]))
		if size < 8 {
			t.Fatalf("box at %d has size %d", off, size)
		}
		off += size
		ends = append(ends, off)
	}
	return ends
}

// readBytes reads an MP4 held in memory.
func readBytes(data []byte) (mp4Info, error) {
	return readMP4From(bytes.NewReader(data), int64(len(data)))
}

// readLog is a file in memory that logs what is read of it.
type readLog struct {
	data  []byte
	reads [][2]int // [from, to)
}

func (l *readLog) ReadAt(p []byte, off int64) (int, error) {
	l.reads = append(l.reads, [2]int{int(off), int(off) + len(p)})
	return bytes.NewReader(l.data).ReadAt(p, off)
}

// mkbox builds a box of a type around a body.
func mkbox(typ string, body ...[]byte) []byte {
	n := 8
	for _, b := range body {
		n += len(b)
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(n))
	out = append(out, typ...)
	for _, b := range body {
		out = append(out, b...)
	}
	return out
}

// mvhdV1 is a version 1 mvhd (64-bit times and duration).
func mvhdV1(timescale uint32, units uint64) []byte {
	b := []byte{1, 0, 0, 0}
	b = binary.BigEndian.AppendUint64(b, 1) // creation time
	b = binary.BigEndian.AppendUint64(b, 2) // modification time
	b = binary.BigEndian.AppendUint32(b, timescale)
	b = binary.BigEndian.AppendUint64(b, units)
	return mkbox("mvhd", b, make([]byte, 80))
}

// builtTrak is a trak with one sample entry, of a codec, under a handler.
func builtTrak(handler, codec string) []byte {
	hdlr := mkbox("hdlr", make([]byte, 8), []byte(handler), make([]byte, 13))
	stsd := mkbox("stsd", []byte{0, 0, 0, 0, 0, 0, 0, 1}, mkbox(codec, make([]byte, 28)))
	return mkbox("trak", mkbox("mdia", hdlr, mkbox("minf", mkbox("stbl", stsd))))
}

// TestReadMP4 reads FFmpeg's MP4s, moov first and last, and an M4A and an
// MP4 with subtitles, and checks the tracks and that the length is the
// format duration ffprobe reports.
func TestReadMP4(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		name         string
		video, audio float64
		subs, fast   bool
		extra        []string
		want         []string // handler/codec of the tracks, subtitles' handler aside
	}{
		{"end.mp4", 1.3, 1.234, false, false, nil, []string{"vide/avc1", "soun/mp4a"}},
		{"fast.mp4", 1.3, 1.234, false, true, []string{"-movie_timescale", "48000"}, []string{"vide/avc1", "soun/mp4a"}},
		{"audio.m4a", 0, 2.345, false, true, []string{"-movie_timescale", "48000"}, []string{"soun/mp4a"}},
		{"subs.mp4", 1, 1, true, true, nil, []string{"vide/avc1", "soun/mp4a", "?/tx3g"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := mp4Clip(t, dir, c.name, c.video, c.audio, c.subs, c.fast, c.extra...)
			info, err := readMP4(path)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tr := range info.Tracks {
				s := tr.String()
				if tr.Codec == "tx3g" {
					// FFmpeg names tx3g's handler sbtl; the spec's
					// subtitle handlers are subt and text.
					if !slices.Contains([]string{"sbtl", "subt", "text"}, tr.Handler) {
						t.Errorf("tx3g track under handler %q, want a subtitle handler", tr.Handler)
					}
					s = "?/tx3g"
				}
				got = append(got, s)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("tracks %q, want %q", got, c.want)
			}
			if got, want := info.Duration(), ffprobeDuration(t, path); math.Abs(got-want) > 0.001 {
				t.Errorf("duration %.6f s, ffprobe says %.6f s", got, want)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			moov, mdat := findBox(t, data, "moov"), findBox(t, data, "mdat")
			if got, want := moov.off < mdat.off, c.fast; got != want {
				t.Errorf("moov before mdat: %v, want %v (the test's layout)", got, want)
			}
			// Only headers and small boxes are read: nothing of mdat's
			// body, and a fraction of moov.
			log := &readLog{data: data}
			if _, err := readMP4From(log, int64(len(data))); err != nil {
				t.Fatal(err)
			}
			read := 0
			for _, r := range log.reads {
				read += r[1] - r[0]
				if r[1] > mdat.off+mdat.hdr && r[0] < mdat.off+mdat.size {
					t.Errorf("read [%d, %d) of mdat's body [%d, %d)", r[0], r[1], mdat.off+mdat.hdr, mdat.off+mdat.size)
				}
			}
			if read > moov.size/2 {
				t.Errorf("read %d bytes in %d reads, of a moov of %d", read, len(log.reads), moov.size)
			}
			t.Logf("read %d bytes in %d reads, of a moov of %d and a file of %d", read, len(log.reads), moov.size, len(data))
		})
	}
}

// TestReadMP4Forms reads FFmpeg's MP4 rewritten into forms FFmpeg writes
// only for long or streamed files, which ffprobe reads too: mvhd version 1,
// mdat with a 64-bit size, and a last box of size 0 (to the end of the
// file).
func TestReadMP4Forms(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	orig := mp4ClipBytes(t, dir, "end.mp4", 1.3, 1.234, false, false)
	base, err := readBytes(orig)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(t *testing.T, d []byte) []byte
	}{
		{"mvhd version 1", func(t *testing.T, d []byte) []byte {
			// moov is last: growing it moves no sample.
			moov, mvhd := findBox(t, d, "moov"), findBox(t, d, "moov", "mvhd")
			body := d[mvhd.off+8 : mvhd.off+mvhd.size]
			if body[0] != 0 {
				t.Fatalf("mvhd version %d, want FFmpeg's 0", body[0])
			}
			v1 := []byte{1, 0, 0, 0}
			v1 = binary.BigEndian.AppendUint64(v1, uint64(binary.BigEndian.Uint32(body[4:])))
			v1 = binary.BigEndian.AppendUint64(v1, uint64(binary.BigEndian.Uint32(body[8:])))
			v1 = append(v1, body[12:16]...)
			v1 = binary.BigEndian.AppendUint64(v1, uint64(binary.BigEndian.Uint32(body[16:])))
			v1 = append(v1, body[20:]...)
			out := slices.Concat(d[:mvhd.off], mkbox("mvhd", v1), d[mvhd.off+mvhd.size:])
			binary.BigEndian.PutUint32(out[moov.off:], uint32(moov.size+12))
			return out
		}},
		{"64-bit mdat", func(t *testing.T, d []byte) []byte {
			// FFmpeg puts an 8-byte free before mdat for this: the
			// two headers become one, and no sample moves.
			free, mdat := findBox(t, d, "free"), findBox(t, d, "mdat")
			if free.size != 8 || free.off+8 != mdat.off {
				t.Fatalf("free at %d (%d bytes), mdat at %d: want FFmpeg's 8-byte free just before mdat", free.off, free.size, mdat.off)
			}
			out := slices.Clone(d)
			binary.BigEndian.PutUint32(out[free.off:], 1)
			copy(out[free.off+4:], "mdat")
			binary.BigEndian.PutUint64(out[free.off+8:], uint64(mdat.size+8))
			return out
		}},
		{"last box to the end", func(t *testing.T, d []byte) []byte {
			out := slices.Clone(d)
			binary.BigEndian.PutUint32(out[findBox(t, d, "moov").off:], 0)
			return out
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := c.edit(t, slices.Clone(orig))
			path := filepath.Join(t.TempDir(), "edited.mp4")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			info, err := readMP4(path)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fmt.Sprint(info.Tracks), fmt.Sprint(base.Tracks); got != want {
				t.Errorf("tracks %s, want %s", got, want)
			}
			if got, want := info.Duration(), ffprobeDuration(t, path); math.Abs(got-want) > 0.001 {
				t.Errorf("duration %.6f s, ffprobe says %.6f s", got, want)
			}
			if got, want := info.Duration(), base.Duration(); got != want {
				t.Errorf("duration %.6f s, the original's %.6f s", got, want)
			}
		})
	}

	// A version 1 mvhd built whole, with a duration past 32 bits.
	file := slices.Concat(mkbox("ftyp", []byte("isom\x00\x00\x02\x00")),
		mkbox("moov", mvhdV1(1000, 5<<32), builtTrak("soun", "mp4a")))
	info, err := readBytes(file)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.Duration(), float64(5<<32)/1000; got != want {
		t.Errorf("version 1 mvhd: duration %v s, want %v", got, want)
	}
}

// TestReadMP4Errors reads broken forms of FFmpeg's MP4s, and built ones,
// and checks each error says what is wrong.
func TestReadMP4Errors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	end := mp4ClipBytes(t, dir, "end.mp4", 1, 1, false, false)
	fast := mp4ClipBytes(t, dir, "fast.mp4", 1, 1, false, true)
	put32 := func(d []byte, off int, v uint32) []byte {
		d = slices.Clone(d)
		binary.BigEndian.PutUint32(d[off:], v)
		return d
	}
	rename := func(d []byte, off int, typ string) []byte {
		d = slices.Clone(d)
		copy(d[off+4:], typ)
		return d
	}
	mdat, moov := findBox(t, fast, "mdat"), findBox(t, end, "moov")
	mvhd, hdlr := findBox(t, end, "moov", "mvhd"), findBox(t, end, "moov", "trak", "mdia", "hdlr")
	stsd := findBox(t, end, "moov", "trak", "mdia", "minf", "stbl", "stsd")
	fastMoov := findBox(t, fast, "moov")
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"cut in mdat", fast[:mdat.off+mdat.size/2], `"mdat" at ` + strconv.Itoa(mdat.off)},
		{"cut in moov", end[:moov.off+moov.size/2], "the file is cut short"},
		{"cut before moov", end[:moov.off], "no moov box"},
		{"cut in a header", end[:moov.off+5], "5 stray bytes"},
		{"bytes after the last box", append(slices.Clone(end), 0, 0, 0), "3 stray bytes"},
		{"empty", nil, "no moov box"},
		{"no mvhd", rename(end, mvhd.off, "free"), "has no mvhd"},
		{"zero timescale", put32(end, mvhd.off+8+12, 0), "timescale 0"},
		{"unknown duration", put32(end, mvhd.off+8+16, math.MaxUint32), "duration unknown"},
		{"mvhd version 2", put32(end, mvhd.off+8, 2<<24), "version 2"},
		{"no hdlr", rename(end, hdlr.off, "free"), "has no hdlr"},
		{"no sample entry", put32(end, stsd.off+8+4, 0), "has no sample entry"},
		{"box shorter than its header", put32(end, 0, 4), "shorter than its header"},
		{"box past its parent", put32(end, mvhd.off, uint32(moov.size)), "past the end of \"moov\""},
		{"two moovs", slices.Concat(fast, fast[fastMoov.off:fastMoov.off+fastMoov.size]), "two moov boxes"},
		{"mvhd too short", mkbox("moov", mkbox("mvhd", make([]byte, 10))), "too short for version 0"},
		{"hdlr too short", mkbox("moov", mvhdV1(1000, 1), mkbox("trak", mkbox("mdia", mkbox("hdlr", make([]byte, 11))))),
			"too short (at least 12)"},
		{"64-bit size cut", []byte{0, 0, 0, 1, 'm', 'd', 'a', 't', 0, 0}, "64-bit size runs past the end of the file"},
		{"uuid without its type", mkbox("uuid", make([]byte, 4)), "shorter than its header (24 bytes)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := readBytes(c.data)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one saying %q", err, c.want)
			}
		})
	}

	missing := filepath.Join(dir, "missing.mp4")
	if _, err := readMP4(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("read of a missing file: %v; want an error naming it", err)
	}
	cut := filepath.Join(dir, "cut.mp4")
	if err := os.WriteFile(cut, fast[:len(fast)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readMP4(cut); err == nil || !strings.Contains(err.Error(), cut) || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("read of a cut file: %v; want an error naming it and saying it is cut short", err)
	}
}

// TestReadMP4NoPanic reads every truncation of small MP4s of FFmpeg (moov
// first and last, with subtitles) and every one-byte corruption of what is
// read of them: no
// panic, a truncation fails unless it ends between top-level boxes after
// moov, and what reads without error is sane.
func TestReadMP4NoPanic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, fast := range []bool{false, true} {
		data := mp4ClipBytes(t, dir, fmt.Sprintf("clip-%v.mp4", fast), 0.3, 0.3, true, fast)
		moov := findBox(t, data, "moov")
		ends := topBoxEnds(t, data)
		for n := range len(data) {
			_, err := readBytes(data[:n])
			if whole := slices.Contains(ends, n) && n >= moov.off+moov.size; (err == nil) != whole {
				t.Errorf("faststart %v, cut at %d of %d: error %v", fast, n, len(data), err)
			}
		}
		// Every byte but mdat's body, which is never read (TestReadMP4).
		mdat := findBox(t, data, "mdat")
		corrupt := slices.Clone(data)
		for i := range data {
			if i >= mdat.off+mdat.hdr && i < mdat.off+mdat.size {
				continue
			}
			for _, v := range []byte{0, 1, 0x7f, 0x80, 0xff, data[i] ^ 0x01, data[i] ^ 0x80} {
				corrupt[i] = v
				if info, err := readBytes(corrupt); err == nil && (info.Timescale == 0 || math.IsNaN(info.Duration())) {
					t.Errorf("faststart %v, byte %d set to %#x: read %+v without error", fast, i, v, info)
				}
			}
			corrupt[i] = data[i]
		}
	}
}

// FuzzReadMP4 reads arbitrary bytes, starting from FFmpeg's MP4 and a built
// one: it must not panic, and what reads without error must be sane.
func FuzzReadMP4(f *testing.F) {
	data := mp4ClipBytes(f, f.TempDir(), "clip.mp4", 0.2, 0.2, true, true)
	f.Add(data)
	f.Add(slices.Concat(mkbox("ftyp", []byte("isom")), mkbox("moov", mvhdV1(48000, 96000), builtTrak("soun", "mp4a")),
		[]byte{0, 0, 0, 0, 'm', 'd', 'a', 't', 1, 2, 3}))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := readBytes(data)
		if err == nil && (info.Timescale == 0 || math.IsNaN(info.Duration())) {
			t.Errorf("read %+v without error", info)
		}
	})
}

// TestVerifyOutputMP4 runs verifyOutput on FFmpeg's MP4s and M4As, right
// and wrong, and checks that it reads them without ffprobe.
func TestVerifyOutputMP4(t *testing.T) {
	dir := t.TempDir()
	prog := &Program{FPS: timeline.Rational{Num: 10, Den: 1}, Duration: time.Second}
	good := mp4Clip(t, dir, "good.mp4", 1, 1, false, true, "-movie_timescale", "48000")
	end := mp4Clip(t, dir, "end.mp4", 1, 1, false, false)
	subs := mp4Clip(t, dir, "subs.mp4", 1, 1, true, true)
	m4a := mp4Clip(t, dir, "audio.m4a", 0, 1, false, true)
	mute := mp4Clip(t, dir, "mute.mp4", 1, 0, false, true)
	muteSubs := mp4Clip(t, dir, "mute-subs.mp4", 1, 0, true, true)
	long := mp4Clip(t, dir, "long.mp4", 1.5, 1.5, false, true)
	cut := func(name, from string, at func(data []byte) int) string {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data[:at(data)], 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cutMdat := cut("cut-mdat.mp4", good, func(d []byte) int { b := findBox(t, d, "mdat"); return b.off + b.size/2 })
	cutMoov := cut("cut-moov.mp4", end, func(d []byte) int { b := findBox(t, d, "moov"); return b.off + b.size/2 })

	// No ffprobe from here on: the MP4 checks must not need it.
	t.Setenv("PATH", t.TempDir())
	for _, c := range []struct {
		name, profile, path string
		want                []string // in the error; none: no error
	}{
		{"mp4", ProfileMP4_360, good, nil},
		{"mp4 moov last", ProfileMP4_720, end, nil},
		{"mp4 with subtitles", ProfileMP4_1080, subs, nil},
		{"m4a", ProfileAudio, m4a, nil},
		{"mp4 without audio", ProfileMP4_720, mute, []string{"render: check mp4-720p: ", mute, "no AAC audio track", `"vide/avc1"`}},
		{"subtitles are not audio", ProfileMP4_720, muteSubs, []string{"no AAC audio track", `"vide/avc1"`, "/tx3g"}},
		{"m4a as mp4", ProfileMP4_720, m4a, []string{"no H.264 video track", `["soun/mp4a"]`}},
		{"audio with video", ProfileAudio, good, []string{"render: check audio: ", good, "has a video track", `"vide/avc1" "soun/mp4a"`}},
		{"longer", ProfileMP4_720, long, []string{long, "lasts 1.500 s, the plan 1.000 s"}},
		{"cut in mdat", ProfileMP4_720, cutMdat, []string{cutMdat, `"mdat"`, "the file is cut short"}},
		{"cut in moov", ProfileMP4_720, cutMoov, []string{cutMoov, `"moov"`, "the file is cut short"}},
		{"cut, audio profile", ProfileAudio, cutMdat, []string{"render: check audio: ", "the file is cut short"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := verifyOutput(t.Context(), Output{Profile: c.profile, Path: c.path, Duration: prog.Duration}, prog)
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one saying %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
