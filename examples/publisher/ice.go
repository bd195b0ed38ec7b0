package publisher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// The publisher's side of WHIP's PATCH (RFC 9725, 4.3): trickle ICE and ICE
// restarts, in trickle-ice-sdpfrag bodies (RFC 8840).

const sdpFragType = "application/trickle-ice-sdpfrag"

// iceState is what the publisher knows of the WHIP session's ICE entity.
type iceState struct {
	mu       sync.Mutex // one PATCH at a time, in order
	location *url.URL
	etag     string
}

// patch sends a fragment with If-Match and returns the answer's status,
// entity-tag and body.
func (s *session) patch(ctx context.Context, frag, ifMatch string) (int, string, string, error) {
	hdr := http.Header{"Content-Type": {sdpFragType}, "If-Match": {ifMatch}}
	resp, _, _, err := do(ctx, s.http, http.MethodPatch, s.ice.location, s.cfg.Token, []byte(frag), hdr)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return 0, "", "", fmt.Errorf("publisher: PATCH: reading the answer: %w", err)
	}
	return resp.StatusCode, resp.Header.Get("ETag"), string(body), nil
}

// fragment is a trickle-ice-sdpfrag for the first media section of desc
// (the bundle's) with the given candidate lines ("candidate:...").
func fragment(desc string, candidates []string, end bool) (string, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(desc); err != nil {
		return "", fmt.Errorf("publisher: fragment: %w", err)
	}
	if len(d.MediaDescriptions) == 0 {
		return "", errors.New("publisher: fragment: no media section")
	}
	m := d.MediaDescriptions[0]
	ufrag, _ := d.Attribute("ice-ufrag")
	pwd, _ := d.Attribute("ice-pwd")
	if ufrag == "" {
		ufrag, _ = m.Attribute("ice-ufrag")
		pwd, _ = m.Attribute("ice-pwd")
	}
	mid, _ := m.Attribute("mid")
	var b strings.Builder
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", ufrag, pwd)
	fmt.Fprintf(&b, "m=%s 9 %s %s\r\na=mid:%s\r\n", m.MediaName.Media, strings.Join(m.MediaName.Protos, "/"), strings.Join(m.MediaName.Formats, " "), mid)
	for _, c := range candidates {
		fmt.Fprintf(&b, "a=%s\r\n", c)
	}
	if end {
		b.WriteString("a=end-of-candidates\r\n")
	}
	return b.String(), nil
}

// withoutCandidates removes every candidate line from an SDP.
func withoutCandidates(desc string) string {
	var out []string
	for _, l := range strings.SplitAfter(desc, "\n") {
		if strings.HasPrefix(l, "a=candidate:") || strings.HasPrefix(l, "a=end-of-candidates") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "")
}

// trickler sends the candidates pion gathers with PATCH once the WHIP
// session exists, in order, batching those that come while a PATCH is out.
type trickler struct {
	s     *session
	offer string

	mu      sync.Mutex
	pending []string
	end     bool
	wake    chan struct{}
	done    chan struct{}
	cancel  context.CancelFunc
	sent    int
	started bool
}

// newTrickler starts collecting the candidates of s's connection; call it
// before SetLocalDescription.
func newTrickler(s *session, offer string) *trickler {
	t := &trickler{s: s, offer: offer, wake: make(chan struct{}, 1), done: make(chan struct{})}
	s.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		t.mu.Lock()
		if c == nil {
			t.end = true
		} else {
			t.pending = append(t.pending, c.ToJSON().Candidate)
		}
		t.mu.Unlock()
		select {
		case t.wake <- struct{}{}:
		default:
		}
	})
	return t
}

// start sends what was gathered and what comes, until stop.
func (t *trickler) start(ctx context.Context) {
	ctx, t.cancel = context.WithCancel(ctx)
	t.started = true
	go func() {
		defer close(t.done)
		for {
			t.mu.Lock()
			cands, end := t.pending, t.end
			t.pending, t.end = nil, false
			t.mu.Unlock()
			if len(cands) > 0 || end {
				if err := t.send(ctx, cands, end); err != nil {
					t.s.log.Warn("publisher: trickle PATCH", "err", err)
				}
			}
			if end {
				// Gathering is over: what an ICE restart gathers goes in
				// its own PATCH, with its own credentials.
				t.s.pc.OnICECandidate(func(*webrtc.ICECandidate) {})
				return
			}
			select {
			case <-t.wake:
			case <-ctx.Done():
				return
			}
		}
	}()
}

func (t *trickler) send(ctx context.Context, cands []string, end bool) error {
	frag, err := fragment(t.offer, cands, end)
	if err != nil {
		return err
	}
	t.s.ice.mu.Lock()
	defer t.s.ice.mu.Unlock()
	code, _, body, err := t.s.patch(ctx, frag, t.s.ice.etag)
	if err != nil {
		return err
	}
	if code != http.StatusNoContent {
		return fmt.Errorf("publisher: trickle PATCH answered %d, want 204: %s", code, strings.TrimSpace(body))
	}
	t.mu.Lock()
	t.sent += len(cands)
	t.mu.Unlock()
	return nil
}

// stop ends the trickling and returns how many candidates were sent.
func (t *trickler) stop() int {
	t.s.pc.OnICECandidate(func(*webrtc.ICECandidate) {})
	if t.started {
		t.cancel()
		<-t.done
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sent
}

// restartICE restarts ICE: a new offer with new credentials, its gathered
// candidates PATCHed with If-Match "*", and the recorder's answer fragment
// (new credentials and candidates) applied to the remote description. It
// returns the time from the PATCH until ICE is connected again.
func (s *session) restartICE(ctx context.Context) (time.Duration, error) {
	offer, err := s.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		return 0, fmt.Errorf("publisher: ICE restart offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(s.pc)
	if err := s.pc.SetLocalDescription(offer); err != nil {
		return 0, fmt.Errorf("publisher: ICE restart: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	var cands []string
	var d sdp.SessionDescription
	if err := d.UnmarshalString(s.pc.LocalDescription().SDP); err == nil && len(d.MediaDescriptions) > 0 {
		for _, a := range d.MediaDescriptions[0].Attributes {
			if a.Key == "candidate" {
				cands = append(cands, "candidate:"+a.Value)
			}
		}
	}
	frag, err := fragment(s.pc.LocalDescription().SDP, cands, true)
	if err != nil {
		return 0, err
	}
	connected := make(chan struct{}, 1)
	s.pc.OnICEConnectionStateChange(func(st webrtc.ICEConnectionState) {
		if st == webrtc.ICEConnectionStateConnected {
			select {
			case connected <- struct{}{}:
			default:
			}
		}
	})
	defer s.pc.OnICEConnectionStateChange(func(webrtc.ICEConnectionState) {})
	s.ice.mu.Lock()
	began := time.Now()
	code, etag, body, err := s.patch(ctx, frag, "*")
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("publisher: ICE restart PATCH answered %d, want 200: %s", code, strings.TrimSpace(body))
	}
	if err == nil {
		s.ice.etag = etag
	}
	s.ice.mu.Unlock()
	if err != nil {
		return 0, err
	}
	answer, err := withRemoteICE(s.pc.RemoteDescription().SDP, body)
	if err != nil {
		return 0, err
	}
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return 0, fmt.Errorf("publisher: ICE restart answer: %w", err)
	}
	select {
	case <-connected:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(connectTimeout):
		return 0, fmt.Errorf("publisher: ICE restart did not connect within %v", connectTimeout)
	}
	took := time.Since(began)
	s.log.Info("publisher: ICE restarted", "took", took, "etag", etag)
	return took, nil
}

// withRemoteICE returns the remote description desc with the credentials
// and candidates of the recorder's fragment frag instead of its own.
func withRemoteICE(desc, frag string) (string, error) {
	var ufrag, pwd string
	var cands []string
	for _, l := range strings.Split(frag, "\n") {
		l = strings.TrimRight(l, "\r")
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:"):
			ufrag = strings.TrimPrefix(l, "a=ice-ufrag:")
		case strings.HasPrefix(l, "a=ice-pwd:"):
			pwd = strings.TrimPrefix(l, "a=ice-pwd:")
		case strings.HasPrefix(l, "a=candidate:"):
			cands = append(cands, strings.TrimPrefix(l, "a="))
		}
	}
	if ufrag == "" || pwd == "" {
		return "", fmt.Errorf("publisher: ICE restart answer without credentials: %q", frag)
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(desc); err != nil {
		return "", fmt.Errorf("publisher: remote description: %w", err)
	}
	set := func(attrs []sdp.Attribute, first bool) []sdp.Attribute {
		var out []sdp.Attribute
		for _, a := range attrs {
			switch a.Key {
			case "ice-ufrag":
				a.Value = ufrag
			case "ice-pwd":
				a.Value = pwd
			case "candidate", "end-of-candidates":
				continue
			}
			out = append(out, a)
		}
		if first {
			for _, c := range cands {
				k, v, _ := strings.Cut(c, ":")
				out = append(out, sdp.Attribute{Key: k, Value: v})
			}
		}
		return out
	}
	d.Attributes = set(d.Attributes, false)
	for i, m := range d.MediaDescriptions {
		m.Attributes = set(m.Attributes, i == 0)
	}
	b, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("publisher: remote description: %w", err)
	}
	return string(b), nil
}

// selectedPath describes the connection's selected candidate pair.
func selectedPath(pc *webrtc.PeerConnection) string {
	for _, tr := range pc.GetTransceivers() {
		snd := tr.Sender()
		if snd == nil || snd.Transport() == nil {
			continue
		}
		p, err := snd.Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || p == nil {
			continue
		}
		return fmt.Sprintf("%s %s %s:%d → %s %s %s:%d", p.Local.Protocol, p.Local.Typ, p.Local.Address, p.Local.Port,
			p.Remote.Protocol, p.Remote.Typ, p.Remote.Address, p.Remote.Port)
	}
	return ""
}
