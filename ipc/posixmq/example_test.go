package posixmq_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/posixmq"
)

// exampleName is a queue name private to this process.
func exampleName(s string) string { return fmt.Sprintf("/ipclab-example-%d-%s", os.Getpid(), s) }

func Example() {
	name := exampleName("basic")
	q, err := posixmq.Create(name, posixmq.WithAttr(8, 128))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer posixmq.Remove(name)
	defer q.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = q.Send(ctx, []byte("routine"), 1)
	_ = q.Send(ctx, []byte("urgent"), 9)

	buf := make([]byte, 128) // at least the queue's message size
	for range 2 {
		n, prio, err := q.Recv(ctx, buf)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s (priority %d)\n", buf[:n], prio)
	}
	// Output:
	// urgent (priority 9)
	// routine (priority 1)
}

func ExampleQueue_TryRecv() {
	name := exampleName("try")
	q, err := posixmq.Create(name, posixmq.WithAttr(1, 64))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer posixmq.Remove(name)
	defer q.Close()

	_, _, err = q.TryRecv(make([]byte, 64))
	fmt.Println(errors.Is(err, ipc.ErrWouldBlock))
	// Output: true
}

func ExampleQueue_Notify() {
	name := exampleName("notify")
	q, err := posixmq.Create(name, posixmq.WithAttr(4, 64))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer posixmq.Remove(name)
	defer q.Close()

	n, err := q.Notify()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Stop()

	go q.Send(context.Background(), []byte("hello"), 0)

	<-n.C // no signal, no thread: a goroutine parked in the runtime poller
	buf := make([]byte, 64)
	for {
		k, _, err := q.TryRecv(buf)
		if errors.Is(err, ipc.ErrWouldBlock) {
			break
		}
		fmt.Printf("%s\n", buf[:k])
	}
	// Output: hello
}

func ExampleQueue_Status() {
	name := exampleName("status")
	q, err := posixmq.Create(name, posixmq.WithAttr(4, 64))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer posixmq.Remove(name)
	defer q.Close()

	_ = q.TrySend([]byte("12345"), 0)
	st, _ := q.Status()
	depth, _ := q.Len()
	fmt.Println(st.QSize, depth)
	// Output: 5 1
}

func ExampleQueue_NotifyKernel() {
	name := exampleName("kernel-notify")
	q, err := posixmq.Create(name, posixmq.WithAttr(4, 64))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer posixmq.Remove(name)
	defer q.Close()

	kn, err := q.NotifyKernel() // the queue's single mq_notify slot is ours now
	if err != nil {
		fmt.Println(err)
		return
	}
	defer kn.Cancel()
	_, err = q.NotifyKernel()
	fmt.Println("second registration:", errors.Is(err, unix.EBUSY))

	_ = q.TrySend([]byte("wake"), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println("fired:", kn.Wait(ctx) == nil)
	// Output:
	// second registration: true
	// fired: true
}
