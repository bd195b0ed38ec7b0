package capture

import (
	"bytes"
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
// return an error or a manifest that passes its own validation, never panic.
func FuzzJournal(f *testing.F) {
	f.Add([]byte(`{"type":"session","at_unix_ns":1,"room":"r","session":"s"}
{"type":"publish","at_unix_ns":2,"publish":"p","participant":"a","name":"a"}
{"type":"track","at_unix_ns":3,"track":"t1","lane":"a/audio","participant":"a","publish":"p","kind":"audio","ssrc":5,"codec":"opus","clock_rate":48000,"channels":2}
{"type":"segment_open","at_unix_ns":4,"track":"t1","segment":{"index":0,"path":"tracks/a/x.webm","first_rtp":100,"first_arrival_unix_ns":4}}
{"type":"sr","at_unix_ns":5,"track":"t1","sr":{"ntp_unix_ns":5,"rtp":100,"arrival_unix_ns":5,"packets":1,"octets":2}}
{"type":"stats","at_unix_ns":6,"track":"t1","stats":{"arrivals":[[100,6]],"levels":[[100,30]],"received":3,"lost":0,"duplicates":0,"late":0}}
{"type":"segment_close","at_unix_ns":7,"track":"t1","segment":{"index":0,"path":"tracks/a/x.webm","first_rtp":100,"first_arrival_unix_ns":4,"last_rtp":1060,"last_arrival_unix_ns":7,"packets":3,"frames":2,"bytes":10}}
{"type":"publish_end","at_unix_ns":8,"publish":"p","reason":"x"}
{"type":"session_end","at_unix_ns":9}
`))
	f.Add([]byte(`{"type":"session","room":"r","session":"s"}` + "\n" + `{"type":"segment_close","track":"nope"}`))
	f.Add([]byte("{\"type\":\"session\"\n\x00\xff"))
	dir := f.TempDir() // empty: unclosed segments have no file to scan
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, _, err := readJournal(bytes.NewReader(data))
		if err != nil {
			return
		}
		m, err := compact(dir, recs)
		if err != nil {
			return
		}
		if m.Room == "" || m.Session == "" {
			return // Validate reports it; compaction keeps what it read
		}
		if _, err := timeline.MarshalManifest(m); err != nil {
			t.Fatalf("manifest from a journal does not encode: %v", err)
		}
	})
}
