#!/usr/bin/env bash
# make conformance: the OCI runtime-tools v0.9.0 validation suite against runc
# and fre-runc in the same run.
#
# 1. Builds cmd/runtimetest and validation/*/*.t from the module proxy's copy
#    of github.com/opencontainers/runtime-tools@v0.9.0, in a writable copy
#    under _output/runtime-tools (v0.9.0 predates go.mod: go mod init, pin
#    selinux v1.9.1 and runtime-spec v1.0.2, go mod tidy).
# 2. Replaces its rootfs-amd64.tar.gz with one built from busybox-static.
# 3. Runs every validation program (each under a timeout) with RUNTIME set to
#    a wrapper per runtime: runc; fre-runc --netns-policy new (the suite
#    checks that a requested netns is created); and the linux_ns_* programs
#    once more with fre-runc --netns-policy host.
# 4. Prints per-runtime TAP counts and the tests where the runtimes differ
#    (hack/tapsum), also written to results/conformance.txt.
#
# Each runtime gets its own --root under _output/conformance so the suite
# never sees or deletes containers of anything else on the machine.
#
# "hack/conformance.sh build" builds the suite and prints its directory.
#
# Env: RUNTIMES (default "runc fre-new"), TESTS (glob on program names,
# default all), TEST_TIMEOUT (seconds per program, default 60).
set -euo pipefail

export PATH=/usr/local/go/bin:$PATH
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=$REPO/_output
RT=$OUT/runtime-tools
CONF=$OUT/conformance
RESULTS=$REPO/results
RT_VERSION=v0.9.0
TEST_TIMEOUT=${TEST_TIMEOUT:-60}
TESTS=${TESTS:-*}
RUNTIMES=${RUNTIMES:-runc fre-new}
FRE=$REPO/bin/fre-runc

if [ "$(id -u)" != 0 ]; then
	echo "conformance: must run as root (the suite creates containers)" >&2
	exit 1
fi

log() { echo "conformance: $*" >&2; }

build_runtime_tools() {
	local stamp=$RT/.fre-built-$RT_VERSION
	if [ -f "$stamp" ]; then
		return
	fi
	log "building runtime-tools $RT_VERSION in $RT"
	local src
	src=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "github.com/opencontainers/runtime-tools@$RT_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [ -z "$src" ] || [ ! -d "$src" ]; then
		log "go mod download gave no directory for runtime-tools@$RT_VERSION"
		exit 1
	fi
	rm -rf "$RT"
	mkdir -p "$OUT"
	cp -r "$src" "$RT"
	chmod -R u+w "$RT"
	(
		cd "$RT"
		export GOWORK=off GOFLAGS=-mod=mod
		# Godeps' vendored workspace would shadow the module graph.
		rm -rf Godeps vendor
		go mod init github.com/opencontainers/runtime-tools >/dev/null 2>&1
		# satori/go.uuid after v1.2.0 changed NewV4 to return an error.
		go mod edit \
			-require github.com/opencontainers/selinux@v1.9.1 \
			-require github.com/opencontainers/runtime-spec@v1.0.2 \
			-require github.com/satori/go.uuid@v1.2.0
		go mod tidy
		# As its Makefile: runtimetest static, one .t per validation .go file
		# (v0.9.0 keeps each in validation/<name>/<name>.go).
		CGO_ENABLED=0 go build -installsuffix cgo -o runtimetest ./cmd/runtimetest
		find ./validation/ -name '*.go' | grep -v util | sort |
			xargs -P "$(nproc)" -I{} sh -c 'f={}; go build -o "${f%.go}.t" "$f"'
	)
	touch "$stamp"
}

# The suite untars rootfs-$GOARCH.tar.gz from its working directory into
# each bundle. Build it from Debian's busybox-static rather than trusting the
# 2018 binary shipped in the module.
build_rootfs_tar() {
	local tarball=$RT/rootfs-amd64.tar.gz
	if [ -f "$RT/.fre-rootfs-2" ]; then
		return
	fi
	local bb=/bin/busybox
	if ! [ -x $bb ]; then
		log "no /bin/busybox: install busybox-static (make deps)"
		exit 1
	fi
	local dir
	dir=$(mktemp -d "$OUT/rootfs.XXXXXX")
	# The tar's "./" entry becomes the bundle's root: it must not keep
	# mktemp's 0700, or a non-root process.user cannot reach /runtimetest.
	chmod 755 "$dir"
	mkdir -p "$dir"/{bin,dev,etc,proc,sys,tmp,root}
	chmod 1777 "$dir/tmp"
	cp $bb "$dir/bin/busybox"
	for a in $($bb --list); do
		[ "$a" = busybox ] || ln -sf busybox "$dir/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
	printf 'root:x:0:\nnobody:x:65534:\n' >"$dir/etc/group"
	tar -C "$dir" --numeric-owner --owner=0 --group=0 -czf "$tarball" .
	rm -rf "$dir"
	touch "$RT/.fre-rootfs-2"
}

# wrapper NAME ARGS...: an executable $CONF/bin/NAME that runs ARGS "$@".
wrapper() {
	local name=$1
	shift
	mkdir -p "$CONF/bin"
	{
		echo '#!/bin/sh'
		printf 'exec'
		printf ' %q' "$@"
		echo ' "$@"'
	} >"$CONF/bin/$name"
	chmod +x "$CONF/bin/$name"
}

# unmount_under DIR: unmount every mount at or below DIR, deepest first.
# Some programs (rootfsPropagation shared/rshared) leave the container's
# mounts propagated into the host's namespace on the suite's bundle; they
# must go before anything removes the bundle, or rm would walk into /proc.
unmount_under() {
	local dir
	dir=$(realpath -m "$1")
	awk -v d="$dir" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo |
		sort -r | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
		echo "$m"
	done
}

# cleanup_runtime NAME: delete whatever the suite left in NAME's private root
# and the cgroups the suite names itself (testdir/cgrouptest).
cleanup_runtime() {
	local w=$CONF/bin/$1
	local ids
	ids=$("$w" list -q 2>/dev/null || true)
	for id in $ids; do
		timeout 10 "$w" delete --force "$id" >/dev/null 2>&1 || true
	done
	find /sys/fs/cgroup -depth -type d \( -path '*/testdir/cgrouptest' -o -path '*/testdir' \) \
		-exec rmdir {} \; 2>/dev/null || true
	unmount_under "$CONF/tmp/$1" >/dev/null
	rm -rf --one-file-system "${CONF:?}/tmp/$1" || log "could not remove $CONF/tmp/$1"
	# fre-runc keeps idle cgroups in its pool by design: none may outlive the run.
	case $1 in fre-*) "$FRE" --root "$CONF/state/$1" pool drain >/dev/null 2>&1 || true ;; esac
}

# run_suite NAME GLOB: run every validation program matching GLOB with
# RUNTIME=$CONF/bin/NAME, one TAP file per program in $CONF/NAME.
run_suite() {
	local name=$1 glob=$2
	local dir=$CONF/$name
	rm -rf "$dir"
	mkdir -p "$dir" "$CONF/tmp/$name"
	log "running $glob against $name"
	local start=$SECONDS
	(
		cd "$RT"
		for t in validation/*/*.t; do
			local prog
			prog=$(basename "$t" .t)
			# shellcheck disable=SC2053
			[[ $prog == $glob ]] || continue
			local t0=$EPOCHREALTIME rc=0
			# TMPDIR keeps the suite's bundles (ioutil.TempDir) out of /tmp.
			RUNTIME=$CONF/bin/$name TMPDIR=$CONF/tmp/$name \
				timeout -k 5 "$TEST_TIMEOUT" "./$t" >"$dir/$prog.tap" 2>"$dir/$prog.err" </dev/null || rc=$?
			echo "$rc" >"$dir/$prog.rc"
			unmount_under "$CONF/tmp/$name" >"$dir/$prog.leaked-mounts"
			[ -s "$dir/$prog.leaked-mounts" ] || rm -f "$dir/$prog.leaked-mounts"
			awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.2f\n", b-a}' >"$dir/$prog.time"
		done
	)
	cleanup_runtime "$name"
	log "$name done in $((SECONDS - start))s"
}

mkdir -p "$CONF" "$RESULTS"
build_runtime_tools
build_rootfs_tar
# hack/conformance.sh build: only build the suite (hack/test-v2.sh runs
# its cgroup programs in the v2 guest); print where it is.
if [ "${1:-}" = build ]; then
	echo "$RT"
	exit 0
fi

wrapper runc runc --root "$CONF/state/runc"
fre_ok=1
if [ -x "$FRE" ] && "$FRE" --version >/dev/null 2>&1; then
	# The suite checks that files the container writes land in the
	# bundle's rootfs, as runc does; FRE's default shared-layer store gives
	# every container its own overlay instead (the bundle stays untouched),
	# so the parity runs use rootfs "plain" and fre-shared shows what the
	# store changes.
	echo '{"rootfs": "plain"}' >"$CONF/plain.json"
	echo '{"rootfs": "shared", "storeRoot": "'"$CONF"'/store"}' >"$CONF/shared.json"
	wrapper fre-new "$FRE" --root "$CONF/state/fre-new" --netns-policy new --config "$CONF/plain.json"
	wrapper fre-host "$FRE" --root "$CONF/state/fre-host" --netns-policy host --config "$CONF/plain.json"
	wrapper fre-shared "$FRE" --root "$CONF/state/fre-shared" --netns-policy new --config "$CONF/shared.json"
else
	fre_ok=0
	log "SKIP fre-runc: $FRE is missing or '$FRE --version' fails (see make build)"
fi

cgroups_before=$(find /sys/fs/cgroup -mindepth 1 -type d 2>/dev/null | sort)

ran=()
for r in $RUNTIMES; do
	case $r in
	fre-*) [ $fre_ok = 1 ] || continue ;;
	esac
	run_suite "$r" "$TESTS"
	ran+=("$r")
done
if [ $fre_ok = 1 ]; then
	run_suite fre-host "linux_ns_*"
	run_suite fre-shared "$TESTS"
fi

cgroups_after=$(find /sys/fs/cgroup -mindepth 1 -type d 2>/dev/null | sort)
leaked=$(comm -13 <(echo "$cgroups_before") <(echo "$cgroups_after") || true)

summary_args=(-dir "$CONF" -csv "$RESULTS/conformance.csv")
[ $fre_ok = 1 ] && summary_args+=(-host fre-host)
[ $fre_ok = 0 ] && summary_args+=(-skipped "fre-runc: binary missing or broken (make build)")
(cd "$REPO" && go run ./hack/tapsum "${summary_args[@]}" "${ran[@]}") | tee "$RESULTS/conformance.txt"
if [ $fre_ok = 1 ]; then
	echo
	echo "== rootfs plain (fre-new) vs FRE's default shared-layer store (fre-shared)"
	(cd "$REPO" && go run ./hack/tapsum -dir "$CONF" fre-new fre-shared) | sed -n '/== differences/,/== parity/p' | grep -v '== parity' | tee -a "$RESULTS/conformance.txt"
fi

leaked_mounts=$(cd "$CONF" && grep -Hc . ./*/*.leaked-mounts 2>/dev/null || true)
if [ -n "$leaked_mounts" ]; then
	echo
	echo "programs that left mounts in the host's namespace (unmounted by this script): runtime/program:count"
	echo "$leaked_mounts" | sed 's|^\./|  |; s|\.leaked-mounts||'
fi

if [ -n "$leaked" ]; then
	echo
	echo "cgroups created during the run and still present (the suite's or another process's):"
	echo "$leaked" | sed 's/^/  /'
fi
