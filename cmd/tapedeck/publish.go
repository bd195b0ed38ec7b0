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
		Use:   "publish WHIP-URL",
		Short: "Publish a synthetic participant (test picture and tone with sync marks) over WHIP",
		Example: `  tapedeck publish http://127.0.0.1:8080/whip/demo --participant alice --duration 30s
  tapedeck publish http://127.0.0.1:8080/whip/demo --participant bob --video h264 --clock-offset 3s --loss 0.02`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			c.Endpoint = args[0]
			if join > 0 {
				select {
				case <-time.After(join):
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				}
			}
			res, err := publisher.Run(cmd.Context(), c, log)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%+v\n", res)
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
	return cmd
}
