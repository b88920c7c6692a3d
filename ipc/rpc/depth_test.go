package rpc_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/xdrpp/goxdr/xdr"

	"github.com/ipclab/ipclab/ipc/rpc"
)

// node is struct node { node *next; }, written by hand as goxdr would generate it:
// a recursive type whose decoding recurses once per list element.
type node struct{ next *node }

func (n *node) XdrTypeName() string               { return "node" }
func (n *node) XdrValue() any                     { return *n }
func (n *node) XdrPointer() any                   { return n }
func (n *node) XdrMarshal(x xdr.XDR, name string) { x.Marshal(name, n) }
func (n *node) XdrRecurse(x xdr.XDR, name string) {
	present := n.next != nil
	x.Marshal(name, xdr.XDR_bool(&present))
	if present {
		if n.next == nil {
			n.next = &node{}
		}
		x.Marshal(name, n.next)
	}
}

// nested is the encoding of a list of n nodes.
func nested(n int) []byte {
	b := make([]byte, 0, 4*(n+1))
	for i := 0; i < n; i++ {
		b = binary.BigEndian.AppendUint32(b, 1)
	}
	return binary.BigEndian.AppendUint32(b, 0)
}

// TestXDRDepthLimit (RPC-09): a recursive type nested deeper than the decoder's
// limit is bad input (ErrProtocol), not a fatal stack overflow; 8 MiB of input
// (2 Mi levels) fails the same way; a list within the limit decodes.
func TestXDRDepthLimit(t *testing.T) {
	var n node
	if err := rpc.UnmarshalXDR(nested(100), &n); err != nil {
		t.Fatalf("100 levels: %v", err)
	}
	for _, depth := range []int{rpc.MaxXDRDepth + 1, 2 << 20} {
		var n node
		err := rpc.UnmarshalXDR(nested(depth), &n)
		if !errors.Is(err, rpc.ErrProtocol) {
			t.Errorf("%d levels: %v, want ErrProtocol", depth, err)
		}
	}
}
