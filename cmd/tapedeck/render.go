package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/timeline"
)

func newRenderCmd(g *globals) *cobra.Command {
	var (
		editsPath, layout, lane, out, captions, loudness, ffmpeg, font, preset, progress, reuse string
		profiles                                                                                []string
		nice, parallel                                                                          int
		keepWork                                                                                bool
		st                                                                                      storeFlags
	)
	cmd := &cobra.Command{
		Use:   "render SESSION",
		Short: "Render a recorded session into a finished video (MP4, WebM, HLS) or audio file with FFmpeg",
		Long: `render reads a session folder (or its manifest.json), applies an edit file and a layout, and has
FFmpeg draw the composite and mix the audio. Outputs go to --out (default SESSION/renders/default), named
by profile: mp4-720p.mp4, mp4-1080p.mp4, mp4-360p.mp4, webm-720p.webm, hls/master.m3u8, audio.m4a.
Several --profile flags render several outputs from one composite.

SESSION may also be a stored session: ROOM/SESSION with --store URL, or one URL such as
s3://bucket/prefix/ROOM/SESSION; it is fetched into a temporary folder first. --out may be a storage URL
(file:///dir, s3://bucket/prefix): the outputs are uploaded there, checked by SHA-256.

Profiles: ` + strings.Join(render.Profiles(), ", ") + ` (default ` + render.DefaultProfile + `).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			dir, local, cleanup, err := sessionFolder(cmd.Context(), args[0], &st, log)
			if err != nil {
				return err
			}
			defer cleanup()
			var upload storage.Client
			if strings.Contains(out, "://") {
				if upload, err = storage.Open(cmd.Context(), out, storage.Options{Endpoint: st.endpoint, Region: st.region, PathStyle: st.pathStyle, Logger: log}); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				tmp, err := os.MkdirTemp("", "tapedeck-render-out-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				out = tmp
			} else if out == "" && local == "" {
				return usageError("render %s: a fetched session needs --out (a folder or a storage URL)", args[0])
			} else if out == "" && dir != local {
				// Some track files were fetched into a temporary folder: the output still goes
				// next to the session as recorded.
				out = filepath.Join(local, "renders", "default")
			}
			opts := render.Options{Profiles: profiles, Layout: timeline.LayoutType(layout), Lane: lane, OutDir: out,
				Captions: render.CaptionMode(captions), Nice: nice, Parallel: parallel, FFmpeg: ffmpeg, FontFile: font,
				Preset: preset, Log: log, KeepWork: keepWork, Reuse: reuse}
			for _, p := range profiles {
				if _, err := render.ParseProfile(p); err != nil {
					return usageError("--profile: %v", err)
				}
			}
			switch opts.Captions {
			case render.CaptionsBurn, render.CaptionsTrack, render.CaptionsOff:
			default:
				return usageError("--captions %q: want burn, track or off", captions)
			}
			switch layout {
			case "", "grid", "speaker", "pip", "single":
			default:
				return usageError("--layout %q: want grid, speaker, pip or single", layout)
			}
			if loudness == "off" {
				opts.LoudnessOff = true
			} else if opts.Loudness, err = strconv.ParseFloat(loudness, 64); err != nil || opts.Loudness > -5 || opts.Loudness < -70 {
				return usageError("--loudness %q: want a target in LUFS (-70 to -5) or off", loudness)
			}
			if editsPath != "" {
				if opts.Edits, err = timeline.LoadEdits(editsPath); err != nil {
					return err
				}
			}
			if opts.Progress, opts.ProgressTTY, err = progressTo(progress, cmd.ErrOrStderr()); err != nil {
				return err
			}
			outs, err := render.Session(cmd.Context(), dir, opts)
			if err != nil {
				return err
			}
			for _, o := range outs {
				where := o.Path
				if upload != nil {
					for _, f := range o.Files {
						info, err := storage.UploadFile(cmd.Context(), upload, f, filepath.Join(out, filepath.FromSlash(f)), false)
						if err != nil {
							return fmt.Errorf("render: upload %s: %w", f, err)
						}
						if f == filepath.ToSlash(mustRel(out, o.Path)) {
							where = upload.String() + "/" + info.Key
						}
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%-10s %s  (%s, %d file(s))\n", o.Profile, where, timeline.FormatTime(o.Duration), len(o.Files))
			}
			return nil
		},
	}
	st.register(cmd.Flags(), "store", "where a ROOM/SESSION argument is stored")
	fl := cmd.Flags()
	fl.StringVar(&editsPath, "edits", "", "edit file (YAML or JSON): cuts, layouts, names, background, overlays, captions")
	fl.StringVar(&layout, "layout", "", "replace the edits' layouts: grid, speaker, pip or single")
	fl.StringVar(&lane, "lane", "", "what --layout single shows: a participant or lane ID (default: the first participant)")
	fl.StringSliceVar(&profiles, "profile", nil, "output profile, repeatable: "+strings.Join(render.Profiles(), ", ")+" (default "+render.DefaultProfile+")")
	fl.StringVarP(&out, "out", "o", "", "output folder (default SESSION/renders/default)")
	fl.StringVar(&captions, "captions", string(render.CaptionsBurn), "the edits' captions: burn (into the picture), track (a subtitle track) or off")
	fl.StringVar(&loudness, "loudness", strconv.FormatFloat(render.DefaultLoudness, 'f', -1, 64), "loudness target in LUFS (EBU R128), or off")
	fl.IntVar(&nice, "nice", 10, "niceness of FFmpeg, so that a render yields to capture (0: none)")
	fl.IntVar(&parallel, "parallel", 0, "video jobs run at once (0: a quarter of the CPUs, at least 1)")
	fl.StringVar(&ffmpeg, "ffmpeg", "", "ffmpeg binary (default: from PATH)")
	fl.StringVar(&font, "font", "", "font file for names and labels (default: DejaVu Sans via fc-match; none: no text)")
	fl.StringVar(&preset, "preset", "veryfast", "x264 preset (ultrafast … veryslow)")
	fl.StringVar(&progress, "progress", "auto", "progress on stderr: auto (a bar on a terminal), bar, plain or off")
	fl.BoolVar(&keepWork, "keep-work", false, "keep the work folder (FFmpeg's intermediate files) for inspection")
	fl.StringVar(&reuse, "reuse", "", "keep every finished window of the video (3 minutes of output) in this folder, and take the ones a previous render with the same options finished: an interrupted render goes on where it stopped")
	return cmd
}

// sessionFolder resolves the SESSION argument of render (see resolveSessionArg).
func sessionFolder(ctx context.Context, arg string, st *storeFlags, log *slog.Logger) (dir, local string, cleanup func(), err error) {
	sa, err := resolveSessionArg(ctx, "render", arg, st, log)
	if err != nil {
		return "", "", nil, err
	}
	return sa.dir, sa.local, sa.cleanup, nil
}

// sessionArg is a resolved SESSION argument.
type sessionArg struct {
	// dir is a local session folder with every track file on disk; local is the folder it came from
	// ("" for a stored session).
	dir, local string
	// store, room and session say where a stored session came from (nil store for a folder).
	store         storage.Client
	room, session string
	// cleanup removes the temporary folder.
	cleanup func()
}

// resolveSessionArg resolves the SESSION argument of verb (render, export) to a local session folder
// with every track file on disk, and says which local folder it came from: a folder whose track files
// are all there as it is; one whose files were uploaded and deleted with them fetched (from --store or
// the stores its ledger names) into a temporary folder; ROOM/SESSION with --store, or
// STORE-URL/ROOM/SESSION, fetched from storage into a temporary folder.
func resolveSessionArg(ctx context.Context, verb, arg string, st *storeFlags, log *slog.Logger) (*sessionArg, error) {
	if _, err := os.Stat(arg); err == nil { // a folder, or its manifest.json
		rs, err := localSession(ctx, arg, st, "tapedeck "+verb+" "+arg, log)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", verb, err)
		}
		return &sessionArg{dir: rs.Dir, local: rs.Source.Dir, cleanup: func() { _ = rs.Close() }}, nil
	}
	var store storage.Client
	var ref string
	var err error
	if strings.Contains(arg, "://") {
		// The last two path elements are ROOM/SESSION; the rest is the store.
		u := strings.TrimRight(arg, "/")
		i := strings.LastIndex(u, "/")
		j := strings.LastIndex(u[:max(i, 0)], "/")
		if i < 0 || j < 0 || j < strings.Index(u, "://")+2 {
			return nil, usageError("%s %s: want STORE-URL/ROOM/SESSION, e.g. s3://calls/prod/standup/20261123T163700Z-1a2b3c", verb, arg)
		}
		ref = u[j+1:]
		store, err = storage.Open(ctx, u[:j], storage.Options{Endpoint: st.endpoint, Region: st.region, PathStyle: st.pathStyle, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", verb, arg, err)
		}
	} else {
		if st.url == "" {
			return nil, usageError("%s %s: no such folder (a stored session needs --store URL)", verb, arg)
		}
		if store, err = st.open(ctx, "", log); err != nil {
			return nil, err
		}
		ref = arg
	}
	room, session, err := resolveSession(ctx, store, ref)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "tapedeck-"+verb+"-in-")
	if err != nil {
		return nil, err
	}
	sa := &sessionArg{dir: filepath.Join(tmp, room, session), store: store, room: room, session: session,
		cleanup: func() { _ = os.RemoveAll(tmp) }}
	log.Info("fetching the session from storage", "store", store.String(), "room", room, "session", session)
	if _, err := postcall.FetchSession(ctx, store, room, session, sa.dir); err != nil {
		sa.cleanup()
		return nil, fmt.Errorf("%s: fetch %s/%s from %s: %w", verb, room, session, store, err)
	}
	return sa, nil
}

func mustRel(base, path string) string {
	r, err := filepath.Rel(base, path)
	if err != nil {
		return path
	}
	return r
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
