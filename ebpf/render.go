package ebpf

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/ipclab/ipclab/internal/table"
)

// WriteText writes r as bcc-style log2 histograms: for every row, a header line with
// the counts, then one histogram per metric that recorded anything, each followed by a
// summary line (count, mean, p50 and p99 bucket bounds).
func WriteText(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "ipclab eBPF probes (%s), %s, %d rows\n", r.Attach, interval(r), len(r.Rows))
	if r.SampleEvery > 1 {
		fmt.Fprintf(bw, "sampled: 1 call in %d at random; counts and histograms are of the sampled calls (multiply counts by %d to estimate all)\n",
			r.SampleEvery, r.SampleEvery)
	}
	for i := range r.Rows {
		row := &r.Rows[i]
		fmt.Fprintf(bw, "\n%s %s: %d calls, %d errors, %d EAGAIN, %d bytes", row.Primitive, row.Op,
			row.Calls, row.Errors, row.EAGAIN, row.Bytes)
		if ok := row.Calls - row.Errors; ok > 0 && row.Bytes > 0 {
			fmt.Fprintf(bw, " (%.1f B/call)", float64(row.Bytes)/float64(ok))
		}
		fmt.Fprintln(bw)
		for m := Metric(0); m < NumMetrics; m++ {
			h := &row.Hist[m]
			if h.Count() == 0 {
				continue
			}
			fmt.Fprintln(bw)
			writeHist(bw, h, m)
			fmt.Fprintf(bw, "%s %s %s: %s\n", row.Primitive, row.Op, m.Title(), summary(h, m, row.Calls))
		}
	}
	return bw.Flush()
}

func interval(r *Report) string {
	if r.Since.IsZero() || r.Taken.IsZero() {
		return "interval unknown"
	}
	return "over " + r.Taken.Sub(r.Since).Round(time.Millisecond).String()
}

const barWidth = 40

func writeHist(w io.Writer, h *Histogram, m Metric) {
	first, last := -1, -1
	var peak uint64
	for k, c := range h.Buckets {
		if c > 0 {
			if first < 0 {
				first = k
			}
			last = k
			peak = max(peak, c)
		}
	}
	unit := m.Unit()
	his := func(k int) string {
		if k == NumBuckets-1 {
			return "inf"
		}
		_, hi := BucketBounds(k)
		return strconv.FormatUint(hi, 10)
	}
	lw, hw := len(unit), 0
	for k := first; k <= last; k++ {
		lo, _ := BucketBounds(k)
		lw = max(lw, len(strconv.FormatUint(lo, 10)))
		hw = max(hw, len(his(k)))
	}
	lw = max(lw, 10)
	hw = max(hw, 10)
	fmt.Fprintf(w, "%*s : count     distribution\n", lw+4+hw, unit)
	for k := first; k <= last; k++ {
		lo, _ := BucketBounds(k)
		c := h.Buckets[k]
		n := int(c * barWidth / peak)
		if c > 0 && n == 0 {
			n = 1
		}
		fmt.Fprintf(w, "%*d -> %-*s : %-9d |%-40s|\n", lw, lo, hw, his(k), c, strings.Repeat("*", n))
	}
}

func summary(h *Histogram, m Metric, calls uint64) string {
	n := h.Count()
	s := fmt.Sprintf("count %d", n)
	if (m == MetricOffPeer || m == MetricOffCPU) && calls > 0 {
		s += fmt.Sprintf(" (%.1f%% of calls)", 100*float64(n)/float64(calls))
	}
	return s + fmt.Sprintf(", mean %s, p50 %s, p99 %s", formatValue(h.Mean(), m), quantile(h, 0.5, m), quantile(h, 0.99, m))
}

// quantile prints the bucket bound of a quantile: "≤ hi", or "≥ lo" in the open
// last bucket.
func quantile(h *Histogram, q float64, m Metric) string {
	v := h.Quantile(q)
	if lo, _ := BucketBounds(NumBuckets - 1); v >= lo {
		return "≥ " + formatValue(float64(v), m)
	}
	return "≤ " + formatValue(float64(v), m)
}

// formatValue prints a duration in ns with a readable unit, or a byte count.
func formatValue(v float64, m Metric) string {
	if m == MetricBytes {
		if v == math.Trunc(v) {
			return strconv.FormatFloat(v, 'f', 0, 64) + " B"
		}
		return strconv.FormatFloat(v, 'f', 1, 64) + " B"
	}
	switch {
	case v >= 1e9:
		return strconv.FormatFloat(v/1e9, 'f', 2, 64) + " s"
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + " ms"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 2, 64) + " µs"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " ns"
}

// WriteTable writes rows side by side, one column per row (primitive and operation),
// one line per figure: calls, errors, EAGAIN, bytes per call, and mean / p50 / p99 of
// each time metric. Rows may come from several reports (say one per primitive run by
// ipcbench); a Primitive may be relabelled to tell runs apart.
func WriteTable(w io.Writer, rows []Row) error {
	type line struct {
		name string
		f    func(r *Row) string
	}
	count := func(f func(r *Row) uint64) func(r *Row) string {
		return func(r *Row) string { return strconv.FormatUint(f(r), 10) }
	}
	stat := func(m Metric, what string) func(r *Row) string {
		return func(r *Row) string {
			h := &r.Hist[m]
			if h.Count() == 0 {
				return "-"
			}
			switch what {
			case "mean":
				return formatValue(h.Mean(), m)
			case "p50":
				return quantile(h, 0.5, m)
			case "p99":
				return quantile(h, 0.99, m)
			case "share":
				return strconv.FormatFloat(100*float64(h.Count())/float64(max(r.Calls, 1)), 'f', 1, 64) + "%"
			}
			return ""
		}
	}
	lines := []line{
		{"calls", count(func(r *Row) uint64 { return r.Calls })},
		{"errors", count(func(r *Row) uint64 { return r.Errors })},
		{"EAGAIN", count(func(r *Row) uint64 { return r.EAGAIN })},
		{"bytes/call", stat(MetricBytes, "mean")},
		{"call mean", stat(MetricCall, "mean")},
		{"call p50", stat(MetricCall, "p50")},
		{"call p99", stat(MetricCall, "p99")},
		{"on-CPU mean", stat(MetricOnCPU, "mean")},
		{"on-CPU p99", stat(MetricOnCPU, "p99")},
		{"blocked (calls)", stat(MetricOffPeer, "share")},
		{"peer wait mean", stat(MetricOffPeer, "mean")},
		{"peer wait p99", stat(MetricOffPeer, "p99")},
		{"switched out", stat(MetricOffCPU, "share")},
		{"CPU wait mean", stat(MetricOffCPU, "mean")},
		{"CPU wait p99", stat(MetricOffCPU, "p99")},
		{"ready wait mean", stat(MetricReadyWait, "mean")},
	}
	t := table.Table{Right: table.RightFrom(1)}
	head := []string{""}
	for i := range rows {
		head = append(head, rows[i].Primitive+" "+rows[i].Op)
	}
	t.Add(head...)
	for _, l := range lines {
		cells := []string{l.name}
		for i := range rows {
			cells = append(cells, l.f(&rows[i]))
		}
		t.Add(cells...)
	}
	return t.WriteText(w)
}

// SchemaID identifies the JSON format written by WriteJSON; see schema.json.
const SchemaID = "ipclab.ebpf.report/v1"

type jsonReport struct {
	Schema     string    `json:"schema"`
	Attach     string    `json:"attach"`
	Since      time.Time `json:"since"`
	Taken      time.Time `json:"taken"`
	IntervalNs int64     `json:"interval_ns"`
	Buckets    string    `json:"bucket_scheme"`
	// SampleEvery is omitted when every call was traced.
	SampleEvery int       `json:"sample_every,omitempty"`
	Rows        []jsonRow `json:"rows"`
}

type jsonRow struct {
	Primitive  string     `json:"primitive"`
	Op         string     `json:"op"`
	Calls      uint64     `json:"calls"`
	Errors     uint64     `json:"errors"`
	EAGAIN     uint64     `json:"eagain"`
	Bytes      uint64     `json:"bytes"`
	Histograms []jsonHist `json:"histograms"`
}

type jsonHist struct {
	Metric  string       `json:"metric"`
	Unit    string       `json:"unit"`
	Count   uint64       `json:"count"`
	Sum     uint64       `json:"sum"`
	Mean    float64      `json:"mean"`
	P50     uint64       `json:"p50_le"`
	P99     uint64       `json:"p99_le"`
	Buckets []jsonBucket `json:"buckets"`
}

type jsonBucket struct {
	Lo    uint64  `json:"lo"`
	Hi    *uint64 `json:"hi"`
	Count uint64  `json:"count"`
}

const bucketScheme = "log2: each bucket counts the values v with lo <= v <= hi; hi null means no upper bound; empty buckets are omitted"

// WriteJSON writes r as one JSON object in the format described by schema.json
// (SchemaID): every histogram carries its metric, unit ("ns" or "bytes"), count,
// sum, mean, p50/p99 bucket upper bounds and its non-empty buckets with explicit
// bounds.
func WriteJSON(w io.Writer, r *Report) error {
	out := jsonReport{
		Schema: SchemaID, Attach: r.Attach, Since: r.Since.UTC(), Taken: r.Taken.UTC(),
		IntervalNs: r.Taken.Sub(r.Since).Nanoseconds(), Buckets: bucketScheme,
		SampleEvery: sampleField(r.SampleEvery),
		Rows:        make([]jsonRow, 0, len(r.Rows)),
	}
	for i := range r.Rows {
		row := &r.Rows[i]
		jr := jsonRow{
			Primitive: row.Primitive, Op: row.Op, Calls: row.Calls, Errors: row.Errors,
			EAGAIN: row.EAGAIN, Bytes: row.Bytes, Histograms: []jsonHist{},
		}
		for m := Metric(0); m < NumMetrics; m++ {
			h := &row.Hist[m]
			n := h.Count()
			if n == 0 {
				continue
			}
			jh := jsonHist{
				Metric: m.String(), Unit: m.Unit(), Count: n, Sum: h.Sum, Mean: h.Mean(),
				P50: h.Quantile(0.5), P99: h.Quantile(0.99),
			}
			for k, c := range h.Buckets {
				if c == 0 {
					continue
				}
				lo, hi := BucketBounds(k)
				b := jsonBucket{Lo: lo, Count: c}
				if k < NumBuckets-1 {
					b.Hi = &hi
				}
				jh.Buckets = append(jh.Buckets, b)
			}
			jr.Histograms = append(jr.Histograms, jh)
		}
		out.Rows = append(out.Rows, jr)
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// Prometheus metric families written by WritePrometheus.
var promHist = [NumMetrics]struct{ name, help string }{
	MetricCall:      {"ipclab_ebpf_call_seconds", "Time in the system call."},
	MetricOnCPU:     {"ipclab_ebpf_oncpu_seconds", "On-CPU part of the system call."},
	MetricOffPeer:   {"ipclab_ebpf_offcpu_peer_seconds", "Off-CPU time waiting for the peer, for calls that blocked."},
	MetricOffCPU:    {"ipclab_ebpf_offcpu_runq_seconds", "Off-CPU time waiting for a CPU, for calls that were switched out."},
	MetricBytes:     {"ipclab_ebpf_call_bytes", "Bytes moved by a successful call."},
	MetricReadyWait: {"ipclab_ebpf_ready_wait_seconds", "Time from an EAGAIN to the next successful call on the same descriptor and operation."},
}

// WritePrometheus writes r in the Prometheus text exposition format (version 0.0.4):
// counters ipclab_ebpf_{calls,errors,eagain,bytes}_total and one histogram family per
// metric, labelled by primitive and op. Durations are converted to seconds; the le
// bounds are the log2 buckets' upper bounds (bucket k ≥ 1 ends at 2^(k+1)-1 ns or
// bytes, bucket 0 at 1), up to the last non-empty bucket, then +Inf. The families are
// built as client_model metric families and written by the Prometheus project's own
// encoder (github.com/prometheus/common/expfmt), so the output is what its parser reads.
func WritePrometheus(w io.Writer, r *Report) error {
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range PrometheusFamilies(r) {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("ebpf: writing %s: %w", mf.GetName(), err)
		}
	}
	return nil
}

// PrometheusFamilies returns r as Prometheus metric families (client_model's
// dto.MetricFamily), the ones WritePrometheus writes: to serve from a registry's
// Gatherer, or to encode in another exposition format with expfmt.
func PrometheusFamilies(r *Report) []*dto.MetricFamily {
	counters := []struct {
		name, help string
		f          func(*Row) uint64
	}{
		{"ipclab_ebpf_calls_total", "System calls completed.", func(r *Row) uint64 { return r.Calls }},
		{"ipclab_ebpf_errors_total", "System calls that failed.", func(r *Row) uint64 { return r.Errors }},
		{"ipclab_ebpf_eagain_total", "System calls that failed because they would block.", func(r *Row) uint64 { return r.EAGAIN }},
		{"ipclab_ebpf_bytes_total", "Bytes moved by successful calls.", func(r *Row) uint64 { return r.Bytes }},
	}
	var out []*dto.MetricFamily
	for _, c := range counters {
		mf := &dto.MetricFamily{Name: proto.String(c.name), Help: proto.String(c.help), Type: dto.MetricType_COUNTER.Enum()}
		for i := range r.Rows {
			mf.Metric = append(mf.Metric, &dto.Metric{
				Label:   promLabels(&r.Rows[i]),
				Counter: &dto.Counter{Value: proto.Float64(float64(c.f(&r.Rows[i])))},
			})
		}
		out = append(out, mf)
	}
	for m := Metric(0); m < NumMetrics; m++ {
		fam := promHist[m]
		mf := &dto.MetricFamily{Name: proto.String(fam.name), Help: proto.String(fam.help), Type: dto.MetricType_HISTOGRAM.Enum()}
		scale := 1e9 // ns per second: durations are divided by it
		if m == MetricBytes {
			scale = 1
		}
		for i := range r.Rows {
			h := &r.Rows[i].Hist[m]
			last := -1
			for k, c := range h.Buckets {
				if c > 0 {
					last = k
				}
			}
			ph := &dto.Histogram{
				SampleCount: proto.Uint64(h.Count()),
				SampleSum:   proto.Float64(float64(h.Sum) / scale),
			}
			var cum uint64
			for k := 0; k <= last && k < NumBuckets-1; k++ {
				cum += h.Buckets[k]
				_, hi := BucketBounds(k)
				ph.Bucket = append(ph.Bucket, &dto.Bucket{CumulativeCount: proto.Uint64(cum), UpperBound: proto.Float64(float64(hi) / scale)})
			}
			mf.Metric = append(mf.Metric, &dto.Metric{Label: promLabels(&r.Rows[i]), Histogram: ph})
		}
		out = append(out, mf)
	}
	return out
}

func promLabels(r *Row) []*dto.LabelPair {
	return []*dto.LabelPair{
		{Name: proto.String("primitive"), Value: proto.String(r.Primitive)},
		{Name: proto.String("op"), Value: proto.String(r.Op)},
	}
}

func sampleField(n int) int {
	if n > 1 {
		return n
	}
	return 0
}
