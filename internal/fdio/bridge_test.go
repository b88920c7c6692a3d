package fdio

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
)

// TestPollerDeadlineRace: in Poller mode a context-bound call puts its context on
// the file as a deadline; a Set*Deadline landing at the same time must not undo it.
// Many times over, a read is cancelled (or its context's deadline passes) while
// another goroutine sets and clears the handle's deadline: each read must end with
// its context's error, soon.
func TestPollerDeadlineRace(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	var f FD
	if err := f.Init(fds[0], Config{Name: "race", Wait: ipc.WaitPoller}); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(ipctest.Seed(t), 0))
	rounds := 3000
	if testing.Short() {
		rounds = 300
	}
	buf := make([]byte, 8)
	for i := 0; i < rounds; i++ {
		after := time.Duration(rng.IntN(300)) * time.Microsecond
		var ctx context.Context
		var cancel context.CancelFunc
		want := context.Canceled
		if i%2 == 0 {
			ctx, cancel = context.WithCancel(context.Background())
			time.AfterFunc(after, cancel)
		} else {
			ctx, cancel = context.WithTimeout(context.Background(), after)
			want = context.DeadlineExceeded
		}
		stop := make(chan struct{})
		setter := make(chan struct{})
		go func() {
			defer close(setter)
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = f.SetDeadline(time.Now().Add(time.Hour), true, false)
				_ = f.SetDeadline(time.Time{}, true, false)
			}
		}()
		done := make(chan error, 1)
		go func() {
			_, err := f.Do(ctx, false, buf, readAttempt)
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, want) {
				t.Errorf("round %d: read returned %v, want %v", i, err, want)
			}
		case <-time.After(ipctest.Slack):
			t.Errorf("round %d: the read outlived its context by %v", i, ipctest.Slack)
			unix.Write(fds[1], []byte("x"))
			<-done
		}
		close(stop)
		<-setter
		cancel()
		if t.Failed() {
			return
		}
	}
}
