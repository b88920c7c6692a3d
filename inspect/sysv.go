package inspect

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/sysv"
)

// sysvProcDir is where the kernel lists the IPC namespace's System V objects, one
// file per kind (the files lsipc(1) and ipcs(1) read). Anyone may read them.
const sysvProcDir = "/proc/sysvipc/"

// sysvTables are the three kinds of System V object: the name of the file listing
// them (also the prefix of their IDs), their Kind, the column holding their id, and
// what fills in the fields of that kind.
var sysvTables = []struct {
	name, kind, idCol string
	fill              func(o *Object, r *sysvRow) error
}{
	{"msg", KindSysVQueue, "msqid", fillSysVQueue},
	{"shm", KindSysVSegment, "shmid", fillSysVSegment},
	{"sem", KindSysVSemSet, "semid", fillSysVSemSet},
}

// readSysV reads /proc/sysvipc/msg, shm and sem into Objects, adding to each queue its
// capacity (msgctl IPC_STAT) and to each semaphore set its semaphores (semctl), which
// /proc does not show. Both need read permission on the object: without it, the
// field is left unset and an Unreadable says why.
func readSysV() ([]Object, []Unreadable) {
	var objs []Object
	var bad []Unreadable
	for _, t := range sysvTables {
		path := sysvProcDir + t.name
		rows, err := readSysVTable(path)
		if err != nil {
			bad = append(bad, Unreadable{What: path, Err: err.Error()}) // names path already
			continue
		}
		for _, r := range rows {
			o := r.object(t.name, t.kind, t.idCol)
			err := t.fill(&o, r)
			if r.err != nil { // a line the kernel would not write: leave it out
				bad = append(bad, Unreadable{What: path, Err: ipc.Wrap("parse", path, r.err).Error()})
				continue
			}
			if err != nil {
				bad = append(bad, Unreadable{What: o.ID, Err: err.Error()})
			}
			objs = append(objs, o)
		}
	}
	return objs, bad
}

// A sysvRow is one line of a /proc/sysvipc file: its values by column name. err is
// the first value that did not parse.
type sysvRow struct {
	cols map[string]string
	err  error
}

// readSysVTable parses the /proc/sysvipc file at path, whose first line names the
// columns.
func readSysVTable(path string) ([]*sysvRow, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	if !sc.Scan() {
		return nil, nil
	}
	head := strings.Fields(sc.Text())
	var rows []*sysvRow
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		r := &sysvRow{cols: make(map[string]string, len(head))}
		for i, h := range head {
			if i < len(f) {
				r.cols[h] = f[i]
			}
		}
		rows = append(rows, r)
	}
	return rows, sc.Err()
}

// num returns column col as a number written in base, recording in r.err a column
// that is missing or does not parse (and returning 0).
func (r *sysvRow) num(col string, base int) int64 {
	v, err := strconv.ParseInt(r.cols[col], base, 64)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("column %s: %q: %w", col, r.cols[col], ipc.ErrInvalid)
	}
	return v
}

// int is num in base 10, as an int.
func (r *sysvRow) int(col string) int { return int(r.num(col, 10)) }

// object returns the fields every kind has: ID, key, owner, creator and mode. Queued
// is -1 (unknown) until the kind's fill says otherwise.
func (r *sysvRow) object(prefix, kind, idCol string) Object {
	key := int32(r.num("key", 10)) // printed as a signed int (key_t)
	id := r.int(idCol)
	return Object{
		ID:         prefix + ":" + strconv.Itoa(id),
		Kind:       kind,
		Name:       sysv.Key(key).String(),
		Key:        &key,
		SysVID:     &id,
		UID:        r.int("uid"),
		GID:        r.int("gid"),
		CreatorUID: r.int("cuid"),
		CreatorGID: r.int("cgid"),
		// perms also carries SHM_DEST and SHM_LOCKED above the permission bits.
		Mode:   uint32(r.num("perms", 8)) & 0o777,
		Queued: -1,
	}
}

// fillSysVQueue fills in a message queue's contents, the processes that last sent and
// received, and its capacity in bytes (qbytes, which only msgctl IPC_STAT tells).
func fillSysVQueue(o *Object, r *sysvRow) error {
	o.Queued = r.num("cbytes", 10)
	o.Messages = r.num("qnum", 10)
	o.LastSendPID = r.int("lspid")
	o.LastRecvPID = r.int("lrpid")
	var ds sys.MsqidDS
	if _, err := sys.MsgctlStat(*o.SysVID, unix.IPC_STAT, &ds); err != nil {
		return ipc.Wrap("msgctl IPC_STAT", o.ID, err)
	}
	o.Capacity = int64(ds.Qbytes)
	return nil
}

// fillSysVSegment fills in a shared memory segment's size, attachments and the
// processes that created it and last attached or detached it.
func fillSysVSegment(o *Object, r *sysvRow) error {
	o.Capacity = r.num("size", 10)
	o.Attached = r.int("nattch")
	o.CreatorPID = r.int("cpid")
	o.LastPID = r.int("lpid")
	return nil
}

// fillSysVSemSet reads each semaphore of a set with semctl: its value, the last
// process to operate on it, and the threads waiting for it to grow or reach zero.
// One semaphore at a time (not GETALL), so that a set removed and its id reused
// with more semaphores meanwhile cannot overrun a buffer. Any failure, EACCES for a
// set the reader may not read included, leaves Semaphores nil.
func fillSysVSemSet(o *Object, r *sysvRow) error {
	n := r.int("nsems")
	sems := make([]Semaphore, n)
	for i := range sems {
		s := &sems[i]
		for _, c := range []struct {
			op  string
			cmd int
			v   *int
		}{
			{"semctl GETVAL", sys.GETVAL, &s.Value},
			{"semctl GETPID", sys.GETPID, &s.PID},
			{"semctl GETNCNT", sys.GETNCNT, &s.WaitingIncrease},
			{"semctl GETZCNT", sys.GETZCNT, &s.WaitingZero},
		} {
			v, err := sys.SemctlInt(*o.SysVID, i, c.cmd, 0)
			if err != nil {
				return ipc.Wrap(c.op, fmt.Sprintf("%s semaphore %d", o.ID, i), err)
			}
			*c.v = v
		}
	}
	o.Semaphores = sems
	return nil
}
