#!/bin/sh
# Regenerates the committed Go code of calc.x (calc_xdr.go by goxdr, the go.mod tool
# pinned at github.com/xdrpp/goxdr v0.1.1; calc_rpc.go by ../cmd/rpcgo) and, with
# --check, fails if it differs from what is committed. CI runs it as
#   ipc/rpc/example/gen.sh --check
set -eu

cd "$(dirname "$0")"
go generate ./
if [ "${1:-}" = "--check" ]; then
	if ! git diff --exit-code -- . || [ -n "$(git status --porcelain -- .)" ]; then
		echo "gen.sh: the committed Go code differs from calc.x; run ipc/rpc/example/gen.sh and commit the result" >&2
		git status --porcelain -- . >&2
		exit 1
	fi
fi
