// Package report reads ipcbench's JSON results and turns runs from several machines into
// comparisons: aligned tables with ratios against the first machine, Go benchmark-format
// lines for benchstat, and a single self-contained HTML page with inline SVG charts.
//
// The types below are ipcbench's JSON output format; cmd/ipcbench writes them and this
// package reads them back. Decoding ignores fields it does not know, and keeps unknown
// machine fields in Machine.Extra so that they still show in a report.
package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// File is one ipcbench JSON document: the machine it ran on and its results.
type File struct {
	Machine Machine  `json:"machine"`
	Results []Result `json:"results"`
}

// Run is a File as loaded for comparison, with the name it is shown under.
type Run struct {
	// Name labels the run's column in tables and charts: the file name without its
	// directory and ".json" suffix ("results/debian12.json" is "debian12"), or the
	// hostname when the run was not read from a named file.
	Name string `json:"-"`
	File
}

// Machine describes where a run happened.
type Machine struct {
	Hostname       string    `json:"hostname"`
	Kernel         string    `json:"kernel"`             // uname -r
	OS             string    `json:"os"`                 // PRETTY_NAME from os-release
	CPUModel       string    `json:"cpu_model"`          // as /proc/cpuinfo names it
	CPUs           int       `json:"cpus"`               // online CPUs
	Virtualization string    `json:"virtualization"`     // "kvm", "none", EmulatedCPU, ...
	GoVersion      string    `json:"go_version"`         // runtime.Version()
	IpclabVersion  string    `json:"ipclab_version"`     // module version or VCS revision
	Pin            string    `json:"pin"`                // CPU pinning requested for the run
	Timestamp      time.Time `json:"timestamp,omitzero"` // when the run started

	// Extra holds the machine fields this package does not know, decoded as JSON
	// values. They are written back out by MarshalJSON and listed in reports.
	Extra map[string]any `json:"-"`
}

// EmulatedCPU is Machine.Virtualization for a run on a CPU emulated in software (qemu
// without KVM, which systemd-detect-virt calls "qemu"). Such a run's figures describe
// the emulator, not any real machine: they prove that a run works, nothing more.
const EmulatedCPU = "qemu-tcg (emulated CPU: figures not meaningful)"

// machineFields is Machine without its methods, so that encoding/json handles the
// known fields for MarshalJSON and UnmarshalJSON.
type machineFields Machine

// knownMachineKeys are the JSON keys of Machine's declared fields.
var knownMachineKeys = map[string]bool{
	"hostname": true, "kernel": true, "os": true, "cpu_model": true, "cpus": true,
	"virtualization": true, "go_version": true, "ipclab_version": true, "pin": true,
	"timestamp": true,
}

// UnmarshalJSON decodes the known fields and keeps the others in Extra.
func (m *Machine) UnmarshalJSON(data []byte) error {
	var f machineFields
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	for k, raw := range all {
		if knownMachineKeys[k] {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		if f.Extra == nil {
			f.Extra = make(map[string]any)
		}
		f.Extra[k] = v
	}
	*m = Machine(f)
	return nil
}

// MarshalJSON encodes the known fields followed by Extra, keys sorted; an Extra key
// that names a known field is ignored.
func (m Machine) MarshalJSON() ([]byte, error) {
	known, err := json.Marshal(machineFields(m))
	if err != nil {
		return nil, err
	}
	keys := m.ExtraKeys()
	if len(keys) == 0 {
		return known, nil
	}
	var b bytes.Buffer
	b.Write(known[:len(known)-1]) // without the closing brace
	for _, k := range keys {
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(m.Extra[k])
		if err != nil {
			return nil, fmt.Errorf("machine field %q: %w", k, err)
		}
		b.WriteByte(',')
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// ExtraKeys returns the keys of Extra that do not name a known field, sorted.
func (m Machine) ExtraKeys() []string {
	keys := make([]string, 0, len(m.Extra))
	for k := range m.Extra {
		if !knownMachineKeys[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// Result is one measurement: one primitive, implementation, scenario, size, wait
// strategy and pinning.
type Result struct {
	Primitive  string  `json:"primitive"`  // "pipe", "sysv-msg", ...
	Impl       string  `json:"impl"`       // "ipclab", "std" (Go standard library) or "raw"
	Scenario   string  `json:"scenario"`   // "pingpong", "stream", ...
	Size       int     `json:"size"`       // message size in bytes
	Wait       string  `json:"wait"`       // "poller", "kernel" or "spin"
	Pin        string  `json:"pin"`        // "same", "cross" or "none"
	Iterations int     `json:"iterations"` // messages (pingpong: round trips) timed
	RTT        Latency `json:"rtt_ns"`     // round-trip time distribution, nanoseconds
	// BytesPerSec and MsgsPerSec are the payload throughput in one direction.
	BytesPerSec float64 `json:"bytes_per_sec"`
	MsgsPerSec  float64 `json:"msgs_per_sec"`
	// EBPF is present when the run was traced with --ebpf.
	EBPF *EBPF `json:"ebpf,omitempty"`
	// QoS is present in (and only in) results of scenario "qos": a stream with
	// quality of service, shaped at the peer (the source) and played out at the
	// parent (the sink). In those results RTT is the distribution of the one-way
	// delay from sending a unit to playing it out, not a round trip; Iterations
	// counts the units played out; the throughput is their payload over the time
	// from the first unit sent to the last played out.
	QoS *QoS `json:"qos,omitempty"`
}

// QoS is what a "qos" result measured: the contract the source offered (and the
// sink admitted), the workload it sent, and how the stream kept the contract. Rates
// are bytes per second and sizes bytes on the wire, unit headers included; times are
// nanoseconds.
type QoS struct {
	// Mode is the stream's transmission mode ("isochronous").
	Mode string `json:"mode"`
	// UnitBytes is one unit on the wire: the payload (Result.Size) and its header.
	UnitBytes int `json:"unit_bytes"`
	// ContractRate and Depth are the token bucket the source shapes to.
	ContractRate float64 `json:"contract_rate"`
	Depth        int     `json:"depth"`
	// MinDelayNs and MaxDelayNs bound the play-out delay of an isochronous stream.
	MinDelayNs float64 `json:"min_delay_ns"`
	MaxDelayNs float64 `json:"max_delay_ns"`
	// Workload: on/off bursts offered at PeakRate, OfferedRate on average, drawn
	// from Seed (the same seed offers the same units at the same times).
	Workload    string  `json:"workload"`
	PeakRate    float64 `json:"peak_rate"`
	OfferedRate float64 `json:"offered_rate"`
	Seed        uint64  `json:"seed"`
	// Rounds is how many streams (--rounds) the result merges: counts add up,
	// MaxBurst and JitterP99Ns are the worst round's, the delays come from the
	// merged distribution, and Series is the first round's. 0 or 1: one stream.
	Rounds int `json:"rounds,omitempty"`
	// Sent units the source sent, Received the sink played out, Lost never arrived
	// (Sent − Received), Late arrived or were played out after MaxDelayNs (as the
	// sink marked them; they are still played out), Beyond the sink's policer
	// found beyond the contract (arrivals bunched by more than its tolerance).
	Sent     int `json:"sent"`
	Received int `json:"received"`
	Lost     int `json:"lost"`
	Late     int `json:"late"`
	Beyond   int `json:"beyond"`
	// SpanNs is the time from the first unit sent to the last one; LongRunRate the
	// rate of the units' send times over it, RateRatio that over ContractRate.
	SpanNs      float64 `json:"span_ns"`
	LongRunRate float64 `json:"long_run_rate"`
	RateRatio   float64 `json:"rate_ratio"`
	// MaxBurst is the largest excess over ContractRate in any window of send times
	// (at most Depth for a shaped stream); BucketBreaches the units a replay of the
	// token bucket over the send times found without tokens (QOS-01), and
	// PlayoutBreaches the units played out outside [MinDelayNs, MaxDelayNs] without
	// being late (QOS-03).
	MaxBurst        float64 `json:"max_burst"`
	BucketBreaches  int     `json:"bucket_breaches"`
	PlayoutBreaches int     `json:"playout_breaches"`
	// DelayP50Ns and DelayP99Ns are of the delay from sending to play-out,
	// JitterP99Ns of its change between consecutive units.
	DelayP50Ns  float64 `json:"delay_p50_ns"`
	DelayP99Ns  float64 `json:"delay_p99_ns"`
	JitterP99Ns float64 `json:"jitter_p99_ns"`
	// IntervalNs is the length of Series' intervals (the sink's monitoring interval).
	IntervalNs float64    `json:"interval_ns"`
	Series     []QoSPoint `json:"series"`
}

// QoSPoint is one interval of a QoS time series, as the sink reported it.
type QoSPoint struct {
	// TS is the end of the interval, in seconds after the first unit was sent.
	TS float64 `json:"t_s"`
	// Units played out in the interval, at Rate bytes per second, with delays (send
	// to play-out) DelayP50Ns and DelayP99Ns (0 when no unit was played out).
	Units      int     `json:"units"`
	Rate       float64 `json:"rate"`
	DelayP50Ns float64 `json:"delay_p50_ns"`
	DelayP99Ns float64 `json:"delay_p99_ns"`
	// Late and Lost units seen in the interval.
	Late int `json:"late,omitempty"`
	Lost int `json:"lost,omitempty"`
}

// Latency summarises a distribution of times in nanoseconds.
type Latency struct {
	Min  float64 `json:"min"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// EBPF is what the kernel's tracepoints saw during a result's run.
type EBPF struct {
	// Probes says whether probes were attached while this result was measured.
	Probes bool `json:"probes"`
	// OverheadRatio is the result's p50 with probes over its p50 without (1.3: probes
	// made it 30% slower): ipcbench measures every round untraced and traced,
	// interleaved, and this is the median of the rounds' ratios. Zero when not
	// measured. (Results written before the rounds were interleaved hold a ratio of
	// means from one traced pass after the untraced one.)
	OverheadRatio float64 `json:"overhead_ratio,omitempty"`
	// OverheadMin and OverheadMax are the lowest and highest of the rounds' ratios,
	// over OverheadRounds rounds: the spread of OverheadRatio. Zero (absent) when not
	// measured.
	OverheadMin    float64 `json:"overhead_min,omitempty"`
	OverheadMax    float64 `json:"overhead_max,omitempty"`
	OverheadRounds int     `json:"overhead_rounds,omitempty"`
	// Breakdown splits the time spent in system calls, as means per operation.
	Breakdown *Breakdown `json:"breakdown,omitempty"`
	// Histograms are the log2 distributions the probes recorded for the case's
	// system calls over all its traced rounds: one per metric ("call", "oncpu",
	// "offcpu_peer", "offcpu_runq", "ready_wait", "bytes"), empty ones left out.
	Histograms []Histogram `json:"histograms,omitempty"`
	// RoundHeatmap is the time in call of every traced round, a column per round
	// in the order they ran: for runs of several rounds (--rounds), how the
	// distribution drifted over the run. Nil with fewer than two traced rounds.
	RoundHeatmap *Heatmap `json:"round_heatmap,omitempty"`
	// ProbeRunNs is the mean time of one probe run and ProbeNsPerCall the probes'
	// time per traced system call, measured when the probes were loaded (BPF run-time
	// statistics over a calibration of 64 B pipe writes and reads in ipcbench itself,
	// ProbeRunsPerCall runs per call): what the probes add to the figures taken with
	// them. An upper bound (the statistics' own clock reads are in it); not
	// subtracted from anything. Zero when not measured.
	ProbeRunNs       float64 `json:"probe_run_ns,omitempty"`
	ProbeRunsPerCall float64 `json:"probe_runs_per_call,omitempty"`
	ProbeNsPerCall   float64 `json:"probe_ns_per_call,omitempty"`
	// CopyCostNsPerByte and FixedCostNs fit on-CPU syscall time per operation to
	// fixed + copy·bytes over a size sweep. Zero when there was no sweep.
	CopyCostNsPerByte float64 `json:"copy_cost_ns_per_byte,omitempty"`
	FixedCostNs       float64 `json:"fixed_cost_ns,omitempty"`
}

// Breakdown is the mean time per operation spent in the primitive's system calls,
// split into running and blocked time, in nanoseconds.
type Breakdown struct {
	SyscallNs    float64 `json:"syscall_ns"`     // total time inside the system calls
	OnCPUNs      float64 `json:"oncpu_ns"`       // running: copies, locks, wake-ups
	OffCPUPeerNs float64 `json:"offcpu_peer_ns"` // blocked waiting for the peer
	OffCPURunqNs float64 `json:"offcpu_runq_ns"` // woken, waiting for a CPU
	// ReadyWaitNs is the readiness wait of poller-mode I/O, per system call: the time
	// from a call that returned EAGAIN to the next successful call on the same
	// process, descriptor and operation, summed and divided by the calls. It is
	// spent outside the system calls (in epoll_wait, often on another thread, and in
	// the runtime's scheduling), so it is not part of SyscallNs; the caller waited
	// for it all the same. Zero for calls that block in the kernel (their wait is
	// OffCPUPeerNs) and for calls that never found their descriptor unready.
	ReadyWaitNs float64 `json:"ready_wait_ns,omitempty"`
	// ReadyWaits counts the readiness waits the mean is made of (the EAGAINs
	// followed by a success), over all the traced rounds.
	ReadyWaits uint64 `json:"ready_waits,omitempty"`
}

// Histogram is a log2 distribution recorded by the eBPF probes: Buckets[0] counts the
// values 0 and 1, Buckets[k] for k ≥ 1 the values in [2^k, 2^(k+1)-1]; trailing empty
// buckets are left out.
type Histogram struct {
	// Metric is what was measured: "call" (time in the system call), "oncpu",
	// "offcpu_peer" (blocked, waiting for the peer), "offcpu_runq" (waiting for a
	// CPU), "ready_wait" (poller mode: from EAGAIN to the next success) or "bytes"
	// (per successful call).
	Metric string `json:"metric"`
	// Unit is "ns" or "bytes".
	Unit    string   `json:"unit"`
	Buckets []uint64 `json:"buckets"`
	// Count is the number of values (the sum of Buckets), Sum their exact sum.
	Count uint64 `json:"count"`
	Sum   uint64 `json:"sum"`
	// P50 and P99 are the upper bounds of the buckets that hold the median and the
	// 99th percentile: a log2 histogram knows no more.
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// HistogramMetrics lists the metrics a Histogram can hold, in the order reports
// show them, with their titles.
var HistogramMetrics = []struct{ Metric, Title string }{
	{"call", "time in call"},
	{"oncpu", "on-CPU"},
	{"offcpu_peer", "blocked, waiting for the peer"},
	{"offcpu_runq", "waiting for a CPU"},
	{"ready_wait", "readiness wait (poller, after EAGAIN)"},
	{"bytes", "bytes per call"},
}

// BucketRange returns the smallest and largest value bucket k of a Histogram counts
// (for k ≥ 1, [2^k, 2^(k+1)-1]; for k = 0, [0, 1]).
func BucketRange(k int) (lo, hi float64) {
	if k <= 0 {
		return 0, 1
	}
	return math.Ldexp(1, k), math.Ldexp(1, k+1) - 1
}

// validate says what is wrong with h ("" when nothing is).
func (h Histogram) validate() string {
	known := false
	for _, m := range HistogramMetrics {
		known = known || m.Metric == h.Metric
	}
	var n uint64
	for _, c := range h.Buckets {
		n += c
	}
	switch {
	case !known:
		return fmt.Sprintf("histogram of unknown metric %q", h.Metric)
	case len(h.Buckets) > 64:
		return fmt.Sprintf("histogram %s: %d buckets, at most 64", h.Metric, len(h.Buckets))
	case n != h.Count:
		return fmt.Sprintf("histogram %s: buckets add up to %d, count is %d", h.Metric, n, h.Count)
	case h.P50 < 0 || h.P99 < h.P50 || math.IsNaN(h.P50) || math.IsInf(h.P99, 0):
		return fmt.Sprintf("histogram %s: p50 %v and p99 %v out of order", h.Metric, h.P50, h.P99)
	}
	return ""
}

// Key identifies a Result's row in a comparison: everything but the measurement.
type Key struct {
	Scenario  string
	Size      int
	Primitive string
	Impl      string
	Wait      string
	Pin       string
}

// Key returns r's identifying fields.
func (r Result) Key() Key {
	return Key{Scenario: r.Scenario, Size: r.Size, Primitive: r.Primitive, Impl: r.Impl, Wait: r.Wait, Pin: r.Pin}
}

// Series is the key without scenario and size: one line in a chart.
func (k Key) Series() string {
	s := k.Primitive + "/" + k.Impl
	if k.Wait != "" {
		s += "/" + k.Wait
	}
	if k.Pin != "" {
		s += "/" + k.Pin
	}
	return s
}

// Decode reads one ipcbench JSON document and checks it. Unknown fields are ignored.
func Decode(r io.Reader) (File, error) {
	var f File
	dec := json.NewDecoder(r)
	if err := dec.Decode(&f); err != nil {
		return File{}, fmt.Errorf("decoding ipcbench JSON: %w", err)
	}
	if err := f.Validate(); err != nil {
		return File{}, err
	}
	return f, nil
}

// ErrInvalid is wrapped by the errors Validate returns.
var ErrInvalid = errors.New("invalid ipcbench results")

// Validate reports the first result that cannot be placed in a comparison: one without
// a primitive, implementation or scenario, with a negative size or iteration count,
// or with a negative or non-finite measurement.
func (f File) Validate() error {
	for i, r := range f.Results {
		bad := func(why string) error {
			return fmt.Errorf("%w: result %d (%s %s %s size %d): %s", ErrInvalid, i, r.Primitive, r.Impl, r.Scenario, r.Size, why)
		}
		switch {
		case r.Primitive == "":
			return bad("no primitive")
		case r.Impl == "":
			return bad("no impl")
		case r.Scenario == "":
			return bad("no scenario")
		case r.Size < 0:
			return bad("negative size")
		case r.Iterations < 0:
			return bad("negative iterations")
		}
		vals := []float64{r.RTT.Min, r.RTT.P50, r.RTT.P90, r.RTT.P99, r.RTT.P999, r.RTT.Max, r.RTT.Mean, r.BytesPerSec, r.MsgsPerSec}
		if e := r.EBPF; e != nil {
			vals = append(vals, e.OverheadRatio, e.OverheadMin, e.OverheadMax, float64(e.OverheadRounds), e.CopyCostNsPerByte,
				e.ProbeRunNs, e.ProbeRunsPerCall, e.ProbeNsPerCall)
			if b := e.Breakdown; b != nil {
				vals = append(vals, b.SyscallNs, b.OnCPUNs, b.OffCPUPeerNs, b.OffCPURunqNs, b.ReadyWaitNs)
			}
			for _, h := range e.Histograms {
				if why := h.validate(); why != "" {
					return bad(why)
				}
			}
			if h := e.RoundHeatmap; h != nil {
				if why := h.validate(); why != "" {
					return bad(why)
				}
			}
		}
		for _, v := range vals {
			if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				return bad(fmt.Sprintf("measurement %v out of range", v))
			}
		}
		if err := r.validateQoS(); err != "" {
			return bad(err)
		}
	}
	return nil
}

// ScenarioQoS is the scenario whose results carry a QoS record.
const ScenarioQoS = "qos"

// validateQoS says what is wrong with r's QoS record ("" when nothing is): a qos
// result must have one and other results none; its contract must be a real one, its
// counts must add up, and its series must run forward in time.
func (r Result) validateQoS() string {
	q := r.QoS
	switch {
	case r.Scenario == ScenarioQoS && q == nil:
		return "a qos result without its qos record"
	case q == nil:
		return ""
	case r.Scenario != ScenarioQoS:
		return "a qos record in a result of another scenario"
	case !(q.ContractRate > 0) || q.Depth <= 0 || q.UnitBytes <= 0:
		return "qos: no contract (rate, depth and unit size must be positive)"
	case q.MaxDelayNs < q.MinDelayNs:
		return "qos: maximum delay below the minimum"
	case q.Sent < 0 || q.Received < 0 || q.Lost < 0 || q.Late < 0 || q.Beyond < 0 ||
		q.BucketBreaches < 0 || q.PlayoutBreaches < 0 || q.Rounds < 0:
		return "qos: negative count"
	case q.Received > q.Sent:
		return fmt.Sprintf("qos: %d units received of %d sent", q.Received, q.Sent)
	}
	vals := []float64{q.ContractRate, q.MinDelayNs, q.MaxDelayNs, q.PeakRate, q.OfferedRate, q.SpanNs, q.LongRunRate,
		q.RateRatio, q.MaxBurst, q.DelayP50Ns, q.DelayP99Ns, q.JitterP99Ns, q.IntervalNs}
	prev := math.Inf(-1)
	for i, p := range q.Series {
		if p.Units < 0 || p.Late < 0 || p.Lost < 0 {
			return fmt.Sprintf("qos: negative count in interval %d", i)
		}
		if !(p.TS >= prev) {
			return fmt.Sprintf("qos: interval %d ends at %vs, before the one before it", i, p.TS)
		}
		prev = p.TS
		vals = append(vals, p.TS, p.Rate, p.DelayP50Ns, p.DelayP99Ns)
	}
	for _, v := range vals {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Sprintf("qos: measurement %v out of range", v)
		}
	}
	return ""
}

// Load reads the ipcbench JSON file at path. The run is named after the file.
func Load(path string) (Run, error) {
	name, f, err := loadFile(path, Decode)
	return Run{Name: name, File: f}, err
}

// loadFile decodes the file at path with decode, and names what it read after the
// file, without ".json".
func loadFile[T any](path string, decode func(io.Reader) (T, error)) (string, T, error) {
	var zero T
	fh, err := os.Open(path)
	if err != nil {
		return "", zero, err
	}
	defer fh.Close()
	v, err := decode(fh)
	if err != nil {
		return "", zero, fmt.Errorf("%s: %w", path, err)
	}
	return strings.TrimSuffix(filepath.Base(path), ".json"), v, nil
}

// LoadFiles loads every path in order. Runs may share a name; Compare and HTML then
// label the later ones "name#2", "name#3"...
func LoadFiles(paths ...string) ([]Run, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("%w: no result files given", ErrInvalid)
	}
	runs := make([]Run, 0, len(paths))
	for _, p := range paths {
		r, err := Load(p)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// labels returns the runs' display names: Name, else the hostname, else "run N",
// made unique with "#N" suffixes.
func labels(runs []Run) []string {
	out := make([]string, len(runs))
	used := make(map[string]bool)
	for i, r := range runs {
		base := r.Name
		if base == "" {
			base = r.Machine.Hostname
		}
		if base == "" {
			base = fmt.Sprintf("run %d", i+1)
		}
		name := base
		for n := 2; used[name]; n++ {
			name = fmt.Sprintf("%s#%d", base, n)
		}
		used[name] = true
		out[i] = name
	}
	return out
}
