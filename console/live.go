package console

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Health thresholds of a live track: time since its last packet.
const (
	lateAfter    = 2 * time.Second
	stalledAfter = 5 * time.Second
)

type liveView struct {
	Sessions []liveSessionView
	Ended    string // room whose session was just ended
	Tracks   int
}

type liveSessionView struct {
	Room, Session string
	Started       time.Time
	Duration      time.Duration
	Ending        bool
	Participants  []liveParticipantView
}

type liveParticipantView struct {
	Name, Publish string
	Tracks        []liveTrackView
}

type liveTrackView struct {
	ID, Lane, Kind, Codec string
	Resolution            string  // "640×360"; "" unknown
	Bitrate               float64 // bits/s; -1 unknown
	Counted               bool    // the counters are known
	Packets, Lost         int64
	LossPercent           float64
	SinceLast             time.Duration
	Health                string // "ok", "late", "stalled", "" unknown
}

func (c *Console) liveView(r *http.Request) liveView {
	var v liveView
	if room := r.URL.Query().Get("ended"); validName(room) {
		v.Ended = room
	}
	if c.cfg.Recorder == nil {
		return v
	}
	now := c.cfg.Now()
	for _, s := range c.cfg.Recorder.LiveSessions() {
		sv := liveSessionView{Room: s.Room, Session: s.Session, Started: s.Started, Duration: now.Sub(s.Started), Ending: s.Ending}
		for _, p := range s.Participants {
			pv := liveParticipantView{Name: p.Name, Publish: p.Publish}
			tracks := append([]LiveTrack(nil), p.Tracks...)
			sort.SliceStable(tracks, func(i, j int) bool { return tracks[i].Kind > tracks[j].Kind }) // video, then audio
			for _, t := range tracks {
				tv := liveTrackView{ID: t.ID, Lane: t.Lane, Kind: t.Kind, Codec: t.Codec, Bitrate: -1}
				if t.Width > 0 && t.Height > 0 {
					tv.Resolution = fmt.Sprintf("%d×%d", t.Width, t.Height)
				}
				if k := t.Counters; k != nil {
					tv.Counted = true
					tv.Packets, tv.Lost = k.Packets, k.Lost
					if k.Packets+k.Lost > 0 {
						tv.LossPercent = 100 * float64(k.Lost) / float64(k.Packets+k.Lost)
					}
					tv.Bitrate = c.rates.rate(s.Room+"/"+s.Session+"/"+t.ID, now, k.Bytes)
					if !k.LastPacket.IsZero() {
						tv.SinceLast = max(0, now.Sub(k.LastPacket))
						switch {
						case tv.SinceLast >= stalledAfter:
							tv.Health = "stalled"
						case tv.SinceLast >= lateAfter:
							tv.Health = "late"
						default:
							tv.Health = "ok"
						}
					}
				}
				pv.Tracks = append(pv.Tracks, tv)
				v.Tracks++
			}
			sv.Participants = append(sv.Participants, pv)
		}
		v.Sessions = append(v.Sessions, sv)
	}
	c.rates.prune(now)
	return v
}

func (c *Console) handleLive(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "live", "Live", c.liveView(r))
}

// handleLiveFragment is what the Live page's script polls every second.
func (c *Console) handleLiveFragment(w http.ResponseWriter, r *http.Request) {
	c.renderFragment(w, r, "live", "sessions", c.liveView(r))
}

// handleEnd ends a live session: the form names the session it showed, so a new session of the
// same room is never ended by an old page.
func (c *Console) handleEnd(w http.ResponseWriter, r *http.Request) {
	room, session := r.PathValue("room"), r.PostFormValue("session")
	if !validName(room) || !validName(session) {
		c.fail(w, r, http.StatusBadRequest, "Bad room or session name.")
		return
	}
	if c.cfg.Recorder == nil {
		c.fail(w, r, http.StatusNotFound, "This console has no recorder.")
		return
	}
	found := false
	for _, s := range c.cfg.Recorder.LiveSessions() {
		if s.Room == room && s.Session == session && !s.Ending {
			found = true
		}
	}
	if !found {
		c.fail(w, r, http.StatusConflict, fmt.Sprintf("Session %s/%s is not being recorded any more.", room, session))
		return
	}
	if err := c.cfg.Recorder.StopSession(room); err != nil {
		if errors.Is(err, ErrNoSession) {
			c.fail(w, r, http.StatusConflict, fmt.Sprintf("Session %s/%s is not being recorded any more.", room, session))
			return
		}
		c.log.Error("console: end session", "room", room, "session", session, "err", err)
		c.fail(w, r, http.StatusInternalServerError, "The session could not be ended: "+err.Error())
		return
	}
	c.log.Info("session ended from the console", "room", room, "session", session, "client", clientAddr(r))
	if accessOf(r.Context()).bearer {
		writeJSON(w, http.StatusAccepted, map[string]string{"room": room, "session": session, "status": "stopping"})
		return
	}
	http.Redirect(w, r, "/?ended="+room, http.StatusSeeOther)
}

// rateTracker turns the cumulative byte counts of live tracks into bit rates: it keeps each track's
// samples of the last few seconds, taken whenever the Live page is shown or polled.
type rateTracker struct {
	mu     sync.Mutex
	tracks map[string]*trackSamples
}

type trackSamples struct {
	at    []time.Time
	bytes []int64
}

// Rate window: the rate is measured over the samples of the last rateWindow, once they span at
// least rateMinSpan.
const (
	rateWindow  = 3 * time.Second
	rateMinSpan = 500 * time.Millisecond
	rateForget  = 2 * time.Minute
)

func newRateTracker() *rateTracker { return &rateTracker{tracks: map[string]*trackSamples{}} }

// rate records a sample and returns the bit rate over the window, or -1 before it can tell.
func (t *rateTracker) rate(key string, now time.Time, bytes int64) float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.tracks[key]
	if s == nil {
		s = &trackSamples{}
		t.tracks[key] = s
	}
	if n := len(s.at); n > 0 && bytes < s.bytes[n-1] { // a new track under the same ID
		s.at, s.bytes = s.at[:0], s.bytes[:0]
	}
	s.at, s.bytes = append(s.at, now), append(s.bytes, bytes)
	// Keep one sample older than the window, so a slow poll still has a span.
	i := 0
	for i+1 < len(s.at) && now.Sub(s.at[i+1]) >= rateWindow {
		i++
	}
	s.at, s.bytes = s.at[i:], s.bytes[i:]
	span := now.Sub(s.at[0])
	if span < rateMinSpan {
		return -1
	}
	return float64(bytes-s.bytes[0]) * 8 / span.Seconds()
}

// prune forgets tracks not seen for a while.
func (t *rateTracker) prune(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, s := range t.tracks {
		if now.Sub(s.at[len(s.at)-1]) > rateForget {
			delete(t.tracks, k)
		}
	}
}
