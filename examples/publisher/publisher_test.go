package publisher

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// needFFmpeg fails a test when ffmpeg is not installed: a missing tool
// must never pass silently.
func needFFmpeg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg is not installed: run `make deps` (apt-get install ffmpeg)")
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// callCase is one publish to the test receiver and what to check.
type callCase struct {
	cfg  Config
	nack bool
}

func runCall(t *testing.T, c callCase) (Result, *testReceiver) {
	t.Helper()
	needFFmpeg(t)
	recv := newTestReceiver(t, c.nack, c.cfg.Token)
	cfg := c.cfg
	cfg.Endpoint = recv.endpoint()
	cfg.MediaDir = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	recv.mu.Lock()
	posts, deletes, part := recv.posts, recv.deletes, recv.lastPart
	recv.mu.Unlock()
	if posts != 1 || deletes != 1 {
		t.Errorf("receiver saw %d POST and %d DELETE, want 1 and 1", posts, deletes)
	}
	if part != cfg.Participant {
		t.Errorf("participant %q reached the receiver, want %q", part, cfg.Participant)
	}
	if !strings.HasPrefix(res.Location, recv.srv.URL+"/whip/room1/") {
		t.Errorf("Location %q is not resolved against the endpoint", res.Location)
	}
	return res, recv
}

// checkTrack checks the packet accounting and the sender reports of a track.
func checkTrack(t *testing.T, res Result, recv *testReceiver, kind, wantMime string, cfg Config, repaired bool) (TrackResult, recvTrack) {
	t.Helper()
	tr, ok := res.Track(kind)
	if !ok {
		t.Fatalf("no %s track in the result", kind)
	}
	rt, ok := recv.track(kind)
	if !ok {
		t.Fatalf("no %s track reached the receiver", kind)
	}
	t.Logf("%s: sent %d frames, %d packets, dropped %d, retransmitted %d (dropped %d); received %d packets, %d distinct; NACKs %d PLIs %d; %d SRs",
		kind, tr.Frames, tr.Packets, tr.Dropped, tr.Retransmitted, tr.RetransmitsDropped, rt.packets, len(rt.seqs), tr.NACKs, tr.PLIs, len(rt.srs))
	if !strings.EqualFold(tr.Codec, wantMime) || !strings.EqualFold(rt.mime, wantMime) {
		t.Errorf("%s codec: sent %q, received %q, want %q", kind, tr.Codec, rt.mime, wantMime)
	}
	if tr.SSRC != rt.ssrc {
		t.Errorf("%s SSRC: sent %d, received %d", kind, tr.SSRC, rt.ssrc)
	}
	// Frames: one per 1/FPS (or 20 ms) of the duration.
	want := int(cfg.Duration / audioPacket)
	if kind == "video" {
		want = int(cfg.Duration * time.Duration(cfg.FPS) / time.Second)
	}
	if tr.Frames != want {
		t.Errorf("%s: %d frames sent, want %d", kind, tr.Frames, want)
	}
	// Packet accounting: every packet not dropped on purpose arrives; with
	// NACK some dropped ones are repaired. Allow 1% for loopback hiccups.
	slack := tr.Packets/100 + 1
	distinct := len(rt.seqs)
	if distinct < tr.Packets-tr.Dropped-slack || distinct > tr.Packets {
		t.Errorf("%s: %d distinct packets received, want between %d (sent %d - dropped %d) and %d",
			kind, distinct, tr.Packets-tr.Dropped, tr.Packets, tr.Dropped, tr.Packets)
	}
	if !repaired && distinct > tr.Packets-tr.Dropped+slack {
		t.Errorf("%s: %d distinct packets received without NACK, want about %d", kind, distinct, tr.Packets-tr.Dropped)
	}
	if cfg.Loss > 0 {
		frac := float64(tr.Dropped) / float64(tr.Packets)
		if frac < cfg.Loss/3 || frac > cfg.Loss*2 {
			t.Errorf("%s: dropped %d of %d packets (%.3f), want about %.3f", kind, tr.Dropped, tr.Packets, frac, cfg.Loss)
		}
	}
	// Sender reports carry the sender's wrong clock. What we measure is
	// that clock minus the transit time, which is only ever positive: no
	// report may look further ahead than ClockOffset (+ slack), and the
	// fastest one must be within 200 ms of it.
	if len(rt.srs) == 0 {
		t.Fatalf("%s: no RTCP sender report arrived", kind)
	}
	best := -time.Hour
	for _, sr := range rt.srs {
		off := sr.ntp.Sub(sr.received)
		if off > cfg.ClockOffset+200*time.Millisecond {
			t.Errorf("%s: a sender report's clock is %v ahead of ours, want at most %v + 200ms", kind, off, cfg.ClockOffset)
		}
		best = max(best, off)
	}
	if d := best - cfg.ClockOffset; d < -200*time.Millisecond {
		t.Errorf("%s: sender reports' clock is %v ahead of ours, want %v ± 200ms", kind, best, cfg.ClockOffset)
	}
	return tr, rt
}

// checkSync checks with the last sender reports that the flash and the
// tone of every mark map to the same sender instant, the one Run reports.
func checkSync(t *testing.T, res Result, recv *testReceiver, cfg Config) {
	t.Helper()
	vt, _ := recv.track("video")
	at, _ := recv.track("audio")
	if len(vt.srs) == 0 || len(at.srs) == 0 {
		t.Fatal("no sender reports to check sync with")
	}
	vsr, asr := vt.srs[len(vt.srs)-1], at.srs[len(at.srs)-1]
	wantMarks := int((cfg.Duration + cfg.MarkPeriod - 1) / cfg.MarkPeriod)
	if len(res.Marks) != wantMarks {
		t.Errorf("%d marks sent, want %d", len(res.Marks), wantMarks)
	}
	// Pacing is only as good as the scheduler: on a machine so busy that a
	// mark went out late, only check what lateness cannot break.
	var late time.Duration
	for _, m := range res.Marks {
		late = max(late, m.VideoSent.Sub(m.At), m.AudioSent.Sub(m.At))
	}
	starved := late > 25*time.Millisecond
	if starved {
		t.Logf("a mark was sent %v late: the machine is too busy to check pacing", late)
	}
	var worstAV, worstDue time.Duration
	for _, m := range res.Marks {
		if m.VideoSent.IsZero() || m.AudioSent.IsZero() {
			t.Errorf("mark %d: video sent %v, audio sent %v", m.Index, m.VideoSent, m.AudioSent)
			continue
		}
		if m.VideoRTP != res.Tracks[0].FirstRTPTimestamp+uint32(m.Index)*uint32(cfg.framesPerMark()*90000/cfg.FPS) ||
			m.AudioRTP != res.Tracks[1].FirstRTPTimestamp+uint32(m.Index*cfg.packetsPerMark()*960) {
			t.Errorf("mark %d: RTP timestamps %d/%d do not follow from the first ones", m.Index, m.VideoRTP, m.AudioRTP)
		}
		v := vsr.rtpToSender(m.VideoRTP, 90000)
		a := asr.rtpToSender(m.AudioRTP, 48000)
		worstAV, worstDue = max(worstAV, v.Sub(a).Abs()), max(worstDue, m.VideoSent.Sub(m.At).Abs())
		// The reports follow the capture timeline, not the instants the
		// packets left: exact (to the NTP format's rounding) however late
		// the pacer ran.
		if d := v.Sub(a).Abs(); d > time.Millisecond {
			t.Errorf("mark %d: flash at %v and tone at %v in the sender reports: %v apart", m.Index, v, a, d)
		}
		if d := v.Sub(m.At.Add(cfg.ClockOffset)).Abs(); d > time.Millisecond {
			t.Errorf("mark %d: sender reports put the flash %v from when it was due (with the clock offset)", m.Index, d)
		}
		if starved {
			continue
		}
		// On a tie the pacer writes the video frame first: the tone leaves
		// once the flash's packets are written (a keyframe's dozens of
		// packets took 6.5 ms on a loaded machine), never a frame (40 ms) or
		// more apart.
		if d := m.AudioSent.Sub(m.VideoSent).Abs(); d > 10*time.Millisecond {
			t.Errorf("mark %d: tone sent %v from the flash", m.Index, d)
		}
	}
	t.Logf("%d marks: flash and tone at most %v apart in the sender reports; flash sent at most %v late", len(res.Marks), worstAV, worstDue)
}

// TestCallVP8 publishes VP8 and Opus with loss, a clock 3 s ahead, and a
// receiver that NACKs.
func TestCallVP8(t *testing.T) {
	cfg := Config{
		Participant: "alice", Token: "s3cret", Duration: 3 * time.Second,
		Video: "vp8", Audio: true, Width: 320, Height: 240, FPS: 30, Bitrate: 600_000,
		Loss: 0.05, ClockOffset: 3 * time.Second, Seed: 7,
		// Marks on 250 ms past a whole second of this epoch.
		MarkEpoch: time.Now().Truncate(time.Second).Add(250 * time.Millisecond),
	}
	res, recv := runCall(t, callCase{cfg: cfg, nack: true})
	cfg, _ = cfg.withDefaults()
	if phase := res.Start.Sub(cfg.MarkEpoch) % time.Second; phase != 0 || res.Start.Before(res.Connected) {
		t.Errorf("started at %v (connected %v), want on the epoch %v + k s", res.Start, res.Connected, cfg.MarkEpoch)
	}
	vt, _ := checkTrack(t, res, recv, "video", "video/VP8", cfg, true)
	_, art := checkTrack(t, res, recv, "audio", "audio/opus", cfg, false)
	if vt.Dropped > 0 && (vt.NACKs == 0 || vt.Retransmitted == 0) {
		t.Errorf("video: %d packets dropped but %d NACKs and %d retransmissions", vt.Dropped, vt.NACKs, vt.Retransmitted)
	}
	if rt, _ := recv.track("video"); vt.Dropped > 2 && len(rt.seqs) <= vt.Packets-vt.Dropped {
		t.Errorf("video: NACK repaired nothing (%d distinct of %d sent, %d dropped)", len(rt.seqs), vt.Packets, vt.Dropped)
	}
	at, _ := res.Track("audio")
	if !at.AudioLevel || art.levelID == 0 {
		t.Fatalf("audio level extension not negotiated (sender %v, receiver id %d)", at.AudioLevel, art.levelID)
	}
	if art.withLevel < art.packets*99/100 {
		t.Errorf("audio level set on %d of %d packets", art.withLevel, art.packets)
	}
	// Two 20 ms packets per 40 ms tone burst, the rest silent.
	if marks := len(res.Marks); art.loud < 2*marks-3 || art.loud > 2*marks {
		t.Errorf("%d loud audio packets, want about %d (2 per mark)", art.loud, 2*marks)
	}
	if art.silent < art.withLevel-2*len(res.Marks)-1 {
		t.Errorf("%d silent audio packets out of %d", art.silent, art.withLevel)
	}
	if rt, _ := recv.track("video"); rt.withAbs < rt.packets*9/10 {
		t.Errorf("abs-send-time on %d of %d video packets", rt.withAbs, rt.packets)
	}
	checkSync(t, res, recv, cfg)
}

// TestCallH264 publishes H.264 and Opus with loss and a clock 2 s behind,
// to a receiver that does not NACK: received + dropped = sent.
func TestCallH264(t *testing.T) {
	cfg := Config{
		Participant: "bob", Duration: 2 * time.Second,
		Video: "h264", Audio: true, Width: 320, Height: 240, FPS: 25, Bitrate: 500_000,
		MarkPeriod: 400 * time.Millisecond, Loss: 0.1, ClockOffset: -2 * time.Second, Seed: 3,
	}
	res, recv := runCall(t, callCase{cfg: cfg})
	cfg, _ = cfg.withDefaults()
	checkTrack(t, res, recv, "video", "video/H264", cfg, false)
	checkTrack(t, res, recv, "audio", "audio/opus", cfg, false)
	checkSync(t, res, recv, cfg)
}

// TestCallDecodes publishes without loss and decodes the video the receiver
// got: the packetization gives a clean stream with the flashes in place.
func TestCallDecodes(t *testing.T) {
	for _, codec := range []string{"h264", "vp8"} {
		t.Run(codec, func(t *testing.T) {
			needFFmpeg(t)
			recv := newTestReceiver(t, false, "")
			recv.recordDir = t.TempDir()
			cfg := Config{Endpoint: recv.endpoint(), Participant: "frank", Duration: 2 * time.Second, Video: codec,
				Width: 320, Height: 240, FPS: 30, Bitrate: 400_000, MarkPeriod: 500 * time.Millisecond, MediaDir: t.TempDir()}
			res, err := Run(context.Background(), cfg, testLogger(t))
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			recv.wg.Wait() // the DELETE closed the connection: the file is complete
			rt, ok := recv.track("video")
			if !ok || rt.file == "" {
				t.Fatal("no video recorded")
			}
			if len(res.Tracks) != 1 || res.Tracks[0].Dropped != 0 || len(rt.seqs) != res.Tracks[0].Packets {
				t.Errorf("%d tracks; %d of %d packets arrived", len(res.Tracks), len(rt.seqs), res.Tracks[0].Packets)
			}
			out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-xerror", "-i", rt.file, "-f", "null", "-").CombinedOutput()
			if err != nil {
				t.Errorf("ffmpeg found errors decoding the received video: %v: %s", err, out)
			}
			means := decodeGrayMeans(t, rt.file)
			if len(means) != 60 {
				t.Errorf("%d frames decoded, want 60", len(means))
			}
			for i, v := range means {
				if flash := v > 200; flash != (i%15 == 0) {
					t.Errorf("received frame %d: mean luma %.0f", i, v)
				}
			}
		})
	}
}

// TestCancel ends an endless publish (Duration 0) through ctx: a hang-up,
// not an error.
func TestCancel(t *testing.T) {
	needFFmpeg(t)
	recv := newTestReceiver(t, false, "")
	cfg := Config{Endpoint: recv.endpoint(), Participant: "dave", Audio: true, MediaDir: t.TempDir()}
	if _, err := PrepareMedia(context.Background(), cfg, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	began := time.Now()
	res, err := Run(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !res.Interrupted || time.Since(began) > 10*time.Second {
		t.Errorf("interrupted %v after %v", res.Interrupted, time.Since(began))
	}
	if tr, _ := res.Track("audio"); tr.Frames < 25 {
		t.Errorf("%d audio packets sent before the cancel", tr.Frames)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if recv.deletes != 1 {
		t.Errorf("%d DELETE after cancel, want 1", recv.deletes)
	}
}

// TestClipLength: the generated media loops on whole mark periods, frames
// and audio packets, so marks stay at k*MarkPeriod after a loop.
func TestClipLength(t *testing.T) {
	for _, c := range []struct {
		dur, period time.Duration
		fps         int
		want        time.Duration
	}{
		{3 * time.Second, time.Second, 30, 3 * time.Second},
		{2500 * time.Millisecond, time.Second, 30, 3 * time.Second},
		{0, 1200 * time.Millisecond, 25, 60 * time.Second},
		{10 * time.Minute, 1400 * time.Millisecond, 25, 60200 * time.Millisecond},
		{time.Second, 400 * time.Millisecond, 25, 1200 * time.Millisecond},
	} {
		cfg, err := Config{Duration: c.dur, MarkPeriod: c.period, FPS: c.fps, Video: "vp8"}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		got := cfg.clipLength()
		if got != c.want || got%c.period != 0 || got%audioPacket != 0 || (got*time.Duration(c.fps))%time.Second != 0 {
			t.Errorf("%+v: clip %v, want %v", c, got, c.want)
		}
	}
}

func TestErrors(t *testing.T) {
	needFFmpeg(t)
	ctx := context.Background()
	log := testLogger(t)
	media := t.TempDir()

	t.Run("unauthorized", func(t *testing.T) {
		recv := newTestReceiver(t, false, "right")
		_, err := Run(ctx, Config{Endpoint: recv.endpoint(), Participant: "eve", Token: "wrong", Duration: time.Second, Audio: true, MediaDir: media}, log)
		if err == nil {
			t.Fatal("no error")
		}
		hasString(t, err.Error(), "401")
		hasString(t, err.Error(), "missing or wrong bearer token")
	})
	t.Run("no Location", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/sdp")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte("v=0\r\n"))
		}))
		defer srv.Close()
		_, err := Run(ctx, Config{Endpoint: srv.URL + "/whip/x", Participant: "eve", Duration: time.Second, Audio: true, MediaDir: media}, log)
		if err == nil {
			t.Fatal("no error")
		}
		hasString(t, err.Error(), "without a Location")
	})
	t.Run("server down", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		_, err := Run(ctx, Config{Endpoint: url + "/whip/x", Participant: "eve", Duration: time.Second, Audio: true, MediaDir: media}, log)
		if err == nil {
			t.Fatal("no error")
		}
		hasString(t, err.Error(), "WHIP POST")
	})
	t.Run("ffmpeg missing", func(t *testing.T) {
		_, err := Run(ctx, Config{Endpoint: "http://127.0.0.1:1/whip/x", Participant: "eve", Duration: time.Second, Audio: true,
			MediaDir: t.TempDir(), FFmpeg: filepath.Join(t.TempDir(), "no-ffmpeg")}, log)
		if err == nil {
			t.Fatal("no error")
		}
		hasString(t, err.Error(), "ffmpeg not found")
	})
	t.Run("encoder fails", func(t *testing.T) {
		fake := filepath.Join(t.TempDir(), "ffmpeg")
		script := "#!/bin/sh\necho 'line 1' >&2\necho \"Unknown encoder 'libvpx'\" >&2\nexit 1\n"
		if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := PrepareMedia(ctx, Config{Participant: "eve", Duration: time.Second, Video: "vp8", MediaDir: t.TempDir(), FFmpeg: fake}, log)
		if err == nil {
			t.Fatal("no error")
		}
		hasString(t, err.Error(), "Unknown encoder 'libvpx'")
		hasString(t, err.Error(), "exit status 1")
	})
	t.Run("config", func(t *testing.T) {
		for _, c := range []struct {
			cfg  Config
			want string
		}{
			{Config{Participant: "x", Audio: true}, "endpoint is empty"},
			{Config{Endpoint: "ftp://h/whip", Participant: "x", Audio: true}, "scheme"},
			{Config{Endpoint: "http://h/whip", Audio: true}, "participant is empty"},
			{Config{Endpoint: "http://h/whip", Participant: "x"}, "nothing to publish"},
			{Config{Endpoint: "http://h/whip", Participant: "x", Video: "av1"}, "video codec"},
			{Config{Endpoint: "http://h/whip", Participant: "x", Video: "vp8", Width: 321, Height: 240}, "video size"},
			{Config{Endpoint: "http://h/whip", Participant: "x", Audio: true, MarkPeriod: 30 * time.Millisecond}, "20 ms"},
			{Config{Endpoint: "http://h/whip", Participant: "x", Video: "vp8", FPS: 30, MarkPeriod: 20 * time.Millisecond}, "whole number of frames"},
			{Config{Endpoint: "http://h/whip", Participant: "x", Audio: true, Loss: 1}, "loss"},
		} {
			_, err := Run(ctx, c.cfg, nil)
			if err == nil {
				t.Errorf("%+v: no error", c.cfg)
				continue
			}
			hasString(t, err.Error(), c.want)
		}
	})
}

// TestLossReproducible feeds the loss interceptor directly: the same seed
// drops the same packets, retransmissions are told apart and counted.
func TestLossReproducible(t *testing.T) {
	drops := func(seed int64) []uint16 {
		f := newLossFactory(0.2, seed)
		ic, err := f.NewInterceptor("")
		if err != nil {
			t.Fatal(err)
		}
		var passed []uint16
		w := ic.BindLocalStream(&interceptor.StreamInfo{SSRC: 1, SSRCRetransmission: 2, MimeType: "video/VP8"},
			interceptor.RTPWriterFunc(func(h *rtp.Header, _ []byte, _ interceptor.Attributes) (int, error) {
				if h.SSRC == 1 {
					passed = append(passed, h.SequenceNumber)
				}
				return 0, nil
			}))
		var dropped []uint16
		for i := range 1000 {
			seq := uint16(65000 + i) // wraps
			before := len(passed)
			if _, err := w.Write(&rtp.Header{SSRC: 1, SequenceNumber: seq}, []byte{1, 2, 3}, nil); err != nil {
				t.Fatal(err)
			}
			if len(passed) == before {
				dropped = append(dropped, seq)
			}
		}
		// Resends: on the RTX SSRC, and on the media SSRC with an old
		// sequence number.
		for _, seq := range dropped[:10] {
			_, _ = w.Write(&rtp.Header{SSRC: 2, SequenceNumber: seq}, nil, nil)
			_, _ = w.Write(&rtp.Header{SSRC: 1, SequenceNumber: seq}, nil, nil)
		}
		st := f.snapshot(1)
		if st.Packets != 1000 || st.Dropped != len(dropped) || st.Retransmits != 20 {
			t.Errorf("stats %+v, want 1000 packets, %d dropped, 20 retransmits", st, len(dropped))
		}
		if st.Dropped < 150 || st.Dropped > 250 {
			t.Errorf("dropped %d of 1000 at 20%%", st.Dropped)
		}
		return dropped
	}
	a, b, c := drops(1), drops(1), drops(2)
	if !slices.Equal(a, b) {
		t.Error("the same seed dropped different packets")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds dropped the same packets")
	}
}
