package calc

import (
	"context"
	"math/bits"
	"slices"
	"strings"

	"github.com/ipclab/ipclab/ipc/rpc"
)

// Calc is a server implementation of CALC_V1: register it with Register_CALC_V1.
type Calc struct{}

var _ CALC_V1_Handler = Calc{}

// CALC_NULL does nothing: the null procedure, for pings.
func (Calc) CALC_NULL(ctx context.Context, c *rpc.Call) error { return nil }

// CALC_EVAL computes what arg asks: a sum or a product of its values, a negation,
// or its words joined by spaces. It greets arg.Who and returns arg.Tag swapped. An
// empty product is refused in the answer (ok FALSE), not with an RPC error.
func (Calc) CALC_EVAL(ctx context.Context, c *rpc.Call, arg *Request, res *Answer) error {
	var r Result
	switch arg.What.Kind {
	case SUM:
		for _, v := range *arg.What.Values() {
			r.Value += v
		}
	case PRODUCT:
		vals := *arg.What.Values()
		if len(vals) == 0 {
			res.Ok = false
			*res.Why() = "empty product"
			return nil
		}
		r.Value = 1
		for _, v := range vals {
			r.Value *= v
		}
	case NEGATE:
		r.Value = -*arg.What.N()
	case CONCAT:
		r.Text = strings.Join(*arg.What.Words(), " ")
	}
	r.Greeting = "hello, " + arg.Who
	if len(r.Greeting) > MAXNAME {
		r.Greeting = r.Greeting[:MAXNAME]
	}
	r.Tag = [2]uint32{arg.Tag[1], arg.Tag[0]}
	res.Ok = true
	*res.Res() = r
	return nil
}

// CALC_SWAB returns arg with its bytes reversed.
func (Calc) CALC_SWAB(ctx context.Context, c *rpc.Call, arg *uint64, res *uint64) error {
	*res = bits.ReverseBytes64(*arg)
	return nil
}

// CALC_SORT returns arg sorted ascending.
func (Calc) CALC_SORT(ctx context.Context, c *rpc.Call, arg *Nums, res *Nums) error {
	*res = slices.Clone(*arg)
	slices.Sort(*res)
	return nil
}
