package postcall

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/tapedeck/tapedeck/storage"
)

// Webhook headers.
const (
	// SignatureHeader carries "sha256=" and the lowercase hex HMAC-SHA256 of the body, keyed with
	// the webhook secret.
	SignatureHeader = "X-Tapedeck-Signature"
	// EventHeader names the event; DeliveryHeader is the event's ID, the same on every retry.
	EventHeader    = "X-Tapedeck-Event"
	DeliveryHeader = "X-Tapedeck-Delivery"
	// EventSessionStored is sent when a session's files and renders are stored.
	EventSessionStored = "session.stored"
)

// Event is the webhook's JSON body. Delivery is at least once: a receiver may see the same ID twice.
type Event struct {
	Event   string `json:"event"`
	ID      string `json:"id"` // "{room}/{session}"
	Room    string `json:"room"`
	Session string `json:"session"`
	// Storage is the store's URL; keys are relative to it.
	Storage  string    `json:"storage"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Manifest EventFile `json:"manifest"`
	// Journal is the session's journal; a session recorded in parts by the
	// nodes of a cluster has one per part instead (Parts).
	Journal EventFile   `json:"journal,omitzero"`
	Parts   []EventPart `json:"parts,omitempty"`
	// Tracks are the raw track files, in the manifest's order.
	Tracks  []EventTrack  `json:"tracks"`
	Renders []EventRender `json:"renders"`
	// Exports are the exports for editors (stems and timelines), stored under exports/{name}/.
	Exports []EventRender `json:"exports"`
	// LinksExpire is when the URLs stop working (local folders' file:// URLs do not expire).
	LinksExpire time.Time `json:"links_expire"`
	Sent        time.Time `json:"sent"`
}

// EventFile is one stored file: its key, size, SHA-256 and a time-limited download URL.
type EventFile struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	URL    string `json:"url"`
}

// EventTrack is one raw track file.
type EventTrack struct {
	EventFile
	Participant string `json:"participant"`
	Kind        string `json:"kind"` // audio or video
	Lane        string `json:"lane"`
	Track       string `json:"track"`
	Segment     int    `json:"segment"`
}

// EventRender is one render's files, or why it was skipped.
type EventRender struct {
	Name    string      `json:"name"`
	Profile string      `json:"profile,omitempty"`
	Files   []EventFile `json:"files,omitempty"`
	Skipped string      `json:"skipped,omitempty"`
}

// Sign returns the signature header's value for body: "sha256=" + hex(HMAC-SHA256(secret, body)).
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature reports whether header is body's signature with secret, in constant time.
func VerifySignature(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(header), []byte(Sign(secret, body)))
}

func checkWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("postcall: webhook URL %q: want http://host/path or https://host/path", raw)
	}
	return nil
}

// httpDoer sends HTTP requests.
type httpDoer interface {
	Do(*http.Request) (*http.Response, error)
}

func defaultHTTPClient() httpDoer { return &http.Client{Timeout: 30 * time.Second} }

// notify builds the session's event and POSTs it to the job's webhook, retrying with backoff.
func (p *Pipeline) notify(ctx context.Context, j Job, st State, log *slog.Logger) error {
	ev, err := p.event(ctx, j, st)
	if err != nil {
		return err
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("postcall: encode webhook: %w", err)
	}
	delay := time.Second
	var last error
	for attempt := 1; attempt <= p.cfg.WebhookAttempts; attempt++ {
		if last = p.post(ctx, j.Webhook, ev.ID, body); last == nil {
			log.Info("webhook delivered", "url", redact(j.Webhook), "try", attempt)
			return nil
		}
		if attempt == p.cfg.WebhookAttempts {
			break
		}
		log.Warn("webhook failed, retrying", "url", redact(j.Webhook), "try", attempt, "in", delay, "err", last)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return fmt.Errorf("postcall: webhook: %w", ctx.Err())
		}
		delay = min(2*delay, 30*time.Second)
	}
	return fmt.Errorf("postcall: webhook %s failed %d times: %w", redact(j.Webhook), p.cfg.WebhookAttempts, last)
}

// post sends one webhook request; a 2xx answer is success.
func (p *Pipeline) post(ctx context.Context, target, id string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tapedeck")
	req.Header.Set(EventHeader, EventSessionStored)
	req.Header.Set(DeliveryHeader, id)
	if p.cfg.WebhookSecret != "" {
		req.Header.Set(SignatureHeader, Sign([]byte(p.cfg.WebhookSecret), body))
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(excerpt)))
	}
	return nil
}

// event describes a stored session, with download links.
func (p *Pipeline) event(ctx context.Context, j Job, st State) (Event, error) {
	m, err := ReadManifest(ctx, p.store, j.Room, j.Session)
	if err != nil {
		return Event{}, err
	}
	now := time.Now().UTC()
	ev := Event{
		Event: EventSessionStored, ID: j.ID(), Room: j.Room, Session: j.Session, Storage: p.store.String(),
		Start: time.Unix(0, m.StartUnixNS).UTC(), End: time.Unix(0, m.EndUnixNS).UTC(),
		LinksExpire: now.Add(p.cfg.LinkTTL), Sent: now,
		Tracks: []EventTrack{}, Renders: []EventRender{}, Exports: []EventRender{},
	}
	file := func(key string) (EventFile, error) {
		obj, err := p.store.Stat(ctx, key)
		if err != nil {
			return EventFile{}, fmt.Errorf("postcall: webhook: %w", err)
		}
		link, err := p.store.Link(ctx, key, p.cfg.LinkTTL)
		if err != nil {
			return EventFile{}, fmt.Errorf("postcall: webhook: %w", err)
		}
		return EventFile{Key: key, Size: obj.Size, SHA256: obj.SHA256, URL: link}, nil
	}
	if ev.Manifest, err = file(storage.ManifestKey(j.Room, j.Session)); err != nil {
		return Event{}, err
	}
	if len(m.Parts) > 0 {
		if ev.Parts, err = eventParts(j, m, file); err != nil {
			return Event{}, err
		}
	} else if ev.Journal, err = file(storage.JournalKey(j.Room, j.Session)); err != nil {
		return Event{}, err
	}
	for _, l := range m.Lanes {
		for _, t := range l.Tracks {
			for _, s := range t.Segments {
				f, err := file(storage.SessionPrefix(j.Room, j.Session) + s.Path)
				if err != nil {
					return Event{}, err
				}
				ev.Tracks = append(ev.Tracks, EventTrack{EventFile: f, Participant: l.Participant, Kind: string(l.Kind),
					Lane: l.ID, Track: t.ID, Segment: s.Index})
			}
		}
	}
	profiles := map[string]string{}
	for _, s := range j.Renders {
		profiles[s.Name] = s.Profile
	}
	names := make([]string, 0, len(st.Renders))
	for name := range st.Renders {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		r := st.Renders[name]
		er := EventRender{Name: name, Profile: profiles[name], Skipped: r.Skipped}
		for _, sf := range r.Files {
			f, err := file(sf.Key)
			if err != nil {
				return Event{}, err
			}
			er.Files = append(er.Files, f)
		}
		if r.Export {
			ev.Exports = append(ev.Exports, er)
			continue
		}
		ev.Renders = append(ev.Renders, er)
	}
	return ev, nil
}

// redact drops the user information and query of a URL for logs.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(bad URL)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}
