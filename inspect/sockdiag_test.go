package inspect

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
)

// Helper: connects to the Unix sockets at args[0] (stream listener), args[1]
// (bound datagram socket) and args[2] (seqpacket listener). On the stream listener
// it makes two connections, writing 1000 bytes on the first; it sends datagrams of
// 100 and 200 bytes, and three 10-byte packets on the seqpacket connection. It
// writes the inodes of its four sockets to File(0), signals, and holds them until
// told to go.
var _ = ipctest.Helper("sockdiag-unix-peer", func(args []string) int {
	var inodes []string
	connect := func(path string, typ int, writes ...int) bool {
		fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		}
		for _, n := range writes {
			if err == nil {
				_, err = unix.Write(fd, make([]byte, n))
			}
		}
		if err != nil {
			fmt.Println("connect", path, err)
			return false
		}
		inodes = append(inodes, strconv.FormatUint(fdInode(fd), 10))
		return true
	}
	if !connect(args[0], unix.SOCK_STREAM, 1000) || !connect(args[0], unix.SOCK_STREAM) ||
		!connect(args[1], unix.SOCK_DGRAM, 100, 200) || !connect(args[2], unix.SOCK_SEQPACKET, 10, 10, 10) {
		return 1
	}
	return reportAndHold(inodes)
})

// Helper: connects twice to the TCP listener at 127.0.0.1:args[0], writing 1000
// bytes on the first connection; once to [::1]:args[1] (unless it is empty),
// writing 300 bytes; and sends two 100-byte datagrams to 127.0.0.1:args[2]. It
// writes the inodes of its sockets to File(0) (0 for the IPv6 one if there is
// none), signals, and holds them until told to go.
var _ = ipctest.Helper("sockdiag-inet-peer", func(args []string) int {
	var inodes []string
	connect := func(family, typ int, sa unix.Sockaddr, writes ...int) bool {
		fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			err = unix.Connect(fd, sa)
		}
		for _, n := range writes {
			if err == nil {
				_, err = unix.Write(fd, make([]byte, n))
			}
		}
		if err != nil {
			fmt.Println("connect", sa, err)
			return false
		}
		inodes = append(inodes, strconv.FormatUint(fdInode(fd), 10))
		return true
	}
	port := func(s string) int { n, _ := strconv.Atoi(s); return n }
	lo4 := [4]byte{127, 0, 0, 1}
	if !connect(unix.AF_INET, unix.SOCK_STREAM, &unix.SockaddrInet4{Port: port(args[0]), Addr: lo4}, 1000) ||
		!connect(unix.AF_INET, unix.SOCK_STREAM, &unix.SockaddrInet4{Port: port(args[0]), Addr: lo4}) {
		return 1
	}
	if args[1] == "" {
		inodes = append(inodes, "0")
	} else if !connect(unix.AF_INET6, unix.SOCK_STREAM, &unix.SockaddrInet6{Port: port(args[1]), Addr: netip.IPv6Loopback().As16()}, 300) {
		return 1
	}
	if !connect(unix.AF_INET, unix.SOCK_DGRAM, &unix.SockaddrInet4{Port: port(args[2]), Addr: lo4}, 100, 100) {
		return 1
	}
	return reportAndHold(inodes)
})

// reportAndHold writes inodes to the helper's File(0) and closes it, signals the
// test, and waits for it before exiting (with the helper's sockets still open until
// then).
func reportAndHold(inodes []string) int {
	out := ipctest.File(0)
	if _, err := fmt.Fprintln(out, strings.Join(inodes, " ")); err != nil {
		fmt.Println(err)
		return 1
	}
	out.Close()
	ipctest.Signal()
	ipctest.Await()
	return 0
}

// fdInode returns the inode of descriptor fd, or 0.
func fdInode(fd int) uint64 {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return 0
	}
	return st.Ino
}

// newSocket makes a socket closed at the end of the test.
func newSocket(t *testing.T, family, typ int) int {
	t.Helper()
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// accept accepts a connection on fd, closed at the end of the test.
func accept(t *testing.T, fd int) int {
	t.Helper()
	nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(nfd) })
	return nfd
}

// write writes n zero bytes on fd.
func write(t *testing.T, fd, n int) {
	t.Helper()
	if _, err := unix.Write(fd, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
}

// startPeer starts helper name with args, running it as nobody when the test is
// root, and returns it, the inodes it reported and its uid.
func startPeer(t *testing.T, name string, args ...string) (*ipctest.Proc, []uint64, int) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	opts := []ipctest.Option{ipctest.Handover(w), ipctest.WithArgs(args...), ipctest.WithEnv("GORACE=atexit_sleep_ms=0")}
	uid := os.Geteuid()
	if uid == 0 {
		uid = ipctest.Nobody
		opts = append(opts, ipctest.AsUser(ipctest.Nobody))
	}
	p := ipctest.Start(t, name, opts...)
	t.Cleanup(func() { p.Signal(); _ = p.Wait() })
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	p.Await()
	var inodes []uint64
	for _, f := range strings.Fields(string(data)) {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			t.Fatalf("helper reported %q", data)
		}
		inodes = append(inodes, n)
	}
	return p, inodes, uid
}

// An ssSocket is one line of ss's output.
type ssSocket struct {
	netid, state string
	recvQ, sendQ int64
	local, peer  string // for Unix sockets, the path (or *) and the peer's inode
	ino          uint64
	uid          int // from -e's uid:N, which ss leaves out for 0
}

// runSS runs ss with args and returns the sockets it lists, skipping the test if ss
// is not installed. With unixColumns, the lines are ss -x's: Netid State Recv-Q
// Send-Q Path Inode * PeerInode (a path may hold spaces, so the last three columns
// are counted from the end); otherwise Netid State Recv-Q Send-Q Local Peer and -e's
// extra fields.
func runSS(t *testing.T, unixColumns bool, args ...string) []ssSocket {
	t.Helper()
	ss, err := exec.LookPath("ss")
	if err != nil {
		t.Skip("ss (iproute2) is not installed:", err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(ss, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ss %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "Netid") {
		t.Fatalf("ss %s printed no Netid header:\n%s", strings.Join(args, " "), out)
	}
	var socks []ssSocket
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("ss line %q: too few columns", line)
		}
		s := ssSocket{netid: f[0], state: f[1]}
		s.recvQ, err = strconv.ParseInt(f[2], 10, 64)
		if err == nil {
			s.sendQ, err = strconv.ParseInt(f[3], 10, 64)
		}
		if unixColumns {
			if len(f) < 8 {
				t.Fatalf("ss line %q: too few columns", line)
			}
			n := len(f)
			s.local, s.peer = strings.Join(f[4:n-3], " "), f[n-1]
			if err == nil {
				s.ino, err = strconv.ParseUint(f[n-3], 10, 64)
			}
		} else {
			s.local, s.peer = f[4], f[5]
			for _, x := range f[6:] {
				if v, ok := strings.CutPrefix(x, "ino:"); ok && err == nil {
					s.ino, err = strconv.ParseUint(v, 10, 64)
				}
				if v, ok := strings.CutPrefix(x, "uid:"); ok && err == nil {
					s.uid, err = strconv.Atoi(v)
				}
			}
		}
		if err != nil {
			t.Fatalf("ss line %q: %v", line, err)
		}
		socks = append(socks, s)
	}
	return socks
}

// ssState turns ss's state column into an Object's State.
func ssState(state, kind string) string {
	switch state {
	case "ESTAB":
		return "established"
	case "UNCONN":
		if kind == KindTCP {
			return "close"
		}
		return "unconnected"
	}
	return strings.ToLower(state)
}

// ssUnixKinds maps ss's Unix netids to Kinds.
var ssUnixKinds = map[string]string{"u_str": KindUnixStream, "u_dgr": KindUnixDgram, "u_seq": KindUnixSeqpacket}

// TestUnixSocketsAgreeWithSS checks the Unix sockets a test and a helper process
// make against ss.
//
// INS-01: objects agree with ss -x. For each socket made (a stream listener with one
// connection accepted and one waiting, a bound datagram socket with two datagrams
// unread, a seqpacket listener with an accepted connection holding three unread
// packets, an unbound socketpair, and the helper's ends of all of them), the Object's
// kind, state, Recv-Q (Queued), Send-Q (SendQueued), path and peer inode equal ss's;
// the UID is the creating process's; the values are the ones the test expects.
func TestUnixSocketsAgreeWithSS(t *testing.T) {
	// Not t.TempDir, whose parent the helper, which may run as nobody, cannot enter.
	dir, err := os.MkdirTemp("", "sockdiag-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bound := func(name string, typ int, backlog int) (int, string) {
		fd := newSocket(t, unix.AF_UNIX, typ)
		path := filepath.Join(dir, name)
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o777); err != nil {
			t.Fatal(err)
		}
		if backlog > 0 {
			if err := unix.Listen(fd, backlog); err != nil {
				t.Fatal(err)
			}
		}
		return fd, path
	}
	lis, lisPath := bound("stream.sock", unix.SOCK_STREAM, 8)
	dgram, dgramPath := bound("dgram.sock", unix.SOCK_DGRAM, 0)
	seq, seqPath := bound("seq.sock", unix.SOCK_SEQPACKET, 4)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(pair[0]); unix.Close(pair[1]) })
	write(t, pair[0], 7)

	_, peer, peerUID := startPeer(t, "sockdiag-unix-peer", lisPath, dgramPath, seqPath)
	if len(peer) != 4 {
		t.Fatalf("helper reported %d inodes, want 4", len(peer))
	}
	c1, c2, d, s := peer[0], peer[1], peer[2], peer[3]
	a1 := accept(t, lis) // c1's server end: c2 stays in the accept queue
	q1 := accept(t, seq)
	write(t, a1, 500)

	objs, err := readUnixSockets()
	if err != nil {
		t.Fatal(err)
	}
	ss := runSS(t, true, "-x", "-a", "-n")

	mine := map[uint64]bool{}
	for _, fd := range []int{lis, dgram, seq, a1, q1, pair[0], pair[1]} {
		mine[fdInode(fd)] = true
	}
	got := map[uint64]Object{}
	for _, o := range objs {
		if o.ID != "unix:"+strconv.FormatUint(o.Inode, 10) {
			t.Errorf("object %+v: ID does not name its inode", o)
		}
		if _, dup := got[o.Inode]; dup {
			t.Errorf("inode %d listed twice", o.Inode)
		}
		got[o.Inode] = o
	}
	compared := 0
	for _, x := range ss {
		o, ok := got[x.ino]
		if !ok {
			continue // a socket made or gone between the two readings
		}
		if o.Kind != ssUnixKinds[x.netid] {
			t.Errorf("inode %d: kind %q, ss says %s", x.ino, o.Kind, x.netid)
		}
		if !mine[x.ino] && !(x.ino == c1 || x.ino == c2 || x.ino == d || x.ino == s) {
			continue // others' sockets may change between the readings
		}
		compared++
		wantName := x.local
		if wantName == "*" {
			wantName = ""
		}
		wantPeer := ""
		if x.peer != "0" {
			wantPeer = "unix:" + x.peer
		}
		if o.State != ssState(x.state, o.Kind) || o.Queued != x.recvQ || o.SendQueued != x.sendQ ||
			o.Name != wantName || o.Peer != wantPeer {
			t.Errorf("inode %d: state %q, queued %d, send queued %d, name %q, peer %q; ss says %s %d %d %q %s",
				x.ino, o.State, o.Queued, o.SendQueued, o.Name, o.Peer, x.state, x.recvQ, x.sendQ, x.local, x.peer)
		}
	}
	if compared != len(mine)+4 {
		t.Errorf("compared %d of the test's %d sockets with ss", compared, len(mine)+4)
	}

	// What the test knows without ss.
	ino := func(fd int) uint64 { return fdInode(fd) }
	for _, w := range []struct {
		what         string
		ino          uint64
		kind, state  string
		queued       int64
		name, peer   string
		pending, uid int
		checkSendQ   bool
		sendQueued   int64
	}{
		{"listener", ino(lis), KindUnixStream, "listen", 1, lisPath, "", 1, os.Geteuid(), true, 8},
		{"accepted", ino(a1), KindUnixStream, "established", 1000, lisPath, "unix:" + strconv.FormatUint(c1, 10), 0, os.Geteuid(), false, 0},
		{"helper's first", c1, KindUnixStream, "established", 500, "", "unix:" + strconv.FormatUint(ino(a1), 10), 0, peerUID, false, 0},
		{"helper's waiting", c2, KindUnixStream, "established", 0, "", "", 0, peerUID, false, 0},
		// A datagram socket something connected to is "established" too, though it
		// has no peer of its own (the kernel marks both ends).
		{"datagram", ino(dgram), KindUnixDgram, "established", 100, dgramPath, "", 0, os.Geteuid(), true, 0},
		{"helper's datagram", d, KindUnixDgram, "established", 0, "", "unix:" + strconv.FormatUint(ino(dgram), 10), 0, peerUID, false, 0},
		{"seqpacket listener", ino(seq), KindUnixSeqpacket, "listen", 0, seqPath, "", 0, os.Geteuid(), true, 4},
		{"seqpacket accepted", ino(q1), KindUnixSeqpacket, "established", 30, seqPath, "unix:" + strconv.FormatUint(s, 10), 0, os.Geteuid(), false, 0},
		{"pair's reader", ino(pair[1]), KindUnixStream, "established", 7, "", "unix:" + strconv.FormatUint(ino(pair[0]), 10), 0, os.Geteuid(), true, 0},
	} {
		o := got[w.ino]
		if o.Kind != w.kind || o.State != w.state || o.Queued != w.queued || o.Name != w.name || o.Peer != w.peer ||
			o.Pending != w.pending || o.UID != w.uid || (w.checkSendQ && o.SendQueued != w.sendQueued) ||
			len(o.Holders) != 0 || o.Messages != 0 {
			t.Errorf("%s socket: got %+v, want kind %s, state %s, queued %d, name %q, peer %q, pending %d, uid %d",
				w.what, o, w.kind, w.state, w.queued, w.name, w.peer, w.pending, w.uid)
		}
	}
	// A writer's send queue is the memory its unread data takes: more than the data.
	if o := got[ino(pair[0])]; o.SendQueued < 7 {
		t.Errorf("pair's writer: send queued %d, want at least 7", o.SendQueued)
	}
}

// TestUnixAbstractName checks that an abstract name shows as "@name", with every NUL
// of it shown as @ as ss does.
func TestUnixAbstractName(t *testing.T) {
	names := map[uint64]string{}
	for _, name := range []string{
		fmt.Sprintf("@ipclab-inspect-%d", os.Getpid()),
		fmt.Sprintf("@ipclab-inspect-%d\x00x", os.Getpid()),
	} {
		fd := newSocket(t, unix.AF_UNIX, unix.SOCK_STREAM)
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: name}); err != nil {
			t.Fatal(err)
		}
		names[fdInode(fd)] = strings.ReplaceAll(name, "\x00", "@")
	}
	objs, err := readUnixSockets()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if want, ok := names[o.Inode]; ok {
			if o.Name != want || o.State != "unconnected" {
				t.Errorf("socket %d: name %q, state %q; want %q, unconnected", o.Inode, o.Name, o.State, want)
			}
			delete(names, o.Inode)
		}
	}
	if len(names) != 0 {
		t.Errorf("sockets not listed: %v", names)
	}
}

// loopbackListener makes a TCP listener on addr (port 0) with backlog 8 and returns
// it and its port; ok is false if the address is not available.
func loopbackListener(t *testing.T, addr netip.Addr) (fd, port int, ok bool) {
	t.Helper()
	var sa unix.Sockaddr
	family := unix.AF_INET
	if addr.Is4() {
		sa = &unix.SockaddrInet4{Addr: addr.As4()}
	} else {
		sa, family = &unix.SockaddrInet6{Addr: addr.As16()}, unix.AF_INET6
	}
	fd = newSocket(t, family, unix.SOCK_STREAM)
	if err := unix.Bind(fd, sa); err == unix.EADDRNOTAVAIL || err == unix.EAFNOSUPPORT {
		return 0, 0, false
	} else if err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		t.Fatal(err)
	}
	return fd, localPort(t, fd), true
}

// localPort returns the port fd is bound to.
func localPort(t *testing.T, fd int) int {
	t.Helper()
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return sa.Port
	case *unix.SockaddrInet6:
		return sa.Port
	}
	t.Fatalf("getsockname: %T", sa)
	return 0
}

// TestInetSocketsAgreeWithSS checks loopback TCP and UDP sockets a test and a helper
// process make against ss -t -u -a -n -e: a listener with one connection accepted
// and one waiting, unread data both ways on the accepted one (IPv4, and IPv6 when
// ::1 is there), a UDP socket with two datagrams unread, and a time-wait socket.
// Kind, state, Recv-Q, Send-Q, addresses and uid must equal ss's.
func TestInetSocketsAgreeWithSS(t *testing.T) {
	lis4, port4, _ := loopbackListener(t, netip.MustParseAddr("127.0.0.1"))
	lis6, port6, have6 := loopbackListener(t, netip.IPv6Loopback())
	udp := newSocket(t, unix.AF_INET, unix.SOCK_DGRAM)
	if err := unix.Bind(udp, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	arg6 := ""
	if have6 {
		arg6 = strconv.Itoa(port6)
	}
	_, peer, peerUID := startPeer(t, "sockdiag-inet-peer", strconv.Itoa(port4), arg6, strconv.Itoa(localPort(t, udp)))
	if len(peer) != 4 {
		t.Fatalf("helper reported %d inodes, want 4", len(peer))
	}
	c1, c2, c3, u := peer[0], peer[1], peer[2], peer[3]
	a1 := accept(t, lis4)
	write(t, a1, 500)
	var a3 int
	if have6 {
		a3 = accept(t, lis6)
		write(t, a3, 200)
	}
	// A time-wait socket: the side that closes first keeps one.
	twLis, twPort, _ := loopbackListener(t, netip.MustParseAddr("127.0.0.1"))
	tw := func() string {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: twPort, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		nfd, _, err := unix.Accept4(twLis, unix.SOCK_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		local := fmt.Sprintf("127.0.0.1:%d", localPort(t, fd))
		unix.Close(fd)
		unix.Close(nfd)
		return fmt.Sprintf("tcp:%s->127.0.0.1:%d", local, twPort)
	}()

	// Loopback delivers at once, but acknowledgements and the time-wait transition
	// may still be on their way: wait until the known values show, then ask ss.
	type want struct {
		kind, state   string
		queued, sendQ int64 // sendQ -1: not checked
		uid           int
	}
	wants := map[uint64]want{
		fdInode(lis4): {KindTCP, "listen", 1, 8, os.Geteuid()},
		fdInode(a1):   {KindTCP, "established", 1000, 0, os.Geteuid()},
		c1:            {KindTCP, "established", 500, 0, peerUID},
		c2:            {KindTCP, "established", 0, 0, peerUID},
		fdInode(udp):  {KindUDP, "unconnected", -1, 0, os.Geteuid()},
		u:             {KindUDP, "established", 0, -1, peerUID},
	}
	if have6 {
		wants[fdInode(lis6)] = want{KindTCP, "listen", 0, 8, os.Geteuid()}
		wants[fdInode(a3)] = want{KindTCP, "established", 300, 0, os.Geteuid()}
		wants[c3] = want{KindTCP, "established", 200, 0, peerUID}
	}
	var (
		got      map[uint64]Object
		twObj    Object
		mismatch string
	)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		objs, err := readInetSockets()
		if err != nil {
			t.Fatal(err)
		}
		got, twObj, mismatch = map[uint64]Object{}, Object{}, ""
		for _, o := range objs {
			if o.Inode != 0 {
				got[o.Inode] = o
			}
			if o.ID == tw {
				twObj = o
			}
		}
		for ino, w := range wants {
			o := got[ino]
			if o.Kind != w.kind || o.State != w.state || (w.queued >= 0 && o.Queued != w.queued) ||
				(w.sendQ >= 0 && o.SendQueued != w.sendQ) || o.UID != w.uid {
				mismatch += fmt.Sprintf("\n  inode %d: got %+v, want %+v", ino, o, w)
			}
		}
		if twObj.State != "time-wait" {
			mismatch += fmt.Sprintf("\n  %s: got %+v, want state time-wait", tw, twObj)
		}
		if mismatch == "" || time.Now().After(deadline) {
			break
		}
	}
	if mismatch != "" {
		t.Fatalf("sock_diag's view:%s", mismatch)
	}
	if o := got[fdInode(udp)]; o.Queued <= 0 {
		t.Errorf("UDP socket with two datagrams unread: queued %d", o.Queued)
	}
	if twObj.Inode != 0 || twObj.UID != -1 {
		t.Errorf("time-wait socket: %+v, want inode 0 and uid -1", twObj)
	}

	compared := 0
	for _, x := range runSS(t, false, "-t", "-u", "-a", "-n", "-e") {
		var o Object
		if x.ino != 0 {
			if _, ok := wants[x.ino]; !ok {
				continue
			}
			o = got[x.ino]
		} else if "tcp:"+x.local+"->"+x.peer == tw {
			o = twObj
		} else {
			continue
		}
		compared++
		remote := x.peer
		if strings.HasSuffix(remote, ":*") {
			remote = ""
		}
		uid := x.uid
		if x.ino == 0 {
			uid = -1 // ss shows the kernel's 0
		}
		if o.Kind != x.netid || o.State != ssState(x.state, o.Kind) || o.Queued != x.recvQ ||
			o.SendQueued != x.sendQ || o.Local != x.local || o.Remote != remote || o.UID != uid {
			t.Errorf("%s: got %+v; ss says %+v", o.ID, o, x)
		}
	}
	if compared != len(wants)+1 {
		t.Errorf("compared %d of the test's %d sockets with ss", compared, len(wants)+1)
	}
}

// TestShortRepliesRejected cuts real sock_diag replies short at every length and
// checks that the parsers report them as malformed (or, cut at an attribute's end,
// read them) without panicking.
func TestShortRepliesRejected(t *testing.T) {
	fd := newSocket(t, unix.AF_UNIX, unix.SOCK_STREAM)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: fmt.Sprintf("@ipclab-inspect-short-%d", os.Getpid())}); err != nil {
		t.Fatal(err)
	}
	c, err := openDiag()
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	var unixMsg, inetMsg []byte
	req := make([]byte, sizeofUnixDiagReq)
	req[0] = unix.AF_UNIX
	ne.PutUint32(req[4:], ^uint32(0))
	ne.PutUint32(req[12:], udiagShowName|udiagShowPeer|udiagShowIcons|udiagShowRqlen|udiagShowUID)
	if err := c.dump("unix", req, func(m []byte) error {
		if ne.Uint32(m[4:]) == uint32(fdInode(fd)) {
			unixMsg = bytes.Clone(m)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	req = make([]byte, sizeofInetDiagReqV2)
	req[0], req[1] = unix.AF_INET, unix.IPPROTO_TCP
	ne.PutUint32(req[4:], ^uint32(0))
	lis, _, _ := loopbackListener(t, netip.MustParseAddr("127.0.0.1"))
	if err := c.dump("tcp4", req, func(m []byte) error {
		if len(m) >= sizeofInetDiagMsg && uint64(ne.Uint32(m[inetDiagInode:])) == fdInode(lis) {
			inetMsg = bytes.Clone(m)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if unixMsg == nil || inetMsg == nil {
		t.Fatal("the kernel did not list the test's sockets")
	}
	if o, err := parseUnixDiag(unixMsg); err != nil || !strings.HasPrefix(o.Name, "@ipclab-inspect-short-") {
		t.Fatalf("parseUnixDiag: %+v, %v", o, err)
	}
	for n := range len(unixMsg) {
		if _, err := parseUnixDiag(unixMsg[:n]); err == nil && n < sizeofUnixDiagMsg {
			t.Errorf("unix_diag_msg cut to %d bytes: no error", n)
		}
	}
	for n := range len(inetMsg) {
		if _, _, err := parseInetDiag(inetMsg[:n], KindTCP); err == nil && n < sizeofInetDiagMsg {
			t.Errorf("inet_diag_msg cut to %d bytes: no error", n)
		}
	}
	// A whole netlink message, cut short, is malformed.
	msg := make([]byte, unix.NLMSG_HDRLEN+len(unixMsg))
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(msg[6:], unix.NLM_F_MULTI)
	ne.PutUint32(msg[8:], c.seq)
	copy(msg[unix.NLMSG_HDRLEN:], unixMsg)
	for n := 1; n < len(msg); n++ {
		if _, err := c.replies(msg[:n], func(m []byte) error { _, err := parseUnixDiag(m); return err }); err == nil {
			t.Errorf("netlink message cut to %d bytes: no error", n)
		}
	}
	if done, err := c.replies(msg, func([]byte) error { return nil }); done || err != nil {
		t.Errorf("whole multipart message: done %v, %v", done, err)
	}
}
