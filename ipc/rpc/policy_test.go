package rpc_test

import (
	"errors"
	"testing"
	"time"

	"github.com/xdrpp/goxdr/xdr"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc/rpc"
)

// RPC-01 (AUTH_ERROR) and the security row: a server whose policy admits only uid
// 4242 answers every other caller with AUTH_ERROR (AUTH_TOOWEAK) before looking the
// procedure up, over TCP and UDP, and serves uid 4242.
func TestAuthPolicy(t *testing.T) {
	srv := startServer(t, "rpc-policy-server")
	cred := func(uid uint32) rpc.OpaqueAuth {
		oa, err := (&rpc.AuthSys{Machine: "ipclab", UID: uid, GID: uid}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		return oa
	}
	for _, network := range []string{"tcp", "udp"} {
		retry := rpc.WithRetransmit(50*time.Millisecond, time.Second)
		for name, c := range map[string]*rpc.Client{
			"AUTH_NONE":         dial(t, network, srv.addr(network), testProg, 1, retry),
			"AUTH_SYS uid 1000": dial(t, network, srv.addr(network), testProg, 1, retry, rpc.WithCred(cred(1000))),
		} {
			for _, proc := range []uint32{procEcho, 99} {
				var v uint64
				err := c.Call(bg, proc, xdr.XDR_uint64(&v), xdr.XDR_uint64(&v))
				ipctest.CheckOpError(t, network+" "+name, err, rpc.ErrAuth)
				var ae *rpc.AuthError
				if !errors.As(err, &ae) || ae.Stat != rpc.AuthTooWeak {
					t.Errorf("%s %s proc %d: %v, want AUTH_TOOWEAK", network, name, proc, err)
				}
			}
		}
		ok := dial(t, network, srv.addr(network), testProg, 1, retry, rpc.WithCred(cred(4242)))
		in, out := uint64(42), uint64(0)
		if err := ok.Call(bg, procEcho, xdr.XDR_uint64(&in), xdr.XDR_uint64(&out)); err != nil || out != 42 {
			t.Errorf("%s uid 4242: %d, %v", network, out, err)
		}
	}
}
