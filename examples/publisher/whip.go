package publisher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// maxAnswerBytes bounds the SDP answer read from the server.
const maxAnswerBytes = 256 << 10

// whipAnswer is what a 201 to the WHIP POST says.
type whipAnswer struct {
	sdp      string
	location *url.URL // the session, absolute
	etag     string   // the ICE session's entity-tag, for PATCH
	links    []string // Link header values (ICE servers)
	// redirects counts the 307/308 redirects the POST followed.
	redirects int
}

// maxRedirects bounds the 307/308 redirects followed for one request.
const maxRedirects = 5

// newHTTPClient returns the client of WHIP requests: it follows no redirect
// itself (do does, with the token).
func newHTTPClient() *http.Client {
	return &http.Client{Timeout: httpTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// do sends a WHIP request and follows 307 and 308 redirects (RFC 9725, 4.5:
// a recorder may send a publish to another one), sending the body and the
// bearer token again to each Location. Go's client would drop the
// Authorization header on a redirect to another host, as browsers do across
// origins; WHIP clients (OBS, GStreamer's whipclientsink) send it again, and
// so does this one. It returns the answer and the URL that gave it, against
// which a relative Location in the answer resolves; redirects counts the
// hops.
func do(ctx context.Context, client *http.Client, method string, u *url.URL, token string, body []byte, header http.Header) (resp *http.Response, final *url.URL, redirects int, err error) {
	for {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
		if err != nil {
			return nil, nil, redirects, fmt.Errorf("publisher: WHIP %s %s: %w", method, u.Redacted(), err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, redirects, fmt.Errorf("publisher: WHIP %s %s: %w", method, u.Redacted(), err)
		}
		if resp.StatusCode != http.StatusTemporaryRedirect && resp.StatusCode != http.StatusPermanentRedirect {
			return resp, u, redirects, nil
		}
		loc := resp.Header.Get("Location")
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		next, err := url.Parse(loc)
		if loc == "" || err != nil {
			return nil, nil, redirects, fmt.Errorf("publisher: WHIP %s %s: %s with Location %q", method, u.Redacted(), resp.Status, loc)
		}
		if redirects++; redirects > maxRedirects {
			return nil, nil, redirects, fmt.Errorf("publisher: WHIP %s %s: more than %d redirects", method, u.Redacted(), maxRedirects)
		}
		u = u.ResolveReference(next)
	}
}

// whipPost sends the offer and returns the answer, the absolute URL of the
// session (the Location header, resolved against the URL that answered,
// after redirects), its ETag and its Link headers.
func whipPost(ctx context.Context, client *http.Client, endpoint *url.URL, token, offer string) (whipAnswer, error) {
	hdr := http.Header{"Content-Type": {"application/sdp"}, "Accept": {"application/sdp"}}
	resp, final, redirects, err := do(ctx, client, http.MethodPost, endpoint, token, []byte(offer), hdr)
	if err != nil {
		return whipAnswer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return whipAnswer{}, fmt.Errorf("publisher: WHIP POST %s: reading the answer: %w", final.Redacted(), err)
	}
	if resp.StatusCode != http.StatusCreated {
		return whipAnswer{}, fmt.Errorf("publisher: WHIP POST %s: %w", final.Redacted(),
			&StatusError{Code: resp.StatusCode, Status: resp.Status, Body: excerpt(body), RetryAfter: resp.Header.Get("Retry-After")})
	}
	if len(body) > maxAnswerBytes {
		return whipAnswer{}, fmt.Errorf("publisher: WHIP POST %s: answer longer than %d bytes", final.Redacted(), maxAnswerBytes)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/sdp" {
			return whipAnswer{}, fmt.Errorf("publisher: WHIP POST %s: answer has Content-Type %q, want application/sdp", final.Redacted(), ct)
		}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return whipAnswer{}, fmt.Errorf("publisher: WHIP POST %s: 201 with an empty answer", final.Redacted())
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return whipAnswer{}, fmt.Errorf("publisher: WHIP POST %s: 201 without a Location header", final.Redacted())
	}
	rel, err := url.Parse(loc)
	if err != nil {
		return whipAnswer{}, fmt.Errorf("publisher: WHIP POST %s: bad Location %q: %w", final.Redacted(), loc, err)
	}
	return whipAnswer{sdp: string(body), location: final.ResolveReference(rel), etag: resp.Header.Get("ETag"),
		links: resp.Header.Values("Link"), redirects: redirects}, nil
}

// whipDelete ends the session.
func whipDelete(ctx context.Context, client *http.Client, location *url.URL, token string) error {
	resp, _, _, err := do(ctx, client, http.MethodDelete, location, token, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("publisher: WHIP DELETE %s: %s: %s", location.Redacted(), resp.Status, excerpt(body))
	}
	return nil
}

// excerpt is the start of an HTTP body, for an error message.
func excerpt(body []byte) string {
	const n = 300
	s := strings.TrimSpace(string(body))
	if s == "" {
		return "(empty body)"
	}
	if len(s) > n {
		cut := n
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// StatusError is a WHIP POST answered with something else than 201 Created.
type StatusError struct {
	Code       int    // the HTTP status code
	Status     string // e.g. "409 Conflict"
	Body       string // the start of the body, quoted
	RetryAfter string // the Retry-After header, if any
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s, want 201 Created: %s", e.Status, e.Body)
}

var errNotConnected = errors.New("publisher: the peer connection did not connect")
