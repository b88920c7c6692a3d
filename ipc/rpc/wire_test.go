package rpc_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/xdrpp/goxdr/xdr"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/rpc"
	"github.com/ipclab/ipclab/sockets"
)

// RPC-01: every reply status of RFC 5531 that the server can give, over TCP (record
// marking) and UDP, from a server in another process: SUCCESS, PROG_UNAVAIL,
// PROG_MISMATCH with the version range, PROC_UNAVAIL, GARBAGE_ARGS, SYSTEM_ERR (a
// handler error and a handler panic), AUTH_ERROR for AUTH_NONE where AUTH_SYS is
// required, and AUTH_SYS credentials carried through.
func TestReplyStatuses(t *testing.T) {
	srv := startServer(t, "rpc-server")
	for _, network := range []string{"tcp", "udp"} {
		t.Run(network, func(t *testing.T) {
			addr := srv.addr(network)
			c := dial(t, network, addr, testProg, 1, rpc.WithRetransmit(50*time.Millisecond, time.Second))

			in, out := uint64(0x0102030405060708), uint64(0)
			if err := c.Call(bg, procEcho, xdr.XDR_uint64(&in), xdr.XDR_uint64(&out)); err != nil || out != in {
				t.Fatalf("echo: %#x, %v", out, err)
			}
			if err := c.Call(bg, 0, nil, nil); err != nil {
				t.Errorf("null procedure: %v", err)
			}
			err := c.Call(bg, 99, nil, nil)
			ipctest.CheckOpError(t, "PROC_UNAVAIL", err, rpc.ErrProcUnavail)

			small := uint32(7) // a uint64 procedure given 4 bytes
			err = c.Call(bg, procEcho, xdr.XDR_uint32(&small), xdr.XDR_uint64(&out))
			ipctest.CheckOpError(t, "GARBAGE_ARGS", err, rpc.ErrGarbageArgs)

			err = c.Call(bg, procFail, nil, nil)
			ipctest.CheckOpError(t, "SYSTEM_ERR", err, rpc.ErrSystemErr)
			err = c.Call(bg, procPanic, nil, nil)
			ipctest.CheckOpError(t, "SYSTEM_ERR (panic)", err, rpc.ErrSystemErr)

			var uid uint32
			err = c.Call(bg, procUID, nil, xdr.XDR_uint32(&uid))
			ipctest.CheckOpError(t, "AUTH_ERROR", err, rpc.ErrAuth)
			var ae *rpc.AuthError
			if !errors.As(err, &ae) || ae.Stat != rpc.AuthTooWeak {
				t.Errorf("AUTH_ERROR: %v, want AUTH_TOOWEAK", err)
			}

			cred, err := (&rpc.AuthSys{Stamp: 1, Machine: "ipclab", UID: 4242, GID: 7, GIDs: []uint32{7, 8}}).Encode()
			if err != nil {
				t.Fatal(err)
			}
			cs := dial(t, network, addr, testProg, 3, rpc.WithCred(cred))
			if err := cs.Call(bg, procUID, nil, xdr.XDR_uint32(&uid)); err != nil || uid != 4242 {
				t.Errorf("AUTH_SYS uid: %d, %v", uid, err)
			}

			err = dial(t, network, addr, testProg+1, 1).Call(bg, 0, nil, nil)
			ipctest.CheckOpError(t, "PROG_UNAVAIL", err, rpc.ErrProgUnavail)

			err = dial(t, network, addr, testProg, 2).Call(bg, 0, nil, nil)
			ipctest.CheckOpError(t, "PROG_MISMATCH", err, rpc.ErrProgMismatch)
			var me *rpc.MismatchError
			if !errors.As(err, &me) || me.Low != 1 || me.High != 3 {
				t.Errorf("PROG_MISMATCH: %v, want versions 1 to 3", err)
			}

			blob := bytes.Repeat([]byte("abcdefg"), 3000) // 21000 bytes, not a multiple of 4
			var back []byte
			if network == "udp" {
				blob = blob[:9999]
			}
			if err := c.Call(bg, procBlob, xdr.XdrVecOpaque{Bytes: &blob, Bound: 1 << 20}, xdr.XdrVecOpaque{Bytes: &back, Bound: 1 << 20}); err != nil {
				t.Fatal(err)
			}
			for i := range blob {
				if back[len(back)-1-i] != blob[i] {
					t.Fatalf("blob of %d bytes came back as %d bytes, differing at %d", len(blob), len(back), i)
				}
			}
		})
	}
}

// rawCall builds a call message by hand: rpcvers, cred and verifier as given.
func rawCall(xid, rpcvers, prog, vers, proc uint32, cred []uint32, args ...uint32) []byte {
	w := []uint32{xid, 0, rpcvers, prog, vers, proc}
	w = append(w, cred...)
	w = append(w, 0, 0) // AUTH_NONE verifier
	w = append(w, args...)
	b := make([]byte, 0, 4*len(w))
	for _, v := range w {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// RPC-01: a call of RPC version 3 gets MSG_DENIED/RPC_MISMATCH(2, 2), and a call
// with an unknown credential flavour AUTH_ERROR/AUTH_REJECTEDCRED; both checked
// byte for byte on a raw UDP socket.
func TestRejectedReplies(t *testing.T) {
	srv := startServer(t, "rpc-server")
	u, err := sockets.DialUDP(bg, srv.udp)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for _, tc := range []struct {
		name string
		call []byte
		want []uint32
	}{
		{"RPC_MISMATCH", rawCall(11, 3, testProg, 1, 0, []uint32{0, 0}), []uint32{11, 1, 1, 0, 2, 2}},
		{"AUTH_REJECTEDCRED", rawCall(12, 2, testProg, 1, 0, []uint32{9, 0}), []uint32{12, 1, 1, 1, 2}},
		{"AUTH_BADCRED", rawCall(13, 2, testProg, 1, 0, []uint32{1, 4, 0}), []uint32{13, 1, 1, 1, 1}},
		{"SUCCESS", rawCall(14, 2, testProg, 1, procEcho, []uint32{0, 0}, 0xdead, 0xbeef), []uint32{14, 1, 0, 0, 0, 0, 0xdead, 0xbeef}},
	} {
		if err := u.Send(bg, tc.call); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1024)
		ctx, cancel := context.WithTimeout(bg, 5*time.Second)
		n, err := u.Recv(ctx, buf)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var want []byte
		for _, v := range tc.want {
			want = binary.BigEndian.AppendUint32(want, v)
		}
		if !bytes.Equal(buf[:n], want) {
			t.Errorf("%s: reply %x, want %x", tc.name, buf[:n], want)
		}
	}
}

// RPC-01, RPC-09: record marking over TCP. A call split into three fragments (one of
// them empty) is answered; a record announcing more than the server's limit makes
// the server close the connection without reading or allocating for it.
func TestRecordMarking(t *testing.T) {
	srv := startServer(t, "rpc-server")
	conn, err := sockets.DialTCP(bg, srv.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	call := rawCall(21, 2, testProg, 1, procEcho, []uint32{0, 0}, 1, 2)
	var rec []byte
	for i, part := range [][]byte{call[:10], nil, call[10:]} {
		hdr := uint32(len(part))
		if i == 2 {
			hdr |= 1 << 31
		}
		rec = binary.BigEndian.AppendUint32(rec, hdr)
		rec = append(rec, part...)
	}
	if _, err := conn.Write(rec); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply := make([]byte, 4+32)
	if _, err := io.ReadFull(conn, reply); err != nil {
		t.Fatal(err)
	}
	want := []uint32{1<<31 | 32, 21, 1, 0, 0, 0, 0, 1, 2}
	var wb []byte
	for _, v := range want {
		wb = binary.BigEndian.AppendUint32(wb, v)
	}
	if !bytes.Equal(reply, wb) {
		t.Fatalf("reply %x, want %x", reply, wb)
	}

	// 2 GiB - 1 announced, 4 bytes sent: the server hangs up.
	if _, err := conn.Write([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	n, err := conn.Read(reply)
	if n != 0 || !(errors.Is(err, io.EOF) || errors.Is(err, ipc.ErrPeerGone)) {
		t.Fatalf("after an oversized record: read %d bytes, %v; want the connection closed", n, err)
	}
}
