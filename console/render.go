package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// parsePages parses every page template with the layout and the partials.
func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("base").Funcs(templateFuncs()).ParseFS(templateFS, "templates/_*.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if strings.HasPrefix(name, "_") {
			continue
		}
		t, err := base.Clone()
		if err != nil {
			return nil, fmt.Errorf("console: templates: %w", err)
		}
		if _, err := t.ParseFS(templateFS, n); err != nil {
			return nil, fmt.Errorf("console: template %s: %w", n, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// staticFiles returns the static folder and a version string of its contents.
func staticFiles() (fs.FS, string, error) {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, "", fmt.Errorf("console: static files: %w", err)
	}
	h := sha256.New()
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		h.Write([]byte(p))
		h.Write(b)
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("console: static files: %w", err)
	}
	return sub, hex.EncodeToString(h.Sum(nil))[:12], nil
}

// staticHandler serves /static/: long-cached when asked with the current version.
func (c *Console) staticHandler() http.Handler {
	files := http.StripPrefix("/static/", http.FileServerFS(c.static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'")
		if r.URL.Query().Get("v") == c.version {
			hd.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			hd.Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
}

// layout is what every page's frame needs.
type layout struct {
	Title    string
	Nav      string
	CSRF     string
	Logout   bool
	Version  string
	Loopback bool // no token: anyone on this machine
	Data     any
}

// navOf maps a page to its entry in the navigation bar.
func navOf(page string) string {
	switch page {
	case "live":
		return "live"
	case "sessions", "session":
		return "sessions"
	case "jobs":
		return "jobs"
	}
	return ""
}

// render writes a page; media lists origins allowed to serve media on it besides the console's own.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page, title string, data any, media ...string) {
	c.renderTemplate(w, r, status, page, "base", title, data, media...)
}

// renderFragment writes the named block of a page alone (what the page's script polls).
func (c *Console) renderFragment(w http.ResponseWriter, r *http.Request, page, block string, data any) {
	c.renderTemplate(w, r, http.StatusOK, page, block, "", data)
}

func (c *Console) renderTemplate(w http.ResponseWriter, r *http.Request, status int, page, block, title string, data any, media ...string) {
	t := c.pages[page]
	if t == nil {
		c.log.Error("console: no such template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	acc := accessOf(r.Context())
	var buf bytes.Buffer
	err := t.ExecuteTemplate(&buf, block, layout{
		Title: title, Nav: navOf(page), CSRF: acc.csrf, Logout: acc.token && !acc.bearer, Version: c.version,
		Loopback: c.auth.token == "", Data: data,
	})
	if err != nil {
		c.log.Error("console: render page", "page", page, "block", block, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if len(media) > 0 {
		w.Header().Set("Content-Security-Policy", contentSecurityPolicy+"; media-src 'self' "+strings.Join(media, " "))
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type errorView struct {
	Status  int
	Heading string
	Message string
}

// fail answers an error: a page for a browser's navigation, text for scripts.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if isFetch(r) || strings.Contains(r.Header.Get("Accept"), "application/json") || r.Header.Get("Authorization") != "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
		return
	}
	c.render(w, r, status, "error", http.StatusText(status), errorView{Status: status, Heading: http.StatusText(status), Message: msg})
}

// writeJSON answers JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// templateFuncs are the helpers templates call.
func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"clock":    clock,
		"secs":     func(s float64) string { return clock(time.Duration(s * float64(time.Second))) },
		"bytes":    humanBytes,
		"bitrate":  humanBitrate,
		"datetime": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"date":     func(t time.Time) string { return t.UTC().Format("Mon 2 Jan 2006") },
		"hhmm":     func(t time.Time) string { return t.UTC().Format("15:04") },
		"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"ago":      ago,
		"ms":       func(v float64) string { return fmt.Sprintf("%.1f ms", v) },
		"ppm":      func(v float64) string { return fmt.Sprintf("%+.1f ppm", v) },
		"pct":      func(v float64) string { return fmt.Sprintf("%.2f %%", v) },
		"join":     strings.Join,
		"plural": func(n int, one, many string) string {
			if n == 1 {
				return fmt.Sprintf("%d %s", n, one)
			}
			return fmt.Sprintf("%d %s", n, many)
		},
		"add":   func(a, b int) int { return a + b },
		"lower": strings.ToLower,
		"upper": strings.ToUpper,
	}
}

// clock writes a duration as h:mm:ss or m:ss.
func clock(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, exp := float64(n), 0
	for v >= unit && exp < 5 {
		v /= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", v, "kMGTP"[exp-1])
}

func humanBitrate(bps float64) string {
	switch {
	case bps < 0 || math.IsNaN(bps):
		return "—"
	case bps >= 1e6:
		return fmt.Sprintf("%.2f Mb/s", bps/1e6)
	default:
		return fmt.Sprintf("%.0f kb/s", bps/1e3)
	}
}

func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "now"
	case d < 10*time.Second:
		return fmt.Sprintf("%.1f s ago", d.Seconds())
	case d < 2*time.Minute:
		return fmt.Sprintf("%.0f s ago", d.Seconds())
	default:
		return clock(d) + " ago"
	}
}
