package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// What Plan refuses before anything runs: a configuration that makes no sense, a size
// that no chosen transport can carry, and a plan whose buffers would not fit in this
// machine's memory. A size that only some transports cannot carry skips those cases
// with the limit named, instead.

// Upper bounds of a configuration, so that a typo cannot start something that never
// ends or overflows a timeout.
const (
	// MaxPhase bounds Config.Duration and Config.Warmup.
	MaxPhase = 24 * time.Hour
	// MaxPeers bounds Config.Peers: each peer is a process.
	MaxPeers = 1024
)

// validate checks cfg's values before anything else looks at them.
func validate(cfg Config) error {
	switch {
	case cfg.Iters < 0:
		return fmt.Errorf("iterations %d: must be positive (0: as many as fit in the duration)", cfg.Iters)
	case cfg.Duration < 0:
		return fmt.Errorf("duration %v: must be positive", cfg.Duration)
	case cfg.Duration > MaxPhase:
		return fmt.Errorf("duration %v: must be at most %v", cfg.Duration, MaxPhase)
	case cfg.Warmup < 0:
		return fmt.Errorf("warm-up %v: must not be negative", cfg.Warmup)
	case cfg.Warmup > MaxPhase:
		return fmt.Errorf("warm-up %v: must be at most %v", cfg.Warmup, MaxPhase)
	case cfg.Rounds < 0:
		return fmt.Errorf("rounds %d: must be positive", cfg.Rounds)
	case cfg.Peers < 0 || cfg.Peers > MaxPeers:
		return fmt.Errorf("peers %d: must be between 1 and %d", cfg.Peers, MaxPeers)
	case cfg.Timeout < 0:
		return fmt.Errorf("timeout %v: must be positive", cfg.Timeout)
	case len(cfg.Sizes) == 0:
		return errors.New("no message sizes given")
	}
	for _, size := range cfg.Sizes {
		if size <= 0 {
			return fmt.Errorf("message size %d: must be positive", size)
		}
	}
	return nil
}

// sizeLimiter is implemented by transports whose MaxSize comes from a named limit, so
// that a skipped or refused size says which limit cut it.
type sizeLimiter interface {
	// sizeLimit names the limit MaxSize reports and the file it is read from ("" for
	// a fixed limit).
	sizeLimit() (name, source string)
}

func (sysvMsgTransport) sizeLimit() (string, string) { return "msgmax", "/proc/sys/kernel/msgmax" }

func (posixMQTransport) sizeLimit() (string, string) {
	return "msgsize_max", "/proc/sys/fs/mqueue/msgsize_max"
}

func (mailboxTransport) sizeLimit() (string, string) {
	return "msgsize_max less the mailbox frame header", "/proc/sys/fs/mqueue/msgsize_max"
}

func (t sockTransport) sizeLimit() (string, string) {
	if t.family == unix.AF_INET {
		return "the largest UDP payload over IPv4", ""
	}
	return "wmem_default less 512 bytes of per-message overhead", "/proc/sys/net/core/wmem_default"
}

func (shmTransport) sizeLimit() (string, string) {
	return "half the shared-memory ring less its header", ""
}

func (doorTransport) sizeLimit() (string, string) { return "the benchmark's door buffer", "" }

// sizeCut says why t cannot carry size-byte messages, whose limit is max.
func sizeCut(t Transport, size, max int) error {
	name, source := "its maximum message size", ""
	if sl, ok := t.(sizeLimiter); ok {
		name, source = sl.sizeLimit()
	}
	if source != "" {
		return fmt.Errorf("%s exceeds %s %d (%s)", FormatSize(size), name, max, source)
	}
	return fmt.Errorf("%s exceeds %s %d", FormatSize(size), name, max)
}

// memoryShare is the share of MemAvailable (1/memoryShare) a plan may use.
const memoryShare = 2

// caseMemory estimates the most memory one case holds: the parent's message and
// receive buffers and one buffer in each peer. The parent's share counts twice: the
// previous case's buffers are garbage the collector frees only once the heap has
// doubled (GOGC=100). Cases run one after another, and every round allocates afresh,
// so neither the number of cases nor Rounds adds to it.
func caseMemory(size, peers int) (need float64, parts string) {
	parts = "2 buffers in this process, counted twice for the garbage collector, and 1 in the peer"
	if peers > 1 {
		parts = fmt.Sprintf("2 buffers in this process, counted twice for the garbage collector, and 1 in each of %d peers", peers)
	}
	return float64(size) * float64(2*2+peers), parts
}

// checkMemory refuses a plan whose largest case would need more than 1/memoryShare of
// MemAvailable.
func checkMemory(cfg Config, cases []Case) error {
	avail, ok := memAvailable()
	if !ok {
		return nil // no /proc/meminfo: nothing to judge by
	}
	limit := float64(avail) / memoryShare
	for _, c := range cases {
		peers := 1
		if c.Params.Scenario == ScenarioFanIn {
			peers = cfg.Peers
			if peers <= 0 {
				peers = DefaultPeers
			}
		}
		need, parts := caseMemory(c.Params.Size, peers)
		if c.Params.Scenario == ScenarioQoS {
			need += qosMemory(cfg)
			parts += ", and the stream's log of every unit"
		}
		if need > limit {
			return fmt.Errorf("size %s: %s needs about %s of memory (%s), more than 1/%d of MemAvailable %s (/proc/meminfo)",
				FormatSize(c.Params.Size), c.Params.Primitive, formatBytes(need), parts, memoryShare, formatBytes(float64(avail)))
		}
	}
	return nil
}

// memAvailable returns MemAvailable from /proc/meminfo, in bytes.
func memAvailable() (uint64, bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return 0, false
		}
		return kb << 10, true
	}
	return 0, false
}

// formatBytes prints a byte count with a binary unit and one decimal.
func formatBytes(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := 0
	for ; b >= 1024 && i < len(units)-1; i++ {
		b /= 1024
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", b)
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}

// sizeCuts collects, per size, why transports could not carry it.
type sizeCuts map[int][]string

func (sc sizeCuts) add(t Transport, size int, why error) {
	sc[size] = append(sc[size], t.Name()+": "+why.Error())
}

// refuse returns an error for the first size in sizes that no transport of the plan
// carries although some would have run it but for their limits (counts holds the
// cases planned per size).
func (sc sizeCuts) refuse(sizes []int, counts map[int]int) error {
	for _, size := range sizes {
		if counts[size] == 0 && len(sc[size]) > 0 {
			return fmt.Errorf("size %s: no chosen primitive can carry it: %s", FormatSize(size), strings.Join(sc[size], "; "))
		}
	}
	return nil
}

// nothingToRun explains an empty plan.
func nothingToRun(cfg Config, skipped map[string]error) error {
	var why []string
	for _, name := range sortedKeys(skipped) {
		why = append(why, name+": "+skipped[name].Error())
	}
	msg := fmt.Sprintf("nothing to run: no available primitive runs scenario %s", cfg.Scenario)
	if len(cfg.Primitives) > 0 {
		msg = fmt.Sprintf("nothing to run in scenario %s", cfg.Scenario)
	}
	if len(why) > 0 {
		msg += ": " + strings.Join(why, "; ")
	}
	return errors.New(msg)
}

// unsupported explains why t does not run scenario, naming the scenarios it runs.
func unsupported(t Transport, scenario string) error {
	var its []string
	for _, sc := range Scenarios {
		if supports(t, sc) {
			its = append(its, sc)
		}
	}
	if len(its) == 0 {
		return fmt.Errorf("does not run scenario %s", scenario)
	}
	return fmt.Errorf("does not run scenario %s; it runs %s (use --scenario %s)", scenario, strings.Join(its, ", "), its[0])
}

// waitsMissing says that t's ipclab implementation offers none of the wait strategies
// asked for.
func waitsMissing(t Transport, asked []ipc.WaitStrategy) error {
	return fmt.Errorf("offers none of the wait strategies %s (it offers %s)", joinWaits(asked), joinWaits(t.Waits()))
}

func joinWaits(ws []ipc.WaitStrategy) string {
	var names []string
	for _, w := range ws {
		names = append(names, w.String())
	}
	return strings.Join(names, ",")
}

// reportSkips writes one line per skipped transport or size, in a stable order.
func reportSkips(w io.Writer, skipped map[string]error) {
	for _, name := range sortedKeys(skipped) {
		fmt.Fprintf(w, "%s: %v; skipped\n", name, skipped[name])
	}
}

func sortedKeys(m map[string]error) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
