package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/storage"
	"github.com/tapedeck/tapedeck/timeline"
)

func newSessionsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "List and inspect the sessions in a store",
	}
	cmd.AddCommand(newSessionsListCmd(g), newSessionsShowCmd(g))
	return cmd
}

func newSessionsListCmd(g *globals) *cobra.Command {
	var st storeFlags
	cmd := &cobra.Command{
		Use:   "list [ROOM] --store URL",
		Short: "List the stored sessions (of one room), oldest first",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			prefix := ""
			if len(args) == 1 {
				if strings.Contains(args[0], "/") {
					return usageError("sessions list: %q: want a room name", args[0])
				}
				prefix = args[0] + "/"
			}
			store, err := st.open(cmd.Context(), "", log)
			if err != nil {
				return err
			}
			sessions, err := listSessions(cmd.Context(), store, prefix)
			if err != nil {
				return err
			}
			if len(sessions) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "no session in %s\n", store)
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SESSION\tFILES\tSIZE\tSTATE\tRENDERS")
			for _, s := range sessions {
				state := "complete"
				if !s.complete {
					state = "incomplete (no manifest yet)"
				}
				renders := strings.Join(s.renders, ",")
				if renders == "" {
					renders = "-"
				}
				fmt.Fprintf(tw, "%s/%s\t%d\t%s\t%s\t%s\n", s.room, s.session, s.files, humanBytes(s.bytes), state, renders)
			}
			return tw.Flush()
		},
	}
	st.register(cmd.Flags(), "store", "the store: a folder, file:///abs/dir or s3://bucket/prefix")
	return cmd
}

// storedSession sums up a session's objects.
type storedSession struct {
	room, session string
	files         int
	bytes         int64
	complete      bool // the manifest is stored (it goes last)
	renders       []string
}

// listSessions groups the store's objects under prefix by session.
func listSessions(ctx context.Context, store storage.Client, prefix string) ([]storedSession, error) {
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	byID := map[string]*storedSession{}
	var order []string
	for _, o := range objs {
		parts := strings.SplitN(o.Key, "/", 3)
		if len(parts) < 3 {
			continue
		}
		id := parts[0] + "/" + parts[1]
		s := byID[id]
		if s == nil {
			s = &storedSession{room: parts[0], session: parts[1]}
			byID[id] = s
			order = append(order, id)
		}
		s.files++
		s.bytes += o.Size
		rest := parts[2]
		if rest == "manifest.json" {
			s.complete = true
		}
		if r, ok := strings.CutPrefix(rest, "renders/"); ok {
			if name, _, ok := strings.Cut(r, "/"); ok && (len(s.renders) == 0 || s.renders[len(s.renders)-1] != name) {
				s.renders = append(s.renders, name)
			}
		}
	}
	// Session IDs sort by time; rooms by name.
	sort.SliceStable(order, func(i, j int) bool {
		a, b := byID[order[i]], byID[order[j]]
		if a.session != b.session {
			return a.session < b.session
		}
		return a.room < b.room
	})
	out := make([]storedSession, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	return out, nil
}

// localSession reads a session folder (or its manifest.json) with every track file on disk: the
// files uploaded and deleted are fetched from --store, else from the stores the folder's ledger
// names (opened with the S3 flags), into a temporary folder that Close removes. When a file cannot
// be fetched, the error names it, where it went and the flag that fetches it (command is what to run
// again with --store); a folder without manifest says to run `tapedeck recover`.
func localSession(ctx context.Context, path string, st *storeFlags, command string, log *slog.Logger) (*postcall.ResolvedSession, error) {
	rs, err := postcall.ResolveSession(ctx, path, postcall.ResolveOptions{
		StoreURL: st.storeURL(), Open: st.opener(log), Command: command, Log: log,
	})
	if err != nil {
		return nil, err
	}
	if n := len(rs.Fetched); n > 0 {
		log.Info("track files not on disk were fetched from storage", "session", rs.Source.ID(), "files", n,
			"of", len(rs.Source.Tracks), "into", rs.Dir)
	}
	return rs, nil
}

// resolveSession reads "ROOM/SESSION", or a bare SESSION that it looks up in the store.
func resolveSession(ctx context.Context, store storage.Client, arg string) (room, session string, err error) {
	if r, s, ok := strings.Cut(arg, "/"); ok {
		if r == "" || s == "" || strings.Contains(s, "/") {
			return "", "", usageError("session %q: want ROOM/SESSION (as `tapedeck sessions list` prints it) or SESSION", arg)
		}
		return r, s, nil
	}
	all, err := listSessions(ctx, store, "")
	if err != nil {
		return "", "", err
	}
	var found []storedSession
	for _, s := range all {
		if s.session == arg {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		return "", "", fmt.Errorf("session %s is not in %s (see `tapedeck sessions list`)", arg, store)
	case 1:
		return found[0].room, found[0].session, nil
	}
	return "", "", fmt.Errorf("session %s is in several rooms of %s: say ROOM/%s", arg, store, arg)
}

func newSessionsShowCmd(g *globals) *cobra.Command {
	var st storeFlags
	var links time.Duration
	cmd := &cobra.Command{
		Use:   "show ROOM/SESSION --store URL",
		Short: "Show a stored session: participants, lanes, track files and renders",
		Args:  cobra.ExactArgs(1),
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
			m, err := postcall.ReadManifest(ctx, store, room, session)
			if errors.Is(err, postcall.ErrNotComplete) {
				return fmt.Errorf("%s/%s: %w; `tapedeck sessions list` shows what is stored", room, session, postcall.ErrNotComplete)
			}
			if err != nil {
				return err
			}
			objs, err := store.List(ctx, storage.SessionPrefix(room, session))
			if err != nil {
				return err
			}
			return showSession(ctx, cmd.OutOrStdout(), store, m, objs, links)
		},
	}
	st.register(cmd.Flags(), "store", "the store: a folder, file:///abs/dir or s3://bucket/prefix")
	cmd.Flags().DurationVar(&links, "links", 0, "also print a download link valid this long for every file")
	return cmd
}

func showSession(ctx context.Context, w io.Writer, store storage.Client, m *timeline.Manifest, objs []storage.ObjectInfo, links time.Duration) error {
	prefix := storage.SessionPrefix(m.Room, m.Session)
	size := map[string]int64{}
	for _, o := range objs {
		size[o.Key] = o.Size
	}
	line := func(indent, rel, what string) error {
		key := prefix + rel
		n, ok := size[key]
		state := humanBytes(n)
		if !ok {
			state = "MISSING"
		}
		fmt.Fprintf(w, "%s%-44s %10s  %s\n", indent, rel, state, what)
		if links > 0 && ok {
			u, err := store.Link(ctx, key, links)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%s  %s\n", indent, u)
		}
		return nil
	}
	start, end := time.Unix(0, m.StartUnixNS).UTC(), time.Unix(0, m.EndUnixNS).UTC()
	fmt.Fprintf(w, "session  %s/%s in %s\n", m.Room, m.Session, store)
	fmt.Fprintf(w, "time     %s to %s (%s)", start.Format(time.RFC3339), end.Format(time.RFC3339), end.Sub(start).Round(time.Second))
	if m.Recovered {
		fmt.Fprint(w, ", recovered after a crash")
	}
	fmt.Fprintln(w)
	names := make([]string, 0, len(m.Participants))
	for _, p := range m.Participants {
		names = append(names, fmt.Sprintf("%s (%d publish(es))", p.Name, len(p.Publishes)))
	}
	fmt.Fprintf(w, "people   %s\n\n", strings.Join(names, ", "))
	for _, rel := range []string{"manifest.json", "journal.jsonl"} {
		if err := line("", rel, ""); err != nil {
			return err
		}
	}
	for _, l := range m.Lanes {
		fmt.Fprintf(w, "\nlane %s\n", l.ID)
		for _, t := range l.Tracks {
			for _, s := range t.Segments {
				d := time.Duration(float64(s.LastRTP-s.FirstRTP) / float64(t.Codec.ClockRate) * float64(time.Second))
				if err := line("  ", s.Path, fmt.Sprintf("%s, %s", t.Codec.Name, d.Round(time.Millisecond))); err != nil {
					return err
				}
			}
		}
	}
	first := true
	for _, o := range objs {
		rel := strings.TrimPrefix(o.Key, prefix)
		if !strings.HasPrefix(rel, "renders/") {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nrenders")
			first = false
		}
		if err := line("  ", rel, ""); err != nil {
			return err
		}
	}
	if first {
		fmt.Fprintln(w, "\nno render stored")
	}
	return nil
}
