package publisher

import (
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// lossFactory makes the interceptor that drops a fraction of the outgoing
// RTP packets. It is registered first, so it is the closest to the network:
// the NACK responder, further from the network, has kept every packet and
// resends some of those dropped, and those resends may be dropped too.
//
// The decision for original packets comes from a generator seeded with the
// seed and the track kind, so the same packets are dropped on every run;
// retransmissions draw from a second generator, as their timing depends on
// the receiver.
type lossFactory struct {
	rate float64
	seed int64

	mu    sync.Mutex
	stats map[uint32]*lossStats // by media SSRC
}

// lossStats counts what went through the loss stage for one stream.
type lossStats struct {
	Packets          int // original packets
	Bytes            int64
	Dropped          int // original packets dropped
	Retransmits      int // retransmissions (RTX or same SSRC)
	RetransmitsDrops int // retransmissions dropped
	FirstSeq         uint16
	FirstTimestamp   uint32
}

func newLossFactory(rate float64, seed int64) *lossFactory {
	return &lossFactory{rate: rate, seed: seed, stats: map[uint32]*lossStats{}}
}

// NewInterceptor is called for every PeerConnection.
func (f *lossFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &lossInterceptor{f: f}, nil
}

// snapshot returns a copy of the counts of a stream.
func (f *lossFactory) snapshot(ssrc uint32) lossStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.stats[ssrc]; s != nil {
		return *s
	}
	return lossStats{}
}

type lossInterceptor struct {
	interceptor.NoOp
	f *lossFactory
}

// kindSalt separates the generators of the two tracks.
func kindSalt(mime string) uint64 {
	if strings.HasPrefix(strings.ToLower(mime), "audio/") {
		return 0xa0d10
	}
	return 0x51de0
}

// BindLocalStream wraps the writer of one outgoing stream.
func (l *lossInterceptor) BindLocalStream(info *interceptor.StreamInfo, next interceptor.RTPWriter) interceptor.RTPWriter {
	f := l.f
	salt := kindSalt(info.MimeType)
	orig := rand.New(rand.NewPCG(uint64(f.seed), salt))
	resend := rand.New(rand.NewPCG(uint64(f.seed), salt^0xffff))
	st := &lossStats{}
	f.mu.Lock()
	f.stats[info.SSRC] = st
	f.mu.Unlock()
	var (
		mu      sync.Mutex
		started bool
		highest uint16
	)
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		mu.Lock()
		// A retransmission comes on the RTX SSRC, or (without RTX) with a
		// sequence number already sent.
		retransmit := h.SSRC != info.SSRC || (started && int16(h.SequenceNumber-highest) <= 0)
		var drop bool
		f.mu.Lock()
		if retransmit {
			st.Retransmits++
			drop = f.rate > 0 && resend.Float64() < f.rate
			if drop {
				st.RetransmitsDrops++
			}
		} else {
			if !started {
				st.FirstSeq, st.FirstTimestamp = h.SequenceNumber, h.Timestamp
			}
			started, highest = true, h.SequenceNumber
			st.Packets++
			st.Bytes += int64(len(payload))
			drop = f.rate > 0 && orig.Float64() < f.rate
			if drop {
				st.Dropped++
			}
		}
		f.mu.Unlock()
		mu.Unlock()
		if drop {
			// Lost on the way: the caller sees a successful send.
			return h.MarshalSize() + len(payload), nil
		}
		return next.Write(h, payload, a)
	})
}
