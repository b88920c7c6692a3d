package inspect

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc/sysv"
)

// Helpers: processes other than the test that act on System V objects, so that the
// kernel records their pid and not the test's.

// sysv-send: ID SIZE... sends a message of each size (type 1) to queue ID.
var _ = ipctest.Helper("sysv-send", func(args []string) int {
	for _, size := range args[1:] {
		buf := make([]byte, sys.MsgHeaderSize+mustAtoi(size))
		binary.NativeEndian.PutUint64(buf, 1)
		if err := sys.Msgsnd(mustAtoi(args[0]), buf, unix.IPC_NOWAIT); err != nil {
			fmt.Println("msgsnd:", err)
			return 1
		}
	}
	return 0
})

// sysv-attach: ID... attaches each segment, signals, and waits until killed.
var _ = ipctest.Helper("sysv-attach", func(args []string) int {
	for _, id := range args {
		if _, err := unix.SysvShmAttach(mustAtoi(id), 0, 0); err != nil {
			fmt.Println("shmat:", err)
			return 1
		}
	}
	ipctest.Signal()
	ipctest.Await()
	return 0
})

// sysv-semop: ID NUM OP signals, then adds OP to semaphore NUM of set ID. An
// operation that has to wait blocks until the helper is killed.
var _ = ipctest.Helper("sysv-semop", func(args []string) int {
	op := []sysv.SemOp{{Num: uint16(mustAtoi(args[1])), Op: int16(mustAtoi(args[2]))}}
	ipctest.Signal()
	if err := sys.Semtimedop(mustAtoi(args[0]), op, nil); err != nil {
		fmt.Println("semop:", err)
		return 1
	}
	return 0
})

// mustAtoi parses a helper's argument.
func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// TestSysVMatchesTools is INS-01: readSysV reports the System V queues, segments
// and semaphore sets exactly as lsipc(1) and ipcs(1) do, read at the same moment
// (readSysV before and after the tools must agree). The objects carry figures that
// tell processes apart: messages sent by a helper and one of them received by the
// test (lspid ≠ lrpid), segments created by the test and attached by a helper
// (cpid ≠ lpid, nattch 1), semaphore values set by the test and changed by a helper
// (sempid), and helpers blocked on semaphores (ncnt, zcnt). Every figure must be
// confirmed by ipcs, and every one but qbytes (which lsipc does not show) by lsipc.
func TestSysVMatchesTools(t *testing.T) {
	for _, tool := range []string{"lsipc", "ipcs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: %v", tool, err)
		}
	}
	base := sysv.Key(os.Getpid()&0xffff) << 8

	// Queues: one keyed, holding 233 bytes in 2 messages after the test took one,
	// given to another owner; one private, with its qbytes lowered.
	q1 := newMsgQueue(t, base|1, 0o640)
	q2 := newMsgQueue(t, sysv.Private, 0o600)
	ipctest.Start(t, "sysv-send", ipctest.WithArgs(strconv.Itoa(q1), "10", "200", "33")).MustSucceed()
	ipctest.Start(t, "sysv-send", ipctest.WithArgs(strconv.Itoa(q2), "1")).MustSucceed()
	buf := make([]byte, sys.MsgHeaderSize+64)
	if n, err := sys.Msgrcv(q1, buf, 0, unix.IPC_NOWAIT); err != nil || n != 10 {
		t.Fatalf("msgrcv: %d bytes, %v", n, err)
	}
	setMsgQueue(t, q1, func(ds *sys.MsqidDS) { ds.Perm.Uid, ds.Perm.Gid = ipctest.Nobody, ipctest.Nobody })
	setMsgQueue(t, q2, func(ds *sys.MsqidDS) { ds.Qbytes = 4096 })

	// Segments, attached by a helper only.
	m1 := newSegment(t, base|2, 10000, 0o640)
	m2 := newSegment(t, sysv.Private, 4096, 0o600)
	attacher := ipctest.Start(t, "sysv-attach", ipctest.WithArgs(strconv.Itoa(m1), strconv.Itoa(m2)))
	attacher.Await()

	// Semaphore sets: a negative key, another owner, values 0 2 5, then 6 by a
	// helper; a helper waiting for semaphore 0 to grow and one waiting for
	// semaphore 1 to reach zero.
	s1 := newSemSet(t, -(base | 3), 3, 0o600)
	s2 := newSemSet(t, sysv.Private, 1, 0o600)
	if err := sys.SemctlArray(s1, sys.SETALL, []uint16{0, 2, 5}); err != nil {
		t.Fatal(err)
	}
	var semds sys.SemidDS
	if _, err := sys.SemctlStat(s1, unix.IPC_STAT, &semds); err != nil {
		t.Fatal(err)
	}
	semds.Perm.Uid = ipctest.Nobody
	if _, err := sys.SemctlStat(s1, unix.IPC_SET, &semds); err != nil {
		t.Fatal(err)
	}
	adder := ipctest.Start(t, "sysv-semop", ipctest.WithArgs(strconv.Itoa(s1), "2", "1"))
	adder.Await()
	adder.MustSucceed()
	ipctest.Start(t, "sysv-semop", ipctest.WithArgs(strconv.Itoa(s1), "0", "-1")).Await()
	ipctest.Start(t, "sysv-semop", ipctest.WithArgs(strconv.Itoa(s1), "1", "0")).Await()
	awaitSemCount(t, s1, 0, sys.GETNCNT)
	awaitSemCount(t, s1, 1, sys.GETZCNT)

	ours := []string{"msg:" + strconv.Itoa(q1), "msg:" + strconv.Itoa(q2), "shm:" + strconv.Itoa(m1),
		"shm:" + strconv.Itoa(m2), "sem:" + strconv.Itoa(s1), "sem:" + strconv.Itoa(s2)}
	before := readOurSysV(t, ours)
	lsipc, ipcs := lsipcFacts(t, before), ipcsFacts(t, before)
	if after := readOurSysV(t, ours); !reflect.DeepEqual(before, after) {
		t.Fatalf("the objects changed while the tools ran:\nbefore %+v\nafter  %+v", before, after)
	}

	// What the kernel was made to hold.
	me := os.Getpid()
	wantQueue(t, before["msg:"+strconv.Itoa(q1)], 233, 2, 0, me)
	wantQueue(t, before["msg:"+strconv.Itoa(q2)], 1, 1, 4096, 0)
	if o := before[ours[0]]; o.UID != ipctest.Nobody || o.GID != ipctest.Nobody || o.CreatorUID != os.Geteuid() {
		t.Errorf("%s: owner %d:%d creator %d, want %d:%[4]d %d", o.ID, o.UID, o.GID, o.CreatorUID, ipctest.Nobody, os.Geteuid())
	}
	for _, id := range ours[2:4] {
		if o := before[id]; o.Attached != 1 || o.CreatorPID != me || o.LastPID != attacher.Pid() || o.Queued != -1 {
			t.Errorf("%s: nattch %d cpid %d lpid %d queued %d, want 1 %d %d -1", id, o.Attached, o.CreatorPID, o.LastPID, o.Queued, me, attacher.Pid())
		}
	}
	if o := before[ours[2]]; o.Name != sysv.Key(base|2).String() || o.Capacity != 10000 || o.Mode != 0o640 {
		t.Errorf("%s: key %s size %d mode %o", ours[2], o.Name, o.Capacity, o.Mode)
	}
	wantSems := []Semaphore{{0, me, 1, 0}, {2, me, 0, 1}, {6, adder.Pid(), 0, 0}}
	if o := before[ours[4]]; !reflect.DeepEqual(o.Semaphores, wantSems) || *o.Key != int32(-(base|3)) {
		t.Errorf("%s: key %d semaphores %+v, want %d %+v", ours[4], *o.Key, o.Semaphores, -(base | 3), wantSems)
	}

	// What the tools say.
	for _, id := range ours {
		want := sysvFacts(before[id])
		for _, tool := range []struct {
			name  string
			facts map[string]map[string]string
			skip  []string
		}{{"ipcs", ipcs, nil}, {"lsipc", lsipc, []string{"qbytes"}}} {
			got := tool.facts[id]
			for k, v := range got {
				if want[k] != v {
					t.Errorf("%s %s: %s says %q, readSysV %q", id, k, tool.name, v, want[k])
				}
			}
			for k := range want {
				if _, ok := got[k]; !ok && !slices.Contains(tool.skip, k) {
					t.Errorf("%s %s: %s did not show it", id, k, tool.name)
				}
			}
		}
	}
}

// wantQueue checks a queue's contents, capacity (0: the default, not checked),
// sender (a helper, not the test) and receiver.
func wantQueue(t *testing.T, o Object, cbytes, qnum, qbytes int64, lrpid int) {
	t.Helper()
	if o.Queued != cbytes || o.Messages != qnum || (qbytes != 0 && o.Capacity != qbytes) || o.Capacity == 0 ||
		o.LastRecvPID != lrpid || o.LastSendPID == 0 || o.LastSendPID == os.Getpid() {
		t.Errorf("%s: %+v, want cbytes %d qnum %d qbytes %d lrpid %d and a helper's lspid", o.ID, o, cbytes, qnum, qbytes, lrpid)
	}
}

// setMsgQueue changes a queue's owner or qbytes with msgctl IPC_SET.
func setMsgQueue(t *testing.T, id int, change func(*sys.MsqidDS)) {
	t.Helper()
	var ds sys.MsqidDS
	if _, err := sys.MsgctlStat(id, unix.IPC_STAT, &ds); err != nil {
		t.Fatal(err)
	}
	change(&ds)
	if _, err := sys.MsgctlStat(id, unix.IPC_SET, &ds); err != nil {
		t.Fatal(err)
	}
}

// newMsgQueue creates a System V message queue, removed at the end of the test.
func newMsgQueue(t *testing.T, key sysv.Key, mode int) int {
	t.Helper()
	id, err := sys.Msgget(int32(key), unix.IPC_CREAT|unix.IPC_EXCL|mode)
	if err != nil {
		t.Fatal("msgget:", err)
	}
	t.Cleanup(func() { _, _ = sys.Msgctl(id, unix.IPC_RMID) })
	return id
}

// newSegment creates a System V shared memory segment, removed at the end of the
// test.
func newSegment(t *testing.T, key sysv.Key, size, mode int) int {
	t.Helper()
	id, err := unix.SysvShmGet(int(key), size, unix.IPC_CREAT|unix.IPC_EXCL|mode)
	if err != nil {
		t.Fatal("shmget:", err)
	}
	t.Cleanup(func() { _, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil) })
	return id
}

// newSemSet creates a System V semaphore set, removed at the end of the test.
func newSemSet(t *testing.T, key sysv.Key, n, mode int) int {
	t.Helper()
	id, err := sys.Semget(int32(key), n, unix.IPC_CREAT|unix.IPC_EXCL|mode)
	if err != nil {
		t.Fatal("semget:", err)
	}
	t.Cleanup(func() { _, _ = sys.SemctlInt(id, 0, unix.IPC_RMID, 0) })
	return id
}

// awaitSemCount waits until a thread waits on semaphore num of set id (cmd GETNCNT
// or GETZCNT).
func awaitSemCount(t *testing.T, id, num, cmd int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		n, err := sys.SemctlInt(id, num, cmd, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("semaphore %d of set %d: %d waiters", num, id, n)
		}
	}
}

// readOurSysV runs readSysV and returns the objects listed in ids, failing the test if
// one is missing or unreadable.
func readOurSysV(t *testing.T, ids []string) map[string]Object {
	t.Helper()
	objs, bad := readSysV()
	for _, u := range bad {
		if slices.Contains(ids, u.What) {
			t.Errorf("unreadable: %+v", u)
		}
	}
	out := map[string]Object{}
	for _, o := range objs {
		if slices.Contains(ids, o.ID) {
			out[o.ID] = o
		}
	}
	if len(out) != len(ids) {
		t.Fatalf("readSysV listed %d of %v: %+v", len(out), ids, objs)
	}
	return out
}

// sysvFacts is what the tools can show of o, named as factNames names them.
func sysvFacts(o Object) map[string]string {
	f := map[string]string{
		"key": o.Name, "id": strconv.Itoa(*o.SysVID), "mode": fmt.Sprintf("%o", o.Mode),
		"uid": strconv.Itoa(o.UID), "gid": strconv.Itoa(o.GID),
		"cuid": strconv.Itoa(o.CreatorUID), "cgid": strconv.Itoa(o.CreatorGID),
	}
	add := func(k string, v int64) { f[k] = strconv.FormatInt(v, 10) }
	switch o.Kind {
	case KindSysVQueue:
		add("cbytes", o.Queued)
		add("qnum", o.Messages)
		add("qbytes", o.Capacity)
		add("lspid", int64(o.LastSendPID))
		add("lrpid", int64(o.LastRecvPID))
	case KindSysVSegment:
		add("size", o.Capacity)
		add("nattch", int64(o.Attached))
		add("cpid", int64(o.CreatorPID))
		add("lpid", int64(o.LastPID))
	case KindSysVSemSet:
		add("nsems", int64(len(o.Semaphores)))
		for i, s := range o.Semaphores {
			f["sem"+strconv.Itoa(i)] = fmt.Sprint(s.Value, s.WaitingIncrease, s.WaitingZero, s.PID)
		}
	}
	return f
}

// factNames maps the tools' column names (lower-cased) to the names sysvFacts uses.
var factNames = map[string]string{
	"key": "key", "id": "id", "msqid": "id", "shmid": "id", "semid": "id",
	"perms": "mode", "mode": "mode", "uid": "uid", "gid": "gid", "cuid": "cuid", "cgid": "cgid",
	"usedbytes": "cbytes", "used-bytes": "cbytes", "cbytes": "cbytes",
	"msgs": "qnum", "messages": "qnum", "qnum": "qnum", "qbytes": "qbytes",
	"lspid": "lspid", "lrpid": "lrpid",
	"size": "size", "bytes": "size", "nattch": "nattch", "cpid": "cpid", "lpid": "lpid",
	"nsems": "nsems",
}

// toolFacts collects what tools say, by object ID, then fact.
type toolFacts map[string]map[string]string

// add records the columns of row that factNames knows about object id, and a
// semaphore table's row ("semnum" ...) as the fact "semN".
func (tf toolFacts) add(id string, row map[string]string) {
	if tf[id] == nil {
		tf[id] = map[string]string{}
	}
	if n, ok := row["semnum"]; ok {
		tf[id]["sem"+n] = strings.Join([]string{row["value"], row["ncount"], row["zcount"], row["pid"]}, " ")
		return
	}
	for col, v := range row {
		name, ok := factNames[col]
		if !ok || v == "" {
			continue
		}
		if name == "mode" {
			v = modeFact(v)
		}
		tf[id][name] = v
	}
}

// addRows adds the rows of a listing of objects whose IDs start with prefix.
func (tf toolFacts) addRows(prefix string, rows []map[string]string) {
	for _, r := range rows {
		id := r["id"]
		for _, col := range []string{"msqid", "shmid", "semid"} {
			if v, ok := r[col]; ok {
				id = v
			}
		}
		tf.add(prefix+":"+id, r)
	}
}

// modeFact turns "rw-r-----", "640" or "0640" into "640".
func modeFact(s string) string {
	if len(s) == 9 && strings.Trim(s, "rwx-") == "" {
		var m uint32
		for i, c := range s {
			if c != '-' {
				m |= 1 << (8 - i)
			}
		}
		return fmt.Sprintf("%o", m)
	}
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return "bad mode " + s
	}
	return fmt.Sprintf("%o", m)
}

// lsipcFacts reads the objects' figures with lsipc: the lists of queues and segments
// as JSON, the list of semaphore sets raw, and each set's semaphores (its --id view).
func lsipcFacts(t *testing.T, objs map[string]Object) toolFacts {
	t.Helper()
	tf := toolFacts{}
	common := "KEY,ID,PERMS,CUID,CGID,UID,GID,"
	tf.addRows("msg", lsipcJSON(t, "-q", "-b", "--json", "-o", common+"USEDBYTES,MSGS,LSPID,LRPID"))
	tf.addRows("shm", lsipcJSON(t, "-m", "-b", "--json", "-o", common+"SIZE,NATTCH,CPID,LPID"))
	tf.addRows("sem", parseTable(run(t, "lsipc", "-s", "--raw", "-o", common+"NSEMS"), "key"))
	for id, o := range objs {
		if o.Kind == KindSysVSemSet {
			for _, r := range parseTable(run(t, "lsipc", "-s", "-i", strconv.Itoa(*o.SysVID)), "semnum") {
				tf.add(id, r)
			}
		}
	}
	return tf
}

// lsipcJSON runs lsipc with args and returns the rows of its JSON output, with the
// column names lower-cased and nulls left out.
func lsipcJSON(t *testing.T, args ...string) []map[string]string {
	t.Helper()
	var doc map[string][]map[string]any
	if err := json.Unmarshal([]byte(run(t, "lsipc", args...)), &doc); err != nil {
		t.Fatal("lsipc output:", err)
	}
	var rows []map[string]string
	for _, list := range doc {
		for _, r := range list {
			row := map[string]string{}
			for k, v := range r {
				if v != nil {
					row[strings.ToLower(k)] = fmt.Sprint(v)
				}
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// ipcsFacts reads the objects' figures with ipcs: the default, --pid and --id views.
func ipcsFacts(t *testing.T, objs map[string]Object) toolFacts {
	t.Helper()
	tf := toolFacts{}
	for _, kind := range []struct{ opt, prefix, idCol string }{{"-q", "msg", "msqid"}, {"-m", "shm", "shmid"}, {"-s", "sem", "semid"}} {
		tf.addRows(kind.prefix, parseTable(run(t, "ipcs", kind.opt), "key"))
		if kind.opt != "-s" {
			tf.addRows(kind.prefix, parseTable(run(t, "ipcs", kind.opt, "-p"), kind.idCol))
		}
	}
	opts := map[string]string{KindSysVQueue: "-q", KindSysVSegment: "-m", KindSysVSemSet: "-s"}
	for id, o := range objs {
		out := run(t, "ipcs", opts[o.Kind], "-i", strconv.Itoa(*o.SysVID))
		tf.add(id, parseKV(out))
		for _, r := range parseTable(out, "semnum") {
			tf.add(id, r)
		}
	}
	return tf
}

// run runs a tool and returns its output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}

// parseTable returns the rows of the tables in out whose heading line begins with
// the column first (compared lower-cased), keyed by the lower-cased headings. A
// table ends at an empty line.
func parseTable(out, first string) []map[string]string {
	var head []string
	var rows []map[string]string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
			head = nil
		case strings.EqualFold(f[0], first):
			head = strings.Fields(strings.ToLower(line))
		case head != nil:
			row := map[string]string{}
			for i, h := range head {
				if i < len(f) {
					row[h] = f[i]
				}
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// parseKV returns the name=value pairs of an ipcs --id view ("uid=0 gid=0 ...",
// "mode=0600, access_perms=0600").
func parseKV(out string) map[string]string {
	kv := map[string]string{}
	for _, f := range strings.FieldsFunc(out, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		if k, v, ok := strings.Cut(f, "="); ok && k != "" && v != "" {
			kv[k] = v
		}
	}
	return kv
}

// read-ipc prints, as JSON, what readSysV and readPosixQueues (of /dev/mqueue) see.
var _ = ipctest.Helper("read-ipc", func(args []string) int {
	var r readResult
	r.SysV, r.SysVBad = readSysV()
	r.MQ, _, r.MQBad = readPosixQueues("")
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fmt.Println(err)
		return 1
	}
	return 0
})

// readResult is what read-ipc prints.
type readResult struct {
	SysV, MQ       []Object
	SysVBad, MQBad []Unreadable
}

// TestReadWithoutPermission reads, as another user, a System V queue and semaphore
// set and a POSIX queue of mode 0600: the objects are listed with what /proc and the
// mqueue file system tell anyone, and what needs read permission (the queue's
// qbytes, the semaphores, the POSIX queue's contents) is missing and explained.
func TestReadWithoutPermission(t *testing.T) {
	ipctest.RequireRoot(t)
	requireMqueue(t)
	q := newMsgQueue(t, sysv.Private, 0o600)
	s := newSemSet(t, sysv.Private, 2, 0o600)
	mq := newPosixQueue(t, testQueueName("unreadable"))

	p := ipctest.Start(t, "read-ipc", ipctest.AsUser(ipctest.Nobody))
	p.MustSucceed()
	var r readResult
	if err := json.Unmarshal([]byte(p.Output()), &r); err != nil {
		t.Fatalf("helper output %q: %v", p.Output(), err)
	}
	denied := func(bad []Unreadable, id string) {
		for _, u := range bad {
			if u.What == id && strings.Contains(u.Err, "permission denied") {
				return
			}
		}
		t.Errorf("%s: no Unreadable saying permission denied: %+v", id, bad)
	}
	if o := findObject(t, r.SysV, "msg:"+strconv.Itoa(q)); o.Capacity != 0 || o.Mode != 0o600 || o.UID != 0 || o.Queued != 0 {
		t.Errorf("queue: %+v", o)
	}
	denied(r.SysVBad, "msg:"+strconv.Itoa(q))
	if o := findObject(t, r.SysV, "sem:"+strconv.Itoa(s)); o.Semaphores != nil || o.Mode != 0o600 {
		t.Errorf("semaphore set: %+v", o)
	}
	denied(r.SysVBad, "sem:"+strconv.Itoa(s))
	if o := findObject(t, r.MQ, "mq:"+mq.Name()); o.Queued != -1 || o.Messages != -1 || o.Capacity != 0 || o.Mode != 0o600 || o.Inode == 0 {
		t.Errorf("POSIX queue: %+v", o)
	}
	denied(r.MQBad, "mq:"+mq.Name())
}
