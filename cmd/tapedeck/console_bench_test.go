package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/console"
	"github.com/tapedeck/tapedeck/storage"
)

// countingStore counts the store calls the console makes.
type countingStore struct {
	storage.Client
	gets, lists atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c.gets.Add(1)
	return c.Client.Get(ctx, key)
}

func (c *countingStore) List(ctx context.Context, prefix string) ([]storage.ObjectInfo, error) {
	c.lists.Add(1)
	return c.Client.List(ctx, prefix)
}

// fakeStore writes n sessions into dir the way serve stores them (5 objects each: manifest, journal,
// two tracks, a composite), in rooms room00..room19, one minute apart.
func fakeStore(tb testing.TB, dir string, n int) time.Time {
	tb.Helper()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		at := start.Add(time.Duration(i) * time.Minute)
		room := fmt.Sprintf("room%02d", i%20)
		session := at.Format("20060102T150405Z") + fmt.Sprintf("-%06x", i)
		base := filepath.Join(dir, room, session)
		files := map[string]string{
			"manifest.json": fmt.Sprintf(`{"version":1,"room":%q,"session":%q,"start_unix_ns":%d,"end_unix_ns":%d,"participants":[]}`,
				room, session, at.UnixNano(), at.Add(42*time.Minute).UnixNano()),
			"journal.jsonl":                  "{}\n",
			"tracks/alice/audio-t1-000.webm": "a",
			"tracks/bob/video-t2-000.webm":   "v",
			"renders/default/composite.mp4":  "c",
		}
		for rel, body := range files {
			p := filepath.Join(base, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				tb.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return start
}

// BenchmarkConsoleSessions10k serves the Sessions page of a local store holding 10,000 sessions
// (50,000 objects), through the console's handler as serve mounts it: the newest page, a page deep in
// the list, a room, a room and a day; and, for comparison, one List of the whole store (what a
// listing that reads every key costs).
//
//	go test -run '^$' -bench ConsoleSessions10k -benchtime 20x ./cmd/tapedeck
func BenchmarkConsoleSessions10k(b *testing.B) {
	dir := b.TempDir()
	began := time.Now()
	start := fakeStore(b, dir, 10_000)
	b.Logf("10,000 sessions written in %v", time.Since(began).Round(time.Millisecond))
	local, err := storage.OpenLocal(dir)
	if err != nil {
		b.Fatal(err)
	}
	newHandler := func(store storage.Client) http.Handler {
		c, err := console.New(console.Config{Loopback: true, Store: store, Catalog: newCatalog(local), Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		mux := http.NewServeMux()
		c.Register(mux)
		return mux
	}
	get := func(h http.Handler, target string) string {
		req := httptest.NewRequest("GET", "http://127.0.0.1"+target, nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("%s: %d %s", target, w.Code, w.Body.String())
		}
		return w.Body.String()
	}
	// The 100th page: its cursor is the 5000th session from the newest.
	deep := fmt.Sprintf("room%02d/%s-%06x", 4999%20, start.Add(4999*time.Minute).Format("20060102T150405Z"), 4999)
	for _, bc := range []struct{ name, target string }{
		{"newest", "/sessions"},
		{"page100", "/sessions?before=" + deep},
		{"room", "/sessions?room=room07"},
		{"room+day", "/sessions?room=room07&date=2026-11-03"},
	} {
		for _, warm := range []bool{true, false} {
			name := bc.name + "/cold"
			if warm {
				name = bc.name + "/warm"
			}
			b.Run(name, func(b *testing.B) {
				cs := &countingStore{Client: local}
				h := newHandler(cs)
				if warm {
					get(h, bc.target)
				}
				cs.gets.Store(0)
				cs.lists.Store(0)
				var rows int
				for b.Loop() {
					if !warm {
						b.StopTimer()
						h = newHandler(cs) // empty manifest cache
						b.StartTimer()
					}
					rows = strings.Count(get(h, bc.target), "<tr data-room=")
				}
				if rows != console.DefaultPageSize && !strings.Contains(bc.name, "day") {
					b.Fatalf("%d rows", rows)
				}
				b.ReportMetric(float64(cs.gets.Load())/float64(b.N), "gets/op")
				b.ReportMetric(float64(cs.lists.Load())/float64(b.N), "lists/op")
				b.ReportMetric(float64(rows), "rows")
			})
		}
	}
	b.Run("list-whole-store", func(b *testing.B) {
		var n int
		for b.Loop() {
			objs, err := local.List(b.Context(), "")
			if err != nil {
				b.Fatal(err)
			}
			n = len(objs)
		}
		b.ReportMetric(float64(n), "objects")
	})
}
