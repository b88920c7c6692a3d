package inspect

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/posixmq"
)

// defaultMqueueDir is where the mqueue file system is usually mounted.
const defaultMqueueDir = "/dev/mqueue"

// mqueueMagic is the mqueue file system's type (MQUEUE_MAGIC, statfs(2)).
const mqueueMagic = 0x19800202

// errNotMqueue says that a directory is not an mqueue mount.
var errNotMqueue = errors.New("not an mqueue file system mount")

// readPosixQueues lists the POSIX message queues of the mqueue file system mounted at
// dir ("" for /dev/mqueue), and returns the file system's device number: a queue
// descriptor seen through /proc/PID/fd/N stats to that device and the queue's
// Inode. A dir that is not an mqueue mount gives an Unreadable and nothing else.
//
// Each queue is opened read-only and non-blocking for a moment, to read its status
// line (QSIZE, NOTIFY_PID) and its attributes (mq_getattr); that changes nothing
// another process can see. It would end an mq_notify registration this process
// itself holds on the queue (the kernel drops it when its owner closes any
// descriptor of the queue), so the reader must not be a process that registers.
func readPosixQueues(dir string) (objs []Object, dev uint64, bad []Unreadable) {
	if dir == "" {
		dir = defaultMqueueDir
	}
	dirfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, []Unreadable{{What: dir, Err: ipc.Wrap("open", dir, err).Error()}}
	}
	d := os.NewFile(uintptr(dirfd), dir)
	defer d.Close()
	var fs unix.Statfs_t
	var st unix.Stat_t
	if err := unix.Fstatfs(dirfd, &fs); err != nil {
		return nil, 0, []Unreadable{{What: dir, Err: ipc.Wrap("statfs", dir, err).Error()}}
	}
	if fs.Type != mqueueMagic {
		return nil, 0, []Unreadable{{What: dir, Err: ipc.Wrap("statfs", dir, errNotMqueue).Error()}}
	}
	if err := unix.Fstat(dirfd, &st); err != nil {
		return nil, 0, []Unreadable{{What: dir, Err: ipc.Wrap("stat", dir, err).Error()}}
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, st.Dev, []Unreadable{{What: dir, Err: err.Error()}} // names dir already
	}
	for _, name := range names {
		o, err := readPosixQueue(dirfd, name)
		if errors.Is(err, unix.ENOENT) {
			continue // removed since the listing
		}
		if err != nil {
			bad = append(bad, Unreadable{What: o.ID, Err: err.Error()})
		}
		objs = append(objs, o)
	}
	return objs, st.Dev, bad
}

// readPosixQueue reads the queue name of the mqueue mount open at dirfd. A queue it
// cannot open (no read permission) still gives an Object, with its owner and mode
// but Queued and Messages -1, and the error.
func readPosixQueue(dirfd int, name string) (Object, error) {
	o := Object{ID: "mq:/" + name, Kind: KindPosixMQ, Name: "/" + name, Queued: -1, Messages: -1}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		var st unix.Stat_t
		if serr := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); serr != nil {
			return o, ipc.Wrap("stat", o.Name, serr)
		}
		setPosixQueueOwner(&o, &st)
		return o, ipc.Wrap("open", o.Name, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return o, ipc.Wrap("fstat", o.Name, err)
	}
	setPosixQueueOwner(&o, &st)
	var buf [128]byte
	n, err := unix.Pread(fd, buf[:], 0)
	if err != nil {
		return o, ipc.Wrap("read status", o.Name, err)
	}
	status, err := posixmq.ParseStatus(string(buf[:n]))
	if err != nil {
		return o, ipc.Wrap("read status", o.Name, err)
	}
	o.Queued, o.NotifyPID = int64(status.QSize), status.NotifyPID
	var attr sys.MqAttr
	if err := sys.MqGetsetattr(fd, nil, &attr); err != nil {
		return o, ipc.Wrap("mq_getattr", o.Name, err)
	}
	o.Messages, o.Capacity = attr.Curmsgs, attr.Maxmsg*attr.Msgsize
	return o, nil
}

// setPosixQueueOwner copies a queue file's inode, owner and permission bits into o.
func setPosixQueueOwner(o *Object, st *unix.Stat_t) {
	o.Inode, o.UID, o.GID, o.Mode = st.Ino, int(st.Uid), int(st.Gid), st.Mode&0o777
}
