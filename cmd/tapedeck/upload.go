package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"
	"github.com/tapedeck/tapedeck/capture"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/timeline"
)

func newUploadCmd(g *globals) *cobra.Command {
	var st storeFlags
	var remove bool
	cmd := &cobra.Command{
		Use:   "upload DIR --to URL",
		Short: "Upload recorded sessions to a store: a session folder, or a data folder (every session in it)",
		Long: "Uploads each session's track files, journal and manifest (last) to ROOM/SESSION/ in the store, " +
			"checking every upload's size and SHA-256, and records each confirmed upload in the session " +
			"folder's ledger (uploaded.jsonl). Files the store already holds with the same bytes are " +
			"skipped, so an interrupted upload can be run again. With --remove, the track files are deleted " +
			"only once the manifest is stored, so that the session is whole on disk or in the store at every " +
			"moment; `tapedeck render` and `tapedeck inspect` on the folder then find them through the ledger. " +
			"A session needs its manifest: run `tapedeck recover DIR` first for one a crash left without.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			dirs, err := sessionDirs(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			store, err := st.open(ctx, "", log)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			u := postcall.NewUploader(&progressStore{Client: store, w: w}, postcall.UploadConfig{}, log)
			for _, dir := range dirs {
				m, err := readLocalManifest(dir)
				if err != nil {
					return err
				}
				n, err := u.StoreSession(ctx, dir, m, remove)
				if err != nil {
					return fmt.Errorf("upload %s: %w", dir, err)
				}
				fmt.Fprintf(w, "%s/%s: %d file(s) stored in %s\n", m.Room, m.Session, n, store)
			}
			return nil
		},
	}
	st.register(cmd.Flags(), "to", "the store: a folder, file:///abs/dir or s3://bucket/prefix")
	cmd.Flags().BoolVar(&remove, "remove", false, "delete the closed segments' files once the whole session, manifest last, is stored")
	return cmd
}

// sessionDirs returns dir if it is a session folder, else the session folders dir/ROOM/SESSION.
func sessionDirs(dir string) ([]string, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, usageError("upload: %v", err)
	}
	if isSessionDir(dir) {
		return []string{dir}, nil
	}
	var out []string
	for _, name := range []string{capture.JournalName, capture.ManifestName} {
		found, err := filepath.Glob(filepath.Join(dir, "*", "*", name))
		if err != nil {
			return nil, err
		}
		for _, f := range found {
			out = append(out, filepath.Dir(f))
		}
	}
	sort.Strings(out)
	out = dedupe(out)
	if len(out) == 0 {
		return nil, usageError("upload: %s is neither a session folder (with %s) nor a data folder (ROOM/SESSION/ folders)",
			dir, capture.ManifestName)
	}
	return out, nil
}

func isSessionDir(dir string) bool {
	for _, name := range []string{capture.JournalName, capture.ManifestName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// readLocalManifest reads a session folder's manifest.
func readLocalManifest(dir string) (*timeline.Manifest, error) {
	f, err := os.Open(filepath.Join(dir, capture.ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("upload: %s has no %s: run `tapedeck recover %s` first", dir, capture.ManifestName, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	defer func() { _ = f.Close() }()
	m, err := timeline.ParseManifest(f)
	if err != nil {
		return nil, fmt.Errorf("upload: %s: %w", dir, err)
	}
	return m, nil
}
