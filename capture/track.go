package capture

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/tapedeck/tapedeck/capture/mkv"
	"github.com/tapedeck/tapedeck/timeline"
)

const (
	statsEvery     = time.Second            // journal arrivals, levels, counters
	arrivalWindow  = time.Second            // one lower-envelope sample per window
	levelWindow    = 250 * time.Millisecond // one audio level per window
	pauseAfter     = time.Second            // a silence this long is a pause
	pliMinInterval = 300 * time.Millisecond
)

// KeyframeLead is how long before each multiple of Config.KeyframeInterval
// of session time a keyframe is asked for. A sender answers a PLI with its
// next frame, so the keyframe is captured a one-way trip and up to a frame
// later; a window of the render starts decoding each source half a second
// and a frame before its first frame (render's placed), so the keyframe must
// land earlier than that: it does while the trip takes under 0.4 s.
const KeyframeLead = time.Second

// trackRecorder records one remote track: RTP → jitter buffer → frames →
// segment files, with everything the manifest needs journaled.
type trackRecorder struct {
	p     *publish
	rec   *Recorder
	log   *slog.Logger
	id    string
	lane  string
	kind  timeline.Kind
	codec timeline.Codec
	ssrc  uint32
	cfg   *Config

	jitter  *Jitter
	asm     *assembler
	clock   rtpClock
	lastExt atomic.Int64 // latest extended RTP time, for sender reports
	started atomic.Bool

	seg      *segment
	segIndex int
	pending  int64 // packets released before the first segment opened
	width    int
	height   int

	levelExt int // audio level header extension ID, 0 if none
	lastPLI  time.Time
	// lastKey is the arrival of the latest keyframe; keyAsked the
	// multiple of the keyframe interval last asked for (keyframeDue).
	lastKey  time.Time
	keyAsked time.Duration

	written     bool  // a frame was written, lastWritten is its RTP time
	lastWritten int64 // across segments: a new file never starts before it
	backwards   int64 // frames dropped because their time ran backwards

	live liveStats // what Sessions reports while the track records

	// statistics windows
	firstExt    int64
	lastArrival time.Time
	lastSeenExt int64
	winStart    time.Time
	winBest     int64 // min of arrival - rtp time, ns
	winBestRTP  int64
	winBestAt   int64
	winHas      bool
	arrivals    [][2]int64
	levelWin    int64
	levelBest   int
	levelHas    bool
	levels      [][2]int64
	lastStats   time.Time
}

// liveStats are a track's running figures, written on its receive path and
// read by Recorder.Sessions from other goroutines.
type liveStats struct {
	startedNS, lastNS atomic.Int64 // arrival of the first and the latest packet, Unix ns
	packets, bytes    atomic.Int64 // RTP packets and payload bytes received
	lost              atomic.Int64 // packets the jitter buffer gave up on
	width, height     atomic.Int32 // the latest keyframe's size (video)
}

// segment is an open track file.
type segment struct {
	index        int
	path         string // relative to the session folder
	w            *mkv.Writer
	firstRTP     int64
	firstArrival time.Time
	lastRTP      int64
	lastArrival  time.Time
	packets      int64
	lost         int64
	frames       int64
	keyframes    int64
	width        int
	height       int
}

func (p *publish) recordTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	s := p.sess
	c := remote.Codec()
	name := strings.ToLower(c.MimeType[strings.IndexByte(c.MimeType, '/')+1:])
	kind := timeline.Audio
	if remote.Kind() == webrtc.RTPCodecTypeVideo {
		kind = timeline.Video
	}
	r := s.rec
	r.mu.Lock()
	s.trackSeq++
	seq := s.trackSeq
	// A second simultaneous track of the same kind in one publish (a screen
	// share) gets a lane of its own; later publishes reuse the lanes.
	if p.kinds == nil {
		p.kinds = map[timeline.Kind]int{}
	}
	p.kinds[kind]++
	lane := p.participant + "/" + string(kind)
	if n := p.kinds[kind]; n > 1 {
		lane = fmt.Sprintf("%s-%d", lane, n)
	}
	r.mu.Unlock()

	t := &trackRecorder{
		p: p, rec: r, id: trackID(s.part, seq), lane: lane, kind: kind, ssrc: uint32(remote.SSRC()), cfg: &r.cfg,
		codec:  timeline.Codec{Name: name, ClockRate: int(c.ClockRate), Channels: int(c.Channels), Fmtp: c.SDPFmtpLine},
		jitter: NewJitter(r.cfg.JitterLatency),
	}
	t.log = p.log.With("track", t.id, "kind", kind, "codec", name)
	asm, err := newAssembler(name)
	if err != nil {
		t.log.Warn("track not recorded", "err", err)
		_, _ = io.Copy(io.Discard, readerOf(remote))
		return
	}
	t.asm = asm
	for _, e := range receiver.GetParameters().HeaderExtensions {
		if e.URI == extAudioLevel {
			t.levelExt = e.ID
		}
	}
	if err := s.jr.append(&record{
		Type: recTrack, Track: t.id, Lane: lane, Participant: p.participant, Publish: p.id, Kind: string(kind),
		SSRC: t.ssrc, Codec: name, ClockRate: t.codec.ClockRate, Channels: t.codec.Channels, Fmtp: t.codec.Fmtp,
	}); err != nil {
		t.log.Error("journal track", "err", err)
	}
	t.log.Info("track started", "ssrc", t.ssrc)
	r.count.activeTracks.Add(1)
	defer r.count.activeTracks.Add(-1)
	p.mu.Lock()
	if p.live == nil {
		p.live = map[string]*trackRecorder{}
	}
	p.live[t.id] = t
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.live, t.id)
		p.mu.Unlock()
	}()
	// A keyframe at the start of every file: ask for one now.
	t.requestKeyframe(time.Now())
	var rtcpDone sync.WaitGroup
	rtcpDone.Go(func() { t.readRTCP(receiver) })
	t.readRTP(remote)
	// The track has ended, so has its receiver; stopping it again makes
	// sure the RTCP reader returns before the track is journaled as done.
	if err := receiver.Stop(); err != nil {
		t.log.Debug("stop receiver", "err", err)
	}
	rtcpDone.Wait()
	t.finish()
}

// readerOf drains a track when it is not recorded, so pion does not block.
func readerOf(remote *webrtc.TrackRemote) io.Reader {
	return readFunc(func(b []byte) (int, error) {
		n, _, err := remote.Read(b)
		return n, err
	})
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(b []byte) (int, error) { return f(b) }

func (t *trackRecorder) readRTP(remote *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	var rel Released
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.log.Debug("track read ended", "err", err)
			}
			break
		}
		now := time.Now()
		t.rec.count.packetsReceived.Add(1)
		t.live.packets.Add(1)
		t.live.bytes.Add(int64(n))
		t.live.lastNS.Store(now.UnixNano())
		t.live.startedNS.CompareAndSwap(0, now.UnixNano())
		pkt := &rtp.Packet{}
		// The packet keeps its own copy: the jitter buffer holds it.
		if err := pkt.Unmarshal(append([]byte(nil), buf[:n]...)); err != nil {
			continue
		}
		if !t.jitter.Push(pkt, now) {
			for t.jitter.Drain(&rel) {
				t.handle(&rel)
			}
			t.jitter.Push(pkt, now)
		}
		for t.jitter.Pop(now, &rel) {
			t.handle(&rel)
		}
		if now.Sub(t.lastStats) >= statsEvery {
			t.flushStats(false)
			t.lastStats = now
		}
	}
}

// finish writes out what the jitter buffer still holds, closes the file and
// journals the track's last statistics.
func (t *trackRecorder) finish() {
	var rel Released
	for t.jitter.Drain(&rel) {
		t.handle(&rel)
	}
	t.closeSegment()
	t.flushStats(true)
	st := t.jitter.Stats()
	t.log.Info("track ended", "received", st.Received, "lost", st.Lost, "duplicates", st.Duplicates, "late", st.Late,
		"backwards_dropped", t.backwards)
}

// handle processes one packet released in order by the jitter buffer.
func (t *trackRecorder) handle(rel *Released) {
	ext := t.clock.extend(rel.Packet.Timestamp)
	if !t.started.Load() {
		t.firstExt = ext
		t.started.Store(true)
	}
	t.lastExt.Store(ext)
	t.rec.count.packetsWritten.Add(1)
	if rel.LostBefore > 0 {
		t.rec.count.packetsLost.Add(int64(rel.LostBefore))
		t.live.lost.Add(int64(rel.LostBefore))
	}
	t.observe(rel, ext)
	if t.seg != nil {
		t.seg.packets++
		t.seg.lost += int64(rel.LostBefore)
	} else {
		t.pending++
	}
	f, ok, wantKey := t.asm.push(rel, ext)
	if wantKey {
		t.requestKeyframe(rel.Arrival)
	}
	if !ok {
		return
	}
	if err := t.write(&f); err != nil {
		t.log.Error("write frame", "err", err)
	}
}

// observe keeps the timing and level statistics.
func (t *trackRecorder) observe(rel *Released, ext int64) {
	at := rel.Arrival
	// Pauses: a silence on the wire longer than pauseAfter.
	if !t.lastArrival.IsZero() && at.Sub(t.lastArrival) > pauseAfter {
		t.event(timeline.EventPause, t.lastSeenExt, t.lastArrival, 0, 0)
		t.event(timeline.EventResume, ext, at, 0, 0)
	}
	t.lastArrival, t.lastSeenExt = at, ext
	// Lower envelope of arrival minus media time, per window.
	if t.winStart.IsZero() || at.Sub(t.winStart) >= arrivalWindow {
		if t.winHas {
			t.arrivals = append(t.arrivals, [2]int64{t.winBestRTP, t.winBestAt})
		}
		t.winStart, t.winHas = at, false
	}
	media := (ext - t.firstExt) * int64(time.Second) / int64(t.codec.ClockRate)
	atNS := t.p.sess.unixNS(at)
	d := atNS - media
	if !t.winHas || d < t.winBest {
		t.winBest, t.winBestRTP, t.winBestAt, t.winHas = d, ext, atNS, true
	}
	// Audio level (RFC 6464): the loudest per window.
	if t.levelExt != 0 {
		if b := rel.Packet.GetExtension(uint8(t.levelExt)); len(b) > 0 {
			lvl := int(b[0] & 0x7f)
			win := (ext - t.firstExt) * int64(time.Second) / int64(t.codec.ClockRate) / int64(levelWindow)
			if t.levelHas && win != t.levelWin {
				t.levels = append(t.levels, [2]int64{t.firstExt + t.levelWin*int64(levelWindow)*int64(t.codec.ClockRate)/int64(time.Second), int64(t.levelBest)})
				t.levelHas = false
			}
			if !t.levelHas || lvl < t.levelBest {
				t.levelWin, t.levelBest, t.levelHas = win, lvl, true
			}
		}
	}
}

func (t *trackRecorder) event(kind string, ext int64, at time.Time, w, h int) {
	if err := t.p.sess.jr.append(&record{Type: recEvent, Track: t.id, Event: &eventRecord{
		Kind: kind, RTP: ext, Arrival: t.p.sess.unixNS(at), Width: w, Height: h,
	}}); err != nil {
		t.log.Error("journal event", "err", err)
	}
}

func (t *trackRecorder) flushStats(final bool) {
	if final {
		if t.winHas {
			t.arrivals = append(t.arrivals, [2]int64{t.winBestRTP, t.winBestAt})
			t.winHas = false
		}
		if t.levelHas {
			t.levels = append(t.levels, [2]int64{t.firstExt + t.levelWin*int64(levelWindow)*int64(t.codec.ClockRate)/int64(time.Second), int64(t.levelBest)})
			t.levelHas = false
		}
	}
	st := t.jitter.Stats()
	if err := t.p.sess.jr.append(&record{Type: recStats, Track: t.id, Stats: &statsRecord{
		Arrivals: t.arrivals, Levels: t.levels, Received: st.Received, Lost: st.Lost, Duplicates: st.Duplicates, Late: st.Late,
	}}); err != nil {
		t.log.Error("journal stats", "err", err)
	}
	t.arrivals, t.levels = t.arrivals[:0], t.levels[:0]
}

// requestKeyframe sends a PLI, at most one per pliMinInterval; it returns
// whether it did.
func (t *trackRecorder) requestKeyframe(now time.Time) bool {
	if t.kind != timeline.Video || now.Sub(t.lastPLI) < pliMinInterval {
		return false
	}
	t.lastPLI = now
	if err := t.p.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: t.ssrc}}); err != nil {
		t.log.Debug("send PLI", "err", err)
	}
	return true
}

// keyframeDue asks for a keyframe KeyframeLead before every multiple of
// Config.KeyframeInterval of session time, unless one arrived since that
// moment. Every video track of the session is asked at the same instants,
// and output time 0 is the session start, so the keyframes of all the
// participants land just before the render's window boundaries (multiples
// of its window, which the interval divides): a window's decoders start at
// a keyframe under a second before it, not at one a sender made up to
// 100 s earlier (browsers make one every 3000 frames unless asked). Editors
// get raw files that seek quickly for the same reason.
func (t *trackRecorder) keyframeDue(f *Frame) {
	every := t.cfg.KeyframeInterval
	if t.kind != timeline.Video || every <= 0 {
		return
	}
	if f.Keyframe {
		t.lastKey = f.Arrival
	}
	start := t.p.sess.start
	boundary := (f.Arrival.Sub(start) + KeyframeLead) / every * every
	if boundary <= 0 || boundary == t.keyAsked {
		return
	}
	if !t.lastKey.Before(start.Add(boundary - KeyframeLead)) {
		t.keyAsked = boundary // one came on its own
		return
	}
	if t.requestKeyframe(f.Arrival) {
		t.keyAsked = boundary
	}
}

// write puts a frame into the current segment, rotating when due.
func (t *trackRecorder) write(f *Frame) error {
	if t.written && f.RTP < t.lastWritten {
		// A frame whose time runs backwards (a sender that rewrites its
		// timestamps, B-frames): files and segments must follow each other
		// in time, so it is dropped, and said once.
		if t.backwards++; t.backwards == 1 {
			t.log.Warn("frame timestamps run backwards: such frames are dropped", "rtp", f.RTP, "last", t.lastWritten)
		}
		return nil
	}
	if f.Width > 0 && (f.Width != t.width || f.Height != t.height) {
		if t.width != 0 {
			t.event(timeline.EventResolution, f.RTP, f.Arrival, f.Width, f.Height)
			if t.codec.Name == "h264" && t.seg != nil {
				// New parameter sets: start a file whose header matches.
				t.closeSegment()
			}
		}
		t.width, t.height = f.Width, f.Height
		t.live.width.Store(int32(f.Width))
		t.live.height.Store(int32(f.Height))
	}
	t.keyframeDue(f)
	if t.rec.diskFull() {
		// Below the hard floor: finish the file cleanly rather than let
		// the disk fill mid-cluster, and write nothing until space is back.
		if t.seg != nil {
			t.log.Warn("disk full: closing the track's file", "free", formatBytes(t.rec.count.freeBytes.Load()))
			t.event(timeline.EventDiskFull, f.RTP, f.Arrival, 0, 0)
			t.closeSegment()
		}
		return nil
	}
	if t.seg != nil {
		clock := int64(t.codec.ClockRate)
		due := (f.RTP-t.seg.firstRTP) >= int64(t.cfg.SegmentDuration/time.Millisecond)*clock/1000 ||
			t.seg.w.Bytes() >= t.cfg.SegmentSize
		if due {
			if t.kind == timeline.Audio || f.Keyframe {
				t.closeSegment()
			} else {
				t.requestKeyframe(f.Arrival) // rotate at the next keyframe
			}
		}
	}
	if t.seg == nil {
		if t.kind == timeline.Video && !f.Keyframe {
			t.requestKeyframe(f.Arrival)
			return nil
		}
		if err := t.openSegment(f); err != nil {
			return err
		}
	}
	sg := t.seg
	err := sg.w.WriteFrame(f.RTP-sg.firstRTP, f.Keyframe, f.Data)
	if errors.Is(err, mkv.ErrNeedParameterSets) {
		t.requestKeyframe(f.Arrival)
		return nil
	}
	if err != nil {
		return fmt.Errorf("capture: track %s segment %d: %w", t.id, sg.index, err)
	}
	sg.frames++
	t.rec.count.framesWritten.Add(1)
	t.rec.count.bytesWritten.Add(int64(len(f.Data)))
	if f.Keyframe {
		sg.keyframes++
		if t.width == 0 {
			// Sizes the assembler cannot read (AV1, VP9 without a
			// scalability structure) the writer read from the frame.
			if tr := sg.w.Track(); tr.Width > 0 {
				t.width, t.height = tr.Width, tr.Height
				t.live.width.Store(int32(tr.Width))
				t.live.height.Store(int32(tr.Height))
			}
		}
		if sg.width == 0 {
			sg.width, sg.height = t.width, t.height
		}
	}
	sg.lastRTP, sg.lastArrival = f.RTP, f.Arrival
	t.written, t.lastWritten = true, f.RTP
	return nil
}

func (t *trackRecorder) openSegment(f *Frame) error {
	s := t.p.sess
	ext := ".webm"
	if t.codec.Name == "h264" {
		ext = ".mkv"
	}
	rel := fmt.Sprintf("tracks/%s/%s-%s-%03d%s", t.p.participant, t.kind, t.id, t.segIndex, ext)
	abs := filepath.Join(s.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return fmt.Errorf("capture: track folder: %w", err)
	}
	w, err := mkv.New(abs, mkv.Track{
		Codec: t.codec.Name, ClockRate: t.codec.ClockRate, Channels: t.codec.Channels, Width: t.width, Height: t.height,
	})
	if err != nil {
		return fmt.Errorf("capture: open track %s: %w", t.id, err)
	}
	t.seg = &segment{
		index: t.segIndex, path: rel, w: w, firstRTP: f.RTP, firstArrival: f.Arrival,
		lastRTP: f.RTP, lastArrival: f.Arrival, packets: t.pending, width: t.width, height: t.height,
	}
	t.pending = 0
	t.segIndex++
	if err := s.jr.append(&record{Type: recSegmentOpen, Track: t.id, Segment: &segmentRecord{
		Index: t.seg.index, Path: rel, FirstRTP: f.RTP, FirstArrival: s.unixNS(f.Arrival), FirstKeyframe: f.Keyframe,
	}}); err != nil {
		return err
	}
	t.log.Debug("segment opened", "path", rel)
	return nil
}

func (t *trackRecorder) closeSegment() {
	sg := t.seg
	if sg == nil {
		return
	}
	t.seg = nil
	t.rec.count.segmentsClosed.Add(1)
	if err := sg.w.Close(); err != nil {
		t.log.Error("close segment", "path", sg.path, "err", err)
	}
	if err := t.p.sess.jr.append(&record{Type: recSegmentClose, Track: t.id, Segment: &segmentRecord{
		Index: sg.index, Path: sg.path, FirstRTP: sg.firstRTP, FirstArrival: t.p.sess.unixNS(sg.firstArrival),
		LastRTP: sg.lastRTP, LastArrival: t.p.sess.unixNS(sg.lastArrival), Packets: sg.packets, Lost: sg.lost,
		Frames: sg.frames, Keyframes: sg.keyframes, Bytes: sg.w.Bytes(), Width: sg.width, Height: sg.height,
	}}); err != nil {
		t.log.Error("journal segment close", "err", err)
	}
	if hook := t.cfg.OnSegmentClosed; hook != nil {
		s := t.p.sess
		hook(SegmentClosed{Room: s.room, Session: s.id, Dir: s.dir, Path: sg.path, Lane: t.lane, Track: t.id, Bytes: sg.w.Bytes(), Part: s.part})
	}
}

// readRTCP journals the sender reports of the track's SSRC until the
// receiver stops.
func (t *trackRecorder) readRTCP(receiver *webrtc.RTPReceiver) {
	for {
		pkts, _, err := receiver.ReadRTCP()
		if err != nil {
			return
		}
		now := time.Now()
		for _, pk := range pkts {
			sr, ok := pk.(*rtcp.SenderReport)
			if !ok || sr.SSRC != t.ssrc {
				continue
			}
			if err := t.p.sess.jr.append(&record{Type: recSenderReport, Track: t.id, SR: &srRecord{
				NTP: ntpToUnixNano(sr.NTPTime), RTP: t.extendSR(sr.RTPTime), Arrival: t.p.sess.unixNS(now),
				Packets: sr.PacketCount, Octets: sr.OctetCount,
			}}); err != nil {
				t.log.Error("journal sender report", "err", err)
			}
		}
	}
}

// extendSR extends a sender report's RTP time next to the latest packet's.
func (t *trackRecorder) extendSR(ts uint32) int64 {
	if !t.started.Load() {
		return int64(ts)
	}
	last := t.lastExt.Load()
	return last + int64(int32(ts-uint32(last)))
}

// ntpToUnixNano converts a 64-bit NTP timestamp to Unix nanoseconds.
func ntpToUnixNano(ntp uint64) int64 {
	const ntpToUnix = 2208988800
	sec := int64(ntp>>32) - ntpToUnix
	frac := (ntp & 0xffffffff) * 1e9 >> 32
	return sec*1e9 + int64(frac)
}
