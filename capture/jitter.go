package capture

import (
	"time"

	"github.com/pion/rtp"
)

// jitterSlots is the ring size of a jitter buffer: the largest reorder
// distance, in packets, that can be repaired. At 2.5 Mbit/s and 1200-byte
// packets this is about 2 s of video.
const jitterSlots = 512

// Jitter is a per-track jitter buffer: it puts packets back in sequence
// order, drops duplicates (Chromium re-sends packets over RTX while it probes
// bandwidth) and packets that arrive after their place was given up, and
// counts the sequence numbers that never came.
//
// A packet is held until every packet before it has been released, or until
// it has waited Latency (then the missing ones are declared lost), or until
// the buffer is half full. Jitter is not safe for concurrent use.
type Jitter struct {
	latency time.Duration

	slots   [jitterSlots]jitterSlot
	held    int
	next    uint64 // extended sequence number expected next
	started bool
	highest uint64 // highest extended sequence number seen

	stats JitterStats
}

type jitterSlot struct {
	used    bool
	seq     uint64
	arrival time.Time
	pkt     rtp.Packet
}

// JitterStats counts what a jitter buffer saw.
type JitterStats struct {
	Received   int64 // packets pushed
	Released   int64 // packets given out in order
	Duplicates int64 // packets seen before (or already released)
	Late       int64 // packets that came after their place was declared lost
	Lost       int64 // sequence numbers skipped
}

// Released is a packet given out by the jitter buffer, in sequence order.
type Released struct {
	Packet  rtp.Packet
	Seq     uint64    // extended sequence number
	Arrival time.Time // when it was received
	// LostBefore is the number of packets declared lost immediately before
	// this one.
	LostBefore int
}

// NewJitter returns a jitter buffer that holds packets up to latency.
func NewJitter(latency time.Duration) *Jitter {
	return &Jitter{latency: latency}
}

// Stats returns the counters so far.
func (j *Jitter) Stats() JitterStats { return j.stats }

// extend turns a 16-bit sequence number into an extended one, choosing the
// value closest to the highest one seen.
func (j *Jitter) extend(seq uint16) uint64 {
	if !j.started {
		return uint64(seq) + 1<<16 // room below for packets that arrive early-late
	}
	base := j.highest &^ 0xffff
	cand := base | uint64(seq)
	switch {
	case cand+0x8000 < j.highest:
		cand += 1 << 16
	case cand > j.highest+0x8000 && cand >= 1<<16:
		cand -= 1 << 16
	}
	return cand
}

// Push adds a received packet. The packet's payload is retained until the
// packet is released; callers must not reuse its buffers. Push returns false,
// and keeps nothing, when the packet is too far ahead of the packets held:
// the caller then drains the buffer (Drain) and pushes the packet again.
func (j *Jitter) Push(p *rtp.Packet, arrival time.Time) bool {
	j.stats.Received++
	seq := j.extend(p.SequenceNumber)
	if !j.started {
		j.started = true
		j.next = seq
		j.highest = seq
	}
	if seq < j.next && j.stats.Released == 0 && j.stats.Lost == 0 && seq+jitterSlots/2 > j.highest {
		// Nothing given out yet: a packet that was sent before the first
		// one to arrive still has its place.
		j.next = seq
	}
	if seq < j.next {
		if seq+jitterSlots >= j.next && j.wasReleased(seq) {
			j.stats.Duplicates++
		} else {
			j.stats.Late++
		}
		return true
	}
	if seq >= j.next+jitterSlots {
		if j.held > 0 {
			j.stats.Received--
			return false
		}
		// Too far ahead to wait for the packets in between: give up on them.
		j.skipTo(seq - jitterSlots + 1)
	}
	s := &j.slots[seq%jitterSlots]
	if s.used && s.seq == seq {
		j.stats.Duplicates++
		return true
	}
	*s = jitterSlot{used: true, seq: seq, arrival: arrival, pkt: *p}
	j.held++
	if seq > j.highest {
		j.highest = seq
	}
	return true
}

// wasReleased reports whether seq (below next) was released rather than
// declared lost. Released slots keep their sequence number with used=false.
func (j *Jitter) wasReleased(seq uint64) bool {
	s := &j.slots[seq%jitterSlots]
	return !s.used && s.seq == seq && !s.arrival.IsZero()
}

// skipTo declares every packet before seq lost; the buffer holds nothing.
func (j *Jitter) skipTo(seq uint64) {
	if seq > j.next {
		j.stats.Lost += int64(seq - j.next)
		j.next = seq
	}
}

// Pop releases the next packet if it is due at time now. Call it in a loop
// after each Push until it returns false.
func (j *Jitter) Pop(now time.Time, out *Released) bool {
	if j.held == 0 {
		return false
	}
	lost := 0
	if j.stats.Released == 0 && j.stats.Lost == 0 && !j.due(now) {
		// At the start, wait for packets sent before the first to arrive.
		return false
	}
	for {
		s := &j.slots[j.next%jitterSlots]
		if s.used && s.seq == j.next {
			out.Packet = s.pkt
			out.Seq = s.seq
			out.Arrival = s.arrival
			out.LostBefore = lost
			s.used = false
			s.pkt = rtp.Packet{}
			j.held--
			j.next++
			j.stats.Released++
			return true
		}
		// The next packet is missing. Wait for it unless the oldest held
		// packet has waited long enough or the buffer is filling up.
		if lost == 0 && !j.due(now) {
			return false
		}
		*s = jitterSlot{seq: j.next}
		j.stats.Lost++
		lost++
		j.next++
	}
}

// due reports whether the buffer should stop waiting for a missing packet.
func (j *Jitter) due(now time.Time) bool {
	if j.held >= jitterSlots/2 {
		return true
	}
	// The first held packet after the gap is the oldest that matters.
	for seq := j.next; seq <= j.highest && seq < j.next+jitterSlots; seq++ {
		s := &j.slots[seq%jitterSlots]
		if s.used && s.seq == seq {
			return now.Sub(s.arrival) >= j.latency
		}
	}
	return false
}

// Drain releases everything still held, declaring gaps lost; for the end of
// a track.
func (j *Jitter) Drain(out *Released) bool {
	if j.held == 0 {
		return false
	}
	return j.Pop(time.Unix(1<<40, 0), out)
}
