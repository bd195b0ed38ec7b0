package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/timeline"
)

// inspectJSON is what --json prints.
type inspectJSON struct {
	*timeline.Summary
	Plan *timeline.Plan `json:"plan,omitempty"`
}

func newInspectCmd(g *globals) *cobra.Command {
	var asJSON bool
	var svgPath, editsPath string
	cmd := &cobra.Command{
		Use:   "inspect SESSION",
		Short: "Show what a recording holds: participants, lanes, files, gaps, loss, clock offsets and sync confidence",
		Long: `inspect reads a session folder (or its manifest.json) and prints what a person needs to trust the
recording: participants and their publishes, each sender clock's offset and drift, every lane's files,
gaps, packet loss, sender reports and sync confidence, the active speaker, and warnings.

--svg draws the lanes over time; --edits checks an edit file against the recording and prints the plan.
Track files that are not on disk (uploaded, then deleted by serve) are listed with the store and key the
folder's ledger (uploaded.jsonl) says they went to, and the command that fetches them.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := g.logger(cmd.ErrOrStderr()); err != nil {
				return err
			}
			path := args[0]
			if _, err := os.Stat(path); err != nil {
				return usageError("inspect: %v", err)
			}
			loc, err := postcall.LocateSession(path)
			if err != nil {
				return fmt.Errorf("inspect: %w", err)
			}
			m := loc.Manifest
			s, err := timeline.NewSync(m)
			if err != nil {
				return fmt.Errorf("inspect %s: %w", path, err)
			}
			sum, err := timeline.Summarize(m, s)
			if err != nil {
				return fmt.Errorf("inspect %s: %w", path, err)
			}
			var plan *timeline.Plan
			if editsPath != "" {
				e, err := timeline.LoadEdits(editsPath)
				if err != nil {
					return err
				}
				if plan, err = timeline.NewPlan(m, s, e, timeline.PlanOptions{}); err != nil {
					return err
				}
			}
			if svgPath != "" {
				if err := writeSVG(svgPath, sum); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(inspectJSON{Summary: sum, Plan: plan})
			}
			if err := sum.WriteText(out); err != nil {
				return err
			}
			// Where the track files are that the recorder uploaded and deleted, and how to fetch them.
			if len(loc.Missing()) > 0 {
				fmt.Fprintln(out)
				if err := loc.WriteWhere(out, "tapedeck render "+args[0]); err != nil {
					return err
				}
			}
			if plan != nil {
				fmt.Fprintln(out)
				return plan.WriteText(out)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&asJSON, "json", false, "print JSON for machines")
	fl.StringVar(&svgPath, "svg", "", "also draw the lanes over time into this SVG file")
	fl.StringVar(&editsPath, "edits", "", "check this edit file (YAML or JSON) against the recording and print the plan")
	return cmd
}

func writeSVG(path string, sum *timeline.Summary) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	if err := sum.WriteSVG(f); err != nil {
		f.Close()
		return fmt.Errorf("inspect: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("inspect: write %s: %w", path, err)
	}
	return nil
}
