package render

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tapedeck/tapedeck/timeline"
)

// Filtergraph text goes through two levels of unescaping in FFmpeg: the graph
// parser (which splits on [ ] , ; and honours '…' and \) and then each
// filter's option parser (which splits on : and honours '…' and \). A literal
// value is therefore escaped for the option level first, then for the graph
// level.

// escValue escapes a literal option value (a path, a colour) for a filter
// argument in a filtergraph.
func escValue(v string) string {
	return escapeChars(escapeChars(v, `\':`), `\'[],;`)
}

func escapeChars(s, special string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(special, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// quoteExpr protects an expression (which holds commas but never a quote or
// a colon) at the graph level.
func quoteExpr(e string) string { return "'" + e + "'" }

// textFileName is the work-folder file holding a text to draw: named by its
// content, so that the same name or label is written once.
func textFileName(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "text-" + hex.EncodeToString(sum[:6]) + ".txt"
}

// cleanText makes a name or label safe to draw: one line, no control
// characters, at most 60 characters.
func cleanText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > 60 {
		s = string([]rune(s)[:59]) + "…"
	}
	return s
}

// assTime formats a time for an ASS event (h:mm:ss.cc).
func assTime(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	cs := (d + 5*time.Millisecond) / (10 * time.Millisecond)
	return fmt.Sprintf("%d:%02d:%02d.%02d", cs/360000, cs/6000%60, cs/100%60, cs%100)
}

// srtTime formats a time for SRT (hh:mm:ss,mmm).
func srtTime(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	ms := (d + time.Millisecond/2) / time.Millisecond
	return fmt.Sprintf("%02d:%02d:%02d,%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}

// assEscape makes cue text literal in an ASS event: braces start override
// blocks and a backslash starts an escape, so both are replaced; lines are
// joined with \N.
func assEscape(s string) string {
	s = strings.NewReplacer(`\`, `\`+"\u2060", "{", "(", "}", ")").Replace(s)
	return strings.ReplaceAll(s, "\n", `\N`)
}

// captionsASS returns an ASS script with the cues that intersect [from, to)
// of the output, shifted so that from is 0, for a w×h picture.
func captionsASS(cues []timeline.Cue, from, to time.Duration, w, h int) (string, bool) {
	size := max(12, h/18)
	margin := max(8, h/20)
	var b strings.Builder
	fmt.Fprintf(&b, "[Script Info]\nScriptType: v4.00+\nPlayResX: %d\nPlayResY: %d\nWrapStyle: 0\nScaledBorderAndShadow: yes\n\n", w, h)
	b.WriteString("[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, " +
		"Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, " +
		"MarginL, MarginR, MarginV, Encoding\n")
	fmt.Fprintf(&b, "Style: Default,DejaVu Sans,%d,&H00FFFFFF,&H00FFFFFF,&H00000000,&H80000000,0,0,0,0,100,100,0,0,3,%d,0,2,%d,%d,%d,1\n\n",
		size, max(2, size/6), margin, margin, margin)
	b.WriteString("[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n")
	found := false
	for _, c := range cues {
		a, e := max(c.Start, from), min(c.End, to)
		if e <= a {
			continue
		}
		found = true
		fmt.Fprintf(&b, "Dialogue: 0,%s,%s,Default,,0,0,0,,%s\n", assTime(a-from), assTime(e-from), assEscape(c.Text))
	}
	return b.String(), found
}

// captionsSRT returns the cues as SRT, in output time.
func captionsSRT(cues []timeline.Cue) string {
	var b strings.Builder
	for i, c := range cues {
		fmt.Fprintf(&b, "%d\n%s --> %s\n%s\n\n", i+1, srtTime(c.Start), srtTime(c.End), c.Text)
	}
	return b.String()
}

// ffconcat returns a concat-demuxer script for the files and their exact
// durations (seconds).
func ffconcat(files []string, durations []float64) string {
	return ffconcatWith(files, durations, "")
}

// wavPacketBytes is the size of the packets WAV windows are read in: 8192
// samples of stereo float, where FFmpeg's WAV demuxer reads 4 KiB (512
// samples), and every filter and the encoder's buffer after it then
// handle sixteen times the frames (0.37 G instructions of 15 G in the mux
// of a 60-s call, docs/render-cpu.md). The samples are the same.
const wavPacketBytes = 8192 * 2 * 4

// wavConcat is ffconcat for WAV files, read in packets of wavPacketBytes.
func wavConcat(files []string, durations []float64) string {
	return ffconcatWith(files, durations, fmt.Sprintf("option max_size %d\n", wavPacketBytes))
}

// ffconcatWith is ffconcat with the directives opts after every file.
func ffconcatWith(files []string, durations []float64, opts string) string {
	var b strings.Builder
	b.WriteString("ffconcat version 1.0\n")
	for i, f := range files {
		fmt.Fprintf(&b, "file '%s'\n%sduration %s\n", strings.ReplaceAll(f, "'", `'\''`), opts, fnum(durations[i]))
	}
	return b.String()
}

// ffColor turns "#rrggbb" into FFmpeg's 0xRRGGBB (black when malformed).
func ffColor(c string) string {
	c = strings.TrimPrefix(strings.TrimSpace(c), "#")
	if len(c) == 3 {
		c = string([]byte{c[0], c[0], c[1], c[1], c[2], c[2]})
	}
	if len(c) != 6 {
		return "0x000000"
	}
	for _, r := range c {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return "0x000000"
		}
	}
	return "0x" + strings.ToUpper(c)
}
