package capture

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tapedeck/tapedeck/capture/mkv"
	"github.com/tapedeck/tapedeck/timeline"
)

// ManifestName is the manifest's file name inside a session folder.
const ManifestName = "manifest.json"

// ErrInvalidJournal is wrapped by every error Compact returns for a journal
// whose records contradict each other or lack what the manifest needs. Such a
// journal is not repaired by retrying; its message names the record.
var ErrInvalidJournal = errors.New("invalid journal")

// Compact builds a session's manifest from its journal and its files. For a
// session that ended cleanly it only reads the journal; for one that did not
// (a crash), it scans every unfinished file for what actually reached the
// disk and marks the manifest Recovered.
//
// It returns a manifest that passes timeline's validation, or an error: a
// record the manifest cannot be built from (a track of an unknown publish, a
// segment of an unknown track, a segment that overlaps the previous one, ...)
// is refused with an error wrapping ErrInvalidJournal that names the record.
// Torn or corrupt lines, the tail a crash leaves, are skipped as before;
// records of a type this version does not know are ignored.
func Compact(dir string) (*timeline.Manifest, error) {
	f, err := os.Open(filepath.Join(dir, JournalName))
	if err != nil {
		return nil, fmt.Errorf("capture: compact %s: %w", dir, err)
	}
	recs, _, err := readJournal(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("capture: compact %s: %w", dir, err)
	}
	m, err := compact(dir, recs, scanSegment)
	if err != nil {
		return nil, fmt.Errorf("capture: compact %s: %w", dir, err)
	}
	return m, nil
}

// A Compactor compacts the folder of a session being recorded again and
// again (the render during the call looks at it every few seconds), reading
// only what was added since its last Manifest: the journal's new whole lines,
// and each unfinished segment from its last complete cluster on
// (mkv.Follower). Its manifests are Compact's. It is not safe for
// concurrent use.
type Compactor struct {
	dir     string
	off     int64    // journal bytes read: whole lines
	recs    []record // the records read
	follows map[string]*mkv.Follower
}

// NewCompactor returns a Compactor of the session folder dir.
func NewCompactor(dir string) *Compactor {
	return &Compactor{dir: dir, follows: map[string]*mkv.Follower{}}
}

// Manifest compacts the session as it is now (see Compact).
func (c *Compactor) Manifest() (*timeline.Manifest, error) {
	f, err := os.Open(filepath.Join(c.dir, JournalName))
	if err != nil {
		return nil, fmt.Errorf("capture: compact %s: %w", c.dir, err)
	}
	defer f.Close()
	if _, err := f.Seek(c.off, io.SeekStart); err != nil {
		return nil, fmt.Errorf("capture: compact %s: %w", c.dir, err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("capture: compact %s: %w", c.dir, err)
	}
	// A line being written is read at the next call.
	whole := bytes.LastIndexByte(data, '\n') + 1
	recs, _, err := readJournal(bytes.NewReader(data[:whole]))
	if err != nil {
		return nil, fmt.Errorf("capture: compact %s: %w", c.dir, err)
	}
	c.recs, c.off = append(c.recs, recs...), c.off+int64(whole)
	open := map[string]bool{}
	m, err := compact(c.dir, c.recs, func(path string) (mkv.Summary, error) {
		open[path] = true
		fl := c.follows[path]
		if fl == nil {
			fl = &mkv.Follower{}
			c.follows[path] = fl
		}
		f, err := os.Open(path)
		if err != nil {
			return mkv.Summary{}, err
		}
		defer f.Close()
		return fl.Scan(f)
	})
	for path := range c.follows {
		if !open[path] {
			delete(c.follows, path) // closed since
		}
	}
	if err != nil {
		return nil, fmt.Errorf("capture: compact %s: %w", c.dir, err)
	}
	return m, nil
}

// compaction is the manifest being built from a journal, record by record.
type compaction struct {
	m          *timeline.Manifest
	session    int // number of the session record, 0 before it
	ended      bool
	last       int64
	parts      map[string]*timeline.Participant
	partOrder  []string
	lanes      map[string]*timeline.Lane
	laneOrder  []string
	laneTracks map[string][]*timeline.Track
	tracks     map[string]*timeline.Track
	pubs       map[string]*timeline.Publish
	pubOrder   []string
	pubOwner   map[string]string
	pubEnded   map[string]bool
	paths      map[string]string // segment path → "track T segment N"
}

// compact builds the manifest of the records recs of the session folder
// dir, scanning the segments the journal does not say are closed with scan.
func compact(dir string, recs []record, scan func(path string) (mkv.Summary, error)) (*timeline.Manifest, error) {
	c := &compaction{
		m:     &timeline.Manifest{Version: timeline.ManifestVersion},
		parts: map[string]*timeline.Participant{}, lanes: map[string]*timeline.Lane{},
		laneTracks: map[string][]*timeline.Track{}, tracks: map[string]*timeline.Track{},
		pubs: map[string]*timeline.Publish{}, pubOwner: map[string]string{}, pubEnded: map[string]bool{},
		paths: map[string]string{},
	}
	for i := range recs {
		r := &recs[i]
		if err := c.add(i+1, r); err != nil {
			// Records are numbered from 1 among the journal's whole lines;
			// at_unix_ns finds the line with grep.
			return nil, fmt.Errorf("%w: record %d (%s, at_unix_ns %d): %w", ErrInvalidJournal, i+1, r.Type, r.At, err)
		}
	}
	if c.session == 0 {
		return nil, fmt.Errorf("%w: no session record", ErrInvalidJournal)
	}
	m := c.m
	if !c.ended {
		m.Recovered = true
		m.EndUnixNS = c.last
	}
	for _, id := range c.pubOrder {
		pub := c.pubs[id]
		if pub.EndUnixNS == 0 {
			pub.EndUnixNS = c.last
			pub.EndReason = "recorder stopped"
		}
		p := c.parts[c.pubOwner[id]]
		p.Publishes = append(p.Publishes, *pub)
	}
	for _, id := range c.partOrder {
		m.Participants = append(m.Participants, *c.parts[id])
	}
	for _, id := range c.laneOrder {
		l := c.lanes[id]
		for _, t := range c.laneTracks[id] {
			if err := finishSegments(dir, t, scan); err != nil {
				return nil, err
			}
			l.Tracks = append(l.Tracks, *t)
		}
		m.Lanes = append(m.Lanes, *l)
	}
	sort.SliceStable(m.Lanes, func(i, j int) bool { return m.Lanes[i].ID < m.Lanes[j].ID })
	// The checks above refuse every record that would make the manifest
	// invalid; this is the net under them (FuzzJournal fails if it catches
	// anything).
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// add applies record number n of the journal, or says why it cannot.
func (c *compaction) add(n int, r *record) error {
	if r.At > c.last {
		c.last = r.At
	}
	switch r.Type {
	case recSession:
		switch {
		case c.session != 0:
			return fmt.Errorf("a second session record (the first is record %d)", c.session)
		case r.Room == "":
			return errors.New("session record without room")
		case r.Session == "":
			return errors.New("session record without session id")
		}
		c.session = n
		if r.Part < 0 {
			return fmt.Errorf("session record with part %d", r.Part)
		}
		c.m.Room, c.m.Session, c.m.StartUnixNS = r.Room, r.Session, r.At
		c.m.Part, c.m.Node = r.Part, r.Node
	case recSessionEnd:
		c.m.EndUnixNS = r.At
		c.ended = true
	case recPublish:
		switch {
		case r.Publish == "":
			return errors.New("publish record without publish id")
		case r.Participant == "":
			return fmt.Errorf("publish %q without participant", r.Publish)
		case c.pubs[r.Publish] != nil:
			return fmt.Errorf("publish %q recorded twice", r.Publish)
		}
		if _, ok := c.parts[r.Participant]; !ok {
			c.parts[r.Participant] = &timeline.Participant{ID: r.Participant, Name: r.Name}
			c.partOrder = append(c.partOrder, r.Participant)
		}
		c.pubs[r.Publish] = &timeline.Publish{ID: r.Publish, StartUnixNS: r.At}
		c.pubOrder = append(c.pubOrder, r.Publish)
		c.pubOwner[r.Publish] = r.Participant
	case recPublishEnd:
		p, ok := c.pubs[r.Publish]
		switch {
		case !ok:
			return fmt.Errorf("end of unknown publish %q", r.Publish)
		case c.pubEnded[r.Publish]:
			return fmt.Errorf("publish %q ended twice", r.Publish)
		}
		c.pubEnded[r.Publish] = true
		p.EndUnixNS, p.EndReason = r.At, r.Reason
	case recTrack:
		return c.addTrack(r)
	case recSegmentOpen:
		return c.openSegment(r)
	case recSegmentClose:
		return c.closeSegment(r)
	case recSenderReport:
		t, err := c.track(r)
		if err != nil {
			return err
		}
		if r.SR == nil {
			return fmt.Errorf("sender report of track %q without sr", r.Track)
		}
		t.SenderReports = append(t.SenderReports, timeline.SenderReport{
			NTPUnixNS: r.SR.NTP, RTP: r.SR.RTP, ArrivalUnixNS: r.SR.Arrival, Packets: r.SR.Packets, Octets: r.SR.Octets,
		})
	case recStats:
		t, err := c.track(r)
		if err != nil {
			return err
		}
		st := r.Stats
		if st == nil {
			return fmt.Errorf("stats of track %q without stats", r.Track)
		}
		for _, a := range st.Arrivals {
			t.Arrivals = append(t.Arrivals, timeline.ArrivalSample{RTP: a[0], ArrivalUnixNS: a[1]})
		}
		for _, l := range st.Levels {
			t.Levels = append(t.Levels, timeline.AudioLevel{RTP: l[0], Level: int(l[1])})
		}
		t.PacketsReceived, t.PacketsLost, t.Duplicates, t.Late = st.Received, st.Lost, st.Duplicates, st.Late
	case recEvent:
		t, err := c.track(r)
		if err != nil {
			return err
		}
		e := r.Event
		switch {
		case e == nil:
			return fmt.Errorf("event of track %q without event", r.Track)
		case e.Kind == "":
			return fmt.Errorf("event of track %q without kind", r.Track)
		}
		t.Events = append(t.Events, timeline.Event{Kind: e.Kind, RTP: e.RTP, ArrivalUnixNS: e.Arrival, Width: e.Width, Height: e.Height})
	}
	return nil
}

func (c *compaction) track(r *record) (*timeline.Track, error) {
	t, ok := c.tracks[r.Track]
	if !ok {
		return nil, fmt.Errorf("unknown track %q", r.Track)
	}
	return t, nil
}

func (c *compaction) addTrack(r *record) error {
	kind := timeline.Kind(r.Kind)
	owner, published := c.pubOwner[r.Publish]
	switch {
	case r.Track == "":
		return errors.New("track record without track id")
	case c.tracks[r.Track] != nil:
		return fmt.Errorf("track %q recorded twice", r.Track)
	case r.Lane == "":
		return fmt.Errorf("track %q without lane", r.Track)
	case r.Participant == "":
		return fmt.Errorf("track %q without participant", r.Track)
	case !published:
		return fmt.Errorf("track %q of unknown publish %q", r.Track, r.Publish)
	case r.Participant != owner:
		return fmt.Errorf("track %q of participant %q, but its publish %q is %q's", r.Track, r.Participant, r.Publish, owner)
	case kind != timeline.Audio && kind != timeline.Video:
		return fmt.Errorf("track %q: kind %q, want audio or video", r.Track, r.Kind)
	case r.Codec == "":
		return fmt.Errorf("track %q without codec", r.Track)
	case r.ClockRate <= 0 || int64(r.ClockRate) > math.MaxUint32:
		return fmt.Errorf("track %q: clock_rate %d, want 1 to %d Hz", r.Track, r.ClockRate, uint32(math.MaxUint32))
	}
	l, ok := c.lanes[r.Lane]
	if !ok {
		l = &timeline.Lane{ID: r.Lane, Participant: r.Participant, Kind: kind}
		c.lanes[r.Lane] = l
		c.laneOrder = append(c.laneOrder, r.Lane)
	} else if l.Participant != r.Participant || l.Kind != kind {
		return fmt.Errorf("track %q (%s of %q) on lane %q, which is %s of %q", r.Track, kind, r.Participant, r.Lane, l.Kind, l.Participant)
	}
	t := &timeline.Track{
		ID: r.Track, Publish: r.Publish, SSRC: r.SSRC,
		Codec: timeline.Codec{Name: r.Codec, ClockRate: r.ClockRate, Channels: r.Channels, Fmtp: r.Fmtp},
	}
	c.tracks[r.Track] = t
	c.laneTracks[r.Lane] = append(c.laneTracks[r.Lane], t)
	return nil
}

func (c *compaction) openSegment(r *record) error {
	t, err := c.track(r)
	if err != nil {
		return err
	}
	s := r.Segment
	if s == nil {
		return fmt.Errorf("segment_open of track %q without segment", r.Track)
	}
	if !validSegmentPath(s.Path) {
		return fmt.Errorf("track %q segment %d: path %q is not a slash-separated path inside the session folder", r.Track, s.Index, s.Path)
	}
	if other, ok := c.paths[s.Path]; ok {
		return fmt.Errorf("track %q segment %d: path %q is already %s", r.Track, s.Index, s.Path, other)
	}
	if k := len(t.Segments); k > 0 {
		prev := &t.Segments[k-1]
		switch {
		case !prev.Closed:
			return fmt.Errorf("track %q segment %d opened while segment %d is open", r.Track, s.Index, prev.Index)
		case s.Index <= prev.Index:
			return fmt.Errorf("track %q segment %d after segment %d", r.Track, s.Index, prev.Index)
		case s.FirstRTP < prev.LastRTP:
			return fmt.Errorf("track %q segment %d starts at rtp %d, before the end of segment %d (rtp %d)", r.Track, s.Index, s.FirstRTP, prev.Index, prev.LastRTP)
		}
	}
	c.paths[s.Path] = fmt.Sprintf("track %q segment %d", r.Track, s.Index)
	t.Segments = append(t.Segments, timeline.Segment{
		Index: s.Index, Path: s.Path, FirstRTP: s.FirstRTP, LastRTP: s.FirstRTP,
		FirstArrivalUnixNS: s.FirstArrival, LastArrivalUnixNS: s.FirstArrival, Width: s.Width, Height: s.Height,
	})
	return nil
}

func (c *compaction) closeSegment(r *record) error {
	t, err := c.track(r)
	if err != nil {
		return err
	}
	s := r.Segment
	if s == nil {
		return fmt.Errorf("segment_close of track %q without segment", r.Track)
	}
	k := len(t.Segments)
	if k == 0 || t.Segments[k-1].Index != s.Index || t.Segments[k-1].Closed {
		return fmt.Errorf("track %q: close of segment %d, which is not open", r.Track, s.Index)
	}
	seg := &t.Segments[k-1]
	switch {
	case s.Path != seg.Path:
		return fmt.Errorf("track %q segment %d closed as %q, opened as %q", r.Track, s.Index, s.Path, seg.Path)
	case s.FirstRTP != seg.FirstRTP:
		return fmt.Errorf("track %q segment %d closed with first_rtp %d, opened with %d", r.Track, s.Index, s.FirstRTP, seg.FirstRTP)
	case s.LastRTP < s.FirstRTP:
		return fmt.Errorf("track %q segment %d: last_rtp %d before first_rtp %d", r.Track, s.Index, s.LastRTP, s.FirstRTP)
	}
	seg.LastRTP, seg.LastArrivalUnixNS = s.LastRTP, s.LastArrival
	seg.Packets, seg.Lost, seg.Frames, seg.Keyframes, seg.Bytes = s.Packets, s.Lost, s.Frames, s.Keyframes, s.Bytes
	seg.Width, seg.Height = s.Width, s.Height
	seg.Closed = true
	return nil
}

// validSegmentPath reports whether p names a file inside the session folder:
// relative, slash-separated, without "." or ".." elements.
func validSegmentPath(p string) bool {
	return p != "." && fs.ValidPath(p) && !strings.Contains(p, `\`)
}

// finishSegments fills in segments that were never closed (the recorder
// stopped while writing them) from what their files hold, and drops those
// whose file holds no media. Only a track's last segment can be open.
func finishSegments(dir string, t *timeline.Track, scan func(path string) (mkv.Summary, error)) error {
	kept := t.Segments[:0]
	for _, s := range t.Segments {
		if !s.Closed {
			sum, err := scan(filepath.Join(dir, filepath.FromSlash(s.Path)))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("track %q segment %d: %w", t.ID, s.Index, err)
			}
			if sum.Frames == 0 {
				continue
			}
			ticks, ok := durationTicks(sum.LastPTS, t.Codec.ClockRate)
			if !ok || s.FirstRTP+ticks < s.FirstRTP {
				return fmt.Errorf("track %q segment %d: %s: last frame at %v, out of range", t.ID, s.Index, s.Path, sum.LastPTS)
			}
			s.Frames, s.Keyframes, s.Bytes = sum.Frames, sum.Keyframes, sum.ValidBytes
			if s.Width == 0 && sum.Track.Width > 0 {
				// The size of the segment's first picture, as its close
				// record would have said (and as a manifest compacted
				// while the call goes on must say, for the render).
				s.Width, s.Height = sum.Track.Width, sum.Track.Height
			}
			s.LastRTP = s.FirstRTP + ticks
			if s.LastArrivalUnixNS < s.FirstArrivalUnixNS+int64(sum.LastPTS) {
				s.LastArrivalUnixNS = s.FirstArrivalUnixNS + int64(sum.LastPTS)
			}
		}
		kept = append(kept, s)
	}
	t.Segments = kept
	return nil
}

func scanSegment(path string) (mkv.Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return mkv.Summary{}, err
	}
	defer f.Close()
	return mkv.Scan(f)
}

// durationTicks converts d to ticks of clockRate, rounded to the nearest;
// ok is false when d is negative or the result does not fit an int64.
func durationTicks(d time.Duration, clockRate int) (ticks int64, ok bool) {
	rate := int64(clockRate)
	if d < 0 || rate <= 0 || rate > math.MaxUint32 {
		return 0, false
	}
	sec, rem := int64(d/time.Second), int64(d%time.Second)
	if sec > (math.MaxInt64-rate)/rate {
		return 0, false
	}
	// rem < 1e9 and rate < 2^32: rem*rate fits, and the sum is at most
	// (MaxInt64-rate) + rate.
	return sec*rate + (rem*rate+int64(time.Second)/2)/int64(time.Second), true
}

// WriteManifest writes m into dir atomically (temporary file, fsync, rename).
// It refuses to write a manifest that a reader would refuse: the bytes it
// would write are parsed and validated first.
func WriteManifest(dir string, m *timeline.Manifest) error {
	b, err := timeline.MarshalManifest(m)
	if err != nil {
		return fmt.Errorf("capture: write manifest %s: %w", dir, err)
	}
	if _, err := timeline.ParseManifest(bytes.NewReader(b)); err != nil {
		return fmt.Errorf("capture: write manifest %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".manifest-*.json")
	if err != nil {
		return fmt.Errorf("capture: write manifest %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("capture: write manifest %s: %w", dir, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("capture: write manifest %s: %w", dir, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("capture: write manifest %s: %w", dir, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, ManifestName)); err != nil {
		return fmt.Errorf("capture: write manifest %s: %w", dir, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
