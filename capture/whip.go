package capture

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
)

// MaxOfferBytes is the largest SDP offer accepted.
const MaxOfferBytes = 64 << 10

// validName is what a room or participant name may be: it becomes a folder
// name, so no separators, no dot-dot, no leading dot.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// CheckName returns an error saying what is wrong with a room or
// participant name, or nil.
func CheckName(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s is empty", what)
	case len(name) > 64:
		return fmt.Errorf("%s is longer than 64 characters", what)
	case !validName.MatchString(name) || strings.Contains(name, ".."):
		return fmt.Errorf("%s %q may only hold letters, digits, '_', '-' and '.', and must start with a letter or digit", what, name)
	}
	return nil
}

// Handler returns the WHIP endpoint (RFC 9725), with CORS on every route
// (Config.CORSOrigins):
//
//	POST    /whip/{room}?participant={name}   publish; 201 with the SDP answer, a Location and an ETag
//	PATCH   /whip/{room}/{publish}            trickle ICE (204) or an ICE restart (200 with the new sdpfrag)
//	DELETE  /whip/{room}/{publish}            end the publish
//	OPTIONS on both                           CORS preflight, or what the route accepts
func (r *Recorder) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /whip/{room}", r.handlePublish)
	mux.HandleFunc("OPTIONS /whip/{room}", func(w http.ResponseWriter, req *http.Request) {
		if !r.checkAuth(w, req) {
			return
		}
		w.Header().Set("Accept-Post", "application/sdp")
		w.Header().Set("Allow", "POST, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /whip/{room}/{publish}", r.handleDelete)
	mux.HandleFunc("PATCH /whip/{room}/{publish}", r.handlePatch)
	mux.HandleFunc("OPTIONS /whip/{room}/{publish}", func(w http.ResponseWriter, req *http.Request) {
		if !r.checkAuth(w, req) {
			return
		}
		w.Header().Set("Accept-Patch", sdpFragType)
		w.Header().Set("Allow", "PATCH, DELETE, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
	})
	return r.cors(mux)
}

// authorized checks the bearer token in constant time.
func (r *Recorder) authorized(req *http.Request) bool {
	if len(r.cfg.Tokens) == 0 {
		return true
	}
	h := req.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	got := []byte(strings.TrimSpace(h[len(prefix):]))
	ok := 0
	for _, t := range r.cfg.Tokens {
		ok |= subtle.ConstantTimeCompare(got, []byte(t))
	}
	return ok == 1
}

// checkAuth answers 401 or 429 and returns false when the request may not
// go on: a client address that failed authentication too often recently is
// refused before its token is even looked at.
func (r *Recorder) checkAuth(w http.ResponseWriter, req *http.Request) bool {
	addr, now := clientAddr(req), time.Now()
	if wait, blocked := r.auth.Blocked(addr, now); blocked {
		r.count.refused.Add(1)
		retryAfter(w, wait)
		http.Error(w, errRateLimit.Error()+": try again later", http.StatusTooManyRequests)
		return false
	}
	if !r.authorized(req) {
		r.auth.Fail(addr, now)
		r.log.Warn("authentication failed", "client", addr) // never the token
		unauthorized(w)
		return false
	}
	return true
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="tapedeck"`)
	http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
}

func (r *Recorder) handlePublish(w http.ResponseWriter, req *http.Request) {
	if !r.checkAuth(w, req) {
		return
	}
	if err := r.Ready(); err != nil {
		// Refused before anything is read: the client should try another
		// recorder or later.
		r.count.refused.Add(1)
		retryAfter(w, 30*time.Second)
		http.Error(w, "publish refused: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	room := req.PathValue("room")
	participant := req.URL.Query().Get("participant")
	if err := CheckName("room", room); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := CheckName("participant", participant); err != nil {
		http.Error(w, err.Error()+" (set ?participant=NAME)", http.StatusBadRequest)
		return
	}
	ct, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || ct != "application/sdp" {
		http.Error(w, "Content-Type must be application/sdp", http.StatusUnsupportedMediaType)
		return
	}
	body, ok := readBody(w, req, MaxOfferBytes, "SDP offer", "offer")
	if !ok {
		return
	}
	if err := checkOffer(body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var claim RoomClaim
	if r.cfg.Rooms != nil {
		// A cluster: which recorder records the room, and as which session?
		if err := r.preAdmit(room); err != nil && !errors.Is(err, errTooMany) {
			r.count.refused.Add(1)
			retryAfter(w, 30*time.Second)
			http.Error(w, "publish refused: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if claim, err = r.claimRoom(req.Context(), room, req); err != nil {
			r.count.refused.Add(1)
			r.log.Warn("publish refused: the room's recorder cannot be confirmed now", "room", room, "err", err)
			retryAfter(w, time.Second)
			http.Error(w, "publish refused: the room's recorder cannot be confirmed now; try again", http.StatusServiceUnavailable)
			return
		}
		if claim.Elsewhere != "" {
			r.elsewhere(w, req, claim.Elsewhere, claim.Placed, body)
			return
		}
	}
	p, answer, err := r.publish(req.Context(), room, participant, string(body), claim)
	if err != nil {
		var bad *badOfferError
		var interrupted *interruptedError
		switch {
		case errors.Is(err, errClosing):
			// Refused, or ended during setup, because the recorder is
			// shutting down: another recorder, or this one later.
			r.count.refused.Add(1)
			retryAfter(w, 30*time.Second)
			http.Error(w, "publish refused: the recorder is shutting down", http.StatusServiceUnavailable)
		case errors.As(err, &interrupted):
			// A newer publish of the same participant (or an operator)
			// ended this one before it was answered.
			http.Error(w, interrupted.Error(), http.StatusConflict)
		case errors.As(err, &bad):
			http.Error(w, bad.Error(), http.StatusBadRequest)
		case req.Context().Err() != nil:
			// The client hung up while its publish was being set up;
			// nobody reads an answer.
			r.log.Info("publish abandoned by its client during setup", "room", room, "participant", participant, "err", err)
		case errors.Is(err, errRoomEnding), errors.Is(err, ErrRoomMoved):
			// A cluster moves the room, or ends its session: the next try
			// is answered by the room's next recorder or session.
			retryAfter(w, time.Second)
			http.Error(w, "publish refused: "+err.Error(), http.StatusServiceUnavailable)
		case errors.Is(err, errDraining), errors.Is(err, errDiskLow), errors.Is(err, errTooMany):
			r.count.refused.Add(1)
			retryAfter(w, 30*time.Second)
			http.Error(w, "publish refused: "+err.Error(), http.StatusServiceUnavailable)
		default:
			r.log.Error("publish failed", "room", room, "participant", participant, "err", err)
			http.Error(w, "could not start the publish", http.StatusInternalServerError)
		}
		return
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "/whip/"+room+"/"+p.id)
	w.Header().Set("ETag", p.etag())
	w.Header().Set("Accept-Patch", sdpFragType)
	for _, l := range linkHeaders(r.cfg.ICE.iceServers(participant, time.Now())) {
		w.Header().Add("Link", l)
	}
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

func (r *Recorder) handleDelete(w http.ResponseWriter, req *http.Request) {
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
	// The answer waits until the publish's files are closed and journaled.
	p.end(errDeleted)
	w.WriteHeader(http.StatusOK)
}

// badOfferError is an offer pion would not accept.
type badOfferError struct{ err error }

func (e *badOfferError) Error() string { return "bad SDP offer: " + e.err.Error() }
func (e *badOfferError) Unwrap() error { return e.err }

// checkOffer parses the offer and checks it carries media in a codec tapedeck
// records.
func checkOffer(b []byte) error {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(b)); err != nil {
		return fmt.Errorf("malformed SDP offer: %v", err)
	}
	if len(sd.MediaDescriptions) == 0 {
		return errors.New("SDP offer has no media sections")
	}
	known := map[string]bool{}
	for _, c := range recordedCodecs() {
		known[strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(c.MimeType, "audio/"), "video/"))] = true
	}
	var offered []string
	for _, md := range sd.MediaDescriptions {
		for _, a := range md.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			f := strings.Fields(a.Value)
			if len(f) < 2 {
				continue
			}
			name := strings.ToLower(strings.SplitN(f[1], "/", 2)[0])
			if known[name] {
				return nil
			}
			offered = append(offered, name)
		}
	}
	return fmt.Errorf("SDP offer has no codec tapedeck records (offered %s; accepted: opus, vp8, vp9, h264, av1)", strings.Join(offered, ", "))
}

// readBody reads a request body of at most limit bytes; on failure it
// answers 413 (too large, "NAME larger than N bytes") or 400 ("reading
// SHORT: …") and returns false.
func readBody(w http.ResponseWriter, req *http.Request, limit int64, name, short string) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("%s larger than %d bytes", name, limit), http.StatusRequestEntityTooLarge)
			return nil, false
		}
		http.Error(w, "reading "+short+": "+err.Error(), http.StatusBadRequest)
		return nil, false
	}
	return body, true
}
