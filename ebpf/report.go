package ebpf

import (
	"math"
	"time"
)

// NumBuckets is the number of log2 buckets in a Histogram. Bucket 0 holds the values 0
// and 1; bucket k ≥ 1 holds [2^k, 2^(k+1)-1]; the last bucket also holds everything
// larger.
const NumBuckets = 40

// Metric names one of the histograms kept per primitive and operation.
type Metric int

// The metrics. Durations are in nanoseconds, sizes in bytes.
const (
	// MetricCall is the time from entering the system call to leaving it.
	MetricCall Metric = iota
	// MetricOnCPU is the part of the call spent running: copying, locking, waking
	// the peer. Recorded for every call.
	MetricOnCPU
	// MetricOffPeer is the part spent asleep, from being switched out blocked until
	// being woken: waiting for the peer. Recorded only for calls that blocked.
	MetricOffPeer
	// MetricOffCPU is the part spent runnable but not running: from the wake-up (or a
	// preemption) to being switched back in. Recorded only for calls that were
	// switched out.
	MetricOffCPU
	// MetricBytes is the bytes moved by a successful call.
	MetricBytes
	// MetricReadyWait is, for descriptor I/O, the time from a call that returned
	// EAGAIN to the next successful call on the same process, descriptor and
	// operation: the readiness wait of poller-mode I/O.
	MetricReadyWait
	// NumMetrics is the number of metrics.
	NumMetrics
)

var metricNames = [NumMetrics]string{"call", "oncpu", "offcpu_peer", "offcpu_runq", "bytes", "ready_wait"}

var metricTitles = [NumMetrics]string{
	"time in call", "on-CPU time", "off-CPU waiting for the peer", "off-CPU waiting for a CPU",
	"bytes per call", "readiness wait after EAGAIN",
}

// String returns the metric's name as used in JSON and Prometheus output ("call",
// "oncpu", "offcpu_peer", "offcpu_runq", "bytes", "ready_wait").
func (m Metric) String() string {
	if m < 0 || m >= NumMetrics {
		return "unknown"
	}
	return metricNames[m]
}

// Title returns a human description of the metric.
func (m Metric) Title() string {
	if m < 0 || m >= NumMetrics {
		return "unknown"
	}
	return metricTitles[m]
}

// Unit returns "ns" for durations and "bytes" for MetricBytes.
func (m Metric) Unit() string {
	if m == MetricBytes {
		return "bytes"
	}
	return "ns"
}

// Histogram is a log2 histogram of one metric.
type Histogram struct {
	// Buckets[k] counts the values in [BucketBounds(k)].
	Buckets [NumBuckets]uint64
	// Sum is the sum of the recorded values (exact, not bucketed).
	Sum uint64
}

// BucketBounds returns the smallest and largest value counted in bucket k. The last
// bucket is open-ended: its hi is math.MaxUint64.
func BucketBounds(k int) (lo, hi uint64) {
	switch {
	case k <= 0:
		return 0, 1
	case k >= NumBuckets-1:
		return 1 << (NumBuckets - 1), math.MaxUint64
	default:
		return 1 << k, 1<<(k+1) - 1
	}
}

// Count returns the number of values recorded.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Buckets {
		n += c
	}
	return n
}

// Mean returns Sum/Count, or 0 for an empty histogram.
func (h *Histogram) Mean() float64 {
	n := h.Count()
	if n == 0 {
		return 0
	}
	return float64(h.Sum) / float64(n)
}

// Quantile returns the upper bound of the bucket that holds the q-th quantile
// (0 < q ≤ 1), or 0 for an empty histogram: a log2 histogram knows no more. In the
// open-ended last bucket it returns that bucket's lower bound.
func (h *Histogram) Quantile(q float64) uint64 {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for k, c := range h.Buckets {
		seen += c
		if seen >= rank {
			_, hi := BucketBounds(k)
			if k == NumBuckets-1 {
				lo, _ := BucketBounds(k)
				return lo
			}
			return hi
		}
	}
	return 0
}

// Add adds o's counts and sum to h: the histogram of both sets of values.
func (h *Histogram) Add(o *Histogram) {
	for k := range h.Buckets {
		h.Buckets[k] += o.Buckets[k]
	}
	h.Sum += o.Sum
}

func (h *Histogram) sub(o *Histogram) {
	for k := range h.Buckets {
		h.Buckets[k] -= min(h.Buckets[k], o.Buckets[k])
	}
	h.Sum -= min(h.Sum, o.Sum)
}

// Row is what the probes saw for one primitive and operation.
type Row struct {
	// Primitive is a classified kind ("pipe", "fifo", "unix-stream", "unix-dgram",
	// "unix-seqpacket", "tcp", "udp", "inet-other", "posixmq", "sysv-msg", "sysv-sem",
	// "epoll") or a label registered with RegisterFD/RegisterSysV.
	Primitive string
	// Op is the operation: "read" (read, readv, preadv2), "write" (write, writev,
	// pwritev2), "send" (sendto, sendmsg, sendmmsg), "recv" (recvfrom, recvmsg,
	// recvmmsg), "msgsnd", "msgrcv", "semop" (semop, semtimedop), "mq_send",
	// "mq_recv", "epoll_wait" (epoll_wait, epoll_pwait, epoll_pwait2), "splice",
	// "vmsplice".
	Op string
	// Calls counts the completed calls, Errors those that failed, EAGAIN those that
	// failed because they would block (EAGAIN, or ENOMSG for msgrcv); Bytes sums the
	// bytes of the successful calls.
	Calls, Errors, EAGAIN, Bytes uint64
	// Hist holds one histogram per Metric.
	Hist [NumMetrics]Histogram
}

// Report is a snapshot of the probes' counters since they were loaded or last reset.
type Report struct {
	// Attach is how the probes are attached: "tp_btf", "raw_tp" or "tracepoint".
	Attach string
	// Since is when counting started (Load or the last Reset); Taken is when the
	// snapshot was read.
	Since, Taken time.Time
	// Rows holds one entry per primitive and operation seen, sorted by primitive
	// then operation.
	Rows []Row
	// SampleEvery is Options.SampleEvery (0 or 1: every call was traced). When it is
	// N > 1, the counts and histograms are of the sampled calls, about 1 in N: they
	// are not scaled; multiply counts by N to estimate all calls.
	SampleEvery int
}

// Find returns the row for primitive and op, or nil.
func (r *Report) Find(primitive, op string) *Row {
	for i := range r.Rows {
		if r.Rows[i].Primitive == primitive && r.Rows[i].Op == op {
			return &r.Rows[i]
		}
	}
	return nil
}

// Sub returns what happened between prev and r, two snapshots of the same probes
// (prev taken first): counts and histograms are subtracted row by row. It is how an
// interval report is made without resetting the maps.
func (r *Report) Sub(prev *Report) *Report {
	out := &Report{Attach: r.Attach, Since: prev.Taken, Taken: r.Taken, SampleEvery: r.SampleEvery}
	for _, row := range r.Rows {
		d := row
		if p := prev.Find(row.Primitive, row.Op); p != nil {
			d.Calls -= min(d.Calls, p.Calls)
			d.Errors -= min(d.Errors, p.Errors)
			d.EAGAIN -= min(d.EAGAIN, p.EAGAIN)
			d.Bytes -= min(d.Bytes, p.Bytes)
			for m := range d.Hist {
				d.Hist[m].sub(&p.Hist[m])
			}
		}
		if d.Calls > 0 {
			out.Rows = append(out.Rows, d)
		}
	}
	return out
}
