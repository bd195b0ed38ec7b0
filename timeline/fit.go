package timeline

import (
	"math"
	"math/bits"
	"sort"
)

// This file holds the line fits behind the sync model. Every fit works on
// float64 values that the caller has already made small by subtracting an
// int64 reference (an RTP time, a Unix nanosecond instant): raw Unix
// nanoseconds (~1.8e18) do not fit a float64 mantissa, differences over a
// day (~1e14 ns) do with sub-nanosecond precision.

// line is y = Y + Slope*(x-X).
type line struct {
	X, Y, Slope float64
}

func (l line) at(x float64) float64 { return l.Y + l.Slope*(x-l.X) }

func finite(v ...float64) bool {
	for _, f := range v {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return false
		}
	}
	return true
}

// leastSquares fits y on x by ordinary least squares, centred on the means.
// ok is false (and the line is horizontal through the means) when x has no
// spread. sxx and ssr are the x sum of squares and the residual sum of
// squares, for the standard error of the slope.
func leastSquares(xs, ys []float64) (l line, sxx, ssr float64, ok bool) {
	n := float64(len(xs))
	if len(xs) == 0 {
		return line{}, 0, 0, false
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= n
	my /= n
	var sxy float64
	for i := range xs {
		dx := xs[i] - mx
		sxx += dx * dx
		sxy += dx * (ys[i] - my)
	}
	l = line{X: mx, Y: my}
	if sxx <= 0 || !finite(sxx, sxy) {
		return l, 0, 0, false
	}
	l.Slope = sxy / sxx
	for i := range xs {
		r := ys[i] - l.at(xs[i])
		ssr += r * r
	}
	return l, sxx, ssr, finite(l.X, l.Y, l.Slope)
}

// median returns the median of v, reordering v. It returns 0 for no values.
func median(v []float64) float64 { return quantile(v, 0.5) }

// quantile returns the q-quantile (0..1, nearest rank) of v, reordering v.
// It selects in O(n) expected time (quickselect, falling back to sorting
// when the partitioning goes badly).
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	k := max(0, min(len(v)-1, int(math.Round(q*float64(len(v)-1)))))
	lo, hi := 0, len(v)-1
	for budget := 2 * (bits.Len(uint(len(v))) + 1); lo < hi; budget-- {
		if budget == 0 {
			sort.Float64s(v[lo : hi+1])
			break
		}
		// Median of three as the pivot, then Hoare partition.
		mid := lo + (hi-lo)/2
		if v[mid] < v[lo] {
			v[mid], v[lo] = v[lo], v[mid]
		}
		if v[hi] < v[lo] {
			v[hi], v[lo] = v[lo], v[hi]
		}
		if v[hi] < v[mid] {
			v[hi], v[mid] = v[mid], v[hi]
		}
		pivot := v[mid]
		i, j := lo, hi
		for i <= j {
			for v[i] < pivot {
				i++
			}
			for v[j] > pivot {
				j--
			}
			if i <= j {
				v[i], v[j] = v[j], v[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return v[k]
		}
	}
	return v[k]
}

// theilSenSlope is the median of the pairwise slopes of at most maxPoints
// points taken evenly from (xs, ys), which must be sorted by x. It ignores up
// to ~29 % of wild points on either side. ok is false when no two points
// differ in x.
func theilSenSlope(xs, ys []float64, maxPoints int) (float64, bool) {
	idx := make([]int, 0, min(len(xs), maxPoints))
	if len(xs) <= maxPoints {
		for i := range xs {
			idx = append(idx, i)
		}
	} else {
		for k := 0; k < maxPoints; k++ {
			idx = append(idx, k*(len(xs)-1)/(maxPoints-1))
		}
	}
	slopes := make([]float64, 0, len(idx)*(len(idx)-1)/2)
	for a := 0; a < len(idx); a++ {
		for b := a + 1; b < len(idx); b++ {
			i, j := idx[a], idx[b]
			if dx := xs[j] - xs[i]; dx > 0 {
				slopes = append(slopes, (ys[j]-ys[i])/dx)
			}
		}
	}
	if len(slopes) == 0 {
		return 0, false
	}
	s := median(slopes)
	return s, finite(s)
}

// reportFit is the RTP → sender-NTP line of one track.
type reportFit struct {
	l       line    // x: RTP ticks from the track's reference, y: ns from the NTP reference
	kept    int     // reports used after outlier rejection
	rmsNS   float64 // root mean square residual of the kept reports
	nominal bool    // slope is the nominal clock rate, not fitted
}

// Limits of the report fit.
const (
	// reportOutlierFloorNS is the smallest residual at which a sender report
	// may be rejected as an outlier. Reports pair an NTP and an RTP time
	// computed by the sender itself, so good ones agree to a tick or two.
	reportOutlierFloorNS = 2e6
	// maxRateError bounds how far the clock rate implied by sender reports may
	// be from the codec's nominal one (1 %). Real RTP clocks are within a few
	// hundred ppm; more means a wrong clock rate or reports from elsewhere.
	maxRateError = 0.01
	// minFewReportSpan is the RTP span (in seconds of nominal time) that
	// fewer than minRateReports reports must cover for their slope to be
	// trusted over the nominal rate: with no residual (or one degree of
	// freedom) to judge them by, their timing noise (Chromium's audio
	// reports scatter by milliseconds) must be small beside the span.
	minFewReportSpan = 30.0
	// maxSlopeSE is the largest standard error (relative) of a slope fitted
	// over minRateReports or more reports for it to be trusted over the
	// nominal rate.
	maxSlopeSE = 50e-6
	// minRateReports is the fewest reports, after outliers are dropped, whose
	// fitted slope may be trusted over the nominal rate (below it, only two
	// reports a long span apart). Three leave one degree of freedom: a line
	// through them is luck as often as a rate. Chromium's audio reports
	// scatter by milliseconds; once, of four, one fell 2 ms off and was
	// dropped, and the other three lay within 0.02 ms of a line 475 ppm off
	// the nominal rate. The t-test passed them; the media ran at the nominal
	// rate, so the audio slid 7 ms against the video over 15 s.
	minRateReports = 4
)

// fitReportLine fits RTP → NTP over sender reports (x in ticks, y in ns, both
// relative to references) robustly: a Theil–Sen line over at most 100
// reports finds the bulk, reports further than max(2 ms, 6 σ) from it are
// dropped, and the rest are fitted by least squares. With a single usable
// report, or reports too close together for a trustworthy slope, the nominal
// rate (nsPerTick) gives the slope. The returned error (unwrapped) says that
// the reports contradict the nominal clock rate.
func fitReportLine(xs, ys []float64, nsPerTick, rate float64) (reportFit, error) {
	n := len(xs)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return xs[order[a]] < xs[order[b]] })
	sx := make([]float64, n)
	sy := make([]float64, n)
	for k, i := range order {
		sx[k], sy[k] = xs[i], ys[i]
	}

	slope, ok := theilSenSlope(sx, sy, 100)
	if !ok || math.Abs(slope/nsPerTick-1) > maxRateError {
		slope = nsPerTick
	}
	res := make([]float64, n)
	for i := range sx {
		res[i] = sy[i] - slope*sx[i]
	}
	icept := median(append([]float64(nil), res...))
	abs := make([]float64, n)
	for i := range res {
		res[i] -= icept
		abs[i] = math.Abs(res[i])
	}
	tol := math.Max(reportOutlierFloorNS, 6*1.4826*median(abs))

	kx := make([]float64, 0, n)
	ky := make([]float64, 0, n)
	for i := range sx {
		if math.Abs(res[i]) <= tol {
			kx = append(kx, sx[i])
			ky = append(ky, sy[i])
		}
	}
	f := reportFit{kept: len(kx)}
	l, sxx, ssr, ok := leastSquares(kx, ky)
	trust := false
	if ok {
		switch n := len(kx); {
		case n < minRateReports:
			trust = (kx[n-1]-kx[0])/rate >= minFewReportSpan
		default:
			// Trust the fitted rate when it is precise and differs from the
			// nominal one by more than its noise explains (a t-test at 1 %):
			// jittery reports that fall near a line by chance give a small
			// standard error from few degrees of freedom, but not a
			// significant difference.
			se := math.Sqrt(ssr/float64(n-2)/sxx) / nsPerTick
			dev := math.Abs(l.Slope/nsPerTick - 1)
			trust = se <= maxSlopeSE && (se == 0 || dev/se > tCritical99(n-2))
		}
	}
	if trust {
		if math.Abs(l.Slope/nsPerTick-1) > maxRateError {
			return f, errRate(l.Slope, nsPerTick, rate)
		}
	} else {
		// Nominal slope through the reports' centre.
		var c float64
		for i := range kx {
			c += ky[i] - nsPerTick*(kx[i]-l.X)
		}
		l.Y = c / float64(len(kx))
		l.Slope = nsPerTick
		f.nominal = true
	}
	f.l = l
	var ss float64
	for i := range kx {
		r := ky[i] - l.at(kx[i])
		ss += r * r
	}
	f.rmsNS = math.Sqrt(ss / float64(len(kx)))
	if !finite(l.X, l.Y, l.Slope, f.rmsNS) {
		return f, errNotFinite
	}
	return f, nil
}

// tCritical99 is the two-sided 1 % critical value of Student's t
// distribution with dof ≥ 1 degrees of freedom; between the table's rows,
// the row of fewer degrees of freedom (the larger, safer value).
func tCritical99(dof int) float64 {
	table := []struct {
		dof int
		t   float64
	}{{1, 63.657}, {2, 9.925}, {3, 5.841}, {4, 4.604}, {5, 4.032}, {6, 3.707}, {7, 3.499}, {8, 3.355},
		{9, 3.250}, {10, 3.169}, {12, 3.055}, {15, 2.947}, {20, 2.845}, {30, 2.750}, {60, 2.660}, {120, 2.617}}
	t := table[0].t
	for _, r := range table {
		if r.dof > dof {
			break
		}
		t = r.t
	}
	return t
}

// envelopeFit is a line under a cloud of (x, y) points with one-sided noise.
type envelopeFit struct {
	l        line
	used     int     // points under consideration after dropping low outliers
	dropped  int     // points dropped as impossibly low
	floorP75 float64 // upper quartile of the per-window floors above the line
	flat     bool    // slope not estimated (span too short or implausible)
}

// envelopeParams tunes lowerEnvelope. All values are in the units of x and y.
type envelopeParams struct {
	window       float64 // width of the windows whose minima describe the floor
	minSpan      float64 // shortest x span over which a slope is estimated
	maxSlope     float64 // largest plausible |slope|
	outlierFloor float64 // points further below the floor than this may be dropped
}

// maxEnvelopeWindows bounds the number of windows (the window is widened on
// very long inputs).
const maxEnvelopeWindows = 1000

// lowerEnvelope fits a line under points whose noise is one-sided (y is
// never below the truth, often above it: packets are only ever late).
//
// The method is the linear-programming estimator of Moon, Skelly and Towsley
// ("Estimation and removal of clock skew from network delay measurements",
// 1999): the line that lies under every point and minimises the total height
// of the points above it. That line passes through the edge of the lower
// convex hull that spans the mean x, so it is found in O(n log n). It uses
// only the lowest points, which are the ones with the least jitter, and
// ignores congestion (points high above the floor) entirely.
//
// Because it trusts the lowest points absolutely, points that are impossibly
// low are removed first: the floor is described by the minimum of each
// window, a robust preliminary line (Theil–Sen slope over the window minima,
// at their 10th percentile) is put through it, and points more than
// max(outlierFloor, 4×(median−p10 spread of the window minima)) below it are
// dropped. When the x span is shorter than minSpan, or the hull's slope is
// beyond maxSlope, the slope is taken as 0 and the line is the lowest point.
func lowerEnvelope(xs, ys []float64, p envelopeParams) (envelopeFit, bool) {
	n := len(xs)
	if n == 0 {
		return envelopeFit{}, false
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool {
		ia, ib := order[a], order[b]
		if xs[ia] != xs[ib] {
			return xs[ia] < xs[ib]
		}
		return ys[ia] < ys[ib]
	})
	px := make([]float64, n)
	py := make([]float64, n)
	for k, i := range order {
		px[k], py[k] = xs[i], ys[i]
	}
	span := px[n-1] - px[0]
	if !finite(span) {
		return envelopeFit{}, false
	}
	win := math.Max(p.window, span/maxEnvelopeWindows)
	wx, wy := windowMinima(px, py, win)

	// Preliminary robust floor line.
	slope0 := 0.0
	if span >= p.minSpan && len(wx) >= 3 {
		if s, ok := theilSenSlope(wx, wy, 100); ok && math.Abs(s) <= p.maxSlope {
			slope0 = s
		}
	}
	res := make([]float64, len(wx))
	for i := range wx {
		res[i] = wy[i] - slope0*wx[i]
	}
	p10 := quantile(res, 0.10)
	p50 := quantile(res, 0.50)
	tol := math.Max(p.outlierFloor, 4*(p50-p10))
	keepX := make([]float64, 0, n)
	keepY := make([]float64, 0, n)
	for i := range px {
		if py[i]-slope0*px[i]-p10 >= -tol {
			keepX = append(keepX, px[i])
			keepY = append(keepY, py[i])
		}
	}
	f := envelopeFit{used: len(keepX), dropped: n - len(keepX)}
	if len(keepX) == 0 { // cannot happen: the p10 window minimum is kept
		return f, false
	}

	f.l, f.flat = hullLine(keepX, keepY, p)
	if !finite(f.l.X, f.l.Y, f.l.Slope) {
		return f, false
	}
	kwx, kwy := windowMinima(keepX, keepY, win)
	above := make([]float64, len(kwx))
	for i := range kwx {
		above[i] = kwy[i] - f.l.at(kwx[i])
	}
	f.floorP75 = quantile(above, 0.75)
	return f, true
}

// hullLine is the LP line under sorted points (see lowerEnvelope). flat
// reports that the slope was not estimated.
func hullLine(xs, ys []float64, p envelopeParams) (line, bool) {
	minY, minX := ys[0], xs[0]
	var mean float64
	for i := range xs {
		mean += xs[i]
		if ys[i] < minY {
			minY, minX = ys[i], xs[i]
		}
	}
	mean /= float64(len(xs))
	flat := line{X: minX, Y: minY}
	if xs[len(xs)-1]-xs[0] < p.minSpan {
		return flat, true
	}
	// Lower hull by Andrew's monotone chain; points are sorted by x, then y.
	hull := make([]int, 0, 64)
	for i := range xs {
		if len(hull) > 0 && xs[hull[len(hull)-1]] == xs[i] {
			continue // same x, higher y
		}
		for len(hull) >= 2 {
			a, b := hull[len(hull)-2], hull[len(hull)-1]
			// Drop b if it is not strictly below the segment a→i.
			cross := (xs[b]-xs[a])*(ys[i]-ys[a]) - (ys[b]-ys[a])*(xs[i]-xs[a])
			if cross > 0 {
				break
			}
			hull = hull[:len(hull)-1]
		}
		hull = append(hull, i)
	}
	if len(hull) < 2 {
		return flat, true
	}
	k := sort.Search(len(hull)-1, func(k int) bool { return xs[hull[k+1]] >= mean })
	k = min(k, len(hull)-2)
	a, b := hull[k], hull[k+1]
	s := (ys[b] - ys[a]) / (xs[b] - xs[a])
	if !finite(s) || math.Abs(s) > p.maxSlope {
		return flat, true
	}
	return line{X: xs[a], Y: ys[a], Slope: s}, false
}

// windowMinima returns, for each window of width win along sorted xs, the
// point with the lowest y.
func windowMinima(xs, ys []float64, win float64) (wx, wy []float64) {
	if len(xs) == 0 {
		return nil, nil
	}
	start := xs[0]
	cur := -1.0
	for i := range xs {
		w := math.Floor((xs[i] - start) / win)
		if len(wx) == 0 || w != cur {
			cur = w
			wx = append(wx, xs[i])
			wy = append(wy, ys[i])
			continue
		}
		if ys[i] < wy[len(wy)-1] {
			wx[len(wx)-1], wy[len(wy)-1] = xs[i], ys[i]
		}
	}
	return wx, wy
}
