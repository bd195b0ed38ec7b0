// Package timeline owns tapedeck's data model: the manifest (what was
// recorded and when), the sync math that places every track on one clock,
// the edits a person writes, and the plan that says what to show and play at
// every instant of the output. It depends on nothing else of tapedeck.
package timeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
)

// ManifestVersion is the version of the manifest format written by this code.
// docs/manifest.md describes every field and its unit.
const ManifestVersion = 1

// Kind is the medium of a lane or track.
type Kind string

// The two kinds of media a lane can carry.
const (
	Audio Kind = "audio"
	Video Kind = "video"
)

// Manifest is the compacted record of one recording session: who published,
// which files hold their media, and the timing evidence (RTP times, sender
// reports, arrival times on the recorder's clock) needed to place every frame
// and sample on one timeline.
//
// Instants on the recorder's clock are Unix nanoseconds (suffix _unix_ns).
// RTP times are "extended": unwrapped across the 2^32 wrap, so that a track's
// first raw RTP timestamp R is stored as R and later ones as R + k*2^32 + ...
type Manifest struct {
	Version     int    `json:"version"`
	Room        string `json:"room"`
	Session     string `json:"session"`
	StartUnixNS int64  `json:"start_unix_ns"`
	EndUnixNS   int64  `json:"end_unix_ns"`
	Recovered   bool   `json:"recovered,omitempty"`
	// Part and Node are set in the manifest of one node's part of a session
	// that several recorders of a cluster recorded in turn: the part's number
	// (1 for the node that started the session) and the node's name.
	Part int    `json:"part,omitempty"`
	Node string `json:"node,omitempty"`
	// Parts is set in a manifest merged from the parts of such a session
	// (MergeParts): every part, in order, and whether its media is all there.
	Parts        []PartInfo    `json:"parts,omitempty"`
	Participants []Participant `json:"participants"`
	Lanes        []Lane        `json:"lanes"`
}

// Participant is one person (or publisher) in the session, identified by the
// name given at publish time. Several publishes (drop and rejoin) of the same
// name are the same participant.
type Participant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Publishes []Publish `json:"publishes"`
}

// Publish is one WHIP publish session of a participant.
type Publish struct {
	ID          string `json:"id"`
	StartUnixNS int64  `json:"start_unix_ns"`
	EndUnixNS   int64  `json:"end_unix_ns,omitempty"`
	EndReason   string `json:"end_reason,omitempty"`
}

// Lane is one participant's medium over the whole session: all the tracks
// (one per publish or SSRC) that carried it, in order. Time not covered by a
// track's segments is a gap.
type Lane struct {
	ID          string  `json:"id"`
	Participant string  `json:"participant"`
	Kind        Kind    `json:"kind"`
	Tracks      []Track `json:"tracks"`
}

// Codec describes the RTP payload of a track.
type Codec struct {
	Name      string `json:"name"` // "opus", "vp8", "vp9", "h264", "av1"
	ClockRate int    `json:"clock_rate"`
	Channels  int    `json:"channels,omitempty"`
	Fmtp      string `json:"fmtp,omitempty"`
}

// Track is one RTP stream (one SSRC within one publish).
type Track struct {
	ID      string `json:"id"`
	Publish string `json:"publish"`
	SSRC    uint32 `json:"ssrc"`
	Codec   Codec  `json:"codec"`
	// CodecDelay is the number of samples (at the codec clock rate) that a
	// decoder of the track's files outputs before the sample taken at the
	// segment's first RTP time. Capture writes files with this at 0.
	CodecDelay int64 `json:"codec_delay"`

	Segments      []Segment       `json:"segments"`
	SenderReports []SenderReport  `json:"sender_reports"`
	Arrivals      []ArrivalSample `json:"arrivals"`
	Levels        []AudioLevel    `json:"levels,omitempty"`
	Events        []Event         `json:"events,omitempty"`

	// Packet counters of the track's jitter buffer: every packet received
	// (duplicates included), sequence numbers never received, duplicates
	// dropped, and packets that came after their place was given up.
	// Received − Duplicates − Late is the sum of the segments' Packets.
	PacketsReceived int64 `json:"packets_received"`
	PacketsLost     int64 `json:"packets_lost"`
	Duplicates      int64 `json:"duplicates"`
	Late            int64 `json:"late"`
}

// Segment is one file of a track. File time 0 is FirstRTP: a frame with
// extended RTP time r is at (r-FirstRTP)/ClockRate seconds in the file.
type Segment struct {
	Index              int    `json:"index"`
	Path               string `json:"path"` // relative to the session folder, slash-separated
	FirstRTP           int64  `json:"first_rtp"`
	LastRTP            int64  `json:"last_rtp"`
	FirstArrivalUnixNS int64  `json:"first_arrival_unix_ns"`
	LastArrivalUnixNS  int64  `json:"last_arrival_unix_ns"`
	Packets            int64  `json:"packets"`
	Lost               int64  `json:"lost"`
	Frames             int64  `json:"frames"`
	Keyframes          int64  `json:"keyframes,omitempty"`
	Bytes              int64  `json:"bytes"`
	Width              int    `json:"width,omitempty"`
	Height             int    `json:"height,omitempty"`
	// Closed is true when the writer finished the file; false after a crash.
	Closed bool `json:"closed"`
}

// SenderReport is one RTCP sender report as received: the sender's wall
// clock (NTP, as Unix nanoseconds), the RTP time it pairs with (extended),
// and when it arrived on the recorder's clock.
type SenderReport struct {
	NTPUnixNS     int64  `json:"ntp_unix_ns"`
	RTP           int64  `json:"rtp"`
	ArrivalUnixNS int64  `json:"arrival_unix_ns"`
	Packets       uint32 `json:"packets"`
	Octets        uint32 `json:"octets"`
}

// ArrivalSample is the packet of a window (about one second) whose arrival
// was earliest relative to its RTP time: the lower envelope of arrival minus
// send time, from which network jitter has been removed.
type ArrivalSample struct {
	RTP           int64 `json:"rtp"`
	ArrivalUnixNS int64 `json:"arrival_unix_ns"`
}

// AudioLevel is the loudest RFC 6464 level seen in a window starting at RTP,
// in -dBov (0 loudest, 127 silence), as the header extension carries it.
type AudioLevel struct {
	RTP   int64 `json:"rtp"`
	Level int   `json:"level"`
}

// Event kinds.
const (
	EventResolution = "resolution" // Width and Height changed at RTP
	EventPause      = "pause"      // no media for a while from RTP on
	EventResume     = "resume"     // media again at RTP
	EventDiskFull   = "disk_full"  // the recorder's disk was full: the file was closed at RTP
)

// Event is something that happened on a track at an RTP time.
type Event struct {
	Kind          string `json:"kind"`
	RTP           int64  `json:"rtp"`
	ArrivalUnixNS int64  `json:"arrival_unix_ns"`
	Width         int    `json:"width,omitempty"`
	Height        int    `json:"height,omitempty"`
}

// ParseManifest reads and validates a manifest.
func ParseManifest(r io.Reader) (*Manifest, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("timeline: parse manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// MarshalManifest encodes m as indented JSON, lanes sorted by ID, so that the
// same recording always gives the same bytes.
func MarshalManifest(m *Manifest) ([]byte, error) {
	c := *m
	c.Version = ManifestVersion
	c.Lanes = append([]Lane(nil), m.Lanes...)
	sort.SliceStable(c.Lanes, func(i, j int) bool { return c.Lanes[i].ID < c.Lanes[j].ID })
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&c); err != nil {
		return nil, fmt.Errorf("timeline: encode manifest: %w", err)
	}
	return buf.Bytes(), nil
}

// ErrInvalidManifest is wrapped by every validation error.
var ErrInvalidManifest = errors.New("invalid manifest")

// Validate checks the manifest's internal consistency.
func (m *Manifest) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("timeline: %w: %s", ErrInvalidManifest, fmt.Sprintf(format, args...))
	}
	if m.Version != ManifestVersion {
		return bad("version %d, this tapedeck reads version %d", m.Version, ManifestVersion)
	}
	if m.Room == "" || m.Session == "" {
		return bad("room and session must be set")
	}
	if m.Part < 0 {
		return bad("part %d is negative", m.Part)
	}
	if err := validateParts(m.Parts); err != nil {
		return bad("%v", err)
	}
	parts := map[string]bool{}
	for _, p := range m.Participants {
		if p.ID == "" {
			return bad("participant with empty id")
		}
		if parts[p.ID] {
			return bad("participant %q listed twice", p.ID)
		}
		parts[p.ID] = true
	}
	lanes := map[string]bool{}
	for _, l := range m.Lanes {
		if lanes[l.ID] {
			return bad("lane %q listed twice", l.ID)
		}
		lanes[l.ID] = true
		if !parts[l.Participant] {
			return bad("lane %q: unknown participant %q", l.ID, l.Participant)
		}
		if l.Kind != Audio && l.Kind != Video {
			return bad("lane %q: kind %q, want audio or video", l.ID, l.Kind)
		}
		for _, t := range l.Tracks {
			if t.Codec.ClockRate <= 0 {
				return bad("lane %q track %q: clock_rate %d", l.ID, t.ID, t.Codec.ClockRate)
			}
			for i, s := range t.Segments {
				// Paths are read relative to the session folder (or
				// storage prefix): never absolute, never upwards.
				if !fs.ValidPath(s.Path) || s.Path == "." {
					return bad("lane %q track %q segment %d: path %q is not a relative path inside the session", l.ID, t.ID, i, s.Path)
				}
				if s.LastRTP < s.FirstRTP {
					return bad("lane %q track %q segment %d: last_rtp before first_rtp", l.ID, t.ID, i)
				}
				if i > 0 && s.FirstRTP < t.Segments[i-1].LastRTP {
					return bad("lane %q track %q segment %d: overlaps the previous segment", l.ID, t.ID, i)
				}
			}
		}
	}
	return nil
}

// Lane returns the lane with the given ID.
func (m *Manifest) Lane(id string) (*Lane, bool) {
	for i := range m.Lanes {
		if m.Lanes[i].ID == id {
			return &m.Lanes[i], true
		}
	}
	return nil, false
}
