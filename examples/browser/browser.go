// Package browser holds a web page that publishes a camera and microphone
// (or generated sync marks: a white flash and a 1 kHz beep at the same
// instant) to tapedeck over WHIP. `tapedeck serve` serves it at /publish/;
// the page also works standalone, opened from disk, with the endpoint field
// set.
package browser

import (
	_ "embed" // the page
	"io"
	"net/http"
)

//go:embed index.html
var page string

// Handler serves the publish page.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src *; media-src * blob:")
		_, _ = io.WriteString(w, page)
	})
}
