package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/examples/publisher"
	"github.com/tapedeck/tapedeck/timeline"
)

type loadFlags struct {
	publishers int
	duration   time.Duration
	bitrate    int
	width      int
	height     int
	data       string
	keep       bool
	every      time.Duration
	// progressive lets serve render the call while it is recorded
	// (otherwise renders are left to workers: the figures are capture's).
	progressive bool
}

func newLoadtestCmd(g *globals) *cobra.Command {
	f := &loadFlags{}
	cmd := &cobra.Command{
		Use:   "loadtest",
		Short: "Measure the recorder under load: N synthetic publishers against a `tapedeck serve` process on loopback",
		Long: `loadtest starts ` + "`tapedeck serve`" + ` as a separate process on loopback, publishes N synthetic
participants to it at once, and reports the recorder process's CPU per stream, its memory, and the
packets it lost (sent by a publisher but never written), from /proc and the session's manifest.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return runLoadtest(cmd.Context(), f, log, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.publishers, "publishers", 20, "publishers at once")
	fl.DurationVar(&f.duration, "duration", 30*time.Second, "length of the call")
	fl.IntVar(&f.bitrate, "bitrate", 2_400_000, "video bitrate of each publisher, bits/s (audio adds ~50 kbit/s)")
	fl.IntVar(&f.width, "width", 640, "video width")
	fl.IntVar(&f.height, "height", 360, "video height")
	fl.StringVar(&f.data, "data", "", "recording folder (default: a temporary folder, removed afterwards)")
	fl.BoolVar(&f.keep, "keep", false, "keep the recording")
	fl.DurationVar(&f.every, "report-every", 0, "print the recorder's memory, goroutines and packets this often (a soak run)")
	fl.BoolVar(&f.progressive, "progressive", false, "let serve render the call while it is recorded (niced, one window at a time, --progressive-cpu), and report what it rendered beside the packets lost")
	return cmd
}

// procStat returns a process's user+system CPU time.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

// procMem returns a process's resident and peak resident memory in KiB.
func procMem(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fs[1], 10, 64)
		switch fs[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	return rss, hwm, sc.Err()
}

// udpRcvbufErrors reads the kernel's count of UDP datagrams dropped for a
// full receive buffer.
func udpRcvbufErrors() int64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return -1
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "Udp:") {
			continue
		}
		f := strings.Fields(line)[1:]
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.ParseInt(f[i], 10, 64)
				return v
			}
		}
	}
	return -1
}

func runLoadtest(ctx context.Context, f *loadFlags, log *slog.Logger, out io.Writer) error {
	if f.publishers < 1 {
		return usageError("--publishers %d: want at least 1", f.publishers)
	}
	data := f.data
	if data == "" {
		d, err := os.MkdirTemp("", "tapedeck-load-")
		if err != nil {
			return err
		}
		data = d
		if !f.keep {
			defer os.RemoveAll(d)
		}
	}
	if abs, err := filepath.Abs(data); err == nil {
		data = abs
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("loadtest: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()

	cfgs := make([]publisher.Config, f.publishers)
	fmt.Fprintf(out, "preparing media for %d publishers (cached after the first run)...\n", f.publishers)
	for i := range cfgs {
		cfgs[i] = publisher.Config{
			Endpoint: "http://" + addr + "/whip/load", Participant: fmt.Sprintf("p%02d", i+1), Duration: f.duration,
			Video: publisher.VP8, Audio: true, Width: f.width, Height: f.height, Bitrate: f.bitrate, Seed: int64(i + 1),
		}
		if _, err := publisher.PrepareMedia(ctx, cfgs[i], log); err != nil {
			return err
		}
	}

	// Renders are left to workers (none here) unless the call is rendered
	// while it is recorded: the figures are capture's.
	concurrency := "0"
	if f.progressive {
		concurrency = "1"
	}
	srv := exec.CommandContext(ctx, self, "serve", "--listen", addr, "--data", filepath.Join(data, "rec"),
		"--store", "file://"+filepath.Join(data, "store"), "--render-concurrency", concurrency, "--grace", "2s", "--log-level", "warn")
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return fmt.Errorf("loadtest: start serve: %w", err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	if err := waitReady(ctx, addr); err != nil {
		return err
	}
	pid := srv.Process.Pid
	cpu0, _ := procCPU(pid)
	drops0 := udpRcvbufErrors()
	start := time.Now()

	var (
		mu      sync.Mutex
		samples []int64
		series  []soakPoint
		wg      sync.WaitGroup
	)
	stopSample := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		lastCPU, lastAt := cpu0, start
		for {
			select {
			case <-stopSample:
				return
			case now := <-t.C:
				rss, _, err := procMem(pid)
				if err != nil {
					continue
				}
				mu.Lock()
				samples = append(samples, rss)
				mu.Unlock()
				if f.every > 0 && now.Sub(lastAt) >= f.every {
					c, _ := procCPU(pid)
					m := scrapePrefix(addr, "")
					metric := func(name string) float64 { // -1: not read
						if v, ok := m[name]; ok {
							return v
						}
						return -1
					}
					p := soakPoint{at: now.Sub(start), rss: rss, goroutines: metric("go_goroutines"), packets: metric("tapedeck_packets_written_total"),
						cpu: 100 * (c - lastCPU).Seconds() / now.Sub(lastAt).Seconds()}
					lastCPU, lastAt = c, now
					mu.Lock()
					series = append(series, p)
					mu.Unlock()
					fmt.Fprintf(out, "%8s %10.1f %10.0f %14.0f %12.1f\n", p.at.Round(time.Second), float64(p.rss)/1024, p.goroutines, p.packets, p.cpu)
				}
			}
		}
	}()
	results := make([]publisher.Result, len(cfgs))
	errs := make([]error, len(cfgs))
	fmt.Fprintf(out, "publishing %d x (VP8 %dx%d at %.1f Mbit/s + Opus) for %v to %s\n", f.publishers, f.width, f.height, float64(f.bitrate)/1e6, f.duration, addr)
	if f.every > 0 {
		fmt.Fprintf(out, "%8s %10s %10s %14s %12s\n", "time", "RSS MiB", "goroutines", "packets", "CPU % core")
	}
	for i := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = publisher.Run(ctx, cfgs[i], log)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, _ := procCPU(pid)
	_, hwm, _ := procMem(pid)
	close(stopSample)
	<-sampled
	drops1 := udpRcvbufErrors()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("loadtest: publishers: %w", err)
	}
	progressive := scrapePrefix(addr, "tapedeck_progressive_")
	// End the recorder cleanly so the manifest is written.
	_ = srv.Process.Signal(syscall.SIGTERM)
	if err := srv.Wait(); err != nil {
		return fmt.Errorf("loadtest: serve exited: %w", err)
	}
	mans, _ := filepath.Glob(filepath.Join(data, "rec", "load", "*", capture.ManifestName))
	if len(mans) != 1 {
		return fmt.Errorf("loadtest: found %d manifests, want 1", len(mans))
	}
	mf, err := os.Open(mans[0])
	if err != nil {
		return err
	}
	m, err := timeline.ParseManifest(mf)
	mf.Close()
	if err != nil {
		return err
	}
	var sent, dropped, written, lost, bytes int64
	for _, r := range results {
		for _, t := range r.Tracks {
			sent += int64(t.Packets)
			dropped += int64(t.Dropped)
			bytes += t.PayloadBytes
		}
	}
	for _, l := range m.Lanes {
		for _, t := range l.Tracks {
			lost += t.PacketsLost
			for _, s := range t.Segments {
				written += s.Packets
			}
		}
	}
	streams := 2 * f.publishers
	cpu := cpu1 - cpu0
	mu.Lock()
	var minRSS, maxRSS int64
	for i, s := range samples {
		if i == 0 || s < minRSS {
			minRSS = s
		}
		maxRSS = max(maxRSS, s)
	}
	mu.Unlock()
	fmt.Fprintf(out, "\ncapture load report (%d publishers = %d streams, %v, %.1f Mbit/s in total)\n", f.publishers, streams, elapsed.Round(time.Millisecond), float64(bytes*8)/elapsed.Seconds()/1e6)
	fmt.Fprintf(out, "  recorder CPU            %.2f s = %.1f%% of one core; per publisher %.2f%%, per stream %.2f%% of a core\n",
		cpu.Seconds(), 100*cpu.Seconds()/elapsed.Seconds(), 100*cpu.Seconds()/elapsed.Seconds()/float64(f.publishers), 100*cpu.Seconds()/elapsed.Seconds()/float64(streams))
	fmt.Fprintf(out, "  recorder memory         peak RSS %.1f MiB; RSS during the call %.1f to %.1f MiB\n", float64(hwm)/1024, float64(minRSS)/1024, float64(maxRSS)/1024)
	fmt.Fprintf(out, "  packets sent            %d (of which %d dropped on purpose: none asked)\n", sent, dropped)
	fmt.Fprintf(out, "  packets written         %d (sent but not written: %d, in flight at hang-up included)\n", written, sent-dropped-written)
	fmt.Fprintf(out, "  lost by the recorder    %d never arrived or were given up (%.4f%%); kernel UDP receive-buffer drops on this machine: %d\n",
		lost, 100*float64(lost)/float64(max(sent, 1)), drops1-drops0)
	fmt.Fprintf(out, "  manifest                %s\n", mans[0])
	if f.progressive {
		fmt.Fprintf(out, "  rendered during the call %.0f windows (%.0f again), %.0f of the audio encoded, %.0f looks deferred for CPU, %.0f failed; %.1f s of final media not yet drawn at hang-up\n",
			progressive["tapedeck_progressive_windows_total"], progressive["tapedeck_progressive_windows_again_total"],
			progressive["tapedeck_progressive_audio_encoded_total"],
			progressive["tapedeck_progressive_deferred_total"], progressive["tapedeck_progressive_failed_total"],
			progressive["tapedeck_progressive_behind_seconds"])
	}
	if len(series) >= 4 {
		q := len(series) / 4
		avg := func(ps []soakPoint, f func(soakPoint) float64) float64 {
			t := 0.0
			for _, p := range ps {
				t += f(p)
			}
			return t / float64(len(ps))
		}
		rss := func(p soakPoint) float64 { return float64(p.rss) / 1024 }
		gor := func(p soakPoint) float64 { return p.goroutines }
		fmt.Fprintf(out, "  soak: first quarter vs last quarter of the run\n")
		fmt.Fprintf(out, "    RSS MiB               %.1f -> %.1f\n", avg(series[:q], rss), avg(series[len(series)-q:], rss))
		fmt.Fprintf(out, "    goroutines            %.0f -> %.0f\n", avg(series[:q], gor), avg(series[len(series)-q:], gor))
	}
	return nil
}

// soakPoint is one sample of a soak run.
type soakPoint struct {
	at         time.Duration
	rss        int64 // KiB
	goroutines float64
	packets    float64
	cpu        float64 // percent of one core since the previous point
}

// scrapePrefix reads the metrics whose names start with prefix ("": all)
// from /metrics; none when it cannot be read.
func scrapePrefix(addr, prefix string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || !strings.HasPrefix(f[0], prefix) {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[f[0]] = v
		}
	}
	return out
}

// waitReady polls the WHIP endpoint until serve answers.
func waitReady(ctx context.Context, addr string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodOptions, "http://"+addr+"/whip/probe", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("loadtest: serve did not answer on %s", addr)
}
