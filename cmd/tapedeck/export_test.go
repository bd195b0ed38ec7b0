package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/capture/capturetest"
	"github.com/tapedeck/tapedeck/examples/publisher"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/storage"
)

// recordTwo records a short call of two publishers (bob joining a second
// late) on a recorder made with cfg and returns the session.
func recordTwo(t *testing.T, ctx context.Context, room string, cfg capture.Config) capture.SessionEnded {
	t.Helper()
	ended := make(chan capture.SessionEnded, 1)
	hook := cfg.OnSessionEnd
	cfg.OnSessionEnd = func(ctx context.Context, s capture.SessionEnded) {
		if hook != nil {
			hook(ctx, s)
		}
		ended <- s
	}
	if cfg.Grace == 0 {
		cfg.Grace = time.Second
	}
	srv := capturetest.Start(t, cfg, slog.New(slog.DiscardHandler))
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, name := range []string{"ann", "bob"} {
		pc := publisher.Config{Endpoint: srv.Base + "/whip/" + room, Participant: name, Duration: 3 * time.Second, Video: publisher.VP8,
			Audio: true, Width: 320, Height: 240, Bitrate: 300_000}
		if _, err := publisher.PrepareMedia(ctx, pc, nil); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			time.Sleep(time.Duration(i) * time.Second)
			_, errs[i] = publisher.Run(ctx, pc, nil)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-ended:
		return s
	case <-time.After(30 * time.Second):
		t.Fatal("no session")
	}
	return capture.SessionEnded{}
}

// fileSHA returns a file's SHA-256.
func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// checkExportFolder checks an export folder as an editor gets it: every file
// of its index is there; a WAV and an MP4 per participant; the three
// timelines, each naming every stem by a relative path that exists in the
// folder. It returns the index's files.
func checkExportFolder(t *testing.T, dir, session string, participants ...string) []string {
	t.Helper()
	files, err := render.ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f))); err != nil {
			t.Errorf("the index lists %s: %v", f, err)
		}
	}
	var stems []string
	for _, p := range participants {
		stems = append(stems, p+".wav", p+".mp4")
	}
	for _, want := range append(slices.Clone(stems), session+".otio", session+".fcpxml", session+".xml", render.IndexName) {
		if !slices.Contains(files, want) {
			t.Errorf("the export lacks %s (it holds %v)", want, files)
		}
	}
	refs := map[string]*regexp.Regexp{
		session + ".otio":   regexp.MustCompile(`"target_url":\s*"([^"]*)"`),
		session + ".fcpxml": regexp.MustCompile(`<media-rep [^>]*src="([^"]*)"`),
		session + ".xml":    regexp.MustCompile(`<pathurl>([^<]*)</pathurl>`),
	}
	for name, re := range refs {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		named := map[string]bool{}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			p := m[1]
			if strings.HasPrefix(p, "/") || strings.Contains(p, ":") || strings.Contains(p, "..") {
				t.Errorf("%s: %q is not a path relative to the export folder", name, p)
			}
			if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p))); err != nil {
				t.Errorf("%s names %q: %v", name, p, err)
			}
			named[p] = true
		}
		for _, s := range stems {
			if !named[s] {
				t.Errorf("%s does not name %s", name, s)
			}
		}
	}
	return files
}

// TestExportCommand records a call, then runs `tapedeck export` on the
// session folder (default output folder), into a storage URL, and on the
// stored session (ROOM/SESSION --store); and the refusals: nothing to export,
// an unknown participant in the edits, an output folder with other files.
func TestExportCommand(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	s := recordTwo(t, ctx, "edit", capture.Config{DataDir: t.TempDir()})

	out, err := runCLI(ctx, "export", s.Dir, "--progress", "plain")
	if err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	dir := filepath.Join(s.Dir, "exports", "default")
	checkExportFolder(t, dir, s.Session, "ann", "bob")
	for _, want := range []string{"ann.wav (mono)", "bob.mp4 (320x240)", s.Session + ".fcpxml", "export: 100% done", dir} {
		if !strings.Contains(out, want) {
			t.Errorf("export printed no %q:\n%s", want, out)
		}
	}
	// The folder can be moved: the timelines still find the stems.
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	checkExportFolder(t, moved, s.Session, "ann", "bob")

	// Into a storage URL: every file uploaded, checked by SHA-256.
	storeDir := t.TempDir()
	if out, err := runCLI(ctx, "export", s.Dir, "--progress", "off", "--timeline", "otio", "--out", "file://"+storeDir+"/ed"); err != nil {
		t.Fatalf("export to a storage URL: %v\n%s", err, out)
	}
	for _, f := range []string{"ann.wav", "ann.mp4", "bob.wav", "bob.mp4", s.Session + ".otio", render.IndexName} {
		if _, err := os.Stat(filepath.Join(storeDir, "ed", f)); err != nil {
			t.Errorf("export to a storage URL: %s: %v", f, err)
		}
	}

	// With a rendered composite as the reference.
	if out, err := runCLI(ctx, "render", s.Dir, "--profile", "mp4-360p", "--progress", "off"); err != nil {
		t.Fatalf("render: %v\n%s", err, out)
	}
	withRef := filepath.Join(t.TempDir(), "ref")
	if out, err := runCLI(ctx, "export", s.Dir, "--composite", "default", "--timeline", "fcpxml", "--progress", "off", "-o", withRef); err != nil {
		t.Fatalf("export --composite default: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(withRef, s.Session+".fcpxml")); err != nil || !strings.Contains(string(b), `src="reference/composite.mp4"`) {
		t.Errorf("the FCPXML does not reference reference/composite.mp4 (%v)", err)
	}
	if got, want := fileSHA(t, filepath.Join(withRef, "reference", "composite.mp4")),
		fileSHA(t, filepath.Join(s.Dir, "renders", "default", "mp4-360p.mp4")); got != want {
		t.Errorf("reference/composite.mp4 is not the render (SHA-256 %s, want %s)", got, want)
	}

	// A stored session, by ROOM/SESSION, audio only.
	store := "file://" + t.TempDir()
	if out, err := runCLI(ctx, "upload", s.Dir, "--to", store); err != nil {
		t.Fatalf("upload: %v\n%s", err, out)
	}
	audioOnly := filepath.Join(t.TempDir(), "audio")
	if out, err := runCLI(ctx, "export", "edit/"+s.Session, "--store", store, "--video", "none", "--progress", "off", "-o", audioOnly); err != nil {
		t.Fatalf("export of a stored session: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(audioOnly, "ann.wav")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(audioOnly, "ann.mp4")); err == nil {
		t.Error("--video none wrote ann.mp4")
	}
	if _, err := runCLI(ctx, "export", "edit/"+s.Session, "--store", store, "--progress", "off"); err == nil || !strings.Contains(err.Error(), "needs --out") {
		t.Errorf("export of a stored session without --out: %v, want a usage error", err)
	}

	// Refusals: each a clear error, nothing written.
	var ue *usageErr
	if _, err := runCLI(ctx, "export", s.Dir, "--audio", "none", "--video", "none"); !errors.As(err, &ue) {
		t.Errorf("--audio none --video none: %v, want a usage error", err)
	}
	if _, err := runCLI(ctx, "export", s.Dir, "--fps", "29.97"); !errors.As(err, &ue) {
		t.Errorf("--fps 29.97: %v, want a usage error", err)
	}
	edits := filepath.Join(t.TempDir(), "edits.yaml")
	if err := os.WriteFile(edits, []byte("cuts:\n  - {start: 1, end: 1.5}\nlanes:\n  zoe: {mute: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	if _, err := runCLI(ctx, "export", s.Dir, "--edits", edits, "--out", bad); err == nil || !strings.Contains(err.Error(), `"zoe"`) ||
		!strings.Contains(err.Error(), "edits.yaml:4") {
		t.Errorf("unknown participant in --edits: %v, want an error naming zoe and its line", err)
	}
	if _, err := os.Stat(bad); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after the edit error %s exists (%v)", bad, err)
	}
	busy := t.TempDir()
	if err := os.WriteFile(filepath.Join(busy, "cut-v3.prproj"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(ctx, "export", s.Dir, "--out", busy, "--progress", "off"); !errors.Is(err, render.ErrOutputNotEmpty) ||
		!strings.Contains(err.Error(), "cut-v3.prproj") {
		t.Errorf("export into a folder with other files: %v, want ErrOutputNotEmpty naming the file", err)
	}
	if entries, _ := os.ReadDir(busy); len(entries) != 1 {
		t.Errorf("the folder with other files now holds %d entries", len(entries))
	}
}

// TestPostCallExport runs the post-call pipeline with the real renderer and
// a render configuration that asks for a composite and an export (with the
// composite as reference): the export's files must be stored under
// exports/editors/ with the SHA-256 of what was exported, listed in the
// webhook under exports; `tapedeck download --stems` must fetch them (the
// same bytes, a folder whose timelines find their stems), and build one for
// a session with no export stored.
func TestPostCallExport(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	emb, err := postcall.StartEmbedded(postcall.EmbeddedConfig{StoreDir: t.TempDir()}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	nc, err := postcall.Connect(ctx, emb.URL(), "test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var mu sync.Mutex
	var events []postcall.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev postcall.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}))
	defer hook.Close()
	storeDir := t.TempDir()
	store, err := storage.Open(ctx, storeDir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "renders.yaml")
	if err := os.WriteFile(conf, []byte(`rooms:
  podcast:
    - name: default
      profile: mp4-360p
    - name: editors
      export:
        fps: 25
        composite: default
  plain: []
`), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := postcall.LoadRenderConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	p, err := postcall.New(ctx, nc, store, sessionRenderer{log: log, stats: &renderStats{}}, postcall.Config{Node: "rec1", WorkDir: t.TempDir(),
		Renders: rc, RenderConcurrency: 1, RenderNice: -1, Webhook: hook.URL}, log)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(runCtx) }()
	defer func() { stop(); <-runDone }()

	s := recordTwo(t, ctx, "podcast", capture.Config{DataDir: t.TempDir(), OnSegmentClosed: p.SegmentClosed, OnSessionEnd: p.SessionEnded})
	st, err := p.Wait(ctx, s.Room, s.Session)
	if err != nil {
		t.Fatal(err)
	}
	if st.Done.IsZero() {
		t.Fatalf("job did not finish: %+v", st)
	}
	res, ok := st.Renders["editors"]
	if !ok || !res.Export || res.Skipped != "" {
		t.Fatalf("job state of the export: %+v (present %v)", res, ok)
	}
	var keys []string
	sums := map[string]string{}
	prefix := postcall.ExportsPrefix(s.Room, s.Session, "editors")
	for _, f := range res.Files {
		if !strings.HasPrefix(f.Key, prefix) {
			t.Errorf("export file %s is not under %s", f.Key, prefix)
		}
		obj, err := store.Stat(ctx, f.Key)
		if err != nil || obj.SHA256 != f.SHA256 || obj.Size != f.Size {
			t.Errorf("stored %s: %+v, %v; the job recorded %+v", f.Key, obj, err, f)
		}
		rel := strings.TrimPrefix(f.Key, prefix)
		keys = append(keys, rel)
		sums[rel] = f.SHA256
	}
	sort.Strings(keys)
	for _, want := range []string{"ann.wav", "ann.mp4", "bob.wav", "bob.mp4", s.Session + ".otio", "reference/composite.mp4", render.IndexName} {
		if !slices.Contains(keys, want) {
			t.Errorf("stored export lacks %s (holds %v)", want, keys)
		}
	}
	mu.Lock()
	if len(events) != 1 {
		t.Fatalf("%d webhook events, want 1", len(events))
	}
	ev := events[0]
	mu.Unlock()
	if len(ev.Renders) != 1 || ev.Renders[0].Name != "default" {
		t.Errorf("webhook renders %+v, want the composite only", ev.Renders)
	}
	if len(ev.Exports) != 1 || ev.Exports[0].Name != "editors" || len(ev.Exports[0].Files) != len(res.Files) {
		t.Fatalf("webhook exports %+v, want editors with %d files", ev.Exports, len(res.Files))
	}
	for _, f := range ev.Exports[0].Files {
		if rel := strings.TrimPrefix(f.Key, prefix); f.SHA256 != sums[rel] || f.URL == "" {
			t.Errorf("webhook lists %s with SHA-256 %s and URL %q; stored %s", f.Key, f.SHA256, f.URL, sums[rel])
		}
	}

	// download --stems: the stored export, the same bytes.
	dl := filepath.Join(t.TempDir(), "dl")
	out, err := runCLI(ctx, "download", s.Room+"/"+s.Session, "--store", storeDir, "--stems", "--out", dl)
	if err != nil {
		t.Fatalf("download --stems: %v\n%s", err, out)
	}
	for rel, sum := range sums {
		if got := fileSHA(t, filepath.Join(dl, filepath.FromSlash(rel))); got != sum {
			t.Errorf("downloaded %s: SHA-256 %s, stored %s", rel, got, sum)
		}
	}
	checkExportFolder(t, dl, s.Session, "ann", "bob")
	if !strings.Contains(out, "export editors") {
		t.Errorf("download --stems does not say which export:\n%s", out)
	}

	// A session stored without export: download --stems builds one.
	plain := recordTwo(t, ctx, "plain", capture.Config{DataDir: t.TempDir()})
	other := "file://" + t.TempDir()
	if out, err := runCLI(ctx, "upload", plain.Dir, "--to", other); err != nil {
		t.Fatalf("upload: %v\n%s", err, out)
	}
	built := filepath.Join(t.TempDir(), "built")
	out, err = runCLI(ctx, "download", "plain/"+plain.Session, "--store", other, "--stems", "--out", built)
	if err != nil {
		t.Fatalf("download --stems of a session without export: %v\n%s", err, out)
	}
	if !strings.Contains(out, "no export stored: building one") {
		t.Errorf("download --stems does not say it built the export:\n%s", out)
	}
	checkExportFolder(t, built, plain.Session, "ann", "bob")
	entries, _ := os.ReadDir(filepath.Dir(built))
	if len(entries) != 1 {
		t.Errorf("beside the download: %d entries, want the folder alone", len(entries))
	}
}
