package render_test

import (
	"context"
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
	srv := capturetest.Start(t, capture.Config{Grace: 1500 * time.Millisecond, OnSessionEnd: func(s capture.SessionEnded) { ended <- s }}, log)
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

// TestRecordedCallSync records a call of three synthetic publishers over
// WebRTC — joining at different times, bob sending H.264 with his wall clock
// 3 s off — renders it (loudness normalization on, as by default), and
// measures in the MP4 where each publisher's sync marks play. Each
// publisher draws a white flash and starts a tone burst at the same sender
// instant (Result.Marks[k].At, on this machine's clock, which is also the
// recorder's); the fixed layout gives each participant its own tile. For
// every mark it reports the flash and the tone against that instant
// (placement), the flash against the tone (A/V offset), and the offsets
// between participants.
func TestRecordedCallSync(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	cfg := func(name, video string, d, offset time.Duration) publisher.Config {
		return publisher.Config{Participant: name, Video: video, Audio: true, Duration: d, Width: 320, Height: 240, FPS: 30,
			Bitrate: 400_000, ClockOffset: offset, Seed: int64(len(name))}
	}
	pubs := []publisher.Config{
		cfg("alice", publisher.VP8, 9*time.Second, 0),
		cfg("bob", publisher.H264, 7*time.Second, 3*time.Second),
		cfg("carol", publisher.VP8, 5500*time.Millisecond, 0),
	}
	sess, res := recordCall(t, pubs, []time.Duration{0, 1300 * time.Millisecond, 2600 * time.Millisecond})

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
	medians := map[string][2]float64{}
	for i, p := range pubs {
		who := p.Participant
		flashes := flashesIn(frames, 64, 10, rects[who], plan.FPS)
		var av, verr, aerr []float64
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
			verr, aerr, av = append(verr, f-e), append(aerr, a-e), append(av, f-a)
		}
		if len(av) < 3 {
			t.Fatalf("%s: %d marks measured (%d of %d skipped), want at least 3", who, len(av), skipped, len(res[i].Marks))
		}
		allAV, allV, allA = append(allAV, av...), append(allV, verr...), append(allA, aerr...)
		medians[who] = [2]float64{median(verr), median(aerr)}
		t.Logf("%-5s %2d marks: A/V offset (flash − tone) %s; flash − instant %s; tone − instant %s", who, len(av),
			scaled(marks.Summarize(av)), scaled(marks.Summarize(verr)), scaled(marks.Summarize(aerr)))
	}
	var between, betweenA []float64
	names := []string{"alice", "bob", "carol"}
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			between = append(between, medians[names[i]][0]-medians[names[j]][0])
			betweenA = append(betweenA, medians[names[i]][1]-medians[names[j]][1])
		}
	}
	avs, vs, as := marks.Summarize(allAV), marks.Summarize(allV), marks.Summarize(allA)
	t.Logf("all   %2d marks: A/V offset %s; flash − instant %s; tone − instant %s", avs.N, scaled(avs), scaled(vs), scaled(as))
	t.Logf("between participants (differences of their median placements, 3 pairs): video %s; audio %s",
		scaled(marks.Summarize(between)), scaled(marks.Summarize(betweenA)))
	// Bounds the render keeps: audio is placed to the sample (the sync
	// model's error, about a millisecond, remains); video is quantized to
	// the output's frames (half a frame, 16.7 ms at 30 fps).
	if avs.P95 > 0.020 || avs.Max > 0.025 {
		t.Errorf("A/V offset p95 %s, max %s: want p95 under 20 ms and max under 25 ms", ms(avs.P95), ms(avs.Max))
	}
	if as.P95 > 0.005 {
		t.Errorf("tones play %s (p95) from their instants: want under 5 ms", ms(as.P95))
	}
	if vs.Max > 0.5/plan.FPS.Float()+0.005 {
		t.Errorf("a flash plays %s from its instant: want within half a frame and 5 ms", ms(vs.Max))
	}
	if s := marks.Summarize(betweenA); s.Max > 0.005 {
		t.Errorf("participants' audio is up to %s apart: want under 5 ms", ms(s.Max))
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return math.NaN()
	}
	return s[len(s)/2]
}
