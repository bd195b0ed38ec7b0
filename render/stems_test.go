package render_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/internal/marks"
	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

// wavFile is a decoded 24-bit PCM WAV.
type wavFile struct {
	channels, rate, bits int
	frames               int64     // samples per channel
	left                 []float64 // the first channel, in [-1, 1)
	exactZero            []bool    // the first channel's sample is 0 exactly
}

// readWAV reads a PCM WAV file (RIFF or RF64) by hand: its header says how
// many samples it holds, exactly.
func readWAV(t testing.TB, path string) wavFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 12 || (string(b[:4]) != "RIFF" && string(b[:4]) != "RF64") || string(b[8:12]) != "WAVE" {
		t.Fatalf("%s: not a WAV file", path)
	}
	var w wavFile
	var data []byte
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:off+8]))
		body := b[off+8:]
		switch id {
		case "fmt ":
			if binary.LittleEndian.Uint16(body[0:2]) != 1 && binary.LittleEndian.Uint16(body[0:2]) != 0xFFFE {
				t.Fatalf("%s: not PCM", path)
			}
			w.channels = int(binary.LittleEndian.Uint16(body[2:4]))
			w.rate = int(binary.LittleEndian.Uint32(body[4:8]))
			w.bits = int(binary.LittleEndian.Uint16(body[14:16]))
		case "data":
			data = body[:min(size, len(body))]
		}
		off += 8 + size + size%2
	}
	if w.channels == 0 || data == nil {
		t.Fatalf("%s: no fmt or data chunk", path)
	}
	step := w.channels * w.bits / 8
	w.frames = int64(len(data) / step)
	if w.bits == 24 {
		for i := 0; i+step <= len(data); i += step {
			v := int32(uint32(data[i])<<8|uint32(data[i+1])<<16|uint32(data[i+2])<<24) >> 8
			w.left = append(w.left, float64(v)/(1<<23))
			w.exactZero = append(w.exactZero, v == 0)
		}
	}
	return w
}

// countFrames decodes a video and counts its frames (ffprobe -count_frames).
func countFrames(t testing.TB, path string) int64 {
	t.Helper()
	_, fp := requireFFmpeg(t)
	out, err := exec.Command(fp, "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames",
		"-of", "default=nw=1:nk=1", path).Output()
	if err != nil {
		t.Fatalf("ffprobe -count_frames %s: %v", path, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatalf("ffprobe -count_frames %s: %q", path, out)
	}
	return n
}

// regionLuma returns the mean luma of every frame of a video in the
// rectangle (fractions of the picture) x0,y0–x1,y1.
func regionLuma(t testing.TB, path string, x0, y0, x1, y1 float64) []float64 {
	t.Helper()
	w, _ := strconv.Atoi(probeValue(t, path, "v:0", "stream=width"))
	h, _ := strconv.Atoi(probeValue(t, path, "v:0", "stream=height"))
	_, luma, err := marks.LumaRegion(path, int(x0*float64(w)), int(y0*float64(h)), int((x1-x0)*float64(w)), int((y1-y0)*float64(h)))
	if err != nil {
		t.Fatal(err)
	}
	return luma
}

// flashFrames returns the frame indices at which the centre of a video
// turns white.
func flashFrames(t testing.TB, path string) []int {
	t.Helper()
	luma := regionLuma(t, path, 0.35, 0.25, 0.65, 0.75)
	var out []int
	for i := range luma {
		if luma[i] > 200 && (i == 0 || luma[i-1] <= 200) {
			out = append(out, i)
		}
	}
	return out
}

// placeholderLuma is the luma of the placeholder colour 0x2E3138 as
// FFmpeg's drawbox writes it (BT.601 weights, full range).
const placeholderLuma = 0.299*0x2E + 0.587*0x31 + 0.114*0x38

// stemChecks are the assertions every export's stems must pass: the same
// number of samples in every WAV and of frames in every MP4, the session's;
// 24-bit 48 kHz mono WAVs; MP4s with moov first, H.264 High yuv420p at a
// constant frame rate with a keyframe at least every 2 s, their
// participant's audio as AAC.
func stemChecks(t *testing.T, res *render.ExportResult, wantChannels int) {
	t.Helper()
	for _, st := range res.Stems {
		if st.WAV != "" {
			w := readWAV(t, filepath.Join(res.Dir, st.WAV))
			if got, want := w.frames, res.Samples; got != want {
				t.Errorf("%s: %d samples, want %d (the session's)", st.WAV, got, want)
			}
			if got, want := [3]int{w.channels, w.rate, w.bits}, [3]int{wantChannels, 48000, 24}; got != want {
				t.Errorf("%s: %d channels, %d Hz, %d bits; want %v", st.WAV, w.channels, w.rate, w.bits, want)
			}
		}
		if st.MP4 == "" {
			continue
		}
		path := filepath.Join(res.Dir, st.MP4)
		if got, want := countFrames(t, path), res.Frames; got != want {
			t.Errorf("%s: %d frames decoded, want %d (the session's)", st.MP4, got, want)
		}
		atoms := topAtoms(t, path)
		if m, d := indexOf(atoms, "moov"), indexOf(atoms, "mdat"); m < 0 || d < 0 || m > d {
			t.Errorf("%s: boxes %v: want moov before mdat", st.MP4, atoms)
		}
		for _, c := range []struct{ stream, entry, want string }{
			{"v:0", "stream=codec_name", "h264"}, {"v:0", "stream=profile", "High"}, {"v:0", "stream=pix_fmt", "yuv420p"},
			{"v:0", "stream=width", strconv.Itoa(st.Width)}, {"v:0", "stream=height", strconv.Itoa(st.Height)},
		} {
			if got := probeValue(t, path, c.stream, c.entry); got != c.want {
				t.Errorf("%s: %s %s = %q, want %q", st.MP4, c.stream, c.entry, got, c.want)
			}
		}
		if st.Channels > 0 {
			if got, want := probeValue(t, path, "a:0", "stream=codec_name"), "aac"; got != want {
				t.Errorf("%s: audio %q, want %q", st.MP4, got, want)
			}
			if got, want := probeValue(t, path, "a:0", "stream=channels"), strconv.Itoa(st.Channels); got != want {
				t.Errorf("%s: %s audio channels, want %s", st.MP4, got, want)
			}
			// The AAC's priming before 0, and the end on the session's last
			// sample.
			if first, end := audioSpan(t, path); first != -1024 || end != res.Samples {
				t.Errorf("%s: the audio's packets span [%d, %d) samples, want [-1024, %d)", st.MP4, first, end, res.Samples)
			}
		}
		checkVideo(t, path, res.FPS, res.Duration)
	}
}

// TestStemsSynthetic exports a synthetic call whose truth is known — alice
// from the start with 200 ms of her audio lost, bob joining at 0.3 s with
// his wall clock 3 s off and his clocks 2000 ppm fast, carol joining at
// 0.6 s and turning her camera portrait, dave with audio only from 1 s to
// 4 s, erin with video only from 2 s to 4 s — with edits (a cut, bob muted,
// alice renamed). Every WAV and MP4 must have the session's length, to the
// sample and the frame; every tone must be in its WAV within 2 ms of its
// instant and every flash in its MP4 on the frame nearest to its instant;
// before a join and after a leave the WAV is silent (exactly) and the MP4
// shows the placeholder with the name; dave gets no MP4 and erin no WAV, and
// the notes say so; the timelines name every stem by a relative path that
// exists.
func TestStemsSynthetic(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	// 151 frames at 30 fps: not a whole number of milliseconds, for the MP4
	// stems' edit lists.
	parts := threeParts(5*time.Second + 50*time.Millisecond)
	parts = append(parts,
		synthPart{ID: "dave", Audio: true, Join: time.Second, Length: 3 * time.Second, Marks: true},
		synthPart{ID: "erin", Video: "vp8", W: 480, H: 360, Join: 2 * time.Second, Length: 2 * time.Second, Marks: true})
	ss := makeSession(t, t.TempDir(), parts)
	edits := parseEdits(t, "cuts:\n  - {start: 1.5, end: 2}\nlanes:\n  bob: {mute: true}\n  alice: {name: \"Alice A.\"}\n")
	var progress bytes.Buffer
	res, err := render.Export(context.Background(), ss.Dir, render.ExportOptions{Edits: edits, Audio: true, Video: true,
		Timelines: render.TimelineFormats(), OutDir: filepath.Join(t.TempDir(), "export"), Log: testLogger(t), Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "export: 100% done") {
		t.Errorf("progress never reached 100%%: %q", progress.String())
	}
	fps := res.FPS
	if got, want := res.Frames, int64(151); got != want {
		t.Errorf("%d frames, want %d (5.05 s at 30 fps)", got, want)
	}
	var wavs, mp4s []string
	byID := map[string]render.StemFile{}
	for _, st := range res.Stems {
		byID[st.Participant] = st
		if st.WAV != "" {
			wavs = append(wavs, st.Participant)
		}
		if st.MP4 != "" {
			mp4s = append(mp4s, st.Participant)
		}
	}
	if got, want := strings.Join(wavs, ","), "alice,bob,carol,dave"; got != want {
		t.Errorf("WAV stems of %s, want %s", got, want)
	}
	if got, want := strings.Join(mp4s, ","), "alice,bob,carol,erin"; got != want {
		t.Errorf("MP4 stems of %s, want %s", got, want)
	}
	for _, want := range []string{"dave sent no video: no dave.mp4", "erin sent no audio: no erin.wav"} {
		if !slices.Contains(res.Notes, want) {
			t.Errorf("notes %q lack %q", res.Notes, want)
		}
	}
	if got, want := byID["bob"].Width, 320; got != want {
		t.Errorf("bob.mp4 is %d wide, want %d (his own size)", got, want)
	}
	if got, want := byID["alice"].Name, "Alice A."; got != want {
		t.Errorf("alice's name %q, want %q (from the edits)", got, want)
	}
	stemChecks(t, res, 1)

	// Tones: in every WAV at their instants; the same offset in every one.
	var medians []float64
	for _, who := range []string{"alice", "bob", "carol", "dave"} {
		w := readWAV(t, filepath.Join(res.Dir, who+".wav"))
		tones := marks.Tones(w.left, 0.15)
		var errs []float64
		for _, want := range ss.Tones[who] {
			if at, d := nearest(tones, want); d < 0.1 {
				errs = append(errs, at-want)
			}
		}
		s := marks.SummarizeSigned(errs)
		t.Logf("%-5s %d of %d tones found, tone − instant: %s ms", who, len(errs), len(ss.Tones[who]),
			marks.SummarizeSigned(scale(errs, 1000)))
		if len(errs) < len(ss.Tones[who])-1 || len(ss.Tones[who]) < 2 {
			t.Errorf("%s: found %d of %d tones", who, len(errs), len(ss.Tones[who]))
		}
		if a := marks.Summarize(errs); a.Max > 0.002 {
			t.Errorf("%s: a tone is %s from its instant, want within 2 ms: %v", who, ms(a.Max), errs)
		}
		medians = append(medians, s.Median)
	}
	spread := slices.Max(medians) - slices.Min(medians)
	t.Logf("spread of the participants' tone offsets (medians): %.3f ms", spread*1000)
	if spread > 0.002 {
		t.Errorf("the participants' tones are %s apart, want within 2 ms", ms(spread))
	}

	// Flashes: on the frame nearest to their instant, in every MP4.
	frame := 1 / fps.Float()
	for _, who := range []string{"alice", "bob", "carol", "erin"} {
		got := flashFrames(t, filepath.Join(res.Dir, who+".mp4"))
		var errs []float64
		for _, want := range ss.Flashes[who] {
			k := slices.IndexFunc(got, func(f int) bool { return math.Abs(float64(f)*frame-want) < 0.1 })
			if k < 0 {
				continue
			}
			errs = append(errs, float64(got[k])*frame-want)
		}
		t.Logf("%-5s %d of %d flashes found, frame − instant: %s ms", who, len(errs), len(ss.Flashes[who]), marks.SummarizeSigned(scale(errs, 1000)))
		if len(errs) < len(ss.Flashes[who])-1 || len(ss.Flashes[who]) < 2 {
			t.Errorf("%s: found %d of %d flashes", who, len(errs), len(ss.Flashes[who]))
		}
		// Half a frame, and 1/32 of one: video is placed on a grid of 1/16
		// of a frame.
		if a := marks.Summarize(errs); a.Max > frame/2+frame/32+0.0015 {
			t.Errorf("%s: a flash is %s from its instant, more than half a frame and 1/32 of one: %v", who, ms(a.Max), errs)
		}
	}

	// Before bob joins (0.3 s) and after dave leaves (4 s): silence, and for
	// bob the placeholder with his name.
	bob := readWAV(t, filepath.Join(res.Dir, "bob.wav"))
	for i := range 14000 { // 0.29 s
		if !bob.exactZero[i] {
			t.Fatalf("bob.wav: sample %d (%.4f s, before he joins) is not silent", i, float64(i)/48000)
		}
	}
	dave := readWAV(t, filepath.Join(res.Dir, "dave.wav"))
	for i := 4*48000 + 2400; i < len(dave.exactZero); i++ {
		if !dave.exactZero[i] {
			t.Fatalf("dave.wav: sample %d (%.4f s, after he left) is not silent", i, float64(i)/48000)
		}
	}
	corner := regionLuma(t, filepath.Join(res.Dir, "bob.mp4"), 0, 0, 0.15, 0.15)
	centre := regionLuma(t, filepath.Join(res.Dir, "bob.mp4"), 0.2, 0.35, 0.8, 0.65)
	for i := range 8 { // frames before 0.27 s
		if math.Abs(corner[i]-placeholderLuma) > 4 {
			t.Errorf("bob.mp4 frame %d (before he joins): corner luma %.1f, want the placeholder's %.1f", i, corner[i], placeholderLuma)
		}
		if centre[i] < corner[i]+5 {
			t.Errorf("bob.mp4 frame %d (before he joins): no name drawn (centre luma %.1f, corner %.1f)", i, centre[i], corner[i])
		}
	}
	if len(corner) > 20 && math.Abs(corner[20]-placeholderLuma) < 4 {
		t.Errorf("bob.mp4 frame 20 (he is there) still shows the placeholder")
	}

	// The timelines: well-formed, every stem by a relative path that exists.
	checkTimelines(t, res)
}

// scale multiplies every value.
func scale(v []float64, k float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x * k
	}
	return out
}

// checkTimelines checks an export's timelines: each exists; the XML ones
// are well-formed (xmllint); every media path they hold is relative and
// names a file of the export; every stem is named.
func checkTimelines(t *testing.T, res *render.ExportResult) {
	t.Helper()
	session := res.Session[strings.Index(res.Session, "/")+1:]
	refs := map[string]*regexp.Regexp{
		render.TimelineOTIO:   regexp.MustCompile(`"target_url":\s*"([^"]*)"`),
		render.TimelineFCPXML: regexp.MustCompile(`<media-rep [^>]*src="([^"]*)"`),
		render.TimelineXMEML:  regexp.MustCompile(`<pathurl>([^<]*)</pathurl>`),
	}
	xmllint, lintErr := exec.LookPath("xmllint")
	for _, f := range render.TimelineFormats() {
		name := render.TimelineFile(session, f)
		if !slices.Contains(res.Timelines, name) {
			t.Errorf("no %s timeline (%s)", f, name)
			continue
		}
		b, err := os.ReadFile(filepath.Join(res.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if f == render.TimelineOTIO {
			var v map[string]any
			if err := json.Unmarshal(b, &v); err != nil || v["OTIO_SCHEMA"] != "Timeline.1" {
				t.Errorf("%s: not an OTIO timeline: %v", name, err)
			}
		} else if lintErr == nil {
			if out, err := exec.Command(xmllint, "--noout", filepath.Join(res.Dir, name)).CombinedOutput(); err != nil {
				t.Errorf("%s: xmllint: %v\n%s", name, err, out)
			}
		}
		named := map[string]bool{}
		for _, m := range refs[f].FindAllStringSubmatch(string(b), -1) {
			p := m[1]
			if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "://") || strings.Contains(p, "..") {
				t.Errorf("%s: media path %q is not relative to the export folder", name, p)
				continue
			}
			if _, err := os.Stat(filepath.Join(res.Dir, filepath.FromSlash(p))); err != nil {
				t.Errorf("%s: media path %q: %v", name, p, err)
			}
			named[p] = true
		}
		for _, st := range res.Stems {
			for _, p := range []string{st.WAV, st.MP4} {
				if p != "" && !named[p] {
					t.Errorf("%s does not name %s", name, p)
				}
			}
		}
	}
	if lintErr != nil {
		t.Logf("xmllint not installed (apt-get install libxml2-utils): the XML timelines were not checked for well-formedness")
	}
}

// TestExportRefuses: an unknown participant in the edits, an output folder
// holding other files, a cancelled export and a full disk each end with a
// clear error and leave nothing; an export into a folder holding a previous
// export replaces it.
func TestExportRefuses(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	ss := makeSession(t, t.TempDir(), threeParts(4*time.Second))
	log := testLogger(t)
	leftovers := func(dir string) []string {
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}

	parent := t.TempDir()
	out := filepath.Join(parent, "export")
	_, err := render.Export(t.Context(), ss.Dir, render.ExportOptions{Audio: true, Video: true, OutDir: out, Log: log,
		Edits: parseEdits(t, "lanes:\n  zed: {mute: true}\n")})
	if !errors.Is(err, timeline.ErrInvalidEdits) || !strings.Contains(err.Error(), `"zed"`) || !strings.Contains(err.Error(), "test.yaml:2") {
		t.Errorf("unknown participant in the edits: %v; want an edit error naming zed and its line", err)
	}
	if got := leftovers(parent); len(got) > 0 {
		t.Errorf("after the edit error the folder holds %v", got)
	}

	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = render.Export(t.Context(), ss.Dir, render.ExportOptions{Audio: true, OutDir: out, Log: log})
	if !errors.Is(err, render.ErrOutputNotEmpty) || !strings.Contains(err.Error(), "notes.txt") {
		t.Errorf("export into a folder with other files: %v; want ErrOutputNotEmpty naming notes.txt", err)
	}
	if got := leftovers(out); !slices.Equal(got, []string{"notes.txt"}) {
		t.Errorf("the folder with other files now holds %v", got)
	}
	if got := leftovers(parent); !slices.Equal(got, []string{"export"}) {
		t.Errorf("beside it: %v", got)
	}
	if err := os.Remove(filepath.Join(out, "notes.txt")); err != nil {
		t.Fatal(err)
	}

	// A cancelled export leaves nothing.
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(700*time.Millisecond, cancel)
	_, err = render.Export(ctx, ss.Dir, render.ExportOptions{Audio: true, Video: true, OutDir: out, Log: log})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled export: %v; want context.Canceled", err)
	}
	if got := leftovers(parent); !slices.Equal(got, []string{"export"}) {
		t.Errorf("after a cancelled export the parent holds %v", got)
	}
	if got := leftovers(out); len(got) > 0 {
		t.Errorf("after a cancelled export the output folder holds %v", got)
	}

	// An export into an empty folder, then another into it: the second
	// replaces the first.
	first, err := render.Export(t.Context(), ss.Dir, render.ExportOptions{Audio: true, Video: true, OutDir: out, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	second, err := render.Export(t.Context(), ss.Dir, render.ExportOptions{Audio: true, OutDir: out, Log: log, Timelines: []string{"otio"}})
	if err != nil {
		t.Fatalf("export over a previous export: %v", err)
	}
	if got, want := leftovers(out), second.Files; !slices.Equal(got, want) {
		t.Errorf("after the second export the folder holds %v, want %v (the first held %v)", got, want, first.Files)
	}
	if got := leftovers(parent); !slices.Equal(got, []string{"export"}) {
		t.Errorf("beside the replaced export: %v", got)
	}

	// A full disk: the export folder on a 3 MiB tmpfs.
	if os.Geteuid() != 0 {
		t.Log("not root: the full-disk case (a small tmpfs) is not tested")
		return
	}
	small := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", small).CombinedOutput(); err != nil {
		t.Logf("mount a tmpfs: %v: %s; the full-disk case is not tested", err, out)
		return
	}
	t.Cleanup(func() { _ = exec.Command("umount", small).Run() })
	_, err = render.Export(t.Context(), ss.Dir, render.ExportOptions{Audio: true, Video: true, OutDir: filepath.Join(small, "export"), Log: log})
	if !errors.Is(err, render.ErrDiskFull) {
		t.Errorf("export onto a full disk: %v; want ErrDiskFull", err)
	} else {
		t.Logf("full disk: %s", strings.SplitN(err.Error(), "\n", 2)[0])
	}
	if got := leftovers(small); len(got) > 0 {
		t.Errorf("after a full disk the tmpfs holds %v", got)
	}
}

// TestStemPlans: each participant's plan covers the session, shows only
// them, and has a placeholder where they are absent.
func TestStemPlans(t *testing.T) {
	t.Parallel()
	ss := makeSession(t, t.TempDir(), []synthPart{
		{ID: "alice", Video: "vp8", Audio: true, W: 320, H: 240, Length: 3 * time.Second},
		{ID: "bob", Audio: true, Join: time.Second, Length: time.Second},
	})
	f, err := os.Open(filepath.Join(ss.Dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := timeline.ParseManifest(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err := timeline.NewSync(m)
	if err != nil {
		t.Fatal(err)
	}
	plans, err := render.StemPlans(m, s, nil, render.StemPlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(plans), 2; got != want {
		t.Fatalf("%d stem plans, want %d", got, want)
	}
	for _, sp := range plans {
		p := sp.Plan
		if got, want := p.Duration, plans[0].Plan.Duration; got != want {
			t.Errorf("%s: plan lasts %s, alice's %s", sp.Participant, got, want)
		}
		if got, want := p.FPS, (timeline.Rational{Num: 30, Den: 1}); got != want {
			t.Errorf("%s: %s fps, want %s", sp.Participant, got, want)
		}
		for _, iv := range p.Intervals {
			if len(iv.Tiles) != 1 || iv.Tiles[0].Participant != sp.Participant || iv.Tiles[0].Rect != (timeline.Rect{W: p.Width, H: p.Height}) {
				t.Errorf("%s: interval %s–%s: tiles %+v, want one full-frame tile of %s", sp.Participant, iv.Start, iv.End, iv.Tiles, sp.Participant)
			}
			for _, a := range iv.Audio {
				if a.Participant != sp.Participant || a.GainDB != 0 {
					t.Errorf("%s: interval %s: audio %+v", sp.Participant, iv.Start, a)
				}
			}
		}
	}
	if got, want := fmt.Sprintf("%dx%d %v %v", plans[0].Plan.Width, plans[0].Plan.Height, plans[0].Video, plans[0].Audio), "320x240 true true"; got != want {
		t.Errorf("alice's stem: %s, want %s", got, want)
	}
	bob := plans[1]
	if bob.Video || !bob.Audio || bob.Participant != "bob" {
		t.Errorf("bob's stem: video %v audio %v (%s), want audio only", bob.Video, bob.Audio, bob.Participant)
	}
	if iv := bob.Plan.Intervals[0]; iv.Tiles[0].Placeholder != timeline.PlaceholderAbsent || len(iv.Audio) != 0 || iv.Tiles[0].Name != "bob" {
		t.Errorf("bob before he joins: %+v, want a placeholder with his name and no audio", iv)
	}
}

// TestStemsStereo: a participant who sent stereo gets a stereo WAV and
// stereo AAC, with the channels as sent; one who sent mono (Opus decodes it
// to two identical channels) gets mono.
func TestStemsStereo(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	ss := makeSession(t, t.TempDir(), []synthPart{
		{ID: "alice", Video: "vp8", Audio: true, W: 320, H: 240, Length: 2 * time.Second},
		{ID: "bob", Audio: true, Length: 2 * time.Second},
	})
	// alice's audio becomes stereo: 440 Hz on the left, silence on the right.
	var path string
	for _, l := range ss.Manifest.Lanes {
		if l.ID == "alice/audio" {
			path = filepath.Join(ss.Dir, filepath.FromSlash(l.Tracks[0].Segments[0].Path))
		}
	}
	ffrun(t, "-f", "lavfi", "-i", "aevalsrc=0.3*sin(2*PI*440*t)|0:s=48000:d=2", "-c:a", "libopus", "-b:a", "96k",
		"-frame_duration", "20", "-f", "webm", path)
	res, err := render.Export(t.Context(), ss.Dir, render.ExportOptions{Audio: true, Video: true, OutDir: filepath.Join(t.TempDir(), "x"),
		Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	chans := map[string]int{}
	for _, st := range res.Stems {
		chans[st.Participant] = st.Channels
	}
	if got, want := fmt.Sprint(chans), "map[alice:2 bob:1]"; got != want {
		t.Errorf("channels %s, want %s", got, want)
	}
	w := readWAV(t, filepath.Join(res.Dir, "alice.wav"))
	if got, want := w.channels, 2; got != want {
		t.Errorf("alice.wav: %d channels, want %d", got, want)
	}
	if got, want := probeValue(t, filepath.Join(res.Dir, "alice.mp4"), "a:0", "stream=channels"), "2"; got != want {
		t.Errorf("alice.mp4: %s audio channels, want %s", got, want)
	}
	// The left channel carries the tone, the right stays (nearly) silent.
	b, err := os.ReadFile(filepath.Join(res.Dir, "alice.wav"))
	if err != nil {
		t.Fatal(err)
	}
	data := b[bytes.Index(b, []byte("data"))+8:]
	var left, right float64
	for i := 0; i+6 <= len(data); i += 6 {
		l := int32(uint32(data[i])<<8|uint32(data[i+1])<<16|uint32(data[i+2])<<24) >> 8
		r := int32(uint32(data[i+3])<<8|uint32(data[i+4])<<16|uint32(data[i+5])<<24) >> 8
		left, right = max(left, math.Abs(float64(l))), max(right, math.Abs(float64(r)))
	}
	if left < 0.2*(1<<23) || right > 0.05*(1<<23) {
		t.Errorf("alice.wav peaks: left %.3f, right %.3f; want the tone on the left only", left/(1<<23), right/(1<<23))
	}
	if got, want := readWAV(t, filepath.Join(res.Dir, "bob.wav")).channels, 1; got != want {
		t.Errorf("bob.wav: %d channels, want %d", got, want)
	}

	// --size: alice's 4:3 video fitted into 640x360 at 25 fps.
	res, err = render.Export(t.Context(), ss.Dir, render.ExportOptions{Video: true, Width: 640, Height: 360, FPS: timeline.Rational{Num: 25, Den: 1},
		OutDir: filepath.Join(t.TempDir(), "sized"), Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	mp4 := filepath.Join(res.Dir, "alice.mp4")
	if got, want := probeValue(t, mp4, "v:0", "stream=width")+"x"+probeValue(t, mp4, "v:0", "stream=height"), "640x360"; got != want {
		t.Errorf("--size 640x360: alice.mp4 is %s", got)
	}
	if got, want := countFrames(t, mp4), res.Frames; got != want || res.FPS.String() != "25" {
		t.Errorf("alice.mp4: %d frames at %s fps, want %d at 25", got, res.FPS, want)
	}
	// Pillarboxed: the sides are the background (black), the middle the picture.
	if side := regionLuma(t, mp4, 0, 0.4, 0.1, 0.6); slices.Max(side) > 20 {
		t.Errorf("alice.mp4: the left side's luma reaches %.0f, want black bars", slices.Max(side))
	}
	if _, err := os.Stat(filepath.Join(res.Dir, "alice.wav")); err == nil {
		t.Error("--audio none (Audio false) wrote alice.wav")
	}
}
