package rpc_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xdrpp/goxdr/xdr"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/doors"
	"github.com/ipclab/ipclab/ipc/rpc"
)

// The door server: testProg version 1 on TCP, UDP and a door at once, the door
// entered in the binder directory args[0] (door at args[0]/door). With args[1] ==
// "policy" it admits only callers whose AUTH_SYS uid is 4242.
var _ = ipctest.Helper("rpc-door-server", func(args []string) int {
	var opts []rpc.ServerOption
	if len(args) > 1 && args[1] == "policy" {
		opts = append(opts, rpc.WithAuthPolicy(func(c *rpc.Call) error {
			a, err := c.AuthSys()
			if err != nil {
				return err
			}
			if a.UID != 4242 {
				return &rpc.AuthError{Stat: rpc.AuthTooWeak}
			}
			return nil
		}))
	}
	s, err := rpc.NewServer(opts...)
	if err != nil {
		return fail("%v", err)
	}
	if err := s.Register(testProg, 1, testProcs()); err != nil {
		return fail("%v", err)
	}
	b, err := rpc.OpenBinder(args[0])
	if err != nil {
		return fail("%v", err)
	}
	if err := s.ListenDoor(filepath.Join(args[0], "door")); err != nil {
		return fail("%v", err)
	}
	if err := s.AdvertiseDoor(b); err != nil {
		return fail("%v", err)
	}
	return serveUntilTold(s)
})

func claim(t *testing.T, uid uint32) rpc.ClientOption {
	t.Helper()
	a := rpc.AuthSys{Machine: "elsewhere", UID: uid, GID: uid}
	cred, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return rpc.WithCred(cred)
}

// TestDoorTransport (RPC-01, RPC-03): one server process serves a program on TCP,
// UDP and a door at once; a client finds the door through the binder and calls it;
// over the door the server sees the caller's uid as the kernel gives it, not the
// uid the client claims, which it sees over TCP and UDP. The server's exit removes
// its binder entry.
func TestDoorTransport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "binder")
	p := startServer(t, "rpc-door-server", ipctest.WithArgs(dir))
	b, err := rpc.OpenBinder(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, fmt.Sprintf("%d.1", testProg)))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("binder entry: %v, mode %v", err, fi)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("binder dir: %v, %v", err, fi)
	}
	c, err := b.Dial(bg, testProg, 1, claim(t, 4242))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range uint64(100) {
		v := i * 0x0102030405
		if err := c.Call(bg, procEcho, xdr.XDR_uint64(&v), xdr.XDR_uint64(&v)); err != nil || v != i*0x0102030405 {
			t.Fatalf("door echo %d: %v, %d", i, err, v)
		}
	}
	var uid uint32
	if err := c.Call(bg, procUID, nil, xdr.XDR_uint32(&uid)); err != nil || uid != uint32(os.Getuid()) {
		t.Fatalf("door uid: %v, %d, want the kernel's %d", err, uid, os.Getuid())
	}
	blob := make([]byte, 200000)
	for i := range blob {
		blob[i] = byte(i)
	}
	var got []byte
	if err := c.Call(bg, procBlob, xdr.XdrVecOpaque{Bytes: &blob, Bound: 1 << 20}, xdr.XdrVecOpaque{Bytes: &got, Bound: 1 << 20}); err != nil ||
		len(got) != len(blob) || got[0] != blob[len(blob)-1] {
		t.Fatalf("door blob: %v, %d bytes", err, len(got))
	}
	if err := c.Call(bg, procFail, nil, nil); !errors.Is(err, rpc.ErrSystemErr) {
		t.Fatalf("door failing procedure: %v", err)
	}
	for _, network := range []string{"tcp", "udp"} {
		nc := dial(t, network, p.addr(network), testProg, 1, claim(t, 4242))
		uid = 0
		if err := nc.Call(bg, procUID, nil, xdr.XDR_uint32(&uid)); err != nil || uid != 4242 {
			t.Fatalf("%s uid: %v, %d, want the claimed 4242", network, err, uid)
		}
	}
	p.stop(t)
	if _, err := b.Lookup(testProg, 1); !errors.Is(err, rpc.ErrNotRegistered) {
		t.Fatalf("lookup after the server exited: %v, want ErrNotRegistered", err)
	}
	// Close revokes the door: a call on it fails at once.
	ipctest.CheckOpError(t, "call on a closed door", c.Call(bg, procEcho, nil, nil), doors.ErrRevoked)
}

// TestDoorPolicy (RPC-01): a policy that wants uid 4242 refuses a door caller that
// claims 4242 but is not (AUTH_ERROR), and accepts the same claim over TCP.
func TestDoorPolicy(t *testing.T) {
	if os.Getuid() == 4242 {
		t.Skip("running as uid 4242")
	}
	dir := filepath.Join(t.TempDir(), "binder")
	p := startServer(t, "rpc-door-server", ipctest.WithArgs(dir, "policy"))
	b, err := rpc.OpenBinder(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.Dial(bg, testProg, 1, claim(t, 4242))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v := uint64(7)
	err = c.Call(bg, procEcho, xdr.XDR_uint64(&v), xdr.XDR_uint64(&v))
	var ae *rpc.AuthError
	if !errors.As(err, &ae) || ae.Stat != rpc.AuthTooWeak {
		t.Fatalf("door call claiming uid 4242: %v, want AUTH_TOOWEAK", err)
	}
	ipctest.CheckOpError(t, "refused door call", err, rpc.ErrAuth)
	tc := dial(t, "tcp", p.tcp, testProg, 1, claim(t, 4242))
	if err := tc.Call(bg, procEcho, xdr.XDR_uint64(&v), xdr.XDR_uint64(&v)); err != nil {
		t.Fatalf("tcp call claiming uid 4242: %v", err)
	}
}

// TestDoorBinderStale (RPC-03): the binder entry of a server killed with SIGKILL is
// reported stale at once, by lookup and by dial, not a hang.
func TestDoorBinderStale(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "binder")
	p := startServer(t, "rpc-door-server", ipctest.WithArgs(dir))
	p.proc.Kill()
	p.proc.Wait()
	p.proc = nil
	b, err := rpc.OpenBinder(dir)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = b.Lookup(testProg, 1)
	ipctest.CheckOpError(t, "lookup of a dead server", err, rpc.ErrStale)
	_, err = b.Dial(bg, testProg, 1)
	ipctest.CheckOpError(t, "dial of a dead server", err, rpc.ErrStale)
	// The door path itself (without the binder) refuses connections: stale too.
	_, err = rpc.DialDoor(bg, filepath.Join(dir, "door"), testProg, 1)
	ipctest.CheckOpError(t, "dial of a dead door", err, rpc.ErrStale)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("stale detection took %v", d)
	}
	if _, err := b.Lookup(testProg, 2); !errors.Is(err, rpc.ErrNotRegistered) {
		t.Fatalf("lookup of an unregistered version: %v", err)
	}
}

// TestBinderBadInput (RPC-03): bad input is ErrInvalid before any system call.
func TestBinderBadInput(t *testing.T) {
	if _, err := rpc.OpenBinder(""); !errors.Is(err, ipc.ErrInvalid) {
		t.Fatalf("empty binder dir: %v", err)
	}
	b, err := rpc.OpenBinder(filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Set(1, 1, "a\nb"); !errors.Is(err, ipc.ErrInvalid) {
		t.Fatalf("door path with a newline: %v", err)
	}
	if _, err := rpc.DialDoor(bg, "", 1, 1); !errors.Is(err, ipc.ErrInvalid) {
		t.Fatalf("empty door path: %v", err)
	}
	s, err := rpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.ListenDoor(""); !errors.Is(err, ipc.ErrInvalid) {
		t.Fatalf("empty listen path: %v", err)
	}
	if err := s.AdvertiseDoor(b); !errors.Is(err, ipc.ErrInvalid) {
		t.Fatalf("advertise without a door: %v", err)
	}
	if err := s.AdvertiseDoor(nil); !errors.Is(err, ipc.ErrInvalid) {
		t.Fatalf("nil binder: %v", err)
	}
}
