#!/usr/bin/env bash
# make test-v2: FRE's tests on a real cgroup v2 kernel. Builds fre-runc,
# the shim and static test binaries on the host, stages them with what
# they need (busybox, runc and crun, containerd, CNI's loopback plugin),
# boots Debian's kernel with cgroup v2 only (hack/vm/vm.sh) and runs the
# test packages there, one after the other, each under a timeout. The
# console is in _output/vm/test-v2.log; a failing package fails the run.
#
# Env: V2_PACKAGES (default below), V2_CONFORMANCE (1: also runtime-tools'
# linux_cgroups_* programs against runc and fre-runc; 0: not), V2_TESTFLAGS (e.g. '-test.run TestX'),
# V2_PKG_TIMEOUT (go test -timeout for each package, default 8m), and
# hack/vm/vm.sh's FRE_VM_* settings.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=$REPO/_output/vm
STAGE=$OUT/stage
BIN=$REPO/bin
CTRD=${CONTAINERD_BIN_DIR:-$BIN/containerd-v2.4.2}
PACKAGES=${V2_PACKAGES:-cgroup cgroup/devfilter cgpool runtime cmd/fre-runc integration}
PKG_TIMEOUT=${V2_PKG_TIMEOUT:-8m}

log() { echo "test-v2: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
	log "must run as root (qemu's guest runs the root tests)"
	exit 1
fi
for b in "$BIN/fre-runc" "$BIN/containerd-shim-fre-v1" "$CTRD/containerd" "$CTRD/ctr"; do
	[ -x "$b" ] || { log "$b missing: make build containerd"; exit 1; }
done

rm -rf "$STAGE"
mkdir -p "$STAGE/fre/bin" "$STAGE/fre/tests" "$STAGE/fre/src" "$STAGE/usr/lib/cni"

# shellcheck source=hack/vm/stage.sh
. "$REPO/hack/vm/stage.sh"

for pkg in $PACKAGES; do
	[ -d "$REPO/$pkg" ] || { log "no package $pkg; skipped"; continue; }
	stage_test "$pkg"
done

# What the tests start: FRE's binaries (GoBuild copies them from
# FRE_PREBUILT_DIR), the anchors, containerd with CNI's loopback and the
# pause program; busybox's guest has no ip of its own.
stage_runtimes
stage_containerd "$CTRD"
p=$(command -v ip || true)
if [ -n "$p" ]; then
	copy_bin "$p" /sbin/ip
fi
# A setuid test's helper (the guest has no compiler), and the fault
# tests' fre-runc (TestKilledAtEachStep), built as make build builds
# fre-runc, with its failpoints.
gcc -static -O2 -o "$STAGE/fre/bin/euid" "$REPO/cmd/fre-runc/testdata/euid.c"
(cd "$REPO" && CC=musl-gcc CGO_CFLAGS="-O2 -idirafter $REPO/_output/musl-include" \
	go build -tags failpoints -ldflags '-linkmode external -extldflags -static' -o "$STAGE/fre/bin/fre-runc-failpoints" ./cmd/fre-runc)

# runtime-tools' cgroup programs (built as make conformance builds them),
# for runc and fre-runc in the guest (hack/vm/cgroup-conformance.sh).
if [ "${V2_CONFORMANCE:-1}" = 1 ]; then
	rt=$("$REPO/hack/conformance.sh" build | tail -1)
	mkdir -p "$STAGE/fre/rt"
	cp "$rt/runtimetest" "$rt/rootfs-amd64.tar.gz" "$STAGE/fre/rt/"
	for t in "$rt"/validation/linux_cgroups_*/*.t; do
		copy_bin "$t" "/fre/rt/validation/$(basename "$(dirname "$t")")/$(basename "$t")"
	done
	cp "$REPO/hack/vm/cgroup-conformance.sh" "$STAGE/fre/"
	# The suite untars its rootfs with tar -xf on a .gz: GNU tar (busybox's
	# reads no compression without -z).
	copy_bin "$(command -v tar)" /usr/bin/tar
fi

# The guest's script: every package in its own directory, go test's
# summary line for each, and the status of the whole.
cat >"$STAGE/fre/run-tests.sh" <<EOF
export CI=true FRE_PREBUILT_DIR=/fre/bin FRE_BIN_DIR=/fre/bin CONTAINERD_BIN_DIR=$CONTAINERD_GUEST_DIR
export PATH=/fre/bin:$CONTAINERD_GUEST_DIR:\$PATH HOME=/root
status=0
EOF
go_test_loop "cgroup v2 guest" "$(quoted_words "${V2_TESTFLAGS:-}")" >>"$STAGE/fre/run-tests.sh"
cat >>"$STAGE/fre/run-tests.sh" <<EOF
if [ -d /fre/rt ]; then
	echo "=== runtime-tools linux_cgroups_* (runc and fre-runc)"
	sh /fre/cgroup-conformance.sh /fre/rt || status=1
fi
exit \$status
EOF

mkdir -p "$OUT"
status=0
"$REPO/hack/vm/vm.sh" run "$STAGE" /fre/run-tests.sh "$OUT/test-v2.log" || status=$?
# The console, less the firmware's and the kernel's noise.
console_lines "$OUT/test-v2.log"
if [ "$status" != 0 ]; then
	log "FAIL (guest status $status); console: $OUT/test-v2.log"
	exit 1
fi
log "PASS"
