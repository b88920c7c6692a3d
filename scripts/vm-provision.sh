#!/usr/bin/env bash
# vm-provision.sh: install Go if needed, build ipcbench from the source tree (or take
# a prebuilt one), run the default benchmark suite with --format json (and --ebpf where
# the kernel allows it), and write RESULTS_DIR/MACHINE.json.
#
# The Vagrantfile runs this in every VM (as root, source synced to /vagrant), and so
# does the Debian machine scripts/vm-qemu.sh boots under qemu, with IPCBENCH_BIN. The
# tests run it on the build machine too (cmd/ipcbench/internal/report's TestProvision*), so all of
# it is exercised; only the download host differs. Settings, all from the environment:
#
#   IPCBENCH_BIN    a prebuilt ipcbench (static: CGO_ENABLED=0) to run instead of
#                   building one; then neither Go nor the source tree is needed
#   IPCLAB_SRC      source tree (default: the directory above this script)
#   MACHINE         name of the result file (default: the short host name)
#   RESULTS_DIR     where MACHINE.json and MACHINE.log go (default: IPCLAB_SRC/results)
#   GO_INSTALL      auto: install Go unless a new enough go is already on PATH or in
#                   GO_PREFIX; always; never (use the go on PATH, fail if too old)
#   GO_VERSION      Go release to install (default: the go line of go.mod)
#   GO_PREFIX       Go is unpacked into GO_PREFIX/go (default /usr/local)
#   GO_DOWNLOAD     base URL of Go release archives (default https://go.dev/dl); the
#                   archive's .sha256 beside it is checked. file:// URLs work.
#   PACKAGES        auto: install curl/tar/gzip with the distribution's package
#                   manager when missing (needs root); never
#   IPCBENCH_RUN    ipcbench arguments before the output options (default: run)
#   IPCBENCH_ARGS   extra ipcbench arguments, e.g. to shorten the suite (default none)
#   IPCBENCH_EBPF   auto: try --ebpf, and run without it if that fails; on; off
#   IPCBENCH_TIMEOUT  seconds one ipcbench run may take (default 3600)
#   BUILD_DIR       where ipcbench is built (default: a temporary directory)
#   IPCLAB_VERSION  the source revision (git describe), passed on to ipcbench, whose
#                   build has no VCS information when the tree has no .git
set -euo pipefail

# Temporary files and directories to remove on exit, however the script ends.
cleanup=()
trap 'rm -rf "${cleanup[@]}"' EXIT

log() { printf '%s vm-provision: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=${IPCLAB_SRC:-$here}
machine=${MACHINE:-$(uname -n | cut -d. -f1)}
results=${RESULTS_DIR:-$src/results}
go_install=${GO_INSTALL:-auto}
go_prefix=${GO_PREFIX:-/usr/local}
go_download=${GO_DOWNLOAD:-https://go.dev/dl}
packages=${PACKAGES:-auto}
ebpf=${IPCBENCH_EBPF:-auto}
run_timeout=${IPCBENCH_TIMEOUT:-3600}
if [ -n "${IPCLAB_VERSION:-}" ]; then export IPCLAB_VERSION; fi
read -r -a run_args <<<"${IPCBENCH_RUN:-run}"
read -r -a extra_args <<<"${IPCBENCH_ARGS:-}"

prebuilt=${IPCBENCH_BIN:-}
if [ -n "$prebuilt" ]; then
	if [ ! -f "$prebuilt" ] || [ ! -x "$prebuilt" ]; then die "IPCBENCH_BIN=$prebuilt is not an executable file"; fi
elif [ ! -f "$src/go.mod" ]; then
	die "no go.mod in $src (set IPCLAB_SRC, or IPCBENCH_BIN to run a prebuilt ipcbench)"
fi
case "$machine" in '' | */* | .*) die "bad MACHINE name '$machine'" ;; esac
case "$go_install" in auto | always | never) ;; *) die "GO_INSTALL must be auto, always or never" ;; esac
case "$ebpf" in auto | on | off) ;; *) die "IPCBENCH_EBPF must be auto, on or off" ;; esac
case "$run_timeout" in '' | *[!0-9]*) die "IPCBENCH_TIMEOUT must be a number of seconds" ;; esac

# The Go version go.mod asks for: its toolchain line if any, else its go line.
want_go=${GO_VERSION:-}
if [ -z "$want_go" ] && [ -z "$prebuilt" ]; then
	want_go=$(awk '$1 == "toolchain" { sub(/^go/, "", $2); print $2; exit }' "$src/go.mod")
	[ -n "$want_go" ] || want_go=$(awk '$1 == "go" { print $2; exit }' "$src/go.mod")
fi
[ -n "$want_go" ] || [ -n "$prebuilt" ] || die "cannot tell which Go version go.mod needs"

# version_ge A B: A >= B for dotted versions.
version_ge() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$2" ]; }

# go_version GO: the version of the go binary GO ("1.26.0"), empty if it does not run.
go_version() { "$1" env GOVERSION 2>/dev/null | sed -n 's/^go\([0-9][0-9.]*\).*/\1/p'; }

install_packages() {
	local missing=() p
	for p in "$@"; do command -v "$p" >/dev/null 2>&1 || missing+=("$p"); done
	[ ${#missing[@]} -gt 0 ] || return 0
	[ "$packages" = auto ] || die "missing ${missing[*]} and PACKAGES=$packages"
	[ "$(id -u)" = 0 ] || die "missing ${missing[*]}; run as root to install them"
	log "installing ${missing[*]}"
	if command -v apt-get >/dev/null 2>&1; then
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq && apt-get install -y -qq "${missing[@]}" ca-certificates >/dev/null
	elif command -v dnf >/dev/null 2>&1; then
		dnf install -y -q "${missing[@]}" ca-certificates >/dev/null
	elif command -v yum >/dev/null 2>&1; then
		yum install -y -q "${missing[@]}" ca-certificates >/dev/null
	elif command -v zypper >/dev/null 2>&1; then
		zypper --non-interactive install "${missing[@]}" ca-certificates >/dev/null
	else
		die "missing ${missing[*]} and no known package manager"
	fi
}

install_go() {
	local arch url archive sum want
	case "$(uname -m)" in
	x86_64) arch=amd64 ;;
	aarch64 | arm64) arch=arm64 ;;
	*) die "no Go download for $(uname -m)" ;;
	esac
	install_packages curl tar gzip
	url="$go_download/go$want_go.linux-$arch.tar.gz"
	dl=$(mktemp -d)
	cleanup+=("$dl")
	archive=$dl/go.tar.gz
	log "downloading $url"
	curl -fsSL --retry 3 -o "$archive" "$url" || die "cannot download $url"
	want=$(curl -fsSL --retry 3 "$url.sha256" | awk '{print $1; exit}') || die "cannot download $url.sha256"
	sum=$(sha256sum "$archive" | awk '{print $1}')
	if [ -z "$want" ] || [ "$sum" != "$want" ]; then die "checksum mismatch for $url: got $sum, want $want"; fi
	mkdir -p "$go_prefix"
	rm -rf "$go_prefix/go"
	tar -C "$go_prefix" -xzf "$archive"
	rm -rf "$dl"
	log "installed Go $want_go in $go_prefix/go"
}

# Find or install a go that can build this module, unless IPCBENCH_BIN spares the build.
go_bin=""
if [ -n "$prebuilt" ]; then
	log "using the prebuilt $prebuilt (IPCBENCH_BIN): no Go, no build"
elif [ "$go_install" != always ]; then
	for g in "$(command -v go 2>/dev/null || true)" "$go_prefix/go/bin/go"; do
		if [ -z "$g" ] || [ ! -x "$g" ]; then continue; fi
		v=$(go_version "$g")
		if [ -n "$v" ] && version_ge "$v" "$want_go"; then go_bin=$g; break; fi
		[ -n "$v" ] && log "ignoring $g: Go $v is older than $want_go"
	done
fi
if [ -z "$go_bin" ] && [ -z "$prebuilt" ]; then
	[ "$go_install" != never ] || die "no Go >= $want_go on PATH and GO_INSTALL=never"
	install_go
	go_bin=$go_prefix/go/bin/go
	v=$(go_version "$go_bin")
	if [ -z "$v" ] || ! version_ge "$v" "$want_go"; then die "the installed Go ($v) does not run or is older than $want_go"; fi
fi
[ -n "$prebuilt" ] || log "using $go_bin (Go $(go_version "$go_bin"))"

# Build. GOTOOLCHAIN=local: never fetch another toolchain behind our back.
# -buildvcs=false: a synced folder has no usable .git.
build=${BUILD_DIR:-}
if [ -z "$build" ] && [ -z "$prebuilt" ]; then
	build=$(mktemp -d)
	cleanup+=("$build")
fi
bin=$build/ipcbench
if [ -n "$prebuilt" ]; then
	bin=$prebuilt
else
	log "building ipcbench from $src"
	(cd "$src" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -buildvcs=false" "$go_bin" build -o "$bin" ./cmd/ipcbench) ||
		die "go build ./cmd/ipcbench failed"
fi

mkdir -p "$results"
out=$results/$machine.json
logf=$results/$machine.log
tmp=$(mktemp "$results/.$machine.json.XXXXXX")
cleanup+=("$tmp")
: >"$logf"

# attempt [FLAGS...]: run the suite into $tmp, its stderr into the log, and succeed if
# it wrote results. A run that wrote results but exited non-zero (some measurement
# failed) is kept, with a warning: the log says what failed.
attempt() {
	local rc=0
	log "running: ipcbench ${run_args[*]} --format json $* ${extra_args[*]}"
	echo "# ipcbench ${run_args[*]} --format json $* ${extra_args[*]}" >>"$logf"
	timeout --kill-after=30 "$run_timeout" "$bin" "${run_args[@]}" --format json "$@" "${extra_args[@]}" >"$tmp" 2>>"$logf" || rc=$?
	[ "$rc" != 124 ] || log "ipcbench did not finish within IPCBENCH_TIMEOUT=${run_timeout}s"
	# One JSON object with a non-empty results array.
	if [ -s "$tmp" ] && head -c1 "$tmp" | grep -q '{' && grep -q '"results"' "$tmp" &&
		! grep -Eq '"results": *(null|\[ *\])' "$tmp"; then
		[ "$rc" = 0 ] || log "WARNING: ipcbench exited with status $rc; keeping the results it wrote (see $logf)"
		return 0
	fi
	log "ipcbench exited with status $rc and wrote no results"
	return 1
}

ok=""
case "$ebpf" in
on) attempt --ebpf && ok=1 ;;
auto)
	if [ "$(id -u)" = 0 ] && attempt --ebpf; then
		ok=1
	else
		log "no results with --ebpf (not root, or the kernel or build does not allow it); running without it"
		attempt && ok=1
	fi
	;;
off) attempt && ok=1 ;;
esac
if [ -z "$ok" ]; then
	rm -f "$tmp"
	tail -n 20 "$logf" >&2 || true
	die "ipcbench failed (log in $logf)"
fi
mv -f "$tmp" "$out"
chmod 0644 "$out"
log "wrote $out"
