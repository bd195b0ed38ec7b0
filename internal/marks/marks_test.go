package marks

import (
	"math"
	"testing"
)

// burst is n samples of silence with a 40 ms 1 kHz burst of amplitude amp
// starting at sample at (and, when at2 ≥ 0, another of amplitude amp2).
func burst(n, at int, amp float64, at2 int, amp2 float64) []float64 {
	s := make([]float64, n)
	add := func(from int, a float64) {
		for i := 0; i < 1920 && from+i < n; i++ {
			s[from+i] += a * math.Sin(2*math.Pi*1000*float64(i)/48000)
		}
	}
	add(at, amp)
	if at2 >= 0 {
		add(at2, amp2)
	}
	return s
}

func TestLag(t *testing.T) {
	for _, shift := range []int{-70, -48, -24, -1, 0, 1, 24, 48, 70} {
		a := burst(9600, 4000, 0.5, 4300, 0.45)
		// b: the same bursts shift samples later, 4 % quieter.
		b := burst(9600, 4000+shift, 0.48, 4300+shift, 0.432)
		lag, corr := Lag(a, b, 4000, 960, 2880, 480)
		if got, want := lag, shift; got != want {
			t.Errorf("shift %d: lag %d (correlation %.4f)", shift, got, corr)
		}
		if corr < 0.999 {
			t.Errorf("shift %d: correlation %.4f, want about 1", shift, corr)
		}
	}
	// A burst at the very start: the stretch is cut there.
	a := burst(9600, 200, 0.5, -1, 0)
	b := burst(9600, 224, 0.5, -1, 0)
	if lag, corr := Lag(a, b, 200, 960, 2880, 480); lag != 24 || corr < 0.999 {
		t.Errorf("a burst at the start: lag %d (correlation %.4f), want 24", lag, corr)
	}
	if lag, corr := ToneLag(a, b, 200.0/48000); lag != 24.0/48000 || corr < 0.999 {
		t.Errorf("ToneLag: %v s (correlation %.4f), want 24 samples", lag, corr)
	}
	// Silence: no lag.
	if _, corr := Lag(a, a, 8000, 960, 100, 48); !math.IsNaN(corr) {
		t.Errorf("a silent stretch: correlation %v, want NaN", corr)
	}
	if _, corr := Lag(a, make([]float64, 9600), 4000, 960, 2880, 48); !math.IsNaN(corr) {
		t.Errorf("against silence: correlation %v, want NaN", corr)
	}
}

// TestLagOverlap is why renders are compared with Lag and not by their
// onsets: a weak burst and, 5.5 ms later and in opposite phase, a strong
// one, the weak one 6 % quieter in b. The onset, at half the peak, is the
// weak burst's in a and the strong one's in b; Lag finds the two the same.
func TestLagOverlap(t *testing.T) {
	a := burst(48000, 10000, 0.17, 10264, 0.5)
	b := burst(48000, 10000, 0.16, 10264, 0.5)
	ta, tb := Tones(a, 0.15), Tones(b, 0.15)
	if len(ta) != 1 || len(tb) != 1 {
		t.Fatalf("tones %v and %v, want one each", ta, tb)
	}
	if d := (tb[0] - ta[0]) * 1000; d < 5 {
		t.Fatalf("onsets %.2f ms apart: the case no longer shows the onsets moving", d)
	}
	if lag, corr := Lag(a, b, 10000, 960, 2880, 480); lag != 0 || corr < 0.99 {
		t.Errorf("Lag %d samples (correlation %.4f), want 0", lag, corr)
	}
}

func TestAlone(t *testing.T) {
	for _, c := range []struct {
		name string
		s    []float64
		at   int
		want bool
	}{
		{"alone", burst(48000, 10000, 0.5, -1, 0), 10000, true},
		{"another 30 ms later", burst(48000, 10000, 0.5, 11440, 0.5), 10000, false},
		{"another 50 ms before", burst(48000, 10000, 0.5, 7600, 0.5), 10000, false},
		{"another 200 ms later", burst(48000, 10000, 0.5, 19600, 0.5), 10000, true},
		{"at the start", burst(48000, 100, 0.5, -1, 0), 100, true},
	} {
		if got := Alone(c.s, c.at, 1920, 2880, 0.02); got != c.want {
			t.Errorf("%s: Alone = %v, want %v", c.name, got, c.want)
		}
		if got := ToneAlone(c.s, float64(c.at)/48000); got != c.want {
			t.Errorf("%s: ToneAlone = %v, want %v", c.name, got, c.want)
		}
	}
}
