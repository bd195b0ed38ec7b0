package capture

import (
	"net/http"
	"slices"
	"strings"
)

// CORS of the WHIP routes (RFC 9725, 4.2: WHIP endpoints support OPTIONS for
// CORS), so that a page on another origin can publish from a browser.
const (
	corsMethods = "POST, PATCH, DELETE, OPTIONS"
	// ETag is allowed as a request header too: some clients written to the
	// WHIP drafts send the entity-tag in it instead of If-Match.
	corsHeaders = "Authorization, Content-Type, If-Match, ETag"
	// What a page may read of an answer; Access-Control-Allow-Methods is
	// there because clients read it from an OPTIONS answer to learn that
	// PATCH (trickle ICE) is supported.
	corsExpose = "Location, Link, ETag, Accept-Post, Accept-Patch, Access-Control-Allow-Methods"
	// corsMaxAge is how long a browser may keep a preflight (Chromium caps
	// it at two hours).
	corsMaxAge = "7200"
)

// corsOrigin returns the Access-Control-Allow-Origin value for a request's
// Origin, or "" when that origin may not publish.
func (r *Recorder) corsOrigin(origin string) string {
	if origin == "" || len(r.cfg.CORSOrigins) == 0 {
		return ""
	}
	if slices.Contains(r.cfg.CORSOrigins, "*") {
		return "*"
	}
	for _, o := range r.cfg.CORSOrigins {
		if strings.EqualFold(strings.TrimRight(o, "/"), origin) {
			return origin
		}
	}
	return ""
}

// cors answers CORS preflights itself (without authentication: a preflight
// carries no credentials, and never creates anything) and adds the CORS
// headers to every other answer of h, errors included, so that a page can
// read a 401 or a 409.
func (r *Recorder) cors(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		origin := req.Header.Get("Origin")
		allow := r.corsOrigin(origin)
		if req.Method == http.MethodOptions && origin != "" && req.Header.Get("Access-Control-Request-Method") != "" {
			if allow == "" {
				http.Error(w, "origin "+origin+" may not publish here (serve --cors-origin)", http.StatusForbidden)
				return
			}
			hd := w.Header()
			hd.Set("Access-Control-Allow-Origin", allow)
			if allow != "*" {
				hd.Add("Vary", "Origin")
			}
			hd.Set("Access-Control-Allow-Methods", corsMethods)
			hd.Set("Access-Control-Allow-Headers", corsHeaders)
			hd.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if allow != "" {
			hd := w.Header()
			hd.Set("Access-Control-Allow-Origin", allow)
			if allow != "*" {
				hd.Add("Vary", "Origin")
			}
			hd.Set("Access-Control-Expose-Headers", corsExpose)
			hd.Set("Access-Control-Allow-Methods", corsMethods)
		}
		h.ServeHTTP(w, req)
	})
}
