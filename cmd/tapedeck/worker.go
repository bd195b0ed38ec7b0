package main

import (
	"github.com/spf13/cobra"
)

func newWorkerCmd(g *globals) *cobra.Command {
	f := &pipelineFlags{}
	cmd := &cobra.Command{
		Use:   "worker --nats URL --store URL",
		Short: "Run post-call jobs (render, store, notify) taken from serve's NATS server, without recording",
		Long: "A worker takes the render stage of post-call jobs from the NATS JetStream stream that `serve --nats URL` " +
			"publishes to, reads the session from the store, renders it, stores the outputs and POSTs the webhook. " +
			"Run as many as you like on machines that reach the same NATS server and store.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if f.renderConcurrency < 1 {
				return usageError("--render-concurrency %d: a worker runs at least 1", f.renderConcurrency)
			}
			jobs, err := startPipeline(cmd.Context(), f, roleWorker, "", log)
			if err != nil {
				return err
			}
			<-cmd.Context().Done()
			log.Info("worker stopping: jobs in progress go back to the queue")
			jobs.stop()
			return nil
		},
	}
	f.register(cmd.Flags(), roleWorker)
	return cmd
}
