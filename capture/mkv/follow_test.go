package mkv

import (
	"bytes"
	"testing"
)

// TestFollower scans a file as a Writer writes it, cut at every few hundred
// bytes (mid-cluster, mid-block), and compares each scan with Scan of the
// same bytes.
func TestFollower(t *testing.T) {
	var file bytes.Buffer
	w, err := NewWith(&file, Track{Codec: "vp8", ClockRate: 90000, Width: 320, Height: 240})
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(900) {
		frame := bytes.Repeat([]byte{byte(i)}, 200+int(i%7)*50)
		if err := w.WriteFrame(i*3000, i%30 == 0, frame); err != nil {
			t.Fatal(err)
		}
	}
	data := bytes.Clone(file.Bytes())
	var f Follower
	var scans, grew int
	var last Summary
	for cut := 10; ; cut = min(cut+397, len(data)) {
		want, werr := Scan(bytes.NewReader(data[:cut]))
		got, gerr := f.Scan(bytes.NewReader(data[:cut]))
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("cut at %d: follower error %v, Scan's %v", cut, gerr, werr)
		}
		if werr == nil {
			if got != want {
				t.Fatalf("cut at %d: follower %+v, Scan %+v", cut, got, want)
			}
			if got.Frames > last.Frames {
				grew++
			}
			last = got
			scans++
		}
		if cut == len(data) {
			break
		}
	}
	// The last cluster is open until Close: its frames are not counted.
	if last.Frames < 850 || grew < 10 {
		t.Errorf("%d scans, the frames grew %d times to %d; want to all but the open cluster's of 900, many times", scans, grew, last.Frames)
	}
}
