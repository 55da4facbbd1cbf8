#!/usr/bin/env bash
# hack/vm/vm.sh: FRE's test guests. Boots a Debian kernel (unpacked from
# Debian's package with dpkg-deb -x, never installed on the host) in
# qemu-system-x86_64 with an initramfs made of busybox, the kernel's own
# modules and a staging directory of the caller's, runs a script inside and
# returns its exit status. The guest's root is a tmpfs (the init moves the
# initramfs there and switch_roots: pivot_root cannot leave an initramfs).
#
#   vm.sh kernel                 unpack the kernel (cached); print its dir
#   vm.sh accel                  print the accelerator to use: kvm or tcg
#   vm.sh run STAGE SCRIPT LOG   boot with STAGE's files under / in the
#                                guest, run SCRIPT (a path inside STAGE)
#                                there, write the console to LOG; exit with
#                                the script's status
#
# Env:
#   FRE_VM_CACHE    cache of kernels and probes (default /var/cache/fre-vm)
#   FRE_VM_KERNEL   Debian package of the kernel: a metapackage such as
#                   linux-image-amd64 (default) or a versioned one
#   FRE_VM_CMDLINE  extra kernel command line (default: cgroup v2 only,
#                   "cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1")
#   FRE_VM_CPUS     guest CPUs (default 2); FRE_VM_MEM (default 6G)
#   FRE_VM_TIMEOUT  seconds before the guest is stopped (default 1500)
#   FRE_VM_BOOT_TIMEOUT  seconds for the guest to come up before it is
#                   stopped and booted again, once (default 240)
#   FRE_VM_ACCEL    kvm or tcg: skip the probe
#   FRE_VM_MODULES  kernel modules to load, paths below kernel/ (default
#                   overlay and veth, and the scratch disk's)
#   FRE_VM_DISK     size of a scratch ext4 disk (project quota on) mounted at /disk in the
#                   guest, where TMPDIR points (default 8G, sparse; 0:
#                   none): tests see a disk file system, as on a host
#   FRE_VM_OUT      a host directory: what the guest left in /disk/out is
#                   copied there after the run (debugfs reads the disk
#                   image; nothing is mounted on the host)
#
# A guest for another kernel version or layout is the same call with other
# FRE_VM_KERNEL / FRE_VM_CMDLINE values.
set -euo pipefail

CACHE=${FRE_VM_CACHE:-/var/cache/fre-vm}
KPKG=${FRE_VM_KERNEL:-linux-image-amd64}
CMDLINE=${FRE_VM_CMDLINE:-cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1}
CPUS=${FRE_VM_CPUS:-2}
MEM=${FRE_VM_MEM:-6G}
TIMEOUT=${FRE_VM_TIMEOUT:-1500}
# A guest that has not said "guest up" after BOOT_TIMEOUT s is stuck in its
# boot (seen once under TCG: 16 minutes at SeaBIOS's "Booting from ROM",
# where it takes 5 s): qemu is stopped and the guest booted once more.
BOOT_TIMEOUT=${FRE_VM_BOOT_TIMEOUT:-240}
DISK=${FRE_VM_DISK:-8G}
DISK_MODULES="drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko drivers/virtio/virtio_pci_modern_dev.ko
drivers/virtio/virtio_pci_legacy_dev.ko drivers/virtio/virtio_pci.ko drivers/block/virtio_blk.ko lib/crc16.ko
fs/mbcache.ko fs/jbd2/jbd2.ko crypto/crc32c_generic.ko fs/ext4/ext4.ko fs/quota/quota_tree.ko fs/quota/quota_v2.ko"
MODULES=${FRE_VM_MODULES:-fs/overlayfs/overlay.ko drivers/net/veth.ko}
if [ "$DISK" != 0 ] && [ -z "${FRE_VM_MODULES:-}" ]; then
	MODULES="$MODULES $DISK_MODULES"
fi

log() { echo "vm: $*" >&2; }

# kernel_dir unpacks the kernel package (following a metapackage to the
# versioned image it depends on) into the cache, once.
kernel_dir() {
	mkdir -p "$CACHE/dl"
	local pkg=$KPKG dep
	dep=$(apt-cache depends "$pkg" 2>/dev/null | sed -n 's/^  Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)
	if [ -z "$dep" ] && ! apt-cache show "$pkg" >/dev/null 2>&1; then
		apt-get update -q >/dev/null
		dep=$(apt-cache depends "$pkg" 2>/dev/null | sed -n 's/^  Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)
	fi
	[ -n "$dep" ] && pkg=$dep
	local dir=$CACHE/$pkg
	if [ ! -f "$dir/.unpacked" ]; then
		log "fetching $pkg"
		rm -rf "$dir" "$CACHE/dl/$pkg"
		mkdir -p "$CACHE/dl/$pkg"
		(cd "$CACHE/dl/$pkg" && apt-get download "$pkg" >/dev/null 2>&1) || {
			apt-get update -q >/dev/null
			(cd "$CACHE/dl/$pkg" && apt-get download "$pkg" >/dev/null)
		}
		mkdir -p "$dir"
		dpkg-deb -x "$CACHE/dl/$pkg"/*.deb "$dir"
		rm -rf "$CACHE/dl/$pkg"
		touch "$dir/.unpacked"
	fi
	echo "$dir"
}

kernel_image() { ls "$1"/boot/vmlinuz-* | head -1; }
kernel_release() { basename "$(kernel_image "$1")" | sed 's/^vmlinuz-//'; }

busybox_bin() {
	local b
	for b in /bin/busybox /usr/bin/busybox; do
		if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then
			echo "$b"
			return
		fi
	done
	log "a static busybox is needed (Debian's busybox-static)"
	exit 1
}

# write_init writes the initramfs's /init: devices and the move to a tmpfs
# root, then /fre-vm/stage2 there.
write_init() {
	local root=$1
	cat >"$root/init" <<'EOF'
#!/bin/busybox sh
# A copy of busybox that stays behind while the tree moves.
/bin/busybox mkdir /.bb
/bin/busybox cp /bin/busybox /.bb/busybox
B=/.bb/busybox
$B mkdir -p /proc /sys /dev /newroot
$B mount -t proc proc /proc
$B mount -t devtmpfs dev /dev
$B mount -t tmpfs -o mode=0755 root /newroot
cd /
for e in *; do
	case "$e" in proc|sys|dev|newroot|init|.bb) ;; *) $B mv "$e" /newroot/ ;; esac
done
$B umount /proc
$B mount --move /dev /newroot/dev 2>/dev/null || $B umount /dev
exec $B switch_root /newroot /bin/busybox sh /fre-vm/stage2
EOF
	chmod 755 "$root/init"
	mkdir -p "$root/fre-vm"
	cat >"$root/fre-vm/stage2" <<'EOF'
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
/bin/busybox mkdir -p /proc
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
mkdir -p /sys /dev /tmp /run /var/tmp /root
mount -t sysfs sys /sys
[ -e /dev/null ] || mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs shm /dev/shm
mount -t tmpfs run /run
chmod 1777 /tmp /var/tmp
# Shared propagation on the root, as systemd gives a host.
mount --make-rshared /
if grep -q cgroup2 /proc/filesystems; then
	mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
	# The root's processes move to a leaf, so the root may delegate.
	mkdir -p /sys/fs/cgroup/init.scope
	for p in $(cat /sys/fs/cgroup/cgroup.procs); do echo "$p" >/sys/fs/cgroup/init.scope/cgroup.procs 2>/dev/null; done
	for c in $(cat /sys/fs/cgroup/cgroup.controllers); do echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control; done
fi
for m in $(cat /fre-vm/modules); do insmod "$m" || echo "vm: insmod $m failed"; done
if [ -b /dev/vda ]; then
	mkdir -p /disk
	# With project quota enforced, as a host that limits tenants' sizes.
	{ mount -t ext4 -o prjquota /dev/vda /disk || mount -t ext4 /dev/vda /disk; } &&
		mkdir -p /disk/tmp && chmod 1777 /disk/tmp && export TMPDIR=/disk/tmp
fi
ip link set lo up
hostname fre-vm
ln -sf /proc/self/mounts /etc/mtab
echo "vm: guest up: $(uname -r), $(nproc) CPUs, cgroup $(grep -c . /sys/fs/cgroup/cgroup.controllers >/dev/null && echo v2: $(cat /sys/fs/cgroup/cgroup.controllers)), TMPDIR=${TMPDIR:-/tmp}"
script=$(cat /fre-vm/script)
cd /
/bin/sh "$script"
echo "FRE-VM-EXIT $?"
sync
poweroff -f
EOF
}

# build_initramfs STAGE OUT: busybox, the init, the kernel's modules named
# in MODULES and STAGE's tree, as an uncompressed cpio (decompression is
# slow under emulation).
build_initramfs() {
	local stage=$1 out=$2 kdir=$3 script=$4
	local root
	root=$(mktemp -d "${out}.root.XXXXXX")
	mkdir -p "$root/bin" "$root/etc" "$root/lib/modules"
	cp "$(busybox_bin)" "$root/bin/busybox"
	ln -s busybox "$root/bin/sh"
	write_init "$root"
	local rel m list=""
	rel=$(kernel_release "$kdir")
	for m in $MODULES; do
		mkdir -p "$root/lib/modules/$rel/$(dirname "$m")"
		cp "$kdir/lib/modules/$rel/kernel/$m" "$root/lib/modules/$rel/$m"
		list="$list /lib/modules/$rel/$m"
	done
	echo "$list" >"$root/fre-vm/modules"
	echo "$script" >"$root/fre-vm/script"
	echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
	echo "root:x:0:" >"$root/etc/group"
	# What a host has and containerd's CRI copies into a pod.
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$root/etc/hosts"
	echo "nameserver 127.0.0.1" >"$root/etc/resolv.conf"
	echo "fre-vm" >"$root/etc/hostname"
	# The caller's files on top (its bin/ and etc/ merge with ours).
	cp -a "$stage"/. "$root"/
	(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) >"$out"
	rm -rf "$root"
}

# accel: KVM when a guest boots with it in time (nested KVM hangs at boot
# on some hosts), else TCG. The probe's answer is cached per host boot.
accel() {
	if [ -n "${FRE_VM_ACCEL:-}" ]; then
		echo "$FRE_VM_ACCEL"
		return
	fi
	local key
	key="$CACHE/accel-$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)"
	if [ -f "$key" ]; then
		cat "$key"
		return
	fi
	local a=tcg
	if [ -w /dev/kvm ]; then
		local kdir tmp
		kdir=$(kernel_dir)
		tmp=$(mktemp -d)
		mkdir -p "$tmp/stage"
		printf 'echo probe-ok\n' >"$tmp/stage/probe.sh"
		MODULES="" build_initramfs "$tmp/stage" "$tmp/initrd" "$kdir" /probe.sh
		if timeout 20 qemu-system-x86_64 -enable-kvm -cpu host -m 512M -smp 1 -nographic -no-reboot \
			-kernel "$(kernel_image "$kdir")" -initrd "$tmp/initrd" \
			-append "console=ttyS0 panic=-1 quiet" </dev/null 2>/dev/null | grep -q "FRE-VM-EXIT 0"; then
			a=kvm
		fi
		rm -rf "$tmp"
	fi
	mkdir -p "$CACHE"
	echo "$a" >"$key"
	echo "$a"
}

run() {
	local stage=$1 script=$2 logf=$3
	local kdir a tmp
	kdir=$(kernel_dir)
	a=$(accel)
	tmp=$(mktemp -d /tmp/fre-vm.XXXXXX)
	trap 'rm -rf "$tmp"' RETURN
	build_initramfs "$stage" "$tmp/initrd" "$kdir" "$script"
	local disk_args=()
	if [ "$DISK" != 0 ]; then
		disk_args=(-drive "file=$tmp/disk.img,if=virtio,format=raw,cache=unsafe")
	fi
	local accel_args=(-accel tcg,thread=multi -cpu max)
	if [ "$a" = kvm ]; then
		accel_args=(-enable-kvm -cpu host)
	fi
	local start status boot qpid up
	for boot in 1 2; do
		if [ "$DISK" != 0 ]; then
			rm -f "$tmp/disk.img"
			truncate -s "$DISK" "$tmp/disk.img"
			mkfs.ext4 -q -F -O quota,project -E lazy_itable_init=1,lazy_journal_init=1 "$tmp/disk.img"
		fi
		log "booting $(kernel_release "$kdir") ($a, $CPUS CPUs, $MEM, initramfs $(du -m "$tmp/initrd" | cut -f1) MB)"
		# Emptied here: the poll below must not read an earlier run's log
		# before the background qemu's redirection truncates it.
		: >"$logf"
		start=$SECONDS status=0 up=0
		timeout "$TIMEOUT" qemu-system-x86_64 "${accel_args[@]}" -m "$MEM" -smp "$CPUS" \
			-nographic -no-reboot -nic none "${disk_args[@]}" \
			-kernel "$(kernel_image "$kdir")" -initrd "$tmp/initrd" \
			-append "console=ttyS0 panic=-1 quiet loglevel=3 $CMDLINE" </dev/null >"$logf" 2>&1 &
		qpid=$!
		# Poll the console for the guest's first line, up to BOOT_TIMEOUT.
		while kill -0 "$qpid" 2>/dev/null; do
			if grep -q "guest up" "$logf" 2>/dev/null; then
				up=1
				break
			fi
			[ $((SECONDS - start)) -lt "$BOOT_TIMEOUT" ] || break
			sleep 1
		done
		if [ "$up" = 0 ] && kill -0 "$qpid" 2>/dev/null; then
			log "guest not up after $BOOT_TIMEOUT s (boot $boot); stopping qemu (timeout PID $qpid)"
			kill "$qpid" 2>/dev/null || true
			wait "$qpid" 2>/dev/null || true
			if [ "$boot" = 1 ]; then
				continue
			fi
			return 124
		fi
		wait "$qpid" || status=$?
		break
	done
	log "guest ran $((SECONDS - start)) s"
	if [ "$status" = 124 ]; then
		log "guest timed out after $TIMEOUT s"
		return 124
	fi
	if [ -n "${FRE_VM_OUT:-}" ] && [ "$DISK" != 0 ]; then
		mkdir -p "$FRE_VM_OUT"
		# rdump writes the guest's /disk/out as FRE_VM_OUT/out.
		rm -rf "${FRE_VM_OUT:?}/out"
		debugfs -R "rdump /out $FRE_VM_OUT" "$tmp/disk.img" >/dev/null 2>&1 ||
			log "nothing copied from the guest's /disk/out"
	fi
	local code
	code=$(sed -n 's/.*FRE-VM-EXIT \([0-9]*\).*/\1/p' "$logf" | tail -1)
	if [ -z "$code" ]; then
		log "guest ended without an exit status (qemu $status); see $logf"
		return 1
	fi
	return "$code"
}

case "${1:-}" in
kernel) kernel_dir ;;
accel) accel ;;
run)
	shift
	[ $# -eq 3 ] || { echo "usage: vm.sh run STAGE SCRIPT LOG" >&2; exit 2; }
	run "$@"
	;;
*)
	echo "usage: vm.sh kernel | accel | run STAGE SCRIPT LOG" >&2
	exit 2
	;;
esac
