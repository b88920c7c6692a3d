package rpc_test

import (
	"context"
	"testing"
	"time"

	"github.com/xdrpp/goxdr/xdr"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/rpc"
)

// Asynchronous calls (Go) to a server in another process: many in flight, each
// returns its own result through its Pending; a nil context is ErrInvalid at once.
func TestGo(t *testing.T) {
	srv := startServer(t, "rpc-server")
	for _, network := range []string{"tcp", "udp"} {
		c := dial(t, network, srv.addr(network), testProg, 1, rpc.WithRetransmit(50*time.Millisecond, time.Second))
		const n = 50
		in, out := make([]uint64, n), make([]uint64, n)
		pend := make([]*rpc.Pending, n)
		for i := range pend {
			in[i] = uint64(i) * 0x0101010101
			pend[i] = c.Go(bg, procEcho, xdr.XDR_uint64(&in[i]), xdr.XDR_uint64(&out[i]))
		}
		for i, p := range pend {
			<-p.Done()
			if err := p.Wait(); err != nil || out[i] != in[i] {
				t.Fatalf("%s: call %d: %#x, %v", network, i, out[i], err)
			}
		}
		var nilCtx context.Context
		ipctest.CheckOpError(t, "Go with a nil context", c.Go(nilCtx, 0, nil, nil).Wait(), ipc.ErrInvalid)
	}
}
