package render

import (
	"math"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/timeline"
)

// TestSnapPlacement: a source snapped to the placement grid plays every
// file time of its job's stretch within the grid's step of where the sync
// model puts it, however far into the file and into the piece (a piece
// spans many jobs) the stretch lies, and whatever the source's rate (an RTP
// clock a few hundred ppm off, or 2000 ppm as the synthetic calls' skewed
// participant).
func TestSnapPlacement(t *testing.T) {
	for _, q := range []float64{1.0 / 30 / videoPlaceSteps, audioPlaceQuantum} {
		for _, speed := range []float64{1, 1 + 5e-6, 1 + 50e-6, 1 - 200e-6, 1.002} {
			for _, fileStart := range []float64{0.3, 3, 60, 600, 3600, 4 * 3600} {
				for _, into := range []float64{0, 1.5, 600, 3600} { // from the piece's start to the stretch's
					for _, long := range []float64{0.5, 2, 10} {
						at := time.Duration((fileStart/speed + 7.0123) * float64(time.Second))
						from := at.Seconds() + into
						src := timeline.Source{FileStart: fileStart, Speed: speed}
						got, gotAt := snapPlacement(src, speed, at, from, long, q)
						var worst float64
						for _, dt := range []float64{0, long / 2, long} {
							f := fileStart + (into+dt)*speed                            // the file time the model plays at from+dt
							out := gotAt.Seconds() + (f-got.FileStart)/got.Speed - from // where the snapped source plays it
							worst = max(worst, math.Abs(out-dt))
						}
						if worst > q*(1+1e-6)+2e-9 {
							t.Errorf("q %.3f ms, speed %.6f, file time %.1f s, %.1f s into the piece, %.1f s long: a file time moves by %.3f ms, want at most %.3f ms",
								q*1000, speed, fileStart, into, long, worst*1000, q*1000)
						}
					}
				}
			}
		}
	}
}
