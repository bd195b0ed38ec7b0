package render

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// The loudness of a windowed mix is measured window by window (r128.go) and
// the summaries added up: after the call only the windows drawn since are
// read. A kept window's summary is kept beside it, in its key's folder.

// loudnessSuffix names the summary kept beside a kept audio window.
const loudnessSuffix = ".loudness.json"

// gainStep is the step (dB) in which the normalization gain is set: the
// encoded audio windows drawn during a call with the loudness measured so
// far are taken after it when the gain of the whole call falls on the same
// step. The result is within gainStep/2 of the target.
const gainStep = 0.5

// windowBlocks is the loudness summary of audio window i of prog, kept
// under key (none: ""), whose file is in the work folder or, kept, in the
// key's folder. A summary measured here is kept beside the kept window.
func (r *runner) windowBlocks(ctx context.Context, prog *Program, i int, key string) (loudnessBlocks, error) {
	sp := prog.audioSpans[i]
	start, end := samplesOfFrames(sp.From, prog.FPS), samplesOfFrames(sp.To, prog.FPS)
	name := audioWindowFile(i)
	if b, ok := r.keptBlocks(prog, i, key); ok {
		return b, nil
	}
	var kept string
	if key != "" && r.reuse != "" {
		kept = filepath.Join(r.reuse, key, name)
	}
	if err := ctx.Err(); err != nil {
		return loudnessBlocks{}, fmt.Errorf("render: loudness of %s: %w", name, err)
	}
	path := filepath.Join(r.dir, name)
	if _, err := os.Stat(path); err != nil && kept != "" {
		path = kept
	}
	b, err := measureWAV(path, start)
	if err != nil {
		return loudnessBlocks{}, err
	}
	if b.Samples != end-start {
		return loudnessBlocks{}, fmt.Errorf("render: loudness of %s: %d samples, want %d", name, b.Samples, end-start)
	}
	if kept != "" {
		if err := writeBlocks(kept+loudnessSuffix, b); err != nil {
			r.log.Warn("render: the loudness of a kept audio window is not kept", "window", name, "err", err)
		}
	}
	return b, nil
}

// keptBlocks is the loudness summary kept beside audio window i of prog
// under key, whether or not the window's mix is kept with it; false when
// there is none for a window of this length.
func (r *runner) keptBlocks(prog *Program, i int, key string) (loudnessBlocks, bool) {
	if key == "" || r.reuse == "" {
		return loudnessBlocks{}, false
	}
	sp := prog.audioSpans[i]
	b, err := readBlocks(filepath.Join(r.reuse, key, audioWindowFile(i)) + loudnessSuffix)
	if err != nil || b.Samples != samplesOfFrames(sp.To, prog.FPS)-samplesOfFrames(sp.From, prog.FPS) {
		return loudnessBlocks{}, false
	}
	return b, true
}

// readBlocks reads a kept loudness summary.
func readBlocks(path string) (loudnessBlocks, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return loudnessBlocks{}, err
	}
	var b loudnessBlocks
	if err := json.Unmarshal(data, &b); err != nil {
		return loudnessBlocks{}, fmt.Errorf("render: %s: %w", path, err)
	}
	if len(b.N) != len(b.Sum) {
		return loudnessBlocks{}, fmt.Errorf("render: %s: %d sums and %d counts", path, len(b.Sum), len(b.N))
	}
	return b, nil
}

// writeBlocks keeps a loudness summary (written aside, then renamed), in
// an existing folder only: a kept window's folder is not made here.
func writeBlocks(path string, b loudnessBlocks) error {
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		return err
	}
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// normalGain is the gain (dB) that brings audio of loudness l to the target,
// in steps of gainStep, within the bounds.
func normalGain(s *Settings, l Loudness) float64 {
	return math.Round(min(maxGainDB, max(minGainDB, s.Loudness-l.I))/gainStep) * gainStep
}
