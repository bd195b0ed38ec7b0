package render_test

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/capture/capturetest"
	"github.com/tapedeck/tapedeck/examples/publisher"
	"github.com/tapedeck/tapedeck/internal/marks"
	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

// recordCall records a call of real WebRTC publishers on loopback and
// returns the session and what each publisher sent.
func recordCall(t *testing.T, pubs []publisher.Config, joins []time.Duration) (capture.SessionEnded, []publisher.Result) {
	t.Helper()
	log := testLogger(t)
	ended := make(chan capture.SessionEnded, 4)
	srv := capturetest.Start(t, capture.Config{Grace: 1500 * time.Millisecond, OnSessionEnd: func(_ context.Context, s capture.SessionEnded) { ended <- s }}, log)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	endpoint := srv.Base + "/whip/synctest"
	for i := range pubs {
		pubs[i].Endpoint = endpoint
		// Generate the media first, so that joins happen on time.
		if _, err := publisher.PrepareMedia(ctx, pubs[i], log); err != nil {
			t.Fatalf("media for %s: %v", pubs[i].Participant, err)
		}
	}
	res := make([]publisher.Result, len(pubs))
	errs := make([]error, len(pubs))
	var wg sync.WaitGroup
	for i := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(joins[i])
			res[i], errs[i] = publisher.Run(ctx, pubs[i], log)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("publisher %s: %v", pubs[i].Participant, err)
		}
	}
	select {
	case s := <-ended:
		return s, res
	case <-time.After(30 * time.Second):
		t.Fatal("the session did not end")
	}
	return capture.SessionEnded{}, nil
}

// Marks of the recorded call: the publishers send 25 fps with a mark every
// 1040 ms (26 frames). The output runs at 30 fps, so each mark's instant
// falls 1040 mod 33.3 = 6.7 ms (a fifth of an output frame) further along
// the output's frame grid than the one before, and five marks in a row
// sample the whole frame. With a mark period that is a whole number of
// output frames (1 s at 30 fps) every flash of a participant would sit at
// the same place in its frame, and a shift of up to a frame could hide in
// the rounding to the nearest frame.
const (
	syncFPS        = 25
	syncMarkPeriod = 1040 * time.Millisecond
	// syncTol is the sync model's error on this loopback call (about a
	// millisecond, measured: tone − instant) plus the 1 ms timestamps of
	// the recorded files.
	syncTol = 0.002 // s
	// regression is the shift of one participant the test must catch.
	regression = 0.020 // s
)

// TestRecordedCallSync records a call of three synthetic publishers over
// WebRTC — joining at different times, bob sending H.264 with his wall clock
// 3 s off — renders it (loudness normalization on, as by default), and
// measures in the MP4 where each publisher's sync marks play. Each
// publisher draws a white flash and starts a tone burst at the same sender
// instant (Result.Marks[k].At, on this machine's clock, which is also the
// recorder's); the fixed layout gives each participant its own tile. For
// every mark it reports the flash and the tone against that instant
// (placement) and the flash against the tone (A/V offset); per participant
// the video placement (to a fraction of a frame: see syncMarkPeriod) and
// the trend of the audio placement (drift); and between participants the
// offsets of their video and of their audio.
func TestRecordedCallSync(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	cfg := func(name, video string, d, offset time.Duration) publisher.Config {
		return publisher.Config{Participant: name, Video: video, Audio: true, Duration: d, Width: 320, Height: 240, FPS: syncFPS,
			MarkPeriod: syncMarkPeriod, Bitrate: 400_000, ClockOffset: offset, Seed: int64(len(name))}
	}
	pubs := []publisher.Config{
		cfg("alice", publisher.VP8, 9*time.Second, 0),
		cfg("bob", publisher.H264, 7*time.Second, 3*time.Second),
		cfg("carol", publisher.VP8, 6*time.Second, 0),
	}
	// Marks a third of a mark period apart, whenever each connection comes
	// up: they never meet.
	epoch := time.Now()
	for i := range pubs {
		pubs[i].MarkEpoch = epoch.Add(time.Duration(i) * syncMarkPeriod / 3)
	}
	sess, res := recordCall(t, pubs, []time.Duration{0, 1400 * time.Millisecond, 2800 * time.Millisecond})

	opts := render.Options{Profiles: []string{render.ProfileMP4_360}, Edits: parseEdits(t, fixedLayout), OutDir: t.TempDir(),
		Log: testLogger(t), Nice: 10}
	plan, err := render.LoadPlan(sess.Dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	outs, err := render.Render(context.Background(), plan, sess.Dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rendered %s of output in %s", plan.Duration.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	path := outs[0].Path
	checkVideo(t, path, plan.FPS, plan.Duration)
	frame := 1 / plan.FPS.Float()

	frames := gray(t, path, 64, 36)
	pcm, err := marks.PCM(path)
	if err != nil {
		t.Fatal(err)
	}
	tones := marks.Tones(pcm, 0.15)
	rects := map[string]timeline.Rect{"alice": {X: 0, Y: 0, W: 320, H: 180}, "bob": {X: 320, Y: 0, W: 320, H: 180}, "carol": {X: 0, Y: 180, W: 320, H: 180}}

	// Every participant's mark instants on the output's clock.
	at := map[string][]float64{}
	for i, p := range pubs {
		for _, mk := range res[i].Marks {
			at[p.Participant] = append(at[p.Participant], float64(mk.At.UnixNano()-plan.SessionStartUnixNS)/1e9)
		}
	}
	// A mark is measured when no other participant's mark is within 150 ms
	// (their tones would overlap in the mix) and it is not at the very end.
	clear := func(who string, v float64) bool {
		for other, xs := range at {
			if other == who {
				continue
			}
			if _, d := nearest(xs, v); d < 0.15 {
				return false
			}
		}
		return true
	}
	var allAV, allV, allA []float64
	video := map[string]placement{}
	audio := map[string]float64{}
	for i, p := range pubs {
		who := p.Participant
		flashes := flashesIn(frames, 64, 10, rects[who], plan.FPS)
		var av, verr, aerr, when []float64
		skipped := 0
		last := at[who][len(at[who])-1]
		for _, e := range at[who] {
			if !clear(who, e) || e > last-0.05 {
				skipped++
				continue
			}
			f, df := nearest(flashes, e)
			a, da := nearest(tones, e)
			if df > 0.1 || da > 0.1 {
				t.Errorf("%s: mark at %.3f s: flash %.3f s away, tone %.3f s away", who, e, df, da)
				continue
			}
			verr, aerr, av, when = append(verr, f-e), append(aerr, a-e), append(av, f-a), append(when, e)
		}
		// Five marks in a row sample every fifth of the output's frame
		// (see syncMarkPeriod); four already leave a shift of 20 ms no room
		// (checked below).
		if got, want := len(av), 4; got < want {
			t.Fatalf("%s: %d marks measured (%d of %d skipped), want at least %d", who, got, skipped, len(res[i].Marks), want)
		}
		allAV, allV, allA = append(allAV, av...), append(allV, verr...), append(allA, aerr...)
		vp := videoPlacement(verr, frame)
		video[who], audio[who] = vp, median(aerr)
		// Drift: the trend of the audio placement over the participant's
		// marks (the tones are placed to the sample, so a trend of a
		// millisecond shows), whatever drift the sync model reports.
		span := when[len(when)-1] - when[0]
		drift := marks.Slope(when, aerr) * span
		t.Logf("%-5s %2d marks: A/V offset (flash − tone) %s; flash − instant %s; tone − instant %s", who, len(av),
			scaled(marks.Summarize(av)), scaled(marks.Summarize(verr)), scaled(marks.Summarize(aerr)))
		t.Logf("%-5s video placement %s; audio placement %+.2f ms (median), trend %+.2f ms over %.1f s", who, vp, audio[who]*1000, drift*1000, span)
		if math.Abs(drift) > syncTol {
			t.Errorf("%s: the audio placement drifts by %s over %.1f s, want within %s", who, ms(drift), span, ms(syncTol))
		}
		if vp.lo > vp.hi+2*syncTol {
			t.Errorf("%s: no one video placement puts every flash on its nearest output frame: flash − instant %s", who, scaled(marks.Summarize(verr)))
		}
		// The measurement must be able to see a shift of 20 ms: the
		// placements consistent with the flashes form an interval of
		// width frame − (spread of the flash errors), + the tolerance.
		if w := vp.hi - vp.lo + 2*syncTol; w >= regression {
			t.Errorf("%s: the flashes leave %s of video placement undetermined (their phases in the output's frames spread over %s), want under %s",
				who, ms(w), ms(vp.spread), ms(regression))
		}
	}
	var between, betweenA []float64
	names := []string{"alice", "bob", "carol"}
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			a, b := names[i], names[j]
			d := video[a].minus(video[b])
			between = append(between, d.mid())
			betweenA = append(betweenA, audio[a]-audio[b])
			t.Logf("between %s and %s: video %s (flashes' medians: %+.1f ms); audio %+.2f ms", a, b, d,
				(median(video[a].errs)-median(video[b].errs))*1000, (audio[a]-audio[b])*1000)
			// Each flash is on the output frame nearest to its instant, so
			// the participants' video is within a frame of each other...
			if got := math.Abs(d.mid()); got > frame {
				t.Errorf("between %s and %s: video %s apart, want within one output frame (%s)", a, b, ms(got), ms(frame))
			}
			// ...and, measured to a fraction of a frame, in step.
			if d.lo > 2*syncTol || d.hi < -2*syncTol {
				t.Errorf("between %s and %s: video offset %s, want 0 (within %s)", a, b, d, ms(2*syncTol))
			}
		}
	}
	if got, want := len(between), 3; got != want {
		t.Fatalf("%d pairs of participants compared, want %d", got, want)
	}
	avs, vs, as := marks.Summarize(allAV), marks.Summarize(allV), marks.Summarize(allA)
	t.Logf("all   %2d marks: A/V offset %s; flash − instant %s; tone − instant %s", avs.N, scaled(avs), scaled(vs), scaled(as))
	t.Logf("between participants (3 pairs): video %s; audio %s", scaled(marks.Summarize(between)), scaled(marks.Summarize(betweenA)))
	// Bounds the render keeps: audio is placed to the sample (the sync
	// model's error, about a millisecond, remains); video is quantized to
	// the output's frames (half a frame, 16.7 ms at 30 fps) from a
	// placement on a grid of 1/16 of a frame (1/32 frame, 1 ms, more).
	if avs.P95 > 0.020 || avs.Max > 0.025 {
		t.Errorf("A/V offset p95 %s, max %s: want p95 under 20 ms and max under 25 ms", ms(avs.P95), ms(avs.Max))
	}
	if as.P95 > 0.005 {
		t.Errorf("tones play %s (p95) from their instants: want under 5 ms", ms(as.P95))
	}
	if vs.Max > frame/2+frame/32+syncTol {
		t.Errorf("a flash plays %s from its instant: want within half a frame, 1/32 of one and %s", ms(vs.Max), ms(syncTol))
	}
	if s := marks.Summarize(betweenA); s.Max > 0.005 {
		t.Errorf("participants' audio is up to %s apart: want under 5 ms", ms(s.Max))
	}
}

// placement is a participant's video placement (its flashes' offset from
// their instants, before the rounding to output frames) as the interval of
// offsets consistent with every flash: the renderer shows each flash on the
// output frame nearest to instant + offset, so a flash e after its instant
// says offset ∈ (e − frame/2, e + frame/2]. Flashes that sample different
// places in the frame narrow it to frame − spread(e).
type placement struct {
	lo, hi float64 // s
	spread float64 // s: max − min of the flash errors
	errs   []float64
}

func videoPlacement(errs []float64, frame float64) placement {
	s := marks.SummarizeSigned(errs)
	return placement{lo: s.Max - frame/2, hi: s.Min + frame/2, spread: s.Spread(), errs: errs}
}

// minus is the interval of p − q.
func (p placement) minus(q placement) placement {
	return placement{lo: p.lo - q.hi, hi: p.hi - q.lo}
}

func (p placement) mid() float64 { return (p.lo + p.hi) / 2 }

func (p placement) String() string {
	return fmt.Sprintf("%+.1f ms (%+.1f to %+.1f)", p.mid()*1000, p.lo*1000, p.hi*1000)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return math.NaN()
	}
	return s[len(s)/2]
}
