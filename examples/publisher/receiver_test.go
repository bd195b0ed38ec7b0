package publisher

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/h264writer"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"
)

// testReceiver is a tiny WHIP server for the tests: POST → 201 with the
// answer and a Location, DELETE → 200. It counts what arrives per track.
type testReceiver struct {
	t     *testing.T
	token string
	api   *webrtc.API
	srv   *httptest.Server

	mu         sync.Mutex
	pcs        map[string]*webrtc.PeerConnection
	tracks     map[string]*recvTrack // by kind
	posts      int
	deletes    int
	lastPart   string
	lastPacket time.Time
	// recordDir, when set, is where the received video is written
	// (video.ivf or video.h264).
	recordDir string
	wg        sync.WaitGroup
}

// recvTrack is what arrived on one track.
type recvTrack struct {
	kind, mime string
	ssrc       uint32
	packets    int // every packet, repairs included
	seqs       map[uint16]bool
	levelID    uint8
	absID      uint8
	withLevel  int // packets with an audio level
	loud       int // of those, level <= 20 dBov
	silent     int // of those, level 127
	withAbs    int // packets with abs-send-time
	srs        []senderReport
	file       string // the received video, when recorded
}

type senderReport struct {
	ntp      time.Time // the sender's clock
	rtp      uint32
	received time.Time // our clock
}

// newTestReceiver starts the server. With nack, the receiver negotiates
// NACK and RTX and asks for lost video packets, like a browser.
func newTestReceiver(t *testing.T, nack bool, token string) *testReceiver {
	t.Helper()
	m := &webrtc.MediaEngine{}
	videoFB := []webrtc.RTCPFeedback{{Type: "ccm", Parameter: "fir"}, {Type: "nack", Parameter: "pli"}}
	if nack {
		videoFB = append(videoFB, webrtc.RTCPFeedback{Type: "nack"})
	}
	codecs := []struct {
		c    webrtc.RTPCodecParameters
		kind webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}}, webrtc.RTPCodecTypeAudio},
		{webrtc.RTPCodecParameters{PayloadType: 96, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFB}}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{PayloadType: 102, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: h264Fmtp, RTCPFeedback: videoFB}}, webrtc.RTPCodecTypeVideo},
	}
	if nack {
		codecs = append(codecs,
			struct {
				c    webrtc.RTPCodecParameters
				kind webrtc.RTPCodecType
			}{webrtc.RTPCodecParameters{PayloadType: 97, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=96"}}, webrtc.RTPCodecTypeVideo},
			struct {
				c    webrtc.RTPCodecParameters
				kind webrtc.RTPCodecType
			}{webrtc.RTPCodecParameters{PayloadType: 103, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=102"}}, webrtc.RTPCodecTypeVideo},
		)
	}
	for _, c := range codecs {
		if err := m.RegisterCodec(c.c, c.kind); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []struct {
		uri  string
		kind webrtc.RTPCodecType
	}{{sdp.AudioLevelURI, webrtc.RTPCodecTypeAudio}, {sdp.ABSSendTimeURI, webrtc.RTPCodecTypeAudio}, {sdp.ABSSendTimeURI, webrtc.RTPCodecTypeVideo}} {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: e.uri}, e.kind); err != nil {
			t.Fatal(err)
		}
	}
	reg := &interceptor.Registry{}
	if nack {
		// ConfigureNack also registers the NACK feedback (already there).
		if err := webrtc.ConfigureNack(m, reg); err != nil {
			t.Fatal(err)
		}
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	loop := net.IPv4(127, 0, 0, 1)
	se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(loop) })

	r := &testReceiver{
		t: t, token: token,
		api:    webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)),
		pcs:    map[string]*webrtc.PeerConnection{},
		tracks: map[string]*recvTrack{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /whip/{room}", r.post)
	mux.HandleFunc("DELETE /whip/{room}/{id}", r.delete)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.close)
	return r
}

func (r *testReceiver) endpoint() string { return r.srv.URL + "/whip/room1" }

func (r *testReceiver) close() {
	r.srv.Close()
	r.mu.Lock()
	pcs := r.pcs
	r.pcs = map[string]*webrtc.PeerConnection{}
	r.mu.Unlock()
	for _, pc := range pcs {
		_ = pc.Close()
	}
	r.wg.Wait()
}

func (r *testReceiver) authorized(req *http.Request) bool {
	return r.token == "" || req.Header.Get("Authorization") == "Bearer "+r.token
}

func (r *testReceiver) post(w http.ResponseWriter, req *http.Request) {
	if !r.authorized(req) {
		http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/sdp" {
		http.Error(w, "want application/sdp, got "+ct, http.StatusUnsupportedMediaType)
		return
	}
	part := req.URL.Query().Get("participant")
	if part == "" {
		http.Error(w, "no participant", http.StatusBadRequest)
		return
	}
	offer, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pc, err := r.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	pc.OnTrack(r.onTrack)
	fail := func(err error) {
		_ = pc.Close()
		http.Error(w, err.Error(), http.StatusBadRequest)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		fail(err)
		return
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		fail(err)
		return
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		fail(err)
		return
	}
	<-gathered
	var idb [6]byte
	_, _ = rand.Read(idb[:])
	id := hex.EncodeToString(idb[:])
	r.mu.Lock()
	r.pcs[id] = pc
	r.posts++
	r.lastPart = part
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "room1/"+id) // relative to the endpoint
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, pc.LocalDescription().SDP)
}

func (r *testReceiver) delete(w http.ResponseWriter, req *http.Request) {
	if !r.authorized(req) {
		http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
		return
	}
	r.mu.Lock()
	pc := r.pcs[req.PathValue("id")]
	delete(r.pcs, req.PathValue("id"))
	if pc != nil {
		r.deletes++
	}
	r.mu.Unlock()
	if pc == nil {
		http.Error(w, "no such session", http.StatusNotFound)
		return
	}
	// Let the packets in flight arrive before closing: wait until none
	// came for 200 ms (at most 3 s).
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		r.mu.Lock()
		quiet := time.Since(r.lastPacket) > 200*time.Millisecond
		r.mu.Unlock()
		if quiet {
			break
		}
	}
	_ = pc.Close()
	w.WriteHeader(http.StatusOK)
}

func (r *testReceiver) onTrack(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	kind := track.Kind().String()
	rt := &recvTrack{kind: kind, mime: track.Codec().MimeType, ssrc: uint32(track.SSRC()), seqs: map[uint16]bool{}}
	for _, e := range receiver.GetParameters().HeaderExtensions {
		switch e.URI {
		case sdp.AudioLevelURI:
			rt.levelID = uint8(e.ID)
		case sdp.ABSSendTimeURI:
			rt.absID = uint8(e.ID)
		}
	}
	var rec interface {
		WriteRTP(*rtp.Packet) error
		Close() error
	}
	if r.recordDir != "" && track.Kind() == webrtc.RTPCodecTypeVideo {
		var err error
		if strings.EqualFold(rt.mime, webrtc.MimeTypeH264) {
			rt.file = filepath.Join(r.recordDir, "video.h264")
			rec, err = h264writer.New(rt.file)
		} else {
			rt.file = filepath.Join(r.recordDir, "video.ivf")
			rec, err = ivfwriter.New(rt.file, ivfwriter.WithCodec(rt.mime))
		}
		if err != nil {
			r.t.Errorf("record %s: %v", rt.file, err)
			rec = nil
		}
	}
	r.mu.Lock()
	r.tracks[kind] = rt
	r.mu.Unlock()

	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		for {
			pkts, _, err := receiver.ReadRTCP()
			if err != nil {
				return
			}
			now := time.Now()
			for _, p := range pkts {
				if sr, ok := p.(*rtcp.SenderReport); ok && sr.SSRC == rt.ssrc {
					r.mu.Lock()
					rt.srs = append(rt.srs, senderReport{ntp: ntpTime(sr.NTPTime), rtp: sr.RTPTime, received: now})
					r.mu.Unlock()
				}
			}
		}
	}()
	go func() {
		defer r.wg.Done()
		for {
			p, _, err := track.ReadRTP()
			if err != nil {
				break
			}
			r.count(rt, p)
			if rec != nil {
				if err := rec.WriteRTP(p); err != nil {
					r.t.Errorf("record %s: %v", rt.file, err)
				}
			}
		}
		if rec != nil {
			if err := rec.Close(); err != nil {
				r.t.Errorf("record %s: %v", rt.file, err)
			}
		}
	}()
}

func (r *testReceiver) count(rt *recvTrack, p *rtp.Packet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastPacket = time.Now()
	rt.packets++
	rt.seqs[p.SequenceNumber] = true
	if rt.levelID != 0 {
		if b := p.GetExtension(rt.levelID); b != nil {
			var l rtp.AudioLevelExtension
			if l.Unmarshal(b) == nil {
				rt.withLevel++
				switch {
				case l.Level <= 20:
					rt.loud++
				case l.Level == 127:
					rt.silent++
				}
			}
		}
	}
	if rt.absID != 0 && p.GetExtension(rt.absID) != nil {
		rt.withAbs++
	}
}

// track returns a copy of what arrived on a track.
func (r *testReceiver) track(kind string) (recvTrack, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt, ok := r.tracks[kind]
	if !ok {
		return recvTrack{}, false
	}
	c := *rt
	c.srs = append([]senderReport(nil), rt.srs...)
	return c, true
}

// ntpTime converts a 64-bit NTP timestamp.
func ntpTime(ntp uint64) time.Time {
	const ntpToUnix = 2208988800
	secs := int64(ntp>>32) - ntpToUnix
	nanos := int64((ntp & 0xffffffff) * 1e9 >> 32)
	return time.Unix(secs, nanos)
}

// rtpToSender maps an RTP timestamp to the sender's clock with a sender
// report.
func (sr senderReport) rtpToSender(ts uint32, clockRate uint32) time.Time {
	d := int32(ts - sr.rtp)
	return sr.ntp.Add(time.Duration(float64(d) / float64(clockRate) * float64(time.Second)))
}

// hasString is strings.Contains with a clearer failure in tests.
func hasString(t *testing.T, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("%q does not contain %q", s, sub)
	}
}
