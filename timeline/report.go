package timeline

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// This file writes a Summary and a Plan as text for people.

func fmtS(s float64) string {
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return "?"
	}
	return FormatTime(time.Duration(math.Round(s * 1e9)))
}

// fmtFile formats seconds of file time to the millisecond, without "-0.000".
func fmtFile(v float64) string {
	if math.Abs(v) < 0.0005 {
		v = 0
	}
	return fmt.Sprintf("%.3f", v)
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

// WriteText writes the summary for a person to read.
func (s *Summary) WriteText(w io.Writer) error {
	out := &errWriter{w: w}
	start := time.Unix(0, s.SessionStartUnixNS).UTC()
	out.printf("session %s/%s\n", s.Room, s.Session)
	out.printf("  started %s UTC; media runs to %s", start.Format("2006-01-02 15:04:05.000"), fmtS(s.DurationS))
	if s.EndUnixNS > 0 {
		out.printf(", session ended at %s", fmtS(float64(s.EndUnixNS-s.SessionStartUnixNS)/1e9))
	}
	out.printf("\n")
	if s.Recovered {
		out.printf("  recovered: the manifest was rebuilt from the journal after a crash\n")
	}

	out.printf("\nparticipants\n")
	for _, p := range s.Participants {
		name := ""
		if p.Name != "" && p.Name != p.ID {
			name = fmt.Sprintf(" (%s)", p.Name)
		}
		var present []string
		for _, sp := range p.Present {
			present = append(present, fmtS(sp.StartS)+"–"+fmtS(sp.EndS))
		}
		out.printf("  %s%s: present %s\n", p.ID, name, orNone(strings.Join(present, ", ")))
		for _, pb := range p.Publishes {
			end := "open"
			if pb.EndS != 0 {
				end = fmtS(pb.EndS)
			}
			reason := ""
			if pb.EndReason != "" {
				reason = "  " + pb.EndReason
			}
			out.printf("    publish %s  %s–%s%s\n", pb.ID, fmtS(pb.StartS), end, reason)
		}
		if len(p.Clocks) == 0 {
			out.printf("    clock: not estimated (no sender reports)\n")
		}
		for _, c := range p.Clocks {
			drift := "drift not estimated (under 60 s)"
			if c.DriftPPM != 0 {
				drift = fmt.Sprintf("drift %+.1f ppm", c.DriftPPM)
			}
			out.printf("    clock: offset %+.1f ms (recorder − sender, at %s), %s, %d samples, publishes %s\n",
				c.OffsetMS, fmtS(c.AtS), drift, c.Samples, strings.Join(c.Publishes, ", "))
		}
	}

	out.printf("\nlanes\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	lanes := &errWriter{w: tw}
	lanes.printf("  LANE\tCODEC\tTRACKS\tFILES\tMEDIA\tFIRST\tLAST\tGAPS\tLOSS\tSRs\tSYNC\n")
	for _, l := range s.Lanes {
		lanes.printf("  %s\t%s\t%d\t%d\t%.2f s\t%s\t%s\t%d\t%.2f%%\t%d\t%s\n", l.ID, orNone(strings.Join(l.Codecs, ",")), l.Tracks, len(l.Segments),
			l.MediaS, fmtS(l.FirstS), fmtS(l.LastS), len(l.Gaps), l.LossPercent, l.SenderReports, l.Sync.Grade)
	}
	if lanes.err == nil {
		lanes.err = tw.Flush()
	}
	if out.err == nil {
		out.err = lanes.err
	}

	out.printf("\nsync (per lane: sender reports used, their scatter, the offset fit's scatter, extra delay over the sender's quickest track)\n")
	for _, l := range s.Lanes {
		c := l.Sync
		out.printf("  %-14s %-4s  %d reports, report residual %.2f ms, offset residual %.2f ms, track floor %.1f ms",
			l.ID, c.Grade, c.Reports, c.ReportResidualMS, c.OffsetResidualMS, c.TrackFloorMS)
		if c.ArrivalFallback {
			out.printf(", %.0f%% placed from arrival times", 100*c.FallbackFraction)
		}
		out.printf("\n")
	}

	out.printf("\ngaps (holes of %s or more)\n", MinGap)
	n := 0
	for _, l := range s.Lanes {
		for _, g := range l.Gaps {
			out.printf("  %-14s %s–%s  %6.3f s  %s\n", l.ID, fmtS(g.StartS), fmtS(g.EndS), g.EndS-g.StartS, g.Reason)
			n++
		}
	}
	if n == 0 {
		out.printf("  none\n")
	}

	out.printf("\nfiles\n")
	for _, l := range s.Lanes {
		for _, sg := range l.Segments {
			size := ""
			if sg.Width > 0 {
				size = fmt.Sprintf("  %dx%d", sg.Width, sg.Height)
			}
			closed := ""
			if !sg.Closed {
				closed = "  NOT CLOSED"
			}
			out.printf("  %-14s %s  %s–%s  %d frames, %d packets, %d lost, %s%s%s\n", l.ID, sg.Path, fmtS(sg.StartS), fmtS(sg.EndS),
				sg.Frames, sg.Packets, sg.Lost, fmtBytes(sg.Bytes), size, closed)
		}
	}

	out.printf("\nactive speaker\n")
	var sp []string
	for _, s := range s.Speakers {
		sp = append(sp, fmt.Sprintf("%s %s", fmtS(s.StartS), s.Participant))
	}
	out.printf("  %s\n", orNone(strings.Join(sp, ", ")))

	out.printf("\nwarnings\n")
	for _, wn := range s.Warnings {
		out.printf("  - %s\n", wn)
	}
	if len(s.Warnings) == 0 {
		out.printf("  none\n")
	}
	return out.err
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// WriteText writes the plan for a person to read: one line per interval,
// then its tiles and audio.
func (p *Plan) WriteText(w io.Writer) error {
	out := &errWriter{w: w}
	out.printf("plan: %dx%d at %s fps, %s of output from %s of recording, %d intervals\n",
		p.Width, p.Height, p.FPS, FormatTime(p.Duration), FormatTime(p.RecordingDuration), len(p.Intervals))
	for _, iv := range p.Intervals {
		out.printf("  %s–%s (recording %s–%s) %s", FormatTime(iv.Start), FormatTime(iv.End), FormatTime(iv.RecStart), FormatTime(iv.RecEnd), iv.Layout)
		if iv.Speaker != "" {
			out.printf(", speaker %s", iv.Speaker)
		}
		out.printf("\n")
		for _, t := range iv.Tiles {
			what := string(t.Placeholder) + " placeholder"
			if t.Source != nil {
				what = fmt.Sprintf("%s %s–%s s", t.Source.Path, fmtFile(t.Source.FileStart), fmtFile(t.Source.FileEnd))
			}
			lane := t.Lane
			if lane == "" {
				lane = t.Participant
			}
			out.printf("      video %-14s %-18s z%d  %s\n", lane, t.Rect, t.Z, what)
		}
		for _, a := range iv.Audio {
			gain := ""
			if a.GainDB != 0 {
				gain = fmt.Sprintf("  %+.1f dB", a.GainDB)
			}
			out.printf("      audio %-14s %s %s–%s s%s\n", a.Lane, a.Source.Path, fmtFile(a.Source.FileStart), fmtFile(a.Source.FileEnd), gain)
		}
	}
	for _, o := range p.Overlays {
		out.printf("  overlay %s %s %s–%s\n", o.Image, o.Anchor, FormatTime(o.Start), FormatTime(o.End))
	}
	if len(p.Captions) > 0 {
		out.printf("  %d captions\n", len(p.Captions))
	}
	return out.err
}

// FormatTime formats a time of the recording or the output as
// "h:mm:ss.mmm" (or "m:ss.mmm" under an hour).
func FormatTime(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	ms := (d + time.Millisecond/2) / time.Millisecond
	h, ms := ms/3600000, ms%3600000
	m, ms := ms/60000, ms%60000
	s, ms := ms/1000, ms%1000
	if h > 0 {
		return fmt.Sprintf("%s%d:%02d:%02d.%03d", sign, h, m, s, ms)
	}
	return fmt.Sprintf("%s%d:%02d.%03d", sign, m, s, ms)
}
