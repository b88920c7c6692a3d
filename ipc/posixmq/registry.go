package posixmq

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// The kernel removes a process's mq_notify registration on a queue when that process
// closes any descriptor of the queue (mqueue's flush, on every close, dup'd
// descriptors included). So that the package's own descriptors never end a
// registration made with NotifyKernel, it keeps a record per queue of this process's
// live registration, and every descriptor it opens and closes by itself (Status on a
// write-only handle, StatusOf, a Notifier's) is closed through that record: at once
// when no registration is live, otherwise when the registration ends (fires, is
// cancelled, or its queue is closed). The record's lock also serialises registering,
// cancelling and those closes, so none can slip between a check and the act.

// qid identifies a queue: the device and inode of its mqueue file (the same whether
// the file was opened with mq_open or through a mount of the mqueue file system).
type qid struct{ dev, ino uint64 }

// queueID returns the identity of the queue open at fd.
func queueID(fd int) (qid, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return qid{}, err
	}
	return qid{uint64(st.Dev), st.Ino}, nil
}

// queueRecs holds the records of the queues in use, by identity.
var queueRecs = struct {
	mu sync.Mutex
	m  map[qid]*queueRec
}{m: map[qid]*queueRec{}}

// queueRec is the record of one queue in this process.
type queueRec struct {
	id    qid
	users int // lockQueue calls not yet unlocked; guarded by queueRecs.mu

	mu   sync.Mutex
	live *KernelNotification // the registration made through the package, if any
	kept []keptFd            // descriptors to close when live ends
}

// keptFd is a descriptor whose close waits for the registration to end: a raw
// descriptor (read tells whether it was opened for reading) or a file.
type keptFd struct {
	fd   int
	file *os.File
	read bool
}

// lockQueue returns the record of queue id, locked; the caller calls unlock.
func lockQueue(id qid) *queueRec {
	queueRecs.mu.Lock()
	r := queueRecs.m[id]
	if r == nil {
		r = &queueRec{id: id}
		queueRecs.m[id] = r
	}
	r.users++
	queueRecs.mu.Unlock()
	r.mu.Lock()
	return r
}

// unlock unlocks r and forgets it if nobody uses it and it holds nothing.
func (r *queueRec) unlock() {
	r.mu.Unlock()
	queueRecs.mu.Lock()
	// With no other user, nobody can change r between its unlock and here.
	if r.users--; r.users == 0 && r.live == nil && len(r.kept) == 0 {
		delete(queueRecs.m, r.id)
	}
	queueRecs.mu.Unlock()
}

// liveLocked reports whether this process holds a live registration made through the
// package on the queue. A registration the kernel has ended (its message is waiting
// on the socket) is no longer live: its kept descriptors are closed now.
func (r *queueRec) liveLocked() bool {
	if r.live != nil && r.live.fired() {
		r.endLocked()
	}
	return r.live != nil
}

// endLocked records that the registration has ended and closes the kept descriptors.
func (r *queueRec) endLocked() {
	r.live = nil
	for _, k := range r.kept {
		k.close()
	}
	r.kept = nil
}

// endLockedIf ends the registration if it is k.
func (r *queueRec) endLockedIf(k *KernelNotification) {
	if r.live == k {
		r.endLocked()
	}
}

// closeLocked closes the descriptor, or keeps it open until the live registration
// ends.
func (r *queueRec) closeLocked(k keptFd) {
	if r.liveLocked() {
		r.kept = append(r.kept, k)
		return
	}
	k.close()
}

// readableLocked returns a kept descriptor open for reading, or -1.
func (r *queueRec) readableLocked() int {
	for _, k := range r.kept {
		if k.file == nil && k.read {
			return k.fd
		}
	}
	return -1
}

func (k keptFd) close() {
	if k.file != nil {
		k.file.Close()
		return
	}
	unix.Close(k.fd)
}

// closeQueueFd closes a descriptor of queue id that the package opened by itself (see
// the comment at the top of this file).
func closeQueueFd(id qid, k keptFd) {
	r := lockQueue(id)
	r.closeLocked(k)
	r.unlock()
}
