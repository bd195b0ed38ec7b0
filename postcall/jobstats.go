package postcall

import (
	"sort"
	"sync"
	"time"
)

// Job outcomes counted by JobStats.
const (
	OutcomeDone        = "done"
	OutcomeRetried     = "retried"
	OutcomeFailed      = "failed"
	OutcomeInterrupted = "interrupted"
)

// StageStats counts one stage's job runs in this process.
type StageStats struct {
	Stage    string           `json:"stage"`
	Running  int              `json:"running"`
	Outcomes map[string]int64 `json:"outcomes"`
	// Seconds is the total time of finished runs, by outcome.
	Seconds map[string]float64 `json:"seconds"`
}

// jobStats is safe for concurrent use.
type jobStats struct {
	mu     sync.Mutex
	stages map[string]*StageStats
}

func (s *jobStats) stage(name string) *StageStats {
	if s.stages == nil {
		s.stages = map[string]*StageStats{}
	}
	st := s.stages[name]
	if st == nil {
		st = &StageStats{Stage: name, Outcomes: map[string]int64{}, Seconds: map[string]float64{}}
		s.stages[name] = st
	}
	return st
}

func (s *jobStats) start(stage string) time.Time {
	s.mu.Lock()
	s.stage(stage).Running++
	s.mu.Unlock()
	return time.Now()
}

func (s *jobStats) end(stage, outcome string, began time.Time) {
	s.mu.Lock()
	st := s.stage(stage)
	st.Running--
	st.Outcomes[outcome]++
	st.Seconds[outcome] += time.Since(began).Seconds()
	s.mu.Unlock()
}

// JobStats returns this process's job runs by stage (consumer name), for
// metrics: how many run now, and how the finished ones ended and took.
func (p *Pipeline) JobStats() []StageStats {
	p.stats.mu.Lock()
	defer p.stats.mu.Unlock()
	out := make([]StageStats, 0, len(p.stats.stages))
	for _, st := range p.stats.stages {
		c := StageStats{Stage: st.Stage, Running: st.Running, Outcomes: map[string]int64{}, Seconds: map[string]float64{}}
		for k, v := range st.Outcomes {
			c.Outcomes[k] = v
		}
		for k, v := range st.Seconds {
			c.Seconds[k] = v
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Stage < out[j].Stage })
	return out
}
