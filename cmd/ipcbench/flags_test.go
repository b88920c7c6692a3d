package main

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/ipclab/ipclab/cmd/ipcbench/internal/bench"
)

// FuzzRunFlags: any argument list (NUL-separated) either parses into a configuration
// that is entirely valid or is refused with a one-line usageError; nothing panics, and
// parsing runs nothing and makes no kernel object.
func FuzzRunFlags(f *testing.F) {
	for _, s := range []string{
		"", "--prim\x00pipe\x00--size\x0064,4K", "--duration\x000", "--duration\x00-1s", "--warmup\x00-1s",
		"--rounds\x000", "--rounds\x00-3", "--iters\x00-5", "--peers\x000", "--size\x00100G", "--size\x00,",
		"--size\x009999999999999999999K", "--scenario\x00pingpong,stream", "--scenario\x00,", "-h", "--wait\x00spin,kernel",
		"--impl\x00raw", "--format\x00xml", "extra", "--duration\x001e9h", "-bogus\nflag",
	} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, defaults bool) {
		args := strings.Split(s, "\x00")
		if s == "" {
			args = nil
		}
		rp, help, err := parseRunFlags(args, io.Discard, defaults)
		if err != nil {
			var ue usageError
			if !errors.As(err, &ue) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("%q: error %T %q, want a one-line usageError", args, err, err)
			}
			return
		}
		if help {
			return
		}
		c := rp.cfg
		ok := c.Iters >= 0 && c.Duration > 0 && c.Duration <= bench.MaxPhase && c.Warmup >= 0 && c.Warmup <= bench.MaxPhase &&
			c.Rounds >= 1 && c.Peers >= 1 && c.Peers <= bench.MaxPeers && len(c.Sizes) > 0 && len(rp.scenarios) > 0 &&
			slices.Contains([]string{"table", "json", "csv", "bench"}, rp.format)
		for _, size := range c.Sizes {
			ok = ok && size > 0
		}
		for _, sc := range rp.scenarios {
			ok = ok && slices.Contains(bench.Scenarios, sc)
		}
		for _, impl := range c.Impls {
			ok = ok && (impl == bench.ImplIpclab || impl == bench.ImplRaw)
		}
		if !ok {
			t.Fatalf("%q accepted as %+v", args, rp)
		}
	})
}
