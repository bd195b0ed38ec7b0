package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/storage"
)

// The Sessions list reads names only: the Catalog's rooms and session IDs (a directory listing of
// each room, or a delimited S3 listing), sorted newest first by the time in the session ID, then the
// page's 50 sessions in detail: one List of each session's prefix (files, sizes, renders,
// participants from tracks/{participant}/) and the first fields of its manifest (start and end) —
// never every object of the store.

// sessionRef names a stored session.
type sessionRef struct{ room, session string }

// listedBefore orders the list: newest session first (session IDs start with their UTC start
// time), then by room.
func listedBefore(a, b sessionRef) bool {
	if a.session != b.session {
		return a.session > b.session
	}
	return a.room < b.room
}

func parseRef(s string) (sessionRef, bool) {
	room, session, ok := strings.Cut(s, "/")
	if !ok || !validName(room) || !validName(session) {
		return sessionRef{}, false
	}
	return sessionRef{room, session}, true
}

// sessionStart reads the start time at the front of a session ID ("20261123T163700Z-1a2b3c").
func sessionStart(id string) time.Time {
	if len(id) < 16 {
		return time.Time{}
	}
	t, err := time.Parse("20060102T150405Z", id[:16])
	if err != nil {
		return time.Time{}
	}
	return t
}

type sessionsView struct {
	Rooms        []string
	Room, Date   string
	Rows         []sessionRow
	Total        int
	From, To     int
	Newer, Older string
	First        string
	Jobs         bool
}

type sessionRow struct {
	Room, Session string
	Start         time.Time
	Head          sessionHead
	Job           *jobView
	Err           string
}

// sessionHead sums up a stored session from its listing and its manifest's first fields.
type sessionHead struct {
	Files        int
	Bytes        int64
	Complete     bool // the manifest is stored
	Participants []string
	Renders      []string
	Exports      bool
	Duration     time.Duration // 0: unknown
}

func (c *Console) handleSessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v := sessionsView{Room: q.Get("room"), Date: q.Get("date"), Jobs: c.cfg.Jobs != nil}
	if v.Room != "" && !validName(v.Room) {
		c.fail(w, r, http.StatusBadRequest, "Bad room name.")
		return
	}
	prefix := ""
	if v.Date != "" {
		d, err := time.Parse("2006-01-02", v.Date)
		if err != nil {
			c.fail(w, r, http.StatusBadRequest, "Bad date: want YYYY-MM-DD.")
			return
		}
		prefix = d.Format("20060102")
	}
	ctx := r.Context()
	rooms, err := c.cfg.Catalog.Rooms(ctx)
	if err != nil {
		c.log.Error("console: list rooms", "err", err)
		c.fail(w, r, http.StatusBadGateway, "The store could not be listed: "+err.Error())
		return
	}
	v.Rooms = rooms
	list := rooms
	if v.Room != "" {
		list = []string{v.Room}
	}
	var refs []sessionRef
	for _, room := range list {
		ids, err := c.cfg.Catalog.Sessions(ctx, room, prefix)
		if err != nil {
			c.log.Error("console: list sessions", "room", room, "err", err)
			c.fail(w, r, http.StatusBadGateway, "The store could not be listed: "+err.Error())
			return
		}
		for _, id := range ids {
			refs = append(refs, sessionRef{room, id})
		}
	}
	sort.Slice(refs, func(i, j int) bool { return listedBefore(refs[i], refs[j]) })
	v.Total = len(refs)

	size := c.cfg.PageSize
	start, end := 0, min(size, len(refs))
	if cur, ok := parseRef(q.Get("before")); ok {
		start = sort.Search(len(refs), func(i int) bool { return listedBefore(cur, refs[i]) })
		end = min(start+size, len(refs))
	} else if cur, ok := parseRef(q.Get("after")); ok {
		end = sort.Search(len(refs), func(i int) bool { return !listedBefore(refs[i], cur) })
		start = max(0, end-size)
		if start == 0 {
			end = min(size, len(refs))
		}
	}
	page := refs[start:end]
	v.From, v.To = start+1, end
	link := func(k, ref string) string {
		u := url.Values{}
		if v.Room != "" {
			u.Set("room", v.Room)
		}
		if v.Date != "" {
			u.Set("date", v.Date)
		}
		if k != "" {
			u.Set(k, ref)
		}
		if len(u) == 0 {
			return "/sessions"
		}
		return "/sessions?" + u.Encode()
	}
	if start > 0 {
		v.Newer = link("after", page[0].room+"/"+page[0].session)
		v.First = link("", "")
	}
	if end < len(refs) {
		v.Older = link("before", page[len(page)-1].room+"/"+page[len(page)-1].session)
	}
	v.Rows = c.rows(ctx, page)
	c.render(w, r, http.StatusOK, "sessions", "Sessions", v)
}

// rowWorkers bounds the sessions of a page read at once (an S3 store answers each in a round trip).
const rowWorkers = 8

// rows reads the page's sessions, a few at once.
func (c *Console) rows(ctx context.Context, page []sessionRef) []sessionRow {
	rows := make([]sessionRow, len(page))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(rowWorkers, len(page)) {
		wg.Go(func() {
			for i := range next {
				ref := page[i]
				row := sessionRow{Room: ref.room, Session: ref.session, Start: sessionStart(ref.session)}
				head, err := c.head(ctx, ref)
				if err != nil {
					row.Err = err.Error()
				}
				row.Head = head
				if c.cfg.Jobs != nil {
					if st, err := c.cfg.Jobs.State(ctx, ref.room, ref.session); err == nil {
						jv := newJobView(st)
						row.Job = &jv
					}
				}
				rows[i] = row
			}
		})
	}
	for i := range page {
		next <- i
	}
	close(next)
	wg.Wait()
	return rows
}

// head lists one session's objects and reads its manifest's start and end (cached by the
// manifest's size and time).
func (c *Console) head(ctx context.Context, ref sessionRef) (sessionHead, error) {
	prefix := storage.SessionPrefix(ref.room, ref.session)
	objs, err := c.cfg.Store.List(ctx, prefix)
	if err != nil {
		return sessionHead{}, fmt.Errorf("list %s: %w", prefix, err)
	}
	var h sessionHead
	var manifest storage.ObjectInfo
	seen := map[string]bool{}
	for _, o := range objs {
		rel := strings.TrimPrefix(o.Key, prefix)
		h.Files++
		h.Bytes += o.Size
		switch {
		case rel == "manifest.json":
			h.Complete, manifest = true, o
		case strings.HasPrefix(rel, "tracks/"):
			if p, _, ok := strings.Cut(strings.TrimPrefix(rel, "tracks/"), "/"); ok && !seen["p/"+p] {
				seen["p/"+p] = true
				h.Participants = append(h.Participants, p)
			}
		case strings.HasPrefix(rel, "renders/"):
			if name, _, ok := strings.Cut(strings.TrimPrefix(rel, "renders/"), "/"); ok && !seen["r/"+name] {
				seen["r/"+name] = true
				h.Renders = append(h.Renders, name)
			}
		case strings.HasPrefix(rel, "exports/"):
			h.Exports = true
		}
	}
	if !h.Complete {
		return h, nil
	}
	key := fmt.Sprintf("%s|%d|%d", manifest.Key, manifest.Size, manifest.ModTime.UnixNano())
	if d, ok := c.heads.get(key); ok {
		h.Duration = d.Duration
		return h, nil
	}
	start, end, err := manifestSpan(ctx, c.cfg.Store, manifest.Key)
	if err != nil {
		return h, err
	}
	if end > start {
		h.Duration = time.Duration(end - start)
	}
	c.heads.put(key, sessionHead{Duration: h.Duration})
	return h, nil
}

// manifestSpan reads a stored manifest's start_unix_ns and end_unix_ns: only as much of the file as
// comes before them (they are among its first fields), however long the call was.
func manifestSpan(ctx context.Context, store storage.Client, key string) (start, end int64, err error) {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", key, err)
	}
	defer func() { _ = rc.Close() }()
	dec := json.NewDecoder(io.LimitReader(rc, 256<<20))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return 0, 0, fmt.Errorf("read %s: not a JSON object", key)
	}
	var haveStart, haveEnd bool
	for dec.More() && !(haveStart && haveEnd) {
		t, err := dec.Token()
		if err != nil {
			return 0, 0, fmt.Errorf("read %s: %w", key, err)
		}
		name, _ := t.(string)
		switch name {
		case "start_unix_ns":
			err = dec.Decode(&start)
			haveStart = true
		case "end_unix_ns":
			err = dec.Decode(&end)
			haveEnd = true
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("read %s: %w", key, err)
		}
	}
	if !haveStart || !haveEnd {
		return 0, 0, errors.New("manifest without start or end")
	}
	return start, end, nil
}

// jobView is a post-call job's state as the pages show it.
type jobView struct {
	postcall.State
	Status string // "queued", "running", "retrying" (queued after a failed attempt), "waiting", "failed", "done"
	Label  string
	Steps  []jobStep
	// Reason is the error's first line and, for a command that failed, the last line it wrote;
	// Long says the error has more (shown on demand).
	Reason string
	Long   bool
}

// errorReason shortens a job's error: its first line, and the last line of a failed command's
// output ("...: ffmpeg failed: exit status 1 — logo.png: No such file or directory").
func errorReason(e string) (string, bool) {
	e = strings.TrimSpace(e)
	lines := strings.Split(e, "\n")
	reason := lines[0]
	if i := strings.LastIndex(e, "stderr (last lines):"); i >= 0 {
		tail := strings.Split(strings.TrimSpace(e[i+len("stderr (last lines):"):]), "\n")
		if last := strings.TrimSpace(tail[len(tail)-1]); last != "" && last != reason {
			reason += " — " + last
		}
	}
	const max = 300
	if len(reason) > max {
		reason = reason[:max] + "…"
	}
	return reason, len(lines) > 1 || reason != e
}

type jobStep struct {
	Name   string
	Done   bool
	At     time.Time
	Detail string
}

func newJobView(st postcall.State) jobView {
	v := jobView{State: st}
	if st.Error != "" {
		v.Reason, v.Long = errorReason(st.Error)
	}
	switch {
	case !st.Failed.IsZero():
		v.Status, v.Label = "failed", "failed"
	case !st.Done.IsZero():
		v.Status, v.Label = "done", "done"
	case !st.Running.IsZero():
		v.Status, v.Label = "running", runningLabel(st)
	case !st.Queued.IsZero() && st.Error != "":
		v.Status, v.Label = "retrying", fmt.Sprintf("queued to retry (%s)", plural(st.Attempts, "failed attempt", "failed attempts"))
	case !st.Queued.IsZero():
		v.Status, v.Label = "queued", "queued"
		if !st.Uploaded.IsZero() {
			v.Label = "stored, queued to render"
		}
	default:
		// Nothing queued or running: a session of a cluster whose other
		// parts are being recorded (their end queues the merge).
		v.Status, v.Label = "waiting", "waiting for the session's other parts"
	}
	v.Steps = append(v.Steps, jobStep{Name: "tracks, journal and manifest stored", Done: !st.Uploaded.IsZero(), At: st.Uploaded})
	names := make([]string, 0, len(st.Renders))
	for n := range st.Renders {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		res := st.Renders[n]
		detail := plural(len(res.Files), "file", "files")
		if res.Skipped != "" {
			detail = "skipped: " + res.Skipped
		}
		v.Steps = append(v.Steps, jobStep{Name: "render " + n, Done: true, At: res.At, Detail: detail})
	}
	if !st.Notified.IsZero() {
		v.Steps = append(v.Steps, jobStep{Name: "webhook told", Done: true, At: st.Notified})
	}
	return v
}

// runningLabel says which stage of a running job runs where.
func runningLabel(st postcall.State) string {
	what := map[string]string{"store": "storing the tracks", "merge": "merging the parts", "render": "rendering"}[st.Stage]
	if what == "" {
		what = "running"
	}
	if st.Worker != "" {
		what += " on " + st.Worker
	}
	return what
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
