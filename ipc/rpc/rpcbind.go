package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/xdrpp/goxdr/xdr"
	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// rpcbind (RFC 1833): the portmapper protocol, version 2 (PMAPPROC_*), and rpcbind
// version 3 (RPCBPROC_*), both program 100000 on port 111.
const (
	pmapProg = 100000
	pmapVers = 2
	rpcbVers = 3

	pmapSet     = 1
	pmapUnset   = 2
	pmapGetport = 3
	rpcbGetaddr = 3
	rpcbUnset   = 2

	protoTCP = 6
	protoUDP = 17
)

// RpcbindAddr is where this package finds the machine's rpcbind. Tests may point it
// elsewhere before any call.
var RpcbindAddr = "127.0.0.1:111"

// ErrStale is returned when rpcbind names an address at which nothing answers: a
// registration left behind by a server that died without unregistering, or a door
// binder entry (Binder) whose server is gone. It matches unix.ECONNREFUSED.
var ErrStale = ipc.NewSentinel("stale registration: nothing answers at the registered address", nil, unix.ECONNREFUSED)

// binding is one registration with rpcbind, of one transport, undone by
// Server.Close.
type binding struct {
	prog, vers uint32
	network    string
}

// pmapMapping is PMAP's mapping {prog, vers, prot, port}.
type pmapMapping struct{ prog, vers, prot, port uint32 }

func (m *pmapMapping) XdrTypeName() string               { return "mapping" }
func (m *pmapMapping) XdrValue() any                     { return *m }
func (m *pmapMapping) XdrPointer() any                   { return m }
func (m *pmapMapping) XdrMarshal(x xdr.XDR, name string) { x.Marshal(name, m) }
func (m *pmapMapping) XdrRecurse(x xdr.XDR, name string) {
	for _, p := range []*uint32{&m.prog, &m.vers, &m.prot, &m.port} {
		x.Marshal(name, xdr.XDR_uint32(p))
	}
}

// rpcbEntry is rpcbind's rpcb {prog, vers, netid, addr, owner}.
type rpcbEntry struct {
	prog, vers         uint32
	netid, addr, owner string
}

func (r *rpcbEntry) XdrTypeName() string               { return "rpcb" }
func (r *rpcbEntry) XdrValue() any                     { return *r }
func (r *rpcbEntry) XdrPointer() any                   { return r }
func (r *rpcbEntry) XdrMarshal(x xdr.XDR, name string) { x.Marshal(name, r) }
func (r *rpcbEntry) XdrRecurse(x xdr.XDR, name string) {
	x.Marshal(name, xdr.XDR_uint32(&r.prog))
	x.Marshal(name, xdr.XDR_uint32(&r.vers))
	for _, s := range []*string{&r.netid, &r.addr, &r.owner} {
		x.Marshal(name, xdr.XdrString{Str: s, Bound: 1024})
	}
}

// pmapCall makes one call to the local portmapper over network.
func pmapCall(ctx context.Context, network string, vers, proc uint32, args, res Value) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, network, RpcbindAddr, pmapProg, vers, WithRetransmit(100*time.Millisecond, time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Call(ctx, proc, args, res)
}

func protoOf(network string) (uint32, bool) {
	switch network {
	case "tcp":
		return protoTCP, true
	case "udp":
		return protoUDP, true
	}
	return 0, false
}

// Set registers version vers of program prog on network ("tcp" or "udp") at port
// with the local rpcbind (PMAPPROC_SET). rpcbind refuses (false) a program version
// and transport that is registered already.
func Set(ctx context.Context, prog, vers uint32, network string, port int) (bool, error) {
	obj := fmt.Sprintf("%d/%d/%s:%d", prog, vers, network, port)
	proto, ok := protoOf(network)
	if !ok || port <= 0 || port > 65535 {
		return false, invalid("rpcbind set", obj, "network %q, port %d", network, port)
	}
	var done bool
	m := pmapMapping{prog, vers, proto, uint32(port)}
	if err := pmapCall(ctx, "udp", pmapVers, pmapSet, &m, xdr.XDR_bool(&done)); err != nil {
		return false, err
	}
	return done, nil
}

// Unset removes every registration of version vers of program prog from the local
// rpcbind (PMAPPROC_UNSET); it reports whether there was any.
func Unset(ctx context.Context, prog, vers uint32) (bool, error) {
	var done bool
	m := pmapMapping{prog: prog, vers: vers}
	if err := pmapCall(ctx, "udp", pmapVers, pmapUnset, &m, xdr.XDR_bool(&done)); err != nil {
		return false, err
	}
	return done, nil
}

// unsetNetid removes the registrations of version vers of program prog on one
// transport ("tcp" or "udp") from the local rpcbind (RPCBPROC_UNSET, version 3,
// by netid), leaving those of other transports alone; it reports whether there was
// any.
func unsetNetid(ctx context.Context, prog, vers uint32, network string) (bool, error) {
	var done bool
	q := rpcbEntry{prog: prog, vers: vers, netid: network}
	if err := pmapCall(ctx, "udp", rpcbVers, rpcbUnset, &q, xdr.XDR_bool(&done)); err != nil {
		return false, err
	}
	return done, nil
}

// Lookup asks the local rpcbind where version vers of program prog is served over
// network, "tcp" or "udp" (PMAPPROC_GETPORT), and returns "127.0.0.1:port". A
// program rpcbind does not know is ErrNotRegistered.
func Lookup(ctx context.Context, network string, prog, vers uint32) (string, error) {
	obj := fmt.Sprintf("%d/%d/%s", prog, vers, network)
	proto, ok := protoOf(network)
	if !ok {
		return "", invalid("rpcbind getport", obj, "network %q", network)
	}
	var port uint32
	m := pmapMapping{prog, vers, proto, 0}
	if err := pmapCall(ctx, "udp", pmapVers, pmapGetport, &m, xdr.XDR_uint32(&port)); err != nil {
		return "", err
	}
	if port == 0 || port > 65535 {
		return "", opErr("rpcbind getport", obj, ErrNotRegistered)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))), nil
}

// LookupAddr is Lookup through rpcbind version 3 (RPCBPROC_GETADDR): it asks by
// netid, over that transport (rpcbind answers with the address registered for
// the transport the question came on), and returns the universal address rpcbind
// holds, as "host:port".
func LookupAddr(ctx context.Context, network string, prog, vers uint32) (string, error) {
	obj := fmt.Sprintf("%d/%d/%s", prog, vers, network)
	if _, ok := protoOf(network); !ok {
		return "", invalid("rpcbind getaddr", obj, "network %q", network)
	}
	q := rpcbEntry{prog: prog, vers: vers, netid: network}
	var uaddr string
	if err := pmapCall(ctx, network, rpcbVers, rpcbGetaddr, &q, xdr.XdrString{Str: &uaddr, Bound: 1024}); err != nil {
		return "", err
	}
	if uaddr == "" {
		return "", opErr("rpcbind getaddr", obj, ErrNotRegistered)
	}
	addr, err := fromUaddr(uaddr)
	if err != nil {
		return "", opErr("rpcbind getaddr", obj, err)
	}
	return addr, nil
}

// fromUaddr turns an RFC 1833 universal address "h1.h2.h3.h4.p1.p2" into
// "h1.h2.h3.h4:port".
func fromUaddr(u string) (string, error) {
	f := strings.Split(u, ".")
	if len(f) != 6 {
		return "", protoErr("universal address %q", u)
	}
	hi, err1 := strconv.ParseUint(f[4], 10, 8)
	lo, err2 := strconv.ParseUint(f[5], 10, 8)
	if err1 != nil || err2 != nil {
		return "", protoErr("universal address %q", u)
	}
	return net.JoinHostPort(strings.Join(f[:4], "."), strconv.Itoa(int(hi<<8|lo))), nil
}

// DialRpcbind finds version vers of program prog through the local rpcbind (Lookup)
// and dials it. A registration at which nothing answers (a server that died without
// unregistering) is ErrStale, found at once: over TCP by the refused connection,
// over UDP by a null call (procedure 0) sent once, answered within a second or
// refused by the kernel's ICMP port-unreachable.
func DialRpcbind(ctx context.Context, network string, prog, vers uint32, opts ...ClientOption) (*Client, error) {
	addr, err := Lookup(ctx, network, prog, vers)
	if err != nil {
		return nil, err
	}
	obj := fmt.Sprintf("%d/%d@%s:%s", prog, vers, network, addr)
	c, err := Dial(ctx, network, addr, prog, vers, opts...)
	if err != nil {
		if errors.Is(err, unix.ECONNREFUSED) {
			return nil, opErr("dial", obj, ErrStale)
		}
		return nil, err
	}
	if network == "udp" {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Call(pctx, 0, nil, nil, CallSemantics(Maybe))
		cancel()
		if err != nil && (errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrProgUnavail)) {
			c.Close()
			return nil, opErr("dial", obj, ErrStale)
		}
		// Any other reply (PROC_UNAVAIL for a server without a null procedure)
		// shows that someone is there.
	}
	return c, nil
}

// Advertise registers every program version the server has with the local
// rpcbind, on one endpoint per transport: its first TCP listener and its first UDP
// socket (rpcbind holds one address per program version and transport; further
// listeners serve, unadvertised). So `rpcinfo -p` lists them and DialRpcbind finds
// them; Close unregisters them. A registration that rpcbind already holds for
// another address, on any of these transports, is replaced if nothing answers
// there (a server that died without unregistering); if something does, Advertise
// fails with an error matching unix.EADDRINUSE and registers nothing (it undoes
// what it registered, and only that). An Advertise that a Close
// overtakes undoes its registrations and fails with an error matching
// net.ErrClosed.
func (s *Server) Advertise(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return opErr("advertise", "", net.ErrClosed)
	}
	var pvs []progVers
	for pv := range s.progs {
		pvs = append(pvs, pv)
	}
	type ep struct {
		network string
		port    int
	}
	// One endpoint per transport: rpcbind holds one address per program
	// version and netid, so the first listener of each transport is the one
	// advertised.
	var eps []ep
	if len(s.tcp) > 0 {
		eps = append(eps, ep{"tcp", s.tcp[0].Addr().(*net.TCPAddr).Port})
	}
	if len(s.udp) > 0 {
		eps = append(eps, ep{"udp", s.udp[0].LocalAddr().(*net.UDPAddr).Port})
	}
	s.mu.Unlock()
	if len(pvs) == 0 || len(eps) == 0 {
		return invalid("advertise", "", "%d programs and %d listeners: nothing to register", len(pvs), len(eps))
	}
	var done []binding
	undo := func(err error) error { return ipc.Join(err, unsetAll(done)) }
	for _, pv := range pvs {
		obj := fmt.Sprintf("%d/%d", pv.prog, pv.vers)
		for _, e := range eps {
			ok, err := Set(ctx, pv.prog, pv.vers, e.network, e.port)
			if err != nil {
				return undo(opErr("advertise", obj, err))
			}
			if !ok {
				// Someone holds this transport: replace it only if it is stale.
				if live(ctx, e.network, pv.prog, pv.vers) {
					return undo(opErr("advertise", obj, fmt.Errorf("%s registered with rpcbind by a live server: %w", e.network, unix.EADDRINUSE)))
				}
				if _, err := unsetNetid(ctx, pv.prog, pv.vers, e.network); err != nil {
					return undo(opErr("advertise", obj, err))
				}
				if ok, err = Set(ctx, pv.prog, pv.vers, e.network, e.port); err != nil {
					return undo(opErr("advertise", obj, err))
				}
			}
			if !ok {
				return undo(opErr("advertise", obj, fmt.Errorf("rpcbind refused %s port %d: %w", e.network, e.port, unix.EADDRINUSE)))
			}
			done = append(done, binding{pv.prog, pv.vers, e.network})
		}
	}
	s.mu.Lock()
	if s.closed {
		// Close ran while we registered: it has undone what it knew of, not
		// these; undo them here.
		s.mu.Unlock()
		return undo(opErr("advertise", "", net.ErrClosed))
	}
	s.bindings = append(s.bindings, done...)
	s.mu.Unlock()
	return nil
}

// live reports whether a server answers at the registration of prog/vers on
// network.
func live(ctx context.Context, network string, prog, vers uint32) bool {
	c, err := DialRpcbind(ctx, network, prog, vers, WithTimeout(time.Second))
	if err == nil {
		c.Close()
		return true
	}
	return false
}

// unsetAll undoes registrations with rpcbind, each of its own transport only: a
// registration of the same program version on another transport (another
// server's) stays.
func unsetAll(bs []binding) error {
	var errs []error
	for _, b := range bs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := unsetNetid(ctx, b.prog, b.vers, b.network)
		cancel()
		if err != nil {
			errs = append(errs, opErr("rpcbind unset", fmt.Sprintf("%d/%d/%s", b.prog, b.vers, b.network), err))
		}
	}
	return ipc.Join(errs...)
}
