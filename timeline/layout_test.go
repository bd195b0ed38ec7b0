package timeline

import (
	"math"
	"testing"
)

func TestGridRects(t *testing.T) {
	full := Rect{W: 1280, H: 720}
	// Hand-computed: 8 px gaps, 16:9 tiles.
	for _, c := range []struct {
		n    int
		want []Rect
	}{
		{1, []Rect{{14, 8, 1250, 704}}},
		{2, []Rect{{8, 184, 628, 352}, {644, 184, 628, 352}}},
		{3, []Rect{{18, 8, 618, 348}, {644, 8, 618, 348}, {330, 364, 618, 348}}},
		{4, []Rect{{18, 8, 618, 348}, {644, 8, 618, 348}, {18, 364, 618, 348}, {644, 364, 618, 348}}},
	} {
		got := gridRects(full, c.n, 16.0/9, 8)
		if len(got) != len(c.want) {
			t.Fatalf("n=%d: %v, want %v", c.n, got, c.want)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("n=%d tile %d: %v, want %v", c.n, i, got[i], c.want[i])
			}
		}
	}
	// Properties for every count and a few areas: inside the area, no
	// overlap, the aspect kept, even sizes, one size for all.
	for _, area := range []Rect{full, {0, 576, 1280, 144}, {100, 50, 640, 720}, {0, 0, 360, 640}} {
		for n := 1; n <= 25; n++ {
			rs := gridRects(area, n, 16.0/9, 8)
			if len(rs) != n {
				t.Fatalf("area %v n=%d: %d tiles", area, n, len(rs))
			}
			for i, r := range rs {
				if r.X < area.X || r.Y < area.Y || r.X+r.W > area.X+area.W || r.Y+r.H > area.Y+area.H {
					t.Errorf("area %v n=%d: tile %v outside", area, n, r)
				}
				if r.W != rs[0].W || r.H != rs[0].H || r.W%2 != 0 || r.H%2 != 0 || r.X%2 != 0 || r.Y%2 != 0 {
					t.Errorf("area %v n=%d: tile %v (first %v)", area, n, r, rs[0])
				}
				if a := float64(r.W) / float64(r.H); r.H > 20 && math.Abs(a-16.0/9) > 0.05 {
					t.Errorf("area %v n=%d: tile %v aspect %.3f", area, n, r, a)
				}
				for _, o := range rs[:i] {
					if r.X < o.X+o.W && o.X < r.X+r.W && r.Y < o.Y+o.H && o.Y < r.Y+r.H {
						t.Errorf("area %v n=%d: tiles %v and %v overlap", area, n, r, o)
					}
				}
			}
		}
	}
}

func TestDefaultGap(t *testing.T) {
	for h, want := range map[int]int{360: 4, 720: 8, 1080: 12, 100: 2} {
		if got := defaultGap(h); got != want {
			t.Errorf("defaultGap(%d) = %d, want %d", h, got, want)
		}
	}
}
