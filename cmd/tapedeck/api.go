package main

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/tapedeck/tapedeck/capture"
)

// adminToken is the control API's bearer token, from the environment only
// (a flag would show it in the process list).
func adminToken() string { return os.Getenv("TAPEDECK_ADMIN_TOKEN") }

// controlAPI mounts the operators' JSON API under /api/, behind a bearer
// token of its own ($TAPEDECK_ADMIN_TOKEN). Without one it answers only on
// a loopback listener.
//
//	GET    /api/sessions          sessions being recorded, with publishes and tracks
//	DELETE /api/sessions/{room}   end the room's session now (no grace period)
func controlAPI(mux *http.ServeMux, rec *capture.Recorder, token string, loopback bool, log *slog.Logger) {
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
