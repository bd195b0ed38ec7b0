package render

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// adtsTestFrame returns an ADTS frame around payload: AAC-LC, 48 kHz
// (rate index 3) unless told, with a CRC when crc.
func adtsTestFrame(payload []byte, rate, channels int, crc bool) []byte {
	hl := 7
	if crc {
		hl = 9
	}
	n := hl + len(payload)
	h := []byte{0xff, 0xf1, byte(1<<6 | rate<<2 | channels>>2), byte((channels&3)<<6 | n>>11&3), byte(n >> 3), byte(n&7<<5 | 0x1f), 0xfc}
	if crc {
		h[1] = 0xf0
		h = append(h, 0, 0)
	}
	return append(h, payload...)
}

func TestADTSHeader(t *testing.T) {
	for _, crc := range []bool{false, true} {
		f := adtsTestFrame(bytes.Repeat([]byte{7}, 300), 3, 2, crc)
		h, err := parseADTSHeader(f)
		if err != nil {
			t.Fatal(err)
		}
		want := adtsHeader{Profile: 1, Rate: 3, Channels: 2, HeaderLen: 7, FrameLen: 307}
		if crc {
			want.HeaderLen, want.FrameLen = 9, 309
		}
		if h != want {
			t.Errorf("crc %v: %+v, want %+v", crc, h, want)
		}
	}
	good := adtsTestFrame([]byte{1, 2, 3}, 3, 2, false)
	multi := bytes.Clone(good)
	multi[6] |= 1
	for name, b := range map[string][]byte{
		"short":     good[:5],
		"no sync":   append([]byte{0}, good[1:]...),
		"truncated": good[:len(good)-1],
		"2 blocks":  multi,
		"empty":     adtsTestFrame(nil, 3, 2, false),
	} {
		if _, err := parseADTSHeader(b); !errors.Is(err, errADTS) {
			t.Errorf("%s: err %v, want errADTS", name, err)
		}
	}
}

func TestADTSPlan(t *testing.T) {
	if got := aacPackets(384590); got != 377 {
		t.Errorf("aacPackets(384590) = %d, want 377", got)
	}
	if got := aacPackets(384000); got != 376 {
		t.Errorf("aacPackets(384000) = %d, want 376", got)
	}
	if got := aacLastDuration(384590); got != 590 {
		t.Errorf("aacLastDuration(384590) = %d, want 590", got)
	}
	if got := aacLastDuration(384000); got != 1024 {
		t.Errorf("aacLastDuration(384000) = %d, want 1024", got)
	}
	want := []aacChunk{
		{From: 0, To: 100, Start: 0, End: 102 * 1024},
		{From: 100, To: 202, Start: 92 * 1024, End: 204 * 1024},
		{From: 202, To: 304, Start: 194 * 1024, End: 306 * 1024},
		{From: 304, To: 377, Start: 296 * 1024, End: 384590},
	}
	if plan := testChunks(384590, 102*1024); fmt.Sprint(plan) != fmt.Sprint(want) {
		t.Errorf("plan %v, want %v", plan, want)
	}
	for _, n := range []int64{1, 1023, 1024, 1025, 48000, 384590, 2880317} {
		for _, window := range []int64{1500, 4096, 48000, 102407, 480000} {
			plan := testChunks(n, window)
			next := 0
			for i, c := range plan {
				if c.From != next || c.To <= c.From || c.Start%aacFrameSamples != 0 || c.skip() < 0 || c.skip() > aacPreroll || c.End > n {
					t.Fatalf("n %d window %d: chunk %d %+v", n, window, i, c)
				}
				if c.packets() < c.skip()+c.To-c.From {
					t.Fatalf("n %d window %d: chunk %d %+v emits %d packets, short of its own", n, window, i, c, c.packets())
				}
				next = c.To
			}
			last := plan[len(plan)-1]
			if next != aacPackets(n) || last.End != n || last.packets() != last.skip()+last.To-last.From {
				t.Fatalf("n %d window %d: plan %v does not end the stream", n, window, plan)
			}
		}
	}
}

// testChunks are the encoded audio windows of n samples drawn in audio
// windows of window samples.
func testChunks(n, window int64) []aacChunk {
	var starts []int64
	for s := int64(0); s < n; s += window {
		starts = append(starts, s)
	}
	var plan []aacChunk
	for _, w := range aacWindowsOf(starts, n) {
		plan = append(plan, w.aacChunk)
	}
	return plan
}

// adtsTestStreams makes the ADTS streams a plan's encodes would write: the
// payload of a chunk's packet names the chunk and the packet of the whole
// it stands for.
func adtsTestStreams(plan []aacChunk) [][]byte {
	var streams [][]byte
	for i, c := range plan {
		var s []byte
		for j := range c.packets() {
			s = append(s, adtsTestFrame([]byte(fmt.Sprintf("c%d p%d ", i, int(c.Start/aacFrameSamples)+j)), 3, 2, j%2 == 1)...)
		}
		streams = append(streams, s)
	}
	return streams
}

func TestADTSJoin(t *testing.T) {
	const n = 100000
	plan := testChunks(n, 30*1024+100)
	streams := adtsTestStreams(plan)
	out, err := joinADTS(plan, streams)
	if err != nil {
		t.Fatal(err)
	}
	frames, h, err := splitADTS(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != aacPackets(n) || h.Rate != 3 || h.Channels != 2 {
		t.Fatalf("%d frames %+v, want %d", len(frames), h, aacPackets(n))
	}
	chunk := 0
	for k, f := range frames {
		for k >= plan[chunk].To {
			chunk++
		}
		want := fmt.Sprintf("c%d p%d ", chunk, k)
		if got := string(f[len(f)-len(want):]); got != want {
			t.Fatalf("packet %d is %q, want %q", k, got, want)
		}
	}

	bad := func(name string, plan []aacChunk, streams [][]byte) {
		t.Helper()
		if _, err := joinADTS(plan, streams); err == nil || !strings.HasPrefix(err.Error(), "render: ") {
			t.Errorf("%s: err %v", name, err)
		}
	}
	bad("missing stream", plan, streams[1:])
	short := append([][]byte(nil), streams...)
	fs, _, err := splitADTS(short[1])
	if err != nil {
		t.Fatal(err)
	}
	short[1] = bytes.Join(fs[:len(fs)-1], nil)
	bad("short chunk", plan, short)
	mono := append([][]byte(nil), streams...)
	mono[2] = adtsTestFrame([]byte("x"), 3, 1, false)
	bad("other format", plan, mono)
	junk := append([][]byte(nil), streams...)
	junk[0] = append(bytes.Clone(junk[0]), 0, 1, 2)
	bad("trailing junk", plan, junk)
	gap := append([]aacChunk(nil), plan...)
	gap[1].From++
	bad("gap", gap, streams)
}

func TestADTSSetts(t *testing.T) {
	want := `setts=ts=TS-DURATION:duration=if(eq(N\,376)\,DURATION*590/1024\,DURATION)`
	if got := aacSetts(384590); got != want {
		t.Errorf("aacSetts = %s, want %s", got, want)
	}
}
