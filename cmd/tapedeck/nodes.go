package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/tapedeck/tapedeck/cluster"
	"github.com/tapedeck/tapedeck/postcall"
)

// nodeView is one node as `tapedeck nodes` shows it.
type nodeView struct {
	cluster.NodeInfo
	// Over says why the node sends new rooms elsewhere ("" when it takes them).
	Over string `json:"over,omitempty"`
	// Leases are the rooms it holds the lease of, with their sessions.
	Leases []cluster.Lease `json:"leases"`
}

func newNodesCmd(g *globals) *cobra.Command {
	var natsURL string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "List the nodes of a cluster, their load and the rooms each records",
		Long: `List the nodes of a cluster (serve --advertise-url with a shared --nats server): each node's
WHIP URL, its load as it last announced it (CPU, free disk, tracks, publishes), whether it takes new
rooms, and the rooms it records (from their leases), with their sessions.`,
		Example: `  tapedeck nodes --nats nats://10.0.0.2:4222
  tapedeck nodes --nats nats://10.0.0.2:4222 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if natsURL == "" {
				return usageError("--nats URL is required: the NATS server the nodes share")
			}
			ctx := cmd.Context()
			nc, err := postcall.Connect(ctx, natsURL, "tapedeck nodes", log)
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return fmt.Errorf("nodes: %w", err)
			}
			b, err := cluster.OpenBuckets(ctx, js)
			if err != nil {
				return err
			}
			nodes, err := b.ListNodes(ctx)
			if err != nil {
				return err
			}
			leases, err := b.ListLeases(ctx)
			if err != nil {
				return err
			}
			views := map[string]*nodeView{}
			var out []*nodeView
			for _, n := range nodes {
				v := &nodeView{NodeInfo: n, Over: n.Limits.Over(n.Load), Leases: []cluster.Lease{}}
				views[n.Name] = v
				out = append(out, v)
			}
			for _, l := range leases {
				v := views[l.Node]
				if v == nil {
					// A lease outliving its node's announcement by a moment.
					v = &nodeView{NodeInfo: cluster.NodeInfo{Name: l.Node, URL: l.URL}, Over: "not announced (gone?)"}
					views[l.Node] = v
					out = append(out, v)
				}
				v.Leases = append(v.Leases, l)
			}
			sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
			for _, v := range out {
				sort.Slice(v.Leases, func(i, j int) bool { return v.Leases[i].Room < v.Leases[j].Room })
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if out == nil {
					out = []*nodeView{}
				}
				return enc.Encode(map[string]any{"nodes": out})
			}
			return writeNodes(cmd, out)
		},
	}
	cmd.Flags().StringVar(&natsURL, "nats", os.Getenv("TAPEDECK_NATS"), "the NATS server of the cluster, nats://host:port (also $TAPEDECK_NATS)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func writeNodes(cmd *cobra.Command, nodes []*nodeView) error {
	if len(nodes) == 0 {
		_, err := fmt.Fprintln(cmd.OutOrStdout(), "no node is announced on this NATS server")
		return err
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tURL\tCPU\tFREE DISK\tTRACKS\tPUBLISHES\tNEW ROOMS\tROOMS")
	for _, n := range nodes {
		cpu := "?"
		if n.Load.CPU >= 0 {
			cpu = fmt.Sprintf("%.0f%%", 100*n.Load.CPU)
		}
		free := "?"
		if n.Load.FreeDisk >= 0 {
			free = fmt.Sprintf("%.1f GiB", float64(n.Load.FreeDisk)/(1<<30))
		}
		takes := "yes"
		switch {
		case n.Draining:
			takes = "no: draining"
		case n.Over != "":
			takes = "no: " + n.Over
		}
		var rooms []string
		for _, l := range n.Leases {
			rooms = append(rooms, l.Room)
		}
		if len(rooms) == 0 {
			rooms = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", n.Name, n.URL, cpu, free, n.Load.Tracks, n.Load.Publishes, takes, strings.Join(rooms, ", "))
	}
	return tw.Flush()
}
