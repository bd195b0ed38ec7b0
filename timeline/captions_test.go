package timeline

import (
	"strings"
	"testing"
	"time"
)

func ms(v int) time.Duration { return time.Duration(v) * time.Millisecond }

func TestParseCaptions(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      []Cue
	}{
		{"srt", "\ufeff1\r\n00:00:01,000 --> 00:00:04,500\r\nHello <i>there</i>\r\nsecond line\r\n\r\n2\r\n00:01:00,250 --> 00:01:02,000 X1:10 X2:20\r\n{\\an8}Top &amp; bottom\r\n",
			[]Cue{{ms(1000), ms(4500), "Hello there\nsecond line"}, {ms(60250), ms(62000), "Top & bottom"}}},
		{"srt without numbers, dot separator, unsorted", "00:00:05.000 --> 00:00:06.000\nlater\n\n\n\n00:00:01,000 --> 00:00:02,000\nfirst\n",
			[]Cue{{ms(1000), ms(2000), "first"}, {ms(5000), ms(6000), "later"}}},
		{"srt empty cue skipped", "1\n00:00:01,000 --> 00:00:02,000\n<i></i>\n\n2\n00:00:03,000 --> 00:00:04,000\nx\n",
			[]Cue{{ms(3000), ms(4000), "x"}}},
		{"vtt", "WEBVTT - a title\nKind: captions\n\nNOTE a comment\nthat spans lines\n\nSTYLE\n::cue { color: red }\n\nintro\n00:01.000 --> 00:02.500 align:start line:0\n<v Alice>Hi</v> &lt;3\n\n01:00:00.000 --> 01:00:01.000\n<c.loud>end</c>\n",
			[]Cue{{ms(1000), ms(2500), "Hi <3"}, {time.Hour, time.Hour + time.Second, "end"}}},
		{"vtt header only", "WEBVTT\n", nil},
		{"empty srt", "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseCaptions("subs", strings.NewReader(c.src))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("cues = %q, want %q", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("cue %d = %q, want %q", i, got[i], c.want[i])
				}
			}
		})
	}
}

func TestParseCaptionsErrors(t *testing.T) {
	for _, c := range []struct{ name, src, want string }{
		{"srt no timing", "1\nhello\n", `timeline: captions subs:2: want a timing line "00:00:01,000 --> 00:00:04,000", got "hello"`},
		{"srt text first", "hello\n", `subs:1: want a cue number`},
		{"srt bad time", "\n\n1\n00:00:01,000 --> 00:00:0x,000\nx\n", `timeline: captions subs:4: want a timing line "00:00:01,000 --> 00:00:04,000", got "00:00:01,000 --> 00:00:0x,000"`},
		{"srt backwards", "1\n00:00:05,000 --> 00:00:04,000\nx\n", "subs:2: cue ends (0:04.000) before it starts (0:05.000)"},
		{"srt no end", "1\n00:00:05,000 -->\nx\n", "subs:2: want a timing line"},
		{"vtt bad timing", "WEBVTT\n\nid\n1.000 --> 2.000\nx\n", `timeline: captions subs:4: want a timing line "00:01.000 --> 00:04.000"`},
		{"vtt no timing", "WEBVTT\n\nid\nhello\n", "subs:3: want a timing line"},
		{"vtt comma", "WEBVTT\n\n00:01,000 --> 00:02,000\nx\n", "subs:3: want a timing line"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseCaptions("subs", strings.NewReader(c.src))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func FuzzParseCaptions(f *testing.F) {
	f.Add("1\n00:00:01,000 --> 00:00:02,000\nx\n")
	f.Add("WEBVTT\n\nNOTE n\n\na\n00:01.000 --> 00:02.000 line:0\n<b>y</b>\n")
	f.Fuzz(func(t *testing.T, src string) {
		cues, err := ParseCaptions("fuzz", strings.NewReader(src))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "timeline: captions fuzz:") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for i, c := range cues {
			if c.End <= c.Start || c.Start < 0 || c.Text == "" {
				t.Fatalf("cue %d = %+v", i, c)
			}
			if i > 0 && c.Start < cues[i-1].Start {
				t.Fatalf("cues not sorted: %+v", cues)
			}
		}
	})
}
