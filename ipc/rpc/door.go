package rpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/doors"
	"github.com/ipclab/ipclab/sockets"
)

// DoorAddr is the address of a caller over the door transport: its credentials as
// the kernel vouches for them (SCM_CREDENTIALS of the very call).
type DoorAddr struct {
	Cred sockets.Cred
}

// Network returns "door".
func (a DoorAddr) Network() string { return "door" }

// String returns "pid:uid:gid".
func (a DoorAddr) String() string {
	return fmt.Sprintf("%d:%d:%d", a.Cred.Pid, a.Cred.Uid, a.Cred.Gid)
}

// errDropped is what a door caller gets for a call the server dropped (a duplicate
// whose first copy runs, or a call the full reply cache could not take).
var errDropped = errors.New("rpc: call dropped by the server (reply cache busy or full); retry")

// ListenDoor serves the server's programs on a door (package doors) attached at
// path, which must lie in a directory owned by the caller that nobody else can
// write to. Each call is one door call whose argument is the RPC call message and
// whose result is the reply message. A handler sees Transport "door", Addr a
// DoorAddr, and Call.AuthSys returns the caller's identity as the kernel vouches
// for it, whatever credential the client claimed. opts configure the door (its
// default policy admits only callers with the server's uid; doors.AllowUsers
// widens it).
func (s *Server) ListenDoor(path string, opts ...doors.Option) error {
	if path == "" {
		return invalid("listen", path, "empty door path")
	}
	max := s.cfg.maxRecord
	d, err := doors.New(s.doorHandler, append([]doors.Option{doors.WithMaxData(max)}, opts...)...)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		d.Close()
		return opErr("listen", path, net.ErrClosed)
	}
	s.mu.Unlock()
	if err := d.Attach(path); err != nil {
		d.Close()
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		d.Close()
		return opErr("listen", path, net.ErrClosed)
	}
	s.doors = append(s.doors, serverDoor{d: d, path: path})
	s.mu.Unlock()
	return nil
}

// doorHandler answers one RPC call arriving as a door call.
func (s *Server) doorHandler(ctx context.Context, dc *doors.Call) (*doors.Reply, error) {
	for _, fd := range dc.Fds {
		unix.Close(fd)
	}
	enc := &encoder{b: make([]byte, 0, 256)}
	cred := dc.Cred
	key := "door " + strconv.Itoa(int(cred.Pid))
	if !s.dispatch(dc.Data, "door", DoorAddr{Cred: cred}, key, enc, &cred) {
		return nil, errDropped
	}
	return dc.Return(enc.b, nil), nil
}

type serverDoor struct {
	d    *doors.Door
	path string
}

// DialDoor returns a client for version vers of program prog served on the door at
// path (Server.ListenDoor). A door is reliable and ordered: every semantics sends a
// call once. The server learns the caller's identity from the kernel; a credential
// set with WithCred is sent but does not decide who the caller is.
func DialDoor(ctx context.Context, path string, prog, vers uint32, opts ...ClientOption) (*Client, error) {
	c, err := newClient(ctx, "door", path, prog, vers, opts)
	if err != nil {
		return nil, err
	}
	if path == "" {
		return nil, invalid("dial", c.name, "empty door path")
	}
	d, err := doors.Open(ctx, path, doors.MaxResult(c.cfg.maxRecord))
	if err != nil {
		if errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOENT) {
			return nil, opErr("dial", c.name, fmt.Errorf("%w: %w", ErrStale, err))
		}
		return nil, err
	}
	c.door = d
	c.in = make([]byte, 0, 4096)
	return c, nil
}

// roundTripDoor makes the call in c.enc.b one door call.
func (c *Client) roundTripDoor(ctx context.Context, xid uint32) (ReplyHeader, []byte, error) {
	c.sent.Add(1)
	res, _, err := c.door.CallBuf(ctx, c.enc.b, nil, c.in[:cap(c.in)], nil)
	if err != nil {
		return ReplyHeader{}, nil, err
	}
	if cap(res) > cap(c.in) {
		c.in = res[:0]
	}
	rxid, mt, err := msgType(res)
	if err != nil || mt != msgReply || rxid != xid {
		return ReplyHeader{}, nil, protoErr("door result that is not the call's reply")
	}
	return parseReply(res)
}

// Binder is a same-host binder for the door transport: a directory (mode 0700,
// owned by its user) with one entry file per program version (mode 0600, named
// "PROG.VERS") that gives the door path of the server and the server's pid and
// process start time. An entry is written whole (a temporary file renamed over it)
// and removed by the server that wrote it when it closes. An entry left by a
// server that died (SIGKILL, a crash) is stale: Lookup sees that its process is
// gone (or that the pid now belongs to another process) and reports ErrStale at
// once, without connecting.
type Binder struct {
	dir string
}

// OpenBinder opens the binder directory dir, creating it (0700) if needed. An
// existing dir must be a directory owned by the caller's uid that no one else can
// write to.
func OpenBinder(dir string) (*Binder, error) {
	if dir == "" || strings.ContainsRune(dir, 0) {
		return nil, invalid("open binder", dir, "bad directory name")
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, opErr("open binder", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return nil, opErr("open binder", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != uint32(os.Geteuid()) || st.Mode&0o022 != 0 {
		return nil, opErr("open binder", dir, fmt.Errorf("not a directory of uid %d closed to others (mode %o, uid %d): %w",
			os.Geteuid(), st.Mode, st.Uid, os.ErrPermission))
	}
	return &Binder{dir: dir}, nil
}

// Dir returns the binder's directory.
func (b *Binder) Dir() string { return b.dir }

func (b *Binder) entry(prog, vers uint32) string {
	return filepath.Join(b.dir, fmt.Sprintf("%d.%d", prog, vers))
}

// Set maps version vers of program prog to the door at doorPath, served by this
// process, replacing an earlier entry.
func (b *Binder) Set(prog, vers uint32, doorPath string) error {
	obj := fmt.Sprintf("%d/%d", prog, vers)
	if doorPath == "" || strings.ContainsAny(doorPath, "\n\x00") {
		return invalid("binder set", obj, "bad door path %q", doorPath)
	}
	abs, err := filepath.Abs(doorPath)
	if err != nil {
		return opErr("binder set", obj, err)
	}
	start, err := procStart(os.Getpid())
	if err != nil {
		return opErr("binder set", obj, err)
	}
	f, err := os.CreateTemp(b.dir, ".entry-*")
	if err != nil {
		return opErr("binder set", obj, err)
	}
	tmp := f.Name()
	_, err = fmt.Fprintf(f, "%d %d %s\n", os.Getpid(), start, abs)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, b.entry(prog, vers))
	}
	if err != nil {
		os.Remove(tmp)
		return opErr("binder set", obj, err)
	}
	return nil
}

// Unset removes the entry of version vers of program prog if this process wrote
// it; it is not an error if there is none.
func (b *Binder) Unset(prog, vers uint32) error {
	obj := fmt.Sprintf("%d/%d", prog, vers)
	e, err := b.read(prog, vers)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return opErr("binder unset", obj, err)
	}
	if e.pid != os.Getpid() {
		return nil
	}
	if err := os.Remove(b.entry(prog, vers)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return opErr("binder unset", obj, err)
	}
	return nil
}

type binderEntry struct {
	pid   int
	start uint64
	path  string
}

func (b *Binder) read(prog, vers uint32) (binderEntry, error) {
	f, err := os.Open(b.entry(prog, vers))
	if err != nil {
		return binderEntry{}, err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		return binderEntry{}, protoErr("binder entry: %v", err)
	}
	fs := strings.SplitN(strings.TrimSuffix(line, "\n"), " ", 3)
	if len(fs) != 3 {
		return binderEntry{}, protoErr("binder entry %q", line)
	}
	pid, err1 := strconv.Atoi(fs[0])
	start, err2 := strconv.ParseUint(fs[1], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return binderEntry{}, protoErr("binder entry %q", line)
	}
	return binderEntry{pid: pid, start: start, path: fs[2]}, nil
}

// Lookup returns the door path of version vers of program prog. No entry is an
// error matching ErrNotRegistered; an entry whose server process is gone is one
// matching ErrStale, which names the pid and the door.
func (b *Binder) Lookup(prog, vers uint32) (string, error) {
	obj := fmt.Sprintf("%d/%d", prog, vers)
	e, err := b.read(prog, vers)
	if errors.Is(err, os.ErrNotExist) {
		return "", opErr("binder lookup", obj, ErrNotRegistered)
	}
	if err != nil {
		return "", opErr("binder lookup", obj, err)
	}
	if start, err := procStart(e.pid); err != nil || start != e.start {
		return "", opErr("binder lookup", obj, fmt.Errorf("entry names door %s of pid %d, which has exited: %w", e.path, e.pid, ErrStale))
	}
	return e.path, nil
}

// Dial looks version vers of program prog up and returns a client for its door
// (DialDoor). A stale entry, or a door that refuses connections, is an error
// matching ErrStale.
func (b *Binder) Dial(ctx context.Context, prog, vers uint32, opts ...ClientOption) (*Client, error) {
	if ctx == nil {
		return nil, invalid("dial", b.dir, "nil context")
	}
	path, err := b.Lookup(prog, vers)
	if err != nil {
		return nil, err
	}
	return DialDoor(ctx, path, prog, vers, opts...)
}

// AdvertiseDoor enters every program version the server has registered in binder
// b, mapped to the server's door (ListenDoor first); Close removes the entries.
func (s *Server) AdvertiseDoor(b *Binder) error {
	if b == nil {
		return invalid("advertise door", "", "nil binder")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return opErr("advertise door", b.dir, net.ErrClosed)
	}
	if len(s.doors) == 0 || len(s.progs) == 0 {
		s.mu.Unlock()
		return invalid("advertise door", b.dir, "%d doors and %d programs: nothing to enter", len(s.doors), len(s.progs))
	}
	path := s.doors[0].path
	var pvs []progVers
	for pv := range s.progs {
		pvs = append(pvs, pv)
	}
	s.mu.Unlock()
	for _, pv := range pvs {
		if err := b.Set(pv.prog, pv.vers, path); err != nil {
			return err
		}
		s.mu.Lock()
		s.binder = append(s.binder, binderBinding{b, pv})
		s.mu.Unlock()
	}
	return nil
}

type binderBinding struct {
	b  *Binder
	pv progVers
}

// procStart returns the start time of process pid (field 22 of /proc/PID/stat, in
// clock ticks since boot): with the pid it names one process, not a later one that
// reuses the pid.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, ipc.ErrInvalid
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, ipc.ErrInvalid
	}
	return strconv.ParseUint(f[19], 10, 64)
}
