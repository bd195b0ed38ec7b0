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
}

// whipPost sends the offer and returns the answer, the absolute URL of the
// session (the Location header, resolved against the endpoint), its ETag and
// its Link headers.
func whipPost(ctx context.Context, client *http.Client, endpoint *url.URL, token, offer string) (whipAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint.String(), strings.NewReader(offer))
	if err != nil {
		return whipAnswer{}, fmt.Errorf("publisher: WHIP POST %s: %w", endpoint.Redacted(), err)
	}
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Accept", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return whipAnswer{}, fmt.Errorf("publisher: WHIP POST: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return whipAnswer{}, fmt.Errorf("publisher: WHIP POST %s: reading the answer: %w", endpoint.Redacted(), err)
	}
	if resp.StatusCode != http.StatusCreated {
		return whipAnswer{}, fmt.Errorf("publisher: WHIP POST %s: %w", endpoint.Redacted(),
			&StatusError{Code: resp.StatusCode, Status: resp.Status, Body: excerpt(body), RetryAfter: resp.Header.Get("Retry-After")})
	}
	if len(body) > maxAnswerBytes {
		return whipAnswer{}, fmt.Errorf("publisher: WHIP POST %s: answer longer than %d bytes", endpoint.Redacted(), maxAnswerBytes)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/sdp" {
			return whipAnswer{}, fmt.Errorf("publisher: WHIP POST %s: answer has Content-Type %q, want application/sdp", endpoint.Redacted(), ct)
		}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return whipAnswer{}, fmt.Errorf("publisher: WHIP POST %s: 201 with an empty answer", endpoint.Redacted())
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return whipAnswer{}, fmt.Errorf("publisher: WHIP POST %s: 201 without a Location header", endpoint.Redacted())
	}
	rel, err := url.Parse(loc)
	if err != nil {
		return whipAnswer{}, fmt.Errorf("publisher: WHIP POST %s: bad Location %q: %w", endpoint.Redacted(), loc, err)
	}
	return whipAnswer{sdp: string(body), location: endpoint.ResolveReference(rel), etag: resp.Header.Get("ETag"),
		links: resp.Header.Values("Link")}, nil
}

// whipDelete ends the session.
func whipDelete(ctx context.Context, client *http.Client, location *url.URL, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, location.String(), nil)
	if err != nil {
		return fmt.Errorf("publisher: WHIP DELETE %s: %w", location.Redacted(), err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("publisher: WHIP DELETE: %w", err)
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
