package capture

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Header extensions the recorder negotiates.
const (
	extAudioLevel  = sdp.AudioLevelURI
	extAbsSendTime = sdp.ABSSendTimeURI
)

// recordedCodecs are the codecs tapedeck records, in order of preference.
func recordedCodecs() []webrtc.RTPCodecParameters {
	videoFB := []webrtc.RTCPFeedback{
		{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"},
	}
	video := func(pt uint8, mime, fmtp string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{
			PayloadType:        webrtc.PayloadType(pt),
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000, SDPFmtpLine: fmtp, RTCPFeedback: videoFB},
		}
	}
	return []webrtc.RTPCodecParameters{
		{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}},
		video(96, webrtc.MimeTypeVP8, ""),
		video(98, webrtc.MimeTypeVP9, "profile-id=0"),
		video(100, webrtc.MimeTypeVP9, "profile-id=2"),
		video(102, webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"),
		video(104, webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"),
		video(106, webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f"),
		video(108, webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032"),
		video(45, webrtc.MimeTypeAV1, "level-idx=5;profile=0;tier=0"),
	}
}

// udpReadBuffer is the receive buffer asked for the media socket: at
// 20 streams of 2.5 Mbit/s, 4 MiB holds about half a second of packets, so a
// scheduling hiccup does not drop them in the kernel (the kernel caps it at
// net.core.rmem_max).
const udpReadBuffer = 4 << 20

// newAPI builds the pion API used for every publish. All media arrives on
// one UDP port (per interface), and with cfg.TCPPort on one TCP port; the
// returned closer closes them at the end.
func newAPI(cfg ICEConfig) (*webrtc.API, io.Closer, error) {
	m := &webrtc.MediaEngine{}
	for _, c := range recordedCodecs() {
		kind := webrtc.RTPCodecTypeVideo
		if c.ClockRate == 48000 {
			kind = webrtc.RTPCodecTypeAudio
		}
		if err := m.RegisterCodec(c, kind); err != nil {
			return nil, nil, fmt.Errorf("capture: register codec %s: %w", c.MimeType, err)
		}
		if kind == webrtc.RTPCodecTypeVideo {
			rtx := webrtc.RTPCodecParameters{
				PayloadType:        c.PayloadType + 1,
				RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: fmt.Sprintf("apt=%d", c.PayloadType)},
			}
			if err := m.RegisterCodec(rtx, kind); err != nil {
				return nil, nil, fmt.Errorf("capture: register rtx: %w", err)
			}
		}
	}
	for _, e := range []struct {
		uri  string
		kind webrtc.RTPCodecType
	}{
		{extAudioLevel, webrtc.RTPCodecTypeAudio},
		{extAbsSendTime, webrtc.RTPCodecTypeAudio},
		{extAbsSendTime, webrtc.RTPCodecTypeVideo},
	} {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: e.uri}, e.kind); err != nil {
			return nil, nil, fmt.Errorf("capture: register header extension %s: %w", e.uri, err)
		}
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		return nil, nil, fmt.Errorf("capture: interceptors: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(5*time.Second, 10*time.Second, 2*time.Second)
	se.SetReceiveMTU(1500)
	keep := func(ip net.IP) bool { return ip.To4() != nil }
	if cfg.LoopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
		keep = func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil }
	}
	se.SetIPFilter(keep)
	mux, err := ice.NewMultiUDPMuxFromPort(cfg.UDPPort,
		ice.UDPMuxFromPortWithIPFilter(keep),
		ice.UDPMuxFromPortWithNetworks(ice.NetworkTypeUDP4),
		ice.UDPMuxFromPortWithLoopback(),
		ice.UDPMuxFromPortWithReadBufferSize(udpReadBuffer),
		ice.UDPMuxFromPortWithWriteBufferSize(1<<20),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("capture: media UDP port %d: %w", cfg.UDPPort, err)
	}
	se.SetICEUDPMux(mux)
	closers := closeAll{mux}
	if cfg.TCPPort != 0 {
		// Passive ICE-TCP on one port, for clients whose UDP is blocked.
		ip := net.IPv4zero
		if cfg.LoopbackOnly {
			ip = net.IPv4(127, 0, 0, 1)
		}
		ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: ip, Port: max(cfg.TCPPort, 0)})
		if err != nil {
			_ = closers.Close()
			return nil, nil, fmt.Errorf("capture: media TCP port %d: %w", cfg.TCPPort, err)
		}
		tcpMux := webrtc.NewICETCPMux(nil, ln, 64)
		closers = append(closers, tcpMux, ln)
		se.SetICETCPMux(tcpMux)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
	}
	if len(cfg.NAT1To1IPs) > 0 {
		// Announce the public addresses instead of the host's own.
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: cfg.NAT1To1IPs, AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			_ = closers.Close()
			return nil, nil, fmt.Errorf("capture: public addresses %v: %w", cfg.NAT1To1IPs, err)
		}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)), closers, nil
}

// closeAll closes each of its closers, in order, and returns their errors.
type closeAll []io.Closer

func (c closeAll) Close() error {
	var errs []error
	for _, cl := range c {
		if err := cl.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
