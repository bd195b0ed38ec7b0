package render

import (
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"
)

// progress adds up the output time done by every step of a render and shows
// it: a bar redrawn in place on a terminal, a plain line now and then
// otherwise. Steps are weighted by their cost per output second.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	now      func() time.Time
	start    time.Time
	duration time.Duration // the output's length
	total    float64       // weighted seconds of all steps
	done     map[string]float64
	weights  map[string]float64
	last     time.Time
	lastPct  int
	finished bool
	// verb names the work in the lines: "render" (the default) or "export".
	verb string
}

// Step weights: seconds of work per output second, roughly.
const (
	weightVideo  = 1.0
	weightAudio  = 0.1
	weightEncode = 0.05
	weightMux    = 0.02
)

func newProgress(w io.Writer, tty bool, duration time.Duration, now func() time.Time) *progress {
	if now == nil {
		now = time.Now
	}
	return &progress{w: w, tty: tty, now: now, start: now(), duration: duration, done: map[string]float64{},
		weights: map[string]float64{}, lastPct: -1, verb: "render"}
}

// add declares a step that covers d of output time with the given weight.
func (p *progress) add(step string, d time.Duration, weight float64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.weights[step] = weight
	p.total += d.Seconds() * weight
}

// update records that step has done d of its output time.
func (p *progress) update(step string, d time.Duration) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done[step] = d.Seconds() * p.weights[step]
	p.show(false)
}

// finish draws the final state.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	p.show(true)
}

// state returns the fraction done (0–1), the speed (output seconds per
// second) and the estimated time left (negative when unknown).
func (p *progress) state() (frac, speed float64, eta time.Duration) {
	sum := 0.0
	for _, v := range p.done {
		sum += v
	}
	if p.total > 0 {
		frac = min(1, sum/p.total)
	}
	el := p.now().Sub(p.start)
	if el > 0 {
		speed = frac * p.duration.Seconds() / el.Seconds()
	}
	eta = -1
	if frac > 0.01 {
		eta = time.Duration(float64(el) * (1 - frac) / frac)
	}
	return frac, speed, eta
}

func (p *progress) show(final bool) {
	if p.w == nil {
		return
	}
	frac, speed, eta := p.state()
	if final {
		// Every step is done, whatever FFmpeg's last report said.
		frac, eta = 1, 0
		if el := p.now().Sub(p.start); el > 0 {
			speed = p.duration.Seconds() / el.Seconds()
		}
	}
	pct := int(math.Round(frac*1000)) / 10
	now := p.now()
	if p.tty {
		if !final && now.Sub(p.last) < 200*time.Millisecond && pct == p.lastPct {
			return
		}
		const width = 30
		n := int(frac * width)
		bar := strings.Repeat("=", n) + strings.Repeat(" ", width-n)
		if n > 0 && n < width {
			bar = strings.Repeat("=", n-1) + ">" + strings.Repeat(" ", width-n)
		}
		ing := "rendering"
		if p.verb == "export" {
			ing = "exporting"
		}
		fmt.Fprintf(p.w, "\r%s [%s] %3d%%  %5.2fx  ETA %-8s", ing, bar, pct, speed, fmtETA(eta))
		if final {
			fmt.Fprintln(p.w)
		}
	} else {
		if !final && (now.Sub(p.last) < 5*time.Second || pct == p.lastPct) {
			return
		}
		if final {
			fmt.Fprintf(p.w, "%s: %d%% done in %s, %.2fx realtime\n", p.verb, pct, now.Sub(p.start).Round(100*time.Millisecond), speed)
		} else {
			fmt.Fprintf(p.w, "%s: %d%% done, %.2fx realtime, ETA %s\n", p.verb, pct, speed, fmtETA(eta))
		}
	}
	p.last, p.lastPct = now, pct
}

// fmtETA formats a remaining time as m:ss (or h:mm:ss); "?" when unknown.
func fmtETA(d time.Duration) string {
	if d < 0 {
		return "?"
	}
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
