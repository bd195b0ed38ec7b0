package capture

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/tapedeck/tapedeck/capture/mkv"
	"github.com/tapedeck/tapedeck/timeline"
)

// FuzzRTPPath drives arbitrary packets through the jitter buffer, the frame
// assembler and the segment writer, and checks that what reaches the file
// is what the assembler produced, in order, and that nothing panics.
func FuzzRTPPath(f *testing.F) {
	f.Add([]byte{0x80, 0x60, 0x00, 0x01, 0, 0, 0x0b, 0xb8, 0, 0, 0, 1, 0x10, 0x00, 0x9d, 0x01, 0x2a}, uint8(0))
	f.Add(bytes.Repeat([]byte{0x80, 0xe0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 1, 0x7c, 0x85, 0x88}, 3), uint8(2))
	f.Add([]byte{0x80, 0x6f, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 9, 0xfc, 0xff, 0xfe}, uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, codecSel uint8) {
		codec := []string{"vp8", "vp9", "h264", "opus", "av1"}[codecSel%5]
		asm, err := newAssembler(codec)
		if err != nil {
			t.Fatal(err)
		}
		clockRate := 90000
		if codec == "opus" {
			clockRate = 48000
		}
		var file bytes.Buffer
		w, err := mkv.NewWith(&file, mkv.Track{Codec: codec, ClockRate: clockRate, Channels: 2})
		if err != nil {
			t.Fatal(err)
		}
		j := NewJitter(20 * time.Millisecond)
		var clock rtpClock
		var first int64
		started := false
		var frames int64
		now := time.Unix(1000, 0)
		handle := func(r *Released) {
			ts := clock.extend(r.Packet.Timestamp)
			fr, ok, _ := asm.push(r, ts)
			if !ok {
				return
			}
			if !started {
				first, started = ts, true
			}
			if ts < first {
				return
			}
			if err := w.WriteFrame(ts-first, fr.Keyframe, fr.Data); err == nil {
				frames++
			}
		}
		// Split the input into packets at 0x80 version bytes.
		var r Released
		for len(data) > 0 {
			n := bytes.IndexByte(data[1:], 0x80) + 1
			if n <= 0 {
				n = len(data)
			}
			var p rtp.Packet
			if err := p.Unmarshal(append([]byte(nil), data[:n]...)); err == nil {
				now = now.Add(7 * time.Millisecond)
				if !j.Push(&p, now) {
					for j.Drain(&r) {
						handle(&r)
					}
					j.Push(&p, now)
				}
				for j.Pop(now, &r) {
					handle(&r)
				}
			}
			data = data[n:]
		}
		for j.Drain(&r) {
			handle(&r)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if frames == 0 {
			return
		}
		sum, err := mkv.Scan(bytes.NewReader(file.Bytes()))
		if err != nil {
			t.Fatalf("scan of our own file: %v", err)
		}
		if got, want := sum.Frames, frames; got != want {
			t.Fatalf("file holds %d frames, wrote %d", got, want)
		}
	})
}

// FuzzJournal feeds arbitrary bytes to the journal reader and the manifest
// compaction (what crash recovery runs on whatever a crash left): they must
// return an error or a manifest that passes its own validation and survives
// being written and read back, never panic. A refusal must come from the
// record checks, which name the record: the validation compact runs last is
// a net, and the fuzzer fails if that net catches anything.
func FuzzJournal(f *testing.F) {
	const journal = `{"type":"session","at_unix_ns":1,"room":"r","session":"s"}
{"type":"publish","at_unix_ns":2,"publish":"p","participant":"a","name":"a"}
{"type":"track","at_unix_ns":3,"track":"t1","lane":"a/audio","participant":"a","publish":"p","kind":"audio","ssrc":5,"codec":"opus","clock_rate":48000,"channels":2}
{"type":"segment_open","at_unix_ns":4,"track":"t1","segment":{"index":0,"path":"tracks/a/x.webm","first_rtp":100,"first_arrival_unix_ns":4}}
{"type":"sr","at_unix_ns":5,"track":"t1","sr":{"ntp_unix_ns":5,"rtp":100,"arrival_unix_ns":5,"packets":1,"octets":2}}
{"type":"stats","at_unix_ns":6,"track":"t1","stats":{"arrivals":[[100,6]],"levels":[[100,30]],"received":3,"lost":0,"duplicates":0,"late":0}}
`
	f.Add([]byte(journal + `{"type":"segment_close","at_unix_ns":7,"track":"t1","segment":{"index":0,"path":"tracks/a/x.webm","first_rtp":100,"first_arrival_unix_ns":4,"last_rtp":1060,"last_arrival_unix_ns":7,"packets":3,"frames":2,"bytes":10}}
{"type":"event","at_unix_ns":8,"track":"t1","event":{"kind":"disk_full","rtp":1060,"arrival_unix_ns":8}}
{"type":"publish_end","at_unix_ns":8,"publish":"p","reason":"x"}
{"type":"session_end","at_unix_ns":9}
`))
	// Two participants, a republish onto the same lanes, a rotation, events.
	f.Add([]byte(`{"type":"session","at_unix_ns":10,"room":"r","session":"s"}
{"type":"publish","at_unix_ns":11,"publish":"p1","participant":"a","name":"a"}
{"type":"publish","at_unix_ns":12,"publish":"q1","participant":"b","name":"b"}
{"type":"track","at_unix_ns":13,"track":"t1","lane":"a/video","participant":"a","publish":"p1","kind":"video","ssrc":7,"codec":"vp8","clock_rate":90000}
{"type":"track","at_unix_ns":14,"track":"t2","lane":"b/audio","participant":"b","publish":"q1","kind":"audio","ssrc":8,"codec":"opus","clock_rate":48000,"channels":2}
{"type":"segment_open","at_unix_ns":15,"track":"t1","segment":{"index":0,"path":"tracks/a/video-t1-000.webm","first_rtp":9000,"first_arrival_unix_ns":15}}
{"type":"event","at_unix_ns":16,"track":"t1","event":{"kind":"resolution","rtp":18000,"arrival_unix_ns":16,"width":320,"height":240}}
{"type":"segment_close","at_unix_ns":17,"track":"t1","segment":{"index":0,"path":"tracks/a/video-t1-000.webm","first_rtp":9000,"first_arrival_unix_ns":15,"last_rtp":27000,"last_arrival_unix_ns":17,"packets":30,"lost":2,"frames":10,"keyframes":1,"bytes":900,"width":640,"height":480}}
{"type":"segment_open","at_unix_ns":18,"track":"t1","segment":{"index":1,"path":"tracks/a/video-t1-001.webm","first_rtp":30000,"first_arrival_unix_ns":18}}
{"type":"event","at_unix_ns":19,"track":"t1","event":{"kind":"pause","rtp":31000,"arrival_unix_ns":19}}
{"type":"event","at_unix_ns":20,"track":"t1","event":{"kind":"resume","rtp":99000,"arrival_unix_ns":20}}
{"type":"publish_end","at_unix_ns":21,"publish":"p1","reason":"replaced by a new publish of the same participant"}
{"type":"publish","at_unix_ns":22,"publish":"p2","participant":"a","name":"a"}
{"type":"track","at_unix_ns":23,"track":"t3","lane":"a/video","participant":"a","publish":"p2","kind":"video","ssrc":9,"codec":"h264","clock_rate":90000,"fmtp":"packetization-mode=1"}
{"type":"stats","at_unix_ns":24,"track":"t2","stats":{"received":50,"lost":1,"duplicates":3,"late":1}}
{"type":"session_end","at_unix_ns":25}
`))
	// A crash: the segment was never closed, its file is read back.
	f.Add([]byte(journal + `{"type":"stats","at_unix_ns":7,"track":"t1","st`))
	f.Add([]byte(`{"type":"session","room":"r","session":"s"}` + "\n" + `{"type":"segment_close","track":"nope"}`))
	f.Add([]byte("{\"type\":\"session\"\n\x00\xff"))
	dir := f.TempDir()
	// The one file of the folder: an unclosed Opus segment, as a killed
	// recorder leaves it. Segments with other paths have no file.
	writeCrashedSegment(f, filepath.Join(dir, "tracks", "a", "x.webm"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, _, err := readJournal(bytes.NewReader(data))
		if err != nil {
			return
		}
		m, err := compact(dir, recs, scanSegment)
		if errors.Is(err, timeline.ErrInvalidManifest) {
			t.Fatalf("a record the checks let through made the manifest invalid: %v", err)
		}
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("compacted manifest does not validate: %v", err)
		}
		b, err := timeline.MarshalManifest(m)
		if err != nil {
			t.Fatalf("manifest from a journal does not encode: %v", err)
		}
		back, err := timeline.ParseManifest(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("manifest as written does not parse back: %v", err)
		}
		again, err := timeline.MarshalManifest(back)
		if err != nil {
			t.Fatalf("manifest read back does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("manifest changes when written, read and written again:\n%s\n---\n%s", b, again)
		}
	})
}

// writeCrashedSegment writes 1.5 s of Opus frames to path and does not
// close the file: the first cluster is on disk, the rest is lost.
func writeCrashedSegment(tb testing.TB, path string) {
	tb.Helper()
	var file bytes.Buffer
	w, err := mkv.NewWith(&file, mkv.Track{Codec: "opus", ClockRate: 48000, Channels: 2})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range int64(75) {
		if err := w.WriteFrame(i*960, true, []byte{0xfc, 0xff, 0xfe}); err != nil {
			tb.Fatal(err)
		}
	}
	sum, err := mkv.Scan(bytes.NewReader(file.Bytes()))
	if err != nil {
		tb.Fatal(err)
	}
	if sum.Frames == 0 || sum.Complete {
		tb.Fatalf("unclosed segment: %d frames, complete %v; want some frames of an incomplete file", sum.Frames, sum.Complete)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, file.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
}
