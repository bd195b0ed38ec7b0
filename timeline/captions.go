package timeline

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Cue is one caption: Text (lines separated by "\n", markup removed) shown
// during [Start, End).
type Cue struct {
	Start time.Duration `json:"start_ns"`
	End   time.Duration `json:"end_ns"`
	Text  string        `json:"text"`
}

// LoadCaptions reads an SRT or WebVTT file.
func LoadCaptions(path string) ([]Cue, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("timeline: captions: %w", err)
	}
	defer f.Close()
	return ParseCaptions(path, f)
}

// ParseCaptions reads captions in WebVTT (a file starting with "WEBVTT") or
// SRT; name is used in messages. Cues come back sorted by start time;
// markup (<i>, <v Name>, {\an8}) is removed and the common entities
// decoded.
func ParseCaptions(name string, r io.Reader) ([]Cue, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxEditsSize+1))
	if err != nil {
		return nil, fmt.Errorf("timeline: captions %s: %w", name, err)
	}
	if len(data) > maxEditsSize {
		return nil, fmt.Errorf("timeline: captions %s: larger than %d MiB", name, maxEditsSize>>20)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	text := strings.ReplaceAll(strings.ReplaceAll(string(data), "\r\n", "\n"), "\r", "\n")
	lines := strings.Split(text, "\n")
	var cues []Cue
	if isVTT(lines[0]) {
		cues, err = parseVTT(name, lines)
	} else {
		cues, err = parseSRT(name, lines)
	}
	if err != nil {
		return nil, err
	}
	sort.SliceStable(cues, func(i, j int) bool { return cues[i].Start < cues[j].Start })
	return cues, nil
}

func isVTT(first string) bool {
	return first == "WEBVTT" || strings.HasPrefix(first, "WEBVTT ") || strings.HasPrefix(first, "WEBVTT\t")
}

// blocks splits lines into blocks separated by blank lines, keeping the
// 1-based line number of each block's first line.
func blocks(lines []string, from int) (out [][]string, starts []int) {
	var cur []string
	for i := from; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) == "" {
			if len(cur) > 0 {
				out = append(out, cur)
				cur = nil
			}
			continue
		}
		if len(cur) == 0 {
			starts = append(starts, i+1)
		}
		cur = append(cur, lines[i])
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out, starts
}

func parseSRT(name string, lines []string) ([]Cue, error) {
	bs, starts := blocks(lines, 0)
	var cues []Cue
	for bi, b := range bs {
		i := 0
		if !strings.Contains(b[0], "-->") {
			if !digits(strings.TrimSpace(b[0])) || len(b) < 2 {
				return nil, fmt.Errorf("timeline: captions %s:%d: want a cue number, then a timing line \"00:00:01,000 --> 00:00:04,000\", got %q",
					name, starts[bi], clip(b[0]))
			}
			i = 1
		}
		c, err := timing(name, starts[bi]+i, b[i], true)
		if err != nil {
			return nil, err
		}
		if c.Text = cleanCue(b[i+1:]); c.Text != "" {
			cues = append(cues, c)
		}
	}
	return cues, nil
}

func parseVTT(name string, lines []string) ([]Cue, error) {
	// The header runs to the first blank line.
	from := len(lines)
	for i, l := range lines {
		if strings.TrimSpace(l) == "" {
			from = i
			break
		}
	}
	bs, starts := blocks(lines, from)
	var cues []Cue
	for bi, b := range bs {
		first := strings.TrimSpace(b[0])
		word, _, _ := strings.Cut(first, " ")
		word, _, _ = strings.Cut(word, "\t")
		if !strings.Contains(b[0], "-->") && (word == "NOTE" || word == "STYLE" || word == "REGION") {
			continue
		}
		i := 0
		if !strings.Contains(b[0], "-->") {
			i = 1 // a cue identifier
			if len(b) < 2 || !strings.Contains(b[1], "-->") {
				return nil, fmt.Errorf("timeline: captions %s:%d: want a timing line \"00:01.000 --> 00:04.000\" (after an optional cue identifier), got %q",
					name, starts[bi], clip(b[0]))
			}
		}
		c, err := timing(name, starts[bi]+i, b[i], false)
		if err != nil {
			return nil, err
		}
		if c.Text = cleanCue(b[i+1:]); c.Text != "" {
			cues = append(cues, c)
		}
	}
	return cues, nil
}

// timing parses "start --> end [settings]".
func timing(name string, line int, s string, srt bool) (Cue, error) {
	want := `"00:01.000 --> 00:04.000"`
	if srt {
		want = `"00:00:01,000 --> 00:00:04,000"`
	}
	a, b, ok := strings.Cut(s, "-->")
	fields := strings.Fields(b)
	if !ok || len(fields) == 0 {
		return Cue{}, fmt.Errorf("timeline: captions %s:%d: want a timing line %s, got %q", name, line, want, clip(s))
	}
	parse := func(v string) (time.Duration, bool) {
		if srt {
			if d, ok := parseClock(v, ','); ok {
				return d, true
			}
		}
		if !strings.Contains(v, ":") {
			return 0, false // a timestamp has minutes at least
		}
		return parseClock(v, '.')
	}
	start, ok1 := parse(strings.TrimSpace(a))
	end, ok2 := parse(fields[0])
	if !ok1 || !ok2 {
		return Cue{}, fmt.Errorf("timeline: captions %s:%d: want a timing line %s, got %q", name, line, want, clip(s))
	}
	if end <= start {
		return Cue{}, fmt.Errorf("timeline: captions %s:%d: cue ends (%s) before it starts (%s)", name, line, FormatTime(end), FormatTime(start))
	}
	return Cue{Start: start, End: end}, nil
}

var (
	tagRE      = regexp.MustCompile(`<[^>]*>|\{\\[^}]*\}`)
	entityRepl = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&nbsp;", "\u00a0", "&lrm;", "\u200e", "&rlm;", "\u200f", "&quot;", `"`, "&apos;", "'")
)

// cleanCue joins a cue's text lines, removing markup.
func cleanCue(lines []string) string {
	var out []string
	for _, l := range lines {
		l = strings.TrimSpace(entityRepl.Replace(tagRE.ReplaceAllString(l, "")))
		if l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
