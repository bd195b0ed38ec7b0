package render

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"time"
)

// fallbackFonts are tried when fc-match is missing or finds nothing usable.
func fallbackFonts() []string {
	return []string{
		"/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
		"/usr/share/fonts/dejavu/DejaVuSans.ttf",
		"/usr/share/fonts/TTF/DejaVuSans.ttf",
		"/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
	}
}

// findFont returns a font file for drawtext: what fontconfig matches for
// "DejaVu Sans" (any sans font if it is not installed), else a known path,
// else "" (no text is drawn then).
func findFont(ctx context.Context) string {
	if fc, err := exec.LookPath("fc-match"); err == nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, fc, "-f", "%{file}", "DejaVu Sans").Output(); err == nil {
			p := strings.TrimSpace(string(out))
			if usableFont(p) {
				return p
			}
		}
	}
	for _, p := range fallbackFonts() {
		if usableFont(p) {
			return p
		}
	}
	return ""
}

// usableFont reports whether p is a TrueType or OpenType file that exists.
func usableFont(p string) bool {
	lp := strings.ToLower(p)
	if !strings.HasSuffix(lp, ".ttf") && !strings.HasSuffix(lp, ".otf") && !strings.HasSuffix(lp, ".ttc") {
		return false
	}
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
