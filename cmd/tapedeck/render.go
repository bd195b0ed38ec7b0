package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/tapedeck/tapedeck/render"
	"github.com/tapedeck/tapedeck/timeline"
)

func newRenderCmd(g *globals) *cobra.Command {
	var (
		editsPath, layout, lane, out, captions, loudness, ffmpeg, font, preset, progress string
		profiles                                                                         []string
		nice, parallel                                                                   int
		keepWork                                                                         bool
	)
	cmd := &cobra.Command{
		Use:   "render SESSION",
		Short: "Render a recorded session into a finished video (MP4, WebM, HLS) or audio file with FFmpeg",
		Long: `render reads a session folder (or its manifest.json), applies an edit file and a layout, and has
FFmpeg draw the composite and mix the audio. Outputs go to --out (default SESSION/renders/default), named
by profile: mp4-720p.mp4, mp4-1080p.mp4, mp4-360p.mp4, webm-720p.webm, hls/master.m3u8, audio.m4a.
Several --profile flags render several outputs from one composite.

Profiles: ` + strings.Join(render.Profiles(), ", ") + ` (default ` + render.DefaultProfile + `).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			dir, cleanup, err := localSession(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer cleanup()
			opts := render.Options{Profiles: profiles, Layout: timeline.LayoutType(layout), Lane: lane, OutDir: out,
				Captions: render.CaptionMode(captions), Nice: nice, Parallel: parallel, FFmpeg: ffmpeg, FontFile: font,
				Preset: preset, Log: log, KeepWork: keepWork}
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
			switch progress {
			case "auto":
				opts.Progress, opts.ProgressTTY = cmd.ErrOrStderr(), isTerminal(cmd.ErrOrStderr())
			case "bar", "plain":
				opts.Progress, opts.ProgressTTY = cmd.ErrOrStderr(), progress == "bar"
			case "off":
			default:
				return usageError("--progress %q: want auto, bar, plain or off", progress)
			}
			outs, err := render.Session(cmd.Context(), dir, opts)
			if err != nil {
				return err
			}
			for _, o := range outs {
				fmt.Fprintf(cmd.OutOrStdout(), "%-10s %s  (%s, %d file(s))\n", o.Profile, o.Path, timeline.FormatTime(o.Duration), len(o.Files))
			}
			return nil
		},
	}
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
	return cmd
}

// localSession resolves the SESSION argument to a local session folder.
//
// Storage hook: a storage URL (s3://bucket/prefix/room/session, file://…)
// is for the storage wiring to fetch into a temporary folder here
// (postcall.FetchSession does it for the pipeline) and to clean up after.
func localSession(_ context.Context, arg string) (string, func(), error) {
	if strings.Contains(arg, "://") {
		return "", nil, usageError("render %s: storage URLs are not wired yet: pass a local session folder", arg)
	}
	if _, err := os.Stat(arg); err != nil {
		return "", nil, usageError("render: %v", err)
	}
	return arg, func() {}, nil
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
