package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/tapedeck/tapedeck/examples/publisher"
)

func newPublishCmd(g *globals) *cobra.Command {
	c := publisher.Config{}
	var join time.Duration
	cmd := &cobra.Command{
		Use:   "publish WHIP-URL [WHIP-URL...]",
		Short: "Publish a synthetic participant (test picture and tone with sync marks) over WHIP",
		Long: `Publish a synthetic participant (test picture and tone with sync marks) over WHIP.

With --reconnect the publisher behaves like a client whose recorder died: when the POST fails or
the connection drops, it publishes again (a new WHIP session, the media going on where its timeline
is now) on the next URL in turn, the first one included, until --reconnect-for passes without a
connection. Give the WHIP URLs of every node of a cluster to see a room fail over.`,
		Example: `  tapedeck publish http://127.0.0.1:8080/whip/demo --participant alice --duration 30s
  tapedeck publish http://127.0.0.1:8080/whip/demo --participant bob --video h264 --clock-offset 3s --loss 0.02
  tapedeck publish http://node1:8080/whip/demo http://node2:8080/whip/demo --reconnect --duration 5m`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			c.Endpoint, c.Endpoints = args[0], args[1:]
			if len(args) > 1 && !c.Reconnect {
				return usageError("publish: %d WHIP URLs without --reconnect: the others are only tried when reconnecting", len(args))
			}
			if join > 0 {
				select {
				case <-time.After(join):
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				}
			}
			res, err := publisher.Run(cmd.Context(), c, log)
			for i, a := range res.Attempts {
				state := "connected"
				if a.Connected.IsZero() {
					state = "not connected"
				}
				if a.Err != "" {
					state += ": " + a.Err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "attempt %d: %s (%s)\n", i+1, a.Endpoint, state)
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "published %s for %v to %s (%s), %d marks\n", c.Participant,
				res.End.Sub(res.Start).Round(time.Millisecond), res.Location, res.Path, len(res.Marks))
			for _, tr := range res.Tracks {
				fmt.Fprintf(out, "  %s %s: %d frames, %d packets, %d dropped on purpose, %d NACKs, %d PLIs\n",
					tr.Kind, tr.Codec, tr.Frames, tr.Packets, tr.Dropped, tr.NACKs, tr.PLIs)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&c.Participant, "participant", "synthetic", "participant name")
	fl.StringVar(&c.Token, "token", "", "bearer token")
	fl.DurationVar(&c.Duration, "duration", 30*time.Second, "how long to publish (0: until interrupted)")
	fl.DurationVar(&join, "join-after", 0, "wait this long before joining")
	fl.StringVar(&c.Video, "video", "vp8", `video codec: vp8, h264, or "" for audio only`)
	fl.BoolVar(&c.Audio, "audio", true, "publish an Opus track")
	fl.IntVar(&c.Width, "width", 640, "video width")
	fl.IntVar(&c.Height, "height", 360, "video height")
	fl.IntVar(&c.FPS, "fps", 30, "video frame rate")
	fl.IntVar(&c.Bitrate, "bitrate", 1_000_000, "video bitrate, bits/s")
	fl.DurationVar(&c.MarkPeriod, "mark-period", time.Second, "time between sync marks (flash + tone)")
	fl.Float64Var(&c.Loss, "loss", 0, "fraction of RTP packets dropped on purpose")
	fl.DurationVar(&c.ClockOffset, "clock-offset", 0, "offset of the sender's wall clock in its RTCP sender reports")
	fl.Int64Var(&c.Seed, "seed", 1, "seed of the loss pattern")
	fl.StringVar(&c.MediaDir, "media-cache", "", "folder caching the generated media")
	fl.BoolVar(&c.Reconnect, "reconnect", false, "publish again, on the next WHIP URL in turn, when the POST fails or the connection drops")
	fl.DurationVar(&c.ReconnectFor, "reconnect-for", 60*time.Second, "with --reconnect: give up after this long without a connection")
	return cmd
}
