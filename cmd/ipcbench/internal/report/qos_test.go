package report

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
)

// qosFixture is a real run of ipcbench run --scenario qos --prim pipe,udp --duration 1s
// --format json (this VM's, not made up like the other fixtures).
const qosFixture = "testdata/fixture-qos.json"

func loadQoSFixture(t *testing.T) Run {
	t.Helper()
	run, err := Load(qosFixture)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// chartsIn returns the <svg class="chart"> elements of page, by id.
func chartsIn(t *testing.T, page string) map[string]string {
	t.Helper()
	out := map[string]string{}
	re := regexp.MustCompile(`(?s)<svg class="chart" id="([^"]+)".*?</svg>`)
	for _, m := range re.FindAllStringSubmatch(page, -1) {
		out[m[1]] = m[0]
	}
	return out
}

func TestQoSFixture(t *testing.T) {
	run := loadQoSFixture(t)
	res := qosResults(run)
	if len(res) != 2 {
		t.Fatalf("%d qos results in %s, want 2", len(res), qosFixture)
	}
	for _, r := range res {
		q := r.QoS
		if q.BucketBreaches != 0 || q.MaxBurst > float64(q.Depth) || len(q.Series) == 0 || q.Sent != q.Received+q.Lost {
			t.Errorf("%s: %+v", r.Primitive, *q)
		}
	}
}

// TestQoSSection: a run with qos results gets a section with a table and, per
// stream, a chart of its rate (with the contract) and one of its delay (with the
// bounds), whose points are marks; a run without them gets no such section.
func TestQoSSection(t *testing.T) {
	run := loadQoSFixture(t)
	var b bytes.Buffer
	if err := HTML(&b, []Run{run}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		`<section id="qos">`, `<a href="#qos">Streams with quality of service</a>`,
		"<th>long-run rate</th>", "pipe/ipclab/auto/same", "udp/ipclab/auto/same",
		"Contract: token bucket of 1000 units/s with a depth of 8 units, isochronous play-out 5.00ms to 20.0ms after sending",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	charts := chartsIn(t, page)
	for i, r := range qosResults(run) {
		for _, kind := range []string{"rate", "delay"} {
			id := fmt.Sprintf("qos-%s-0-%d", kind, i)
			svg, ok := charts[id]
			if !ok {
				t.Errorf("no chart %s", id)
				continue
			}
			marks := strings.Count(svg, `class="mark"`)
			points := len(r.QoS.Series)
			if kind == "delay" {
				points = 0
				for _, p := range r.QoS.Series {
					if p.Units > 0 {
						points += 2 // p50 and p99
					}
				}
			}
			if marks != points {
				t.Errorf("%s: %d marks, want %d", id, marks, points)
			}
			refs := strings.Count(svg, `class="ref"`)
			if want := map[string]int{"rate": 1, "delay": 2}[kind]; refs != want {
				t.Errorf("%s: %d reference lines, want %d", id, refs, want)
			}
			if !strings.Contains(svg, `class="line"`) {
				t.Errorf("%s: no line", id)
			}
		}
	}
	if !strings.Contains(charts["qos-rate-0-0"], "contract rate 1000/s") || !strings.Contains(charts["qos-delay-0-0"], "maximum delay 20.0ms") {
		t.Error("the reference lines are not in the legends")
	}
	// The comparison table names what it compares.
	if !strings.Contains(page, "delay p50, send to play-out") {
		t.Error("the comparison table of the qos results does not say it compares delays")
	}

	b.Reset()
	if err := HTML(&b, loadFixtures(t)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), `id="qos`) || strings.Contains(b.String(), "#qos") {
		t.Error("a report without qos results has a qos section")
	}
}

// TestQoSSeriesGap: an interval without a unit has no delay point, and breaks the
// delay lines.
func TestQoSSeriesGap(t *testing.T) {
	run := loadQoSFixture(t)
	r := qosResults(run)[0]
	q := *r.QoS
	q.Series = append([]QoSPoint(nil), q.Series...)
	q.Series[2].Units, q.Series[2].Rate, q.Series[2].DelayP50Ns, q.Series[2].DelayP99Ns = 0, 0, 0, 0
	r.QoS = &q
	svg := qosDelayChart("d", "x", r)
	if got, want := strings.Count(svg, `class="mark"`), 2*(len(q.Series)-1); got != want {
		t.Errorf("%d marks, want %d", got, want)
	}
	if got := strings.Count(svg, `<polyline class="line"`); got != 4 {
		t.Errorf("%d polylines, want 4: p50 and p99, each broken at the empty interval", got)
	}
	if strings.Count(qosRateChart("r", "x", r), `class="mark"`) != len(q.Series) {
		t.Error("the rate chart leaves out the empty interval")
	}
}

func TestValidateQoS(t *testing.T) {
	good := func() Result {
		r := qosResults(loadQoSFixture(t))[0]
		q := *r.QoS
		q.Series = append([]QoSPoint(nil), q.Series...)
		r.QoS = &q
		return r
	}
	if err := (File{Results: []Result{good()}}).Validate(); err != nil {
		t.Fatal(err)
	}
	for name, breakIt := range map[string]func(*Result){
		"no record":        func(r *Result) { r.QoS = nil },
		"other scenario":   func(r *Result) { r.Scenario = "pingpong" },
		"no contract":      func(r *Result) { r.QoS.ContractRate = 0 },
		"no depth":         func(r *Result) { r.QoS.Depth = 0 },
		"delays reversed":  func(r *Result) { r.QoS.MaxDelayNs = r.QoS.MinDelayNs - 1 },
		"negative count":   func(r *Result) { r.QoS.Lost = -1 },
		"more received":    func(r *Result) { r.QoS.Received = r.QoS.Sent + 1 },
		"NaN":              func(r *Result) { r.QoS.JitterP99Ns = math.NaN() },
		"series backwards": func(r *Result) { r.QoS.Series[1].TS = r.QoS.Series[0].TS - 0.1 },
		"negative rate":    func(r *Result) { r.QoS.Series[0].Rate = -1 },
	} {
		r := good()
		breakIt(&r)
		if err := (File{Results: []Result{r}}).Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
}
