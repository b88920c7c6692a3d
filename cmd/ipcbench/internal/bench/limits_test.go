package bench

import (
	"math"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipclab/ipclab/ipc"
)

// TestPlanRefusesBadConfig: every value that makes no sense is refused by Plan, before
// a transport is even looked at, with a one-line message.
func TestPlanRefusesBadConfig(t *testing.T) {
	ok := Config{Scenario: ScenarioPingPong, Primitives: []string{"pipe"}, Sizes: []int{64}, Duration: time.Second}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"iters<0", func(c *Config) { c.Iters = -5 }, "iterations -5"},
		{"duration<0", func(c *Config) { c.Duration = -time.Second }, "duration -1s"},
		{"duration too long", func(c *Config) { c.Duration = MaxPhase + 1 }, "at most"},
		{"warmup<0", func(c *Config) { c.Warmup = -time.Second }, "warm-up -1s"},
		{"rounds<0", func(c *Config) { c.Rounds = -3 }, "rounds -3"},
		{"peers<0", func(c *Config) { c.Peers = -1 }, "peers -1"},
		{"peers too many", func(c *Config) { c.Peers = MaxPeers + 1 }, "peers 1025"},
		{"timeout<0", func(c *Config) { c.Timeout = -time.Second }, "timeout"},
		{"no sizes", func(c *Config) { c.Sizes = nil }, "no message sizes"},
		{"size 0", func(c *Config) { c.Sizes = []int{64, 0} }, "must be positive"},
	} {
		cfg := ok
		tc.edit(&cfg)
		_, _, err := Plan(cfg)
		if assert.Error(t, err, tc.name) {
			assert.Contains(t, err.Error(), tc.want, tc.name)
			assert.NotContains(t, err.Error(), "\n", tc.name)
		}
	}
	cfg := ok
	cfg.Duration, cfg.Iters = 0, 10 // a fixed number of iterations needs no duration
	_, _, err := Plan(cfg)
	assert.NoError(t, err)
}

func procInt(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	return n
}

// TestPlanSizeLimits: a size above a transport's limit skips that transport at that
// size, naming the limit and where it is read from; a size that no chosen transport
// can carry is refused.
func TestPlanSizeLimits(t *testing.T) {
	msgmax := procInt(t, "/proc/sys/kernel/msgmax")
	big := msgmax + 1
	_, _, err := Plan(Config{Scenario: ScenarioPingPong, Primitives: []string{"sysv-msg"}, Sizes: []int{big}, Duration: time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no chosen primitive can carry it")
	assert.Contains(t, err.Error(), FormatSize(big)+" exceeds msgmax "+strconv.Itoa(msgmax)+" (/proc/sys/kernel/msgmax)")

	cases, skipped, err := Plan(Config{Scenario: ScenarioPingPong, Primitives: []string{"pipe", "sysv-msg"}, Sizes: []int{64, big}, Impls: []string{ImplRaw}, Duration: time.Second})
	require.NoError(t, err)
	var got []string
	for _, c := range cases {
		got = append(got, c.Params.Primitive+"@"+strconv.Itoa(c.Params.Size))
	}
	assert.Equal(t, []string{"pipe@64", "pipe@" + strconv.Itoa(big), "sysv-msg@64"}, got)
	why := skipped["sysv-msg at "+FormatSize(big)]
	require.Error(t, why, "skipped: %v", skipped)
	assert.Contains(t, why.Error(), "msgmax "+strconv.Itoa(msgmax))

	// The default suite says which transports a size cut out, too.
	_, skipped, err = Plan(Config{Scenario: ScenarioPingPong, Sizes: []int{64 << 10}, Duration: time.Second})
	require.NoError(t, err)
	n := 0
	for _, tr := range Transports() {
		if m := tr.MaxSize(); m > 0 && m < 64<<10 && tr.Available() == nil && supports(tr, ScenarioPingPong) {
			n++
			assert.Contains(t, skipped, tr.Name()+" at 64K")
		}
	}
	assert.Positive(t, n, "no transport with a limit below 64K: sysv-msg's msgmax is %d", msgmax)
}

// TestPlanNothingToRun: a plan in which every case was skipped is an error that says
// why; a door in the default scenario points at the call scenario.
func TestPlanNothingToRun(t *testing.T) {
	_, _, err := Plan(Config{Scenario: ScenarioPingPong, Primitives: []string{"door"}, Sizes: []int{64}, Duration: time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nothing to run")
	assert.Contains(t, err.Error(), "door: does not run scenario pingpong")
	assert.Contains(t, err.Error(), "--scenario call")

	_, _, err = Plan(Config{Scenario: ScenarioPingPong, Primitives: []string{"sysv-msg"}, Sizes: []int{64},
		Impls: []string{ImplIpclab}, Waits: []ipc.WaitStrategy{ipc.WaitPoller}, Duration: time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "offers none of the wait strategies poller")

	// A payload-free transport runs at the first size only, and says so.
	cases, skipped, err := Plan(Config{Scenario: ScenarioPingPong, Primitives: []string{"sysv-sem"}, Sizes: []int{64, 4096}, Duration: time.Second})
	require.NoError(t, err)
	for _, c := range cases {
		assert.Equal(t, 64, c.Params.Size)
	}
	assert.Contains(t, skipped, "sysv-sem at 4K")
}

// TestPlanMemory (S11): a size whose buffers would not fit in this machine's memory
// is refused, naming MemAvailable; one well inside it is planned. Both sizes are
// derived from MemAvailable, so the test holds on any machine.
func TestPlanMemory(t *testing.T) {
	avail, ok := memAvailable()
	require.True(t, ok, "no MemAvailable in /proc/meminfo")
	perByte, _ := caseMemory(1, 1)
	limit := float64(avail) / memoryShare
	cfg := Config{Scenario: ScenarioPingPong, Primitives: []string{"pipe"}, Duration: time.Second}

	cfg.Sizes = []int{int(4 * limit / perByte)}
	_, _, err := Plan(cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "MemAvailable")
	assert.Contains(t, err.Error(), "/proc/meminfo")
	assert.NotContains(t, err.Error(), "\n")

	cfg.Sizes = []int{int(limit / perByte / 4)}
	_, _, err = Plan(cfg)
	assert.NoError(t, err)

	// Fan-in: every peer holds a buffer.
	cfg.Scenario, cfg.Peers = ScenarioFanIn, 64
	one, _ := caseMemory(1, 64)
	cfg.Sizes = []int{int(2 * limit / one)}
	_, _, err = Plan(cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "each of 64 peers")
}

func TestSizeOverflow(t *testing.T) {
	for _, s := range []string{"99999999999999999999", "9999999999G", "8589934592G", "9223372036854775807K"} {
		_, err := ParseSize(s)
		if assert.Error(t, err, s) {
			assert.Contains(t, err.Error(), "too large", s)
		}
	}
	n, err := ParseSize("2G")
	require.NoError(t, err)
	assert.Equal(t, 2<<30, n)
	assert.Equal(t, "2G", FormatSize(n))
	_, err = ParseSize("-99999999999999999999")
	assert.ErrorContains(t, err, "bad size")
}

// FuzzParseSize: any string parses to a positive size that prints back to itself, or
// to a one-line error; a number with a unit parses to exactly their product, and to an
// error when that is zero or does not fit in an int (never a wrapped-around value).
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"64", "4K", "64KiB", "1M", "2G", "2kb", "0", "-1", "1.5K", "", "K", "iB",
		"9223372036854775807", "8589934592G", " 64kb ", "+64", "0x40", "1\n"} {
		f.Add(s, uint64(64), uint8(0))
	}
	f.Add("", uint64(math.MaxInt64), uint8(0))
	f.Add("", uint64(1<<33), uint8(6))
	units := []struct {
		suffix string
		mult   uint64
	}{{"", 1}, {"B", 1}, {"K", 1 << 10}, {"KiB", 1 << 10}, {"kb", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"gib", 1 << 30}}
	f.Fuzz(func(t *testing.T, s string, n uint64, unit uint8) {
		got, err := ParseSize(s)
		if err != nil {
			if got != 0 || strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseSize(%q) = %d, %q", s, got, err)
			}
		} else {
			back, err := ParseSize(FormatSize(got))
			if got <= 0 || err != nil || back != got {
				t.Fatalf("ParseSize(%q) = %d; FormatSize %q parses to %d, %v", s, got, FormatSize(got), back, err)
			}
		}

		u := units[int(unit)%len(units)]
		in := strconv.FormatUint(n, 10) + u.suffix
		got, err = ParseSize(in)
		hi, product := bits.Mul64(n, u.mult)
		fits := n > 0 && hi == 0 && product <= math.MaxInt
		if fits != (err == nil) || fits && uint64(got) != product {
			t.Fatalf("ParseSize(%q) = %d, %v; want %d (fits: %v)", in, got, err, product, fits)
		}
	})
}
