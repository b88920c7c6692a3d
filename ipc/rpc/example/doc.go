// Package calc is the example ONC RPC interface of package ipc/rpc, compiled from
// calc.x: XDR types (calc_xdr.go, by goxdr), typed client and server stubs
// (calc_rpc.go, by rpcgo), and a server implementation (Calc). Copy the directory
// to start an interface of your own; calcd and calc are a server and a client
// program built on it.
//
// Regenerate after editing calc.x with go generate; gen.sh --check (run by CI)
// fails when the committed files differ from what calc.x gives.
package calc

//go:generate go run github.com/ipclab/ipclab/ipc/rpc/cmd/rpcgo -p calc -o calc_xdr.go -stubs calc_rpc.go calc.x
