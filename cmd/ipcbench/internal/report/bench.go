package report

import (
	"io"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// WriteBench writes run's results in Go benchmark format, one line per result, so
// that per-machine files compare with `benchstat debian12.txt ubuntu2404.txt` and a
// file's implementations with `benchstat -col /impl FILE`. The machine is described in
// comment lines, which benchstat ignores; WriteBench writes no configuration lines,
// because benchstat puts results whose configuration differs in separate tables.
//
// A line is named Benchmark<Scenario>/prim=P/impl=I/wait=W/pin=X/size=N and carries:
// ns/op (pingpong: mean round trip; otherwise the time per message), p50-ns/op and
// p99-ns/op (round-trip percentiles), MB/s, msgs/s, and with eBPF data
// syscall-ns/op, oncpu-ns/op, offcpu-peer-ns/op, offcpu-runq-ns/op and copy-ns/B.
func WriteBench(w io.Writer, run Run) error {
	ew := &errWriter{w: w}
	name := run.Name
	if name == "" {
		name = labels([]Run{run})[0]
	}
	writeBench(ew, name, run)
	return ew.err
}

func writeBench(ew *errWriter, name string, run Run) {
	m := run.Machine
	ew.printf("# ipcbench results for %s: kernel %s; os %s; cpu %s; cpus %s; virtualization %s; go %s; ipclab %s\n",
		oneLine(name), dash(oneLine(m.Kernel)), dash(oneLine(m.OS)), dash(oneLine(m.CPUModel)), itoa(m.CPUs),
		dash(oneLine(m.Virtualization)), dash(oneLine(m.GoVersion)), dash(oneLine(m.IpclabVersion)))
	var b strings.Builder
	for _, r := range run.Results {
		b.Reset()
		b.WriteString("Benchmark")
		b.WriteString(benchToken(capitalize(r.Scenario)))
		b.WriteString("/prim=" + benchToken(r.Primitive))
		b.WriteString("/impl=" + benchToken(r.Impl))
		if r.Wait != "" {
			b.WriteString("/wait=" + benchToken(r.Wait))
		}
		if r.Pin != "" {
			b.WriteString("/pin=" + benchToken(r.Pin))
		}
		b.WriteString("/size=" + strconv.Itoa(r.Size))
		b.WriteString(" \t")
		b.WriteString(strconv.Itoa(max(r.Iterations, 1)))
		val := func(v float64, unit string) {
			if v > 0 {
				b.WriteString(" \t")
				b.WriteString(benchValue(v))
				b.WriteString(" ")
				b.WriteString(unit)
			}
		}
		perOp := r.RTT.Mean
		if perOp <= 0 {
			perOp = r.RTT.P50
		}
		if r.Scenario != "pingpong" && r.MsgsPerSec > 0 {
			perOp = 1e9 / r.MsgsPerSec
		}
		val(perOp, "ns/op")
		val(r.RTT.P50, "p50-ns/op")
		val(r.RTT.P99, "p99-ns/op")
		val(r.BytesPerSec/1e6, "MB/s")
		val(r.MsgsPerSec, "msgs/s")
		if e := r.EBPF; e != nil {
			if bd := e.Breakdown; bd != nil {
				val(bd.SyscallNs, "syscall-ns/op")
				val(bd.OnCPUNs, "oncpu-ns/op")
				val(bd.OffCPUPeerNs, "offcpu-peer-ns/op")
				val(bd.OffCPURunqNs, "offcpu-runq-ns/op")
			}
			val(e.CopyCostNsPerByte, "copy-ns/B")
		}
		b.WriteString("\n")
		ew.write(b.String())
	}
}

// benchValue formats a positive measurement compactly: whole numbers from 1000 up,
// else four significant digits.
func benchValue(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	}
	p := math.Pow(10, 3-math.Floor(math.Log10(v)))
	return strconv.FormatFloat(math.Round(v*p)/p, 'f', -1, 64)
}

// benchToken makes s usable inside a benchmark name: no spaces, no '/' (which
// separates sub-benchmarks) and no '=' (which separates key and value).
func benchToken(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || r == '/' || r == '=' || !unicode.IsPrint(r) {
			return '_'
		}
		return r
	}, s)
}

// capitalize upper-cases the first letter, as benchmark names need after "Benchmark".
func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// oneLine replaces line breaks, so that a value cannot start a line of its own.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
