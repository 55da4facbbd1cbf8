# shellcheck shell=bash
# hack/vm/stage.sh: sourced by the scripts that run something in a guest
# (hack/test-v2.sh, hack/test-systemd.sh, hack/bench-v2.sh). A stage is
# the tree the guest gets under /: these put host programs in it with
# what they need.
#
# The caller sets STAGE, REPO and BIN and defines log.

# copy_bin SRC DST: a binary and the shared libraries it needs (at the
# same paths, with the loader).
copy_bin() {
	local src=$1 dst=$2
	mkdir -p "$(dirname "$STAGE$dst")"
	[ "$src" -ef "$STAGE$dst" ] || cp -L "$src" "$STAGE$dst"
	local lib
	for lib in $(ldd "$src" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
		[ -e "$STAGE$lib" ] && continue
		mkdir -p "$(dirname "$STAGE$lib")"
		cp -L "$lib" "$STAGE$lib"
	done
}

# go_static OUT ARGS...: go build (or go test -c, when ARGS start with
# "test") of a static binary the way make build builds fre-runc (musl,
# when musl-gcc is there): a guest has no Go toolchain and no libc.
go_static() {
	local out=$1
	shift
	local build_env=() ldflags=() cmd=(build)
	if [ "$1" = test ]; then
		cmd=(test -c)
		shift
	fi
	if [ -n "${FRE_BUILD_CC:-}" ]; then
		build_env=(CC="$FRE_BUILD_CC" CGO_CFLAGS="${FRE_BUILD_CGO_CFLAGS:-}")
		ldflags=(-ldflags "$FRE_BUILD_LDFLAGS")
	fi
	(cd "$REPO" && env "${build_env[@]}" go "${cmd[@]}" "${ldflags[@]}" -o "$out" "$@")
}

# stage_runtimes: FRE's binaries under /fre/bin, runc and crun (the
# anchors) under /usr/bin, busybox-static for the tests' bundles.
stage_runtimes() {
	mkdir -p "$STAGE/fre/bin" "$STAGE/usr/bin"
	cp "$BIN/fre-runc" "$BIN/containerd-shim-fre-v1" "$BIN/fre" "$STAGE/fre/bin/"
	local b p
	for b in runc crun; do
		p=$(command -v "$b" || true)
		if [ -n "$p" ]; then
			copy_bin "$p" "/usr/bin/$b"
		else
			log "no $b on this host (make deps); the guest has none"
		fi
	done
	cp /bin/busybox "$STAGE/usr/bin/busybox-static" 2>/dev/null || true
	# The tests' function (testutil.TestFn), static.
	(cd "$REPO" && CGO_ENABLED=0 go build -ldflags=-s\ -w -o "$STAGE/fre/bin/fre-testfn" ./internal/testfn)
}

# stage_test PKG: PKG's static test binary at /fre/tests/<pkg with _>.test
# and its testdata/ under /fre/src/PKG (tests run there); a package
# without tests stages nothing.
stage_test() {
	local pkg=$1 name=${1//\//_}
	mkdir -p "$STAGE/fre/tests" "$STAGE/fre/src/$pkg"
	log "go test -c ./$pkg"
	go_static "$STAGE/fre/tests/$name.test" test "./$pkg"
	[ -f "$STAGE/fre/tests/$name.test" ] || return 0
	[ -d "$REPO/$pkg/testdata" ] && cp -a "$REPO/$pkg/testdata" "$STAGE/fre/src/$pkg/"
	copy_bin "$STAGE/fre/tests/$name.test" "/fre/tests/$name.test"
}

# CONTAINERD_GUEST_DIR is where stage_containerd puts containerd's programs
# in the guest: the integration tests find them through
# CONTAINERD_BIN_DIR, and the runc shim through PATH.
CONTAINERD_GUEST_DIR=/fre/containerd

# stage_containerd CTRD: what the integration package starts besides the
# runtimes: containerd, ctr and containerd's runc shim from CTRD (make
# containerd's bin/containerd-v2.4.2), FRE's shim under /fre/bin (GoBuild
# copies it from FRE_PREBUILT_DIR), CNI's loopback plugin and the CRI
# tests' pause program (a guest has no Go toolchain).
stage_containerd() {
	local ctrd=$1 b
	for b in "$ctrd/containerd" "$ctrd/ctr" "$ctrd/containerd-shim-runc-v2" "$BIN/containerd-shim-fre-v1"; do
		if [ ! -x "$b" ]; then
			log "$b missing: make build containerd"
			return 1
		fi
	done
	for b in containerd ctr containerd-shim-runc-v2; do
		copy_bin "$ctrd/$b" "$CONTAINERD_GUEST_DIR/$b"
	done
	copy_bin "$BIN/containerd-shim-fre-v1" /fre/bin/containerd-shim-fre-v1
	if [ -x /usr/lib/cni/loopback ]; then
		copy_bin /usr/lib/cni/loopback /usr/lib/cni/loopback
	else
		log "no /usr/lib/cni/loopback on this host (make deps); the CRI tests need it"
	fi
	(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -ldflags=-s\ -w -o "$STAGE/fre/bin/pause" ./integration/testdata/pause/main.go)
}

# unstage_tree_libs TREE: the staged libraries a guest's own tree (the
# systemd guest's Debian tree) has already stay the tree's: its programs
# were built against them; only the missing ones (libseccomp) come from
# the host.
unstage_tree_libs() {
	local tree=$1 f
	while IFS= read -r -d '' f; do
		[ -e "$tree/${f#./}" ] && rm -f "$STAGE/$f"
	done < <(cd "$STAGE" && find ./lib ./lib64 ./usr/lib -type f -print0 2>/dev/null)
	return 0
}

# quoted_words WORDS: each of WORDS quoted for a guest's shell (a
# -test.run pattern may hold | or other metacharacters), each after a
# space.
quoted_words() {
	local out="" w
	set -f
	for w in $1; do out="$out $(printf '%q' "$w")"; done
	set +f
	printf '%s' "$out"
}

# go_test_loop WHERE FLAGS: the guest's loop over PACKAGES (entries pkg,
# or pkg:pattern for -test.run), for a script that set status=0: each
# package's test binary run in its source directory with PKG_TIMEOUT and
# FLAGS (quoted_words), go test's summary line for each ("(WHERE)" after
# it), status 1 when one fails.
go_test_loop() {
	cat <<LOOP
for entry in $PACKAGES; do
	pkg=\${entry%%:*}
	run=
	case \$entry in *:*) run="-test.run \${entry#*:}" ;; esac
	name=\$(echo \$pkg | tr / _)
	t=/fre/tests/\$name.test
	[ -x \$t ] || continue
	cd /fre/src/\$pkg
	start=\$(date +%s)
	echo "=== package \$pkg"
	\$t -test.count=1 -test.timeout $PKG_TIMEOUT$2 \$run 2>&1
	rc=\$?
	d=\$((\$(date +%s) - start))
	if [ \$rc = 0 ]; then
		echo "ok  	github.com/fre-runtime/fre/\$pkg	\${d}s ($1)"
	else
		echo "FAIL	github.com/fre-runtime/fre/\$pkg	\${d}s ($1)"
		status=1
	fi
done
LOOP
}

# take_results FROM RESULTS WHERE ACCEL FILES...: a guest's results (FROM,
# when it came back) replace RESULTS'; off KVM each of FILES says first
# that WHERE ran under emulation. False when nothing came back.
take_results() {
	local from=$1 results=$2 where=$3 accel=$4 f
	shift 4
	[ -d "$from" ] || return 1
	rm -rf "${results:?}"/*
	cp -a "$from"/. "$results"/
	if [ "$accel" != kvm ]; then
		for f; do
			sed -i "1i # $where under software emulation (qemu TCG, no KVM): absolute times are slow; compare ratios only." "$results/$f"
		done
	fi
}

# console_lines LOG [PATTERN...]: the lines of a guest's serial console
# (those that match one of PATTERNs, when given), without the kernel's and
# the firmware's.
console_lines() {
	local log=$1 p args=(-e '')
	shift
	[ $# = 0 ] || args=()
	for p; do args+=(-e "$p"); done
	grep -v -e '^\[ *[0-9]*\.[0-9]*\]' -e 'SeaBIOS' -e 'Booting from ROM' "$log" | tr -d '\r' |
		sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/^c//' | grep "${args[@]}" || true
}
