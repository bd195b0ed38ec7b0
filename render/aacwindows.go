package render

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Encoded audio windows
//
// The AAC of a composite is encoded in windows too, so that a call's audio
// is encoded while the call goes on (Prerender) and, after it, in parallel:
// one encoder over a long call's mix was what kept the composite from being
// ready seconds after the call.
//
// AAC codes 1024-sample frames with overlapping transforms, so a frame's
// packet depends on its neighbours' samples. Window k's encoder is fed
// aacPreroll frames before its first packet's and aacTail frames after its
// last packet's, and only its own packets are kept: those are the packets a
// single encoder over the whole mix would have written, but for the rate
// control's state, which the pre-roll brings close (adts.go; the splice is
// measured in aacwindows_test.go). The windows' packets, read from ADTS, are
// joined into one ADTS stream (joinAACWindows), which the muxes copy into
// their outputs with the encoder's priming and the mix's end signalled, as a
// single encode's would be (aacInput).
//
// A window's packets depend on the gain that brings the whole mix to the
// target loudness; a window encoded during the call with the gain measured
// so far is kept under a key that holds that gain, and taken after the call
// when the final gain is the same. The gain is set in steps of gainStep so
// that it mostly is.

// aacPreroll is how many frames before its first packet's a window's
// encoder is fed, and aacTail how many after its last packet's (adts.go).
const (
	aacPreroll = 8
	aacTail    = 2
)

// aacWindow is one encoded audio window: the packets it contributes, what
// its encoder is fed, and the audio windows (indexes) that is read from.
type aacWindow struct {
	aacChunk
	Windows []int
}

// aacWindowsOf cuts the AAC of a mix of total samples, drawn in audio
// windows that start at starts (samples, ascending, the first 0), into
// encoded windows: window k contributes the packets whose encoder input
// ends within audio window k, so that it can be encoded as soon as audio
// window k is drawn.
func aacWindowsOf(starts []int64, total int64) []aacWindow {
	var ws []aacWindow
	from, packets := 0, aacPackets(total)
	for k := range starts {
		to := packets
		if k+1 < len(starts) {
			to = int(starts[k+1]/aacFrameSamples) - aacTail
			if to <= from {
				continue // too short a window: its packets go with the next
			}
		}
		w := aacWindow{aacChunk: aacChunk{From: from, To: to, Start: int64(max(0, from-aacPreroll)) * aacFrameSamples,
			End: min(total, int64(to+aacTail)*aacFrameSamples)}}
		for i := range starts {
			end := total
			if i+1 < len(starts) {
				end = starts[i+1]
			}
			if starts[i] < w.End && end > w.Start {
				w.Windows = append(w.Windows, i)
			}
		}
		ws = append(ws, w)
		from = to
	}
	return ws
}

// aacWindowFile is the work-folder file of encoded audio window i.
func aacWindowFile(i int) string { return fmt.Sprintf("aac-%03d.adts", i) }

// aacJoinedFile is the work-folder file of the windows' packets joined.
const aacJoinedFile = "aac-joined.adts"

// aacWindowCommands are the encodes of the program's encoded audio windows
// with the filters af (the loudness gain), none without windowed audio or
// an AAC profile.
func (p *Program) aacWindowCommands(af []string) []Command {
	var cmds []Command
	for i, sp := range p.aacWindows {
		in := p.aacWindowInput(i, af)
		args := append(baseArgs(), in.in...)
		args = append(args, "-af", in.filter, "-vn")
		args = append(args, aacEncoderArgs()...)
		args = append(args, "-f", "adts", aacWindowFile(i))
		cmds = append(cmds, Command{Name: fmt.Sprintf("audio encode aac %d/%d", i+1, len(p.aacWindows)), Args: args,
			Files: in.files, Outputs: []string{aacWindowFile(i)},
			Duration: time.Duration(float64(sp.End-sp.Start) / sampleRate * float64(time.Second))})
	}
	return cmds
}

// aacWindowIn is what an encode of an encoded audio window reads: the input
// options (the audio windows it spans, through the concat demuxer), the
// audio filters (cut to what its encoder is fed, then the filters af) and
// the files they name.
type aacWindowIn struct {
	in     []string
	filter string
	files  map[string]string
}

// aacWindowInput is what the encode of encoded audio window i reads, with
// the filters af (the loudness gain).
func (p *Program) aacWindowInput(i int, af []string) aacWindowIn {
	sp := p.aacWindows[i]
	var names []string
	var durs []float64
	for _, w := range sp.Windows {
		sa, sb := samplesOfFrames(p.audioSpans[w].From, p.FPS), samplesOfFrames(p.audioSpans[w].To, p.FPS)
		names = append(names, audioWindowFile(w))
		durs = append(durs, float64(sb-sa)/sampleRate)
	}
	list := fmt.Sprintf("aac-%03d.ffconcat", i)
	// The list starts with the first window read.
	first := samplesOfFrames(p.audioSpans[sp.Windows[0]].From, p.FPS)
	filters := []string{fmt.Sprintf("atrim=start_sample=%d:end_sample=%d", sp.Start-first, sp.End-first), "asetpts=N/SR/TB"}
	filters = append(filters, af...)
	return aacWindowIn{in: []string{"-f", "concat", "-safe", "0", "-i", list}, filter: strings.Join(filters, ","),
		files: map[string]string{list: wavConcat(names, durs)}}
}

// aacEncoderArgs are the AAC encoder's options.
func aacEncoderArgs() []string {
	return []string{"-c:a", "aac", "-b:a", fmt.Sprintf("%dk", aacBitrate), "-ar", "48000", "-ac", "2"}
}

// aacJoin is the step that joins the encoded audio windows' packets
// (joinAACWindows) into aacJoinedFile: Go work only, a command without
// FFmpeg arguments. The muxes copy the joined packets, timed by aacSetts as
// a single encode of the mix would have them (aacInput); a separate FFmpeg
// putting them in an MP4 first cost a start (a quarter of a G instructions)
// and wrote the same packets.
func (p *Program) aacJoin() Command {
	chunks := make([]aacChunk, len(p.aacWindows))
	for i, w := range p.aacWindows {
		chunks[i] = w.aacChunk
	}
	return Command{Name: "audio join aac", Outputs: []string{aacJoinedFile}, Duration: p.Duration, aacJoin: chunks}
}

// joinAACWindows writes the packets of the encoded audio windows chunks
// (their files in dir) joined into aacJoinedFile.
func joinAACWindows(ctx context.Context, dir string, chunks []aacChunk) error {
	streams := make([][]byte, len(chunks))
	for i := range chunks {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("render: joining AAC: %w", err)
		}
		b, err := os.ReadFile(filepath.Join(dir, aacWindowFile(i)))
		if err != nil {
			return fmt.Errorf("render: joining AAC: %w", err)
		}
		streams[i] = b
	}
	joined, err := joinADTS(chunks, streams)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, aacJoinedFile), joined, 0o644); err != nil {
		return fmt.Errorf("render: joining AAC: %w", err)
	}
	return nil
}

// aacKeys are the commands that name the encoded audio windows cmds for
// reuse: each with the keys of the audio windows it reads (windowKeys, by
// audio window; none when one of them has no key).
func aacKeys(prog *Program, cmds []Command, windowKeys []string) []Command {
	keys := make([]Command, len(cmds))
	for i, c := range cmds {
		k := c
		k.inputKeys = nil
		for _, w := range prog.aacWindows[i].Windows {
			k.inputKeys = append(k.inputKeys, windowKeys[w])
		}
		keys[i] = k
	}
	return keys
}

// maxAACPerLook bounds the encoded audio windows a Prerender encodes: those
// of the windows it drew, and some of those encoded earlier with another
// gain.
const maxAACPerLook = 8

// keptAudioWindows finds the audio windows kept in a reuse folder: by
// window, the key of the one kept last (a window drawn again after the sync
// model moved its sources is kept under a new key).
func keptAudioWindows(reuse string) map[int]string {
	entries, err := os.ReadDir(reuse)
	if err != nil {
		return nil
	}
	found := map[int]string{}
	newest := map[int]time.Time{}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		files, err := os.ReadDir(filepath.Join(reuse, e.Name()))
		if err != nil {
			continue
		}
		for _, f := range files {
			var i int
			if n, err := fmt.Sscanf(f.Name(), "mix-%03d.wav", &i); err != nil || n != 1 || f.Name() != audioWindowFile(i) {
				continue
			}
			info, err := f.Info()
			if err != nil {
				continue
			}
			if t, ok := newest[i]; !ok || info.ModTime().After(t) {
				found[i], newest[i] = e.Name(), info.ModTime()
			}
		}
	}
	return found
}

// prerenderAAC encodes, during the call, the encoded audio windows whose
// audio windows are kept, with the gain of the loudness of every kept audio
// window (the call so far), and keeps them: after the call, those whose
// gain is the whole call's are taken. The newest first, at most
// maxAACPerLook; it returns the windows encoded.
func prerenderAAC(ctx context.Context, r *runner, prog *Program) ([]int, error) {
	if len(prog.aacWindows) == 0 || r.reuse == "" {
		return nil, nil
	}
	kept := keptAudioWindows(r.reuse)
	var loud Loudness
	if !prog.settings.LoudnessOff {
		var parts []loudnessBlocks
		for i, key := range kept {
			if i >= len(prog.audioSpans) {
				delete(kept, i)
				continue
			}
			b, err := r.windowBlocks(ctx, prog, i, key)
			if err != nil {
				// Kept by a look at a shorter call (its last window
				// shorter), or unreadable: not this program's window.
				r.log.Debug("render: a kept audio window is not the program's", "window", i, "key", key, "err", err)
				delete(kept, i)
				continue
			}
			parts = append(parts, b)
		}
		if len(parts) == 0 {
			return nil, nil
		}
		loud = mergeBlocks(parts...).loudness()
	}
	cmds := prog.aacWindowCommands(loudnessFilters(&prog.settings, loud))
	windowKeys := make([]string, len(prog.audioSpans))
	for i := range windowKeys {
		windowKeys[i] = kept[i]
	}
	keys := aacKeys(prog, cmds, windowKeys)
	var done []int
	for k := len(cmds) - 1; k >= 0 && len(done) < maxAACPerLook; k-- {
		key := r.reuseKey(ctx, keys[k])
		if key == "" || r.isKept(key, cmds[k]) {
			continue
		}
		for _, w := range prog.aacWindows[k].Windows {
			if !r.takeReused(ctx, kept[w], prog.AudioWindows[w]) {
				return done, fmt.Errorf("render: audio window %d, kept as %s, cannot be read", w, kept[w])
			}
		}
		if _, err := r.run(ctx, cmds[k], func(time.Duration) {}); err != nil {
			return done, err
		}
		r.keepForReuse(ctx, key, cmds[k])
		done = append(done, k)
	}
	return done, nil
}
