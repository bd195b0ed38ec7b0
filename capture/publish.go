package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/tapedeck/tapedeck/timeline"
)

// Why a publish ended. The text is journaled as the publish's end reason.
var (
	errClosing   = errors.New("recorder closing")
	errReplaced  = errors.New("replaced by a new publish of the same participant")
	errDeleted   = errors.New("client ended (DELETE)")
	errStopped   = errors.New("session stopped by an operator")
	errConnFail  = errors.New("connection failed (ICE/DTLS timeout)")
	errConnClose = errors.New("connection closed")
)

// interruptedError is the answer to a publish that was ended by something
// else (a newer publish of the same participant, the recorder closing, an
// operator) while it was still being set up: its client gets no answer to
// use.
type interruptedError struct{ cause error }

func (e *interruptedError) Error() string {
	return "publish ended while it was being set up: " + e.cause.Error()
}
func (e *interruptedError) Unwrap() error { return e.cause }

// publish is one WHIP publish: a peer connection whose tracks are recorded.
type publish struct {
	id          string
	participant string
	sess        *session
	pc          *webrtc.PeerConnection // set before the publish is shared, never changed
	log         *slog.Logger
	stop        chan struct{} // closed when the publish starts ending
	setupDone   chan struct{} // closed when the setup has returned

	kinds map[timeline.Kind]int // tracks per kind, guarded by Recorder.mu

	mu    sync.Mutex
	cause error                     // why it ended; nil while it runs
	live  map[string]*trackRecorder // tracks being recorded
	// work holds every track being recorded. Add only through hold, which
	// refuses once the publish is ending, so that end's Wait sees every
	// track that was ever accepted.
	work sync.WaitGroup

	endOnce sync.Once

	ice iceSession // PATCH's state
}

// iceSession is the state of a publish's ICE session that PATCH changes.
type iceSession struct {
	mu         sync.Mutex // serializes PATCHes: a restart never interleaves with candidates
	gen        int        // ICE restarts so far: the entity-tag changes with it
	ufrag, pwd string     // the client's current credentials
}

// hold adds one piece of work to the publish, unless it is ending.
func (p *publish) hold() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cause != nil {
		return false
	}
	p.work.Add(1)
	return true
}

// endedBy returns why the publish ended, or nil while it runs.
func (p *publish) endedBy() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cause
}

// publish starts recording an offer from participant in room and returns
// the SDP answer. Errors: *badOfferError (the offer), *interruptedError
// (ended during setup), errClosing and the admission errors (refused).
func (r *Recorder) publish(ctx context.Context, room, participant, offer string, claim RoomClaim) (*publish, string, error) {
	// The connection exists before the publish is shared: whoever ends the
	// publish, at any point of its setup, closes it.
	pc, err := r.api.NewPeerConnection(webrtc.Configuration{ICEServers: r.cfg.ICE.iceServers("tapedeck", time.Now())})
	if err != nil {
		r.unclaim(room, claim)
		return nil, "", fmt.Errorf("capture: new peer connection: %w", err)
	}
	refuse := func(err error) (*publish, string, error) {
		if cerr := pc.Close(); cerr != nil {
			r.log.Warn("close refused peer connection", "err", cerr)
		}
		r.unclaim(room, claim)
		return nil, "", err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return refuse(errClosing)
	}
	if err := r.admit(room); err != nil {
		r.mu.Unlock()
		return refuse(err)
	}
	s, err := r.sessionFor(room, claim)
	if err != nil {
		r.mu.Unlock()
		return refuse(err)
	}
	p := &publish{id: newID(8), participant: participant, sess: s, pc: pc, stop: make(chan struct{}), setupDone: make(chan struct{})}
	p.log = s.log.With("participant", participant, "publish", p.id)
	if err := s.jr.append(&record{Type: recPublish, Publish: p.id, Participant: participant, Name: participant}); err != nil {
		r.mu.Unlock()
		return refuse(err)
	}
	// The same name publishing again (a page reload, a reconnect) replaces
	// the previous publishes, including one still being set up; all feed
	// the same lanes.
	for _, old := range s.publishes {
		if old.participant == participant {
			r.tasks.Go(func() { old.end(errReplaced) })
		}
	}
	s.publishes[p.id] = p
	r.mu.Unlock()

	answer, err := p.start(ctx, offer)
	close(p.setupDone)
	if cause := p.endedBy(); cause != nil {
		// Ended while being set up: whatever start returned (pion's
		// "connection closed", or an answer nobody will use), the client's
		// answer is why.
		p.end(cause)
		return nil, "", &interruptedError{cause}
	}
	if err != nil {
		p.end(fmt.Errorf("setup failed: %w", err))
		return nil, "", err
	}
	p.log.Info("publish started")
	r.count.publishes.Add(1)
	return p, answer, nil
}

func (p *publish) start(ctx context.Context, offer string) (string, error) {
	pc := p.pc
	// pion runs each of these handlers in a goroutine of its own.
	pc.OnTrack(func(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		if !p.hold() {
			return // the publish is ending: the track is not recorded
		}
		defer p.work.Done()
		p.recordTrack(remote, receiver)
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		p.log.Debug("connection state", "state", st.String())
		switch st {
		case webrtc.PeerConnectionStateFailed:
			p.end(errConnFail)
		case webrtc.PeerConnectionStateClosed:
			p.end(errConnClose)
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", &badOfferError{err}
	}
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(offer); err == nil {
		p.ice.mu.Lock()
		p.ice.ufrag, p.ice.pwd = iceCredentials(&parsed)
		p.ice.mu.Unlock()
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", &badOfferError{err}
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("capture: set local description: %w", err)
	}
	if err := waitGathering(ctx, pc, p.stop, p.log); err != nil {
		return "", err
	}
	ld := pc.LocalDescription()
	if ld == nil || !strings.Contains(ld.SDP, "m=") {
		return "", errors.New("capture: empty answer")
	}
	return ld.SDP, nil
}

// gatherWait bounds the wait for the recorder's own candidates. Host
// candidates come at once; a TURN server's relay candidate takes a round
// trip, and one that does not answer must not hold every publish up.
const gatherWait = 2 * time.Second

// waitGathering waits until pc has gathered its candidates, or for
// gatherWait: then the answer goes out with those it has, if any.
func waitGathering(ctx context.Context, pc *webrtc.PeerConnection, stop <-chan struct{}, log *slog.Logger) error {
	select {
	case <-webrtc.GatheringCompletePromise(pc):
		return nil
	case <-stop:
		return errors.New("capture: publish ended during ICE gathering")
	case <-ctx.Done():
		return fmt.Errorf("capture: publish: %w", ctx.Err())
	case <-time.After(gatherWait):
	}
	if ld := pc.LocalDescription(); ld != nil && strings.Contains(ld.SDP, "a=candidate:") {
		log.Warn("ICE gathering incomplete (a STUN/TURN server slow or unreachable?): answering with the candidates gathered", "after", gatherWait)
		return nil
	}
	return fmt.Errorf("capture: no ICE candidate gathered in %v", gatherWait)
}

// end closes the publish's connection, waits for its setup and tracks to be
// finished and journaled, then tells the session. Many may call it at once:
// the first cause is kept, and every caller returns once the publish has
// ended.
func (p *publish) end(cause error) {
	p.endOnce.Do(func() {
		p.mu.Lock()
		p.cause = cause
		p.mu.Unlock()
		close(p.stop)
		// The setup sees stop and returns promptly; the connection is
		// closed only then, never while pion is still applying the offer
		// or gathering (closing it then can leave pion's ICE agent behind).
		<-p.setupDone
		if err := p.pc.Close(); err != nil {
			p.log.Warn("close peer connection", "err", err)
		}
		p.work.Wait()
		if err := p.sess.jr.append(&record{Type: recPublishEnd, Publish: p.id, Reason: cause.Error()}); err != nil {
			p.log.Error("journal publish end", "err", err)
		}
		p.log.Info("publish ended", "reason", cause.Error())
		p.sess.publishEnded(p)
	})
}
