package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// pacer sends both tracks in real time against one start instant: video
// frame i at start + i/FPS, audio packet k at start + k*20ms, so that the
// flash and the tone of a mark leave at the same instant and the sender
// reports of both tracks map them to the same NTP time.
type pacer struct {
	cfg          Config
	video, audio *localTrack
	vclip        *videoClip
	aclip        *audioClip
	log          *slog.Logger

	vi, ai int // frames / packets sent (or skipped while reconnecting)
	// start is the instant frame 0 and packet 0 are due; set by the first run.
	start time.Time
}

// frameTime is when video frame i is due, from the start.
func (p *pacer) frameTime(i int) time.Duration {
	return time.Duration(int64(i) * int64(time.Second) / int64(p.cfg.FPS))
}

// run sends until cfg.Duration (or ctx is done: res.Interrupted), or until
// the connection fails (an error). A run after the first (a new connection,
// Config.Reconnect) goes on with the frame and packet due now: the timeline
// keeps its start.
func (p *pacer) run(ctx context.Context, failed <-chan struct{}, res *Result) error {
	if p.start.IsZero() {
		start, err := p.alignedStart(ctx, failed)
		if err != nil {
			return err
		}
		p.start = start
		res.Start = p.start
	} else {
		elapsed := time.Since(p.start)
		p.vi = max(p.vi, int((int64(elapsed)*int64(p.cfg.FPS)+int64(time.Second)-1)/int64(time.Second)))
		p.ai = max(p.ai, int((elapsed+audioPacket-1)/audioPacket))
	}
	start := p.start
	for _, t := range []*localTrack{p.video, p.audio} {
		if t != nil {
			t.setStart(start)
		}
	}
	var end time.Time
	if p.cfg.Duration > 0 {
		end = start.Add(p.cfg.Duration)
	}
	defer func() { res.End = time.Now() }()

	fpm, ppm := p.cfg.framesPerMark(), p.cfg.packetsPerMark()
	mark := func(k int) *Mark {
		for len(res.Marks) <= k {
			i := len(res.Marks)
			res.Marks = append(res.Marks, Mark{Index: i, At: start.Add(time.Duration(i) * p.cfg.MarkPeriod)})
		}
		return &res.Marks[k]
	}

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// The next thing due: the video frame on a tie, then the audio.
		var due time.Time
		video, have := false, false
		if p.video != nil {
			if t := start.Add(p.frameTime(p.vi)); end.IsZero() || t.Before(end) {
				due, video, have = t, true, true
			}
		}
		if p.audio != nil {
			if t := start.Add(time.Duration(p.ai) * audioPacket); (end.IsZero() || t.Before(end)) && (!have || t.Before(due)) {
				due, video, have = t, false, true
			}
		}
		if !have {
			return nil
		}
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				res.Interrupted = true
				return nil
			case <-failed:
				return fmt.Errorf("publisher: the connection failed after %v", time.Since(start).Round(time.Millisecond))
			}
		} else {
			select {
			case <-ctx.Done():
				res.Interrupted = true
				return nil
			case <-failed:
				return fmt.Errorf("publisher: the connection failed after %v", time.Since(start).Round(time.Millisecond))
			default:
			}
		}

		now := time.Now()
		if video {
			offset := uint32(int64(p.vi) * videoClockRate / int64(p.cfg.FPS))
			if _, err := p.video.writeFrame(p.vclip.frames[p.vi%len(p.vclip.frames)], offset, -1); err != nil {
				return p.writeErr(err, failed)
			}
			if p.vi%fpm == 0 {
				m := mark(p.vi / fpm)
				m.VideoSent, m.VideoRTP = now, p.video.ts0+offset
			}
			p.vi++
			continue
		}
		offset := uint32(p.ai * samplesPerPacket)
		level := int(p.aclip.levels[p.ai%ppm])
		if _, err := p.audio.writeFrame(p.aclip.packets[p.ai%len(p.aclip.packets)], offset, level); err != nil {
			return p.writeErr(err, failed)
		}
		if p.ai%ppm == 0 {
			m := mark(p.ai / ppm)
			m.AudioSent, m.AudioRTP = now, p.audio.ts0+offset
		}
		p.ai++
	}
}

// alignedStart is now, or with Config.MarkEpoch the first instant from now
// on that is MarkEpoch + k·MarkPeriod, waited for.
func (p *pacer) alignedStart(ctx context.Context, failed <-chan struct{}) (time.Time, error) {
	now := time.Now()
	if p.cfg.MarkEpoch.IsZero() {
		return now, nil
	}
	since := now.Sub(p.cfg.MarkEpoch)
	// k = ⌈since / period⌉ (Go's division truncates towards zero, which
	// is the ceiling for a negative since).
	k := since / p.cfg.MarkPeriod
	if since > 0 && since%p.cfg.MarkPeriod != 0 {
		k++
	}
	start := p.cfg.MarkEpoch.Add(k * p.cfg.MarkPeriod)
	wait := time.NewTimer(time.Until(start))
	defer wait.Stop()
	select {
	case <-wait.C:
		return start, nil
	case <-failed:
		return time.Time{}, errors.New("publisher: the connection failed before sending")
	case <-ctx.Done():
		return time.Time{}, fmt.Errorf("publisher: waiting for the mark epoch: %w", ctx.Err())
	}
}

func (p *pacer) writeErr(err error, failed <-chan struct{}) error {
	select {
	case <-failed:
		return errors.Join(errors.New("publisher: the connection failed"), err)
	default:
		return err
	}
}
