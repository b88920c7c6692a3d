package posixmq

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// MaxNameLen is the longest name accepted after the leading slash (NAME_MAX).
const MaxNameLen = sys.MqNameMax

// PrioMax is MQ_PRIO_MAX on Linux: priorities run from 0 to PrioMax-1, and a larger
// priority is received first.
const PrioMax = sys.MqPrioMax

// kernelName validates a queue name as POSIX writes it ("/name") and returns what the
// system call wants (the name without its slash). It rejects, before any system call:
// a name without the leading slash, an empty name, a further slash, a NUL byte, "."
// and ".." (ipc.ErrInvalid, matching unix.EINVAL), and a name longer than MaxNameLen
// after the slash (unix.ENAMETOOLONG).
func kernelName(op, name string) (string, error) {
	if !strings.HasPrefix(name, "/") {
		return "", &ipc.OpError{Op: op, Object: name, Err: fmt.Errorf("queue name must start with '/': %w", ipc.ErrInvalid)}
	}
	bare := name[1:]
	switch {
	case bare == "" || bare == "." || bare == "..":
		return "", &ipc.OpError{Op: op, Object: name, Err: fmt.Errorf("queue name %q names no queue: %w", name, ipc.ErrInvalid)}
	case len(bare) > MaxNameLen:
		return "", &ipc.OpError{Op: op, Object: name, Err: unix.ENAMETOOLONG}
	case strings.ContainsRune(bare, '/'):
		return "", &ipc.OpError{Op: op, Object: name, Err: fmt.Errorf("queue name may hold no '/' after the first: %w", ipc.ErrInvalid)}
	case strings.IndexByte(bare, 0) >= 0:
		return "", &ipc.OpError{Op: op, Object: name, Err: fmt.Errorf("queue name holds a NUL byte: %w", ipc.ErrInvalid)}
	}
	return bare, nil
}

// ValidName reports whether name is a valid queue name, and why not.
func ValidName(name string) error {
	_, err := kernelName("validate", name)
	return err
}
