package posixmq_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/posixmq"
)

var strategies = []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel}

func TestSendRecvPriorities(t *testing.T) {
	for _, w := range strategies {
		t.Run(w.String(), func(t *testing.T) {
			q := newQueue(t, posixmq.WithAttr(8, 64), posixmq.WithWait(w))
			ctx := context.Background()
			msgs := []struct {
				data string
				prio uint
			}{{"low-1", 1}, {"high-1", 9}, {"low-2", 1}, {"mid", 5}, {"high-2", 9}, {"zero", 0}}
			for _, m := range msgs {
				must(t, q.Send(ctx, []byte(m.data), m.prio))
			}
			if n, err := q.Len(); err != nil || n != len(msgs) {
				t.Fatalf("Len = %d, %v; want %d", n, err, len(msgs))
			}
			want := []string{"high-1/9", "high-2/9", "mid/5", "low-1/1", "low-2/1", "zero/0"}
			buf := make([]byte, 64)
			for _, w := range want {
				n, prio, err := q.Recv(ctx, buf)
				must(t, err)
				if got := fmt.Sprintf("%s/%d", buf[:n], prio); got != w {
					t.Errorf("got %s, want %s", got, w)
				}
			}
			if _, _, err := q.TryRecv(buf); !errors.Is(err, ipc.ErrWouldBlock) || !errors.Is(err, unix.EAGAIN) {
				t.Errorf("TryRecv on empty: %v", err)
			}
		})
	}
}

func TestTrySendFull(t *testing.T) {
	for _, w := range strategies {
		t.Run(w.String(), func(t *testing.T) {
			q := newQueue(t, posixmq.WithAttr(2, 16), posixmq.WithWait(w))
			must(t, q.TrySend([]byte("a"), 0))
			must(t, q.TrySend([]byte("b"), 0))
			err := q.TrySend([]byte("c"), 0)
			wantErr(t, "TrySend full", err, ipc.ErrWouldBlock)
			wantErr(t, "TrySend full", err, unix.EAGAIN)
			var oe *ipc.OpError
			if !errors.As(err, &oe) || oe.Op != "mq_timedsend" || oe.Object != q.Name() {
				t.Errorf("error %#v is not an OpError for mq_timedsend on %s", err, q.Name())
			}
		})
	}
}

func TestContext(t *testing.T) {
	for _, w := range strategies {
		t.Run(w.String(), func(t *testing.T) {
			q := newQueue(t, posixmq.WithAttr(1, 16), posixmq.WithWait(w))
			buf := make([]byte, 16)

			// Deadline on an empty queue.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			_, _, err := q.Recv(ctx, buf)
			cancel()
			wantErr(t, "Recv past deadline", err, context.DeadlineExceeded)

			// Cancellation of a blocked receive.
			ctx, cancel = context.WithCancel(context.Background())
			go func() { time.Sleep(10 * time.Millisecond); cancel() }()
			_, _, err = q.Recv(ctx, buf)
			wantErr(t, "Recv cancelled", err, context.Canceled)

			// Deadline on a full queue.
			must(t, q.TrySend([]byte("x"), 0))
			ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
			err = q.Send(ctx, []byte("y"), 0)
			cancel()
			wantErr(t, "Send past deadline", err, context.DeadlineExceeded)

			// A call that can complete succeeds even with an ended context (POSIX
			// mq_timedreceive assertion 18 for mq_timedsend, likewise).
			ctx, cancel = context.WithCancel(context.Background())
			cancel()
			n, _, err := q.Recv(ctx, buf)
			if err != nil || string(buf[:n]) != "x" {
				t.Errorf("Recv with ended ctx and a message: %q, %v", buf[:n], err)
			}
			must(t, q.Send(ctx, []byte("z"), 0))

			// The queue still works after all that.
			n, _, err = q.Recv(context.Background(), buf)
			if err != nil || string(buf[:n]) != "z" {
				t.Errorf("Recv after: %q, %v", buf[:n], err)
			}
		})
	}
}

func TestBlockingWakes(t *testing.T) {
	for _, w := range strategies {
		t.Run(w.String(), func(t *testing.T) {
			q := newQueue(t, posixmq.WithAttr(1, 16), posixmq.WithWait(w))
			// Receiver blocks, sender wakes it.
			got := make(chan string, 1)
			go func() {
				buf := make([]byte, 16)
				n, _, err := q.Recv(context.Background(), buf)
				if err != nil {
					got <- err.Error()
					return
				}
				got <- string(buf[:n])
			}()
			time.Sleep(5 * time.Millisecond)
			must(t, q.Send(context.Background(), []byte("wake"), 3))
			if s := <-got; s != "wake" {
				t.Fatalf("blocked Recv got %q", s)
			}
			// Sender blocks on a full queue, receiver makes room.
			must(t, q.Send(context.Background(), []byte("1"), 0))
			sent := make(chan error, 1)
			go func() { sent <- q.Send(context.Background(), []byte("2"), 0) }()
			select {
			case err := <-sent:
				t.Fatalf("Send on a full queue returned at once: %v", err)
			case <-time.After(10 * time.Millisecond):
			}
			buf := make([]byte, 16)
			if _, _, err := q.Recv(context.Background(), buf); err != nil {
				t.Fatal(err)
			}
			must(t, <-sent)
			n, _, err := q.Recv(context.Background(), buf)
			if err != nil || string(buf[:n]) != "2" {
				t.Fatalf("second message %q, %v", buf[:n], err)
			}
		})
	}
}

func TestCloseUnblocks(t *testing.T) {
	for _, w := range strategies {
		t.Run(w.String(), func(t *testing.T) {
			q := newQueue(t, posixmq.WithAttr(1, 16), posixmq.WithWait(w))
			errc := make(chan error, 2)
			go func() {
				_, _, err := q.Recv(context.Background(), make([]byte, 16))
				errc <- err
			}()
			go func() {
				_, _, err := q.Recv(context.Background(), make([]byte, 16))
				errc <- err
			}()
			time.Sleep(10 * time.Millisecond)
			must(t, q.Close())
			for range 2 {
				wantErr(t, "Recv on closed", <-errc, os.ErrClosed)
			}
			if err := q.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			wantErr(t, "TrySend after Close", q.TrySend([]byte("x"), 0), os.ErrClosed)
			_, err := q.Attr()
			wantErr(t, "Attr after Close", err, os.ErrClosed)
			if fd := q.Fd(); fd != -1 {
				t.Errorf("Fd after Close returned %d, want -1 (the number may name another file by now)", fd)
			}
		})
	}
}

func TestConcurrentReceivers(t *testing.T) {
	for _, w := range strategies {
		t.Run(w.String(), func(t *testing.T) {
			q := newQueue(t, posixmq.WithAttr(4, 32), posixmq.WithWait(w))
			const total = 400
			var wg sync.WaitGroup
			seen := make([]int, total)
			var mu sync.Mutex
			ctx, cancel := patientContext(t)
			defer cancel()
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, 32)
					for {
						n, _, err := q.Recv(ctx, buf)
						if err != nil {
							t.Error(err)
							return
						}
						var i int
						fmt.Sscan(string(buf[:n]), &i)
						if i < 0 {
							return
						}
						mu.Lock()
						seen[i]++
						mu.Unlock()
					}
				}()
			}
			for i := range total {
				must(t, q.Send(ctx, []byte(fmt.Sprint(i)), 0))
			}
			for range 4 {
				must(t, q.Send(ctx, []byte("-1"), 0))
			}
			wg.Wait()
			for i, c := range seen {
				if c != 1 {
					t.Fatalf("message %d received %d times", i, c)
				}
			}
		})
	}
}

// TestPollerHoldsNoThread checks that goroutines blocked in Recv in poller mode do not
// each hold an OS thread.
func TestPollerHoldsNoThread(t *testing.T) {
	const blocked = 50
	var qs []*posixmq.Queue
	for range blocked {
		qs = append(qs, newQueue(t, posixmq.WithAttr(1, 8)))
	}
	threads := func() int {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Skip(err)
		}
		return len(ents)
	}
	before := threads()
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	for _, q := range qs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := q.Recv(ctx, make([]byte, 8))
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Recv: %v", err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	runtime.Gosched()
	during := threads()
	cancel()
	wg.Wait()
	if during-before >= blocked/2 {
		t.Errorf("%d goroutines blocked in Recv added %d threads", blocked, during-before)
	}
}

func TestAttrAndStatus(t *testing.T) {
	for _, w := range strategies {
		t.Run(w.String(), func(t *testing.T) {
			q := newQueue(t, posixmq.WithAttr(5, 100), posixmq.WithWait(w))
			a, err := q.Attr()
			must(t, err)
			if a.MaxMsg != 5 || a.MsgSize != 100 || a.CurMsgs != 0 || a.Nonblock {
				t.Errorf("Attr = %+v", a)
			}
			must(t, q.Send(context.Background(), []byte("12345"), 1))
			must(t, q.Send(context.Background(), []byte("678"), 2))
			st, err := q.Status()
			must(t, err)
			if st.QSize != 8 || st.NotifyPID != 0 {
				t.Errorf("Status = %+v, want QSIZE 8", st)
			}
			if mqueueMounted() == nil {
				fs, err := posixmq.StatusOf("/dev/mqueue", q.Name())
				if err == nil && fs.QSize != st.QSize {
					t.Errorf("/dev/mqueue says %+v, descriptor says %+v", fs, st)
				}
			}
			// Only O_NONBLOCK is settable.
			old, err := q.SetAttr(posixmq.Attr{MaxMsg: 1, MsgSize: 1, CurMsgs: 9, Nonblock: true})
			must(t, err)
			if old.Nonblock || old.MaxMsg != 5 || old.CurMsgs != 2 {
				t.Errorf("SetAttr returned old %+v", old)
			}
			a, err = q.Attr()
			must(t, err)
			if !a.Nonblock || a.MaxMsg != 5 || a.MsgSize != 100 || a.CurMsgs != 2 {
				t.Errorf("after SetAttr: %+v", a)
			}
			buf := make([]byte, 100)
			for range 2 {
				_, _, err := q.Recv(context.Background(), buf)
				must(t, err)
			}
			_, _, err = q.Recv(context.Background(), buf)
			wantErr(t, "Recv with Nonblock on empty", err, ipc.ErrWouldBlock)
			_, err = q.SetAttr(posixmq.Attr{})
			must(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			_, _, err = q.Recv(ctx, buf)
			wantErr(t, "Recv blocking again", err, context.DeadlineExceeded)
		})
	}
}

func TestNames(t *testing.T) {
	long := "/" + string(bytes.Repeat([]byte("n"), posixmq.MaxNameLen))
	for _, tc := range []struct {
		name string
		want error
	}{
		{"", ipc.ErrInvalid},
		{"noslash", ipc.ErrInvalid},
		{"/", ipc.ErrInvalid},
		{"/a/b", ipc.ErrInvalid},
		{"/.", ipc.ErrInvalid},
		{"/..", ipc.ErrInvalid},
		{"/a\x00b", ipc.ErrInvalid},
		{long + "x", unix.ENAMETOOLONG},
		{long, nil},
	} {
		err := posixmq.ValidName(tc.name)
		if tc.want == nil {
			if err != nil {
				t.Errorf("ValidName(%.20q): %v", tc.name, err)
			}
			continue
		}
		wantErr(t, fmt.Sprintf("ValidName(%.20q)", tc.name), err, tc.want)
		if tc.want == ipc.ErrInvalid {
			wantErr(t, "also", err, unix.EINVAL)
		}
		_, err = posixmq.Create(tc.name)
		wantErr(t, fmt.Sprintf("Create(%.20q)", tc.name), err, tc.want)
	}
}

func TestModeValidation(t *testing.T) {
	_, err := posixmq.Create(uniqueName(t), posixmq.WithMode(0o666))
	wantErr(t, "mode 0666 without AllowWorld", err, ipc.ErrInvalid)
	_, err = posixmq.Create(uniqueName(t), posixmq.WithAttr(0, 10))
	wantErr(t, "maxmsg 0", err, ipc.ErrInvalid)
	_, err = posixmq.Create(uniqueName(t), posixmq.WithAttr(10, -1))
	wantErr(t, "msgsize -1", err, ipc.ErrInvalid)
	_, err = posixmq.Open(uniqueName(t), posixmq.WithAttr(10, 10))
	wantErr(t, "Open with WithAttr", err, ipc.ErrInvalid)
	_, err = posixmq.Create(uniqueName(t), posixmq.WithWait(ipc.WaitSpin))
	wantErr(t, "WaitSpin", err, ipc.ErrInvalid)

	q := newQueue(t, posixmq.WithMode(0o644), posixmq.AllowWorld())
	var st unix.Stat_t
	must(t, unix.Fstat(q.Fd(), &st))
	old := unix.Umask(0)
	unix.Umask(old)
	if want := uint32(0o644) &^ uint32(old); st.Mode&0o777 != want {
		t.Errorf("mode %#o, want %#o", st.Mode&0o777, want)
	}
	q2 := newQueue(t)
	must(t, unix.Fstat(q2.Fd(), &st))
	if st.Mode&0o777 != 0o600 {
		t.Errorf("default mode %#o, want 0600", st.Mode&0o777)
	}
	fl, err := unix.FcntlInt(uintptr(q2.Fd()), unix.F_GETFD, 0)
	must(t, err)
	if fl&unix.FD_CLOEXEC == 0 {
		t.Error("descriptor is not close-on-exec")
	}
}

func TestOpenOrCreateUntrusted(t *testing.T) {
	name := uniqueName(t)
	q, err := posixmq.Create(name, posixmq.WithMode(0o644), posixmq.AllowWorld())
	must(t, err)
	unlinkAtCleanup(t, name)
	defer q.Close()
	// Existing queue with a mode wider than the 0600 asked for.
	_, err = posixmq.OpenOrCreate(name)
	wantErr(t, "OpenOrCreate over a wider queue", err, ipc.ErrUntrustedObject)
	q2, err := posixmq.OpenOrCreate(name, posixmq.TrustExisting())
	must(t, err)
	q2.Close()
}

func TestFromFd(t *testing.T) {
	q := newQueue(t, posixmq.WithAttr(2, 16), posixmq.WithWait(ipc.WaitPoller))
	f, err := q.File()
	must(t, err)
	// FromFd takes ownership of its descriptor: hand it one that f does not own
	// (f's finalizer would otherwise close the number again, whatever it is by then).
	fd, err := unix.Dup(int(f.Fd()))
	must(t, err)
	must(t, f.Close())
	q2, err := posixmq.FromFd(fd, posixmq.WithWait(ipc.WaitKernel))
	must(t, err)
	defer q2.Close()
	must(t, q.Send(context.Background(), []byte("via fd"), 4))
	buf := make([]byte, 16)
	n, prio, err := q2.Recv(context.Background(), buf)
	if err != nil || string(buf[:n]) != "via fd" || prio != 4 {
		t.Fatalf("Recv via adopted fd: %q %d %v", buf[:n], prio, err)
	}
	// The poller handle's descriptor stayed non-blocking although the adopted
	// (independent) description is blocking.
	fl, err := unix.FcntlInt(uintptr(q.Fd()), unix.F_GETFL, 0)
	must(t, err)
	if fl&unix.O_NONBLOCK == 0 {
		t.Error("File changed the original's O_NONBLOCK")
	}
	// Not a queue: EBADF.
	r, w, err := os.Pipe()
	must(t, err)
	defer w.Close()
	rfd, err := unix.Dup(int(r.Fd()))
	must(t, err)
	r.Close()
	_, err = posixmq.FromFd(rfd)
	wantErr(t, "FromFd(pipe)", err, unix.EBADF)
}
