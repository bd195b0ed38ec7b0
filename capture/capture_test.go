package capture_test

import (
	"context"
	"math"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/examples/publisher"
	"github.com/tapedeck/tapedeck/timeline"
)

// pub is one publisher of a test call.
type pub struct {
	name   string
	video  string
	join   time.Duration
	dur    time.Duration
	offset time.Duration
	loss   float64
	// replaced: the recorder is expected to end this publish early.
	replaced bool
}

// runCall runs the publishers against endpoint, each after its join delay,
// and returns their results in the same order.
func runCall(t *testing.T, endpoint string, pubs []pub) []publisher.Result {
	res, _ := runCallMedia(t, endpoint, pubs)
	return res
}

// runCallMedia is runCall that also returns each publisher's media.
func runCallMedia(t *testing.T, endpoint string, pubs []pub) ([]publisher.Result, []publisher.Media) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := make([]publisher.Result, len(pubs))
	errs := make([]error, len(pubs))
	cfgs := make([]publisher.Config, len(pubs))
	media := make([]publisher.Media, len(pubs))
	for i, p := range pubs {
		cfgs[i] = publisher.Config{
			Endpoint: endpoint, Participant: p.name, Duration: p.dur, Video: p.video, Audio: true,
			Width: 320, Height: 240, FPS: 30, Bitrate: 500_000, ClockOffset: p.offset, Loss: p.loss, Seed: int64(i + 1),
		}
		// Generate the media before the call, so that joins happen on time.
		var err error
		if media[i], err = publisher.PrepareMedia(ctx, cfgs[i], testLogger(t)); err != nil {
			t.Fatalf("media for %s: %v", p.name, err)
		}
	}
	var wg sync.WaitGroup
	for i, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(p.join)
			res[i], errs[i] = publisher.Run(ctx, cfgs[i], testLogger(t))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && !pubs[i].replaced {
			t.Fatalf("publisher %s: %v", pubs[i].name, err)
		}
	}
	return res, media
}

// TestCallRecordsEveryTrack records three participants who join at
// different times; carol leaves and rejoins, bob sends H.264 with his wall
// clock 3 s off. Every file must decode strictly, the manifest must hold
// every lane, track, segment and sender report, durations must match what
// was sent, and the sync marks must sit where their RTP times say.
func TestCallRecordsEveryTrack(t *testing.T) {
	t.Parallel()
	r := startRecorder(t, capture.Config{Grace: 2 * time.Second})
	pubs := []pub{
		{name: "alice", video: publisher.VP8, dur: 8 * time.Second},
		{name: "bob", video: publisher.H264, join: time.Second, dur: 6 * time.Second, offset: 3 * time.Second},
		{name: "carol", video: publisher.VP8, join: 2 * time.Second, dur: 2500 * time.Millisecond},
		{name: "carol", video: publisher.VP8, join: 5500 * time.Millisecond, dur: 2500 * time.Millisecond},
	}
	res, media := runCallMedia(t, r.base+"/whip/standup", pubs)
	s := r.waitSession(t, 30*time.Second)
	m := readManifest(t, s.Dir)
	if got, want := m.Room, "standup"; got != want {
		t.Errorf("room = %q, want %q", got, want)
	}
	if m.Recovered {
		t.Error("manifest of a clean session is marked recovered")
	}
	if got, want := len(m.Participants), 3; got != want {
		t.Fatalf("participants = %d, want %d: %+v", got, want, m.Participants)
	}
	for _, p := range m.Participants {
		want := 1
		if p.ID == "carol" {
			want = 2
		}
		if got := len(p.Publishes); got != want {
			t.Errorf("%s has %d publishes, want %d", p.ID, got, want)
		}
	}
	wantTracks := map[string]int{"alice/audio": 1, "alice/video": 1, "bob/audio": 1, "bob/video": 1, "carol/audio": 2, "carol/video": 2}
	if got, want := len(m.Lanes), len(wantTracks); got != want {
		t.Fatalf("lanes = %d, want %d", got, want)
	}
	// The publishes of each participant in order, to match tracks to results.
	byName := map[string][]int{}
	for i, p := range pubs {
		byName[p.name] = append(byName[p.name], i)
	}
	for _, l := range m.Lanes {
		if got, want := len(l.Tracks), wantTracks[l.ID]; got != want {
			t.Errorf("lane %s has %d tracks, want %d", l.ID, got, want)
			continue
		}
		for k, tr := range l.Tracks {
			p := pubs[byName[l.Participant][k]]
			sent, ok := res[byName[l.Participant][k]].Track(string(l.Kind))
			if !ok {
				t.Fatalf("publisher %s sent no %s", p.name, l.Kind)
			}
			if got, want := tr.SSRC, sent.SSRC; got != want {
				t.Errorf("lane %s track %d: ssrc %d, want %d", l.ID, k, got, want)
			}
			wantCodec := "opus"
			frame := 20 * time.Millisecond
			if l.Kind == timeline.Video {
				wantCodec, frame = p.video, time.Second/30
			}
			if got := tr.Codec.Name; got != wantCodec {
				t.Errorf("lane %s: codec %s, want %s", l.ID, got, wantCodec)
			}
			if len(tr.SenderReports) == 0 {
				t.Errorf("lane %s track %d: no sender reports", l.ID, k)
			}
			if len(tr.Arrivals) == 0 {
				t.Errorf("lane %s track %d: no arrival samples", l.ID, k)
			}
			if l.Kind == timeline.Audio && len(tr.Levels) == 0 {
				t.Errorf("lane %s track %d: no audio levels", l.ID, k)
			}
			var got time.Duration
			for _, sg := range tr.Segments {
				if !sg.Closed {
					t.Errorf("%s: not closed", sg.Path)
				}
				decodeStrict(t, filepath.Join(s.Dir, sg.Path))
				got += segDuration(sg, tr.Codec, frame)
			}
			want := time.Duration(sent.Frames) * frame
			if d := got - want; d < -100*time.Millisecond || d > 100*time.Millisecond {
				t.Errorf("lane %s track %d: recorded %v, sent %v", l.ID, k, got, want)
			} else {
				t.Logf("lane %-12s track %d: recorded %v, sent %v (%s)", l.ID, k, got, want, msf(got-want))
			}
		}
	}
	// Sender reports carry bob's wrong clock: about 3 s ahead of arrival.
	bob, _ := m.Lane("bob/video")
	sr := bob.Tracks[0].SenderReports[0]
	if off := time.Duration(sr.NTPUnixNS - sr.ArrivalUnixNS); off < 2800*time.Millisecond || off > 3200*time.Millisecond {
		t.Errorf("bob's sender report is %v ahead of arrival, want about 3s", off)
	}
	checkMarks(t, s.Dir, m, "alice", res[0], media[0])
	checkMarks(t, s.Dir, m, "bob", res[1], media[1])
	checkSync(t, m, pubs, res)
}

// checkSync runs the timeline's sync model on this real recording, where
// the truth is known: every publisher runs on this machine, so the instant a
// mark was sent (Result.Marks, the sender's true wall clock) is on the
// recorder's clock, up to loopback delay. The model must place each mark's
// RTP time there although bob's sender reports are 3 s off, and must find
// bob's clock offset.
func checkSync(t *testing.T, m *timeline.Manifest, pubs []pub, res []publisher.Result) {
	t.Helper()
	sy, err := timeline.NewSync(m)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string][]int{}
	for i, p := range pubs {
		byName[p.name] = append(byName[p.name], i)
	}
	// Each mark is placed by the model and compared with the instant it
	// was due on the sender's clock (its media time: Start + i·period) and
	// with the instant its packet was handed to the network stack. The
	// first is what placement promises (media on its own time); the second
	// also holds the publisher's own send delays, which a loaded machine
	// stretches for single packets, so it is reported only.
	var errs, sendErrs []float64
	for _, l := range m.Lanes {
		for k, tr := range l.Tracks {
			r := res[byName[l.Participant][k]]
			base := tr.Segments[0].FirstRTP
			for _, mk := range r.Marks {
				rtpTS, sent := mk.AudioRTP, mk.AudioSent
				if l.Kind == timeline.Video {
					rtpTS, sent = mk.VideoRTP, mk.VideoSent
				}
				ext := base + int64(int32(rtpTS-uint32(base)))
				if ext < base || ext > tr.Segments[len(tr.Segments)-1].LastRTP || sent.IsZero() {
					continue
				}
				got, err := sy.RecorderTime(tr.ID, ext)
				if err != nil {
					t.Fatal(err)
				}
				errs = append(errs, float64(got-mk.At.UnixNano())/1e6)
				sendErrs = append(sendErrs, float64(got-sent.UnixNano())/1e6)
			}
		}
	}
	if len(errs) < 20 {
		t.Fatalf("only %d marks placed", len(errs))
	}
	quantiles := func(v []float64) (p50, p95, mx float64) {
		abs := make([]float64, len(v))
		for i, e := range v {
			abs[i] = math.Abs(e)
		}
		sort.Float64s(abs)
		return abs[len(abs)/2], abs[len(abs)*95/100], abs[len(abs)-1]
	}
	p50, p95, mx := quantiles(errs)
	s50, s95, smx := quantiles(sendErrs)
	t.Logf("sync model on this recording, over %d marks: placement vs the mark's media instant p50 %.2f ms, p95 %.2f ms, max %.2f ms; vs its packet's send instant p50 %.2f ms, p95 %.2f ms, max %.2f ms",
		len(errs), p50, p95, mx, s50, s95, smx)
	if p95 > 10 {
		t.Errorf("mark placement vs media instant p95 %.2f ms, want under 10 ms", p95)
	}
	clocks := sy.Clocks()
	if got, want := len(clocks), len(m.Participants); got != want {
		t.Errorf("%d participant clocks, want one per participant (%d)", got, want)
	}
	for _, c := range clocks {
		want := 0.0
		if c.Participant == "bob" {
			want = -3000 // his reports run 3 s ahead of the recorder's clock
		}
		t.Logf("clock of %s: offset %.1f ms (%.1f ppm drift)", c.Participant, c.OffsetMS, c.DriftPPM)
		if math.Abs(c.OffsetMS-want) > 50 {
			t.Errorf("clock of %s: offset %.1f ms, want %.0f ± 50 ms", c.Participant, c.OffsetMS, want)
		}
	}
}

// checkMarks finds the sync marks of a participant in the recorded files.
// Audio: around every tone burst, the decoded recording must be the decoded
// sent stream, shifted by exactly what the RTP times say (file time 0 = the
// first RTP time, codec delay accounted); the lag that best matches the two
// is the placement error. Video: every white flash must be the frame at its
// RTP time.
func checkMarks(t *testing.T, dir string, m *timeline.Manifest, who string, res publisher.Result, media publisher.Media) {
	t.Helper()
	audio, _ := m.Lane(who + "/audio")
	seg := audio.Tracks[0].Segments[0]
	pcm := decodePCM(t, filepath.Join(dir, seg.Path))
	ref := decodePCM(t, media.Audio)
	sentAudio, _ := res.Track("audio")
	// Recorded sample n is RTP time first_rtp+n-codec_delay, which is send
	// timeline sample n+shift, which is sample n+shift+AudioLead of ref.
	shift := int(int32(uint32(seg.FirstRTP)-sentAudio.FirstRTPTimestamp)) - int(audio.Tracks[0].CodecDelay) + media.AudioLead
	var errs []float64
	for _, mk := range res.Marks {
		off := int64(int32(mk.AudioRTP-uint32(seg.FirstRTP))) + audio.Tracks[0].CodecDelay
		if off < 480 || off+2400 > seg.LastRTP-seg.FirstRTP {
			continue
		}
		if toneOnset(pcm, int(off), 48*40) < 0 {
			t.Errorf("%s: no tone near mark %d (sample %d)", who, mk.Index, off)
			continue
		}
		lag, ok := bestLag(pcm, ref, int(off)-480, int(off)+shift-480, 2880, 240)
		if !ok {
			t.Errorf("%s: mark %d: the recording does not match the sent audio", who, mk.Index)
			continue
		}
		errs = append(errs, float64(lag)/48)
	}
	video, _ := m.Lane(who + "/video")
	vseg := video.Tracks[0].Segments[0]
	pts, luma := decodeLuma(t, filepath.Join(dir, vseg.Path))
	var verrs []float64
	for _, mk := range res.Marks {
		want := float64(int32(mk.VideoRTP-uint32(vseg.FirstRTP))) / 90000
		if want < 0 || want > float64(vseg.LastRTP-vseg.FirstRTP)/90000 {
			continue
		}
		best := -1
		for i, p := range pts {
			if math.Abs(p-want) < 0.5 && luma[i] > 200 && (best < 0 || math.Abs(p-want) < math.Abs(pts[best]-want)) {
				best = i
			}
		}
		if best < 0 {
			t.Errorf("%s: no flash near mark %d (%.3f s)", who, mk.Index, want)
			continue
		}
		verrs = append(verrs, (pts[best]-want)*1000)
	}
	if len(errs) < 3 || len(verrs) < 3 {
		t.Fatalf("%s: found %d tone and %d flash marks, want at least 3 of each", who, len(errs), len(verrs))
	}
	amax, vmax := maxAbs(errs), maxAbs(verrs)
	t.Logf("%s: audio around tone marks vs RTP: max %.3f ms over %d marks; flashes vs RTP: max %.3f ms over %d marks", who, amax, len(errs), vmax, len(verrs))
	if amax > 1.0 {
		t.Errorf("%s: decoded audio is %.3f ms from where its RTP time puts it (want within 1 ms): %v", who, amax, errs)
	}
	if vmax > 1.0 {
		t.Errorf("%s: a flash is %.3f ms from where its RTP time puts it (want within 1 ms): %v", who, vmax, verrs)
	}
}

// bestLag returns the lag (within ±maxLag samples) at which b[bAt+lag:]
// best matches a[aAt:] over n samples, and whether the match is close
// (normalized correlation above 0.9).
func bestLag(a, b []float64, aAt, bAt, n, maxLag int) (int, bool) {
	best, bestC := 0, -2.0
	for lag := -maxLag; lag <= maxLag; lag++ {
		if aAt < 0 || aAt+n > len(a) || bAt+lag < 0 || bAt+lag+n > len(b) {
			continue
		}
		var ab, aa, bb float64
		for i := 0; i < n; i++ {
			x, y := a[aAt+i], b[bAt+lag+i]
			ab += x * y
			aa += x * x
			bb += y * y
		}
		if aa == 0 || bb == 0 {
			continue
		}
		if c := ab / math.Sqrt(aa*bb); c > bestC {
			best, bestC = lag, c
		}
	}
	return best, bestC > 0.9
}

func maxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

// TestRotation records a 30 s call with 10 s segments: every segment starts
// on a keyframe, none overlaps the next, and the packets of all segments add
// up to the packets the jitter buffer released.
func TestRotation(t *testing.T) {
	t.Parallel()
	r := startRecorder(t, capture.Config{Grace: time.Second, SegmentDuration: 10 * time.Second})
	res := runCall(t, r.base+"/whip/rot", []pub{{name: "dana", video: publisher.VP8, dur: 30 * time.Second, loss: 0.01}})
	s := r.waitSession(t, 30*time.Second)
	m := readManifest(t, s.Dir)
	for _, l := range m.Lanes {
		tr := l.Tracks[0]
		if got := len(tr.Segments); got < 3 || got > 4 {
			t.Errorf("%s: %d segments, want 3 (or 4 with a short tail)", l.ID, got)
		}
		var packets, frames int64
		for i, sg := range tr.Segments {
			packets += sg.Packets
			frames += sg.Frames
			if i > 0 && sg.FirstRTP <= tr.Segments[i-1].LastRTP {
				t.Errorf("%s: segment %d starts at %d, before the previous ends (%d)", l.ID, i, sg.FirstRTP, tr.Segments[i-1].LastRTP)
			}
			path := filepath.Join(s.Dir, sg.Path)
			decodeStrict(t, path)
			pts, key := probePackets(t, path)
			if len(pts) == 0 || !key[0] {
				t.Errorf("%s: does not start with a keyframe", sg.Path)
			}
			if got, want := int64(len(pts)), sg.Frames; got != want {
				t.Errorf("%s: %d packets in the file, manifest says %d frames", sg.Path, got, want)
			}
			if len(pts) > 0 && pts[0] != 0 {
				t.Errorf("%s: first pts %v, want 0", sg.Path, pts[0])
			}
		}
		if got, want := packets, tr.PacketsReceived-tr.Duplicates-tr.Late; got != want {
			t.Errorf("%s: segments hold %d packets, jitter buffer released %d", l.ID, got, want)
		}
		sent, _ := res[0].Track(string(l.Kind))
		if got, want := tr.PacketsReceived-tr.Duplicates-tr.Late+tr.PacketsLost, int64(sent.Packets); got < want-5 || got > want {
			t.Errorf("%s: released+lost = %d, sent %d original packets", l.ID, got, want)
		}
		t.Logf("%s: %d segments, %d packets (%d frames), %d lost after NACK, %d dropped on purpose by the sender",
			l.ID, len(tr.Segments), packets, frames, tr.PacketsLost, sent.Dropped)
	}
}

// TestRepublishReplaces publishes the same participant again while the first
// publish is still live (a page reload): the first publish is ended, and both
// publishes' tracks stay on the participant's two lanes.
func TestRepublishReplaces(t *testing.T) {
	t.Parallel()
	r := startRecorder(t, capture.Config{Grace: time.Second})
	runCall(t, r.base+"/whip/reload", []pub{
		{name: "gina", video: publisher.VP8, dur: 6 * time.Second, replaced: true},
		{name: "gina", video: publisher.H264, join: 3 * time.Second, dur: 3 * time.Second},
	})
	s := r.waitSession(t, 30*time.Second)
	m := readManifest(t, s.Dir)
	if got, want := len(m.Participants), 1; got != want {
		t.Fatalf("participants = %d, want %d", got, want)
	}
	pubs := m.Participants[0].Publishes
	if got, want := len(pubs), 2; got != want {
		t.Fatalf("publishes = %d, want %d", got, want)
	}
	if got, want := pubs[0].EndReason, "replaced by a new publish of the same participant"; got != want {
		t.Errorf("first publish ended with %q, want %q", got, want)
	}
	if pubs[0].EndUnixNS > pubs[1].StartUnixNS+int64(time.Second) {
		t.Errorf("first publish ended %v after the second started", time.Duration(pubs[0].EndUnixNS-pubs[1].StartUnixNS))
	}
	if got, want := len(m.Lanes), 2; got != want {
		t.Fatalf("lanes = %d, want %d", got, want)
	}
	for _, l := range m.Lanes {
		if got, want := len(l.Tracks), 2; got != want {
			t.Errorf("lane %s: %d tracks, want %d", l.ID, got, want)
		}
		for _, tr := range l.Tracks {
			for _, sg := range tr.Segments {
				decodeStrict(t, filepath.Join(s.Dir, sg.Path))
			}
		}
	}
	video, _ := m.Lane("gina/video")
	if got, want := video.Tracks[1].Codec.Name, "h264"; got != want {
		t.Errorf("second video track codec %s, want %s", got, want)
	}
}
