#!/bin/sh
# Regenerates the committed BPF objects (ipcprobe_*_bpfel.{o,go}) with the pinned
# compiler and fails if they differ from what is committed. CI runs it as
#   ebpf/bpf/gen.sh --check
# It needs Debian 12's clang 14.0.6, llvm-strip and libbpf-dev 1.1.2:
#   apt-get install -y clang=1:14.0-55.7~deb12u1 llvm=1:14.0-55.7~deb12u1 libbpf-dev=1:1.1.2-0+deb12u1
# (The objects were last generated with "Debian clang version 14.0.6" and the headers
# of libbpf-dev 1:1.1.2-0+deb12u1.)
set -eu

PINNED_CLANG="Debian clang version 14.0.6"

cd "$(dirname "$0")"
have=$(clang --version | head -n 1)
if [ "$have" != "$PINNED_CLANG" ]; then
	echo "gen.sh: need $PINNED_CLANG, have: $have" >&2
	exit 1
fi
go generate ./
if [ "${1:-}" = "--check" ]; then
	if ! git diff --exit-code -- . || [ -n "$(git status --porcelain -- .)" ]; then
		echo "gen.sh: the committed BPF objects differ from the sources; run ebpf/bpf/gen.sh and commit the result" >&2
		git status --porcelain -- . >&2
		exit 1
	fi
fi
