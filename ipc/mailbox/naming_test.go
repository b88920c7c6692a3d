package mailbox_test

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc/mailbox"
	"github.com/ipclab/ipclab/ipc/posixmq"
	"github.com/ipclab/ipclab/sockets"
)

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" && !strings.HasPrefix(l, "ipctest") && !strings.Contains(l, "WARNING") {
			out = append(out, l)
		}
	}
	return out
}

func expect(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// TestMailboxNaming: two sender processes and two receivers (this process and a
// helper) share a mailbox by name; every message reaches exactly one receiver.
func TestMailboxNaming(t *testing.T) {
	backends(t, func(t *testing.T, b mailbox.Backend) {
		ns, ctx := newNS(t), ctxT(t)
		mb, err := ns.CreateMailbox("shared", mailbox.WithBackend(b))
		must(t, err)
		defer mb.Close()
		const per, helperTakes = 20, 10
		r := start(t, "recv", ipctest.WithArgs(ns.Dir(), "shared", fmt.Sprint(helperTakes)))
		r.Await()
		r.Signal()
		s1 := start(t, "send", ipctest.WithArgs(ns.Dir(), "shared", "receipt", fmt.Sprint(per), "a"))
		s2 := start(t, "send", ipctest.WithArgs(ns.Dir(), "shared", "receipt", fmt.Sprint(per), "b"))
		var got []string
		buf := make([]byte, 64)
		for i := 0; i < 2*per-helperTakes; i++ {
			m, err := mb.Recv(ctx, buf)
			must(t, err)
			got = append(got, string(buf[:m.N]))
		}
		s1.MustSucceed()
		s2.MustSucceed()
		r.Await()
		r.MustSucceed()
		got = append(got, lines(r.Output())...)
		slices.Sort(got)
		want := append(expect("a", per), expect("b", per)...)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("received %v\nwant %v", got, want)
		}
	})
}

// TestPortNaming: a helper owns a port; this process and another helper send to it
// by name; only the owner receives. A second CreatePort of a live name fails.
func TestPortNaming(t *testing.T) {
	backends(t, func(t *testing.T, b mailbox.Backend) {
		ns, ctx := newNS(t), ctxT(t)
		owner := start(t, "port-owner", ipctest.WithArgs(ns.Dir(), "svc", b.String(), "10"))
		owner.Await()
		if _, err := ns.CreatePort("svc"); !errors.Is(err, unix.EEXIST) {
			t.Errorf("CreatePort of a live port: %v, want EEXIST", err)
		}
		if _, err := ns.OpenMailbox("svc"); err == nil {
			t.Errorf("OpenMailbox of a port succeeded")
		}
		s, err := ns.OpenPort("svc")
		must(t, err)
		for i := 0; i < 5; i++ {
			must(t, s.Send(ctx, []byte(fmt.Sprintf("t-%d", i))))
		}
		must(t, s.Close())
		h := start(t, "send", ipctest.WithArgs(ns.Dir(), "svc", "delivery", "5", "h", "", "port"))
		h.Await()
		h.MustSucceed()
		owner.Await()
		owner.Signal()
		owner.MustSucceed()
		got := lines(owner.Output())
		slices.Sort(got)
		want := append(expect("h", 5), expect("t", 5)...)
		if !slices.Equal(got, want) {
			t.Fatalf("owner received %v, want %v", got, want)
		}
	})
}

// TestPortHandover: the receive right moves from one process to another over a Unix
// socket; the owner record follows it, and no message is lost on the way.
func TestPortHandover(t *testing.T) {
	backends(t, func(t *testing.T, b mailbox.Backend) {
		ns, ctx := newNS(t), ctxT(t)
		a, c, err := sockets.SeqpacketPair()
		must(t, err)
		fa, err := a.File()
		must(t, err)
		fc, err := c.File()
		must(t, err)
		a.Close()
		c.Close()
		give := start(t, "port-give", ipctest.WithArgs(ns.Dir(), "p", b.String()), ipctest.Handover(fa))
		give.Await()
		s, err := ns.OpenPort("p")
		must(t, err)
		defer s.Close()
		for i := 0; i < 4; i++ { // the first goes to the old owner, the rest wait in the queue
			must(t, s.Send(ctx, []byte(fmt.Sprintf("m-%d", i))))
		}
		take := start(t, "port-take", ipctest.WithArgs(ns.Dir(), "6"), ipctest.Handover(fc))
		take.Await()
		give.MustSucceed()
		for i := 4; i < 7; i++ {
			must(t, s.Send(ctx, []byte(fmt.Sprintf("m-%d", i))))
		}
		take.Await()
		recs, err := ns.Entries()
		must(t, err)
		if len(recs) != 1 || recs[0].Owner.PID != take.Pid() {
			t.Errorf("entries %+v, want port p owned by pid %d", recs, take.Pid())
		}
		take.Signal()
		take.MustSucceed()
		want := "old owner got m-0\n"
		for i := 1; i < 7; i++ {
			want += fmt.Sprintf("new owner got m-%d\n", i)
		}
		if got := give.Output() + take.Output(); got != want {
			t.Fatalf("got\n%s\nwant\n%s", got, want)
		}
		if err := s.Send(ctx, []byte("late")); b == mailbox.SysV && err == nil {
			t.Errorf("send to a closed System V port succeeded")
		}
	})
}

// TestLinkNaming: links are unidirectional, join exactly two processes, and several
// may join the same pair, in either direction.
func TestLinkNaming(t *testing.T) {
	ns, ctx := newNS(t), ctxT(t)
	in, err := ns.ListenLink("up", mailbox.RecvEnd)
	must(t, err)
	out, err := ns.ListenLink("down", mailbox.SendEnd)
	must(t, err)
	if _, err := ns.ListenLink("up", mailbox.SendEnd); !errors.Is(err, unix.EEXIST) {
		t.Errorf("second ListenLink of a name: %v", err)
	}
	p1 := start(t, "link-dial", ipctest.WithArgs(ns.Dir(), "up", "5", "delivery"))
	up, err := in.Accept(ctx)
	must(t, err)
	defer up.Close()
	if up.Tx != nil || up.Rx == nil {
		t.Fatal("listening RecvEnd did not get the receiving end")
	}
	// The name is gone once the link is connected: nobody else can join.
	if _, err := ns.DialLink(ctx, "up"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("third process dialling a connected link: %v, want ENOENT", err)
	}
	buf := make([]byte, 64)
	var got []string
	for i := 0; i < 5; i++ {
		m, err := up.Rx.Recv(ctx, buf)
		must(t, err)
		got = append(got, string(buf[:m.N]))
	}
	if !slices.Equal(got, expect("up", 5)) {
		t.Errorf("got %v", got)
	}
	p1.Await()
	// A second link between this process and another, the other way round.
	p2 := start(t, "link-dial", ipctest.WithArgs(ns.Dir(), "down", "3", ""))
	down, err := out.Accept(ctx)
	must(t, err)
	defer down.Close()
	for i := 0; i < 3; i++ {
		_, err := down.Tx.Sendrecv(ctx, []byte(fmt.Sprintf("down-%d", i)), buf)
		must(t, err)
	}
	p2.Await()
	p1.Signal()
	p1.MustSucceed()
	// The sender has closed its end: the receiver sees EOF.
	if _, err := up.Rx.Recv(ctx, buf); err == nil {
		t.Errorf("Recv after the peer closed: no error")
	}
	p2.Signal()
	p2.MustSucceed()
	if got := lines(p2.Output()); !slices.Equal(got, expect("down", 3)) {
		t.Errorf("peer got %v", got)
	}
	if err := down.Tx.Send(ctx, []byte("x")); err == nil {
		t.Errorf("Send after the peer closed: no error")
	} else {
		wantErr(t, "send on a closed link", err, unix.EPIPE)
	}
}

// TestPortReceiveRight: with the POSIX backend the kernel itself keeps the receive
// right with the owner: opening the port's queue by name gives a send-only
// descriptor.
func TestPortReceiveRight(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root bypasses message queue permissions; run the test binary as an unprivileged user")
	}
	ns, ctx := newNS(t), ctxT(t)
	p, err := ns.CreatePort("mine")
	must(t, err)
	defer p.Close()
	if _, err := posixmq.Open(p.Record().Object, posixmq.ReadOnly()); !errors.Is(err, unix.EACCES) {
		t.Errorf("opening a port's queue to receive: %v, want EACCES", err)
	}
	s, err := ns.OpenPort("mine")
	must(t, err)
	defer s.Close()
	must(t, s.Send(ctx, []byte("ok")))
	buf := make([]byte, 8)
	_, err = p.Recv(ctx, buf)
	must(t, err)
}
