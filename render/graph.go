package render

import (
	"fmt"
	"strings"
)

// graph accumulates the inputs, filter chains and text files of one FFmpeg
// command.
type graph struct {
	inputs []string // input options and -i, flattened
	nIn    int
	chains []string
	files  map[string]string
	labels map[string]int
}

func newGraph() *graph { return &graph{files: map[string]string{}, labels: map[string]int{}} }

// next starts a second filter graph of the same command: its inputs are
// numbered after g's, and it shares g's pad labels (so that -map names one
// pad of either) and text files.
func (g *graph) next() *graph {
	return &graph{nIn: g.nIn, files: g.files, labels: g.labels}
}

// input adds an input (its options, then "-i", path) and returns its index.
func (g *graph) input(args ...string) int {
	g.inputs = append(g.inputs, args...)
	g.nIn++
	return g.nIn - 1
}

// label returns a fresh pad label with the given prefix.
func (g *graph) label(prefix string) string {
	n := g.labels[prefix]
	g.labels[prefix] = n + 1
	return fmt.Sprintf("%s%d", prefix, n)
}

// chain adds "[in0][in1]f1,f2[out]".
func (g *graph) chain(ins []string, filters []string, out string) {
	var b strings.Builder
	for _, in := range ins {
		b.WriteString("[" + in + "]")
	}
	b.WriteString(strings.Join(filters, ","))
	if out != "" {
		b.WriteString("[" + out + "]")
	}
	g.chains = append(g.chains, b.String())
}

// text stores a text to draw and returns its file name.
func (g *graph) text(s string) string {
	name := textFileName(s)
	g.files[name] = s
	return name
}

// filter returns the -filter_complex argument.
func (g *graph) filter() string { return strings.Join(g.chains, ";\n") }

// layer is a picture being drawn on: filters queue up on the current pad
// until an overlay needs a second input.
type layer struct {
	g    *graph
	cur  string
	pend []string
}

func (l *layer) apply(f string) { l.pend = append(l.pend, f) }

// overlay draws the pad sec over the picture with the overlay filter spec.
func (l *layer) overlay(sec, spec string) {
	if len(l.pend) > 0 {
		t := l.g.label("p")
		l.g.chain([]string{l.cur}, l.pend, t)
		l.cur, l.pend = t, nil
	}
	out := l.g.label("p")
	l.g.chain([]string{l.cur, sec}, []string{spec}, out)
	l.cur = out
}

// finish applies the queued filters (and more) and names the result out.
func (l *layer) finish(out string, more ...string) {
	fs := append(l.pend, more...)
	if len(fs) == 0 {
		fs = []string{"null"}
	}
	l.g.chain([]string{l.cur}, fs, out)
	l.cur, l.pend = out, nil
}
