// Package authlimit refuses, for a while, a client address that failed to
// authenticate too often: the policy the WHIP endpoint and the console share
// (Limit failures within Window per address).
package authlimit

import (
	"sync"
	"time"
)

// The policy: an address that failed Limit times within Window waits until
// the oldest of those failures is Window old.
const (
	Window = time.Minute
	Limit  = 10
)

// forgetAbove is the number of addresses from which Fail forgets the quiet
// ones.
const forgetAbove = 10000

// Limiter counts failed authentications per client address. Its zero value
// is ready; it is safe for concurrent use.
type Limiter struct {
	mu    sync.Mutex
	fails map[string][]time.Time
}

// Blocked reports whether addr must wait, and how long.
func (l *Limiter) Blocked(addr string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.recent(addr, now)
	if len(f) < Limit {
		return 0, false
	}
	return f[0].Add(Window).Sub(now), true
}

// Fail records a failed authentication from addr at now.
func (l *Limiter) Fail(addr string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fails == nil {
		l.fails = map[string][]time.Time{}
	}
	l.fails[addr] = append(l.recent(addr, now), now)
	if len(l.fails) > forgetAbove {
		for a := range l.fails {
			l.recent(a, now)
		}
	}
}

// recent drops addr's failures older than the window (and addr, when none
// is left) and returns the rest. Called with l.mu held.
func (l *Limiter) recent(addr string, now time.Time) []time.Time {
	f := l.fails[addr]
	i := 0
	for i < len(f) && now.Sub(f[i]) > Window {
		i++
	}
	f = f[i:]
	if len(f) == 0 {
		delete(l.fails, addr)
	} else {
		l.fails[addr] = f
	}
	return f
}
