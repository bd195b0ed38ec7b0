package cluster_test

import (
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/cluster"
	"github.com/tapedeck/tapedeck/cluster/clustertest"
)

// BenchmarkFailover measures how long a room takes to move to another node
// after its node dies (no renewal, no goodbye), with a 2 s lease TTL: a
// survivor claims the room every 20 ms until it records it. It reports the
// p50 and the max over the runs (go test -run '^$' -bench Failover
// -benchtime 10x ./cluster).
func BenchmarkFailover(b *testing.B) {
	srv := clustertest.StartNATS(b)
	const ttl = 2 * time.Second
	survivor := startNode(b, srv.URL, "survivor", ttl, true, nil)
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		room := fmt.Sprintf("room-%d", i)
		dying := startNode(b, srv.URL, fmt.Sprintf("dying-%d", i), ttl, true, nil)
		if c, err := dying.Claim(b.Context(), room, false); err != nil || c.Elsewhere != "" {
			b.Fatalf("claim: %+v, %v", c, err)
		}
		time.Sleep(ttl) // renewed meanwhile
		killed := time.Now()
		dying.kill()
		for {
			c, err := survivor.Claim(b.Context(), room, false)
			if err == nil && c.Elsewhere == "" {
				if c.Part != 2 {
					b.Fatalf("the survivor records part %d, want 2", c.Part)
				}
				break
			}
			if err != nil && !errors.Is(err, cluster.ErrOwnerSilent) {
				b.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		took = append(took, time.Since(killed))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(took[len(took)/2].Seconds(), "p50-s")
	b.ReportMetric(took[len(took)-1].Seconds(), "max-s")
	b.Logf("failover with a %v lease TTL over %d runs: p50 %v, max %v", ttl, len(took), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
}

// BenchmarkClaimElsewhere measures a node answering claims of a room another
// node holds (one KV read each), from 8 goroutines.
func BenchmarkClaimElsewhere(b *testing.B) {
	srv := clustertest.StartNATS(b)
	owner := startNode(b, srv.URL, "owner", 10*time.Second, true, nil)
	other := startNode(b, srv.URL, "other", 10*time.Second, true, nil)
	if _, err := owner.Claim(b.Context(), "held", false); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c, err := other.Claim(b.Context(), "held", false)
			if err != nil || c.Owner != "owner" {
				b.Errorf("claim: %+v, %v", c, err)
				return
			}
		}
	})
}
