package capture

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/tapedeck/tapedeck/capture/mkv"
	"github.com/tapedeck/tapedeck/timeline"
)

// ManifestName is the manifest's file name inside a session folder.
const ManifestName = "manifest.json"

// Compact builds a session's manifest from its journal and its files. For a
// session that ended cleanly it only reads the journal; for one that did not
// (a crash), it scans every unfinished file for what actually reached the
// disk and marks the manifest Recovered.
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
	return compact(dir, recs)
}

func compact(dir string, recs []record) (*timeline.Manifest, error) {
	m := &timeline.Manifest{Version: timeline.ManifestVersion}
	parts := map[string]*timeline.Participant{}
	var partOrder []string
	lanes := map[string]*timeline.Lane{}
	var laneOrder []string
	laneTracks := map[string][]*timeline.Track{}
	tracks := map[string]*timeline.Track{}
	pubs := map[string]*timeline.Publish{}
	var pubOrder []string
	pubOwner := map[string]string{}
	ended := false
	var last int64

	trackOf := func(r *record) (*timeline.Track, error) {
		t, ok := tracks[r.Track]
		if !ok {
			return nil, fmt.Errorf("record %s for unknown track %q", r.Type, r.Track)
		}
		return t, nil
	}
	for i := range recs {
		r := &recs[i]
		if r.At > last {
			last = r.At
		}
		switch r.Type {
		case recSession:
			m.Room, m.Session, m.StartUnixNS = r.Room, r.Session, r.At
		case recSessionEnd:
			m.EndUnixNS = r.At
			ended = true
		case recPublish:
			if _, ok := parts[r.Participant]; !ok {
				parts[r.Participant] = &timeline.Participant{ID: r.Participant, Name: r.Name}
				partOrder = append(partOrder, r.Participant)
			}
			pubs[r.Publish] = &timeline.Publish{ID: r.Publish, StartUnixNS: r.At}
			pubOrder = append(pubOrder, r.Publish)
			pubOwner[r.Publish] = r.Participant
		case recPublishEnd:
			if p, ok := pubs[r.Publish]; ok {
				p.EndUnixNS, p.EndReason = r.At, r.Reason
			}
		case recTrack:
			if _, ok := lanes[r.Lane]; !ok {
				lanes[r.Lane] = &timeline.Lane{ID: r.Lane, Participant: r.Participant, Kind: timeline.Kind(r.Kind)}
				laneOrder = append(laneOrder, r.Lane)
			}
			t := &timeline.Track{
				ID: r.Track, Publish: r.Publish, SSRC: r.SSRC,
				Codec: timeline.Codec{Name: r.Codec, ClockRate: r.ClockRate, Channels: r.Channels, Fmtp: r.Fmtp},
			}
			tracks[r.Track] = t
			laneTracks[r.Lane] = append(laneTracks[r.Lane], t)
		case recSegmentOpen:
			t, err := trackOf(r)
			if err != nil {
				return nil, err
			}
			if r.Segment == nil {
				return nil, fmt.Errorf("segment_open without segment")
			}
			s := r.Segment
			t.Segments = append(t.Segments, timeline.Segment{
				Index: s.Index, Path: s.Path, FirstRTP: s.FirstRTP, LastRTP: s.FirstRTP,
				FirstArrivalUnixNS: s.FirstArrival, LastArrivalUnixNS: s.FirstArrival,
			})
		case recSegmentClose:
			t, err := trackOf(r)
			if err != nil {
				return nil, err
			}
			s := r.Segment
			if s == nil || len(t.Segments) == 0 || t.Segments[len(t.Segments)-1].Index != s.Index {
				return nil, fmt.Errorf("segment_close for a segment that was not opened")
			}
			seg := &t.Segments[len(t.Segments)-1]
			seg.LastRTP, seg.LastArrivalUnixNS = s.LastRTP, s.LastArrival
			seg.Packets, seg.Lost, seg.Frames, seg.Keyframes, seg.Bytes = s.Packets, s.Lost, s.Frames, s.Keyframes, s.Bytes
			seg.Width, seg.Height = s.Width, s.Height
			seg.Closed = true
		case recSenderReport:
			t, err := trackOf(r)
			if err != nil {
				return nil, err
			}
			if r.SR != nil {
				t.SenderReports = append(t.SenderReports, timeline.SenderReport{
					NTPUnixNS: r.SR.NTP, RTP: r.SR.RTP, ArrivalUnixNS: r.SR.Arrival, Packets: r.SR.Packets, Octets: r.SR.Octets,
				})
			}
		case recStats:
			t, err := trackOf(r)
			if err != nil {
				return nil, err
			}
			if st := r.Stats; st != nil {
				for _, a := range st.Arrivals {
					t.Arrivals = append(t.Arrivals, timeline.ArrivalSample{RTP: a[0], ArrivalUnixNS: a[1]})
				}
				for _, l := range st.Levels {
					t.Levels = append(t.Levels, timeline.AudioLevel{RTP: l[0], Level: int(l[1])})
				}
				t.PacketsReceived, t.PacketsLost, t.Duplicates, t.Late = st.Received, st.Lost, st.Duplicates, st.Late
			}
		case recEvent:
			t, err := trackOf(r)
			if err != nil {
				return nil, err
			}
			if e := r.Event; e != nil {
				t.Events = append(t.Events, timeline.Event{Kind: e.Kind, RTP: e.RTP, ArrivalUnixNS: e.Arrival, Width: e.Width, Height: e.Height})
			}
		}
	}
	if m.Session == "" {
		return nil, errors.New("journal has no session record")
	}
	if !ended {
		m.Recovered = true
		m.EndUnixNS = last
	}
	for _, id := range pubOrder {
		pub := pubs[id]
		if pub.EndUnixNS == 0 {
			pub.EndUnixNS = last
			pub.EndReason = "recorder stopped"
		}
		p := parts[pubOwner[id]]
		p.Publishes = append(p.Publishes, *pub)
	}
	for _, id := range partOrder {
		m.Participants = append(m.Participants, *parts[id])
	}
	for _, id := range laneOrder {
		l := lanes[id]
		for _, t := range laneTracks[id] {
			if err := finishSegments(dir, t); err != nil {
				return nil, err
			}
			l.Tracks = append(l.Tracks, *t)
		}
		m.Lanes = append(m.Lanes, *l)
	}
	sort.SliceStable(m.Lanes, func(i, j int) bool { return m.Lanes[i].ID < m.Lanes[j].ID })
	return m, nil
}

// finishSegments fills in segments that were never closed (the recorder
// stopped while writing them) from what their files hold, and drops those
// whose file holds no media.
func finishSegments(dir string, t *timeline.Track) error {
	kept := t.Segments[:0]
	for _, s := range t.Segments {
		if !s.Closed {
			sum, err := scanSegment(filepath.Join(dir, filepath.FromSlash(s.Path)))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("capture: recover %s: %w", s.Path, err)
			}
			if sum.Frames == 0 {
				continue
			}
			s.Frames, s.Keyframes, s.Bytes = sum.Frames, sum.Keyframes, sum.ValidBytes
			s.LastRTP = s.FirstRTP + durationTicks(sum.LastPTS, t.Codec.ClockRate)
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

func durationTicks(d time.Duration, clockRate int) int64 {
	return (int64(d)*int64(clockRate) + int64(time.Second)/2) / int64(time.Second)
}

// WriteManifest writes m into dir atomically (temporary file, fsync, rename).
func WriteManifest(dir string, m *timeline.Manifest) error {
	b, err := timeline.MarshalManifest(m)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".manifest-*.json")
	if err != nil {
		return fmt.Errorf("capture: write manifest: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("capture: write manifest: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("capture: write manifest: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("capture: write manifest: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, ManifestName)); err != nil {
		return fmt.Errorf("capture: write manifest: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
