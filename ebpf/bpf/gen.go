// Package bpf holds ipcprobe, the BPF programs behind package ebpf, compiled from
// ipcprobe.c by bpf2go. The generated object and Go files are committed so that users
// build without clang; gen.sh regenerates them with the pinned compiler and CI fails
// on any difference.
package bpf

//go:generate go tool bpf2go -cc clang -no-strip=false -go-package bpf -tags linux -target amd64 -type ipc_stats -type sc_info -type fd_key -type ipc_key -type tstate -type ipc_prim -type ipc_op -type ipc_metric -type ipc_arg -type ipc_bytes Ipcprobe ipcprobe.c -- -I. -I/usr/include -O2 -g -Wall -Werror -mcpu=v3
