package main

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/postcall"
)

// adminToken is the control API's bearer token, from the environment only
// (a flag would show it in the process list).
func adminToken() string { return os.Getenv("TAPEDECK_ADMIN_TOKEN") }

// controlAPI mounts the operators' JSON API under /api/, behind a bearer
// token of its own ($TAPEDECK_ADMIN_TOKEN). Without one it answers only on
// a loopback listener.
//
//	GET    /api/sessions                  sessions being recorded, with publishes and tracks
//	DELETE /api/sessions/{room}           end the room's session now (no grace period)
//	GET    /api/jobs/{room}/{session}     the post-call job's state
//	POST   /api/jobs/{room}/{session}     queue the session's post-call job again (steps already
//	                                      confirmed are not redone)
func controlAPI(mux *http.ServeMux, rec *capture.Recorder, jobs *postcall.Pipeline, dataDir, token string, loopback bool, log *slog.Logger) {
	guard := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if token == "" && !loopback {
				writeJSONError(w, http.StatusForbidden, "the control API needs $TAPEDECK_ADMIN_TOKEN on a non-loopback listener")
				return
			}
			if token != "" {
				got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
				if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) != 1 {
					w.Header().Set("WWW-Authenticate", `Bearer realm="tapedeck-admin"`)
					writeJSONError(w, http.StatusUnauthorized, "missing or wrong admin token")
					return
				}
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /api/sessions", guard(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"sessions": nonNil(rec.Sessions()), "stats": rec.Stats()})
	}))
	mux.HandleFunc("DELETE /api/sessions/{room}", guard(func(w http.ResponseWriter, r *http.Request) {
		room := r.PathValue("room")
		if err := rec.StopSession(room); err != nil {
			if errors.Is(err, capture.ErrNoSession) {
				writeJSONError(w, http.StatusNotFound, err.Error())
				return
			}
			writeJSONError(w, http.StatusInternalServerError, err.Error())
			return
		}
		log.Info("session stopped through the control API", "room", room)
		writeJSON(w, http.StatusAccepted, map[string]string{"room": room, "status": "stopping"})
	}))

	if jobs == nil {
		return
	}
	mux.HandleFunc("GET /api/jobs/{room}/{session}", guard(func(w http.ResponseWriter, r *http.Request) {
		st, err := jobs.State(r.Context(), r.PathValue("room"), r.PathValue("session"))
		if err != nil {
			writeJSONError(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, st)
	}))
	mux.HandleFunc("POST /api/jobs/{room}/{session}", guard(func(w http.ResponseWriter, r *http.Request) {
		room, session := r.PathValue("room"), r.PathValue("session")
		if capture.CheckName("room", room) != nil || !validSession(session) {
			writeJSONError(w, http.StatusBadRequest, "bad room or session name")
			return
		}
		dir := filepath.Join(dataDir, room, session)
		if _, err := os.Stat(filepath.Join(dir, capture.JournalName)); err != nil {
			writeJSONError(w, http.StatusNotFound, "no such session in this recorder's data folder")
			return
		}
		if err := jobs.Enqueue(r.Context(), room, session, dir); err != nil {
			writeJSONError(w, http.StatusInternalServerError, err.Error())
			return
		}
		log.Info("post-call job queued through the control API", "room", room, "session", session)
		writeJSON(w, http.StatusAccepted, map[string]string{"room": room, "session": session, "status": "queued"})
	}))
}

// validSession accepts the session IDs capture makes (and nothing that
// could leave the data folder).
func validSession(s string) bool {
	return capture.CheckName("session", s) == nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
