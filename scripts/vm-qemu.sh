#!/usr/bin/env bash
# vm-qemu.sh: boot a small Debian machine under qemu, run ipcbench in it through
# scripts/vm-provision.sh (the provisioning the Vagrantfile uses) and bring the JSON back
# to the host as RESULTS_DIR/MACHINE.json.
#
#   sudo scripts/vm-qemu.sh                                 # results/qemu-<release>.json
#   sudo IPCBENCH_ARGS="--prim pipe,fifo --size 64,4K" scripts/vm-qemu.sh
#
# The first run builds the machine and keeps it in QEMU_CACHE: debootstrap makes a root
# file system from the Debian mirror the host's apt already uses, with Debian's kernel
# (linux-image-amd64) and systemd (for systemd-detect-virt) in it; mkfs.ext4 -d packs it
# into a disk image (no loop mount). That needs root. Each run then builds ipcbench on the
# host with CGO_ENABLED=0 (or takes IPCBENCH_BIN), puts it with vm-provision.sh on a small
# second disk, and boots the kernel and initrd with -kernel/-initrd. The guest's first
# process mounts that disk, runs vm-provision.sh with IPCBENCH_BIN, leaves the results on
# the disk and powers off; debugfs reads them back. The guest has no network, its root
# disk is opened with snapshot=on (it stays as built), the boot and run are bounded by
# QEMU_TIMEOUT, and qemu and every temporary file go away however this script ends.
#
# Without /dev/kvm qemu emulates the CPU (TCG): runs are slow and their figures say
# nothing about any real machine. ipcbench then records machine.virtualization as
# "qemu-tcg (emulated CPU: figures not meaningful)"; what the run proves is the path
# from a booted machine to a result file on the host.
#
# Settings, all from the environment:
#
#   IPCBENCH_BIN    prebuilt static ipcbench to run in the guest (default: build one)
#   IPCBENCH_ARGS   ipcbench arguments (default: a tiny suite, see below)
#   IPCBENCH_EBPF   passed on to vm-provision.sh (default off)
#   IPCBENCH_TIMEOUT  passed on to vm-provision.sh (default 600)
#   IPCLAB_SRC      source tree (default: the directory above this script)
#   IPCLAB_VERSION  source revision recorded in the results (default: git describe)
#   MACHINE         result name (default qemu-RELEASE)
#   RESULTS_DIR     where MACHINE.json, MACHINE.log and MACHINE.console.log (the guest's
#                   serial console) go (default IPCLAB_SRC/results)
#   QEMU_RELEASE    Debian release of the guest (default: the host's, on Debian)
#   QEMU_MIRROR     Debian mirror (default: the one the host's apt sources use for
#                   QEMU_RELEASE)
#   QEMU_CACHE      where the built machine is kept
#                   (default ${XDG_CACHE_HOME:-$HOME/.cache}/ipclab-qemu)
#   QEMU_REBUILD    1: build the machine again even if one is kept
#   QEMU_BUILD_ONLY 1: build (or find) the machine and stop
#   QEMU_ACCEL      auto (kvm if /dev/kvm can be opened, else tcg), kvm or tcg
#   QEMU_CPUS       vCPUs (default 2)
#   QEMU_MEMORY     MiB of guest memory (default 1024)
#   QEMU_TIMEOUT    seconds the boot and run may take before qemu is killed (default 900)
#   QEMU_BUILD_TIMEOUT  seconds debootstrap may take (default 1800)
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin # mkfs.ext4, debugfs and debootstrap live there

log() { printf '%s vm-qemu: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Temporary files and directories, the image build's mounts, debootstrap and qemu are
# all undone on exit, however the script ends.
cleanup=()
child_pid=""
build_root=""
finish() {
	local rc=$?
	if [ -n "$child_pid" ] && kill -0 "$child_pid" 2>/dev/null; then
		log "stopping $child_what"
		kill "$child_pid" 2>/dev/null || true
		wait "$child_pid" 2>/dev/null || true
	fi
	if [ -n "$build_root" ]; then unmount_under "$build_root"; fi
	if [ ${#cleanup[@]} -gt 0 ]; then rm -rf --one-file-system "${cleanup[@]}"; fi
	exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# unmount_under DIR: unmount whatever is mounted at or below DIR, deepest first.
unmount_under() {
	local m
	awk -v d="$1" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# bounded WHAT SECONDS COMMAND...: run COMMAND for at most SECONDS (then TERM, and KILL
# 30 s later), in the background so that a signal to this script is acted on at once
# (finish stops it). Returns COMMAND's status, 124 on timeout.
child_what=""
bounded() {
	local rc=0
	child_what=$1
	timeout --kill-after=30 "$2" "${@:3}" </dev/null &
	child_pid=$!
	wait "$child_pid" || rc=$?
	child_pid=""
	return "$rc"
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=${IPCLAB_SRC:-$here}
prebuilt=${IPCBENCH_BIN:-}
ipcbench_args=${IPCBENCH_ARGS:---prim pipe --size 64 --duration 200ms --warmup 50ms --rounds 1}
ebpf=${IPCBENCH_EBPF:-off}
run_timeout=${IPCBENCH_TIMEOUT:-600}
cache=${QEMU_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/ipclab-qemu}
accel=${QEMU_ACCEL:-auto}
cpus=${QEMU_CPUS:-2}
memory=${QEMU_MEMORY:-1024}
timeout_s=${QEMU_TIMEOUT:-900}
build_timeout=${QEMU_BUILD_TIMEOUT:-1800}

for v in QEMU_CPUS="$cpus" QEMU_MEMORY="$memory" QEMU_TIMEOUT="$timeout_s" \
	QEMU_BUILD_TIMEOUT="$build_timeout" IPCBENCH_TIMEOUT="$run_timeout"; do
	case "${v#*=}" in '' | *[!0-9]* | 0) die "${v%%=*} must be a positive number, not '${v#*=}'" ;; esac
done
case "$accel" in auto | kvm | tcg) ;; *) die "QEMU_ACCEL must be auto, kvm or tcg" ;; esac
case "$ebpf" in auto | on | off) ;; *) die "IPCBENCH_EBPF must be auto, on or off" ;; esac
if [ -n "$prebuilt" ] && { [ ! -f "$prebuilt" ] || [ ! -x "$prebuilt" ]; }; then
	die "IPCBENCH_BIN=$prebuilt is not an executable file"
fi
[ -f "$src/scripts/vm-provision.sh" ] || die "no scripts/vm-provision.sh in $src (set IPCLAB_SRC)"
case "$(uname -m)" in x86_64) ;; *) die "only x86_64 hosts are supported (this is $(uname -m))" ;; esac

# The guest's Debian release: the host's own unless QEMU_RELEASE says otherwise.
host_id=$(. /etc/os-release 2>/dev/null && echo "${ID:-}")
release=${QEMU_RELEASE:-$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")}
case "$release" in '' | *[!a-z0-9-]*) die "no usable Debian release name '$release' (set QEMU_RELEASE)" ;; esac
machine=${MACHINE:-qemu-$release}
case "$machine" in '' | */* | .* | *[[:space:]]*) die "bad MACHINE name '$machine'" ;; esac
results=${RESULTS_DIR:-$src/results}

need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || die "$t is not installed (Debian: apt-get install qemu-system-x86 debootstrap e2fsprogs)"
	done
}
need qemu-system-x86_64 mkfs.ext4 debugfs timeout flock

# host_mirror RELEASE: the first URI the host's apt sources give for RELEASE itself
# (not RELEASE-updates or -security), in the one-line (.list) or deb822 (.sources) form.
host_mirror() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk -v rel="$1" '
			$1 == "deb" {
				i = 2
				if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
				if ($(i + 1) == rel && $i !~ /^cdrom:/) { print $i; exit }
			}' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk -v rel="$1" '
			function check() {
				if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " rel " ") && enabled != "no" && uri != "") { print uri; found = 1 }
				types = suites = uri = enabled = ""
			}
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { check(); if (found) exit; next }
			{
				key = tolower($1); sub(/:$/, "", key); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
				if (key == "types") types = val
				else if (key == "suites") suites = val
				else if (key == "uris") { split(val, u, /[ \t]+/); uri = u[1] }
				else if (key == "enabled") enabled = tolower(val)
			}
			END { if (!found) check() }' "$f"
	done
}

# ---- The machine: root image, kernel and initrd, built once and kept ---------------

# PID 1 of the guest, kept in the root image: mount the run's work disk and hand over to
# the guest.sh on it; power off when that returns, whatever happened.
read -r -d '' guest_init <<'EOF' || true
#!/bin/sh
# ipclab-init: PID 1 of scripts/vm-qemu.sh's guest.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
if mount -t ext4 /dev/vdb /mnt && [ -f /mnt/guest.sh ]; then
	/bin/bash /mnt/guest.sh /mnt
	echo "ipclab-init: guest.sh exited with status $?"
	umount /mnt || sync
else
	echo "ipclab-init: no work disk with guest.sh on /dev/vdb"
fi
echo o >/proc/sysrq-trigger
sleep 30
EOF

# The initrd loads what finds the root disk, and only that (with MODULES=list).
read -r -d '' initramfs_hook <<'EOF' || true
#!/bin/sh
# ipclab: the guest's root is ext4 on a virtio disk.
[ "$1" = prereqs ] && exit 0
. /usr/share/initramfs-tools/hook-functions
for m in virtio_pci virtio_blk ext4; do force_load "$m"; done
EOF

packages=linux-image-amd64,systemd,kmod,e2fsprogs
# The cache key covers everything that shapes the image.
key=$(printf '%s\n' 3 "$release" "$packages" "$guest_init" "$initramfs_hook" | sha256sum | cut -c1-12)
machine_dir=$cache/$release-$key

build_machine() {
	[ "$(id -u)" = 0 ] || die "building the machine needs root (debootstrap); run as root once, or point QEMU_CACHE at a built one"
	need debootstrap
	local mirror=${QEMU_MIRROR:-}
	if [ -z "$mirror" ]; then
		[ "$host_id" = debian ] || die "the host is not Debian: set QEMU_MIRROR to a Debian mirror"
		mirror=$(host_mirror "$release" | head -n1)
		[ -n "$mirror" ] || die "no apt source for '$release' on this host: set QEMU_MIRROR"
	fi
	mkdir -p "$cache"
	local work
	work=$(mktemp -d "$cache/.build.XXXXXX")
	cleanup+=("$work")
	build_root=$work/root
	log "building the $release machine with debootstrap from $mirror (once; kept in $machine_dir)"
	local t0=$SECONDS
	# Two stages, so that the initramfs configuration is in place before the kernel's
	# package makes its initrd: a small one (only what finds a virtio disk) is made
	# once, quickly, and boots faster under emulation than Debian's default.
	if ! bounded debootstrap "$build_timeout" debootstrap --foreign --variant=minbase --include="$packages" \
		"$release" "$build_root" "$mirror" >"$work/debootstrap.log" 2>&1; then
		tail -n 30 "$work/debootstrap.log" >&2
		die "debootstrap failed (or took more than QEMU_BUILD_TIMEOUT=${build_timeout}s)"
	fi
	mkdir -p "$build_root/etc/initramfs-tools/conf.d" "$build_root/etc/initramfs-tools/hooks"
	printf 'MODULES=list\nCOMPRESS=gzip\n' >"$build_root/etc/initramfs-tools/conf.d/ipclab"
	printf '%s\n' "$initramfs_hook" >"$build_root/etc/initramfs-tools/hooks/ipclab"
	chmod 0755 "$build_root/etc/initramfs-tools/hooks/ipclab"
	if ! bounded "debootstrap's second stage" "$build_timeout" chroot "$build_root" /debootstrap/debootstrap --second-stage \
		>>"$work/debootstrap.log" 2>&1; then
		tail -n 30 "$work/debootstrap.log" >&2
		[ ! -f "$build_root/debootstrap/debootstrap.log" ] || tail -n 30 "$build_root/debootstrap/debootstrap.log" >&2
		die "debootstrap --second-stage failed (or took more than QEMU_BUILD_TIMEOUT=${build_timeout}s)"
	fi
	unmount_under "$build_root"
	log "debootstrap took $((SECONDS - t0))s"

	printf '%s\n' "$guest_init" >"$build_root/sbin/ipclab-init"
	chmod 0755 "$build_root/sbin/ipclab-init"
	echo "ipclab-$release" >"$build_root/etc/hostname"
	rm -rf "$build_root"/var/cache/apt/archives/*.deb "$build_root"/var/lib/apt/lists/* \
		"$build_root"/usr/share/doc "$build_root"/usr/share/man "$build_root"/usr/share/locale

	local kernel initrd
	kernel=$(find "$build_root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n1)
	initrd=$(find "$build_root/boot" -maxdepth 1 -name 'initrd.img-*' | sort -V | tail -n1)
	if [ -z "$kernel" ] || [ -z "$initrd" ]; then die "no kernel or initrd in the new root file system"; fi
	mkdir -p "$work/out"
	cp "$kernel" "$work/out/vmlinuz"
	cp "$initrd" "$work/out/initrd.img"
	local mib
	mib=$(($(du -sm "$build_root" | cut -f1) * 5 / 4 + 64))
	mkfs.ext4 -q -F -L ipclab-root -d "$build_root" "$work/out/root.img" "${mib}M" >/dev/null ||
		die "mkfs.ext4 -d failed"
	rm -rf --one-file-system "$build_root"
	build_root=""

	# Replace any older machine for this release, then move the new one in.
	rm -rf --one-file-system "$cache/$release"-*
	mv "$work/out" "$machine_dir"
	log "machine ready in $machine_dir ($((SECONDS - t0))s, root image ${mib} MiB)"
}

mkdir -p "$cache"
exec 9>"$cache/.lock"
# One build at a time; runs share the finished machine.
flock -w $((2 * build_timeout + 300)) 9 || die "another run has been building the machine in $cache for too long"
if [ "${QEMU_REBUILD:-}" = 1 ] || [ ! -f "$machine_dir/root.img" ]; then build_machine; fi
flock -u 9
exec 9>&-
log "machine: $machine_dir"
if [ "${QEMU_BUILD_ONLY:-}" = 1 ]; then exit 0; fi

# ---- One run ------------------------------------------------------------------------

tmp=$(mktemp -d)
cleanup+=("$tmp")
stage=$tmp/stage
mkdir -p "$stage/ipclab/scripts" "$stage/results"
cp "$src/scripts/vm-provision.sh" "$stage/ipclab/scripts/"
if [ -n "$prebuilt" ]; then
	cp "$prebuilt" "$stage/ipcbench"
else
	gobin=$(command -v go || true)
	[ -n "$gobin" ] || gobin=/usr/local/go/bin/go
	[ -x "$gobin" ] || die "no go to build ipcbench with (or set IPCBENCH_BIN)"
	log "building ipcbench (CGO_ENABLED=0) from $src"
	(cd "$src" && GOTOOLCHAIN=local CGO_ENABLED=0 "$gobin" build -o "$stage/ipcbench" ./cmd/ipcbench) ||
		die "go build ./cmd/ipcbench failed"
fi
version=${IPCLAB_VERSION:-$(git -C "$src" describe --always --dirty 2>/dev/null || true)}

# The guest's settings, quoted for its shell, and its script.
{
	printf 'export %s=%q\n' MACHINE "$machine" IPCBENCH_ARGS "$ipcbench_args" \
		IPCBENCH_EBPF "$ebpf" IPCBENCH_TIMEOUT "$run_timeout"
	[ -z "$version" ] || printf 'export IPCLAB_VERSION=%q\n' "$version"
} >"$stage/settings.sh"
cat >"$stage/guest.sh" <<'EOF'
# Run by ipclab-init in the guest, with the directory this disk is mounted on:
# vm-provision.sh with the prebuilt ipcbench, results onto this disk. Its output goes to
# the serial console.
set -u
w=$1
mountpoint -q /tmp || mount -t tmpfs -o mode=1777 tmpfs /tmp
mountpoint -q /run || mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /dev/shm /dev/mqueue
mountpoint -q /dev/shm || mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mountpoint -q /dev/mqueue || mount -t mqueue mqueue /dev/mqueue || true
. "$w/settings.sh"
echo "$MACHINE" >/proc/sys/kernel/hostname
echo "ipclab-guest: kernel $(uname -r), $(nproc) CPUs, virtualization $(systemd-detect-virt 2>/dev/null || echo unknown)"
rc=0
IPCBENCH_BIN=$w/ipcbench IPCLAB_SRC=$w/ipclab RESULTS_DIR=$w/results PACKAGES=never \
	bash "$w/ipclab/scripts/vm-provision.sh" 2>&1 || rc=$?
echo "$rc" >"$w/results/status"
echo "ipclab-guest: vm-provision.sh exited with status $rc"
sync
EOF

size=$(($(du -sm "$stage" | cut -f1) + 64))
mkfs.ext4 -q -F -L ipclab-work -d "$stage" "$tmp/work.img" "${size}M" >/dev/null || die "mkfs.ext4 -d failed for the work disk"

if [ "$accel" = auto ]; then
	if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then accel=kvm; else accel=tcg; fi
fi
cpu=max
[ "$accel" = tcg ] || cpu=host
console=$tmp/console.log
log "booting $machine ($accel, $cpus vCPUs, ${memory} MiB; at most ${timeout_s}s)"
t0=$SECONDS
qrc=0
bounded qemu "$timeout_s" qemu-system-x86_64 \
	-nodefaults -no-user-config -no-reboot -display none -monitor none \
	-machine q35,accel="$accel" -cpu "$cpu" -smp "$cpus" -m "$memory" \
	-kernel "$machine_dir/vmlinuz" -initrd "$machine_dir/initrd.img" \
	-append "root=/dev/vda ro console=ttyS0 init=/sbin/ipclab-init panic=-1 quiet" \
	-drive file="$machine_dir/root.img",if=virtio,format=raw,snapshot=on \
	-drive file="$tmp/work.img",if=virtio,format=raw \
	-nic none -serial file:"$console" || qrc=$?
log "qemu ended after $((SECONDS - t0))s (status $qrc)"

mkdir -p "$results"
cp "$console" "$results/$machine.console.log"
chmod 0644 "$results/$machine.console.log"
[ "$qrc" != 124 ] || die "the guest did not finish within QEMU_TIMEOUT=${timeout_s}s (console: $results/$machine.console.log)"
[ "$qrc" = 0 ] || die "qemu failed with status $qrc (console: $results/$machine.console.log)"

# get NAME: copy /results/NAME from the work disk into $tmp/out/NAME.
mkdir -p "$tmp/out"
get() { debugfs -R "dump /results/$1 $tmp/out/$1" "$tmp/work.img" >/dev/null 2>&1 && [ -f "$tmp/out/$1" ]; }
get status || die "the guest left no status on its work disk (console: $results/$machine.console.log)"
if get "$machine.log"; then cp "$tmp/out/$machine.log" "$results/$machine.log"; fi
status=$(cat "$tmp/out/status")
[ "$status" = 0 ] || die "vm-provision.sh failed in the guest with status $status (console: $results/$machine.console.log)"
get "$machine.json" || die "the guest left no $machine.json (console: $results/$machine.console.log)"
tmpjson=$(mktemp "$results/.$machine.json.XXXXXX")
cleanup+=("$tmpjson")
cp "$tmp/out/$machine.json" "$tmpjson"
chmod 0644 "$tmpjson"
mv -f "$tmpjson" "$results/$machine.json"
log "wrote $results/$machine.json"
