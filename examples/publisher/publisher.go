package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

const (
	gatherTimeout  = 10 * time.Second
	connectTimeout = 15 * time.Second
	httpTimeout    = 15 * time.Second
	reportInterval = time.Second

	videoClockRate = 90000
	audioClockRate = 48000

	ptVP8  = 96
	ptH264 = 102
	ptOpus = 111

	h264Fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
)

// Result tells what Run sent.
type Result struct {
	// Location is the absolute URL of the WHIP session.
	Location string
	// Start is the common start instant of both tracks (sender wall clock,
	// without ClockOffset): video frame i is due at Start + i/FPS, audio
	// packet k at Start + k*20ms.
	Start time.Time
	// End is when sending stopped.
	End time.Time
	// Interrupted is set when ctx ended the publish before Duration.
	Interrupted bool
	// Posted is when the offer was POSTed, Answered when its 201 arrived
	// (after any redirects); Connected when the connection came up (zero if
	// it did not).
	Posted, Answered, Connected time.Time
	// Links are the Link headers of the 201 (the recorder's ICE servers).
	Links []string
	// Path is the connection's selected candidate pair, e.g.
	// "udp host 127.0.0.1:40000 → udp host 127.0.0.1:50000".
	Path string
	// Trickled counts the candidates sent with PATCH (Config.Trickle).
	Trickled int
	// RestartTook is how long the ICE restart took (Config.RestartAfter),
	// from its PATCH to the connection being checked again.
	RestartTook time.Duration
	// Tracks: the video track first (if any), then the audio track.
	Tracks []TrackResult
	// Marks are the sync marks sent, in order.
	Marks []Mark
	// Redirects counts the 307/308 redirects the (last) POST followed.
	Redirects int
	// Attempts are the WHIP sessions tried, in order: one, or more with
	// Config.Reconnect. Location, Posted, Connected, Path and Tracks are the
	// last one's.
	Attempts []Attempt
}

// TrackResult is what was sent on one track.
type TrackResult struct {
	Kind        string // "video" or "audio"
	Codec       string // negotiated MIME type, e.g. "video/VP8"
	PayloadType uint8
	SSRC        uint32
	ClockRate   uint32
	// FirstRTPTimestamp is the RTP timestamp of frame/packet 0, sent at
	// Start. Frame i has FirstRTPTimestamp + i*90000/FPS, audio packet k
	// FirstRTPTimestamp + k*960.
	FirstRTPTimestamp   uint32
	FirstSequenceNumber uint16
	Frames              int   // video frames or audio packets sent
	Packets             int   // original RTP packets written, dropped ones included
	PayloadBytes        int64 // payload bytes of those
	Dropped             int   // original packets dropped on purpose (Loss)
	Retransmitted       int   // retransmissions asked by NACK, dropped ones included
	RetransmitsDropped  int   // retransmissions dropped on purpose
	NACKs, PLIs, FIRs   int   // RTCP feedback received
	// PLIAt are the instants the PLIs arrived (this machine's clock).
	PLIAt       []time.Time
	AudioLevel  bool // the audio level header extension was negotiated and set
	AbsSendTime bool // the abs-send-time header extension was negotiated and set
}

// Mark is one sync mark: the white video frame and the start of the tone
// burst, due at the same instant.
type Mark struct {
	Index int
	At    time.Time // Start + Index*MarkPeriod
	// VideoSent and AudioSent are when the flash frame and the audio packet
	// starting the tone were handed to the network stack (sender wall
	// clock, without ClockOffset); zero without that track.
	VideoSent, AudioSent time.Time
	// VideoRTP and AudioRTP are their RTP timestamps.
	VideoRTP, AudioRTP uint32
}

// Track returns the result of the track of that kind ("video" or "audio").
func (r Result) Track(kind string) (TrackResult, bool) {
	for _, t := range r.Tracks {
		if t.Kind == kind {
			return t, true
		}
	}
	return TrackResult{}, false
}

// Run publishes one participant until cfg.Duration has passed or ctx is
// done, then ends the WHIP session. A ctx that ends while media is being
// sent is a hang-up, not an error: Run ends the session and returns the
// Result with Interrupted set. With cfg.Reconnect, a failed POST or
// connection is followed by a new WHIP session on the next endpoint. log may
// be nil.
func Run(ctx context.Context, cfg Config, log *slog.Logger) (Result, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	endpoints, err := cfg.endpointURLs()
	if err != nil {
		return Result{}, err
	}
	log = log.With("participant", cfg.Participant)

	_, vclip, aclip, err := prepareMedia(ctx, cfg, log)
	if err != nil {
		return Result{}, err
	}
	var res Result
	p := &pacer{cfg: cfg, vclip: vclip, aclip: aclip, log: log}
	up := time.Now() // when the last connection ended (or the start)
	delay := reconnectMin
	for try := 0; ; try++ {
		endpoint := endpoints[try%len(endpoints)]
		att, err := runOnce(ctx, cfg, endpoint, log, p, &res)
		res.Attempts = append(res.Attempts, att)
		if err == nil || !cfg.Reconnect || ctx.Err() != nil || !retryable(err) {
			return res, err
		}
		if !att.Connected.IsZero() {
			up, delay = att.Ended, reconnectMin
		}
		if time.Since(up) > cfg.ReconnectFor {
			return res, fmt.Errorf("publisher: no connection for %v: %w", cfg.ReconnectFor, err)
		}
		next := endpoints[(try+1)%len(endpoints)]
		log.Warn("publisher: reconnecting", "to", next.Redacted(), "in", delay, "err", err)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			res.Interrupted = true
			return res, nil
		}
		delay = min(2*delay, reconnectMax)
	}
}

// Delays between two tries of Reconnect: from reconnectMin, doubling, up to
// reconnectMax; back to reconnectMin after a connection.
const (
	reconnectMin = 200 * time.Millisecond
	reconnectMax = time.Second
)

// Attempt is one WHIP session Run tried.
type Attempt struct {
	Endpoint string
	// Location is the session's URL (after redirects), Redirects the 307/308
	// redirects its POST followed.
	Location  string
	Redirects int
	// Posted, Answered (the 201), Connected (zero if it did not) and Ended.
	Posted, Answered, Connected, Ended time.Time
	Err                                string // why it ended, if not at the end of the publish
}

// runOnce publishes over one WHIP session at endpoint, pacing with p.
func runOnce(ctx context.Context, cfg Config, endpoint *url.URL, log *slog.Logger, p *pacer, res *Result) (att Attempt, err error) {
	att = Attempt{Endpoint: endpoint.Redacted()}
	defer func() { att.Ended = time.Now() }()
	s, err := newSession(cfg, endpoint, log)
	if err != nil {
		att.Err = err.Error()
		return att, err
	}
	defer s.close()
	if err := s.addTracks(p.vclip, p.aclip); err != nil {
		att.Err = err.Error()
		return att, err
	}
	p.video, p.audio = s.video, s.audio
	res.Tracks, res.Posted, res.Answered, res.Connected = nil, time.Time{}, time.Time{}, time.Time{}
	err = s.run(ctx, p, res, &att)
	att.Posted, att.Answered, att.Connected = res.Posted, res.Answered, res.Connected
	if err != nil {
		att.Err = err.Error()
	}
	return att, err
}

// retryable reports whether another try (Config.Reconnect) may succeed: not
// after a 4xx, which says the request itself is refused.
func retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code >= 500 || se.Code == http.StatusTooManyRequests
	}
	return true
}

// session is one publish: the peer connection and its tracks.
type session struct {
	cfg      Config
	endpoint *url.URL
	log      *slog.Logger
	clock    func() time.Time // the sender's (possibly wrong) wall clock
	loss     *lossFactory
	pc       *webrtc.PeerConnection
	http     *http.Client

	video, audio       *localTrack
	videoFB, audioFB   *feedbackCounts
	connected, failed  chan struct{}
	onceConn, onceFail sync.Once
	rtcpDone           sync.WaitGroup

	framesSent, packetsSent int

	ice         iceState   // the WHIP session's ICE entity (trickle, restart)
	restartMu   sync.Mutex // guards what the restart goroutine reports
	restartTook time.Duration
	restartErr  error
}

// feedbackCounts counts the RTCP feedback received for one track; the PLIs
// with the instants they arrived.
type feedbackCounts struct {
	nacks, firs atomic.Int64
	mu          sync.Mutex
	pliAt       []time.Time
}

// pli notes a PLI arrived at at and returns how many have.
func (fb *feedbackCounts) pli(at time.Time) int {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	fb.pliAt = append(fb.pliAt, at)
	return len(fb.pliAt)
}

func (fb *feedbackCounts) pliTimes() []time.Time {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return append([]time.Time(nil), fb.pliAt...)
}

func newSession(cfg Config, endpoint *url.URL, log *slog.Logger) (*session, error) {
	s := &session{
		cfg: cfg, endpoint: endpoint, log: log,
		clock:     func() time.Time { return time.Now().Add(cfg.ClockOffset) },
		loss:      newLossFactory(cfg.Loss, cfg.Seed),
		http:      newHTTPClient(),
		connected: make(chan struct{}), failed: make(chan struct{}),
	}
	api, err := s.newAPI()
	if err != nil {
		return nil, err
	}
	s.pc, err = api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("publisher: new peer connection: %w", err)
	}
	s.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		log.Debug("publisher: connection state", "state", st.String())
		switch st {
		case webrtc.PeerConnectionStateConnected:
			s.onceConn.Do(func() { close(s.connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			s.onceFail.Do(func() { close(s.failed) })
		case webrtc.PeerConnectionStateDisconnected:
			if cfg.Reconnect {
				// The recorder stopped answering: try another one.
				s.onceFail.Do(func() { close(s.failed) })
			}
		}
	})
	return s, nil
}

// newAPI sets up codecs, header extensions, interceptors and ICE.
func (s *session) newAPI() (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	switch s.cfg.Video {
	case VP8:
		if err := registerVideo(m, webrtc.MimeTypeVP8, ptVP8, ""); err != nil {
			return nil, err
		}
	case H264:
		if err := registerVideo(m, webrtc.MimeTypeH264, ptH264, h264Fmtp); err != nil {
			return nil, err
		}
	}
	if s.cfg.Audio {
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: audioClockRate, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
			PayloadType:        ptOpus,
		}, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, fmt.Errorf("publisher: register opus: %w", err)
		}
	}
	exts := []struct {
		uri  string
		kind webrtc.RTPCodecType
	}{
		{sdp.AudioLevelURI, webrtc.RTPCodecTypeAudio},
		{sdp.ABSSendTimeURI, webrtc.RTPCodecTypeAudio},
		{sdp.ABSSendTimeURI, webrtc.RTPCodecTypeVideo},
	}
	for _, e := range exts {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: e.uri}, e.kind); err != nil {
			return nil, fmt.Errorf("publisher: register header extension %s: %w", e.uri, err)
		}
	}

	// Interceptors wrap the network writer in the order they are added:
	// the first added is the closest to the network. The loss stage goes
	// first, so the NACK responder (next) keeps every packet and its
	// resends go through the loss stage too. Sender reports are sent by
	// the session itself (report.go).
	reg := &interceptor.Registry{}
	reg.Add(s.loss)
	if err := webrtc.ConfigureNack(m, reg); err != nil {
		return nil, fmt.Errorf("publisher: NACK interceptors: %w", err)
	}
	m.RegisterFeedback(webrtc.RTCPFeedback{Type: "ccm", Parameter: "fir"}, webrtc.RTPCodecTypeVideo)

	se := webrtc.SettingEngine{LoggerFactory: pionLogs{log: s.log}}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	if s.cfg.TCPOnly {
		// Active ICE-TCP candidates only, as behind a firewall that drops UDP.
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if s.cfg.Reconnect {
		// Notice a recorder that died within seconds.
		se.SetICETimeouts(2*time.Second, 5*time.Second, 500*time.Millisecond)
	}
	if isLoopbackHost(s.endpoint.Hostname()) {
		loop := net.IPv4(127, 0, 0, 1)
		se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(loop) })
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)), nil
}

func registerVideo(m *webrtc.MediaEngine, mimeType string, pt uint8, fmtp string) error {
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mimeType, ClockRate: videoClockRate, SDPFmtpLine: fmtp},
		PayloadType:        webrtc.PayloadType(pt),
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return fmt.Errorf("publisher: register %s: %w", mimeType, err)
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: videoClockRate, SDPFmtpLine: fmt.Sprintf("apt=%d", pt)},
		PayloadType:        webrtc.PayloadType(pt + 1),
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return fmt.Errorf("publisher: register rtx for %s: %w", mimeType, err)
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// addTracks adds a sendonly transceiver per track and starts reading the
// RTCP the receiver sends about it.
func (s *session) addTracks(vclip *videoClip, aclip *audioClip) error {
	if vclip != nil {
		c := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: videoClockRate}
		if vclip.codec == H264 {
			c = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: videoClockRate, SDPFmtpLine: h264Fmtp}
		}
		t, err := newLocalTrack(webrtc.RTPCodecTypeVideo, c, "video", s.cfg.Participant, s.clock)
		if err != nil {
			return err
		}
		s.video, s.videoFB = t, &feedbackCounts{}
		if err := s.addTrack(t, s.videoFB); err != nil {
			return err
		}
	}
	if aclip != nil {
		c := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: audioClockRate, Channels: 2}
		t, err := newLocalTrack(webrtc.RTPCodecTypeAudio, c, "audio", s.cfg.Participant, s.clock)
		if err != nil {
			return err
		}
		s.audio, s.audioFB = t, &feedbackCounts{}
		if err := s.addTrack(t, s.audioFB); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) addTrack(t *localTrack, fb *feedbackCounts) error {
	tr, err := s.pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return fmt.Errorf("publisher: add %s transceiver: %w", t.kind, err)
	}
	sender := tr.Sender()
	log := s.log.With("track", t.kind.String())
	s.rtcpDone.Add(1)
	go func() {
		defer s.rtcpDone.Done()
		// Reading is what makes the interceptors (NACK responder, reports)
		// see the receiver's RTCP.
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				switch p := p.(type) {
				case *rtcp.PictureLossIndication:
					n := fb.pli(time.Now())
					log.Info("publisher: the receiver asked for a keyframe (PLI); the media has its own", "every", s.cfg.KeyframeEvery, "plis", n)
				case *rtcp.FullIntraRequest:
					n := fb.firs.Add(1)
					log.Info("publisher: the receiver asked for a keyframe (FIR); the media has its own", "every", s.cfg.KeyframeEvery, "firs", n)
				case *rtcp.TransportLayerNack:
					fb.nacks.Add(1)
					log.Debug("publisher: NACK", "pairs", len(p.Nacks))
				}
			}
		}
	}()
	return nil
}

// run does the WHIP exchange, sends the media with p and ends the session.
func (s *session) run(ctx context.Context, p *pacer, res *Result, att *Attempt) error {
	offer, err := s.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("publisher: create offer: %w", err)
	}
	var trickle *trickler
	body := ""
	if s.cfg.Trickle {
		// POST at once, before gathering (which SetLocalDescription
		// starts); the candidates follow with PATCH.
		trickle = newTrickler(s, offer.SDP)
		if err := s.pc.SetLocalDescription(offer); err != nil {
			return fmt.Errorf("publisher: set local description: %w", err)
		}
		body = offer.SDP
	} else {
		gathered := webrtc.GatheringCompletePromise(s.pc)
		if err := s.pc.SetLocalDescription(offer); err != nil {
			return fmt.Errorf("publisher: set local description: %w", err)
		}
		select {
		case <-gathered:
		case <-ctx.Done():
			return fmt.Errorf("publisher: gathering ICE candidates: %w", ctx.Err())
		case <-time.After(gatherTimeout):
			return fmt.Errorf("publisher: gathering ICE candidates took more than %v", gatherTimeout)
		}
		body = s.pc.LocalDescription().SDP
		if s.cfg.NoCandidates {
			body = withoutCandidates(body)
		}
	}

	if s.cfg.BeforePost != nil {
		s.cfg.BeforePost()
	}
	res.Posted = time.Now()
	ans, err := whipPost(ctx, s.http, s.endpoint, s.cfg.Token, body)
	if err != nil {
		if trickle != nil {
			trickle.stop()
		}
		return err
	}
	res.Answered = time.Now()
	res.Location = ans.location.String()
	res.Links = ans.links
	res.Redirects = ans.redirects
	att.Location, att.Redirects = res.Location, ans.redirects
	s.ice = iceState{location: ans.location, etag: ans.etag}
	s.log.Info("publisher: WHIP session created", "location", res.Location)
	if trickle != nil {
		trickle.start(ctx)
	}

	sendErr := s.connectAndSend(ctx, ans.sdp, p, res)
	if trickle != nil {
		res.Trickled = trickle.stop()
	}

	// Hang up: DELETE the session even when ctx is done (briefly after a
	// failure with Reconnect: its recorder is likely gone).
	wait := httpTimeout
	if sendErr != nil && s.cfg.Reconnect {
		wait = 2 * time.Second
	}
	delCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait)
	defer cancel()
	delErr := whipDelete(delCtx, s.http, ans.location, s.cfg.Token)
	if delErr == nil {
		s.log.Info("publisher: WHIP session deleted")
	}
	closeErr := s.pc.Close()
	if closeErr != nil {
		closeErr = fmt.Errorf("publisher: close peer connection: %w", closeErr)
	}
	s.rtcpDone.Wait()
	s.collect(res)
	if sendErr != nil && s.cfg.Reconnect {
		// The session failed: its DELETE failing too says nothing more.
		return errors.Join(sendErr, closeErr)
	}
	return errors.Join(sendErr, delErr, closeErr)
}

func (s *session) connectAndSend(ctx context.Context, answer string, p *pacer, res *Result) error {
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("publisher: the WHIP answer was refused: %w", err)
	}
	timer := time.NewTimer(connectTimeout)
	defer timer.Stop()
	select {
	case <-s.connected:
	case <-s.failed:
		return fmt.Errorf("%w: ICE/DTLS failed (state %s)", errNotConnected, s.pc.ConnectionState())
	case <-timer.C:
		return fmt.Errorf("%w within %v (state %s, ICE %s): is the server reachable over UDP?",
			errNotConnected, connectTimeout, s.pc.ConnectionState(), s.pc.ICEConnectionState())
	case <-ctx.Done():
		return fmt.Errorf("publisher: waiting for the connection: %w", ctx.Err())
	}
	for _, t := range []*localTrack{s.video, s.audio} {
		if t != nil && !t.info().bound {
			return fmt.Errorf("publisher: the %s track was not negotiated", t.kind)
		}
	}
	res.Connected = time.Now()
	res.Path = selectedPath(s.pc)
	s.log.Info("publisher: connected, sending", "duration", s.cfg.Duration, "path", res.Path)
	var restarts sync.WaitGroup
	if s.cfg.RestartAfter > 0 {
		rctx, cancel := context.WithCancel(ctx)
		defer func() { cancel(); restarts.Wait() }()
		restarts.Go(func() {
			select {
			case <-time.After(s.cfg.RestartAfter):
			case <-rctx.Done():
				return
			}
			took, err := s.restartICE(rctx)
			s.restartMu.Lock()
			s.restartTook, s.restartErr = took, err
			s.restartMu.Unlock()
		})
	}
	reportCtx, stopReports := context.WithCancel(ctx)
	var reports sync.WaitGroup
	reports.Go(func() { s.sendReports(reportCtx) })
	err := p.run(ctx, s.failed, res)
	stopReports()
	reports.Wait()
	if s.cfg.RestartAfter > 0 {
		restarts.Wait()
		s.restartMu.Lock()
		res.RestartTook, err = s.restartTook, errors.Join(err, s.restartErr)
		s.restartMu.Unlock()
	}
	s.framesSent, s.packetsSent = p.vi, p.ai
	if err == nil && res.Interrupted {
		s.log.Info("publisher: stopped before the end", "sent", res.End.Sub(res.Start).Round(time.Millisecond))
	}
	return err
}

// collect fills the per-track results.
func (s *session) collect(res *Result) {
	add := func(kind string, t *localTrack, fb *feedbackCounts, frames int) {
		if t == nil {
			return
		}
		in := t.info()
		st := s.loss.snapshot(in.ssrc)
		tr := TrackResult{
			Kind: kind, Codec: in.mime, PayloadType: in.pt, SSRC: in.ssrc,
			FirstRTPTimestamp: in.ts0, FirstSequenceNumber: st.FirstSeq,
			Frames: frames, Packets: st.Packets, PayloadBytes: st.Bytes, Dropped: st.Dropped,
			Retransmitted: st.Retransmits, RetransmitsDropped: st.RetransmitsDrops,
			NACKs: int(fb.nacks.Load()), FIRs: int(fb.firs.Load()), PLIAt: fb.pliTimes(),
			AudioLevel: in.levelExt, AbsSendTime: in.absSendTime,
		}
		tr.PLIs = len(tr.PLIAt)
		tr.ClockRate = videoClockRate
		if kind == "audio" {
			tr.ClockRate = audioClockRate
		}
		res.Tracks = append(res.Tracks, tr)
	}
	add("video", s.video, s.videoFB, s.framesSent)
	add("audio", s.audio, s.audioFB, s.packetsSent)
}

func (s *session) close() {
	if err := s.pc.Close(); err != nil {
		s.log.Debug("publisher: close peer connection", "err", err)
	}
	s.rtcpDone.Wait()
}
