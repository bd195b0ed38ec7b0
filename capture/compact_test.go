package capture

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture/mkv"
	"github.com/tapedeck/tapedeck/timeline"
)

// goodJournal is what a recorder writes for one participant who published
// one audio track, recorded in one segment, and left.
var goodJournal = []string{
	`{"type":"session","at_unix_ns":1000,"room":"r","session":"s"}`,
	`{"type":"publish","at_unix_ns":2000,"publish":"p","participant":"a","name":"a"}`,
	`{"type":"track","at_unix_ns":3000,"track":"t1","lane":"a/audio","participant":"a","publish":"p","kind":"audio","ssrc":5,"codec":"opus","clock_rate":48000,"channels":2}`,
	`{"type":"segment_open","at_unix_ns":4000,"track":"t1","segment":{"index":0,"path":"tracks/a/audio-t1-000.webm","first_rtp":100,"first_arrival_unix_ns":4000}}`,
	`{"type":"sr","at_unix_ns":5000,"track":"t1","sr":{"ntp_unix_ns":5,"rtp":100,"arrival_unix_ns":5000,"packets":1,"octets":2}}`,
	`{"type":"stats","at_unix_ns":6000,"track":"t1","stats":{"arrivals":[[100,6000]],"levels":[[100,30]],"received":4,"lost":1,"duplicates":1,"late":0}}`,
	`{"type":"segment_close","at_unix_ns":7000,"track":"t1","segment":{"index":0,"path":"tracks/a/audio-t1-000.webm","first_rtp":100,"first_arrival_unix_ns":4000,"last_rtp":1060,"last_arrival_unix_ns":7000,"packets":3,"lost":1,"frames":2,"bytes":10}}`,
	`{"type":"publish_end","at_unix_ns":8000,"publish":"p","reason":"client ended (DELETE)"}`,
	`{"type":"session_end","at_unix_ns":9000}`,
}

// journalWith returns goodJournal with line i (0-based) replaced by line, or
// removed when line is "".
func journalWith(i int, line string) []string {
	out := append([]string(nil), goodJournal...)
	if line == "" {
		return append(out[:i], out[i+1:]...)
	}
	out[i] = line
	return out
}

// journalInsert returns goodJournal with lines inserted before line i.
func journalInsert(i int, lines ...string) []string {
	out := append([]string(nil), goodJournal[:i]...)
	out = append(out, lines...)
	return append(out, goodJournal[i:]...)
}

// sessionDir makes a session folder holding a journal of the given lines.
func sessionDir(t *testing.T, lines []string, tail string) string {
	t.Helper()
	dir := t.TempDir()
	data := strings.Join(lines, "\n") + "\n" + tail
	if err := os.WriteFile(filepath.Join(dir, JournalName), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCompactGoodJournal(t *testing.T) {
	dir := sessionDir(t, goodJournal, "")
	m, err := Compact(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if got, want := m.StartUnixNS, int64(1000); got != want {
		t.Errorf("start_unix_ns = %d, want %d (the session record's at_unix_ns)", got, want)
	}
	if got, want := m.EndUnixNS, int64(9000); got != want {
		t.Errorf("end_unix_ns = %d, want %d (the session_end record's at_unix_ns)", got, want)
	}
	if got, want := m.Recovered, false; got != want {
		t.Errorf("recovered = %v, want %v", got, want)
	}
	if got, want := len(m.Lanes), 1; got != want {
		t.Fatalf("%d lanes, want %d", got, want)
	}
	tr := m.Lanes[0].Tracks[0]
	if got, want := len(tr.Segments), 1; got != want {
		t.Fatalf("%d segments, want %d", got, want)
	}
	s := tr.Segments[0]
	if got, want := [4]int64{s.FirstRTP, s.LastRTP, s.Packets, s.Lost}, [4]int64{100, 1060, 3, 1}; got != want {
		t.Errorf("segment first_rtp, last_rtp, packets, lost = %v, want %v", got, want)
	}
	if got, want := [4]int64{tr.PacketsReceived, tr.PacketsLost, tr.Duplicates, tr.Late}, [4]int64{4, 1, 1, 0}; got != want {
		t.Errorf("track received, lost, duplicates, late = %v, want %v", got, want)
	}
	if got, want := m.Participants[0].Publishes[0].EndReason, "client ended (DELETE)"; got != want {
		t.Errorf("end reason %q, want %q", got, want)
	}
}

// TestCompactRefuses checks that every record the manifest cannot be built
// from is refused, with an error that names the record and says what is
// wrong with it.
func TestCompactRefuses(t *testing.T) {
	const (
		pubB   = `{"type":"publish","at_unix_ns":2500,"publish":"q","participant":"b","name":"b"}`
		close0 = `{"type":"segment_close","at_unix_ns":7000,"track":"t1","segment":{"index":0,"path":"tracks/a/audio-t1-000.webm","first_rtp":100,"first_arrival_unix_ns":4000,"last_rtp":1060,"last_arrival_unix_ns":7000}}`
	)
	track := func(fields string) string {
		return `{"type":"track","at_unix_ns":3000,` + fields + `}`
	}
	open := func(index int, path string, first int) string {
		return `{"type":"segment_open","at_unix_ns":7500,"track":"t1","segment":{"index":` + strconv.Itoa(index) + `,"path":"` + path + `","first_rtp":` + strconv.Itoa(first) + `}}`
	}
	for _, c := range []struct {
		name    string
		journal []string
		want    string // after "capture: compact DIR: invalid journal: "
	}{
		{"no session record", journalWith(0, ""),
			"no session record"},
		{"session without room", journalWith(0, `{"type":"session","at_unix_ns":1000,"session":"s"}`),
			"record 1 (session, at_unix_ns 1000): session record without room"},
		{"session without id", journalWith(0, `{"type":"session","at_unix_ns":1000,"room":"r"}`),
			"record 1 (session, at_unix_ns 1000): session record without session id"},
		{"second session", journalInsert(1, `{"type":"session","at_unix_ns":1500,"room":"r","session":"s2"}`),
			"record 2 (session, at_unix_ns 1500): a second session record (the first is record 1)"},
		{"publish without id", journalInsert(2, `{"type":"publish","at_unix_ns":2500,"participant":"b"}`),
			"record 3 (publish, at_unix_ns 2500): publish record without publish id"},
		{"publish without participant", journalWith(1, `{"type":"publish","at_unix_ns":2000,"publish":"p"}`),
			`record 2 (publish, at_unix_ns 2000): publish "p" without participant`},
		{"publish twice", journalInsert(2, `{"type":"publish","at_unix_ns":2500,"publish":"p","participant":"a"}`),
			`record 3 (publish, at_unix_ns 2500): publish "p" recorded twice`},
		{"end of unknown publish", journalWith(7, `{"type":"publish_end","at_unix_ns":8000,"publish":"x"}`),
			`record 8 (publish_end, at_unix_ns 8000): end of unknown publish "x"`},
		{"publish ended twice", journalInsert(8, `{"type":"publish_end","at_unix_ns":8500,"publish":"p"}`),
			`record 9 (publish_end, at_unix_ns 8500): publish "p" ended twice`},
		{"track without id", journalWith(2, track(`"lane":"a/audio","participant":"a","publish":"p","kind":"audio","codec":"opus","clock_rate":48000`)),
			`record 3 (track, at_unix_ns 3000): track record without track id`},
		{"track without lane", journalWith(2, track(`"track":"t1","participant":"a","publish":"p","kind":"audio","codec":"opus","clock_rate":48000`)),
			`record 3 (track, at_unix_ns 3000): track "t1" without lane`},
		// The reviewer's fuzz finding: a lane with an empty participant.
		{"track without participant", journalWith(2, track(`"track":"t1","lane":"a/audio","publish":"p","kind":"audio","codec":"opus","clock_rate":48000`)),
			`record 3 (track, at_unix_ns 3000): track "t1" without participant`},
		{"track of unknown publish", journalWith(2, track(`"track":"t1","lane":"a/audio","participant":"a","publish":"x","kind":"audio","codec":"opus","clock_rate":48000`)),
			`record 3 (track, at_unix_ns 3000): track "t1" of unknown publish "x"`},
		{"track of another participant's publish", journalInsert(2, pubB, track(`"track":"t0","lane":"b/audio","participant":"b","publish":"p","kind":"audio","codec":"opus","clock_rate":48000`)),
			`record 4 (track, at_unix_ns 3000): track "t0" of participant "b", but its publish "p" is "a"'s`},
		{"track of no kind", journalWith(2, track(`"track":"t1","lane":"a/audio","participant":"a","publish":"p","kind":"screen","codec":"opus","clock_rate":48000`)),
			`record 3 (track, at_unix_ns 3000): track "t1": kind "screen", want audio or video`},
		{"track without codec", journalWith(2, track(`"track":"t1","lane":"a/audio","participant":"a","publish":"p","kind":"audio","clock_rate":48000`)),
			`record 3 (track, at_unix_ns 3000): track "t1" without codec`},
		{"track without clock rate", journalWith(2, track(`"track":"t1","lane":"a/audio","participant":"a","publish":"p","kind":"audio","codec":"opus"`)),
			`record 3 (track, at_unix_ns 3000): track "t1": clock_rate 0, want 1 to 4294967295 Hz`},
		{"track with a clock rate beyond 32 bits", journalWith(2, track(`"track":"t1","lane":"a/audio","participant":"a","publish":"p","kind":"audio","codec":"opus","clock_rate":4294967296`)),
			`record 3 (track, at_unix_ns 3000): track "t1": clock_rate 4294967296, want 1 to 4294967295 Hz`},
		{"track twice", journalInsert(3, goodJournal[2]),
			`record 4 (track, at_unix_ns 3000): track "t1" recorded twice`},
		{"lane of another participant", journalInsert(3, pubB, track(`"track":"t2","lane":"a/audio","participant":"b","publish":"q","kind":"audio","codec":"opus","clock_rate":48000`)),
			`record 5 (track, at_unix_ns 3000): track "t2" (audio of "b") on lane "a/audio", which is audio of "a"`},
		{"lane of another kind", journalInsert(3, track(`"track":"t2","lane":"a/audio","participant":"a","publish":"p","kind":"video","codec":"vp8","clock_rate":90000`)),
			`record 4 (track, at_unix_ns 3000): track "t2" (video of "a") on lane "a/audio", which is audio of "a"`},
		{"segment of unknown track", journalWith(3, `{"type":"segment_open","at_unix_ns":4000,"track":"t9","segment":{"index":0,"path":"x.webm"}}`),
			`record 4 (segment_open, at_unix_ns 4000): unknown track "t9"`},
		{"segment_open without segment", journalWith(3, `{"type":"segment_open","at_unix_ns":4000,"track":"t1"}`),
			`record 4 (segment_open, at_unix_ns 4000): segment_open of track "t1" without segment`},
		{"segment outside the session folder", journalWith(3, `{"type":"segment_open","at_unix_ns":4000,"track":"t1","segment":{"index":0,"path":"../other/x.webm"}}`),
			`record 4 (segment_open, at_unix_ns 4000): track "t1" segment 0: path "../other/x.webm" is not a slash-separated path inside the session folder`},
		{"segment at an absolute path", journalWith(3, `{"type":"segment_open","at_unix_ns":4000,"track":"t1","segment":{"index":0,"path":"/etc/passwd"}}`),
			`record 4 (segment_open, at_unix_ns 4000): track "t1" segment 0: path "/etc/passwd" is not a slash-separated path inside the session folder`},
		{"segment without path", journalWith(3, `{"type":"segment_open","at_unix_ns":4000,"track":"t1","segment":{"index":0}}`),
			`record 4 (segment_open, at_unix_ns 4000): track "t1" segment 0: path "" is not a slash-separated path inside the session folder`},
		{"segment opened while one is open", journalInsert(6, open(1, "tracks/a/audio-t1-001.webm", 2000)),
			`record 7 (segment_open, at_unix_ns 7500): track "t1" segment 1 opened while segment 0 is open`},
		{"segment index going back", journalInsert(7, open(0, "tracks/a/audio-t1-001.webm", 2000)),
			`record 8 (segment_open, at_unix_ns 7500): track "t1" segment 0 after segment 0`},
		{"segment path used twice", journalInsert(7, open(1, "tracks/a/audio-t1-000.webm", 2000)),
			`record 8 (segment_open, at_unix_ns 7500): track "t1" segment 1: path "tracks/a/audio-t1-000.webm" is already track "t1" segment 0`},
		{"segments overlapping", journalInsert(7, open(1, "tracks/a/audio-t1-001.webm", 500)),
			`record 8 (segment_open, at_unix_ns 7500): track "t1" segment 1 starts at rtp 500, before the end of segment 0 (rtp 1060)`},
		{"close of a segment never opened", journalWith(6, strings.Replace(close0, `"index":0`, `"index":1`, 1)),
			`record 7 (segment_close, at_unix_ns 7000): track "t1": close of segment 1, which is not open`},
		{"segment closed twice", journalInsert(7, close0),
			`record 8 (segment_close, at_unix_ns 7000): track "t1": close of segment 0, which is not open`},
		{"segment_close without segment", journalWith(6, `{"type":"segment_close","at_unix_ns":7000,"track":"t1"}`),
			`record 7 (segment_close, at_unix_ns 7000): segment_close of track "t1" without segment`},
		{"segment closed under another path", journalWith(6, strings.Replace(close0, "audio-t1-000", "audio-t1-009", 1)),
			`record 7 (segment_close, at_unix_ns 7000): track "t1" segment 0 closed as "tracks/a/audio-t1-009.webm", opened as "tracks/a/audio-t1-000.webm"`},
		{"segment closed with another start", journalWith(6, strings.Replace(close0, `"first_rtp":100`, `"first_rtp":200`, 1)),
			`record 7 (segment_close, at_unix_ns 7000): track "t1" segment 0 closed with first_rtp 200, opened with 100`},
		{"segment ending before it starts", journalWith(6, strings.Replace(close0, `"last_rtp":1060`, `"last_rtp":99`, 1)),
			`record 7 (segment_close, at_unix_ns 7000): track "t1" segment 0: last_rtp 99 before first_rtp 100`},
		{"sender report without sr", journalWith(4, `{"type":"sr","at_unix_ns":5000,"track":"t1"}`),
			`record 5 (sr, at_unix_ns 5000): sender report of track "t1" without sr`},
		{"sender report of unknown track", journalWith(4, `{"type":"sr","at_unix_ns":5000,"track":"t2","sr":{}}`),
			`record 5 (sr, at_unix_ns 5000): unknown track "t2"`},
		{"stats without stats", journalWith(5, `{"type":"stats","at_unix_ns":6000,"track":"t1"}`),
			`record 6 (stats, at_unix_ns 6000): stats of track "t1" without stats`},
		{"event without event", journalInsert(7, `{"type":"event","at_unix_ns":7500,"track":"t1"}`),
			`record 8 (event, at_unix_ns 7500): event of track "t1" without event`},
		{"event without kind", journalInsert(7, `{"type":"event","at_unix_ns":7500,"track":"t1","event":{"rtp":5}}`),
			`record 8 (event, at_unix_ns 7500): event of track "t1" without kind`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if strings.Contains(c.name, "beyond 32 bits") && strconv.IntSize == 32 {
				t.Skip("clock_rate 2^32 does not decode into a 32-bit int")
			}
			dir := sessionDir(t, c.journal, "")
			m, err := Compact(dir)
			if err == nil {
				t.Fatalf("compacted into a manifest of %d lanes; want the error %q", len(m.Lanes), c.want)
			}
			if got, want := err.Error(), "capture: compact "+dir+": invalid journal: "+c.want; got != want {
				t.Errorf("error\n got %s\nwant %s", got, want)
			}
			if got, want := errors.Is(err, ErrInvalidJournal), true; got != want {
				t.Errorf("errors.Is(err, ErrInvalidJournal) = %v, want %v", got, want)
			}
			// Recovery writes nothing from a journal it refuses.
			if _, err := RecoverSession(dir); !errors.Is(err, ErrInvalidJournal) {
				t.Errorf("RecoverSession: %v, want an error wrapping ErrInvalidJournal", err)
			}
			if _, err := os.Stat(filepath.Join(dir, ManifestName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s after a refused recovery: %v, want none", ManifestName, err)
			}
		})
	}
}

// TestCompactToleratesCrashTail checks what a recorder killed mid-write
// leaves: no session_end, a torn last line. The manifest is rebuilt and
// marked recovered, ending at the last whole record.
func TestCompactToleratesCrashTail(t *testing.T) {
	dir := sessionDir(t, goodJournal[:7], `{"type":"stats","at_unix_ns":7900,"track":"t1","stats":{"arr`)
	m, err := Compact(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Recovered, true; got != want {
		t.Errorf("recovered = %v, want %v", got, want)
	}
	if got, want := m.EndUnixNS, int64(7000); got != want {
		t.Errorf("end_unix_ns = %d, want %d (the last whole record)", got, want)
	}
	if got, want := m.Participants[0].Publishes[0].EndReason, "recorder stopped"; got != want {
		t.Errorf("end reason %q, want %q", got, want)
	}
	if got, want := len(m.Lanes[0].Tracks[0].Segments), 1; got != want {
		t.Errorf("%d segments, want %d", got, want)
	}
}

// TestCompactIgnoresUnknownTypes: a record type a newer recorder writes is
// not an error for this one.
func TestCompactIgnoresUnknownTypes(t *testing.T) {
	dir := sessionDir(t, journalInsert(4, `{"type":"bitrate","at_unix_ns":4500,"track":"t1","kbps":300}`), "")
	m, err := Compact(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(m.Lanes[0].Tracks[0].Segments), 1; got != want {
		t.Errorf("%d segments, want %d", got, want)
	}
}

// TestCompactReadsCrashedSegment: a segment that was never closed is read
// back from its file, up to the last frame that reached the disk.
func TestCompactReadsCrashedSegment(t *testing.T) {
	dir := sessionDir(t, goodJournal[:6], "")
	path := filepath.Join(dir, "tracks", "a", "audio-t1-000.webm")
	writeCrashedSegment(t, path)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := mkv.Scan(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compact(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	s := m.Lanes[0].Tracks[0].Segments[0]
	if got, want := s.Closed, false; got != want {
		t.Errorf("closed = %v, want %v", got, want)
	}
	if got, want := s.Frames, sum.Frames; got != want {
		t.Errorf("frames = %d, want %d (what the file holds)", got, want)
	}
	if got, want := s.LastRTP, 100+int64(sum.LastPTS/time.Millisecond)*48; got != want {
		t.Errorf("last_rtp = %d, want %d (first_rtp + the last frame's time in the file)", got, want)
	}
	// No file at all: the segment holds no media and is dropped.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	m, err = Compact(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(m.Lanes[0].Tracks[0].Segments), 0; got != want {
		t.Errorf("%d segments without a file, want %d", got, want)
	}
}

// TestWriteManifestRefusesInvalid: a manifest that a reader would refuse is
// not written, and nothing is left behind.
func TestWriteManifestRefusesInvalid(t *testing.T) {
	dir := sessionDir(t, goodJournal, "")
	m, err := Compact(dir)
	if err != nil {
		t.Fatal(err)
	}
	m.Lanes[0].Participant = ""
	err = WriteManifest(dir, m)
	if got, want := errString(err), "capture: write manifest "+dir+`: timeline: invalid manifest: lane "a/audio": unknown participant ""`; got != want {
		t.Errorf("error\n got %s\nwant %s", got, want)
	}
	if got, want := errors.Is(err, timeline.ErrInvalidManifest), true; got != want {
		t.Errorf("errors.Is(err, timeline.ErrInvalidManifest) = %v, want %v", got, want)
	}
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if got, want := strings.Join(names, " "), JournalName; got != want {
		t.Errorf("folder holds %q, want %q", got, want)
	}
	// Fixed, it is written, and reads back equal.
	m.Lanes[0].Participant = "a"
	if err := WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	back, err := timeline.ParseManifest(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := back.Lanes[0].Participant, "a"; got != want {
		t.Errorf("participant read back %q, want %q", got, want)
	}
}

// TestRecoverSessionKeepsManifestOfRefusedJournal: a journal compaction
// refuses does not replace a manifest that is already there.
func TestRecoverSessionKeepsManifestOfRefusedJournal(t *testing.T) {
	dir := sessionDir(t, journalWith(2, `{"type":"track","at_unix_ns":3000,"track":"t1"}`), "")
	const old = "{\"previous\":true}\n"
	if err := os.WriteFile(filepath.Join(dir, ManifestName), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := RecoverSession(dir)
	if got, want := errString(err), "capture: compact "+dir+`: invalid journal: record 3 (track, at_unix_ns 3000): track "t1" without lane`; got != want {
		t.Errorf("error\n got %s\nwant %s", got, want)
	}
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), old; got != want {
		t.Errorf("manifest after a refused recovery %q, want it untouched %q", got, want)
	}
}

func TestDurationTicks(t *testing.T) {
	for _, c := range []struct {
		d      time.Duration
		rate   int64
		want   int64
		wantOK bool
	}{
		{0, 48000, 0, true},
		{time.Second, 48000, 48000, true},
		{20 * time.Millisecond, 90000, 1800, true},
		{time.Hour + 10*time.Microsecond, 90000, 324000001, true}, // 0.9 tick rounds up
		{5555, 90000, 0, true},                                    // 0.49995 tick rounds down
		{5556, 90000, 1, true},                                    // 0.50004 tick rounds up
		{-time.Millisecond, 48000, 0, false},
		{time.Second, 0, 0, false},
		{time.Second, math.MaxUint32 + 1, 0, false},
		{math.MaxInt64, math.MaxUint32, 0, false},
		{math.MaxInt64, 1, 9223372037, true}, // 9223372036.85 s
	} {
		if c.rate > math.MaxInt32 && strconv.IntSize == 32 {
			continue
		}
		got, ok := durationTicks(c.d, int(c.rate))
		if got != c.want || ok != c.wantOK {
			t.Errorf("durationTicks(%d, %d) = %d, %v; want %d, %v", c.d, c.rate, got, ok, c.want, c.wantOK)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestCompactorFollowsCompact compacts a session again and again while its
// journal and its unfinished segment grow (a line cut mid-way at times, as a
// reader may see it), and compares each manifest with Compact's of the same
// folder.
func TestCompactorFollowsCompact(t *testing.T) {
	dir := t.TempDir()
	seg := filepath.Join(dir, "tracks", "a", "audio-t1-000.webm")
	writeCrashedSegment(t, seg)
	media, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(seg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(dir, JournalName)
	lines := goodJournal[:6] // the segment stays open
	// More stats records as the call goes on.
	for i := range 20 {
		lines = append(lines, fmt.Sprintf(`{"type":"stats","at_unix_ns":%d,"track":"t1","stats":{"arrivals":[[%d,%d]],"levels":[[%d,40]],"received":%d,"lost":0,"duplicates":0,"late":0}}`,
			7000+i, 200+i*960, 7000+i, 200+i*960, 10+i))
	}
	x := NewCompactor(dir)
	var written, compared int
	for k := 1; k <= len(lines); k++ {
		text := strings.Join(lines[:k], "\n") + "\n"
		if k%3 == 0 && k < len(lines) {
			text += lines[k][:len(lines[k])/2] // a line being written
		}
		if err := os.WriteFile(journal, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if grown := len(media) * k / len(lines); grown > written {
			f, err := os.OpenFile(seg, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(media[written:grown]); err != nil {
				t.Fatal(err)
			}
			f.Close()
			written = grown
		}
		want, werr := Compact(dir)
		got, gerr := x.Manifest()
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("after %d lines: Compactor's error %v, Compact's %v", k, gerr, werr)
		}
		if werr != nil {
			continue
		}
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(want)
		if !bytes.Equal(a, b) {
			t.Fatalf("after %d lines, %d bytes of the segment:\nCompactor %s\nCompact   %s", k, written, a, b)
		}
		compared++
	}
	m, err := x.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Lanes[0].Tracks[0].Segments[0].Frames, int64(0); compared < 10 || got == want {
		t.Errorf("%d manifests compared; the open segment has %d frames in the last, want some", compared, got)
	}
}

// BenchmarkLook is a look of the render during the call at a session 5
// minutes into a video segment (about 56 MB at 1.5 Mbit/s) with a journal of
// 3,000 records, one second of media and ten records after the last look:
// Compact reads it all again, a Compactor only what was added.
//
//	go test -run '^$' -bench Look ./capture
func BenchmarkLook(b *testing.B) {
	for _, name := range []string{"Compact", "Compactor"} {
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			seg := filepath.Join(dir, "tracks", "a", "video-t1-000.webm")
			if err := os.MkdirAll(filepath.Dir(seg), 0o755); err != nil {
				b.Fatal(err)
			}
			file, err := os.Create(seg)
			if err != nil {
				b.Fatal(err)
			}
			defer file.Close()
			w, err := mkv.NewWith(file, mkv.Track{Codec: "vp8", ClockRate: 90000, Width: 1280, Height: 720})
			if err != nil {
				b.Fatal(err)
			}
			frame := make([]byte, 6250) // 1.5 Mbit/s at 30 fps
			var n int64
			second := func() {
				for range 30 {
					if err := w.WriteFrame(n*3000, n%60 == 0, frame); err != nil {
						b.Fatal(err)
					}
					n++
				}
			}
			journal, err := os.Create(filepath.Join(dir, JournalName))
			if err != nil {
				b.Fatal(err)
			}
			defer journal.Close()
			header := strings.Join(goodJournal[:3], "\n") + "\n" +
				`{"type":"segment_open","at_unix_ns":4000,"track":"t1","segment":{"index":0,"path":"tracks/a/video-t1-000.webm","first_rtp":100,"first_arrival_unix_ns":4000}}` + "\n"
			if _, err := journal.WriteString(header); err != nil {
				b.Fatal(err)
			}
			var records int
			stats := func(k int) {
				for range k {
					fmt.Fprintf(journal, `{"type":"stats","at_unix_ns":%d,"track":"t1","stats":{"arrivals":[[%d,%d]],"levels":[[%d,40]],"received":%d,"lost":0,"duplicates":0,"late":0}}`+"\n",
						5000+records, 100+records*3000, 5000+records, 100+records*3000, records)
					records++
				}
			}
			for range 300 {
				second()
				stats(10)
			}
			x := NewCompactor(dir)
			look := Compact
			if name == "Compactor" {
				look = func(string) (*timeline.Manifest, error) { return x.Manifest() }
				if _, err := look(dir); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				second()
				stats(10)
				b.StartTimer()
				m, err := look(dir)
				if err != nil {
					b.Fatal(err)
				}
				if m.Lanes[0].Tracks[0].Segments[0].Frames < 8000 {
					b.Fatalf("%d frames", m.Lanes[0].Tracks[0].Segments[0].Frames)
				}
			}
		})
	}
}
