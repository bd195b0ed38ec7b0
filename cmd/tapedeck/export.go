package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/timeline"
)

func newExportCmd(g *globals) *cobra.Command {
	var (
		out, editsPath, audio, video, timelines, fps, size, composite string
		ffmpeg, font, preset, progress                                string
		nice, parallel                                                int
		keepWork                                                      bool
		st                                                            storeFlags
	)
	cmd := &cobra.Command{
		Use:   "export SESSION",
		Short: "Export a session for editors: one WAV and one MP4 per participant, all aligned, and timelines (OTIO, FCPXML, FCP7 XML)",
		Long: `export writes, for each participant, PARTICIPANT.wav (48 kHz 24-bit PCM, mono unless they sent stereo)
and PARTICIPANT.mp4 (H.264 at --fps, constant frame rate, their own audio as AAC), every file starting at
session time 0 and exactly as long as the session: the same number of samples in every WAV, of frames in
every MP4. Where a participant is not in the call or their media was lost (over 200 ms), the WAV is silent
and the MP4 shows a plain dark frame with their name. Beside them: SESSION.otio (OpenTimelineIO: DaVinci Resolve, Premiere
Pro 2025), SESSION.fcpxml (Final Cut Pro), SESSION.xml (FCP7 XML: Premiere Pro, Resolve), which place the
stems by relative path, with --edits' cuts applied (the stems stay whole) and markers at joins, leaves and
losses; and tapedeck-export.json, the index.

SESSION is what render accepts: a session folder, ROOM/SESSION with --store, or STORE-URL/ROOM/SESSION.
--out (default SESSION/exports/default) must not exist, be empty or hold a previous export, which is
replaced; it may be a storage URL (file:///dir, s3://bucket/prefix): the files are uploaded there,
checked by SHA-256. An interrupted or failed export leaves nothing behind.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			opts := render.ExportOptions{Nice: nice, Parallel: parallel, FFmpeg: ffmpeg, FontFile: font, Preset: preset, Log: log,
				KeepWork: keepWork}
			switch audio {
			case "wav":
				opts.Audio = true
			case "none":
			default:
				return usageError("--audio %q: want wav or none", audio)
			}
			switch video {
			case "mp4":
				opts.Video = true
			case "none":
			default:
				return usageError("--video %q: want mp4 or none", video)
			}
			if !opts.Audio && !opts.Video {
				return usageError("--audio none --video none: nothing to export")
			}
			if opts.Timelines, err = parseTimelineFlag(timelines); err != nil {
				return err
			}
			if fps != "" {
				if opts.FPS, err = parseFPS(fps); err != nil {
					return err
				}
			}
			if len(opts.Timelines) > 0 && fps != "" {
				if err := render.CheckTimelineFPS(opts.FPS); err != nil {
					return usageError("--fps: %v", err)
				}
			}
			if size != "" {
				if opts.Width, opts.Height, err = parseSize(size); err != nil {
					return err
				}
			}
			if opts.Progress, opts.ProgressTTY, err = progressTo(progress, cmd.ErrOrStderr()); err != nil {
				return err
			}
			if editsPath != "" {
				if opts.Edits, err = timeline.LoadEdits(editsPath); err != nil {
					return err
				}
			}
			sa, err := resolveSessionArg(cmd.Context(), "export", args[0], &st, log)
			if err != nil {
				return err
			}
			defer sa.cleanup()
			var upload storage.Client
			switch {
			case strings.Contains(out, "://"):
				if upload, err = storage.Open(cmd.Context(), out, storage.Options{Endpoint: st.endpoint, Region: st.region, PathStyle: st.pathStyle, Logger: log}); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				tmp, err := os.MkdirTemp("", "tapedeck-export-out-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				out = filepath.Join(tmp, "export")
			case out == "" && sa.local == "":
				return usageError("export %s: a fetched session needs --out (a folder or a storage URL)", args[0])
			case out == "" && sa.dir != sa.local:
				// Some track files were fetched into a temporary folder: the export still goes next to the
				// session as recorded.
				out = filepath.Join(sa.local, "exports", "default")
			}
			opts.OutDir = out
			if composite != "" {
				if opts.Composite, err = compositeFor(cmd.Context(), sa, composite); err != nil {
					return err
				}
			}
			res, err := render.Export(cmd.Context(), sa.dir, opts)
			if err != nil {
				return err
			}
			where := res.Dir
			if upload != nil {
				for _, f := range res.Files {
					if _, err := storage.UploadFile(cmd.Context(), upload, f, filepath.Join(res.Dir, filepath.FromSlash(f)), false); err != nil {
						return fmt.Errorf("export: upload %s: %w", f, err)
					}
				}
				where = upload.String()
			}
			return printExport(cmd.OutOrStdout(), where, res)
		},
	}
	st.register(cmd.Flags(), "store", "where a ROOM/SESSION argument is stored")
	fl := cmd.Flags()
	fl.StringVarP(&out, "out", "o", "", "export folder or storage URL (default SESSION/exports/default)")
	fl.StringVar(&editsPath, "edits", "", "edit file (YAML or JSON): the timelines apply its trim, cuts, mutes and gains; names go on the stems")
	fl.StringVar(&audio, "audio", "wav", "audio stems: wav or none")
	fl.StringVar(&video, "video", "mp4", "video stems: mp4 or none")
	fl.StringVar(&timelines, "timeline", strings.Join(render.TimelineFormats(), ","), "timelines to write, comma-separated: otio, fcpxml, xmeml, or none")
	fl.StringVar(&fps, "fps", "", "frame rate of the video stems and the timelines: N or N/D, e.g. 25 or 30000/1001 (default: the edits', else 30)")
	fl.StringVar(&size, "size", "", "size WxH of every video stem, each participant's video fitted inside (default: each participant's largest)")
	fl.StringVar(&composite, "composite", "", "a rendered composite to put on the timelines as a muted reference: the name of a render of the session (e.g. default), a render folder or an MP4 file")
	fl.IntVar(&nice, "nice", 10, "niceness of FFmpeg, so that an export yields to capture (0: none)")
	fl.IntVar(&parallel, "parallel", 0, "video jobs run at once (0: a quarter of the CPUs, at least 1)")
	fl.StringVar(&ffmpeg, "ffmpeg", "", "ffmpeg binary (default: from PATH)")
	fl.StringVar(&font, "font", "", "font file for the names on placeholder frames (default: DejaVu Sans via fc-match; none: no text)")
	fl.StringVar(&preset, "preset", "veryfast", "x264 preset (ultrafast … veryslow)")
	fl.StringVar(&progress, "progress", "auto", "progress on stderr: auto (a bar on a terminal), bar, plain or off")
	fl.BoolVar(&keepWork, "keep-work", false, "keep the work folder (FFmpeg's intermediate files) for inspection")
	return cmd
}

// parseTimelineFlag reads --timeline: formats separated by commas, or none.
func parseTimelineFlag(s string) ([]string, error) {
	if strings.TrimSpace(s) == "none" {
		return nil, nil
	}
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		ok := false
		for _, known := range render.TimelineFormats() {
			ok = ok || f == known
		}
		if !ok {
			return nil, usageError("--timeline %q: want formats among %s, separated by commas, or none", s, strings.Join(render.TimelineFormats(), ", "))
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, usageError("--timeline %q: want formats among %s, or none", s, strings.Join(render.TimelineFormats(), ", "))
	}
	return out, nil
}

// parseFPS reads --fps: N or N/D.
func parseFPS(s string) (timeline.Rational, error) {
	ns, ds, frac := strings.Cut(strings.TrimSpace(s), "/")
	n, err1 := strconv.Atoi(ns)
	d := 1
	var err2 error
	if frac {
		d, err2 = strconv.Atoi(ds)
	}
	if err1 != nil || err2 != nil || n <= 0 || d <= 0 || n < d || n > 240*d {
		return timeline.Rational{}, usageError("--fps %q: want a frame rate from 1 to 240: N or N/D (30000/1001)", s)
	}
	return timeline.Rational{Num: n, Den: d}, nil
}

// parseSize reads --size WxH: even numbers from 16 to 7680.
func parseSize(s string) (int, int, error) {
	ws, hs, ok := strings.Cut(strings.ToLower(s), "x")
	w, err1 := strconv.Atoi(ws)
	h, err2 := strconv.Atoi(hs)
	if !ok || err1 != nil || err2 != nil || w < 16 || h < 16 || w > 7680 || h > 7680 || w%2 != 0 || h%2 != 0 {
		return 0, 0, usageError("--size %q: want WxH, even numbers from 16 to 7680 (1920x1080)", s)
	}
	return w, h, nil
}

// compositeFor resolves --composite for a session: a file or folder as given, a render of the session
// folder, or (for a stored session) a render fetched from the store.
func compositeFor(ctx context.Context, sa *sessionArg, arg string) (string, error) {
	if _, err := os.Stat(arg); err == nil || strings.ContainsAny(arg, `/\`) {
		return arg, nil
	}
	for _, d := range []string{sa.local, sa.dir} {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "renders", arg)); err == nil {
			return filepath.Join(d, "renders", arg), nil
		}
	}
	if sa.store == nil {
		return arg, nil // render.Export names what it looked for
	}
	prefix := storage.RendersPrefix(sa.room, sa.session, arg)
	objs, err := sa.store.List(ctx, prefix)
	if err != nil {
		return "", fmt.Errorf("export: --composite %s: %w", arg, err)
	}
	for _, o := range objs {
		rel := strings.TrimPrefix(o.Key, prefix)
		if strings.Contains(rel, "/") || !strings.EqualFold(path.Ext(rel), ".mp4") {
			continue
		}
		local := filepath.Join(sa.dir, "renders", arg, rel)
		if _, err := postcall.Download(ctx, sa.store, o.Key, local, nil); err != nil {
			return "", fmt.Errorf("export: --composite %s: %w", arg, err)
		}
	}
	return filepath.Join(sa.dir, "renders", arg), nil
}

// printExport prints what an export wrote.
func printExport(w io.Writer, where string, res *render.ExportResult) error {
	fmt.Fprintf(w, "export of %s in %s\n", res.Session, where)
	fmt.Fprintf(w, "  every stem: %s, %d frames at %s fps, %d samples at 48 kHz\n", timeline.FormatTime(res.Duration), res.Frames, res.FPS, res.Samples)
	for _, s := range res.Stems {
		var parts []string
		if s.WAV != "" {
			ch := "mono"
			if s.Channels == 2 {
				ch = "stereo"
			}
			parts = append(parts, fmt.Sprintf("%s (%s)", s.WAV, ch))
		}
		if s.MP4 != "" {
			parts = append(parts, fmt.Sprintf("%s (%dx%d)", s.MP4, s.Width, s.Height))
		}
		fmt.Fprintf(w, "  %-16s %s\n", s.Participant, strings.Join(parts, "  "))
	}
	if len(res.Timelines) > 0 {
		fmt.Fprintf(w, "  timelines        %s\n", strings.Join(res.Timelines, "  "))
	}
	if res.Reference != "" {
		fmt.Fprintf(w, "  reference        %s\n", res.Reference)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	return nil
}

// stemsDownload is what downloadStems put into the output folder.
type stemsDownload struct {
	export string // the stored export's name; "" when built
	files  []string
	bytes  int64
}

// downloadStems puts an export of a stored session into out: the stored export name (when "": the
// one named default, else the only one), or, when the session has no export stored, one built from
// the stored session with export's defaults. Files are fetched or built in a folder beside out, then
// moved into it, so that a failure leaves nothing.
func downloadStems(ctx context.Context, store storage.Client, room, session, name, out string, w io.Writer, log *slog.Logger) (*stemsDownload, error) {
	base := storage.SessionPrefix(room, session) + "exports/"
	objs, err := store.List(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("download --stems: %w", err)
	}
	byName := map[string][]storage.ObjectInfo{}
	var names []string
	for _, o := range objs {
		n, _, ok := strings.Cut(strings.TrimPrefix(o.Key, base), "/")
		if !ok {
			continue
		}
		if _, seen := byName[n]; !seen {
			names = append(names, n)
		}
		byName[n] = append(byName[n], o)
	}
	switch {
	case name != "" && byName[name] == nil && len(names) > 0:
		return nil, fmt.Errorf("download --stems: %s/%s has no export %q in %s; stored: %s", room, session, name, store, strings.Join(names, ", "))
	case name == "" && byName["default"] != nil:
		name = "default"
	case name == "" && len(names) == 1:
		name = names[0]
	case name == "" && len(names) > 1:
		return nil, usageError("download --stems: %s/%s has several exports stored (%s): say which with --export NAME", room, session, strings.Join(names, ", "))
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Clean(out)), 0o755); err != nil {
		return nil, fmt.Errorf("download --stems: %w", err)
	}
	stage, err := os.MkdirTemp(filepath.Dir(filepath.Clean(out)), ".stems-")
	if err != nil {
		return nil, fmt.Errorf("download --stems: %w", err)
	}
	defer os.RemoveAll(stage)
	res := &stemsDownload{export: name}
	from := filepath.Join(stage, "export")
	if name != "" && byName[name] != nil {
		prefix := postcall.ExportsPrefix(room, session, name)
		for _, o := range byName[name] {
			rel := strings.TrimPrefix(o.Key, prefix)
			if err := storage.ValidateKey(rel); err != nil {
				return nil, fmt.Errorf("download %s: unsafe local name: %w", o.Key, err)
			}
			if _, err := postcall.Download(ctx, store, o.Key, filepath.Join(from, filepath.FromSlash(rel)), progressLines(w, rel)); err != nil {
				return nil, err
			}
			res.files = append(res.files, rel)
			res.bytes += o.Size
		}
	} else {
		res.export = ""
		fmt.Fprintf(w, "%s/%s has no export stored: building one\n", room, session)
		dir := filepath.Join(stage, "session", room, session)
		if _, err := postcall.FetchSession(ctx, store, room, session, dir); err != nil {
			return nil, fmt.Errorf("download --stems: fetch %s/%s from %s: %w", room, session, store, err)
		}
		er, err := render.Export(ctx, dir, render.ExportOptions{Audio: true, Video: true, Timelines: render.TimelineFormats(),
			OutDir: from, Nice: 10, Log: log, Progress: w})
		if err != nil {
			return nil, err
		}
		for _, f := range er.Files {
			fi, err := os.Stat(filepath.Join(from, filepath.FromSlash(f)))
			if err != nil {
				return nil, fmt.Errorf("download --stems: %w", err)
			}
			res.files = append(res.files, f)
			res.bytes += fi.Size()
		}
	}
	for _, f := range res.files {
		dst := filepath.Join(out, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, fmt.Errorf("download --stems: %w", err)
		}
		if err := os.Rename(filepath.Join(from, filepath.FromSlash(f)), dst); err != nil {
			return nil, fmt.Errorf("download --stems: %w", err)
		}
	}
	return res, nil
}
