package capture

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Rooms decides which recorder of a cluster records each room (Config.Rooms).
// The recorder asks it before it takes a publish, and tells it when it stops
// recording a room. Package cluster implements it (cmd wires it in); capture
// knows nothing of how. Without it (nil) a recorder records every room it is
// asked for, each session in a folder of its own.
type Rooms interface {
	// Claim is asked for every publish of a room, before anything of the
	// publish is set up: may this recorder record the room, and as which
	// session? A room another recorder records, or that should go to a less
	// loaded one, is answered with RoomClaim.Elsewhere. placedHere says that
	// another recorder sent the publish here for its load: it is not sent on
	// for load again. An error means the room's ownership cannot be
	// confirmed now (the publish gets 503 with a Retry-After).
	Claim(ctx context.Context, room string, placedHere bool) (RoomClaim, error)
	// Locate returns the base URL of the recorder that records the room, ""
	// when it is this one or none: where a PATCH or DELETE of a publish this
	// recorder does not have belongs.
	Locate(ctx context.Context, room string) (string, error)
	// Release says the recorder stopped recording its part of the session,
	// and how (see RoomRelease).
	Release(ctx context.Context, room, session string, how RoomRelease)
}

// RoomRelease says how a recorder stopped recording a room (Rooms.Release).
type RoomRelease int

const (
	// ReleaseEnded: the session is over (its last publisher left, or an
	// operator stopped it); the room's next publish starts a new session.
	ReleaseEnded RoomRelease = iota
	// ReleaseHandover: the call may go on elsewhere (this recorder is
	// shutting down, or another one took the room): the next recorder
	// continues the same session as its next part.
	ReleaseHandover
	// ReleaseUnused: the claim was granted but nothing was recorded under it
	// (the publish was refused after all); it is given back.
	ReleaseUnused
)

// RoomClaim is what Rooms.Claim answers.
type RoomClaim struct {
	// Elsewhere, if set, is the base URL (scheme://host[:port]) of the
	// recorder that records the room, or that should: the request is answered
	// from there (Config.Elsewhere).
	Elsewhere string
	// Placed: Elsewhere is where a room nobody records should go for its
	// load (not its recorder). The request sent there says so (PlacedParam).
	Placed bool
	// Session is the session to record the room as; a session another
	// recorder started continues under its ID.
	Session string
	// Part is this recorder's part of the session: 1 for the recorder that
	// started it, then 2, 3, ... for the ones that continued it.
	Part int
	// Node names this recorder, for the journal.
	Node string
}

// ErrRoomMoved ends the publishes of a room whose claim this recorder lost
// to another recorder (LoseRoom): their clients reconnect, and are sent there.
var ErrRoomMoved = errors.New("the room is recorded by another recorder now")

// errRoomEnding refuses, for a moment, a publish of a room whose session is
// being finalized while the cluster still names it: the next try starts the
// room's next session.
var errRoomEnding = errors.New("the room's session is ending; try again in a second")

// NewSessionID returns a new session ID for a session starting at t:
// "20261123T163700Z-1a2b3c" (UTC start, random suffix), so that IDs sort by time.
func NewSessionID(t time.Time) string {
	return t.UTC().Format("20060102T150405Z") + "-" + newID(3)
}

// unclaim gives back a claim under which no session was started. Called
// without r.mu held.
func (r *Recorder) unclaim(room string, claim RoomClaim) {
	if r.cfg.Rooms == nil || claim.Part == 0 {
		return
	}
	r.mu.Lock()
	s := r.rooms[room]
	used := s != nil && s.id == claim.Session
	r.mu.Unlock()
	if !used {
		ctx, cancel := context.WithTimeout(r.hookCtx, 5*time.Second)
		defer cancel()
		r.cfg.Rooms.Release(ctx, room, claim.Session, ReleaseUnused)
	}
}

// preAdmit checks, before a room is claimed, the limits admit checks again
// when the publish is set up, so that a claim is rarely granted for a
// publish that is then refused.
func (r *Recorder) preAdmit(room string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errClosing
	}
	return r.admit(room)
}

// PlacedParam is the query parameter a recorder adds to a publish it sends
// to another one for its load (RoomClaim.Placed): the receiver records the
// room rather than send it on, whatever its own load.
const PlacedParam = "tapedeck-placed"

// claimRoom asks Config.Rooms about a publish of room (without Rooms: record
// here, as a new session).
func (r *Recorder) claimRoom(ctx context.Context, room string, req *http.Request) (RoomClaim, error) {
	if r.cfg.Rooms == nil {
		return RoomClaim{}, nil
	}
	c, err := r.cfg.Rooms.Claim(ctx, room, req.URL.Query().Get(PlacedParam) != "")
	if err != nil {
		return RoomClaim{}, fmt.Errorf("capture: claim room %s: %w", room, err)
	}
	return c, nil
}

// elsewhere answers a request for a room another recorder records (or, with
// placed, that should record it): with Config.Elsewhere, else a 307 to the
// same path and query there (RFC 9725, 4.5: the client sends the request
// again, with its token, to the Location). body is what was read of the
// request's body (nil: nothing was).
func (r *Recorder) elsewhere(w http.ResponseWriter, req *http.Request, owner string, placed bool, body []byte) {
	r.count.elsewhere.Add(1)
	if placed {
		u := *req.URL
		q := u.Query()
		q.Set(PlacedParam, "1")
		u.RawQuery = q.Encode()
		req = req.Clone(req.Context())
		req.URL = &u
	}
	if r.cfg.Elsewhere != nil {
		r.cfg.Elsewhere(w, req, owner, body)
		return
	}
	w.Header().Set("Location", owner+req.URL.RequestURI())
	w.WriteHeader(http.StatusTemporaryRedirect)
}

// locateElsewhere answers a PATCH or DELETE of a publish this recorder does
// not have, when Config.Rooms says another recorder records its room; it
// returns false (nothing answered) otherwise.
func (r *Recorder) locateElsewhere(w http.ResponseWriter, req *http.Request, room string) bool {
	if r.cfg.Rooms == nil {
		return false
	}
	owner, err := r.cfg.Rooms.Locate(req.Context(), room)
	if err != nil {
		r.log.Warn("locating the recorder of a room failed", "room", room, "err", err)
		return false
	}
	if owner == "" {
		return false
	}
	r.elsewhere(w, req, owner, false, nil)
	return true
}

// sessionDir returns the folder of a new session (or part of one) of room:
// DataDir/{room}/{session}, or, for a part of a session this recorder
// already holds a folder of (it recorded an earlier part), {session}.p{part}.
func (r *Recorder) sessionDir(room, id string, part int) (string, error) {
	dir := filepath.Join(r.cfg.DataDir, room, id)
	if part == 0 {
		return dir, nil
	}
	if _, err := os.Stat(dir); err == nil {
		dir = filepath.Join(r.cfg.DataDir, room, fmt.Sprintf("%s.p%d", id, part))
		if _, err := os.Stat(dir); err == nil {
			return "", fmt.Errorf("capture: part %d of session %s/%s: its folder %s exists already", part, room, id, dir)
		}
	}
	return dir, nil
}

// trackID names the seq-th track of a session: "t1", "t2", ... and in part
// n > 1 of a session "p{n}t1", ..., so that the tracks (and their files) of
// every part of a session have names of their own.
func trackID(part, seq int) string {
	if part > 1 {
		return fmt.Sprintf("p%dt%d", part, seq)
	}
	return fmt.Sprintf("t%d", seq)
}

// LoseRoom ends the room's session on this recorder because another
// recorder records the room now (its claim could not be renewed and another
// took it): its publishes end with ErrRoomMoved, so that their clients
// reconnect and are sent to the new recorder, and the session is finalized as
// this recorder's part. It does nothing when the room's session is not
// session (already ended, or a later one).
func (r *Recorder) LoseRoom(room, session string) {
	if err := r.stopSession(room, session, ErrRoomMoved, true); err == nil {
		r.log.Warn("room lost to another recorder: its publishes are ended and their clients sent there", "room", room, "session", session)
	}
}
