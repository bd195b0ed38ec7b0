package render_test

import (
	"os"
	"testing"
	"time"
)

func TestTmpMake(t *testing.T) {
	dir := os.Getenv("MKSESSION")
	if dir == "" {
		t.Skip()
	}
	length := 30 * time.Second
	video, audio := "/tmp/tapedeck-bench-v1/video-640x360-30s.webm", "/tmp/tapedeck-bench-v1/audio-30s.webm"
	var parts []synthPart
	for i, id := range []string{"alice", "bob", "carol", "dave"} {
		join := time.Duration(i) * 5 * time.Second
		parts = append(parts, synthPart{ID: id, Video: "vp8", Audio: true, W: 640, H: 360, FPS: 30, Join: join, Length: length - join,
			VideoFile: video, AudioFile: audio})
	}
	os.RemoveAll(dir)
	makeSession(t, dir, parts)
}
