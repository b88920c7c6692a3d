package bench

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
)

// The posix-mq raw baseline: blocking queue descriptors and bare mq_timedsend and
// mq_timedreceive (no timeout), retried on EINTR, as a C program would do it.

func rawMQSetup(size int) (Endpoint, []*os.File, error) {
	fds := [2]int{-1, -1}
	var files []*os.File
	fail := func(err error) (Endpoint, []*os.File, error) {
		for _, fd := range fds {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
		for _, f := range files {
			f.Close()
		}
		return nil, nil, err
	}
	for i, dir := range []string{"to-peer", "from-peer"} {
		name := mqBenchName("raw-" + dir)[1:]
		attr := sys.MqAttr{Maxmsg: mqDepth, Msgsize: int64(size)}
		fd, err := sys.MqOpen(name, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC, 0o600, &attr)
		if err != nil {
			return fail(fmt.Errorf("mq_open: %w", err))
		}
		fds[i] = fd
		if err := sys.MqUnlink(name); err != nil {
			return fail(fmt.Errorf("mq_unlink: %w", err))
		}
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return fail(err)
		}
		files = append(files, os.NewFile(uintptr(dup), "/"+name))
	}
	return &rawMQEndpoint{send: fds[0], recv: fds[1], buf: make([]byte, size)}, files, nil
}

type rawMQEndpoint struct {
	send, recv int
	buf        []byte
}

func (e *rawMQEndpoint) Send(p []byte) error {
	for {
		err := sys.MqTimedsend(e.send, p, 0, nil)
		if err != unix.EINTR {
			return err
		}
	}
}

func (e *rawMQEndpoint) Recv(p []byte) error {
	dst := p
	if len(p) < len(e.buf) {
		dst = e.buf
	}
	for {
		n, _, err := sys.MqTimedreceive(e.recv, dst, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n != len(p) {
			return fmt.Errorf("posix-mq raw: received %d bytes, want %d", n, len(p))
		}
		if len(p) < len(e.buf) {
			copy(p, dst[:n])
		}
		return nil
	}
}

// Close closes both descriptors; it is idempotent.
func (e *rawMQEndpoint) Close() error {
	var err error
	for _, fd := range []*int{&e.send, &e.recv} {
		if *fd >= 0 {
			if cerr := unix.Close(*fd); cerr != nil && err == nil {
				err = cerr
			}
			*fd = -1
		}
	}
	return err
}
