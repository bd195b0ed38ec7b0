package main

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/timeline"
)

func newDownloadCmd(g *globals) *cobra.Command {
	var st storeFlags
	var tracks, composite, stems bool
	var out, export string
	cmd := &cobra.Command{
		Use:   "download ROOM/SESSION --store URL [--tracks] [--composite] [--stems [--export NAME]] [--out DIR]",
		Short: "Download a session's raw tracks (one file per person and medium) and/or its composites",
		Long: "Downloads into --out (default: ./SESSION). Raw tracks are named PARTICIPANT-MEDIUM-N.EXT " +
			"(alice-video-1.webm, alice-video-2.webm for her second file, in time order), with manifest.json, " +
			"which says exactly when each file starts; composites are named composite-RENDER.EXT (a render of " +
			"several files, such as HLS, goes into the folder composite-RENDER). Every file is checked against " +
			"the store's SHA-256. With --stems, the session's export for editors (one WAV and one MP4 per participant, " +
			"aligned, and the timelines that place them, as `tapedeck export` writes it): the stored one, or one built " +
			"now from the stored session when none is stored. Without --tracks, --composite or --stems: tracks and composites.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			store, err := st.open(ctx, "", log)
			if err != nil {
				return err
			}
			room, session, err := resolveSession(ctx, store, args[0])
			if err != nil {
				return err
			}
			optional := false // without flags, a session without composite is downloaded without
			if !tracks && !composite && !stems {
				tracks, composite, optional = true, true, true
			}
			if out == "" {
				out = session
			}
			if export != "" && !stems {
				return usageError("--export %s: say --stems too", export)
			}
			w := cmd.OutOrStdout()
			if stems {
				sd, err := downloadStems(ctx, store, room, session, export, out, w, log)
				if err != nil {
					return err
				}
				what := "export " + sd.export
				if sd.export == "" {
					what = "export built now"
				}
				fmt.Fprintf(w, "%s: %d file(s), %s, in %s\n", what, len(sd.files), humanBytes(sd.bytes), out)
				if !tracks && !composite {
					return nil
				}
			}
			plan, err := downloadPlan(ctx, store, room, session, tracks, composite, optional)
			if err != nil {
				return err
			}
			var total int64
			for _, d := range plan {
				if err := storage.ValidateKey(d.name); err != nil {
					return fmt.Errorf("download %s: unsafe local name: %w", d.key, err)
				}
				if _, err := postcall.Download(ctx, store, d.key, filepath.Join(out, filepath.FromSlash(d.name)), progressLines(w, d.name)); err != nil {
					return err
				}
				total += d.size
			}
			fmt.Fprintf(w, "%d file(s), %s, in %s\n", len(plan), humanBytes(total), out)
			return nil
		},
	}
	st.register(cmd.Flags(), "store", "the store: a folder, file:///abs/dir or s3://bucket/prefix")
	cmd.Flags().BoolVar(&tracks, "tracks", false, "the raw tracks and the manifest")
	cmd.Flags().BoolVar(&composite, "composite", false, "the rendered composites")
	cmd.Flags().BoolVar(&stems, "stems", false, "the export for editors: per-participant WAV and MP4 stems and timelines (built now if none is stored)")
	cmd.Flags().StringVar(&export, "export", "", "with --stems: which stored export (default: the one named default, else the only one)")
	cmd.Flags().StringVar(&out, "out", "", "folder to download into (default: ./SESSION)")
	return cmd
}

// download is one file to fetch: the object key and the local name (slash-separated).
type download struct {
	key, name string
	size      int64
}

// downloadPlan lists what to download and the names editors see.
func downloadPlan(ctx context.Context, store storage.Client, room, session string, tracks, composite, optional bool) ([]download, error) {
	prefix := storage.SessionPrefix(room, session)
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	size := map[string]int64{}
	for _, o := range objs {
		size[o.Key] = o.Size
	}
	var plan []download
	if tracks {
		m, err := postcall.ReadManifest(ctx, store, room, session)
		if err != nil {
			return nil, err
		}
		for _, d := range trackNames(m) {
			d.key = prefix + d.key
			n, ok := size[d.key]
			if !ok {
				return nil, fmt.Errorf("%s is in the manifest but not in %s", d.key, store)
			}
			d.size = n
			plan = append(plan, d)
		}
		plan = append(plan, download{key: storage.ManifestKey(room, session), name: "manifest.json", size: size[storage.ManifestKey(room, session)]})
	}
	if composite {
		renders := map[string][]storage.ObjectInfo{}
		var order []string
		for _, o := range objs {
			rel, ok := strings.CutPrefix(o.Key, prefix+"renders/")
			if !ok {
				continue
			}
			name, _, _ := strings.Cut(rel, "/")
			if _, seen := renders[name]; !seen {
				order = append(order, name)
			}
			renders[name] = append(renders[name], o)
		}
		if len(order) == 0 && !optional {
			return nil, fmt.Errorf("%s/%s has no composite in %s (yet)", room, session, store)
		}
		for _, name := range order {
			files := renders[name]
			base := storage.RendersPrefix(room, session, name)
			for _, o := range files {
				rel := strings.TrimPrefix(o.Key, base)
				local := "composite-" + name + "/" + rel
				if len(files) == 1 {
					local = "composite-" + name + path.Ext(rel)
				}
				plan = append(plan, download{key: o.Key, name: local, size: o.Size})
			}
		}
	}
	return plan, nil
}

// trackNames names every track file of a manifest PARTICIPANT-KIND-N.EXT, N counting the files of
// each lane from 1 in time order. Keys are relative to the session.
func trackNames(m *timeline.Manifest) []download {
	var out []download
	for _, l := range m.Lanes {
		n := 0
		for _, t := range l.Tracks {
			for _, s := range t.Segments {
				n++
				out = append(out, download{key: s.Path, name: fmt.Sprintf("%s-%s-%d%s", l.Participant, l.Kind, n, path.Ext(s.Path))})
			}
		}
	}
	return out
}
