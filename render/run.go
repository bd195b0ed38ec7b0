package render

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FFmpegError is a failed FFmpeg run: the command line and the end of what
// FFmpeg wrote to stderr.
type FFmpegError struct {
	Step   string
	Args   []string // the full command line, program first
	Err    error    // the exit status
	Stderr string   // the last lines of stderr
}

func (e *FFmpegError) Error() string {
	tail := strings.TrimSpace(e.Stderr)
	if tail == "" {
		tail = "(nothing on stderr)"
	}
	return fmt.Sprintf("render: %s: ffmpeg failed: %v\ncommand: %s\nstderr (last lines):\n%s", e.Step, e.Err, shellJoin(e.Args), tail)
}

func (e *FFmpegError) Unwrap() error { return e.Err }

// shellJoin quotes a command line for a shell, for people to paste.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r == '-' || r == '_' || r == '.' || r == '/' || r == ':' || r == '=' || r == '+' || r == ',' || r == '%' ||
				r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

// runner runs FFmpeg commands in a work folder.
type runner struct {
	ffmpeg string
	// nice is the niceness FFmpeg runs with (0: as this process).
	nice int
	dir  string
	log  *slog.Logger
	// record appends every command line to commands.sh in the work folder
	// (kept for inspection).
	record bool
	// reuse is the folder of kept video jobs (Options.Reuse; "": none), and
	// build FFmpeg's version for their keys (shared by the runner's copies).
	reuse string
	build *ffmpegBuild
}

// filteringError starts what FFmpeg logs when a filter graph fails while
// it runs; errFilteringFailed stands for the exit status it does not give.
const filteringError = "Error while filtering"

var errFilteringFailed = errors.New("exit status 0, but the filter graph failed, and the output is cut short")

// stderrKeep is how much of FFmpeg's stderr is kept for error messages (and
// for the loudness measurement).
const stderrKeep = 16 << 10

// tailBuffer keeps the last bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// lastLines returns at most n lines from the end of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// commandLine is the program and arguments that run c: FFmpeg (through
// nice when asked), with progress on stdout.
func (r *runner) commandLine(c Command) []string {
	level := "error"
	if c.Measure {
		level = "info"
	}
	args := []string{r.ffmpeg, "-loglevel", level, "-nostats", "-progress", "pipe:1", "-stats_period", "0.5"}
	args = append(args, c.Args...)
	if r.nice > 0 {
		if nice, err := exec.LookPath("nice"); err == nil {
			args = append([]string{nice, "-n", strconv.Itoa(r.nice)}, args...)
		}
	}
	return args
}

// run runs c: it writes c's files into the work folder, starts FFmpeg,
// reports progress (output time done) to progress, and waits. A cancelled
// ctx kills FFmpeg; its outputs are removed on any failure. It returns
// FFmpeg's stderr tail (the loudness measurement of the audio mix).
func (r *runner) run(ctx context.Context, c Command, progress func(done time.Duration)) (string, error) {
	for name, body := range c.Files {
		if err := os.WriteFile(filepath.Join(r.dir, name), []byte(body), 0o644); err != nil {
			return "", fmt.Errorf("render: %s: %w", c.Name, err)
		}
	}
	for _, out := range c.Outputs {
		if err := os.MkdirAll(filepath.Join(r.dir, filepath.Dir(out)), 0o755); err != nil {
			return "", fmt.Errorf("render: %s: %w", c.Name, err)
		}
	}
	if c.aacJoin != nil {
		if err := joinAACWindows(ctx, r.dir, c.aacJoin); err != nil {
			return "", fmt.Errorf("render: %s: %w", c.Name, err)
		}
	}
	if len(c.Args) == 0 {
		return "", nil // Go work only (the AAC join)
	}
	line := r.commandLine(c)
	cmd := exec.CommandContext(ctx, line[0], line[1:]...)
	cmd.Dir = r.dir
	// glibc hands FFmpeg's frame-sized buffers back to the kernel on every
	// free and faults them in again on the next allocation; keeping them in
	// the heap saves a fifth of the filtering time.
	cmd.Env = append(os.Environ(), "MALLOC_MMAP_THRESHOLD_=67108864", "MALLOC_TRIM_THRESHOLD_=268435456")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The whole process group: nice execs FFmpeg, which may have children.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
	stderr := &tailBuffer{max: stderrKeep}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", fmt.Errorf("render: %s: %w", c.Name, err)
	}
	start := time.Now()
	r.log.Debug("render: ffmpeg", "step", c.Name, "command", shellJoin(line))
	if r.record {
		if err := appendFile(filepath.Join(r.dir, "commands.sh"), "# "+c.Name+"\n"+shellJoin(line)+"\n\n"); err != nil {
			return "", fmt.Errorf("render: %s: %w", c.Name, err)
		}
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("render: %s: start ffmpeg: %w", c.Name, err)
	}
	if r.nice > 0 && line[0] == r.ffmpeg {
		// No nice(1): lower the priority ourselves.
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, r.nice)
	}
	readProgress(stdout, progress)
	err = cmd.Wait()
	if err == nil && strings.Contains(stderr.String(), filteringError) {
		// FFmpeg 5.1 stops filtering on such an error, writes what it has
		// and exits 0: the output is short.
		err = errFilteringFailed
	}
	if err == nil {
		st := cmd.ProcessState
		r.log.Debug("render: ffmpeg done", "step", c.Name, "took", time.Since(start).Round(time.Millisecond),
			"cpu", (st.UserTime() + st.SystemTime()).Round(time.Millisecond))
		return stderr.String(), nil
	}
	r.removeOutputs(c)
	if ctx.Err() != nil {
		return "", fmt.Errorf("render: %s: %w", c.Name, context.Cause(ctx))
	}
	return "", &FFmpegError{Step: c.Name, Args: line, Err: err, Stderr: lastLines(stderr.String(), 25)}
}

// removeOutputs deletes what a failed command may have written.
func (r *runner) removeOutputs(c Command) {
	for _, out := range c.Outputs {
		p := filepath.Join(r.dir, out)
		_ = os.Remove(p)
		if strings.HasSuffix(out, ".m3u8") {
			_ = os.RemoveAll(filepath.Dir(p))
		}
	}
}

// readProgress reads FFmpeg's -progress output (key=value lines, a block
// ending with progress=continue or progress=end) and reports the output time
// reached at the end of every block.
func readProgress(r io.Reader, report func(done time.Duration)) {
	sc := bufio.NewScanner(r)
	var done time.Duration
	for sc.Scan() {
		key, val, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		switch key {
		case "out_time_us", "out_time_ms": // both are microseconds
			if v, err := strconv.ParseInt(val, 10, 64); err == nil && v >= 0 {
				done = time.Duration(v) * time.Microsecond
			}
		case "progress":
			if report != nil {
				report(done)
			}
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// errNoFFmpeg is wrapped when FFmpeg cannot be found.
var errNoFFmpeg = errors.New("ffmpeg not found (install Debian's ffmpeg package: `apt-get install ffmpeg`, or `make deps`)")

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
