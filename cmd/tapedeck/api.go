package main

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
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
//	GET    /api/jobs?limit=N              job states, newest change first
//	POST   /api/jobs/{room}/{session}/renders   re-render a stored session with other edits, layout
//	                                      or profile: {"renders":[{"name","profile","layout","edits"}]}
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
		queue := jobs.Enqueue
		if st, err := jobs.State(r.Context(), room, session); err == nil && !st.Failed.IsZero() && st.Uploaded.IsZero() {
			// Failed before the session was stored: run its first stage again.
			queue = jobs.RetryStore
		}
		if err := queue(r.Context(), room, session, dir); err != nil {
			writeJSONError(w, http.StatusInternalServerError, err.Error())
			return
		}
		log.Info("post-call job queued through the control API", "room", room, "session", session)
		writeJSON(w, http.StatusAccepted, map[string]string{"room": room, "session": session, "status": "queued"})
	}))
	mux.HandleFunc("GET /api/jobs", guard(func(w http.ResponseWriter, r *http.Request) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		states, err := jobs.States(r.Context(), limit)
		if err != nil {
			writeJSONError(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"jobs": nonNil(states)})
	}))
	mux.HandleFunc("POST /api/jobs/{room}/{session}/renders", guard(func(w http.ResponseWriter, r *http.Request) {
		room, session := r.PathValue("room"), r.PathValue("session")
		if capture.CheckName("room", room) != nil || !validSession(session) {
			writeJSONError(w, http.StatusBadRequest, "bad room or session name")
			return
		}
		var req struct {
			Renders []postcall.RenderSpec `json:"renders"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSONError(w, http.StatusBadRequest, "body: "+err.Error())
			return
		}
		if err := checkRenderSpecs(req.Renders); err != nil {
			writeJSONError(w, http.StatusBadRequest, err.Error())
			return
		}
		if err := jobs.Rerender(r.Context(), room, session, req.Renders); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, postcall.ErrNotStored) {
				code = http.StatusConflict
			}
			writeJSONError(w, code, err.Error())
			return
		}
		log.Info("re-render queued through the control API", "room", room, "session", session, "renders", len(req.Renders))
		writeJSON(w, http.StatusAccepted, map[string]any{"room": room, "session": session, "status": "queued", "renders": len(req.Renders)})
	}))
}

// checkRenderSpecs rejects what a render would only fail on later: an
// unknown profile or layout, edits that do not parse (the error names the
// line and field).
func checkRenderSpecs(specs []postcall.RenderSpec) error {
	if len(specs) == 0 {
		return errors.New(`no render asked: {"renders":[{"name":"alt","profile":"mp4-1080p"}]}`)
	}
	seen := map[string]bool{}
	for _, sp := range specs {
		if err := capture.CheckName("render name", sp.Name); err != nil || seen[sp.Name] {
			return fmt.Errorf("render name %q: want 1–64 letters, digits, '_', '-', '.', each name once", sp.Name)
		}
		seen[sp.Name] = true
		if err := sp.Check(); err != nil {
			return err
		}
		if sp.Profile != "" {
			if _, err := render.ParseProfile(sp.Profile); err != nil {
				return fmt.Errorf("render %q: %w", sp.Name, err)
			}
		}
		switch timeline.LayoutType(sp.Layout) {
		case "", timeline.LayoutGrid, timeline.LayoutSpeaker, timeline.LayoutPiP, timeline.LayoutSingle:
		default:
			return fmt.Errorf("render %q: layout %q: want grid, speaker, pip or single", sp.Name, sp.Layout)
		}
		if sp.Edits != "" {
			name := sp.EditsFile
			if name == "" {
				name = sp.Name + " edits"
			}
			if _, err := timeline.ParseEdits(name, strings.NewReader(sp.Edits)); err != nil {
				return fmt.Errorf("render %q: %w", sp.Name, err)
			}
		}
	}
	return nil
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
