package timeline

import (
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"testing"
	"time"
)

// Small, explicit synthetic recordings for the plan tests. Every sender's
// packets arrive without delay and its sender reports are exact, so a
// track's media lands on the recording timeline exactly where the test
// says it was captured (seconds from t0).

const synT0 = int64(1_800_000_000_000_000_000)

// tp is a test participant.
type tp struct {
	id               string
	pubs             [][2]float64 // publish spans, seconds from t0
	noVideo, noAudio bool
	videoLate        float64               // video starts this long after each publish
	pauses           [][2]float64          // no video packets during these spans
	level            func(sec float64) int // audio level at a time (nil: silence)
	clockOffset      float64               // sender wall clock minus recorder clock, s
	skewPPM          float64               // RTP clocks run this much fast
	fileLen          float64               // files rotate after this much media (0: one per publish)
}

func rtpBase(id string) int64 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return 1_000_000_000 + int64(h.Sum32()%2_000_000_000)
}

func inSpans(t float64, spans [][2]float64) bool {
	for _, s := range spans {
		if t >= s[0] && t < s[1] {
			return true
		}
	}
	return false
}

func ns(sec float64) int64 { return int64(math.Round(sec * 1e9)) }

// mkManifest builds a manifest for the participants.
func mkManifest(parts ...tp) *Manifest {
	m := &Manifest{Version: ManifestVersion, Room: "test", Session: "s1", StartUnixNS: synT0}
	end := 0.0
	for _, p := range parts {
		part := Participant{ID: p.id, Name: p.id}
		lanes := map[Kind]*Lane{}
		for pi, pub := range p.pubs {
			end = math.Max(end, pub[1])
			pubID := fmt.Sprintf("%s-p%d", p.id, pi)
			part.Publishes = append(part.Publishes, Publish{ID: pubID, StartUnixNS: synT0 + ns(pub[0]), EndUnixNS: synT0 + ns(pub[1]), EndReason: "test"})
			for _, kind := range []Kind{Audio, Video} {
				if (kind == Audio && p.noAudio) || (kind == Video && p.noVideo) {
					continue
				}
				if lanes[kind] == nil {
					lanes[kind] = &Lane{ID: p.id + "/" + string(kind), Participant: p.id, Kind: kind}
				}
				lanes[kind].Tracks = append(lanes[kind].Tracks, mkTrack(p, kind, pubID, pub))
			}
		}
		m.Participants = append(m.Participants, part)
		for _, k := range []Kind{Audio, Video} {
			if lanes[k] != nil {
				m.Lanes = append(m.Lanes, *lanes[k])
			}
		}
	}
	m.EndUnixNS = synT0 + ns(end+2)
	return m
}

func mkTrack(p tp, kind Kind, pubID string, pub [2]float64) Track {
	id := pubID + "-" + string(kind)
	t := Track{ID: id, Publish: pubID, SSRC: uint32(rtpBase(id))}
	rate, frame := 48000.0, 0.020
	t.Codec = Codec{Name: "opus", ClockRate: 48000, Channels: 2}
	start := pub[0]
	if kind == Video {
		rate, frame = 90000, 1.0/30
		t.Codec = Codec{Name: "vp8", ClockRate: 90000}
		start += p.videoLate
	}
	base := rtpBase(id)
	scale := rate * (1 + p.skewPPM*1e-6)
	rtpAt := func(sec float64) int64 { return base + int64(math.Round((sec-start)*scale)) }
	// Frames, in files.
	var seg *Segment
	flush := func() {
		if seg != nil {
			t.Segments = append(t.Segments, *seg)
			seg = nil
		}
	}
	fileStart := start
	lastRTP, lastAt := int64(0), 0.0
	paused := false
	for k := 0; ; k++ {
		at := start + float64(k)*frame
		if at >= pub[1]-1e-9 {
			break
		}
		if kind == Video && inSpans(at, p.pauses) {
			paused = true
			continue
		}
		rtp := rtpAt(at)
		if paused {
			t.Events = append(t.Events,
				Event{Kind: EventPause, RTP: lastRTP, ArrivalUnixNS: synT0 + ns(lastAt)},
				Event{Kind: EventResume, RTP: rtp, ArrivalUnixNS: synT0 + ns(at)})
			paused = false
		}
		if seg != nil && p.fileLen > 0 && at-fileStart >= p.fileLen-1e-9 {
			flush()
		}
		if seg == nil {
			fileStart = at
			seg = &Segment{Index: len(t.Segments), Path: fmt.Sprintf("tracks/%s/%s-%s-%03d.webm", p.id, kind, id, len(t.Segments)),
				FirstRTP: rtp, FirstArrivalUnixNS: synT0 + ns(at), Closed: true}
			if kind == Video {
				seg.Width, seg.Height = 640, 360
			}
		}
		seg.LastRTP, seg.LastArrivalUnixNS = rtp, synT0+ns(at)
		seg.Frames++
		seg.Packets++
		seg.Bytes += 100
		lastRTP, lastAt = rtp, at
		t.PacketsReceived++
	}
	flush()
	// Timing evidence every second: exact sender reports and arrivals.
	for at := start; at < pub[1]; at++ {
		if kind == Video && inSpans(at, p.pauses) {
			continue
		}
		t.SenderReports = append(t.SenderReports, SenderReport{NTPUnixNS: synT0 + ns(at+p.clockOffset), RTP: rtpAt(at), ArrivalUnixNS: synT0 + ns(at) + 1e6})
		t.Arrivals = append(t.Arrivals, ArrivalSample{RTP: rtpAt(at), ArrivalUnixNS: synT0 + ns(at)})
	}
	if kind == Audio {
		for at := start; at < pub[1]-1e-9; at += 0.25 {
			lvl := 127
			if p.level != nil {
				lvl = p.level(at)
			}
			t.Levels = append(t.Levels, AudioLevel{RTP: rtpAt(at), Level: lvl})
		}
	}
	return t
}

func mustSync(t testing.TB, m *Manifest) *Sync {
	t.Helper()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := NewSync(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustPlan(t testing.TB, m *Manifest, e *Edits, opts PlanOptions) *Plan {
	t.Helper()
	p, err := NewPlan(m, mustSync(t, m), e, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, p)
	return p
}

// demo returns the manifest of a real three-participant recording (its
// files are not here).
func demo(t testing.TB) (*Manifest, *Sync) {
	t.Helper()
	f, err := os.Open("testdata/demo-manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := ParseManifest(f)
	if err != nil {
		t.Fatal(err)
	}
	return m, mustSync(t, m)
}

// checkPlan checks the invariants every plan keeps.
func checkPlan(t testing.TB, p *Plan) {
	t.Helper()
	var out, rec time.Duration
	for i, iv := range p.Intervals {
		if iv.Start != out || iv.End <= iv.Start {
			t.Fatalf("interval %d [%v, %v) after output %v", i, iv.Start, iv.End, out)
		}
		if iv.RecStart < rec || iv.RecEnd-iv.RecStart != iv.End-iv.Start {
			t.Fatalf("interval %d: recording [%v, %v) after %v, output [%v, %v)", i, iv.RecStart, iv.RecEnd, rec, iv.Start, iv.End)
		}
		out, rec = iv.End, iv.RecEnd
		for _, tl := range iv.Tiles {
			r := tl.Rect
			if r.X < 0 || r.Y < 0 || r.W <= 0 || r.H <= 0 || r.X+r.W > p.Width || r.Y+r.H > p.Height {
				t.Fatalf("interval %d: tile %s at %v outside %dx%d", i, tl.Lane, r, p.Width, p.Height)
			}
			if (tl.Source == nil) == (tl.Placeholder == "") {
				t.Fatalf("interval %d: tile %s: placeholder %q with source %v", i, tl.Lane, tl.Placeholder, tl.Source)
			}
			if tl.Source != nil {
				checkSource(t, i, tl.Source, iv)
			}
		}
		for _, a := range iv.Audio {
			checkSource(t, i, &a.Source, iv)
		}
	}
	if out != p.Duration {
		t.Fatalf("intervals end at %v, duration %v", out, p.Duration)
	}
}

func checkSource(t testing.TB, i int, s *Source, iv Interval) {
	t.Helper()
	if s.FileStart < -0.0011 || s.FileEnd < s.FileStart || math.Abs(s.Speed-1) > 0.01 {
		t.Fatalf("interval %d: source %+v", i, *s)
	}
	if got, want := (s.FileEnd-s.FileStart)/s.Speed, (iv.End - iv.Start).Seconds(); math.Abs(got-want) > 50e-6 {
		t.Fatalf("interval %d: source %s covers %.6f s of output, the interval %.6f s", i, s.Path, got, want)
	}
}
