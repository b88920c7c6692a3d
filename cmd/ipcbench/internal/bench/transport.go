// Package bench is ipcbench's engine: scenarios (ping-pong, stream) run between two real
// processes over every registered transport, timed into preallocated histograms.
//
// A transport is one primitive in one implementation: "ipclab" (the library's API),
// "std" (what a Go program would write without ipclab: os.Pipe, net.UnixConn,
// net.UDPConn, in the runtime's poller; only some primitives have one) or "raw" (the
// same exchange with bare system calls, the baseline that shows the library's
// overhead). Each primitive registers its transports from its own file with Register.
package bench

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"sync"

	"github.com/ipclab/ipclab/ipc"
)

// Impl names an implementation of a transport.
const (
	ImplIpclab = "ipclab"
	// ImplStd is the Go standard library's way of doing the same exchange, waiting in
	// the runtime's poller (Wait is always ipc.WaitPoller).
	ImplStd = "std"
	ImplRaw = "raw"
)

// Impls lists the implementation names, in the order a report shows them.
var Impls = []string{ImplIpclab, ImplStd, ImplRaw}

// ImplLister is implemented by transports that do not run every implementation in
// every scenario; the others run ImplIpclab and ImplRaw.
type ImplLister interface {
	// Impls returns the implementations the transport runs in scenario.
	Impls(scenario string) []string
}

// hasImpl reports whether t runs impl in scenario. ScenarioQoS runs streams of
// package ipc/stream over ipclab's endpoints only.
func hasImpl(t Transport, impl, scenario string) bool {
	if scenario == ScenarioQoS {
		return impl == ImplIpclab
	}
	if il, ok := t.(ImplLister); ok {
		return slices.Contains(il.Impls(scenario), impl)
	}
	return impl == ImplIpclab || impl == ImplRaw
}

// Params is what both processes know about one run.
type Params struct {
	Primitive string           `json:"primitive"`
	Impl      string           `json:"impl"`
	Scenario  string           `json:"scenario"`
	Size      int              `json:"size"`
	Wait      ipc.WaitStrategy `json:"wait"`
	// Args carries transport-specific values from Setup to the peer (paths, ids).
	Args []string `json:"args,omitempty"`
}

// Endpoint is one side of a connection. Send and Recv move one message of exactly
// len(p) bytes (byte streams read until p is full); they must not allocate.
type Endpoint interface {
	Send(p []byte) error
	Recv(p []byte) error
	Close() error
}

// Transport is a primitive that ipcbench can drive.
type Transport interface {
	// Name is the primitive's name on the command line ("pipe", "sysv-msg").
	Name() string
	// Waits lists the wait strategies the ipclab implementation supports; the raw
	// implementation always blocks in the kernel, the std one always waits in the
	// runtime's poller.
	Waits() []ipc.WaitStrategy
	// MaxSize is the largest message size supported (0: no limit).
	MaxSize() int
	// Available returns nil if the transport works on this machine, else why not.
	Available() error
	// Setup creates the kernel objects in the parent. It returns the parent's endpoint,
	// the files to hand to the peer (in order), and updates p.Args for the peer.
	Setup(p *Params) (Endpoint, []*os.File, error)
	// Open builds the peer's endpoint from the inherited files and p.Args.
	Open(p Params, files []*os.File) (Endpoint, error)
	// Cleanup removes anything Setup created that outlives its descriptors (a FIFO's
	// path, a System V object). Called in the parent after the peer has exited.
	Cleanup(p Params) error
}

var (
	regMu      sync.Mutex
	transports = map[string]Transport{}
)

// Register adds a transport. It panics on a duplicate name (a programming error).
func Register(t Transport) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := transports[t.Name()]; dup {
		panic("bench: transport " + t.Name() + " registered twice")
	}
	transports[t.Name()] = t
}

// Transports returns the registered transports in a stable order.
func Transports() []Transport {
	regMu.Lock()
	defer regMu.Unlock()
	out := make([]Transport, 0, len(transports))
	for _, t := range transports {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return order(out[i].Name()) < order(out[j].Name()) })
	return out
}

// Lookup returns the transport called name.
func Lookup(name string) (Transport, error) {
	regMu.Lock()
	defer regMu.Unlock()
	t, ok := transports[name]
	if !ok {
		return nil, fmt.Errorf("unknown primitive %q", name)
	}
	return t, nil
}

// displayOrder lists the primitives from the simplest kernel object up; names not
// listed sort after, alphabetically.
var displayOrder = []string{"pipe", "fifo", "unix-stream", "unix-seqpacket", "unix-dgram", "tcp", "udp",
	"sysv-msg", "sysv-sem", "shm", "posix-mq", "door"}

func order(name string) string {
	for i, n := range displayOrder {
		if n == name {
			return fmt.Sprintf("%03d", i)
		}
	}
	return "999" + name
}
