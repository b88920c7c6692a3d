package report

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// palette is a set of colours that stay distinguishable side by side; colour i of a
// chart is palette[i%len(palette)], and series past the palette's length also get a
// dash pattern.
var palette = []string{
	"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
	"#ff9da7", "#9c755f", "#bab0ac", "#17becf", "#8c6d31", "#393b79", "#d6616b",
}

func color(i int) string { return palette[i%len(palette)] }

// dashFor returns a stroke-dasharray attribute for series i (none for the first round
// of colours).
func dashFor(i int) string {
	switch (i / len(palette)) % 3 {
	case 1:
		return ` stroke-dasharray="6 3"`
	case 2:
		return ` stroke-dasharray="2 2"`
	}
	return ""
}

// esc escapes text and attribute values for HTML and inline SVG.
func esc(s string) string { return html.EscapeString(s) }

// f1 formats a coordinate with one decimal, trimming ".0".
func f1(v float64) string {
	s := fmt.Sprintf("%.1f", v)
	s = strings.TrimSuffix(s, ".0")
	if s == "-0" {
		s = "0"
	}
	return s
}

// svgDoc accumulates one chart.
type svgDoc struct {
	b    strings.Builder
	w, h float64
}

func (s *svgDoc) add(format string, args ...any) { fmt.Fprintf(&s.b, format, args...) }

func (s *svgDoc) text(x, y float64, anchor, class, txt string) {
	s.add(`<text x="%s" y="%s" text-anchor="%s" class="%s">%s</text>`+"\n", f1(x), f1(y), anchor, class, esc(txt))
}

// finish wraps the elements in an <svg class="chart"> with an accessible title.
func (s *svgDoc) finish(id, title string) string {
	return fmt.Sprintf(`<svg class="chart" id="%s" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %s %s" width="%s" height="%s">`+"\n<title>%s</title>\n%s</svg>\n",
		esc(id), esc(title), f1(s.w), f1(s.h), f1(s.w), f1(s.h), esc(title), s.b.String())
}

// logScale maps values in [lo, hi] (powers of ten) onto pixels [a, b] logarithmically.
type logScale struct {
	lo, hi float64
	a, b   float64
}

// newLogScale covers min..max with whole decades.
func newLogScale(min, max, a, b float64) logScale {
	if !(min > 0) {
		min = 1
	}
	if !(max >= min) {
		max = min
	}
	lo := math.Pow(10, math.Floor(math.Log10(min)))
	hi := math.Pow(10, math.Ceil(math.Log10(max)))
	if hi <= lo {
		hi = lo * 10
	}
	return logScale{lo: lo, hi: hi, a: a, b: b}
}

func (s logScale) pos(v float64) float64 {
	if v < s.lo {
		v = s.lo
	}
	t := (math.Log10(v) - math.Log10(s.lo)) / (math.Log10(s.hi) - math.Log10(s.lo))
	return s.a + t*(s.b-s.a)
}

// ticks returns 1, 2, 5 × 10^k inside the scale, or only the decades when it spans
// more than three.
func (s logScale) ticks() []float64 {
	decades := int(math.Round(math.Log10(s.hi / s.lo)))
	steps := []float64{1, 2, 5}
	if decades > 3 {
		steps = []float64{1}
	}
	var out []float64
	for k := 0; k <= decades; k++ {
		for _, m := range steps {
			v := s.lo * math.Pow(10, float64(k)) * m
			if v <= s.hi*1.0001 {
				out = append(out, v)
			}
		}
	}
	return out
}

// linScale maps [0, hi] onto pixels [a, b].
type linScale struct {
	hi   float64
	a, b float64
}

// newLinScale rounds max up to a 1, 2 or 5 × 10^k boundary.
func newLinScale(max, a, b float64) linScale {
	if !(max > 0) {
		max = 1
	}
	p := math.Pow(10, math.Floor(math.Log10(max)))
	hi := p
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= max {
			hi = m * p
			break
		}
	}
	return linScale{hi: hi, a: a, b: b}
}

func (s linScale) pos(v float64) float64 { return s.a + v/s.hi*(s.b-s.a) }

func (s linScale) ticks() []float64 {
	step := s.hi / 5
	out := make([]float64, 0, 6)
	for i := 0; i <= 5; i++ {
		out = append(out, step*float64(i))
	}
	return out
}

// legend draws a row of swatches with labels starting at (x, y), wrapping at maxX,
// and returns the y below it. With dashOf nil the swatches are squares, else short
// lines dashed like the chart's lines. Item i carries data-series="i" so that the
// page's script can toggle the series.
func (s *svgDoc) legend(x, y, maxX float64, labels []string, colorOf func(int) string, dashOf func(int) string) float64 {
	cx := x
	for i, l := range labels {
		w := 24 + textWidth(l)
		if cx+w > maxX && cx > x {
			cx = x
			y += 18
		}
		if dashOf == nil {
			s.add(`<g class="legend-item" data-series="%d"><rect x="%s" y="%s" width="12" height="12" fill="%s"/>`, i, f1(cx), f1(y-10), colorOf(i))
		} else {
			s.add(`<g class="legend-item" data-series="%d"><line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2.5"%s/>`,
				i, f1(cx-2), f1(y-4), f1(cx+14), f1(y-4), colorOf(i), dashOf(i))
		}
		s.add(`<text x="%s" y="%s" class="legend">%s</text></g>`+"\n", f1(cx+18), f1(y), esc(l))
		cx += w + 12
	}
	return y + 18
}

// textWidth estimates the width of s in the charts' 12px font.
func textWidth(s string) float64 { return 6.6 * float64(len([]rune(s))) }

// shortNs formats an axis label in nanoseconds: "500ns", "2µs", "1ms".
func shortNs(v float64) string {
	return strings.Replace(strings.Replace(formatNs(v), ".00", "", 1), ".0", "", 1)
}

// shortBps formats an axis label in bytes per second.
func shortBps(v float64) string {
	return strings.Replace(strings.Replace(formatBytesPerSec(v), ".00", "", 1), ".0", "", 1)
}
