package render_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/examples/publisher"
	"github.com/tapedeck/tapedeck/internal/marks"
	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

// TestRecordedCallStems records a call of real WebRTC publishers over
// loopback — alice with her wall clock 4 s off, bob (H.264) joining late,
// carol leaving and rejoining, every one losing 3 % of its packets — and
// exports it. Every WAV must hold the same number of samples and every MP4
// the same number of frames (decoded), the session's; the MP4s must start
// with moov, keep a constant frame rate and a keyframe every 2 s. Each
// publisher starts a tone burst and a white flash at known instants
// (Result.Marks, on this machine's clock, which is the recorder's): every
// tone must play at its instant at the same offset in every WAV (the spread
// of the participants' median offsets within 2 ms, reported), and every
// flash on the output frame nearest its instant in every MP4. Before bob
// joins and while carol is away the WAV is silent and the MP4 shows the
// placeholder.
func TestRecordedCallStems(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	cfg := func(name, video string, d, offset time.Duration) publisher.Config {
		return publisher.Config{Participant: name, Video: video, Audio: true, Duration: d, Width: 320, Height: 240, FPS: syncFPS,
			MarkPeriod: syncMarkPeriod, Bitrate: 400_000, ClockOffset: offset, Loss: 0.03, Seed: int64(len(name)) + int64(d)}
	}
	pubs := []publisher.Config{
		cfg("alice", publisher.VP8, 11*time.Second, 4*time.Second),
		cfg("bob", publisher.H264, 7*time.Second, 0),
		cfg("carol", publisher.VP8, 3500*time.Millisecond, 0),
		cfg("carol", publisher.VP8, 4*time.Second, 0),
	}
	// bob joins 3.4 s in; carol leaves at about 4.2 s and is back at 6.6 s.
	sess, res := recordCall(t, pubs, []time.Duration{0, 3400 * time.Millisecond, 700 * time.Millisecond, 6600 * time.Millisecond})

	f, err := os.Open(filepath.Join(sess.Dir, "manifest.json"))
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
	start := time.Now()
	out, err := render.Export(context.Background(), sess.Dir, render.ExportOptions{Audio: true, Video: true,
		Timelines: render.TimelineFormats(), OutDir: filepath.Join(t.TempDir(), "export"), Log: testLogger(t), Nice: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exported %s (%d frames, %d samples) in %s", out.Duration, out.Frames, out.Samples, time.Since(start).Round(time.Millisecond))
	if got, want := len(out.Stems), 3; got != want {
		t.Fatalf("%d participants' stems, want %d", got, want)
	}
	for _, st := range out.Stems {
		if st.WAV == "" || st.MP4 == "" {
			t.Errorf("%s: stems %q %q, want a WAV and an MP4", st.Participant, st.WAV, st.MP4)
		}
	}
	stemChecks(t, out, 1)
	checkTimelines(t, out)

	// Every participant's mark instants on the session's clock.
	at := map[string][]float64{}
	for i, p := range pubs {
		for _, mk := range res[i].Marks {
			at[p.Participant] = append(at[p.Participant], float64(mk.At.UnixNano()-s.SessionStart())/1e9)
		}
	}
	// A tone whose first packets the 3 % loss took is not in the recording
	// as sent (its onset is 20 ms late, or concealed): the export cannot
	// place it at its instant. Each mark's tone is looked for in the
	// recorded file, at the file time of its RTP timestamp, independently
	// of the sync model; the marks whose tone is not there within 2 ms are
	// left out (and counted).
	intact := map[string]map[float64]bool{}
	for i, p := range pubs {
		who := p.Participant
		if intact[who] == nil {
			intact[who] = map[float64]bool{}
		}
		for k, ok := range recordedTones(t, sess.Dir, m, who, res[i]) {
			intact[who][float64(res[i].Marks[k].At.UnixNano()-s.SessionStart())/1e9] = ok
		}
	}
	frame := 1 / out.FPS.Float()
	var medians []float64
	var all []float64
	for _, who := range []string{"alice", "bob", "carol"} {
		w := readWAV(t, filepath.Join(out.Dir, who+".wav"))
		tones := marks.Tones(w.left, 0.15)
		flashes := flashFrames(t, filepath.Join(out.Dir, who+".mp4"))
		var aerr, verr []float64
		lost := 0
		last := slices.Max(at[who])
		for _, e := range at[who] {
			if e > last-0.05 {
				continue // the very last mark may be cut by the hang-up
			}
			if !intact[who][e] {
				lost++
			} else if a, d := nearest(tones, e); d < 0.1 {
				aerr = append(aerr, a-e)
			}
			k := slices.IndexFunc(flashes, func(f int) bool { return math.Abs(float64(f)*frame-e) < 0.1 })
			if k >= 0 {
				verr = append(verr, float64(flashes[k])*frame-e)
			}
		}
		n := len(at[who]) - 1
		as := marks.SummarizeSigned(aerr)
		t.Logf("%-5s tones %2d of %2d (%d damaged in the recording), tone − instant (ms): %s", who, len(aerr), n, lost,
			marks.SummarizeSigned(scale(aerr, 1000)))
		t.Logf("%-5s flashes %2d of %2d, frame − instant (ms): %s", who, len(verr), n, marks.SummarizeSigned(scale(verr, 1000)))
		if len(aerr) < n-lost || len(aerr) < 4 {
			t.Errorf("%s: %d of %d intact tones found", who, len(aerr), n-lost)
		}
		// 3 % loss: a flash frame may be lost (NACK recovers most).
		if len(verr) < n-2 {
			t.Errorf("%s: %d of %d flashes found", who, len(verr), n)
		}
		if a := marks.Summarize(aerr); a.Max > syncTol+0.001 {
			t.Errorf("%s: a tone plays %s from its instant, want within %s: %v", who, ms(a.Max), ms(syncTol+0.001), aerr)
		}
		if v := marks.Summarize(verr); v.Max > frame/2+frame/32+syncTol {
			t.Errorf("%s: a flash is %s from its instant, want on the nearest frame (half a frame, the placement grid's 1/32 frame and %s): %v", who, ms(v.Max), ms(syncTol), verr)
		}
		medians = append(medians, as.Median)
		all = append(all, aerr...)
	}
	spread := slices.Max(medians) - slices.Min(medians)
	t.Logf("tone offsets: spread of the participants' medians %.2f ms; every tone: %s", spread*1000, scaled(marks.Summarize(all)))
	if spread > 0.002 {
		t.Errorf("the participants' tones are %s apart (medians %v), want within 2 ms", ms(spread), medians)
	}

	// Before bob joins and while carol is away: silence and the placeholder.
	first := func(who string, i int) float64 { return float64(res[i].Start.UnixNano()-s.SessionStart()) / 1e9 }
	checkAbsent := func(who string, from, to float64) {
		t.Helper()
		w := readWAV(t, filepath.Join(out.Dir, who+".wav"))
		for i := int(from * 48000); i < int(to*48000) && i < len(w.exactZero); i++ {
			if !w.exactZero[i] {
				t.Errorf("%s.wav: sample %d (%.3f s, absent from %.3f to %.3f s) is not silent", who, i, float64(i)/48000, from, to)
				break
			}
		}
		corner := regionLuma(t, filepath.Join(out.Dir, who+".mp4"), 0, 0, 0.15, 0.15)
		for k := int(math.Ceil(from / frame)); float64(k)*frame < to && k < len(corner); k++ {
			if math.Abs(corner[k]-placeholderLuma) > 4 {
				t.Errorf("%s.mp4 frame %d (%.3f s, absent from %.3f to %.3f s): corner luma %.1f, want the placeholder's %.1f", who, k,
					float64(k)*frame, from, to, corner[k], placeholderLuma)
				break
			}
		}
	}
	checkAbsent("bob", 0, first("bob", 1)-0.1)
	checkAbsent("carol", float64(res[2].End.UnixNano()-s.SessionStart())/1e9+0.3, first("carol", 3)-0.1)
}

// recordedTones reports, for each mark a publish sent, whether its tone is
// in the recorded audio file as sent: an onset within 2 ms of the file time
// of the mark's RTP timestamp (the file's time 0 is its first RTP
// timestamp). It uses no sync model: only RTP timestamps and the file.
func recordedTones(t *testing.T, dir string, m *timeline.Manifest, who string, r publisher.Result) []bool {
	t.Helper()
	out := make([]bool, len(r.Marks))
	tr, ok := r.Track("audio")
	if !ok {
		return out
	}
	l, ok := m.Lane(who + "/audio")
	if !ok {
		t.Fatalf("no lane %s/audio", who)
	}
	for _, track := range l.Tracks {
		if track.SSRC != tr.SSRC {
			continue
		}
		for _, sg := range track.Segments {
			pcm, err := marks.PCM(filepath.Join(dir, filepath.FromSlash(sg.Path)))
			if err != nil {
				t.Fatal(err)
			}
			tones := marks.Tones(pcm, 0.15)
			for k, mk := range r.Marks {
				ext := int64(mk.AudioRTP)
				for ext < sg.FirstRTP-(1<<31) {
					ext += 1 << 32
				}
				if ext < sg.FirstRTP || ext > sg.LastRTP {
					continue
				}
				want := float64(ext-sg.FirstRTP-track.CodecDelay) / float64(track.Codec.ClockRate)
				if _, d := nearest(tones, want); d <= 0.002 {
					out[k] = true
				}
			}
		}
	}
	return out
}
