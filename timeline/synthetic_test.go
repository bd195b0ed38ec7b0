package timeline

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// This file generates synthetic manifests from a known ground truth, so that
// the sync model's placement errors can be measured.
//
// The truth: the recorder's clock is true time. Each sender device has a wall
// clock wall(T) = T + offset + drift·(T−T0) + wander·sin(…), offset ±5 s,
// drift ±50 ppm. Each track's RTP clock runs at nominal·(1+skew), skew
// ±200 ppm: the media captured at true instant T has RTP time
// rtp0 + (T−tStart)·rate·(1+skew). A packet of media captured at T is sent
// after the track's pipeline delay (0 for audio: the reference; encoder and
// pacer delay of 8–20 ms for video) and arrives at
// T + pipeline + base + queue(T) + jitter, where base is the participant's
// one-way network delay (20–60 ms, unknown to the model), queue is a
// congestion episode's queueing delay, and jitter is exponential (mean
// 5–20 ms, at most 200 ms). Sender reports pair wall(Tsr) with the RTP time
// of Tsr; the first comes late (1–3 s video, 2–5 s audio, as Chromium does),
// then about every second (video) or every 4–5 s (audio). Arrival samples
// are, per one-second window, the packet whose arrival minus nominal RTP time
// is smallest — exactly what capture records — with a fraction of windows
// missing (loss).
//
// The reference for a placement is T + base of the participant: the model
// cannot observe base (see the sync model's comment), so it is subtracted,
// and differing base delays between participants are reported separately.

type synthSpec struct {
	name        string
	seed        uint64
	durationS   float64
	people      []personSpec
	lossFrac    float64 // fraction of arrival windows missing
	srLossFrac  float64 // fraction of sender reports lost
	congestion  float64 // approximate fraction of time in congestion episodes
	wanderNS    float64 // amplitude of the sender clocks' wander
	segmentS    float64 // file rotation; 0: one file per track
	minBaseMS   float64 // base one-way delay range; 0,0: 20–60 ms
	maxBaseMS   float64
	rawEvidence bool // store SR and arrival RTP times unextended (mod 2^32)
	// Hostile knobs: jitter mean range (default 5–20 ms) and the fraction of
	// packets that exist at all (DTX, low frame rates; default 1).
	minJitterMS, maxJitterMS float64
	packetKeep               float64
}

type personSpec struct {
	id          string
	noReports   bool
	publishes   []pubSpec // default: one publish from a random join in [0, 5 s) to the end
	ssrcChangeS float64   // video SSRC changes at this time (0: never)
	wrapVideo   bool      // video RTP starts just below 2^32
	wrapAudio   bool      // audio RTP starts just below 2^32
	codecDelay  int64     // audio tracks' CodecDelay (Opus pre-skip)
	oneReport   bool      // only each track's first sender report arrives
}

type pubSpec struct {
	startS, endS float64
	newDevice    bool // a different device: another wall clock
}

type truthClock struct {
	offsetNS, drift       float64
	wanderNS, wanderPhase float64
	firstNS, lastNS       int64 // the publishes that used it, relative to T0
}

type episode struct{ start, dur, peak float64 } // ns, relative to T0

type truthPerson struct {
	id           string
	reports      bool
	baseNS       int64
	jitterMeanNS float64
	episodes     []episode
	clocks       []*truthClock
}

type truthTrack struct {
	id, person, lane string
	kind             Kind
	rate             int
	skew             float64
	rtp0             int64
	tStart, tEnd     int64 // true capture instants of the track's media
	pipeNS           int64
	codecDelay       int64
	clock            *truthClock
	reports          bool
	oneReport        bool
	frames           int64 // number of frames
	frameTicks       int64
}

type synthTruth struct {
	spec   synthSpec
	m      *Manifest
	t0     int64
	end    int64
	people map[string]*truthPerson
	order  []string
	tracks []*truthTrack
}

const (
	wanderPeriodNS = 17 * 60 * 1e9
	maxJitterNS    = 200e6
)

func (c *truthClock) wall(t0, T int64) int64 {
	dt := float64(T - t0)
	return T + int64(math.Round(c.offsetNS+c.drift*dt+c.wanderNS*math.Sin(2*math.Pi*dt/wanderPeriodNS+c.wanderPhase)))
}

// rtpAt is the (fractional) RTP time of the media captured at T, as an
// integer part and a fraction.
func (tr *truthTrack) rtpAt(T int64) (int64, float64) {
	ticks := float64(T-tr.tStart) * float64(tr.rate) * (1 + tr.skew) / 1e9
	fl := math.Floor(ticks)
	return tr.rtp0 + int64(fl), ticks - fl
}

// captureAt is the true instant at which the media of RTP time r was captured.
func (tr *truthTrack) captureAt(r int64) int64 {
	return tr.tStart + int64(math.Round(float64(r-tr.rtp0)*1e9/(float64(tr.rate)*(1+tr.skew))))
}

func (tr *truthTrack) frameRTP(k int64) int64 { return tr.rtp0 + k*tr.frameTicks }

func (p *truthPerson) queue(t0, T int64) float64 {
	x := float64(T - t0)
	for _, e := range p.episodes {
		if x >= e.start && x < e.start+e.dur {
			u := (x - e.start) / e.dur
			return e.peak * (1 - math.Abs(2*u-1)) // rises, then drains
		}
	}
	return 0
}

func (p *truthPerson) jitter(rng *rand.Rand) float64 {
	return math.Min(maxJitterNS, rng.ExpFloat64()*p.jitterMeanNS)
}

// buildSynthetic makes the manifest and its truth.
func buildSynthetic(spec synthSpec) *synthTruth {
	rng := rand.New(rand.NewPCG(spec.seed, spec.seed^0x9e3779b97f4a7c15))
	t0 := int64(1_760_000_000)*1e9 + rng.Int64N(1e12)
	dur := int64(spec.durationS * 1e9)
	st := &synthTruth{spec: spec, t0: t0, end: t0 + dur, people: map[string]*truthPerson{}}
	m := &Manifest{
		Version:     ManifestVersion,
		Room:        "synthetic",
		Session:     spec.name,
		StartUnixNS: t0,
		EndUnixNS:   t0 + dur,
	}
	minBase, maxBase := spec.minBaseMS, spec.maxBaseMS
	if minBase == 0 && maxBase == 0 {
		minBase, maxBase = 20, 60
	}
	minJit, maxJit := spec.minJitterMS, spec.maxJitterMS
	if minJit == 0 && maxJit == 0 {
		minJit, maxJit = 5, 20
	}
	newClock := func() *truthClock {
		return &truthClock{
			offsetNS:    (rng.Float64()*10 - 5) * 1e9,
			drift:       (rng.Float64()*100 - 50) * 1e-6,
			wanderNS:    spec.wanderNS,
			wanderPhase: rng.Float64() * 2 * math.Pi,
		}
	}
	for _, ps := range spec.people {
		p := &truthPerson{
			id:           ps.id,
			reports:      !ps.noReports,
			baseNS:       int64((minBase + rng.Float64()*(maxBase-minBase)) * 1e6),
			jitterMeanNS: (minJit + rng.Float64()*(maxJit-minJit)) * 1e6,
		}
		// Congestion episodes: 20–60 s each, peak 40–150 ms.
		for x := 0.0; spec.congestion > 0 && x < spec.durationS; {
			d := 20 + rng.Float64()*40
			gap := d/spec.congestion - d
			x += rng.Float64() * 2 * gap
			p.episodes = append(p.episodes, episode{start: x * 1e9, dur: d * 1e9, peak: (40 + rng.Float64()*110) * 1e6})
			x += d
		}
		st.people[p.id] = p
		st.order = append(st.order, p.id)
		part := Participant{ID: p.id, Name: "Person " + p.id}
		pubs := ps.publishes
		if len(pubs) == 0 {
			pubs = []pubSpec{{startS: rng.Float64() * 5, endS: spec.durationS}}
		}
		clock := newClock()
		lanes := map[Kind]*Lane{
			Audio: {ID: p.id + "-audio", Participant: p.id, Kind: Audio},
			Video: {ID: p.id + "-video", Participant: p.id, Kind: Video},
		}
		for pi, pub := range pubs {
			if pub.newDevice {
				clock = newClock()
			}
			p.clocks = append(p.clocks, clock)
			pubID := fmt.Sprintf("%s-pub%d", p.id, pi+1)
			ps0 := t0 + int64(pub.startS*1e9)
			pe := t0 + int64(pub.endS*1e9)
			if clock.lastNS == 0 {
				clock.firstNS = ps0 - t0
			}
			clock.lastNS = pe - t0
			part.Publishes = append(part.Publishes, Publish{ID: pubID, StartUnixNS: ps0 + p.baseNS, EndUnixNS: pe + p.baseNS})
			for _, kind := range []Kind{Audio, Video} {
				cuts := []int64{ps0, pe}
				if kind == Video && ps.ssrcChangeS > 0 {
					if c := t0 + int64(ps.ssrcChangeS*1e9); c > ps0 && c < pe {
						cuts = []int64{ps0, c, pe}
					}
				}
				for ci := 0; ci+1 < len(cuts); ci++ {
					tr := &truthTrack{
						id:        fmt.Sprintf("%s-%s-%d-%d", p.id, kind, pi+1, ci+1),
						person:    p.id,
						lane:      lanes[kind].ID,
						kind:      kind,
						skew:      (rng.Float64()*400 - 200) * 1e-6,
						rtp0:      int64(rng.Uint32()),
						tStart:    cuts[ci],
						tEnd:      cuts[ci+1],
						clock:     clock,
						reports:   p.reports,
						oneReport: ps.oneReport,
					}
					if kind == Audio {
						tr.rate, tr.frameTicks, tr.codecDelay = 48000, 960, ps.codecDelay
						if ps.wrapAudio && pi == 0 && ci == 0 {
							tr.rtp0 = 4294000000
						}
					} else {
						tr.rate, tr.frameTicks = 90000, 3000
						tr.pipeNS = int64((8 + rng.Float64()*12) * 1e6)
						if ps.wrapVideo && pi == 0 && ci == 0 {
							tr.rtp0 = 4294000000
						}
					}
					last, _ := tr.rtpAt(tr.tEnd)
					tr.frames = (last-tr.rtp0)/tr.frameTicks + 1
					st.tracks = append(st.tracks, tr)
					lanes[kind].Tracks = append(lanes[kind].Tracks, st.makeTrack(rng, tr, pubID))
				}
			}
		}
		m.Participants = append(m.Participants, part)
		m.Lanes = append(m.Lanes, *lanes[Audio], *lanes[Video])
	}
	st.m = m
	return st
}

// makeTrack generates a track's manifest entry: segments, sender reports,
// arrival samples.
func (st *synthTruth) makeTrack(rng *rand.Rand, tr *truthTrack, pubID string) Track {
	p := st.people[tr.person]
	spec := st.spec
	t := Track{
		ID:         tr.id,
		Publish:    pubID,
		SSRC:       rng.Uint32(),
		CodecDelay: tr.codecDelay,
	}
	if tr.kind == Audio {
		t.Codec = Codec{Name: "opus", ClockRate: 48000, Channels: 2}
	} else {
		t.Codec = Codec{Name: "vp8", ClockRate: 90000}
	}
	nsPerTick := 1e9 / float64(tr.rate)
	packetsOf := func(k int64) int {
		if tr.kind == Audio {
			return 1
		}
		if k%90 == 0 {
			return 12 // keyframe
		}
		return 2 + int(k%3)
	}
	// arrival of packet j of frame k
	arrive := func(k int64, j int) int64 {
		T := tr.captureAt(tr.frameRTP(k))
		return T + tr.pipeNS + int64(j)*300_000 + p.baseNS + int64(math.Round(p.queue(st.t0, T)+p.jitter(rng)))
	}
	store := func(r int64) int64 {
		if spec.rawEvidence {
			return r & (rtpWrap - 1)
		}
		return r
	}

	// Segments: rotate by true time.
	segNS := int64(spec.segmentS * 1e9)
	if segNS <= 0 {
		segNS = tr.tEnd - tr.tStart + 1
	}
	frameAt := func(T int64) int64 { // first frame captured at or after T
		r, frac := tr.rtpAt(T)
		if frac > 0 {
			r++
		}
		return (r - tr.rtp0 + tr.frameTicks - 1) / tr.frameTicks
	}
	for i, s := 0, tr.tStart; s < tr.tEnd; i, s = i+1, s+segNS {
		k0 := frameAt(s)
		k1 := min(frameAt(min(s+segNS, tr.tEnd)), tr.frames) - 1
		if k1 < k0 {
			break
		}
		t.Segments = append(t.Segments, Segment{
			Index:              i,
			Path:               fmt.Sprintf("tracks/%s/%03d.webm", tr.id, i),
			FirstRTP:           tr.frameRTP(k0),
			LastRTP:            tr.frameRTP(k1),
			FirstArrivalUnixNS: arrive(k0, 0),
			LastArrivalUnixNS:  arrive(k1, packetsOf(k1)-1),
			Frames:             k1 - k0 + 1,
			Packets:            (k1 - k0 + 1) * 2,
			Closed:             true,
		})
	}

	// Sender reports.
	if tr.reports {
		firstLo, firstHi, every, spread := 1.0, 3.0, 1.0, 0.5
		if tr.kind == Audio {
			firstLo, firstHi, every, spread = 2.0, 5.0, 4.5, 0.5
		}
		T := tr.tStart + int64((firstLo+rng.Float64()*(firstHi-firstLo))*1e9)
		for n := uint32(1); T < tr.tEnd; n++ {
			if rng.Float64() >= spec.srLossFrac && (!tr.oneReport || len(t.SenderReports) == 0) {
				r, _ := tr.rtpAt(T)
				t.SenderReports = append(t.SenderReports, SenderReport{
					NTPUnixNS:     tr.clock.wall(st.t0, T),
					RTP:           store(r),
					ArrivalUnixNS: T + p.baseNS + int64(math.Round(p.queue(st.t0, T)+p.jitter(rng))),
					Packets:       n * 50,
					Octets:        n * 5000,
				})
			}
			T += int64((every + (rng.Float64()*2-1)*spread) * 1e9)
		}
	}

	// Arrival samples: per one-second window of capture time, the packet
	// with the smallest arrival minus nominal RTP time.
	for w := tr.tStart; w < tr.tEnd; w += 1e9 {
		k0 := frameAt(w)
		k1 := min(frameAt(min(w+1e9, tr.tEnd)), tr.frames)
		if k1 <= k0 || rng.Float64() < spec.lossFrac {
			continue
		}
		best := ArrivalSample{}
		bestKey := math.Inf(1)
		for k := k0; k < k1; k++ {
			r := tr.frameRTP(k)
			for j := range packetsOf(k) {
				if spec.packetKeep > 0 && rng.Float64() >= spec.packetKeep {
					continue
				}
				a := arrive(k, j)
				key := float64(a-w) - float64(r-tr.rtp0)*nsPerTick
				if key < bestKey {
					bestKey, best = key, ArrivalSample{RTP: r, ArrivalUnixNS: a}
				}
			}
		}
		if math.IsInf(bestKey, 1) {
			continue // no packet in the window
		}
		best.RTP = store(best.RTP)
		t.Arrivals = append(t.Arrivals, best)
	}
	var pk int64
	for _, s := range t.Segments {
		pk += s.Packets
	}
	t.PacketsReceived = pk
	return t
}

// truthAt is where the model should place the media of track tr with RTP r:
// its capture instant plus the participant's base delay.
func (st *synthTruth) truthAt(tr *truthTrack, r int64) int64 {
	return tr.captureAt(r) + st.people[tr.person].baseNS
}

// activeAt returns the tracks of person p whose media covers true instant T.
func (st *synthTruth) activeAt(person string, T int64) (audio, video *truthTrack) {
	for _, tr := range st.tracks {
		if tr.person != person || T < tr.tStart || T >= tr.tEnd {
			continue
		}
		if tr.kind == Audio {
			audio = tr
		} else {
			video = tr
		}
	}
	return audio, video
}
