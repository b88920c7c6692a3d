package pipe_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/pipe"
)

func Example() {
	r, w, err := pipe.New()
	if err != nil {
		panic(err)
	}
	defer r.Close()
	go func() {
		w.Write([]byte("hello through the kernel"))
		w.Close() // the reader sees EOF after the data
	}()
	data, err := io.ReadAll(r)
	fmt.Printf("%s %v\n", data, err)
	// Output: hello through the kernel <nil>
}

func ExampleReader_TryRead() {
	r, w, _ := pipe.New()
	defer r.Close()
	defer w.Close()
	_, err := r.TryRead(make([]byte, 16))
	fmt.Println(errors.Is(err, ipc.ErrWouldBlock))
	// Output: true
}

func ExamplePacket() {
	r, w, _ := pipe.New(pipe.Packet())
	defer r.Close()
	defer w.Close()
	w.Write([]byte("one"))
	w.Write([]byte("two"))
	buf := make([]byte, pipe.PipeBuf)
	n, _ := r.Read(buf)
	fmt.Println(string(buf[:n])) // one packet per read, never merged
	// Output: one
}

// A packet read into a shorter buffer loses the rest of the packet, and says so.
func ExamplePacket_truncated() {
	r, w, _ := pipe.New(pipe.Packet())
	defer r.Close()
	defer w.Close()
	w.Write([]byte("AAAAaaaa"))
	w.Write([]byte("BBBB"))
	buf := make([]byte, 4)
	n, err := r.Read(buf)
	fmt.Println(string(buf[:n]), errors.Is(err, ipc.ErrTruncated))
	n, err = r.Read(buf)
	fmt.Println(string(buf[:n]), err)
	// Output:
	// AAAA true
	// BBBB <nil>
}

func ExampleWithWait() {
	// The reading thread sleeps inside read(2), where eBPF probes see it, and is
	// still cancellable.
	r, w, _ := pipe.New(pipe.WithWait(ipc.WaitKernel))
	defer r.Close()
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.ReadContext(ctx, make([]byte, 1))
	fmt.Println(errors.Is(err, context.Canceled))
	// Output: true
}

// Hand the read end to a child process, which adopts it with pipe.ReaderFromFd(3).
func ExampleReader_File() {
	r, w, _ := pipe.New()
	defer w.Close()
	f, _ := r.File() // a blocking, separate open file description for the child
	r.Close()
	cmd := exec.Command("cat")
	cmd.Stdin = f
	_ = cmd.Start()
	f.Close()
	w.Write([]byte("to the child\n"))
}
