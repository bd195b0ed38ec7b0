package capture

import (
	"context"
	"sync"
)

// tasks owns the goroutines the recorder starts (publish endings, session
// finalizations and their hooks). Unlike a bare sync.WaitGroup it can be
// waited for with a deadline, and once a wait has seen it idle it refuses
// new work, so that a late callback (pion's, a timer's) cannot start a
// goroutine nobody waits for.
type tasks struct {
	mu   sync.Mutex
	n    int
	done bool          // a Wait saw no task running: no new ones
	idle chan struct{} // closed when n drops to zero
}

// Go runs f in a goroutine owned by g. It reports false, and does not run
// f, once g has been waited for to the end.
func (g *tasks) Go(f func()) bool {
	g.mu.Lock()
	if g.done {
		g.mu.Unlock()
		return false
	}
	g.n++
	g.mu.Unlock()
	go func() {
		defer g.finish()
		f()
	}()
	return true
}

func (g *tasks) finish() {
	g.mu.Lock()
	g.n--
	if g.n == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
	g.mu.Unlock()
}

// Wait waits until no task runs, then refuses new ones. It returns ctx's
// error if ctx ends first; tasks started meanwhile are waited for too.
func (g *tasks) Wait(ctx context.Context) error {
	for {
		g.mu.Lock()
		if g.n == 0 {
			g.done = true
			g.mu.Unlock()
			return nil
		}
		if g.idle == nil {
			g.idle = make(chan struct{})
		}
		idle := g.idle
		g.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Running returns how many tasks run now.
func (g *tasks) Running() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}
