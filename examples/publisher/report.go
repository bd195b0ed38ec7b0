package publisher

import (
	"context"
	"time"

	"github.com/pion/rtcp"
)

// Sender reports are made here, not by pion's report interceptor, which
// takes the RTP time of a report from the instant the last packet was
// written: a publisher whose writes run late (a loaded machine) then
// reports its RTP clock behind by that delay, and the reports of one
// publish disagree with another's by as much. A browser derives the RTP
// time of a report from the capture time of its last frame (WebRTC's
// RTCPSender); the capture clock here is the pacer's timeline, so
// RTP = first + (now − Start)·rate holds whenever the packets leave.

// toNTP converts a wall-clock time to the 64-bit NTP format (seconds since
// 1900 in the high word, the binary fraction in the low word).
func toNTP(t time.Time) uint64 {
	const unixToNTP = 2208988800 // seconds from 1900 to 1970
	ns := t.UnixNano()
	sec := uint64(ns/1e9) + unixToNTP
	frac := uint64(ns%1e9) << 32 / 1e9
	return sec<<32 | frac
}

// sendReports sends a sender report for every track that has sent media,
// every reportInterval, until ctx is done.
func (s *session) sendReports(ctx context.Context) {
	tick := time.NewTicker(reportInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		var pkts []rtcp.Packet
		for _, t := range []*localTrack{s.video, s.audio} {
			if t == nil {
				continue
			}
			if sr, ok := t.senderReport(now, now.Add(s.cfg.ClockOffset)); ok {
				pkts = append(pkts, sr)
			}
		}
		if len(pkts) == 0 {
			continue
		}
		if err := s.pc.WriteRTCP(pkts); err != nil {
			s.log.Debug("publisher: send sender reports", "err", err)
		}
	}
}

// senderReport is the track's report at now (local clock) with wall-clock
// time wall; false before the track has sent anything.
func (t *localTrack) senderReport(now, wall time.Time) (*rtcp.SenderReport, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.bound || t.start.IsZero() || t.packets == 0 {
		return nil, false
	}
	elapsed := now.Sub(t.start)
	ticks := int64(elapsed/time.Second)*int64(t.codec.ClockRate) + int64(elapsed%time.Second)*int64(t.codec.ClockRate)/int64(time.Second)
	return &rtcp.SenderReport{
		SSRC:        t.ssrc,
		NTPTime:     toNTP(wall),
		RTPTime:     t.ts0 + uint32(ticks),
		PacketCount: t.packets,
		OctetCount:  t.octets,
	}, true
}

// setStart tells the track the instant its RTP time ts0 is due.
func (t *localTrack) setStart(start time.Time) {
	t.mu.Lock()
	t.start = start
	t.mu.Unlock()
}
