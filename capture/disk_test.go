package capture_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/examples/publisher"
	"github.com/tapedeck/tapedeck/timeline"
)

// smallDisk mounts a tmpfs of size MiB for the test (needs root).
func smallDisk(t *testing.T, mib int) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(mib)+"m", "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mount a %d MiB tmpfs for the disk-full test (needs root): %v %s", mib, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

func free(t *testing.T, dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// fill writes a file so that about leave bytes stay free.
func fill(t *testing.T, dir, name string, leave int64) {
	t.Helper()
	n := free(t, dir) - leave
	if n <= 0 {
		return
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := f.Write(buf[:k]); err != nil {
			t.Fatal(err)
		}
		n -= k
	}
}

// TestDiskGuard fills a small filesystem during a call. Below the low-water
// mark new publishes are refused with 503 while the running one records on;
// below the hard floor its files are closed cleanly; when space comes back
// recording resumes in new, keyframe-led files. Every file decodes and the
// session's manifest is written.
func TestDiskGuard(t *testing.T) {
	t.Parallel()
	disk := smallDisk(t, 40)
	data := filepath.Join(disk, "rec")
	r := startRecorder(t, capture.Config{DataDir: data, Grace: time.Second, MinFreeBytes: 16 << 20, HardFloorBytes: 8 << 20})
	cfg := publisher.Config{Endpoint: r.base + "/whip/full", Participant: "hank", Duration: 14 * time.Second,
		Video: publisher.VP8, Audio: true, Width: 320, Height: 240, Bitrate: 800_000}
	if _, err := publisher.PrepareMedia(t.Context(), cfg, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := publisher.Run(ctx, cfg, testLogger(t)); done <- err }()

	time.Sleep(3 * time.Second)
	fill(t, disk, "filler1", 12<<20) // below the low-water mark
	time.Sleep(time.Second)
	if err := r.rec.Ready(); err == nil {
		t.Error("recorder ready with the disk below its low-water mark")
	}
	resp, err := http.Post(r.base+"/whip/full?participant=late", "application/sdp", strings.NewReader(validOffer(t)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusServiceUnavailable; got != want {
		t.Errorf("publish with a low disk: status %d, want %d (%s)", got, want, body)
	}
	if !strings.Contains(string(body), "disk") || resp.Header.Get("Retry-After") == "" {
		t.Errorf("503 without a reason or Retry-After: %q", body)
	}
	fill(t, disk, "filler2", 5<<20) // below the hard floor
	time.Sleep(3 * time.Second)
	if st := r.rec.Stats(); !st.DiskFull {
		t.Errorf("stats do not say the disk is full: %+v", st)
	}
	os.Remove(filepath.Join(disk, "filler2"))
	os.Remove(filepath.Join(disk, "filler1"))
	if err := <-done; err != nil {
		t.Fatalf("publisher: %v", err)
	}
	s := r.waitSession(t, 30*time.Second)
	m := readManifest(t, s.Dir)
	video, ok := m.Lane("hank/video")
	if !ok {
		t.Fatal("no video lane")
	}
	tr := video.Tracks[0]
	full := 0
	for _, e := range tr.Events {
		if e.Kind == timeline.EventDiskFull {
			full++
		}
	}
	if full != 1 {
		t.Errorf("%d disk_full events on the video track, want 1", full)
	}
	if got := len(tr.Segments); got != 2 {
		t.Errorf("video has %d segments, want 2 (before the disk filled, after it emptied)", got)
	}
	for _, l := range m.Lanes {
		for _, tr := range l.Tracks {
			for _, sg := range tr.Segments {
				path := filepath.Join(s.Dir, sg.Path)
				decodeStrict(t, path)
				pts, key := probePackets(t, path)
				if int64(len(pts)) != sg.Frames {
					t.Errorf("%s: %d packets in the file, manifest says %d", sg.Path, len(pts), sg.Frames)
				}
				if l.Kind == timeline.Video && (len(key) == 0 || !key[0]) {
					t.Errorf("%s: does not start with a keyframe", sg.Path)
				}
				t.Logf("%s: %d frames, closed %v", sg.Path, sg.Frames, sg.Closed)
			}
		}
	}
}
