package fdio

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
)

// modePair returns two connected datagram sockets in mode w.
func modePair(t *testing.T, w ipc.WaitStrategy) (a, b *FD) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b = new(FD), new(FD)
	cfg := Config{Name: "pair", Wait: w,
		ReadCalls: []uintptr{unix.SYS_RECVFROM}, WriteCalls: []uintptr{unix.SYS_SENDTO}}
	if err := a.Init(fds[0], cfg); err != nil {
		t.Fatal(err)
	}
	if err := b.Init(fds[1], cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

type pairResult struct {
	n    int
	sent bool
	err  error
}

// TestPair holds Pair, the send-then-receive of door calls and RPCs, to Do's
// semantics in every mode: the reply arrives; a reply that comes after the
// watchdog's tick (Auto: the call moves from the kernel to the hub between its two
// halves) arrives; Close while it waits for the reply ends it with os.ErrClosed and
// sent; a context or deadline ends the wait.
func TestPair(t *testing.T) {
	for _, w := range []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel} {
		t.Run(w.String(), func(t *testing.T) {
			serve := func(b *FD, delay time.Duration) <-chan struct{} {
				got := make(chan struct{})
				go func() {
					buf := make([]byte, 16)
					n, err := b.Do(context.Background(), false, buf, readAttempt)
					close(got)
					if err != nil || delay < 0 {
						return
					}
					time.Sleep(delay)
					b.Do(context.Background(), true, append([]byte("re:"), buf[:n]...), writeAttempt)
				}()
				return got
			}
			call := func(a *FD, ctx context.Context) <-chan pairResult {
				done := make(chan pairResult, 1)
				go func() {
					buf := make([]byte, 16)
					n, sent, err := a.Pair(ctx, []byte("ping"), writeAttempt, buf, readAttempt)
					if err == nil && string(buf[:n]) != "re:ping" {
						err = errors.New("reply " + string(buf[:n]))
					}
					done <- pairResult{n, sent, err}
				}()
				return done
			}
			wait := func(done <-chan pairResult) pairResult {
				t.Helper()
				select {
				case r := <-done:
					return r
				case <-time.After(ipctest.Slack):
					t.Fatal("Pair did not return")
				}
				panic("unreachable")
			}

			a, b := modePair(t, w)
			serve(b, 0)
			if r := wait(call(a, context.Background())); r.err != nil || !r.sent || r.n != 7 {
				t.Fatalf("round trip: %+v", r)
			}

			serve(b, 4*StuckAfter) // past the watchdog's tick
			if r := wait(call(a, context.Background())); r.err != nil || !r.sent {
				t.Fatalf("late reply: %+v", r)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			got := serve(b, -1)
			r := wait(call(a, ctx))
			<-got
			if !errors.Is(r.err, context.DeadlineExceeded) || !r.sent {
				t.Fatalf("context ended while waiting for the reply: %+v", r)
			}

			a.SetDeadline(time.Now().Add(30*time.Millisecond), true, false)
			got = serve(b, -1)
			r = wait(call(a, context.Background()))
			<-got
			if !errors.Is(r.err, os.ErrDeadlineExceeded) || !r.sent {
				t.Fatalf("read deadline passed while waiting for the reply: %+v", r)
			}
			a.SetDeadline(time.Time{}, true, false)

			got = serve(b, -1)
			done := call(a, context.Background())
			<-got
			time.Sleep(2 * StuckAfter)
			a.Close()
			if r := wait(done); !errors.Is(r.err, os.ErrClosed) || !r.sent {
				t.Fatalf("Close while waiting for the reply: %+v", r)
			}
			if _, sent, err := a.Pair(context.Background(), []byte("x"), writeAttempt, make([]byte, 1), readAttempt); !errors.Is(err, os.ErrClosed) || sent {
				t.Fatalf("Pair after Close: sent %v, %v", sent, err)
			}
		})
	}
}
