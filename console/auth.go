package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tapedeck/tapedeck/internal/authlimit"
)

// Access rules.
const (
	cookieName = "tapedeck_console"
	sessionTTL = 12 * time.Hour
	csrfField  = "csrf"
	csrfHeader = "X-CSRF-Token"
)

// authenticator checks tokens, cookies and CSRF tokens.
type authenticator struct {
	token    string
	loopback bool
	key      []byte // signs cookies and CSRF tokens; made at start
	now      func() time.Time
	limiter  *authlimit.Limiter
}

func newAuthenticator(token string, loopback bool, now func() time.Time) (*authenticator, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("console: session key: %w", err)
	}
	return &authenticator{token: token, loopback: loopback, key: key, now: now, limiter: &authlimit.Limiter{}}, nil
}

// access is who a request is, once let in.
type access struct {
	sid    string // the cookie's session; "" for a bearer token
	csrf   string // the CSRF token forms must carry
	bearer bool   // authenticated by an Authorization header: no CSRF needed
	token  bool   // an admin token is configured (a logout button makes sense)
}

type accessKey struct{}

func accessOf(ctx context.Context) access {
	a, _ := ctx.Value(accessKey{}).(access)
	return a
}

func (a *authenticator) mac(parts ...string) string {
	m := hmac.New(sha256.New, a.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// newCookie makes a session: "sid.expiry.mac".
func (a *authenticator) newCookie(r *http.Request) (*http.Cookie, string) {
	b := make([]byte, 18)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail (Go 1.24+)
	sid := base64.RawURLEncoding.EncodeToString(b)
	exp := strconv.FormatInt(a.now().Add(sessionTTL).Unix(), 10)
	return &http.Cookie{
		Name: cookieName, Value: sid + "." + exp + "." + a.mac("session", sid, exp), Path: "/",
		MaxAge: int(sessionTTL.Seconds()), HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: isHTTPS(r),
	}, sid
}

// session returns the valid session of a request's cookie.
func (a *authenticator) session(r *http.Request) (string, bool) {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return "", false
	}
	parts := strings.Split(ck.Value, ".")
	if len(parts) != 3 {
		return "", false
	}
	sid, exp, sum := parts[0], parts[1], parts[2]
	if subtle.ConstantTimeCompare([]byte(sum), []byte(a.mac("session", sid, exp))) != 1 {
		return "", false
	}
	t, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || a.now().Unix() >= t {
		return "", false
	}
	return sid, true
}

func (a *authenticator) csrfToken(sid string) string { return a.mac("csrf", sid) }

func (a *authenticator) checkToken(got string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) == 1
}

func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// loopbackHost reports whether a request's Host names the loopback interface.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// contentSecurityPolicy allows the console's own scripts, styles, images and fetches only; media
// may also come from the origins of presigned links (added per page).
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; manifest-src 'self'"

// headers sets the security headers of every console response.
func (c *Console) headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy+"; media-src 'self'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// guard lets in requests with the admin token (Bearer) or a valid session cookie, or, without a
// token, loopback requests; change marks state-changing routes, which also need the CSRF token
// unless authenticated by a Bearer header.
func (c *Console) guard(h http.HandlerFunc, change bool) http.Handler {
	a := c.auth
	return c.headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var acc access
		switch {
		case a.token == "" && !a.loopback:
			c.fail(w, r, http.StatusForbidden, "The console needs $TAPEDECK_ADMIN_TOKEN on a non-loopback listener.")
			return
		case a.token == "":
			// Loopback without a token: refuse other Host names (DNS rebinding), and give the browser
			// a session for its CSRF token.
			if !loopbackHost(r.Host) {
				c.fail(w, r, http.StatusForbidden, "Without $TAPEDECK_ADMIN_TOKEN the console answers only to loopback addresses (open it at http://127.0.0.1:PORT/).")
				return
			}
			sid, ok := a.session(r)
			if !ok {
				if change {
					c.fail(w, r, http.StatusForbidden, "Missing or expired console session: reload the page and try again. Nothing was changed.")
					return
				}
				var ck *http.Cookie
				ck, sid = a.newCookie(r)
				http.SetCookie(w, ck)
			}
			acc = access{sid: sid, csrf: a.csrfToken(sid)}
		default:
			if hdr := r.Header.Get("Authorization"); hdr != "" {
				addr := clientAddr(r)
				if wait, blocked := a.limiter.Blocked(addr, a.now()); blocked {
					w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
					c.fail(w, r, http.StatusTooManyRequests, "Too many wrong tokens from your address: try again later.")
					return
				}
				got, ok := cutBearer(hdr)
				if !ok || !a.checkToken(got) {
					a.limiter.Fail(addr, a.now())
					c.log.Warn("console: wrong admin token", "client", addr) // never the token
					w.Header().Set("WWW-Authenticate", `Bearer realm="tapedeck-admin"`)
					c.fail(w, r, http.StatusUnauthorized, "Missing or wrong admin token.")
					return
				}
				acc = access{bearer: true, token: true}
				break
			}
			sid, ok := a.session(r)
			if !ok {
				if r.Method == http.MethodGet && !isFetch(r) {
					http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
					return
				}
				w.Header().Set("WWW-Authenticate", `Bearer realm="tapedeck-admin"`)
				c.fail(w, r, http.StatusUnauthorized, "Log in first. Nothing was changed.")
				return
			}
			acc = access{sid: sid, csrf: a.csrfToken(sid), token: true}
		}
		if change && !acc.bearer {
			if err := checkCSRF(w, r, acc.csrf); err != "" {
				c.log.Warn("console: request refused", "client", clientAddr(r), "path", r.URL.Path, "reason", err)
				c.fail(w, r, http.StatusForbidden, err+" Nothing was changed.")
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), accessKey{}, acc)))
	}))
}

// checkCSRF returns why a state-changing request with a cookie is refused, or "".
func checkCSRF(w http.ResponseWriter, r *http.Request, want string) string {
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		return "The request came from another site."
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		// Behind a proxy that rewrites Host, the host the browser used is in X-Forwarded-Host.
		if err != nil || !(strings.EqualFold(u.Host, r.Host) || strings.EqualFold(u.Host, r.Header.Get("X-Forwarded-Host"))) {
			return "The request came from another origin."
		}
	}
	got := r.Header.Get(csrfHeader)
	if got == "" {
		// Forms post at most a few MiB (an edit file); the body limit is set by the handlers that read more.
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		got = r.PostFormValue(csrfField)
	}
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return "Missing or wrong CSRF token: reload the page and try again."
	}
	return ""
}

// maxFormBytes bounds a form's body (an edit file is at most a few hundred KiB in practice).
const maxFormBytes = 2 << 20

func cutBearer(h string) (string, bool) {
	const prefix = "Bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

// isFetch reports a request made by the page's script (which wants a status, not a redirect).
func isFetch(r *http.Request) bool {
	return r.Header.Get("X-Requested-With") == "fetch" || r.Header.Get("Sec-Fetch-Dest") == "empty"
}

// safeNext returns a local path to go to after login ("/" for anything else).
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.HasPrefix(next, "/login") || strings.ContainsAny(next, "\r\n") {
		return "/"
	}
	return next
}

type loginView struct {
	Next, Error string
	NoToken     bool
}

func (c *Console) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	if c.auth.token == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", "Log in", loginView{Next: safeNext(r.URL.Query().Get("next"))})
}

func (c *Console) handleLogin(w http.ResponseWriter, r *http.Request) {
	a := c.auth
	if a.token == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	// A page of another site may not post guesses from the operator's browser (they would lock its
	// address out).
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		c.fail(w, r, http.StatusForbidden, "The request came from another site.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	next := safeNext(r.PostFormValue("next"))
	addr := clientAddr(r)
	if wait, blocked := a.limiter.Blocked(addr, a.now()); blocked {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		c.render(w, r, http.StatusTooManyRequests, "login", "Log in", loginView{Next: next,
			Error: fmt.Sprintf("Too many wrong tokens from your address: try again in %d s.", int(wait.Seconds())+1)})
		return
	}
	if !a.checkToken(strings.TrimSpace(r.PostFormValue("token"))) {
		a.limiter.Fail(addr, a.now())
		c.log.Warn("console: wrong admin token at login", "client", addr)
		c.render(w, r, http.StatusUnauthorized, "login", "Log in", loginView{Next: next, Error: "Wrong token."})
		return
	}
	ck, _ := a.newCookie(r)
	http.SetCookie(w, ck)
	c.log.Info("console: logged in", "client", addr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) handleLogout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: isHTTPS(r)})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
