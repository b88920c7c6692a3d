package ebpf_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	cebpf "github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
)

// Conformance rows A8 (LTP bpf/): maps, a socket-attached program, 64-bit ALU,
// verifier rejections surfaced with the log, and division by zero.

func newArray(t *testing.T, n uint32) *cebpf.Map {
	t.Helper()
	m, err := cebpf.NewMap(&cebpf.MapSpec{Type: cebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: n})
	if err != nil {
		t.Fatalf("NewMap: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// storeReg returns instructions that store register r into m[key] (r must be one of
// R6..R9, which survive the helper call).
func storeReg(m *cebpf.Map, key int32, r asm.Register, label string) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.RFP, -4, int64(key), asm.Word),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, label),
		asm.StoreMem(asm.R0, 0, r, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol(label),
	}
}

func socketFilter(t *testing.T, insns asm.Instructions) *cebpf.Program {
	t.Helper()
	prog, err := cebpf.NewProgram(&cebpf.ProgramSpec{Type: cebpf.SocketFilter, Instructions: insns, License: "MIT"})
	if err != nil {
		t.Fatalf("NewProgram: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

func run(t *testing.T, prog *cebpf.Program) {
	t.Helper()
	if _, err := prog.Run(&cebpf.RunOptions{Data: make([]byte, 14)}); err != nil {
		t.Fatalf("run: %v", err)
	}
}

func lookup(t *testing.T, m *cebpf.Map, key uint32) uint64 {
	t.Helper()
	var v uint64
	if err := m.Lookup(key, &v); err != nil {
		t.Fatalf("lookup %d: %v", key, err)
	}
	return v
}

func TestConformanceBPF(t *testing.T) {
	ipctest.RequireRoot(t)

	t.Run("BPF-01", func(t *testing.T) {
		for _, typ := range []cebpf.MapType{cebpf.Hash, cebpf.Array} {
			m, err := cebpf.NewMap(&cebpf.MapSpec{Type: typ, KeySize: 4, ValueSize: 8, MaxEntries: 16})
			if err != nil {
				t.Fatalf("%v: %v", typ, err)
			}
			for k := uint32(0); k < 16; k++ {
				if err := m.Put(k, uint64(k)*1000+7); err != nil {
					t.Fatalf("%v put %d: %v", typ, k, err)
				}
			}
			for k := uint32(0); k < 16; k++ {
				if v := lookup(t, m, k); v != uint64(k)*1000+7 {
					t.Errorf("%v[%d] = %d", typ, k, v)
				}
			}
			var v uint64
			if typ == cebpf.Hash {
				if err := m.Put(uint32(99), uint64(1)); err == nil {
					t.Errorf("hash: 17th key accepted in a 16-entry map")
				}
				if err := m.Lookup(uint32(99), &v); !errors.Is(err, cebpf.ErrKeyNotExist) {
					t.Errorf("hash: lookup of a missing key: %v", err)
				}
			} else if err := m.Put(uint32(16), uint64(1)); err == nil {
				t.Errorf("array: key out of range accepted")
			}
			m.Close()
		}
	})

	t.Run("BPF-02", func(t *testing.T) {
		// A socket filter counts the datagrams its socket receives in a map.
		m := newArray(t, 1)
		prog := socketFilter(t, asm.Instructions{
			asm.StoreImm(asm.RFP, -4, 0, asm.Word),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			asm.Mov.Imm(asm.R1, 1),
			asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, 0),
			asm.Mov.Imm(asm.R0, -1).WithSymbol("out"), // keep the whole packet
			asm.Return(),
		})
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fds[0])
		defer unix.Close(fds[1])
		if err := unix.SetsockoptInt(fds[1], unix.SOL_SOCKET, unix.SO_ATTACH_BPF, prog.FD()); err != nil {
			t.Fatalf("SO_ATTACH_BPF: %v", err)
		}
		for i := 0; i < 3; i++ {
			if _, err := unix.Write(fds[0], []byte("hello")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 16)
			if n, err := unix.Read(fds[1], buf); err != nil || string(buf[:n]) != "hello" {
				t.Fatalf("read: %q %v", buf[:n], err)
			}
		}
		if v := lookup(t, m, 0); v != 3 {
			t.Errorf("filter counted %d datagrams, want 3", v)
		}
	})

	t.Run("BPF-03", func(t *testing.T) {
		// 64-bit ALU results must not be truncated to 32 bits.
		m := newArray(t, 4)
		insns := asm.Instructions{
			asm.LoadImm(asm.R6, 0x100000000, asm.DWord),
			asm.Mul.Imm(asm.R6, 3), // 0x300000000
			asm.Mov.Imm(asm.R7, 1),
			asm.LSh.Imm(asm.R7, 40), // 1<<40
			asm.Mov.Imm(asm.R8, -1),
			asm.RSh.Imm(asm.R8, 1), // logical: 0x7fffffffffffffff
			asm.Mov.Imm(asm.R9, -8),
			asm.ArSh.Imm(asm.R9, 1), // arithmetic: -4
		}
		insns = append(insns, storeReg(m, 0, asm.R6, "s0")...)
		insns = append(insns, storeReg(m, 1, asm.R7, "s1")...)
		insns = append(insns, storeReg(m, 2, asm.R8, "s2")...)
		insns = append(insns, storeReg(m, 3, asm.R9, "s3")...)
		insns = append(insns, asm.Return())
		run(t, socketFilter(t, insns))
		m4 := int64(-4)
		for k, want := range []uint64{0x300000000, 1 << 40, 0x7fffffffffffffff, uint64(m4)} {
			if got := lookup(t, m, uint32(k)); got != want {
				t.Errorf("result %d = %#x, want %#x", k, got, want)
			}
		}
		// The unprivileged half: with kernel.unprivileged_bpf_disabled set, an
		// unprivileged load must fail with EPERM, surfaced as such.
		h := ipctest.Start(t, "unprivileged-bpf", ipctest.AsUser(ipctest.Nobody))
		h.MustSucceed()
		t.Logf("as nobody: %s", strings.TrimSpace(h.Output()))
	})

	t.Run("BPF-04", func(t *testing.T) {
		// The verifier's rejection comes back as a *VerifierError carrying its log.
		// (The four CVE reproducers of LTP bpf_prog03/04/06/07 are not ported.)
		m := newArray(t, 1)
		h, err := cebpf.NewMap(&cebpf.MapSpec{Type: cebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		for name, c := range map[string]struct {
			insns asm.Instructions
			log   string
		}{
			"map value out of bounds": {append(asm.Instructions{
				asm.StoreImm(asm.RFP, -4, 0, asm.Word),
				asm.Mov.Reg(asm.R2, asm.RFP),
				asm.Add.Imm(asm.R2, -4),
				asm.LoadMapPtr(asm.R1, m.FD()),
				asm.FnMapLookupElem.Call(),
				asm.JEq.Imm(asm.R0, 0, "out"),
				asm.Mov.Imm(asm.R1, 1),
				asm.StoreMem(asm.R0, 8, asm.R1, asm.DWord), // value is 8 bytes: offset 8 is outside
				asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
			}, asm.Return()), "invalid access to map value"},
			"uninitialized register": {asm.Instructions{
				asm.Mov.Reg(asm.R0, asm.R3),
				asm.Return(),
			}, "!read_ok"},
			"unchecked map value": {asm.Instructions{
				asm.StoreImm(asm.RFP, -4, 0, asm.Word),
				asm.Mov.Reg(asm.R2, asm.RFP),
				asm.Add.Imm(asm.R2, -4),
				asm.LoadMapPtr(asm.R1, h.FD()), // a hash lookup may return NULL
				asm.FnMapLookupElem.Call(),
				asm.Mov.Imm(asm.R1, 1),
				asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord), // no NULL check
				asm.Mov.Imm(asm.R0, 0),
				asm.Return(),
			}, "map_value_or_null"},
		} {
			prog, err := cebpf.NewProgram(&cebpf.ProgramSpec{Type: cebpf.SocketFilter, Instructions: c.insns, License: "MIT"})
			if err == nil {
				prog.Close()
				t.Errorf("%s: the verifier accepted it", name)
				continue
			}
			var ve *cebpf.VerifierError
			if !errors.As(err, &ve) {
				t.Errorf("%s: %v (%T), want a *VerifierError", name, err, err)
				continue
			}
			if log := strings.Join(ve.Log, "\n"); !strings.Contains(log, c.log) {
				t.Errorf("%s: verifier log lacks %q:\n%s", name, c.log, log)
			}
		}
	})

	t.Run("BPF-05", func(t *testing.T) {
		// Division by a zero register gives 0, modulo gives the dividend (64-bit), and
		// the 32-bit forms work on and zero-extend the low half.
		m := newArray(t, 4)
		insns := asm.Instructions{
			asm.Mov.Imm(asm.R1, 0),
			asm.Mov.Imm(asm.R6, 10),
			asm.Div.Reg(asm.R6, asm.R1), // 10 / 0 = 0
			asm.Mov.Imm(asm.R7, 10),
			asm.Mod.Reg(asm.R7, asm.R1), // 10 % 0 = 10
			asm.LoadImm(asm.R8, 0x1234567800000005, asm.DWord),
			asm.Div.Reg32(asm.R8, asm.R1), // w8 = 5 / 0 = 0, upper half cleared
			asm.LoadImm(asm.R9, 0x1234567800000005, asm.DWord),
			asm.Mod.Reg32(asm.R9, asm.R1), // w9 = 5 % 0 = 5, upper half cleared
		}
		insns = append(insns, storeReg(m, 0, asm.R6, "s0")...)
		insns = append(insns, storeReg(m, 1, asm.R7, "s1")...)
		insns = append(insns, storeReg(m, 2, asm.R8, "s2")...)
		insns = append(insns, storeReg(m, 3, asm.R9, "s3")...)
		insns = append(insns, asm.Return())
		run(t, socketFilter(t, insns))
		for k, want := range []uint64{0, 10, 0, 5} {
			if got := lookup(t, m, uint32(k)); got != want {
				t.Errorf("result %d = %#x, want %#x", k, got, want)
			}
		}
	})
}

var _ = ipctest.Helper("unprivileged-bpf", func(args []string) int {
	disabled, _ := os.ReadFile("/proc/sys/kernel/unprivileged_bpf_disabled")
	m, err := cebpf.NewMap(&cebpf.MapSpec{Type: cebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if strings.TrimSpace(string(disabled)) != "0" {
		if err == nil {
			m.Close()
			return fail("unprivileged_bpf_disabled=%s but an unprivileged map was created", strings.TrimSpace(string(disabled)))
		}
		if !errors.Is(err, unix.EPERM) {
			return fail("unprivileged map: %v, want EPERM", err)
		}
		println("unprivileged BPF is disabled (kernel.unprivileged_bpf_disabled=" + strings.TrimSpace(string(disabled)) + "): EPERM as expected")
		return 0
	}
	if err != nil {
		return fail("unprivileged map: %v", err)
	}
	m.Close()
	println("unprivileged BPF is enabled: map created")
	return 0
})
