package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/tapedeck/tapedeck/capture"
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

--svg draws the lanes over time; --edits checks an edit file against the recording and prints the plan.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := g.logger(cmd.ErrOrStderr()); err != nil {
				return err
			}
			path := args[0]
			if st, err := os.Stat(path); err != nil {
				return usageError("inspect: %v", err)
			} else if st.IsDir() {
				path = filepath.Join(path, capture.ManifestName)
			}
			f, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("inspect: %w", err)
			}
			defer f.Close()
			m, err := timeline.ParseManifest(f)
			if err != nil {
				return fmt.Errorf("inspect %s: %w", path, err)
			}
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
