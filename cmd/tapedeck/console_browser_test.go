package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tapedeck/tapedeck/examples/publisher"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/storage"
)

// consoleRun is a `tapedeck serve` with an admin token, and a headless Chromium on its console.
type consoleRun struct {
	top   *testing.T // the test
	t     *testing.T // the running subtest
	base  string
	token string
	store string // the store folder
	log   *logLines
	ctx   context.Context // the browser tab

	mu    sync.Mutex
	shots []shot
	csp   []string // the browser's reports of Content-Security-Policy violations
}

type shot struct {
	name string
	png  []byte
}

// chromium finds Debian's Chromium binary (not the /usr/bin wrapper).
func chromium(t *testing.T) string {
	for _, p := range []string{os.Getenv("TAPEDECK_CHROMIUM"), "/usr/lib/chromium/chromium"} {
		if fi, err := os.Stat(p); p != "" && err == nil && !fi.IsDir() {
			return p
		}
	}
	t.Fatal("Chromium not found at /usr/lib/chromium/chromium: run `make deps` (apt-get install chromium) or set TAPEDECK_CHROMIUM")
	return ""
}

func startConsoleRun(t *testing.T) *consoleRun {
	bin := buildTapedeckRace(t)
	data, store := t.TempDir(), filepath.Join(t.TempDir(), "store")
	addr := freeAddr(t)
	renders := filepath.Join(t.TempDir(), "renders.yaml")
	if err := os.WriteFile(renders, []byte("default:\n  - name: default\n    profile: mp4-360p\nrooms:\n  oneonone: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &consoleRun{top: t, t: t, base: "http://" + addr, token: "console-t0ken", store: store, log: newLogLines(t, "serve: ")}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TAPEDECK_") && !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	cmd := exec.Command(bin, "serve", "--listen", addr, "--data", data, "--store", store, "--grace", "1s",
		"--renders", renders, "--job-max-deliver", "1", "--log-level", "info")
	cmd.Env = append(env, "TAPEDECK_ADMIN_TOKEN="+r.token)
	cmd.Stderr, cmd.Stdout = r.log, r.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); r.log.exited(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	r.log.wait(60*time.Second, "tapedeck serving")

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)), chromedp.Flag("headless", "new"), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900), chromedp.Flag("disable-quic", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"), chromedp.Flag("disable-component-update", true))
	actx, acancel := chromedp.NewExecAllocator(context.WithoutCancel(t.Context()), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() { bcancel(); acancel() })
	r.ctx = bctx
	messages := chromedp.Console(bctx)
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if strings.Contains(m.Text, "Content Security Policy") {
				r.mu.Lock()
				r.csp = append(r.csp, m.Text)
				r.mu.Unlock()
			}
		}
	})
	t.Cleanup(func() { bcancel(); wg.Wait() })
	t.Cleanup(r.saveShots)
	return r
}

// saveShots writes the screenshots taken: always into $TAPEDECK_ARTIFACTS, and into a kept
// temporary folder when the test failed without it.
func (r *consoleRun) saveShots() {
	t := r.top
	dir := os.Getenv("TAPEDECK_ARTIFACTS")
	if dir == "" && !t.Failed() {
		return
	}
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "tapedeck-console-artifacts-"); err != nil {
			t.Log(err)
			return
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, s := range r.shots {
		p := filepath.Join(dir, fmt.Sprintf("console-%02d-%s.png", i+1, s.name))
		if err := os.WriteFile(p, s.png, 0o644); err != nil {
			t.Log(err)
		}
	}
	t.Logf("%d screenshots of the console's pages in %s", len(r.shots), dir)
}

// screenshot keeps a picture of the whole page as a test artefact.
func (r *consoleRun) screenshot(name string) {
	b, err := chromedp.Run(r.ctx, chromedp.FullScreenshot(100)) // PNG
	if err != nil {
		r.t.Logf("screenshot %s: %v", name, err)
		return
	}
	r.mu.Lock()
	r.shots = append(r.shots, shot{name, b})
	r.mu.Unlock()
}

// docShot writes a PNG of the viewport for the README into $TAPEDECK_CONSOLE_DOCS, when set.
func (r *consoleRun) docShot(name string, width, height int64) {
	dir := os.Getenv("TAPEDECK_CONSOLE_DOCS")
	if dir == "" {
		return
	}
	t := r.t
	t.Helper()
	if err := chromedp.Do(r.ctx, chromedp.EmulateViewport(width, height), chromedp.Sleep(1200*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	b, err := chromedp.Run(r.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(r.ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatal(err)
	}
}

// open navigates the tab and waits for the page's load.
func (r *consoleRun) open(path string) int64 {
	r.t.Helper()
	resp, err := chromedp.Run(r.ctx, chromedp.NavigateResponse(r.base+path))
	if err != nil {
		r.t.Fatalf("open %s: %v", path, err)
	}
	if resp == nil {
		return 0
	}
	return resp.Status
}

// js evaluates an expression in the page (through DevTools, which the page's CSP does not bind).
func js[T any](r *consoleRun, expr string) T {
	r.t.Helper()
	v, err := chromedp.Run(r.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		r.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor evaluates a JavaScript condition until it holds.
func (r *consoleRun) waitFor(what, cond string, d time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, err := chromedp.Run(r.ctx, chromedp.Evaluate[bool](`!!(`+cond+`)`))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			r.screenshot("timeout-" + strings.ReplaceAll(what, " ", "-"))
			r.t.Fatalf("%s: not within %v (%s; last error %v)", what, d, cond, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// submit submits a form of the page and waits for the page that answers it.
func (r *consoleRun) submit(form string) {
	r.t.Helper()
	js[bool](r, `(document.body.dataset.before = "1", document.querySelector(`+quote(form)+`).requestSubmit(), true)`)
	r.waitFor("the answer to "+form, `document.readyState === "complete" && document.body && !document.body.dataset.before`, 30*time.Second)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// api calls the control API with the admin token.
func (r *consoleRun) api(method, path string, v any) {
	r.t.Helper()
	req, _ := http.NewRequest(method, r.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		r.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		r.t.Fatal(err)
	}
}

func (r *consoleRun) job(room, session string) postcall.State {
	var st postcall.State
	r.api("GET", "/api/jobs/"+room+"/"+session, &st)
	return st
}

// scriptClient is a client with its own console session (logged in over HTTP), following no
// redirects.
func (r *consoleRun) scriptClient() (*http.Client, string) {
	r.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(r.base+"/login", url.Values{"token": {r.token}})
	if err != nil {
		r.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		r.t.Fatalf("login over HTTP: %d", resp.StatusCode)
	}
	resp, err = c.Get(r.base + "/jobs")
	if err != nil {
		r.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`).FindSubmatch(b)
	if m == nil {
		r.t.Fatal("no CSRF token on the Jobs page")
	}
	return c, string(m[1])
}

func post(t *testing.T, c *http.Client, u string, form url.Values) int {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// storeKeys lists a session's keys in the store folder.
func storeKeys(t *testing.T, store, room, session string) []string {
	t.Helper()
	c, err := storage.OpenLocal(store)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := c.List(context.Background(), storage.SessionPrefix(room, session))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	return keys
}

// TestConsoleInBrowser drives the console of a real `serve` (admin token, local store, one 360p
// render per session) in headless Chromium while two synthetic publishers record a 16 s call: login
// (a wrong token refused), the Live page, refused requests (no token, bad CSRF token: nothing
// changes), Sessions, the Session page with its timeline picture, playback with a seek, a raw-track
// download checked against the store's SHA-256, a re-render with a broken edit file (refused with
// its line, nothing queued) and with a valid one (its composite appears), Jobs, the CSP, and the
// rate limit on wrong tokens (last: it locks out 127.0.0.1 for a minute).
func TestConsoleInBrowser(t *testing.T) {
	r := startConsoleRun(t)
	const room = "standup"
	var session string

	t.Run("login", func(t *testing.T) {
		r.t = t
		r.open("/")
		r.waitFor("the login form", `location.pathname === "/login" && document.querySelector("#token")`, 10*time.Second)
		js[bool](r, `(document.querySelector("#token").value = "not-the-token", true)`)
		r.submit("form[action='/login']")
		if msg := js[string](r, `(document.querySelector("#login-error") || {}).textContent || ""`); !strings.Contains(msg, "Wrong token") {
			r.screenshot("wrong-token")
			t.Fatalf("a wrong token: %q, want it refused", msg)
		}
		r.screenshot("login-refused")
		js[bool](r, `(document.querySelector("#token").value = `+quote(r.token)+`, true)`)
		r.submit("form[action='/login']")
		if got := js[string](r, `location.pathname + " " + document.querySelector("h1").textContent`); got != "/ Live" {
			t.Fatalf("after login: %q, want the Live page", got)
		}
		if cookie := js[string](r, `document.cookie`); strings.Contains(cookie, "tapedeck_console") {
			t.Errorf("the session cookie is readable by scripts: %q", cookie)
		}
	})

	// Two publishers, 16 s: the composite must be longer than 10 s.
	pubCtx, stopPubs := context.WithCancel(t.Context())
	defer stopPubs()
	var pubs sync.WaitGroup
	pubErr := make(chan error, 2)
	var cfgs []publisher.Config
	for _, who := range []string{"alice", "bob"} {
		cfg := publisher.Config{Endpoint: r.base + "/whip/" + room, Participant: who, Duration: 16 * time.Second,
			Video: publisher.VP8, Audio: true, Width: 640, Height: 360, Bitrate: 600_000}
		if _, err := publisher.PrepareMedia(t.Context(), cfg, nil); err != nil { // cached after the first run
			t.Fatal(err)
		}
		cfgs = append(cfgs, cfg)
	}
	for _, cfg := range cfgs {
		who := cfg.Participant
		pubs.Go(func() {
			if _, err := publisher.Run(pubCtx, cfg, nil); err != nil {
				pubErr <- fmt.Errorf("%s: %w", who, err)
			}
		})
	}
	defer pubs.Wait()

	t.Run("live", func(t *testing.T) {
		r.t = t
		r.open("/")
		// When the recorder has both publishes (its control API says so), the open page must show
		// them within 3 s, without being reloaded.
		var apiSessions struct {
			Sessions []json.RawMessage `json:"sessions"`
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			r.api("GET", "/api/sessions", &apiSessions)
			if len(apiSessions.Sessions) == 1 && strings.Count(string(apiSessions.Sessions[0]), `"participant"`) == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the recorder did not get both publishes: %s", apiSessions.Sessions)
			}
			time.Sleep(50 * time.Millisecond)
		}
		both := time.Now()
		js[bool](r, `(window.__sameDocument = true)`)
		r.waitFor("both participants on the Live page", `document.querySelector('tr[data-participant="alice"]') && document.querySelector('tr[data-participant="bob"]')`, 3*time.Second)
		t.Logf("both participants shown %v after the recorder had them", time.Since(both).Round(time.Millisecond))
		if !js[bool](r, `window.__sameDocument === true`) {
			t.Error("the Live page was reloaded to show them")
		}
		session = js[string](r, `document.querySelector('section[data-room="standup"]').dataset.session`)
		hasBytes := strings.Contains(string(apiSessions.Sessions[0]), `"bytes"`)
		if hasBytes {
			r.waitFor("a bitrate above 0 on every track", `[...document.querySelectorAll("tr[data-bitrate]")].length === 4 && [...document.querySelectorAll("tr[data-bitrate]")].every(tr => +tr.dataset.bitrate > 0)`, 5*time.Second)
		} else {
			t.Log("capture.TrackInfo has no byte count yet: the Live page shows a dash for bitrate, lost and last packet; not asserted")
			r.waitFor("the four tracks with their codecs", `[...document.querySelectorAll("tr[data-kind]")].filter(tr => tr.querySelector("td.mono").textContent.trim() !== "").length === 4`, 5*time.Second)
		}
		d1 := js[float64](r, `+document.querySelector('section[data-room="standup"]').dataset.duration`)
		time.Sleep(1500 * time.Millisecond)
		d2 := js[float64](r, `+document.querySelector('section[data-room="standup"]').dataset.duration`)
		if d2 <= d1 {
			t.Errorf("recording duration %v then %v: not rising", d1, d2)
		}
		r.screenshot("live")
		r.docShot("console-live.png", 1280, 620)

		// Refused: no token, a bad CSRF token. The session goes on.
		c, _ := r.scriptClient()
		form := url.Values{"session": {session}, "csrf": {"forged"}}
		if code := post(t, &http.Client{CheckRedirect: c.CheckRedirect}, r.base+"/live/"+room+"/end", form); code != http.StatusUnauthorized {
			t.Errorf("end session without a token: %d, want 401", code)
		}
		if code := post(t, c, r.base+"/live/"+room+"/end", form); code != http.StatusForbidden {
			t.Errorf("end session with a bad CSRF token: %d, want 403", code)
		}
		time.Sleep(300 * time.Millisecond)
		r.api("GET", "/api/sessions", &apiSessions)
		if len(apiSessions.Sessions) != 1 || strings.Contains(string(apiSessions.Sessions[0]), `"ending": true`) {
			t.Errorf("a refused request ended the session: %s", apiSessions.Sessions)
		}
		if r.open("/") != 200 || js[int](r, `document.querySelectorAll("tr[data-participant]").length`) < 2 {
			t.Error("the Live page lost the session after refused requests")
		}
	})
	if session == "" {
		t.Fatal("no session")
	}
	pubs.Wait()
	close(pubErr)
	for err := range pubErr {
		t.Fatal(err)
	}

	t.Run("sessions", func(t *testing.T) {
		r.t = t
		deadline := time.Now().Add(3 * time.Minute)
		for st := r.job(room, session); st.Done.IsZero(); st = r.job(room, session) {
			if !st.Failed.IsZero() || time.Now().After(deadline) {
				t.Fatalf("post-call job: %+v", st)
			}
			time.Sleep(250 * time.Millisecond)
		}
		r.open("/sessions")
		row := `tr[data-room="standup"][data-session="` + session + `"]`
		r.waitFor("the session in the list", `document.querySelector('`+row+`')`, 5*time.Second)
		r.screenshot("sessions")
		js[bool](r, `(document.body.dataset.before = "1", document.querySelector('`+row+` a.rowlink').click(), true)`)
		r.waitFor("the session page", `document.readyState === "complete" && !document.body.dataset.before && document.querySelector("#timeline")`, 15*time.Second)
		r.waitFor("the timeline picture", `document.querySelector("#timeline").complete && document.querySelector("#timeline").naturalWidth >= 1000`, 10*time.Second)
		if w := js[float64](r, `document.querySelector("#timeline").getBoundingClientRect().width / document.querySelector("main").getBoundingClientRect().width`); w < 0.9 {
			t.Errorf("the timeline picture is %.0f%% of the page's width", w*100)
		}
		for _, who := range []string{"alice", "bob"} {
			if !js[bool](r, `!!document.querySelector('#participants tr[data-participant="`+who+`"]')`) {
				t.Errorf("%s is not among the participants", who)
			}
		}
		r.screenshot("session")
	})

	t.Run("playback", func(t *testing.T) {
		r.t = t
		v := `document.querySelector('video[data-render="default"]')`
		if !js[bool](r, `!!`+v) {
			t.Fatal("no player of the composite")
		}
		js[bool](r, `(() => { const v = `+v+`; v.muted = true; v.preload = "auto"; v.play().catch(() => {}); return true })()`)
		r.waitFor("the composite playing (readyState >= 3)", v+`.readyState >= 3`, 20*time.Second)
		dur := js[float64](r, v+`.duration`)
		if dur <= 10 {
			t.Fatalf("composite of %.1f s; the seek needs more than 10 s", dur)
		}
		js[bool](r, `(() => { const v = `+v+`; v.pause(); v.currentTime = 10; return true })()`)
		r.waitFor("the seek to 10 s", `!`+v+`.seeking && Math.abs(`+v+`.currentTime - 10) < 0.25 && `+v+`.readyState >= 2`, 15*time.Second)
		t.Logf("composite %.2f s, currentTime %.3f after the seek", dur, js[float64](r, v+`.currentTime`))
		js[bool](r, `(window.scrollTo(0, 0), true)`)
		r.docShot("console-session.png", 1280, 900)
	})

	t.Run("download", func(t *testing.T) {
		r.t = t
		link := `document.querySelector('#downloads a[data-rel^="tracks/alice/video"]')`
		rel := js[string](r, link+`.dataset.rel`)
		sum := js[string](r, `fetch(`+link+`.href).then(r => r.arrayBuffer()).then(b => crypto.subtle.digest("SHA-256", b))
			.then(d => [...new Uint8Array(d)].map(x => x.toString(16).padStart(2, "0")).join(""))`)
		c, err := storage.OpenLocal(r.store)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Stat(context.Background(), storage.SessionPrefix(room, session)+rel)
		if err != nil {
			t.Fatal(err)
		}
		if sum != info.SHA256 || info.Size == 0 {
			t.Fatalf("%s downloaded with SHA-256 %s, the store has %s (%d bytes)", rel, sum, info.SHA256, info.Size)
		}
	})

	t.Run("rerender", func(t *testing.T) {
		r.t = t
		before := r.job(room, session)
		keys := storeKeys(t, r.store, room, session)
		// A broken edit file: an unknown layout type on line 4.
		js[bool](r, `(() => { const f = document.querySelector("#rerender-form");
			f.querySelector("input[name=name]").value = "alt";
			f.querySelectorAll("input[name=profile]").forEach(c => c.checked = c.value === "mp4-360p");
			const e = f.querySelector("#edits"); e.value = "cuts:\n  - {start: 2, end: 3}\nlayouts:\n  - {at: 0, type: mosaic}\n";
			e.dispatchEvent(new Event("input")); return true })()`)
		r.waitFor("the edit file checked as typed", `document.querySelector("#edits-check").textContent.includes("Line 4")`, 5*time.Second)
		r.submit("#rerender-form")
		msg := js[string](r, `(document.querySelector("#form-error") || {}).textContent || ""`)
		if !strings.Contains(msg, "Line 4") || !strings.Contains(msg, "mosaic") || !strings.Contains(msg, "Nothing was queued") {
			r.screenshot("broken-edits")
			t.Fatalf("broken edit file: %q", msg)
		}
		if got := js[string](r, `document.querySelector("pre.excerpt .bad").textContent`); !strings.Contains(got, "mosaic") {
			t.Errorf("the marked line is %q", got)
		}
		r.screenshot("rerender-refused")
		time.Sleep(time.Second)
		if after := r.job(room, session); !after.Done.Equal(before.Done) || len(after.Renders) != len(before.Renders) {
			t.Errorf("the refused re-render changed the job: %+v then %+v", before, after)
		}
		if got := storeKeys(t, r.store, room, session); len(got) != len(keys) {
			t.Errorf("the refused re-render changed the store: %v then %v", keys, got)
		}

		// Refused requests change nothing either: no token, a bad CSRF token.
		c, _ := r.scriptClient()
		form := url.Values{"name": {"hack"}, "profile": {"mp4-360p"}, "csrf": {"forged"}}
		if code := post(t, &http.Client{CheckRedirect: c.CheckRedirect}, r.base+"/sessions/"+room+"/"+session+"/renders", form); code != http.StatusUnauthorized {
			t.Errorf("re-render without a token: %d, want 401", code)
		}
		if code := post(t, c, r.base+"/sessions/"+room+"/"+session+"/renders", form); code != http.StatusForbidden {
			t.Errorf("re-render with a bad CSRF token: %d, want 403", code)
		}
		if code := post(t, c, r.base+"/jobs/"+room+"/"+session+"/retry", url.Values{"csrf": {"forged"}}); code != http.StatusForbidden {
			t.Errorf("retry with a bad CSRF token: %d, want 403", code)
		}
		time.Sleep(time.Second)
		if after := r.job(room, session); !after.Done.Equal(before.Done) || len(after.Renders) != len(before.Renders) {
			t.Errorf("refused requests changed the job: %+v then %+v", before, after)
		}
		if got := storeKeys(t, r.store, room, session); len(got) != len(keys) {
			t.Errorf("refused requests changed the store: %v then %v", keys, got)
		}

		// A valid one: queued, its progress shown, its composite on the page once stored.
		js[bool](r, `(() => { const e = document.querySelector("#edits");
			e.value = "cuts:\n  - {start: 2, end: 3}\nlayouts:\n  - {at: 0, type: speaker}\n"; return true })()`)
		r.submit("#rerender-form")
		if got := js[string](r, `location.search`); got != "?queued=alt" {
			t.Fatalf("after a valid re-render: at %q", got)
		}
		r.screenshot("rerender-queued")
		r.waitFor("the new composite on the page", `document.querySelector('video[data-render="alt"]')`, 3*time.Minute)
		if st := r.job(room, session); st.Done.IsZero() || len(st.Renders["alt"].Files) == 0 {
			t.Errorf("job after the re-render: %+v", st)
		}
		r.waitFor("the new composite playing", `(() => { const v = document.querySelector('video[data-render="alt"]'); v.muted = true; v.play().catch(() => {}); return v.readyState >= 3 })()`, 20*time.Second)
		r.screenshot("rerendered")
	})

	t.Run("end-session", func(t *testing.T) {
		r.t = t
		cfg := cfgs[0]
		cfg.Endpoint = r.base + "/whip/oneonone" // 16 s, the media made for the call above
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var pub sync.WaitGroup
		defer pub.Wait()
		pub.Go(func() {
			if _, err := publisher.Run(ctx, cfg, nil); err != nil {
				t.Logf("publisher of the ended session: %v", err)
			}
		})
		defer cancel()
		r.open("/")
		r.waitFor("the call on the Live page", `document.querySelector('#end-oneonone summary')`, 20*time.Second)
		js[bool](r, `(document.querySelector('#end-oneonone summary').click(), true)`)
		r.waitFor("the confirmation", `document.querySelector('#end-oneonone').open && document.querySelector('#end-oneonone button').offsetParent !== null`, 5*time.Second)
		r.screenshot("end-confirm")
		js[bool](r, `(document.body.dataset.before = "1", document.querySelector('#end-oneonone button').click(), true)`)
		r.waitFor("the Live page after ending", `document.readyState === "complete" && !document.body.dataset.before && location.search === "?ended=oneonone"`, 10*time.Second)
		deadline := time.Now().Add(15 * time.Second)
		for {
			var live struct {
				Sessions []struct {
					Room string `json:"room"`
				} `json:"sessions"`
			}
			r.api("GET", "/api/sessions", &live)
			if len(live.Sessions) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the session goes on after End: %+v", live.Sessions)
			}
			time.Sleep(100 * time.Millisecond)
		}
		r.log.wait(10*time.Second, "session ended from the console", "room=oneonone")
	})

	t.Run("retry", func(t *testing.T) {
		r.t = t
		var live struct {
			Jobs []postcall.State `json:"jobs"`
		}
		var other string
		deadline := time.Now().Add(30 * time.Second)
		for other == "" {
			r.api("GET", "/api/jobs", &live)
			for _, st := range live.Jobs {
				if st.Room == "oneonone" && !st.Done.IsZero() {
					other = st.Session
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the ended session's job: %+v", live.Jobs)
			}
			time.Sleep(200 * time.Millisecond)
		}
		// A render that fails (an overlay image that is not there), queued by a script with the
		// token; serve gives a job one attempt (--job-max-deliver 1).
		form := url.Values{"name": {"logo"}, "profile": {"mp4-360p"}, "edits": {"overlays:\n  - image: /nonexistent/logo.png\n"}}
		req, _ := http.NewRequest("POST", r.base+"/sessions/oneonone/"+other+"/renders", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+r.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("re-render by a script: %d", resp.StatusCode)
		}
		failed := func(attempts int) postcall.State {
			deadline := time.Now().Add(time.Minute)
			for {
				st := r.job("oneonone", other)
				if !st.Failed.IsZero() && st.Attempts >= attempts {
					return st
				}
				if time.Now().After(deadline) {
					t.Fatalf("the job did not fail: %+v", st)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		first := failed(1)
		r.open("/jobs?status=failed")
		row := `tr[data-room="oneonone"][data-session="` + other + `"]`
		if got := js[string](r, `(document.querySelector('`+row+`') || {textContent: ""}).textContent`); !strings.Contains(got, "failed") || !strings.Contains(got, "logo") {
			t.Errorf("the failed job on the Jobs page: %q", got)
		}
		r.screenshot("jobs-failed")
		js[bool](r, `(document.body.dataset.before = "1", document.querySelector('`+row+` form button').click(), true)`)
		r.waitFor("the Jobs page after the retry", `document.readyState === "complete" && !document.body.dataset.before && location.search.startsWith("?retried=")`, 10*time.Second)
		again := failed(first.Attempts + 1)
		t.Logf("retried: attempts %d then %d, %q", first.Attempts, again.Attempts, again.Error)
		r.log.wait(10*time.Second, "post-call job retried from the console", "room=oneonone")
	})

	t.Run("jobs", func(t *testing.T) {
		r.t = t
		r.open("/jobs")
		if got := js[string](r, `(document.querySelector('tr[data-room="standup"]') || {dataset: {}}).dataset.status || ""`); got != "done" {
			t.Errorf("the job's status on the Jobs page: %q", got)
		}
		r.screenshot("jobs")
		r.open("/sessions")
		r.docShot("console-sessions.png", 1280, 560)
	})

	t.Run("csp", func(t *testing.T) {
		r.t = t
		r.mu.Lock()
		seen := append([]string(nil), r.csp...)
		r.mu.Unlock()
		if len(seen) > 0 {
			t.Errorf("the console's pages broke their own CSP: %q", seen)
		}
		ran := js[bool](r, `(() => { const s = document.createElement("script"); s.textContent = "window.__inline = true";
			document.body.appendChild(s); return window.__inline === true })()`)
		if ran {
			t.Error("an inline script ran")
		}
	})

	t.Run("rate-limit", func(t *testing.T) {
		r.t = t
		r.open("/login")
		for i := 0; ; i++ {
			js[bool](r, `(document.querySelector("#token").value = "guess-`+fmt.Sprint(i)+`", true)`)
			r.submit("form[action='/login']")
			msg := js[string](r, `(document.querySelector("#login-error") || {}).textContent || ""`)
			if strings.Contains(msg, "Too many") {
				// 10 wrong tokens in a minute: with the one of the login step, if it is less than a
				// minute old, the 10th guess here is refused.
				if i != 9 && i != 10 {
					t.Errorf("refused after %d more wrong tokens, want 9 or 10", i)
				}
				break
			}
			if i > 10 {
				t.Fatalf("no rate limit after %d wrong tokens: %q", i, msg)
			}
		}
		js[bool](r, `(document.querySelector("#token").value = `+quote(r.token)+`, true)`)
		r.submit("form[action='/login']")
		if msg := js[string](r, `(document.querySelector("#login-error") || {}).textContent || ""`); !strings.Contains(msg, "Too many") {
			t.Errorf("the right token during the lockout: %q, want refused", msg)
		}
		r.screenshot("rate-limited")
		req, _ := http.NewRequest("GET", r.base+"/jobs", nil)
		req.Header.Set("Authorization", "Bearer "+r.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Errorf("bearer during the lockout: %d", resp.StatusCode)
		}
	})
}
