package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Trickle ICE and ICE restarts through PATCH (RFC 9725, 4.3; RFC 8840 for
// the fragments).

const (
	sdpFragType  = "application/trickle-ice-sdpfrag"
	maxFragBytes = 16 << 10
)

// sdpFrag is a trickle-ice-sdpfrag body: the client's ICE credentials and
// candidates per media section.
type sdpFrag struct {
	ufrag, pwd string
	media      []fragMedia
	dropped    []string // candidates not usable here, and why
}

type fragMedia struct {
	mid        string
	candidates []string // "candidate:..." attribute values
	end        bool     // a=end-of-candidates
}

// parseSDPFrag reads a fragment: "a=" and "m=" lines (session-level
// attributes first), CRLF or LF. Lines a full SDP would have before the
// media (v=, o=, s=, t=, c=, b=) are ignored; anything else is an error,
// as is a candidate that does not parse.
func parseSDPFrag(b []byte) (*sdpFrag, error) {
	f := &sdpFrag{}
	var cur *fragMedia
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		if len(line) < 2 || line[1] != '=' {
			return nil, fmt.Errorf("line %d: %q is not an SDP line", i+1, line)
		}
		switch line[0] {
		case 'v', 'o', 's', 't', 'c', 'b':
			continue
		case 'm':
			f.media = append(f.media, fragMedia{})
			cur = &f.media[len(f.media)-1]
			continue
		case 'a':
		default:
			return nil, fmt.Errorf("line %d: %q has no place in a trickle-ice-sdpfrag", i+1, line)
		}
		key, val, _ := strings.Cut(line[2:], ":")
		switch key {
		case "ice-ufrag":
			f.ufrag = val
		case "ice-pwd":
			f.pwd = val
		case "mid":
			if cur == nil {
				return nil, fmt.Errorf("line %d: a=mid before any m= line", i+1)
			}
			cur.mid = val
		case "candidate":
			if cur == nil {
				return nil, fmt.Errorf("line %d: a candidate before any m= line", i+1)
			}
			c, err := candidateSyntax(val)
			if err != nil {
				return nil, fmt.Errorf("line %d: candidate %q: %w", i+1, val, err)
			}
			if _, err := ice.UnmarshalCandidate(c); err != nil {
				// Well formed, but of a transport or an address we cannot
				// use: dropped, the rest applies (RFC 9725, 4.3.2).
				f.dropped = append(f.dropped, val+": "+err.Error())
				continue
			}
			cur.candidates = append(cur.candidates, "candidate:"+c)
		case "end-of-candidates":
			if cur != nil {
				cur.end = true
			}
		}
	}
	if f.ufrag == "" && len(f.media) == 0 {
		return nil, errors.New("neither ICE credentials nor media sections")
	}
	if (f.ufrag == "") != (f.pwd == "") {
		return nil, errors.New("a=ice-ufrag and a=ice-pwd go together")
	}
	return f, nil
}

// candidateSyntax checks a candidate attribute's value against RFC 8839's
// grammar (foundation, component, transport, priority, address, port, "typ",
// type, ...) and returns it normalized: an IPv6 address in brackets (as some
// clients write RTCIceCandidate.address) loses them, and component 0 (a
// client that numbered "rtp" from zero) becomes 1, the only component of a
// bundled, rtcp-muxed connection.
func candidateSyntax(v string) (string, error) {
	f := strings.Fields(v)
	if len(f) < 8 || f[6] != "typ" {
		return "", errors.New(`want "foundation component transport priority address port typ type ..."`)
	}
	for _, n := range []struct {
		what, v string
	}{{"component", f[1]}, {"priority", f[3]}, {"port", f[5]}} {
		if _, err := strconv.ParseUint(n.v, 10, 32); err != nil {
			return "", fmt.Errorf("%s %q is not a number", n.what, n.v)
		}
	}
	if f[1] == "0" {
		f[1] = "1"
	}
	if strings.HasPrefix(f[4], "[") && strings.HasSuffix(f[4], "]") {
		f[4] = f[4][1 : len(f[4])-1]
	}
	return strings.Join(f, " "), nil
}

// statusError is a PATCH refused with an HTTP status.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

// etag is the strong entity-tag of the publish's current ICE session.
func (p *publish) etag() string {
	p.ice.mu.Lock()
	defer p.ice.mu.Unlock()
	return p.etagLocked()
}

func (p *publish) etagLocked() string {
	return `"` + p.id + "." + strconv.Itoa(p.ice.gen) + `"`
}

// etagMatches reports whether an If-Match (or legacy ETag) field value names
// the current entity-tag: "*", or a list holding it.
func etagMatches(field, current string) bool {
	for v := range strings.SplitSeq(field, ",") {
		v = strings.TrimSpace(v)
		if v == "*" || v == current {
			return true
		}
	}
	return false
}

// patchICE applies a fragment: new candidates for the current ICE session
// (trickle), or new credentials (an ICE restart, answered with the
// recorder's new fragment). ifMatch is the If-Match field; legacy is an ETag
// request field, which clients written to the WHIP drafts send instead of
// If-Match when trickling.
func (p *publish) patchICE(ctx context.Context, f *sdpFrag, ifMatch, legacy string) (answer, etag string, restarted bool, err error) {
	p.ice.mu.Lock()
	defer p.ice.mu.Unlock()
	if p.endedBy() != nil {
		return "", "", false, &statusError{http.StatusNotFound, "the publish has ended"}
	}
	current := p.etagLocked()
	restart := f.ufrag != "" && (f.ufrag != p.ice.ufrag || f.pwd != p.ice.pwd)
	switch {
	case restart && ifMatch == "":
		return "", "", false, &statusError{http.StatusPreconditionRequired, `an ICE restart needs If-Match: "*"`}
	case restart && strings.TrimSpace(ifMatch) != "*":
		// New credentials without "*": candidates of another ICE session
		// (a late trickle), not a restart (RFC 9725, 4.3.3).
		return "", "", false, &statusError{http.StatusPreconditionFailed, `the fragment's credentials are not the current ICE session's; an ICE restart needs If-Match: "*"`}
	case ifMatch != "" && !etagMatches(ifMatch, current):
		return "", "", false, &statusError{http.StatusPreconditionFailed, "If-Match " + ifMatch + " is not the current ICE session " + current}
	case ifMatch == "" && (legacy == "" || !etagMatches(legacy, current)):
		return "", "", false, &statusError{http.StatusPreconditionRequired, "trickle ICE needs If-Match with the ETag of the ICE session (" + current + ")"}
	}
	if restart {
		answer, err = p.restartICE(ctx, f)
		if err != nil {
			return "", "", false, err
		}
	}
	for _, m := range f.media {
		for _, c := range m.candidates {
			mid := m.mid
			init := webrtc.ICECandidateInit{Candidate: c}
			if mid != "" {
				init.SDPMid = &mid
			}
			// A candidate of a transport we do not use, or whose address
			// does not resolve, is dropped (RFC 9725, 4.3.2).
			if err := p.pc.AddICECandidate(init); err != nil {
				p.log.Debug("trickled candidate not used", "candidate", c, "err", err)
			}
		}
	}
	return answer, p.etagLocked(), restart, nil
}

// restartICE restarts the ICE session with the client's new credentials: the
// offer the client made at the start, with those credentials and without
// candidates, is applied again (pion restarts its ICE agent for an offer
// whose credentials changed), and the recorder's new credentials and
// candidates are returned as a fragment. Media, DTLS and the tracks being
// recorded go on.
func (p *publish) restartICE(ctx context.Context, f *sdpFrag) (string, error) {
	refuse := func(err error) (string, error) {
		// The existing ICE session stays (RFC 9725, 4.3.3).
		return "", &statusError{http.StatusServiceUnavailable, "ICE restart failed: " + err.Error()}
	}
	rd := p.pc.RemoteDescription()
	if rd == nil {
		return refuse(errors.New("no remote description"))
	}
	var offer sdp.SessionDescription
	if err := offer.UnmarshalString(rd.SDP); err != nil {
		return refuse(err)
	}
	setICE := func(attrs []sdp.Attribute) []sdp.Attribute {
		var out []sdp.Attribute
		for _, a := range attrs {
			switch a.Key {
			case "ice-ufrag":
				a.Value = f.ufrag
			case "ice-pwd":
				a.Value = f.pwd
			case "candidate", "end-of-candidates":
				continue
			}
			out = append(out, a)
		}
		return out
	}
	offer.Attributes = setICE(offer.Attributes)
	for _, m := range offer.MediaDescriptions {
		m.Attributes = setICE(m.Attributes)
	}
	text, err := offer.Marshal()
	if err != nil {
		return refuse(err)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(text)}); err != nil {
		return refuse(err)
	}
	ans, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return refuse(err)
	}
	if err := p.pc.SetLocalDescription(ans); err != nil {
		return refuse(err)
	}
	if err := waitGathering(ctx, p.pc, p.stop, p.log); err != nil {
		return refuse(err)
	}
	p.ice.ufrag, p.ice.pwd = f.ufrag, f.pwd
	p.ice.gen++
	p.log.Info("ICE restarted", "etag", p.etagLocked())
	return localFragment(p.pc.LocalDescription())
}

// localFragment is the recorder's side of an ICE restart as a
// trickle-ice-sdpfrag: credentials, the first media section (the bundle's)
// with its candidates, and the end of candidates.
func localFragment(ld *webrtc.SessionDescription) (string, error) {
	if ld == nil {
		return "", errors.New("capture: no local description")
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(ld.SDP); err != nil {
		return "", fmt.Errorf("capture: local description: %w", err)
	}
	if len(d.MediaDescriptions) == 0 {
		return "", errors.New("capture: local description without media")
	}
	m := d.MediaDescriptions[0]
	ufrag, pwd := iceCredentials(&d)
	var b strings.Builder
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", ufrag, pwd)
	fmt.Fprintf(&b, "m=%s 9 %s %s\r\n", m.MediaName.Media, strings.Join(m.MediaName.Protos, "/"), strings.Join(m.MediaName.Formats, " "))
	if mid, ok := m.Attribute("mid"); ok {
		fmt.Fprintf(&b, "a=mid:%s\r\n", mid)
	}
	for _, a := range m.Attributes {
		// Component 1 only: with rtcp-mux (which WebRTC requires) RTCP
		// never has a component of its own, and a client that joins the
		// candidates into the SDP by hand (whip-whep 1.2.0 does) copes
		// with fewer lines.
		if f := strings.Fields(a.Value); a.Key == "candidate" && len(f) > 1 && f[1] == "1" {
			fmt.Fprintf(&b, "a=candidate:%s\r\n", a.Value)
		}
	}
	b.WriteString("a=end-of-candidates\r\n")
	return b.String(), nil
}

// iceCredentials returns a description's ICE username fragment and
// password: session-level, or those of its first media section.
func iceCredentials(d *sdp.SessionDescription) (ufrag, pwd string) {
	ufrag, _ = d.Attribute("ice-ufrag")
	pwd, _ = d.Attribute("ice-pwd")
	if ufrag == "" && len(d.MediaDescriptions) > 0 {
		ufrag, _ = d.MediaDescriptions[0].Attribute("ice-ufrag")
		pwd, _ = d.MediaDescriptions[0].Attribute("ice-pwd")
	}
	return ufrag, pwd
}

// handlePatch is PATCH /whip/{room}/{publish}: trickle ICE (204) or an ICE
// restart (200, the recorder's fragment, a new ETag and the ICE servers).
func (r *Recorder) handlePatch(w http.ResponseWriter, req *http.Request) {
	if !r.checkAuth(w, req) {
		return
	}
	p := r.lookup(req.PathValue("room"), req.PathValue("publish"))
	if p == nil {
		if !r.locateElsewhere(w, req, req.PathValue("room")) {
			http.Error(w, "no such publish", http.StatusNotFound)
		}
		return
	}
	if ct, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || ct != sdpFragType {
		w.Header().Set("Accept-Patch", sdpFragType)
		http.Error(w, "Content-Type must be "+sdpFragType, http.StatusUnsupportedMediaType)
		return
	}
	body, ok := readBody(w, req, maxFragBytes, "fragment", "fragment")
	if !ok {
		return
	}
	frag, err := parseSDPFrag(body)
	if err != nil {
		http.Error(w, "malformed trickle-ice-sdpfrag: "+err.Error(), http.StatusBadRequest)
		return
	}
	select {
	case <-p.setupDone:
	default:
		retryAfter(w, time.Second)
		http.Error(w, "the publish is still being set up", http.StatusConflict)
		return
	}
	for _, d := range frag.dropped {
		p.log.Info("trickled candidate dropped", "candidate", d)
	}
	answer, etag, restarted, err := p.patchICE(req.Context(), frag, req.Header.Get("If-Match"), req.Header.Get("ETag"))
	if err != nil {
		var se *statusError
		if errors.As(err, &se) {
			http.Error(w, se.msg, se.code)
			return
		}
		r.log.Error("PATCH failed", "publish", p.id, "err", err)
		http.Error(w, "could not apply the fragment", http.StatusInternalServerError)
		return
	}
	if !restarted {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", sdpFragType)
	w.Header().Set("ETag", etag)
	for _, l := range linkHeaders(r.cfg.ICE.iceServers(p.participant, time.Now())) {
		w.Header().Add("Link", l)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, answer)
}

// lookup returns the publish id of room's open session, or nil.
func (r *Recorder) lookup(room, id string) *publish {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.rooms[room]; s != nil {
		return s.publishes[id]
	}
	return nil
}
