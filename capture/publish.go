package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/tapedeck/tapedeck/timeline"
)

var errClosed = errors.New("recorder closed")

// publish is one WHIP publish: a peer connection whose tracks are recorded.
type publish struct {
	id          string
	participant string
	sess        *session
	pc          *webrtc.PeerConnection
	log         *slog.Logger

	kinds map[timeline.Kind]int // tracks per kind, guarded by Recorder.mu

	tmu  sync.Mutex
	live map[string]*trackRecorder // tracks being recorded

	endOnce sync.Once
	reason  string
	tracks  sync.WaitGroup
}

// publish starts recording an offer from participant in room and returns
// the SDP answer.
func (r *Recorder) publish(ctx context.Context, room, participant, offer string) (*publish, string, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, "", errClosed
	}
	if err := r.admit(room); err != nil {
		r.mu.Unlock()
		return nil, "", err
	}
	s, err := r.sessionFor(room)
	if err != nil {
		r.mu.Unlock()
		return nil, "", err
	}
	// The same name publishing again (a page reload, a reconnect) replaces
	// the previous publish; both feed the same lanes.
	var replaced []*publish
	for _, old := range s.publishes {
		if old.participant == participant {
			replaced = append(replaced, old)
		}
	}
	p := &publish{id: newID(8), participant: participant, sess: s}
	p.log = s.log.With("participant", participant, "publish", p.id)
	s.publishes[p.id] = p
	if err := s.jr.append(&record{Type: recPublish, Publish: p.id, Participant: participant, Name: participant}); err != nil {
		delete(s.publishes, p.id)
		r.mu.Unlock()
		return nil, "", err
	}
	// Hold the publish open while the peer connection is being set up, so
	// that a failure ends it through the same path as everything else.
	p.tracks.Add(1)
	r.mu.Unlock()
	for _, old := range replaced {
		go old.end("replaced by a new publish of the same participant")
	}

	answer, err := p.start(ctx, r, offer)
	p.tracks.Done()
	if err != nil {
		p.end("setup failed: " + err.Error())
		return nil, "", err
	}
	p.log.Info("publish started")
	r.count.publishes.Add(1)
	return p, answer, nil
}

func (p *publish) start(ctx context.Context, r *Recorder, offer string) (string, error) {
	pc, err := r.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return "", fmt.Errorf("capture: new peer connection: %w", err)
	}
	p.pc = pc
	pc.OnTrack(func(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		p.tracks.Add(1)
		go func() {
			defer p.tracks.Done()
			p.recordTrack(remote, receiver)
		}()
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		p.log.Debug("connection state", "state", st.String())
		switch st {
		case webrtc.PeerConnectionStateFailed:
			go p.end("connection failed (ICE/DTLS timeout)")
		case webrtc.PeerConnectionStateClosed:
			go p.end("connection closed")
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", &badOfferError{err}
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", &badOfferError{err}
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("capture: set local description: %w", err)
	}
	if err := waitGathering(pc, 5*time.Second); err != nil {
		return "", fmt.Errorf("capture: %w", err)
	}
	select {
	case <-ctx.Done():
		return "", fmt.Errorf("capture: publish: %w", ctx.Err())
	default:
	}
	ld := pc.LocalDescription()
	if !strings.Contains(ld.SDP, "m=") {
		return "", errors.New("capture: empty answer")
	}
	return ld.SDP, nil
}

// end closes the publish's connection, waits for its tracks to be finished
// and journaled, then tells the session. It is safe to call many times.
func (p *publish) end(reason string) {
	p.endOnce.Do(func() {
		p.reason = reason
		if p.pc != nil {
			if err := p.pc.Close(); err != nil {
				p.log.Warn("close peer connection", "err", err)
			}
		}
		p.tracks.Wait()
		if err := p.sess.jr.append(&record{Type: recPublishEnd, Publish: p.id, Reason: reason}); err != nil {
			p.log.Error("journal publish end", "err", err)
		}
		p.log.Info("publish ended", "reason", reason)
		p.sess.publishEnded(p)
	})
}
