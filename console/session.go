package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/timeline"
)

// ErrNotFound is what Config.Local returns (wrapped) for a session the data folder does not hold.
var ErrNotFound = errors.New("no such session")

// sessionData is what a session's manifest gives the page: the summary and its picture.
type sessionData struct {
	Manifest   *timeline.Manifest
	Summary    *timeline.Summary
	SVG        []byte
	SVGW, SVGH int
}

var svgSize = regexp.MustCompile(`<svg [^>]*width="(\d+)" height="(\d+)"`)

func newSessionData(m *timeline.Manifest) (*sessionData, error) {
	sy, err := timeline.NewSync(m)
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	sum, err := timeline.Summarize(m, sy)
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	var b bytes.Buffer
	if err := sum.WriteSVG(&b); err != nil {
		return nil, fmt.Errorf("timeline picture: %w", err)
	}
	d := &sessionData{Manifest: m, Summary: sum, SVG: b.Bytes(), SVGW: 1200, SVGH: 400}
	if g := svgSize.FindSubmatch(d.SVG); g != nil {
		d.SVGW, _ = strconv.Atoi(string(g[1]))
		d.SVGH, _ = strconv.Atoi(string(g[2]))
	}
	return d, nil
}

// loadSession lists a session's stored objects and reads its manifest: from the store (cached by
// the manifest object's size and time) or, for a session not stored yet, from the recorder's data
// folder. A session in neither is ErrNotFound.
func (c *Console) loadSession(ctx context.Context, ref sessionRef) (*sessionData, []storage.ObjectInfo, bool, error) {
	objs, err := c.cfg.Store.List(ctx, storage.SessionPrefix(ref.room, ref.session))
	if err != nil {
		return nil, nil, false, fmt.Errorf("list the session's files: %w", err)
	}
	mkey := storage.ManifestKey(ref.room, ref.session)
	for _, o := range objs {
		if o.Key != mkey {
			continue
		}
		ck := fmt.Sprintf("%s|%d|%d", o.Key, o.Size, o.ModTime.UnixNano())
		if d, ok := c.details.get(ck); ok {
			return d, objs, true, nil
		}
		m, err := postcall.ReadManifest(ctx, c.cfg.Store, ref.room, ref.session)
		if err != nil {
			return nil, nil, false, err
		}
		d, err := newSessionData(m)
		if err != nil {
			return nil, nil, false, fmt.Errorf("%s/%s: %w", ref.room, ref.session, err)
		}
		c.details.put(ck, d)
		return d, objs, true, nil
	}
	if c.cfg.Local == nil {
		return nil, objs, false, ErrNotFound
	}
	m, err := c.cfg.Local(ctx, ref.room, ref.session)
	if err != nil {
		return nil, objs, false, err
	}
	d, err := newSessionData(m)
	if err != nil {
		return nil, nil, false, fmt.Errorf("%s/%s: %w", ref.room, ref.session, err)
	}
	return d, objs, false, nil
}

type sessionView struct {
	Room, Session string
	Start, End    time.Time
	Duration      time.Duration
	Stored        bool
	Data          *sessionData
	Clocks        int
	Composites    []compositeView
	Tracks        []fileGroup
	Files         []fileView // manifest, journal
	Exports       []fileView
	Job           *jobView
	Form          rerenderForm
	Queued        string
}

type compositeView struct {
	Name   string
	Player *fileView
	Audio  bool
	Files  []fileView
}

type fileGroup struct {
	Name  string
	Files []fileView
}

type fileView struct {
	Name     string // shown
	Rel      string // relative to the session's prefix
	Size     int64
	URL      string // to play or open
	Download string // to save
	Type     string
}

// fileURL is the console's URL of a session's object.
func fileURL(ref sessionRef, rel string) string {
	segs := strings.Split(rel, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/sessions/" + ref.room + "/" + ref.session + "/files/" + strings.Join(segs, "/")
}

// contentType names the media type of a stored file from its name.
func contentType(rel string) string {
	base := path.Base(rel)
	switch path.Ext(base) {
	case ".webm":
		if strings.HasPrefix(base, "audio") {
			return "audio/webm"
		}
		return "video/webm"
	case ".mkv":
		return "video/x-matroska"
	case ".mp4":
		return "video/mp4"
	case ".m4a":
		return "audio/mp4"
	case ".m3u8":
		return "application/vnd.apple.mpegurl"
	case ".ts":
		return "video/mp2t"
	case ".json", ".otio":
		return "application/json"
	case ".jsonl":
		return "application/x-ndjson"
	case ".xml", ".fcpxml":
		return "application/xml"
	case ".srt", ".vtt", ".edl":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

func (c *Console) handleSession(w http.ResponseWriter, r *http.Request) {
	room, session, err := roomSession(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "Bad room or session name.")
		return
	}
	v, media, status, msg := c.sessionView(r.Context(), sessionRef{room, session})
	if v == nil {
		c.fail(w, r, status, msg)
		return
	}
	if q := r.URL.Query().Get("queued"); validName(q) {
		v.Queued = q
	}
	v.Form = c.defaultForm(v)
	c.render(w, r, http.StatusOK, "session", room+"/"+session, v, media...)
}

// sessionView builds the Session page; on failure it returns nil with the status and message.
func (c *Console) sessionView(ctx context.Context, ref sessionRef) (*sessionView, []string, int, string) {
	d, objs, stored, err := c.loadSession(ctx, ref)
	switch {
	case errors.Is(err, ErrNotFound) || errors.Is(err, postcall.ErrNotComplete):
		return nil, nil, http.StatusNotFound, fmt.Sprintf("Session %s/%s is neither in the store nor in this recorder's data folder.", ref.room, ref.session)
	case err != nil:
		c.log.Error("console: read session", "room", ref.room, "session", ref.session, "err", err)
		return nil, nil, http.StatusBadGateway, "The session could not be read: " + err.Error()
	}
	m := d.Manifest
	v := &sessionView{Room: ref.room, Session: ref.session, Stored: stored, Data: d,
		Start: time.Unix(0, m.StartUnixNS).UTC(), End: time.Unix(0, m.EndUnixNS).UTC()}
	v.Duration = time.Duration(d.Summary.DurationS * float64(time.Second))
	for _, p := range d.Summary.Participants {
		v.Clocks += len(p.Clocks)
	}
	media := map[string]bool{}
	prefix := storage.SessionPrefix(ref.room, ref.session)
	groups := map[string]*fileGroup{}
	renders := map[string]*compositeView{}
	for _, o := range objs {
		rel := strings.TrimPrefix(o.Key, prefix)
		f := fileView{Name: rel, Rel: rel, Size: o.Size, URL: fileURL(ref, rel), Type: contentType(rel)}
		f.Download = f.URL + "?download=1"
		switch {
		case strings.HasPrefix(rel, "tracks/"):
			who, name, ok := strings.Cut(strings.TrimPrefix(rel, "tracks/"), "/")
			if !ok {
				continue
			}
			g := groups[who]
			if g == nil {
				g = &fileGroup{Name: who}
				groups[who] = g
			}
			f.Name = name
			g.Files = append(g.Files, f)
		case strings.HasPrefix(rel, "renders/"):
			name, file, ok := strings.Cut(strings.TrimPrefix(rel, "renders/"), "/")
			if !ok {
				continue
			}
			cv := renders[name]
			if cv == nil {
				cv = &compositeView{Name: name}
				renders[name] = cv
			}
			f.Name = file
			cv.Files = append(cv.Files, f)
		case strings.HasPrefix(rel, "exports/"):
			f.Name = strings.TrimPrefix(rel, "exports/")
			v.Exports = append(v.Exports, f)
		case rel == "manifest.json" || rel == "journal.jsonl":
			v.Files = append(v.Files, f)
		}
	}
	// Participants in the manifest's order, then any other folder.
	for _, p := range m.Participants {
		if g := groups[p.ID]; g != nil {
			v.Tracks = append(v.Tracks, *g)
			delete(groups, p.ID)
		}
	}
	rest := make([]string, 0, len(groups))
	for k := range groups {
		rest = append(rest, k)
	}
	sort.Strings(rest)
	for _, k := range rest {
		v.Tracks = append(v.Tracks, *groups[k])
	}
	names := make([]string, 0, len(renders))
	for n := range renders {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		cv := renders[n]
		for i := range cv.Files {
			f := &cv.Files[i]
			if cv.Player != nil || !(strings.HasPrefix(f.Type, "video/mp4") || strings.HasPrefix(f.Type, "video/webm") || strings.HasPrefix(f.Type, "audio/mp4")) {
				continue
			}
			p := *f
			// An S3 store plays from a presigned link; a local folder through the console (with Range).
			if link, err := c.cfg.Store.Link(ctx, prefix+f.Rel, c.cfg.LinkTTL); err == nil && (strings.HasPrefix(link, "https://") || strings.HasPrefix(link, "http://")) {
				if u, err := url.Parse(link); err == nil {
					p.URL = link
					media[u.Scheme+"://"+u.Host] = true
				}
			}
			cv.Player = &p
			cv.Audio = strings.HasPrefix(f.Type, "audio/")
		}
		v.Composites = append(v.Composites, *cv)
	}
	if c.cfg.Jobs != nil {
		if st, err := c.cfg.Jobs.State(ctx, ref.room, ref.session); err == nil {
			jv := newJobView(st)
			v.Job = &jv
		} else {
			c.log.Warn("console: job state", "room", ref.room, "session", ref.session, "err", err)
		}
	}
	origins := make([]string, 0, len(media))
	for o := range media {
		origins = append(origins, o)
	}
	sort.Strings(origins)
	return v, origins, http.StatusOK, ""
}

func (c *Console) handleSVG(w http.ResponseWriter, r *http.Request) {
	room, session, err := roomSession(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "Bad room or session name.")
		return
	}
	d, _, _, err := c.loadSession(r.Context(), sessionRef{room, session})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, postcall.ErrNotComplete) {
			c.fail(w, r, http.StatusNotFound, "No such session.")
			return
		}
		c.fail(w, r, http.StatusBadGateway, "The session could not be read: "+err.Error())
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "image/svg+xml")
	// The picture carries its own <style>; it has no script and may run none.
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	hd.Set("Cache-Control", "private, no-cache")
	_, _ = w.Write(d.SVG)
}

// handleJobFragment is the job panel the Session page's script polls while the job runs.
func (c *Console) handleJobFragment(w http.ResponseWriter, r *http.Request) {
	room, session, err := roomSession(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "Bad room or session name.")
		return
	}
	v := &sessionView{Room: room, Session: session}
	if c.cfg.Jobs != nil {
		st, err := c.cfg.Jobs.State(r.Context(), room, session)
		if err != nil {
			c.fail(w, r, http.StatusBadGateway, "The job's state could not be read: "+err.Error())
			return
		}
		jv := newJobView(st)
		v.Job = &jv
	}
	if q := r.URL.Query().Get("queued"); validName(q) {
		v.Queued = q
	}
	c.renderFragment(w, r, "session", "job", v)
}

// handleFile serves one of a session's objects: from a local folder with Range (seeking) through
// http.ServeContent, from S3 by a redirect to a presigned link.
func (c *Console) handleFile(w http.ResponseWriter, r *http.Request) {
	room, session, err := roomSession(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "Bad room or session name.")
		return
	}
	rel := r.PathValue("path")
	key := storage.SessionPrefix(room, session) + rel
	if storage.ValidateKey(key) != nil || storage.ValidateKey(rel) != nil {
		c.fail(w, r, http.StatusBadRequest, "Bad file name.")
		return
	}
	ctx := r.Context()
	download := r.URL.Query().Get("download") != ""
	if link, err := c.cfg.Store.Link(ctx, key, c.cfg.LinkTTL); err == nil && (strings.HasPrefix(link, "https://") || strings.HasPrefix(link, "http://")) {
		http.Redirect(w, r, link, http.StatusFound)
		return
	}
	rc, err := c.cfg.Store.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		c.fail(w, r, http.StatusNotFound, "No such file.")
		return
	}
	if err != nil {
		c.log.Error("console: read file", "key", key, "err", err)
		c.fail(w, r, http.StatusBadGateway, "The file could not be read: "+err.Error())
		return
	}
	defer func() { _ = rc.Close() }()
	typ := contentType(rel)
	hd := w.Header()
	hd.Set("Content-Type", typ)
	hd.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	hd.Set("Cache-Control", "private, no-cache")
	disp := "attachment"
	if !download && (strings.HasPrefix(typ, "video/") || strings.HasPrefix(typ, "audio/")) {
		disp = "inline"
	}
	name := rel
	for _, p := range []string{"tracks/", "renders/", "exports/"} {
		name = strings.TrimPrefix(name, p)
	}
	name = room + "-" + session + "-" + strings.ReplaceAll(name, "/", "-")
	hd.Set("Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": name}))
	var mod time.Time
	var size int64 = -1
	if st, ok := rc.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if fi, err := st.Stat(); err == nil {
			mod, size = fi.ModTime(), fi.Size()
		}
	}
	// Large files outlast the server's write timeout: give each response time for its size at
	// a slow 256 kB/s, at least 5 minutes.
	if size >= 0 {
		d := 5*time.Minute + time.Duration(size/(256<<10))*time.Second
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
	}
	if rs, ok := rc.(io.ReadSeeker); ok {
		http.ServeContent(w, r, "", mod, rs)
		return
	}
	if size >= 0 {
		hd.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	_, _ = io.Copy(w, rc)
}
