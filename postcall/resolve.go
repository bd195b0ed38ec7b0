package postcall

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/timeline"
)

// ErrNoManifest is returned (wrapped) for a session folder without manifest.json: its recorder
// stopped before the session ended, and `tapedeck recover` rebuilds the manifest from the journal.
var ErrNoManifest = errors.New("no manifest")

// TrackLocation says where one track file of a session folder is.
type TrackLocation struct {
	// Path is the file's path in the manifest, relative to the session folder, slash-separated.
	Path string `json:"path"`
	// OnDisk: the file is in the session folder.
	OnDisk bool `json:"on_disk"`
	// Uploaded lists the ledger's confirmed uploads of the file, one per store, latest first.
	Uploaded []LedgerEntry `json:"uploaded,omitempty"`
}

// LocalSession is a session folder as found on disk: its manifest, and where each track file the
// manifest lists is: on disk, or (by the folder's ledger) in which store under which key.
type LocalSession struct {
	Dir      string
	Manifest *timeline.Manifest
	// Tracks are the manifest's track files, in SegmentPaths order.
	Tracks []TrackLocation
	// ManifestStored lists the stores the ledger records the manifest confirmed in: there the
	// session is complete.
	ManifestStored []string
}

// ID is "{room}/{session}".
func (s *LocalSession) ID() string { return s.Manifest.Room + "/" + s.Manifest.Session }

// Missing returns the track files that are not on disk.
func (s *LocalSession) Missing() []TrackLocation {
	var out []TrackLocation
	for _, t := range s.Tracks {
		if !t.OnDisk {
			out = append(out, t)
		}
	}
	return out
}

// LocateSession reads a session folder (or its manifest.json): the manifest, and for every track
// file it lists whether it is on disk and where the ledger says it was uploaded. It reads no store.
// A folder without a manifest is an error wrapping ErrNoManifest that says to run `tapedeck
// recover`.
func LocateSession(path string) (*LocalSession, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("session folder: %w", err)
	}
	dir := path
	if !fi.IsDir() {
		dir = filepath.Dir(path)
	}
	f, err := os.Open(filepath.Join(dir, capture.ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		if _, jerr := os.Stat(filepath.Join(dir, capture.JournalName)); jerr == nil {
			return nil, fmt.Errorf("session folder %s: %w (%s): its recorder stopped before the session ended; "+
				"run `tapedeck recover %s` to rebuild it from %s and the track files (`tapedeck serve` does it at its next start)",
				dir, ErrNoManifest, capture.ManifestName, dir, capture.JournalName)
		}
		return nil, fmt.Errorf("%s is not a session folder: it has neither %s nor %s: %w",
			dir, capture.ManifestName, capture.JournalName, ErrNoManifest)
	}
	if err != nil {
		return nil, fmt.Errorf("session folder %s: %w", dir, err)
	}
	m, err := timeline.ParseManifest(f)
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("session folder %s: %w", dir, err)
	}
	ledger, err := ledgerByStore(dir)
	if err != nil {
		return nil, err
	}
	s := &LocalSession{Dir: dir, Manifest: m}
	for _, rel := range SegmentPaths(m) {
		if err := storage.ValidateKey(rel); err != nil {
			return nil, fmt.Errorf("session folder %s: manifest: track path: %w", dir, err)
		}
		t := TrackLocation{Path: rel, Uploaded: ledger[rel]}
		if fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel))); err == nil && fi.Mode().IsRegular() {
			t.OnDisk = true
		}
		s.Tracks = append(s.Tracks, t)
	}
	for _, e := range ledger[capture.ManifestName] {
		s.ManifestStored = append(s.ManifestStored, e.Store)
	}
	return s, nil
}

// ledgerByStore reads a session folder's ledger: for each path, the last confirmed upload to each
// store, latest first. A missing ledger is empty; a torn line is skipped.
func ledgerByStore(dir string) (map[string][]LedgerEntry, error) {
	f, err := os.Open(filepath.Join(dir, LedgerName))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]LedgerEntry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("postcall: read ledger: %w", err)
	}
	defer func() { _ = f.Close() }()
	type pathStore struct{ path, store string }
	last := map[pathStore]int{}
	var entries []LedgerEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e LedgerEntry
		if len(bytes.TrimSpace(sc.Bytes())) == 0 || json.Unmarshal(sc.Bytes(), &e) != nil || e.Path == "" {
			continue
		}
		last[pathStore{e.Path, e.Store}] = len(entries)
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("postcall: read ledger: %w", err)
	}
	out := map[string][]LedgerEntry{}
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if last[pathStore{e.Path, e.Store}] == i {
			out[e.Path] = append(out[e.Path], e)
		}
	}
	return out, nil
}

// ResolveOptions say where ResolveSession may fetch the track files that are not on disk.
type ResolveOptions struct {
	// StoreURL is a store the user named (--store), tried first for every missing file ("" for
	// none). The key is the layout's: {room}/{session}/{path}.
	StoreURL string
	// Open opens a store by URL: StoreURL, and the stores the ledger names. Nil: nothing is fetched,
	// and missing files are an error that says where they are.
	Open func(ctx context.Context, url string) (storage.Client, error)
	// TempDir is where the folder of a session with fetched files is made ("": os.TempDir()).
	TempDir string
	// Command is what a user runs again with --store URL to fetch the files, for error messages
	// ("tapedeck render recordings/standup/S"); "" is "the same command".
	Command string
	Log     *slog.Logger
}

// FetchedFile is a track file ResolveSession fetched from a store.
type FetchedFile struct {
	Path   string `json:"path"`
	Store  string `json:"store"`
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ResolvedSession is a session ready to read from disk.
type ResolvedSession struct {
	// Source is the session folder as found.
	Source *LocalSession
	// Dir holds manifest.json and every track file at the manifest's paths: the session folder itself
	// when every track is on disk, else a temporary folder (removed by Close) with links to the
	// files on disk and the fetched ones.
	Dir string
	// Fetched lists the track files fetched from storage.
	Fetched []FetchedFile
	tmp     string
}

// Close removes the temporary folder of fetched files, if any.
func (r *ResolvedSession) Close() error {
	if r.tmp == "" {
		return nil
	}
	if err := os.RemoveAll(r.tmp); err != nil {
		return fmt.Errorf("postcall: remove %s: %w", r.tmp, err)
	}
	r.tmp = ""
	return nil
}

// MissingTrack is a track file that is neither on disk nor fetched, and why.
type MissingTrack struct {
	TrackLocation
	Reason string
}

// MissingTracksError is returned by ResolveSession when track files are neither on disk nor could
// be fetched. Its message names each file, the store and key the ledger says it went to, why it was
// not fetched, and the command that fetches it.
type MissingTracksError struct {
	Session *LocalSession
	Files   []MissingTrack
	// StoreErrors says, by URL, why a store could not be opened.
	StoreErrors map[string]string
	// Command and StoreURL are ResolveOptions'.
	Command, StoreURL string
}

func (e *MissingTracksError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "session folder %s: %d of %d track files are not on disk and were not fetched:",
		e.Session.Dir, len(e.Files), len(e.Session.Tracks))
	stores := map[string]bool{}
	for i, f := range e.Files {
		for _, u := range f.Uploaded {
			stores[u.Store] = true
		}
		if i == maxListed {
			fmt.Fprintf(&b, "\n  … and %d more", len(e.Files)-maxListed)
			continue
		}
		if i > maxListed {
			continue
		}
		fmt.Fprintf(&b, "\n  %s: %s", f.Path, where(f.TrackLocation))
		if f.Reason != "" {
			fmt.Fprintf(&b, "; %s", f.Reason)
		}
	}
	urls := make([]string, 0, len(e.StoreErrors))
	for u := range e.StoreErrors {
		urls = append(urls, u)
	}
	slices.Sort(urls)
	for _, u := range urls {
		fmt.Fprintf(&b, "\n%s could not be opened: %s", u, e.StoreErrors[u])
	}
	b.WriteString("\n")
	b.WriteString(fetchHint(e.Session, e.Command, stores, e.StoreURL))
	return b.String()
}

// maxListed bounds the files a message lists one by one.
const maxListed = 20

// where says where the ledger says a track file went.
func where(t TrackLocation) string {
	if t.OnDisk {
		return "on disk"
	}
	if len(t.Uploaded) == 0 {
		return "not on disk, and the ledger (" + LedgerName + ") records no upload of it"
	}
	var parts []string
	for _, u := range t.Uploaded {
		parts = append(parts, fmt.Sprintf("stored in %s as %s (%d bytes, SHA-256 %s)", u.Store, u.Key, u.Size, u.SHA256))
	}
	return strings.Join(parts, ", and ")
}

// fetchHint says which command and flag fetch the missing files of s from stores.
func fetchHint(s *LocalSession, command string, stores map[string]bool, tried string) string {
	if command == "" {
		command = "the same command"
	}
	var urls []string
	for u := range stores {
		urls = append(urls, u)
	}
	if len(urls) == 0 {
		if tried != "" {
			return fmt.Sprintf("no record says where they went, and %s does not hold them: they are lost unless another store has them (%s --store URL)",
				tried, command)
		}
		return fmt.Sprintf("no record says where they went: if a store holds the session, `%s --store URL` fetches them from it", command)
	}
	slices.Sort(urls)
	var b strings.Builder
	for i, u := range urls {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "fetch them with `%s --store %s`", command, u)
		if strings.HasPrefix(u, "s3://") {
			b.WriteString(" (with the S3 settings serve had: --s3-endpoint for an S3-compatible server, --s3-region, " +
				"--s3-path-style, and the store's AWS credentials)")
		}
		for _, m := range s.ManifestStored {
			if m == u {
				fmt.Fprintf(&b, "; the session is complete there: `tapedeck download %s --store %s --tracks` downloads it", s.ID(), u)
				break
			}
		}
	}
	return b.String()
}

// WriteWhere writes, for a person, where the track files that are not on disk went and which
// command fetches them (nothing when every track file is on disk). command is what fetches them
// with --store URL ("tapedeck render DIR").
func (s *LocalSession) WriteWhere(w io.Writer, command string) error {
	missing := s.Missing()
	if len(missing) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "track files: %d of %d not on disk\n", len(missing), len(s.Tracks))
	stores := map[string]bool{}
	for i, t := range missing {
		for _, u := range t.Uploaded {
			stores[u.Store] = true
		}
		if i >= maxListed {
			continue
		}
		fmt.Fprintf(&b, "  %s: %s\n", t.Path, where(t))
	}
	if len(missing) > maxListed {
		fmt.Fprintf(&b, "  … and %d more\n", len(missing)-maxListed)
	}
	b.WriteString(fetchHint(s, command, stores, ""))
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// ResolveSession reads a session folder (or its manifest.json) so that every track file is on
// disk: the folder itself when it holds them all; otherwise a temporary folder with the manifest,
// links to the files on disk, and each missing file fetched from opts.StoreURL or else from the
// stores the ledger names, checked against the store's SHA-256 and the one the ledger recorded. A
// file that cannot be fetched makes a *MissingTracksError; a folder without a manifest an error
// wrapping ErrNoManifest. The caller closes the result.
func ResolveSession(ctx context.Context, path string, opts ResolveOptions) (*ResolvedSession, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	s, err := LocateSession(path)
	if err != nil {
		return nil, err
	}
	missing := s.Missing()
	if len(missing) == 0 {
		return &ResolvedSession{Source: s, Dir: s.Dir}, nil
	}
	tmp, err := os.MkdirTemp(opts.TempDir, "tapedeck-session-")
	if err != nil {
		return nil, fmt.Errorf("postcall: %w", err)
	}
	r := &ResolvedSession{Source: s, Dir: filepath.Join(tmp, s.Manifest.Room, s.Manifest.Session), tmp: tmp}
	fail := func(err error) (*ResolvedSession, error) {
		_ = r.Close()
		return nil, err
	}
	if err := r.link(s); err != nil {
		return fail(err)
	}
	stores := storeCache{open: opts.Open, clients: map[string]storage.Client{}, errs: map[string]error{}}
	var lost []MissingTrack
	for _, t := range missing {
		f, ok, reason := fetchTrack(ctx, &stores, s, t, opts.StoreURL, filepath.Join(r.Dir, filepath.FromSlash(t.Path)))
		if ctx.Err() != nil {
			return fail(fmt.Errorf("postcall: fetch %s: %w", t.Path, ctx.Err()))
		}
		if !ok {
			lost = append(lost, MissingTrack{TrackLocation: t, Reason: reason})
			continue
		}
		opts.Log.Info("track file fetched from storage", "path", f.Path, "store", f.Store, "key", f.Key, "bytes", f.Size)
		r.Fetched = append(r.Fetched, f)
	}
	if len(lost) > 0 {
		e := &MissingTracksError{Session: s, Files: lost, StoreErrors: map[string]string{}, Command: opts.Command, StoreURL: opts.StoreURL}
		for u, err := range stores.errs {
			e.StoreErrors[u] = err.Error()
		}
		return fail(e)
	}
	return r, nil
}

// link fills the temporary folder with the manifest (a copy), the journal and the track files on
// disk (links).
func (r *ResolvedSession) link(s *LocalSession) error {
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return fmt.Errorf("postcall: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(s.Dir, capture.ManifestName))
	if err != nil {
		return fmt.Errorf("postcall: %w", err)
	}
	if err := os.WriteFile(filepath.Join(r.Dir, capture.ManifestName), b, 0o644); err != nil {
		return fmt.Errorf("postcall: %w", err)
	}
	abs, err := filepath.Abs(s.Dir)
	if err != nil {
		return fmt.Errorf("postcall: %w", err)
	}
	rels := []string{}
	if _, err := os.Stat(filepath.Join(abs, capture.JournalName)); err == nil {
		rels = append(rels, capture.JournalName)
	}
	for _, t := range s.Tracks {
		if t.OnDisk {
			rels = append(rels, t.Path)
		}
	}
	for _, rel := range rels {
		dst := filepath.Join(r.Dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("postcall: %w", err)
		}
		if err := os.Symlink(filepath.Join(abs, filepath.FromSlash(rel)), dst); err != nil {
			return fmt.Errorf("postcall: link %s: %w", rel, err)
		}
	}
	return nil
}

// storeCache opens each store once and remembers its error.
type storeCache struct {
	open    func(ctx context.Context, url string) (storage.Client, error)
	clients map[string]storage.Client
	errs    map[string]error
}

func (c *storeCache) get(ctx context.Context, u string) (storage.Client, error) {
	if cl, ok := c.clients[u]; ok {
		return cl, nil
	}
	if err, ok := c.errs[u]; ok {
		return nil, err
	}
	cl, err := c.open1(ctx, u)
	if err != nil {
		c.errs[u] = err
		return nil, err
	}
	c.clients[u] = cl
	return cl, nil
}

func (c *storeCache) open1(ctx context.Context, u string) (storage.Client, error) {
	if c.open == nil {
		return nil, errors.New("this command does not fetch from storage")
	}
	// A local store is a folder that must exist: opening one creates it, which would hide a moved
	// or mistyped folder.
	folder := ""
	switch {
	case strings.HasPrefix(u, "file://"):
		pu, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("bad store URL %q: %w", u, err)
		}
		folder = pu.Path
	case !strings.Contains(u, "://"):
		folder = u
	}
	if folder != "" {
		if fi, err := os.Stat(folder); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("the store folder %s does not exist here", folder)
		}
	}
	return c.open(ctx, u)
}

// fetchTrack fetches one missing track file into dst: from storeURL first, then from each store the
// ledger names. It returns what it fetched, or why it could not (stores that cannot be opened are
// not repeated for every file: the cache keeps their errors).
func fetchTrack(ctx context.Context, stores *storeCache, s *LocalSession, t TrackLocation, storeURL, dst string) (FetchedFile, bool, string) {
	type candidate struct{ url, key, sha string }
	var cands []candidate
	anySum := ""
	if len(t.Uploaded) > 0 {
		anySum = t.Uploaded[0].SHA256
	}
	if storeURL != "" {
		c := candidate{url: storeURL, key: storage.SessionPrefix(s.Manifest.Room, s.Manifest.Session) + t.Path, sha: anySum}
		for _, u := range t.Uploaded {
			if u.Store == storeURL {
				c.key, c.sha = u.Key, u.SHA256
			}
		}
		cands = append(cands, c)
	}
	for _, u := range t.Uploaded {
		if u.Store != storeURL {
			cands = append(cands, candidate{url: u.Store, key: u.Key, sha: u.SHA256})
		}
	}
	if len(cands) == 0 {
		return FetchedFile{}, false, "no --store was given to look in"
	}
	var reasons []string
	for _, c := range cands {
		store, err := stores.get(ctx, c.url)
		if err != nil {
			continue // said once for the store, not for every file
		}
		sf, err := Download(ctx, store, c.key, dst, nil)
		if errors.Is(err, storage.ErrNotFound) {
			reasons = append(reasons, fmt.Sprintf("%s has no %s", c.url, c.key))
			continue
		}
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("fetching it from %s failed: %v", c.url, err))
			continue
		}
		if c.sha != "" && sf.SHA256 != c.sha {
			_ = os.Remove(dst)
			reasons = append(reasons, fmt.Sprintf("%s holds other bytes under %s (SHA-256 %s, the upload recorded %s)",
				c.url, c.key, sf.SHA256, c.sha))
			continue
		}
		return FetchedFile{Path: t.Path, Store: c.url, Key: c.key, Size: sf.Size, SHA256: sf.SHA256}, true, ""
	}
	return FetchedFile{}, false, strings.Join(reasons, "; ")
}
