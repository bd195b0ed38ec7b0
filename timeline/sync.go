package timeline

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// The sync model
//
// Three clocks meet in a manifest: each track's RTP clock, each sender's wall
// clock (the NTP time in RTCP sender reports, shared by the audio and video
// of one sender) and the recorder's clock (arrival times, Unix ns). Sync
// composes two linear maps per track so that every RTP time lands on the
// recorder's clock:
//
//  1. RTP → sender NTP, per track, from its sender reports: a least-squares
//     line (after dropping reports further than max(2 ms, 6σ) from a robust
//     Theil–Sen line), so that the slope absorbs an RTP clock running a few
//     hundred ppm fast or slow. The fitted slope is used when it is
//     trustworthy (four or more kept reports with a slope standard error
//     under 50 ppm and a departure from the nominal rate significant at 1 %,
//     or two or three kept reports at least 30 s apart); otherwise, and with
//     a single report, the nominal clock rate gives the slope. Reports whose
//     NTP time is 0 (RFC 3550: the sender has no wall clock) are ignored. A
//     fitted rate more than 1 % from the codec's is an inconsistent manifest.
//     When the reports cannot give the slope but the track's arrival samples
//     span at least 30 s, the slope comes from those instead: the lower
//     envelope of arrival − nominal RTP time gives the RTP rate against the
//     recorder's clock, which the sender clock's estimated drift (step 2,
//     fitted once before and once after this correction) turns into the rate
//     against the sender's clock. Extrapolating a nominal slope would cost
//     up to 0.2 ms per second away from the report at ±200 ppm.
//     Before the first report (Chromium's comes a few seconds late) the line
//     is extrapolated: its slope is known to a few ppm, so this costs
//     microseconds, where switching to arrival times would cost lip sync.
//
//  2. Sender NTP → recorder, per sender clock: the lower envelope of
//     d = arrival − send over the arrival samples of the sender's tracks that
//     have reports (send = step 1 at the sample's RTP time), as a line over
//     send time (offset + drift). Jitter is one-sided — packets are only
//     ever late — so the envelope, not a mean, is the delay of an unqueued
//     packet. The line is the linear-programming estimator of Moon, Skelly
//     and Towsley (1999): under every sample, minimising the total height of
//     the samples above it; it is the lower-convex-hull edge that spans the
//     mean send time (see lowerEnvelope for the outlier guard). Drift is
//     estimated only over at least 60 s of samples and when under 1000 ppm;
//     otherwise the offset is constant. When no track of a sender has
//     arrival samples, the sender reports' own arrival times (arrival − NTP)
//     stand in, then the segments' first and last packets.
//
//     Sender clocks are estimated per publish and then merged: publishes of
//     one participant whose separate envelopes agree with their joint
//     envelope within 10 ms share one clock (more samples, drift measured
//     across a rejoin gap); a publish that disagrees (a rejoin from another
//     device, whose wall clock differs) keeps its own. So the offset is
//     shared by all the participant's tracks with reports that can share it.
//
//  3. A track without any sender report is placed from arrival times alone:
//     the lower envelope (same estimator) of arrival − nominal RTP time over
//     its arrival samples, so RTP maps directly to the recorder's clock.
//     Such a track is not lip-synced with its sender's other tracks: it is
//     placed at capture + its own floor delay (encoder and pacer delays
//     included), where tracks with reports share their sender's smallest
//     floor delay. LaneConfidence reports it.
//
// What "the recorder-clock time of capture" means: the one-way network delay
// is not observable from one-directional timing evidence, so every sender's
// media is placed at capture instant + that sender's floor delay (the
// smallest capture-to-arrival delay of its packets). All senders are thus
// treated as having equal one-way delay; between two participants, the
// difference of their real one-way delays (typically tens of ms) remains as
// an error no recording-side model can remove. Lip sync within a sender is
// not affected by it.
//
// RTP times in the manifest are extended (unwrapped). As a safeguard, the
// RTP times of sender reports, arrival samples and events are re-extended
// in arrival order to the multiple of 2^32 nearest the previous value, so
// that values stored unextended (raw 32-bit) are placed correctly too.

// Errors returned by Sync's methods (wrapped with context).
var (
	ErrUnknownTrack   = errors.New("unknown track")
	ErrUnknownSegment = errors.New("unknown segment")
	ErrNoTiming       = errors.New("no timing evidence")
	ErrOutOfRange     = errors.New("time out of range")
)

// Bounds on the values Sync accepts, so that no difference overflows int64
// and every RTP time is exact in a float64.
const (
	maxAbsRTP = 1 << 52
	maxAbsNS  = 1 << 62
	rtpWrap   = 1 << 32
)

// Parameters of the model (see "The sync model" above).
const (
	envelopeWindowS     = 10.0  // seconds per window of the envelope's floor
	minDriftSpanS       = 60.0  // shortest span over which drift is estimated
	maxClockDrift       = 1e-3  // largest plausible sender/recorder drift
	envelopeOutlierNS   = 20e6  // impossibly-low samples beyond this may be dropped
	clockMergeNS        = 10e6  // publishes whose clocks agree this well share one
	maxFallbackSlope    = 0.011 // RTP skew plus drift, for arrival-only tracks
	minRateSpanS        = 30.0  // arrival span needed to measure a rate for a track with one report
	maxRateFromArrivals = 1e-3  // largest RTP rate error (skew plus drift) taken from arrivals
	maxDroppedFraction  = 0.02  // a clock dropping more samples than this is not "good"
	maxTrackFloorMS     = 100.0 // a track's floor this far above its clock's breaks lip sync
)

// Confidence grades.
const (
	GradeGood = "good"
	GradeFair = "fair"
	GradePoor = "poor"
)

// Sync places every track of a manifest on the recorder's clock. It is
// immutable once built and safe for concurrent use.
type Sync struct {
	start  int64
	tracks map[string]*trackSync
	lanes  map[string]Confidence
	clocks []ParticipantClock
}

// trackSync is the placement of one track.
type trackSync struct {
	codecDelay int64
	segs       map[int]int64 // segment index → FirstRTP
	toRec      affine        // extended RTP → recorder Unix ns
	placed     bool
}

// Confidence says how well a lane is placed on the recorder's clock.
//
// Grade is "good" when nothing of the lane is placed from arrival times
// alone, it has sender reports, ReportResidualMS ≤ 1, OffsetResidualMS ≤ 5
// and no track longer than 30 s has an RTP rate taken as nominal (neither
// fitted over reports nor measured from arrivals) and the sender clock did
// not drop more than 2 % of its samples as impossibly early (which happens
// when one track's reports disagree with the others'); "fair" when at most a
// quarter of it is placed from arrival times, ReportResidualMS ≤ 5 and
// OffsetResidualMS ≤ 20; "poor" otherwise, for a lane with no media, and
// whenever TrackFloorMS > 100.
type Confidence struct {
	// Reports is the number of sender reports used, over all the lane's tracks.
	Reports int
	// ReportResidualMS is the largest, over the lane's tracks, root mean
	// square residual of the sender reports around the track's RTP → NTP line.
	ReportResidualMS float64
	// OffsetResidualMS is the largest, over the clocks that place the lane,
	// upper quartile of the per-10-s-window floor's height above the fitted
	// envelope: how well the offset line follows the least-delayed packets.
	OffsetResidualMS float64
	// TrackFloorMS is the largest, over the lane's tracks with reports, height
	// of the track's own arrival floor (the 10th percentile of its
	// per-10-s-window minima) above its sender clock's envelope. It is the
	// track's extra capture-to-send delay over the sender's quickest track:
	// about 0 for audio, tens of ms of encoder and pacer delay for video.
	// More than 100 ms means the track's reports disagree with its sender's
	// other tracks, and lip sync cannot be trusted.
	TrackFloorMS float64
	// ArrivalFallback is true when some of the lane is placed from arrival
	// times only (tracks without sender reports).
	ArrivalFallback bool
	// FallbackFraction is the fraction of the lane's media time placed from
	// arrival times only.
	FallbackFraction float64
	// Grade is GradeGood, GradeFair or GradePoor (see the type's comment).
	Grade string
}

// ParticipantClock is the estimated relation between one sender wall clock
// and the recorder's clock.
type ParticipantClock struct {
	Participant string
	// Publishes lists the publishes whose tracks share this clock (more than
	// one clock per participant means a rejoin from a device whose clock
	// differs).
	Publishes []string
	// OffsetMS is recorder time minus sender wall-clock time, floor network
	// delay included, at AtUnixNS: add it to a sender NTP time to get the
	// recorder time of arrival of an unqueued packet.
	OffsetMS float64
	// AtUnixNS is the recorder-clock instant (the clock's first sample) at
	// which OffsetMS holds.
	AtUnixNS int64
	// DriftPPM is how fast the offset grows, in µs per second: positive when
	// the sender's clock runs slow against the recorder's. 0 when not
	// estimated (fewer than 60 s of samples).
	DriftPPM float64
	// Samples is the number of (arrival, send time) samples used.
	Samples int
}

// RecorderTime returns the recorder-clock Unix ns at which the media with
// extended RTP time rtp was captured, expressed on the recorder's clock: the
// capture instant plus the sender's floor delay (see "The sync model" at
// the top of sync.go). It extrapolates beyond the track's media.
func (s *Sync) RecorderTime(trackID string, rtp int64) (int64, error) {
	t, err := s.placedTrack(trackID)
	if err != nil {
		return 0, err
	}
	if rtp > maxAbsRTP || rtp < -maxAbsRTP {
		return 0, fmt.Errorf("timeline: sync track %s: rtp %d: %w", trackID, rtp, ErrOutOfRange)
	}
	v, ok := t.toRec.at(rtp)
	if !ok {
		return 0, fmt.Errorf("timeline: sync track %s: rtp %d: %w", trackID, rtp, ErrOutOfRange)
	}
	return v, nil
}

// RTPAt is the inverse of RecorderTime: the extended RTP time (rounded to a
// tick) of the track's media placed at recorder-clock Unix ns t.
func (s *Sync) RTPAt(trackID string, t int64) (int64, error) {
	tr, err := s.placedTrack(trackID)
	if err != nil {
		return 0, err
	}
	v, ok := tr.toRec.inverse(t)
	if !ok || v > maxAbsRTP || v < -maxAbsRTP {
		return 0, fmt.Errorf("timeline: sync track %s: time %d: %w", trackID, t, ErrOutOfRange)
	}
	return v, nil
}

// SegmentStart returns the recorder-clock Unix ns of file time 0 of the
// segment with Index segIndex: decoded sample n of the file is the media of
// RTP time FirstRTP + n − CodecDelay.
//
// File time runs at the codec's nominal clock rate, but the media does not:
// a file second lasts ClockRate/TrackRate recorder seconds (±200 ppm is
// 0.7 s per hour), so a renderer maps file time through RecorderTime or
// TrackRate rather than adding file time to SegmentStart.
func (s *Sync) SegmentStart(trackID string, segIndex int) (int64, error) {
	t, err := s.placedTrack(trackID)
	if err != nil {
		return 0, err
	}
	first, ok := t.segs[segIndex]
	if !ok {
		return 0, fmt.Errorf("timeline: sync track %s: segment %d: %w", trackID, segIndex, ErrUnknownSegment)
	}
	return s.RecorderTime(trackID, first-t.codecDelay)
}

// TrackRate returns the track's effective RTP clock rate in ticks per
// recorder-clock second (the nominal rate corrected by the RTP clock's skew
// and the sender clock's drift).
func (s *Sync) TrackRate(trackID string) (float64, error) {
	t, err := s.placedTrack(trackID)
	if err != nil {
		return 0, err
	}
	return 1e9 / t.toRec.Slope, nil
}

// SessionStart returns the recorder-clock Unix ns of output time 0: the
// manifest's StartUnixNS, or the start of the earliest segment if that is
// earlier (or if StartUnixNS is unset).
func (s *Sync) SessionStart() int64 { return s.start }

// LaneConfidence returns how well the lane is placed; ok is false for an
// unknown lane.
func (s *Sync) LaneConfidence(laneID string) (c Confidence, ok bool) {
	c, ok = s.lanes[laneID]
	return c, ok
}

// Clocks returns the estimated sender clocks, sorted by participant and
// time. Participants without sender reports have none.
func (s *Sync) Clocks() []ParticipantClock {
	out := make([]ParticipantClock, len(s.clocks))
	for i, c := range s.clocks {
		c.Publishes = append([]string(nil), c.Publishes...)
		out[i] = c
	}
	return out
}

func (s *Sync) placedTrack(id string) (*trackSync, error) {
	t, ok := s.tracks[id]
	if !ok {
		return nil, fmt.Errorf("timeline: sync track %s: %w", id, ErrUnknownTrack)
	}
	if !t.placed {
		return nil, fmt.Errorf("timeline: sync track %s: %w", id, ErrNoTiming)
	}
	return t, nil
}

// affine maps an int64 x to an int64 y = Y0 + C + Slope*(x−X0), computing
// only the small part C + Slope*(x−X0) in float64.
type affine struct {
	X0, Y0   int64
	C, Slope float64
}

func (a affine) at(x int64) (int64, bool) {
	d, ok := sub(x, a.X0)
	if !ok {
		return 0, false
	}
	v := a.C + a.Slope*float64(d)
	if !finite(v) || math.Abs(v) > maxAbsNS {
		return 0, false
	}
	return add(a.Y0, int64(math.Round(v)))
}

func (a affine) inverse(y int64) (int64, bool) {
	d, ok := sub(y, a.Y0)
	if !ok || a.Slope == 0 {
		return 0, false
	}
	v := (float64(d) - a.C) / a.Slope
	if !finite(v) || math.Abs(v) > maxAbsNS {
		return 0, false
	}
	return add(a.X0, int64(math.Round(v)))
}

// then returns the map x → outer(a(x)).
func (a affine) then(outer affine) (affine, bool) {
	d, ok := sub(a.Y0, outer.X0)
	if !ok {
		return affine{}, false
	}
	r := affine{
		X0:    a.X0,
		Y0:    outer.Y0,
		C:     outer.C + outer.Slope*(float64(d)+a.C),
		Slope: a.Slope * outer.Slope,
	}
	return r, finite(r.C, r.Slope) && math.Abs(r.C) <= maxAbsNS
}

func sub(a, b int64) (int64, bool) {
	d := a - b
	return d, (a^b)&(a^d) >= 0
}

func add(a, b int64) (int64, bool) {
	s := a + b
	return s, (a^s)&(b^s) >= 0
}

// reextend returns v + k·2^32 nearest to ref.
func reextend(v, ref int64) int64 {
	d := v - ref // both within ±2^52
	k := (d + rtpWrap/2) >> 32
	return v - k*rtpWrap
}

func errRate(slope, nsPerTick, rate float64) error {
	return fmt.Errorf("sender reports imply a clock rate of %.0f Hz, the codec's is %.0f Hz", rate*nsPerTick/slope, rate)
}

var errNotFinite = errors.New("fit is not finite")

// trackIn is a track's timing evidence, RTP times re-extended.
type trackIn struct {
	t           *Track
	lane        *Lane
	publish     string
	nsPerTick   float64
	rtpRef      int64
	reports     []SenderReport // NTPUnixNS != 0
	arrivals    []ArrivalSample
	edges       []ArrivalSample // segment first/last packets and events
	hasMedia    bool
	mediaS      float64 // seconds of media (nominal), over all segments
	toNTP       affine  // RTP → sender NTP when reports exist
	ntpRef      int64
	fit         reportFit
	recSlope    float64   // ns per tick against the recorder, from arrivals (0: unused)
	clock       *clockFit // sender clock, for tracks with reports
	fallback    *envelopeFit
	fallbackMap affine
}

// clockSample is one (send time on the sender clock, arrival − send) pair.
type clockSample struct{ send, delay int64 }

// clockFit is one sender clock: send time → recorder time.
type clockFit struct {
	participant string
	publishes   []string
	samples     []clockSample
	env         envelopeFit
	toRec       affine
	first       int64 // earliest send time
	last        int64
}

// NewSync builds the sync model of m. It returns an error wrapping
// ErrInvalidManifest when the manifest is inconsistent: it fails Validate,
// repeats a track ID or a segment index, has values out of range, sender
// reports contradicting the codec's clock rate, or media without any timing
// evidence.
func NewSync(m *Manifest) (*Sync, error) {
	if m == nil {
		return nil, fmt.Errorf("timeline: sync: %w: nil manifest", ErrInvalidManifest)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	ins, err := collectTracks(m)
	if err != nil {
		return nil, err
	}
	for _, in := range ins {
		if err := in.fitReports(); err != nil {
			return nil, fmt.Errorf("timeline: sync track %s: %w: %w", in.t.ID, ErrInvalidManifest, err)
		}
	}
	rateFromArrivals := false
	for _, in := range ins {
		if err := in.rateFromArrivals(); err != nil {
			return nil, fmt.Errorf("timeline: sync track %s: %w: %w", in.t.ID, ErrInvalidManifest, err)
		}
		rateFromArrivals = rateFromArrivals || in.recSlope != 0
	}
	clocks, err := fitClocks(ins)
	if err != nil {
		return nil, err
	}
	if rateFromArrivals {
		// Turn rates against the recorder's clock into rates against the
		// sender's, now that the sender clocks' drifts are known, and refit.
		for _, in := range ins {
			if in.recSlope != 0 && in.clock != nil {
				if err := in.setNTPSlope(in.recSlope / in.clock.toRec.Slope); err != nil {
					return nil, fmt.Errorf("timeline: sync track %s: %w: %w", in.t.ID, ErrInvalidManifest, err)
				}
			}
		}
		if clocks, err = fitClocks(ins); err != nil {
			return nil, err
		}
	}
	s := &Sync{tracks: map[string]*trackSync{}, lanes: map[string]Confidence{}}
	for _, in := range ins {
		ts, err := in.place()
		if err != nil {
			return nil, fmt.Errorf("timeline: sync track %s: %w", in.t.ID, err)
		}
		s.tracks[in.t.ID] = ts
	}
	if err := s.findStart(m, ins); err != nil {
		return nil, err
	}
	s.grade(m, ins)
	for _, c := range clocks {
		s.clocks = append(s.clocks, c.describe())
	}
	sort.SliceStable(s.clocks, func(i, j int) bool {
		a, b := s.clocks[i], s.clocks[j]
		if a.Participant != b.Participant {
			return a.Participant < b.Participant
		}
		return a.AtUnixNS < b.AtUnixNS
	})
	return s, nil
}

func collectTracks(m *Manifest) ([]*trackIn, error) {
	var ins []*trackIn
	seen := map[string]bool{}
	for li := range m.Lanes {
		l := &m.Lanes[li]
		for ti := range l.Tracks {
			t := &l.Tracks[ti]
			bad := func(format string, args ...any) error {
				return fmt.Errorf("timeline: sync track %s: %w: %s", t.ID, ErrInvalidManifest, fmt.Sprintf(format, args...))
			}
			if t.ID == "" {
				return nil, fmt.Errorf("timeline: sync: %w: lane %q has a track with an empty id", ErrInvalidManifest, l.ID)
			}
			if seen[t.ID] {
				return nil, bad("track id used twice")
			}
			seen[t.ID] = true
			if err := checkRanges(t); err != nil {
				return nil, bad("%v", err)
			}
			in := &trackIn{t: t, lane: l, publish: t.Publish, nsPerTick: 1e9 / float64(t.Codec.ClockRate)}
			idx := map[int]bool{}
			for _, sg := range t.Segments {
				if idx[sg.Index] {
					return nil, bad("segment index %d used twice", sg.Index)
				}
				idx[sg.Index] = true
				in.mediaS += float64(sg.LastRTP-sg.FirstRTP) / float64(t.Codec.ClockRate)
			}
			in.hasMedia = len(t.Segments) > 0
			in.gather()
			ins = append(ins, in)
		}
	}
	return ins, nil
}

func checkRanges(t *Track) error {
	rtpOK := func(v int64) bool { return v >= -maxAbsRTP && v <= maxAbsRTP }
	nsOK := func(v int64) bool { return v >= -maxAbsNS && v <= maxAbsNS }
	if t.CodecDelay < 0 || t.CodecDelay > rtpWrap {
		return fmt.Errorf("codec_delay %d out of range", t.CodecDelay)
	}
	for i, sg := range t.Segments {
		if !rtpOK(sg.FirstRTP) || !rtpOK(sg.LastRTP) || !nsOK(sg.FirstArrivalUnixNS) || !nsOK(sg.LastArrivalUnixNS) {
			return fmt.Errorf("segment %d: value out of range", i)
		}
	}
	for i, r := range t.SenderReports {
		if !rtpOK(r.RTP) || !nsOK(r.NTPUnixNS) || !nsOK(r.ArrivalUnixNS) {
			return fmt.Errorf("sender report %d: value out of range", i)
		}
	}
	for i, a := range t.Arrivals {
		if !rtpOK(a.RTP) || !nsOK(a.ArrivalUnixNS) {
			return fmt.Errorf("arrival sample %d: value out of range", i)
		}
	}
	for i, e := range t.Events {
		if !rtpOK(e.RTP) || !nsOK(e.ArrivalUnixNS) {
			return fmt.Errorf("event %d: value out of range", i)
		}
	}
	return nil
}

// gather copies the track's timing evidence, re-extending RTP times.
func (in *trackIn) gather() {
	t := in.t
	switch {
	case len(t.Segments) > 0:
		in.rtpRef = t.Segments[0].FirstRTP
	case len(t.SenderReports) > 0:
		in.rtpRef = t.SenderReports[0].RTP
	case len(t.Arrivals) > 0:
		in.rtpRef = t.Arrivals[0].RTP
	}
	for _, r := range t.SenderReports {
		if r.NTPUnixNS != 0 {
			in.reports = append(in.reports, r)
		}
	}
	sort.SliceStable(in.reports, func(i, j int) bool { return in.reports[i].ArrivalUnixNS < in.reports[j].ArrivalUnixNS })
	prev := in.rtpRef
	for i := range in.reports {
		in.reports[i].RTP = reextend(in.reports[i].RTP, prev)
		prev = in.reports[i].RTP
	}

	in.arrivals = extendArrivals(t.Arrivals, in.rtpRef)
	// Segment RTP times are validated as extended; events are re-extended.
	for _, sg := range t.Segments {
		for _, e := range []ArrivalSample{
			{RTP: sg.FirstRTP, ArrivalUnixNS: sg.FirstArrivalUnixNS},
			{RTP: sg.LastRTP, ArrivalUnixNS: sg.LastArrivalUnixNS},
		} {
			if e.ArrivalUnixNS > 0 {
				in.edges = append(in.edges, e)
			}
		}
	}
	evs := make([]ArrivalSample, 0, len(t.Events))
	for _, e := range t.Events {
		evs = append(evs, ArrivalSample{RTP: e.RTP, ArrivalUnixNS: e.ArrivalUnixNS})
	}
	in.edges = append(in.edges, extendArrivals(evs, in.rtpRef)...)
}

// extendArrivals returns the samples with a positive arrival time, sorted by
// arrival, RTP times re-extended in that order starting from ref.
func extendArrivals(src []ArrivalSample, ref int64) []ArrivalSample {
	var out []ArrivalSample
	for _, a := range src {
		if a.ArrivalUnixNS > 0 {
			out = append(out, a)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ArrivalUnixNS < out[j].ArrivalUnixNS })
	prev := ref
	for i := range out {
		out[i].RTP = reextend(out[i].RTP, prev)
		prev = out[i].RTP
	}
	return out
}

// fitReports fits the track's RTP → NTP line.
func (in *trackIn) fitReports() error {
	if len(in.reports) == 0 {
		return nil
	}
	ntpRef := in.reports[0].NTPUnixNS
	xs := make([]float64, len(in.reports))
	ys := make([]float64, len(in.reports))
	for i, r := range in.reports {
		dx, ok1 := sub(r.RTP, in.rtpRef)
		dy, ok2 := sub(r.NTPUnixNS, ntpRef)
		if !ok1 || !ok2 {
			return errors.New("sender report times out of range")
		}
		xs[i], ys[i] = float64(dx), float64(dy)
	}
	f, err := fitReportLine(xs, ys, in.nsPerTick, float64(in.t.Codec.ClockRate))
	if err != nil {
		return err
	}
	in.fit = f
	in.ntpRef = ntpRef
	return in.setNTPSlope(f.l.Slope)
}

// setNTPSlope sets the RTP → NTP map to the given slope through the centre
// of the reports.
func (in *trackIn) setNTPSlope(slope float64) error {
	l := in.fit.l
	// ntp(r) = ntpRef + Y + slope*((r − rtpRef) − X)
	in.toNTP = affine{X0: in.rtpRef, Y0: in.ntpRef, C: l.Y - slope*l.X, Slope: slope}
	if !finite(in.toNTP.C) || math.Abs(in.toNTP.C) > maxAbsNS {
		return errors.New("sender report fit out of range")
	}
	return nil
}

// rateFromArrivals measures, for a track whose reports did not give a
// slope, its RTP rate against the recorder's clock from its arrival samples
// (see "The sync model"), and uses it as the RTP → NTP slope until the
// sender clock's drift is known.
func (in *trackIn) rateFromArrivals() error {
	if len(in.reports) == 0 || !in.fit.nominal || len(in.arrivals) < 3 {
		return nil
	}
	env, _, err := in.arrivalEnvelope(in.arrivals, minRateSpanS*1e9, maxRateFromArrivals)
	if err != nil || env.flat {
		return nil // no usable rate: the nominal one stays
	}
	in.recSlope = (1 + env.l.Slope) * in.nsPerTick
	return in.setNTPSlope(in.recSlope)
}

// clockSamples returns the (send, arrival − send) samples of a track with
// reports, from the given evidence.
func (in *trackIn) clockSamples(src []ArrivalSample) []clockSample {
	out := make([]clockSample, 0, len(src))
	for _, a := range src {
		send, ok := in.toNTP.at(a.RTP)
		if !ok {
			continue
		}
		if d, ok := sub(a.ArrivalUnixNS, send); ok {
			out = append(out, clockSample{send: send, delay: d})
		}
	}
	return out
}

// floorAboveClock is the height (ns) of the track's own arrival floor above
// its sender clock's envelope (see Confidence.TrackFloorMS); 0 without
// arrival samples.
func (in *trackIn) floorAboveClock() float64 {
	samples := in.clockSamples(in.arrivals)
	if len(samples) == 0 || in.clock == nil {
		return 0
	}
	xs := make([]float64, 0, len(samples))
	ys := make([]float64, 0, len(samples))
	for _, cs := range samples {
		rec, ok := in.clock.toRec.at(cs.send)
		if !ok {
			continue
		}
		line, ok1 := sub(rec, cs.send)
		h, ok2 := sub(cs.delay, line)
		dx, ok3 := sub(cs.send, in.clock.first)
		if ok1 && ok2 && ok3 {
			xs = append(xs, float64(dx))
			ys = append(ys, float64(h))
		}
	}
	if len(xs) == 0 {
		return 0
	}
	order := make([]int, len(xs))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return xs[order[a]] < xs[order[b]] })
	sx := make([]float64, len(xs))
	sy := make([]float64, len(xs))
	for k, i := range order {
		sx[k], sy[k] = xs[i], ys[i]
	}
	_, wy := windowMinima(sx, sy, envelopeWindowS*1e9)
	return math.Max(0, quantile(wy, 0.10))
}

// fitClocks estimates the sender clocks: per publish, then merged per
// participant where they agree.
func fitClocks(ins []*trackIn) ([]*clockFit, error) {
	type pubKey struct{ participant, publish string }
	byPub := map[pubKey][]*trackIn{}
	var keys []pubKey
	for _, in := range ins {
		if len(in.reports) == 0 {
			continue
		}
		k := pubKey{in.lane.Participant, in.publish}
		if _, ok := byPub[k]; !ok {
			keys = append(keys, k)
		}
		byPub[k] = append(byPub[k], in)
	}
	type pub struct {
		key     pubKey
		tracks  []*trackIn
		samples []clockSample
		own     *clockFit
	}
	pubs := map[string][]*pub{} // by participant
	var parts []string
	for _, k := range keys {
		tracks := byPub[k]
		var samples []clockSample
		// Evidence in order of preference: arrival samples, the reports' own
		// arrival times, the first and last packets of segments.
		for _, in := range tracks {
			samples = append(samples, in.clockSamples(in.arrivals)...)
		}
		if len(samples) == 0 {
			for _, in := range tracks {
				for _, r := range in.reports {
					if d, ok := sub(r.ArrivalUnixNS, r.NTPUnixNS); ok && r.ArrivalUnixNS > 0 {
						samples = append(samples, clockSample{send: r.NTPUnixNS, delay: d})
					}
				}
			}
		}
		if len(samples) == 0 {
			for _, in := range tracks {
				samples = append(samples, in.clockSamples(in.edges)...)
			}
		}
		if len(samples) == 0 {
			continue // its tracks stay unplaced; place() reports those with media
		}
		own, err := fitClock(k.participant, []string{k.publish}, samples)
		if err != nil {
			return nil, fmt.Errorf("timeline: sync participant %s publish %s: %w", k.participant, k.publish, err)
		}
		if _, ok := pubs[k.participant]; !ok {
			parts = append(parts, k.participant)
		}
		pubs[k.participant] = append(pubs[k.participant], &pub{key: k, tracks: tracks, samples: samples, own: own})
	}

	for _, in := range ins {
		in.clock = nil
	}
	var out []*clockFit
	for _, part := range parts {
		ps := pubs[part]
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].own.first < ps[j].own.first })
		type cluster struct {
			members []*pub
			fit     *clockFit
		}
		var clusters []*cluster
		for _, p := range ps {
			joined := false
			for _, c := range clusters {
				var samples []clockSample
				var names []string
				for _, mb := range c.members {
					samples = append(samples, mb.samples...)
					names = append(names, mb.key.publish)
				}
				samples = append(samples, p.samples...)
				names = append(names, p.key.publish)
				joint, err := fitClock(part, names, samples)
				if err != nil {
					continue
				}
				agree := joint.agrees(p.own)
				for _, mb := range c.members {
					agree = agree && joint.agrees(mb.own)
				}
				if agree {
					c.members = append(c.members, p)
					c.fit = joint
					joined = true
					break
				}
			}
			if !joined {
				clusters = append(clusters, &cluster{members: []*pub{p}, fit: p.own})
			}
		}
		for _, c := range clusters {
			for _, mb := range c.members {
				for _, in := range mb.tracks {
					in.clock = c.fit
				}
			}
			out = append(out, c.fit)
		}
	}
	return out, nil
}

// fitClock fits one sender clock's lower envelope.
func fitClock(participant string, publishes []string, samples []clockSample) (*clockFit, error) {
	c := &clockFit{participant: participant, publishes: publishes, samples: samples}
	c.first, c.last = samples[0].send, samples[0].send
	delays := make([]float64, 0, len(samples))
	for _, s := range samples {
		c.first = min(c.first, s.send)
		c.last = max(c.last, s.send)
		delays = append(delays, float64(s.delay))
	}
	// The delay reference is a sample's own delay (the median one), so that
	// every y below is a difference of two int64s.
	dRef := samples[0].delay
	if med := median(delays); finite(med) {
		best := math.Inf(1)
		for _, s := range samples {
			if e := math.Abs(float64(s.delay) - med); e < best {
				best, dRef = e, s.delay
			}
		}
	}
	xs := make([]float64, len(samples))
	ys := make([]float64, len(samples))
	for i, s := range samples {
		dx, ok1 := sub(s.send, c.first)
		dy, ok2 := sub(s.delay, dRef)
		if !ok1 || !ok2 {
			return nil, errors.New("arrival times out of range")
		}
		xs[i], ys[i] = float64(dx), float64(dy)
	}
	env, ok := lowerEnvelope(xs, ys, envelopeParams{
		window:       envelopeWindowS * 1e9,
		minSpan:      minDriftSpanS * 1e9,
		maxSlope:     maxClockDrift,
		outlierFloor: envelopeOutlierNS,
	})
	if !ok {
		return nil, errNotFinite
	}
	c.env = env
	// rec(s) = s + dRef + Y + Slope*((s − first) − X)
	y0, ok := add(c.first, dRef)
	if !ok {
		return nil, errors.New("arrival times out of range")
	}
	c.toRec = affine{X0: c.first, Y0: y0, C: env.l.Y - env.l.Slope*env.l.X, Slope: 1 + env.l.Slope}
	if !finite(c.toRec.C) || math.Abs(c.toRec.C) > maxAbsNS {
		return nil, errNotFinite
	}
	return c, nil
}

// agrees reports whether c places the send times of o's span within
// clockMergeNS of where o does.
func (c *clockFit) agrees(o *clockFit) bool {
	for _, s := range []int64{o.first, o.last} {
		a, ok1 := c.toRec.at(s)
		b, ok2 := o.toRec.at(s)
		if !ok1 || !ok2 {
			return false
		}
		d, ok := sub(a, b)
		if !ok || math.Abs(float64(d)) > clockMergeNS {
			return false
		}
	}
	return true
}

func (c *clockFit) describe() ParticipantClock {
	at, _ := c.toRec.at(c.first)
	return ParticipantClock{
		Participant: c.participant,
		Publishes:   append([]string(nil), c.publishes...),
		OffsetMS:    float64(at-c.first) / 1e6,
		AtUnixNS:    at,
		DriftPPM:    c.env.l.Slope * 1e6,
		Samples:     c.env.used,
	}
}

// place composes the track's maps into RTP → recorder time.
func (in *trackIn) place() (*trackSync, error) {
	t := in.t
	ts := &trackSync{codecDelay: t.CodecDelay, segs: map[int]int64{}}
	for _, sg := range t.Segments {
		ts.segs[sg.Index] = sg.FirstRTP
	}
	switch {
	case len(in.reports) > 0 && in.clock != nil:
		m, ok := in.toNTP.then(in.clock.toRec)
		if !ok {
			return nil, fmt.Errorf("%w: placement out of range", ErrInvalidManifest)
		}
		ts.toRec, ts.placed = m, true
	default:
		ev := in.arrivals
		if len(ev) < 2 {
			ev = append(append([]ArrivalSample(nil), ev...), in.edges...)
		}
		if len(ev) == 0 {
			if in.hasMedia {
				return nil, fmt.Errorf("%w: %w: media without sender reports or arrival times", ErrInvalidManifest, ErrNoTiming)
			}
			return ts, nil // nothing recorded, nothing to place
		}
		if err := in.fitFallback(ev); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
		}
		ts.toRec, ts.placed = in.fallbackMap, true
	}
	if ts.toRec.Slope <= 0 {
		return nil, fmt.Errorf("%w: placement runs backwards", ErrInvalidManifest)
	}
	return ts, nil
}

// fitFallback places a track without sender reports from arrival times: the
// lower envelope of arrival − nominal RTP time over RTP time.
func (in *trackIn) fitFallback(ev []ArrivalSample) error {
	env, aRef, err := in.arrivalEnvelope(ev, minDriftSpanS*1e9, maxFallbackSlope)
	if err != nil {
		return err
	}
	in.fallback = &env
	// rec(r) = aRef + x + Y + Slope*(x − X), x = (r − rtpRef)·nsPerTick
	in.fallbackMap = affine{
		X0:    in.rtpRef,
		Y0:    aRef,
		C:     env.l.Y - env.l.Slope*env.l.X,
		Slope: (1 + env.l.Slope) * in.nsPerTick,
	}
	if !finite(in.fallbackMap.C, in.fallbackMap.Slope) || math.Abs(in.fallbackMap.C) > maxAbsNS {
		return errNotFinite
	}
	return nil
}

// arrivalEnvelope fits the lower envelope of arrival − nominal RTP time
// (y, ns from the first arrival aRef) over nominal RTP time (x, ns from the
// track's reference).
func (in *trackIn) arrivalEnvelope(ev []ArrivalSample, minSpan, maxSlope float64) (envelopeFit, int64, error) {
	aRef := ev[0].ArrivalUnixNS
	xs := make([]float64, len(ev))
	ys := make([]float64, len(ev))
	for i, a := range ev {
		dr, ok1 := sub(a.RTP, in.rtpRef)
		da, ok2 := sub(a.ArrivalUnixNS, aRef)
		if !ok1 || !ok2 {
			return envelopeFit{}, 0, errors.New("arrival times out of range")
		}
		xs[i] = float64(dr) * in.nsPerTick
		ys[i] = float64(da) - xs[i]
	}
	env, ok := lowerEnvelope(xs, ys, envelopeParams{
		window:       envelopeWindowS * 1e9,
		minSpan:      minSpan,
		maxSlope:     maxSlope,
		outlierFloor: envelopeOutlierNS,
	})
	if !ok {
		return env, 0, errNotFinite
	}
	return env, aRef, nil
}

// findStart sets the session start: the manifest's, or the earliest
// segment start if earlier.
func (s *Sync) findStart(m *Manifest, ins []*trackIn) error {
	s.start = m.StartUnixNS
	have := m.StartUnixNS > 0
	for _, in := range ins {
		for _, sg := range in.t.Segments {
			v, err := s.SegmentStart(in.t.ID, sg.Index)
			if err != nil {
				return fmt.Errorf("timeline: sync track %s segment %d: %w: %w", in.t.ID, sg.Index, ErrInvalidManifest, err)
			}
			if !have || v < s.start {
				s.start, have = v, true
			}
		}
	}
	return nil
}

// grade computes every lane's Confidence.
func (s *Sync) grade(m *Manifest, ins []*trackIn) {
	byLane := map[string][]*trackIn{}
	for _, in := range ins {
		byLane[in.lane.ID] = append(byLane[in.lane.ID], in)
	}
	for _, l := range m.Lanes {
		var c Confidence
		var total, fallback float64
		var media, fallbackTracks int
		unmeasured := false // an RTP rate taken as nominal over a long span
		dropped := false    // a clock dropped many samples as impossibly early
		for _, in := range byLane[l.ID] {
			if !in.hasMedia {
				continue
			}
			media++
			total += in.mediaS
			switch {
			case len(in.reports) > 0 && in.clock != nil:
				c.Reports += in.fit.kept
				unmeasured = unmeasured || (in.fit.nominal && in.recSlope == 0 && in.mediaS > minRateSpanS)
				c.TrackFloorMS = math.Max(c.TrackFloorMS, in.floorAboveClock()/1e6)
				env := in.clock.env
				dropped = dropped || float64(env.dropped) > maxDroppedFraction*float64(env.used+env.dropped)
				c.ReportResidualMS = math.Max(c.ReportResidualMS, in.fit.rmsNS/1e6)
				c.OffsetResidualMS = math.Max(c.OffsetResidualMS, in.clock.env.floorP75/1e6)
			case in.fallback != nil:
				c.ArrivalFallback = true
				fallback += in.mediaS
				fallbackTracks++
				c.OffsetResidualMS = math.Max(c.OffsetResidualMS, in.fallback.floorP75/1e6)
			}
		}
		switch {
		case total > 0:
			c.FallbackFraction = fallback / total
		case media > 0:
			c.FallbackFraction = float64(fallbackTracks) / float64(media)
		}
		switch {
		case media == 0:
			c.Grade = GradePoor
		case c.TrackFloorMS > maxTrackFloorMS:
			c.Grade = GradePoor
		case c.FallbackFraction == 0 && !c.ArrivalFallback && c.Reports > 0 && !unmeasured && !dropped &&
			c.ReportResidualMS <= 1 && c.OffsetResidualMS <= 5:
			c.Grade = GradeGood
		case c.FallbackFraction <= 0.25 && c.ReportResidualMS <= 5 && c.OffsetResidualMS <= 20:
			c.Grade = GradeFair
		default:
			c.Grade = GradePoor
		}
		s.lanes[l.ID] = c
	}
}
