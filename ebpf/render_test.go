package ebpf_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/ipclab/ipclab/ebpf"
)

var update = flag.Bool("update", false, "rewrite the renderers' golden files in testdata")

// sampleReport is a fixed report: the renderers' golden files are made from it.
func sampleReport() *ebpf.Report {
	since := time.Date(2026, 11, 21, 20, 0, 0, 0, time.UTC)
	r := &ebpf.Report{Attach: "tp_btf", Since: since, Taken: since.Add(1500 * time.Millisecond)}
	add := func(h *ebpf.Histogram, v, n uint64) {
		for k := 0; k < ebpf.NumBuckets; k++ {
			if lo, hi := ebpf.BucketBounds(k); v >= lo && v <= hi {
				h.Buckets[k] += n
				h.Sum += v * n
				return
			}
		}
	}
	var rd ebpf.Row
	rd.Primitive, rd.Op = "pipe", "read"
	rd.Calls, rd.Errors, rd.EAGAIN, rd.Bytes = 1000, 3, 3, 997*64
	add(&rd.Hist[ebpf.MetricCall], 600, 500)
	add(&rd.Hist[ebpf.MetricCall], 3000, 450)
	add(&rd.Hist[ebpf.MetricCall], 20000, 50)
	add(&rd.Hist[ebpf.MetricOnCPU], 500, 900)
	add(&rd.Hist[ebpf.MetricOnCPU], 1100, 100)
	add(&rd.Hist[ebpf.MetricOffPeer], 2000, 480)
	add(&rd.Hist[ebpf.MetricOffPeer], 17000, 20)
	add(&rd.Hist[ebpf.MetricOffCPU], 700, 500)
	add(&rd.Hist[ebpf.MetricBytes], 64, 997)
	add(&rd.Hist[ebpf.MetricReadyWait], 40000, 3)
	var wr ebpf.Row
	wr.Primitive, wr.Op = "pipe", "write"
	wr.Calls, wr.Bytes = 1000, 64000
	add(&wr.Hist[ebpf.MetricCall], 400, 1000)
	add(&wr.Hist[ebpf.MetricOnCPU], 400, 1000)
	add(&wr.Hist[ebpf.MetricBytes], 64, 1000)
	var msg ebpf.Row
	msg.Primitive, msg.Op = `sysv-msg "q"`, "msgsnd"
	msg.Calls, msg.Bytes = 10, 40960
	add(&msg.Hist[ebpf.MetricCall], 1<<45, 1) // lands in the open-ended last bucket
	add(&msg.Hist[ebpf.MetricCall], 900, 9)
	add(&msg.Hist[ebpf.MetricOnCPU], 900, 10)
	add(&msg.Hist[ebpf.MetricOffPeer], 1<<45, 1)
	add(&msg.Hist[ebpf.MetricBytes], 4096, 10)
	r.Rows = []ebpf.Row{rd, wr, msg}
	return r
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestRender -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (run with -update to accept):\n%s", name, path, got)
	}
}

func TestRenderText(t *testing.T) {
	var b bytes.Buffer
	if err := ebpf.WriteText(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.txt", b.Bytes())
}

func TestRenderTable(t *testing.T) {
	var b bytes.Buffer
	if err := ebpf.WriteTable(&b, sampleReport().Rows); err != nil {
		t.Fatal(err)
	}
	golden(t, "table.txt", b.Bytes())
}

func TestRenderJSON(t *testing.T) {
	var b bytes.Buffer
	r := sampleReport()
	if err := ebpf.WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.json", b.Bytes())
	validateReportJSON(t, b.Bytes(), r)
}

func TestRenderPrometheus(t *testing.T) {
	var b bytes.Buffer
	if err := ebpf.WritePrometheus(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.prom", b.Bytes())
	validatePrometheus(t, b.String(), sampleReport())
}

// validateReportJSON checks a WriteJSON document against schema.json, then the
// invariants a schema cannot express.
func validateReportJSON(t *testing.T, doc []byte, r *ebpf.Report) {
	t.Helper()
	var schema, v any
	if err := json.Unmarshal(ebpf.Schema, &schema); err != nil {
		t.Fatalf("schema.json: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	root := schema.(map[string]any)
	if errs := validate(root, root, v, "$"); len(errs) > 0 {
		t.Fatalf("JSON does not match schema.json:\n%s", strings.Join(errs, "\n"))
	}
	var out struct {
		Rows []struct {
			Calls      uint64
			Histograms []struct {
				Metric  string
				Count   uint64
				Buckets []struct {
					Lo    uint64
					Hi    *uint64
					Count uint64
				}
			}
		}
	}
	if err := json.Unmarshal(doc, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Rows) != len(r.Rows) {
		t.Fatalf("%d rows, want %d", len(out.Rows), len(r.Rows))
	}
	for i, row := range out.Rows {
		for _, h := range row.Histograms {
			var n, prevHi uint64
			for j, b := range h.Buckets {
				if j > 0 && b.Lo <= prevHi {
					t.Errorf("row %d %s: buckets out of order", i, h.Metric)
				}
				if b.Lo > 1 && b.Lo&(b.Lo-1) != 0 {
					t.Errorf("row %d %s: lo %d is not a power of two", i, h.Metric, b.Lo)
				}
				if b.Hi != nil {
					if *b.Hi != max(2*b.Lo, 2)-1 {
						t.Errorf("row %d %s: bucket %d..%d is not log2", i, h.Metric, b.Lo, *b.Hi)
					}
					prevHi = *b.Hi
				} else if j != len(h.Buckets)-1 {
					t.Errorf("row %d %s: open bucket not last", i, h.Metric)
				}
				n += b.Count
			}
			if n != h.Count {
				t.Errorf("row %d %s: buckets sum to %d, count %d", i, h.Metric, n, h.Count)
			}
		}
	}
}

// validate checks v against the subset of JSON Schema that schema.json uses: type,
// const, enum, required, properties, additionalProperties: false, items, minimum and
// local $ref.
func validate(root, s map[string]any, v any, path string) []string {
	if ref, ok := s["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/$defs/")
		def, ok := root["$defs"].(map[string]any)[name].(map[string]any)
		if !ok {
			return []string{path + ": unresolved " + ref}
		}
		return validate(root, def, v, path)
	}
	var errs []string
	fail := func(format string, a ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, a...)) }
	if c, ok := s["const"]; ok && fmt.Sprint(c) != fmt.Sprint(v) {
		fail("%v is not %v", v, c)
	}
	if e, ok := s["enum"].([]any); ok {
		found := false
		for _, x := range e {
			if fmt.Sprint(x) == fmt.Sprint(v) {
				found = true
			}
		}
		if !found {
			fail("%v not in %v", v, e)
		}
	}
	if ty, ok := s["type"]; ok {
		types := []any{ty}
		if list, isList := ty.([]any); isList {
			types = list
		}
		match := false
		for _, tn := range types {
			match = match || hasType(v, tn.(string))
		}
		if !match {
			fail("%v (%T) is not of type %v", v, v, ty)
			return errs
		}
	}
	if minimum, ok := s["minimum"].(float64); ok {
		if n, isNum := v.(json.Number); isNum {
			if f, _ := n.Float64(); f < minimum {
				fail("%v < minimum %v", v, minimum)
			}
		}
	}
	if obj, ok := v.(map[string]any); ok {
		props, _ := s["properties"].(map[string]any)
		for _, r := range asList(s["required"]) {
			if _, has := obj[r.(string)]; !has {
				fail("missing %q", r)
			}
		}
		for k, x := range obj {
			ps, known := props[k].(map[string]any)
			if !known {
				if ap, set := s["additionalProperties"].(bool); set && !ap {
					fail("unexpected property %q", k)
				}
				continue
			}
			errs = append(errs, validate(root, ps, x, path+"."+k)...)
		}
	}
	if arr, ok := v.([]any); ok {
		if items, has := s["items"].(map[string]any); has {
			for i, x := range arr {
				errs = append(errs, validate(root, items, x, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	return errs
}

func asList(v any) []any { l, _ := v.([]any); return l }

func hasType(v any, name string) bool {
	switch name {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "null":
		return v == nil
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(json.Number)
		return ok
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		f, err := n.Float64()
		return err == nil && f == math.Trunc(f) && !strings.ContainsAny(n.String(), ".eE")
	}
	return false
}

// TestSchemaRejects checks that the validator (and so the schema) can fail.
func TestSchemaRejects(t *testing.T) {
	var schema any
	if err := json.Unmarshal(ebpf.Schema, &schema); err != nil {
		t.Fatal(err)
	}
	root := schema.(map[string]any)
	for _, doc := range []string{
		`{}`,
		`{"schema":"ipclab.ebpf.report/v1","attach":"kprobe","since":"","taken":"","interval_ns":0,"bucket_scheme":"","rows":[]}`,
		`{"schema":"ipclab.ebpf.report/v1","attach":"tp_btf","since":"","taken":"","interval_ns":-1,"bucket_scheme":"","rows":[]}`,
		`{"schema":"ipclab.ebpf.report/v1","attach":"tp_btf","since":"","taken":"","interval_ns":0,"bucket_scheme":"","rows":[{"primitive":"pipe","op":"read","calls":1,"errors":0,"eagain":0,"bytes":0,"histograms":[{"metric":"call","unit":"s","count":1,"sum":1,"mean":1,"p50_le":1,"p99_le":1,"buckets":[]}]}]}`,
		`{"schema":"ipclab.ebpf.report/v1","attach":"tp_btf","since":"","taken":"","interval_ns":0.5,"bucket_scheme":"","rows":[],"extra":1}`,
	} {
		dec := json.NewDecoder(strings.NewReader(doc))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		if errs := validate(root, root, v, "$"); len(errs) == 0 {
			t.Errorf("schema accepted %s", doc)
		}
	}
}

// validatePrometheus parses text with the Prometheus project's own text parser
// (expfmt) and checks it against r: every row's counters, and for every metric its
// histogram with one le bucket per log2 bucket up to the last non-empty one, each
// holding the cumulative count of r's buckets, then +Inf, _count and _sum.
func validatePrometheus(t *testing.T, text string, r *ebpf.Report) {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("the Prometheus text parser rejects the output: %v\n%s", err, text)
	}
	find := func(family, prim, op string) *dto.Metric {
		t.Helper()
		mf := fams[family]
		if mf == nil {
			t.Fatalf("no family %s", family)
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["primitive"] == prim && l["op"] == op {
				return m
			}
		}
		t.Fatalf("%s: no series for %s %s", family, prim, op)
		return nil
	}
	for _, row := range r.Rows {
		for family, want := range map[string]uint64{
			"ipclab_ebpf_calls_total": row.Calls, "ipclab_ebpf_errors_total": row.Errors,
			"ipclab_ebpf_eagain_total": row.EAGAIN, "ipclab_ebpf_bytes_total": row.Bytes,
		} {
			if fams[family].GetType() != dto.MetricType_COUNTER {
				t.Errorf("%s is a %v, want a counter", family, fams[family].GetType())
			}
			if got := find(family, row.Primitive, row.Op).GetCounter().GetValue(); got != float64(want) {
				t.Errorf("%s{%s %s} = %v, want %d", family, row.Primitive, row.Op, got, want)
			}
		}
		for m := ebpf.Metric(0); m < ebpf.NumMetrics; m++ {
			family := "ipclab_ebpf_" + m.String() + "_seconds"
			scale := 1e9
			switch m {
			case ebpf.MetricBytes:
				family, scale = "ipclab_ebpf_call_bytes", 1
			case ebpf.MetricCall:
				family = "ipclab_ebpf_call_seconds"
			}
			if fams[family].GetType() != dto.MetricType_HISTOGRAM {
				t.Fatalf("%s is a %v, want a histogram", family, fams[family].GetType())
			}
			h := &row.Hist[m]
			ph := find(family, row.Primitive, row.Op).GetHistogram()
			if ph.GetSampleCount() != h.Count() {
				t.Errorf("%s{%s %s}: count %d, want %d", family, row.Primitive, row.Op, ph.GetSampleCount(), h.Count())
			}
			if got, want := ph.GetSampleSum(), float64(h.Sum)/scale; math.Abs(got-want) > 1e-12*math.Max(1, want) {
				t.Errorf("%s{%s %s}: sum %v, want %v", family, row.Primitive, row.Op, got, want)
			}
			last := -1
			for k, c := range h.Buckets {
				if c > 0 {
					last = k
				}
			}
			var want []*dto.Bucket
			var cum uint64
			for k := 0; k <= last && k < ebpf.NumBuckets-1; k++ {
				cum += h.Buckets[k]
				_, hi := ebpf.BucketBounds(k)
				want = append(want, &dto.Bucket{CumulativeCount: proto.Uint64(cum), UpperBound: proto.Float64(float64(hi) / scale)})
			}
			want = append(want, &dto.Bucket{CumulativeCount: proto.Uint64(h.Count()), UpperBound: proto.Float64(math.Inf(1))})
			got := ph.GetBucket()
			if len(got) != len(want) {
				t.Errorf("%s{%s %s}: %d buckets, want %d", family, row.Primitive, row.Op, len(got), len(want))
				continue
			}
			for k := range want {
				if got[k].GetCumulativeCount() != want[k].GetCumulativeCount() || got[k].GetUpperBound() != want[k].GetUpperBound() {
					t.Errorf("%s{%s %s}: bucket le=%v count %d, want le=%v count %d", family, row.Primitive, row.Op,
						got[k].GetUpperBound(), got[k].GetCumulativeCount(), want[k].GetUpperBound(), want[k].GetCumulativeCount())
				}
			}
		}
	}
}
