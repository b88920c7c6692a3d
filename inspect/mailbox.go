package inspect

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/mailbox"
)

// mailboxEntrySuffix ends the name of a namespace's entry files ("NAME.entry").
const mailboxEntrySuffix = ".entry"

// readMailboxes reads the ipclab mailbox namespaces in dirs (mailbox.DefaultDir()
// when there are none) into Objects of KindMailbox. A directory that does not exist
// holds no entries; one that mailbox.Open refuses (not owned by this user, or open
// to others) gives an Unreadable. As mailbox.Namespace.Entries does, it lists only
// the entries this user owns.
func readMailboxes(dirs []string) ([]Object, []Unreadable) {
	if len(dirs) == 0 {
		dirs = []string{mailbox.DefaultDir()}
	}
	var objs []Object
	var bad []Unreadable
	for _, dir := range dirs {
		// mailbox.Open creates a missing directory; a reader must not.
		if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			bad = append(bad, Unreadable{What: dir, Err: err.Error()})
			continue
		}
		ns, err := mailbox.Open(dir)
		if err != nil {
			bad = append(bad, Unreadable{What: dir, Err: err.Error()})
			continue
		}
		recs, err := ns.Entries()
		if err != nil {
			bad = append(bad, Unreadable{What: dir, Err: err.Error()})
			continue
		}
		for _, rec := range recs {
			o, err := mailboxObject(ns.Dir(), rec)
			if errors.Is(err, unix.ENOENT) {
				continue // removed since the listing
			}
			if err != nil {
				bad = append(bad, Unreadable{What: o.ID, Err: err.Error()})
			}
			objs = append(objs, o)
		}
	}
	return objs, bad
}

// mailboxObject turns the record of namespace dir into an Object, with the owner and
// mode of its entry file.
func mailboxObject(dir string, rec mailbox.Record) (Object, error) {
	o := Object{
		ID:     "mailbox:" + rec.Name,
		Kind:   KindMailbox,
		Name:   rec.Name,
		Queued: -1,
		Mailbox: &MailboxEntry{
			Dir:        dir,
			Kind:       rec.Kind,
			Backend:    rec.Backend,
			Object:     rec.Object,
			ObjectID:   mailboxObjectID(rec),
			OwnerPID:   rec.Owner.PID,
			Persistent: rec.Persistent,
			Live:       rec.Owner.Alive(),
		},
	}
	path := filepath.Join(dir, rec.Name+mailboxEntrySuffix)
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return o, ipc.Wrap("lstat", path, err)
	}
	o.UID, o.GID, o.Mode = int(st.Uid), int(st.Gid), st.Mode&0o777
	return o, nil
}

// mailboxObjectID returns the ID this package gives the kernel object a record
// names: "mq:/NAME" for a POSIX queue, "msg:ID" for a System V queue, and "" for a
// link's socket, which is known by inode, not path.
func mailboxObjectID(rec mailbox.Record) string {
	switch rec.Backend {
	case "posixmq":
		return "mq:" + rec.Object
	case "sysv":
		return "msg:" + rec.Object
	}
	return ""
}
