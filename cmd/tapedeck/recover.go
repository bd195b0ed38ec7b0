package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/tapedeck/tapedeck/capture"
)

func newRecoverCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "recover DIR",
		Short: "Rebuild manifests from journals and files: a session folder, or a data folder (every session without a manifest)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			dir := args[0]
			if _, err := os.Stat(filepath.Join(dir, capture.JournalName)); err == nil {
				s, err := capture.RecoverSession(dir)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d lanes\n", filepath.Join(s.Dir, capture.ManifestName), len(s.Manifest.Lanes))
				return nil
			}
			if _, err := os.Stat(dir); err != nil {
				return usageError("recover: %v", err)
			}
			done, err := capture.Recover(dir, log)
			for _, s := range done {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d lanes\n", filepath.Join(s.Dir, capture.ManifestName), len(s.Manifest.Lanes))
			}
			if len(done) == 0 && err == nil {
				fmt.Fprintln(cmd.OutOrStdout(), "no session without a manifest under", dir)
			}
			return err
		},
	}
}
