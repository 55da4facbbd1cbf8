#!/usr/bin/env bash
# hack/vm/systemd.sh: FRE's systemd guest. The same contract as
# `hack/vm/vm.sh run`, but PID 1 is systemd with a real D-Bus system bus
# (what a systemd cgroup driver talks to), not a busybox script: boots the
# kernel of hack/vm/vm.sh in qemu-system-x86_64 with, as its initramfs, the
# Debian tree of hack/vm/systemd-image.sh, the kernel's own modules and a
# staging directory of the caller's; runs a script from a unit
# (fre-vm.service, after multi-user.target) and returns its exit status.
# The root is the initramfs's tmpfs, bind-mounted over itself by the /init
# before it starts /lib/systemd/systemd (pivot_root cannot leave the
# initramfs's own mount, but can leave a bind mount of it).
#
#   systemd.sh run STAGE SCRIPT LOG   boot with STAGE's files under / in
#                                     the guest, run SCRIPT (a path inside
#                                     the guest) with /bin/sh there, write
#                                     the console to LOG; exit with the
#                                     script's status (1 when the guest
#                                     ends without one, 124 on timeout)
#
# Env (as hack/vm/vm.sh where they apply):
#   FRE_VM_CMDLINE  extra kernel command line (default: cgroup v2 only,
#                   "systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all";
#                   "systemd.unified_cgroup_hierarchy=0" boots systemd on
#                   cgroup v1)
#   FRE_VM_CPUS     guest CPUs (default 2); FRE_VM_MEM (default 6G)
#   FRE_VM_TIMEOUT  seconds before the guest is stopped (default 1500)
#   FRE_VM_BOOT_TIMEOUT  seconds for the guest to come up before it is
#                   stopped and booted again, once (default 240)
#   FRE_VM_MODULES  kernel modules systemd-modules-load loads, paths below
#                   kernel/ (default overlay and veth)
#   FRE_VM_DISK     size of a scratch ext4 disk mounted at /disk in the
#                   guest, where TMPDIR points for the script (default 8G,
#                   sparse; 0: none); its modules are loaded by the /init
#   FRE_VM_OUT      a host directory: the guest's /disk/out is copied there
#                   after the run (debugfs; nothing is mounted on the host)
#   FRE_VM_KERNEL, FRE_VM_ACCEL, FRE_VM_CACHE: passed to vm.sh kernel|accel;
#   FRE_VM_MIRROR, FRE_VM_PACKAGES: passed to systemd-image.sh
#
# In the guest: modprobe works for the staged modules (depmod runs at
# boot), the journal is volatile (journalctl works), SCRIPT's output goes to
# the serial console, and after it the unit prints FRE-VM-EXIT <status> and
# powers off at once (systemctl poweroff -ff: no units are stopped).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CMDLINE=${FRE_VM_CMDLINE:-systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all}
CPUS=${FRE_VM_CPUS:-2}
MEM=${FRE_VM_MEM:-6G}
TIMEOUT=${FRE_VM_TIMEOUT:-1500}
# As vm.sh's: a guest that has not said "guest up" after BOOT_TIMEOUT s is
# stuck in its boot (it takes some 10 s under TCG): qemu is stopped and
# the guest booted once more.
BOOT_TIMEOUT=${FRE_VM_BOOT_TIMEOUT:-240}
DISK=${FRE_VM_DISK:-8G}
# As hack/vm/vm.sh's DISK_MODULES, in load order.
DISK_MODULES="drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko drivers/virtio/virtio_pci_modern_dev.ko
drivers/virtio/virtio_pci_legacy_dev.ko drivers/virtio/virtio_pci.ko drivers/block/virtio_blk.ko lib/crc16.ko
fs/mbcache.ko fs/jbd2/jbd2.ko crypto/crc32c_generic.ko fs/ext4/ext4.ko"
MODULES=${FRE_VM_MODULES:-fs/overlayfs/overlay.ko drivers/net/veth.ko}

log() { echo "systemd-vm: $*" >&2; }

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

# write_guest OV REL SCRIPT DISKMODS: the /init, the unit that runs SCRIPT
# and the modules' configuration, in the overlay OV.
write_guest() {
	local ov=$1 rel=$2 script=$3 diskmods=$4
	mkdir -p "$ov/.bb" "$ov/fre-vm" "$ov/etc/systemd/system/multi-user.target.wants" "$ov/etc/modules-load.d"
	cp "$(busybox_bin)" "$ov/.bb/busybox"
	cat >"$ov/init" <<EOF
#!/.bb/busybox sh
# The initramfs's init: load the scratch disk's modules and mount it, make
# modprobe's index, and start systemd with the root on a bind mount of the
# initramfs's tmpfs (a mount with a parent, which pivot_root, as container
# runtimes use it, needs; rootfs itself has none). Nothing is copied:
# moving the tree to a new tmpfs took 5.7 s of a 12 s boot under TCG.
B=/.bb/busybox
\$B mkdir -p /proc /dev /newroot
\$B mount -t proc proc /proc
\$B mount -t devtmpfs dev /dev
echo "systemd-vm: init at \$(\$B cut -d' ' -f1 /proc/uptime) s"
\$B mount --bind / /newroot
\$B mkdir -p /newroot/sys /newroot/run /newroot/tmp
for m in $diskmods; do \$B insmod /lib/modules/$rel/kernel/\$m || echo "systemd-vm: insmod \$m failed"; done
if [ -b /dev/vda ]; then
	\$B mkdir -p /newroot/disk
	\$B mount -t ext4 /dev/vda /newroot/disk || echo "systemd-vm: mount /dev/vda failed"
fi
\$B chroot /newroot /sbin/depmod $rel || echo "systemd-vm: depmod failed"
echo "systemd-vm: systemd at \$(\$B cut -d' ' -f1 /proc/uptime) s"
\$B umount /proc
\$B mount --move /dev /newroot/dev
cd /newroot
\$B mount --move . /
exec \$B chroot . /lib/systemd/systemd
EOF
	chmod 755 "$ov/init"
	echo "$script" >"$ov/fre-vm/script"
	cat >"$ov/fre-vm/run" <<'EOF'
#!/bin/sh
# fre-vm.service: the caller's script, then its status and the power-off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
if mountpoint -q /disk; then
	mkdir -p /disk/tmp && chmod 1777 /disk/tmp && export TMPDIR=/disk/tmp
fi
echo "systemd-vm: guest up at $(cut -d' ' -f1 /proc/uptime) s: $(uname -r), $(nproc) CPUs, PID 1 $(cat /proc/1/comm), cgroup $(stat -f -c %T /sys/fs/cgroup), TMPDIR=${TMPDIR:-/tmp}"
cd /
/bin/sh "$(cat /fre-vm/script)"
echo "FRE-VM-EXIT $?"
sync
systemctl poweroff -ff || echo o >/proc/sysrq-trigger
EOF
	chmod 755 "$ov/fre-vm/run"
	cat >"$ov/etc/systemd/system/fre-vm.service" <<'EOF'
[Unit]
Description=FRE guest script
Wants=dbus.socket
After=multi-user.target dbus.socket

[Service]
# simple: the boot's jobs end when it has started, so the script may wait
# for systemctl is-system-running.
Type=simple
ExecStart=/fre-vm/run
StandardInput=null
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/ttyS0

[Install]
WantedBy=multi-user.target
EOF
	ln -sfn ../fre-vm.service "$ov/etc/systemd/system/multi-user.target.wants/fre-vm.service"
	local m
	for m in $MODULES; do
		basename "$m" .ko
	done >"$ov/etc/modules-load.d/fre-vm.conf"
}

# merge_usr OV TREE: the tree's /bin, /sbin, /lib... are symlinks into
# /usr (merged /usr); a directory of the same name in the overlay would
# replace the symlink when the kernel unpacks the second archive, so its
# files move under usr/.
merge_usr() {
	local ov=$1 tree=$2 d
	for d in bin sbin lib lib32 lib64 libx32; do
		if [ -L "$tree/$d" ] && [ -d "$ov/$d" ] && [ ! -L "$ov/$d" ]; then
			mkdir -p "$ov/usr/$d"
			cp -a "$ov/$d"/. "$ov/usr/$d"/
			rm -rf "${ov:?}/$d"
		fi
	done
}

# pack OV TREE OUT: the overlay as a cpio, less the directories the tree
# has already (their entries would reset the tree's modes, /tmp's 1777).
pack() {
	local ov=$1 tree=$2 out=$3 p
	(
		cd "$ov"
		find . -mindepth 1 -print0 | while IFS= read -r -d '' p; do
			if [ -d "$p" ] && [ ! -L "$p" ] && [ -d "$tree/$p" ]; then
				continue
			fi
			printf '%s\0' "$p"
		done | cpio --null -o -H newc --quiet
	) >"$out"
}

run() {
	local stage=$1 script=$2 logf=$3
	local kdir a img rel tmp
	kdir=$("$HERE/vm.sh" kernel)
	a=$("$HERE/vm.sh" accel)
	img=$("$HERE/systemd-image.sh")
	rel=$(basename "$(ls "$kdir"/boot/vmlinuz-* | head -1)" | sed 's/^vmlinuz-//')
	mkdir -p /tmp/fre-vm-systemd
	tmp=$(mktemp -d /tmp/fre-vm-systemd/run.XXXXXX)
	trap 'rm -rf "$tmp"' RETURN
	local ov=$tmp/overlay m diskmods=""
	mkdir -p "$ov"
	chmod 755 "$ov"
	[ "$DISK" != 0 ] && diskmods=$(echo $DISK_MODULES)
	for m in $MODULES $diskmods; do
		mkdir -p "$ov/lib/modules/$rel/kernel/$(dirname "$m")"
		cp "$kdir/lib/modules/$rel/kernel/$m" "$ov/lib/modules/$rel/kernel/$m"
	done
	for m in modules.order modules.builtin modules.builtin.modinfo; do
		[ -f "$kdir/lib/modules/$rel/$m" ] && cp "$kdir/lib/modules/$rel/$m" "$ov/lib/modules/$rel/"
	done
	write_guest "$ov" "$rel" "$script" "$diskmods"
	# The caller's files on top.
	cp -a "$stage"/. "$ov"/
	merge_usr "$ov" "$img/tree"
	pack "$ov" "$img/tree" "$tmp/overlay.cpio"
	# The kernel unpacks concatenated archives in order: the tree, then
	# ours over it.
	cat "$img/root.cpio" "$tmp/overlay.cpio" >"$tmp/initrd"
	rm -rf "$ov" "$tmp/overlay.cpio"
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
			mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 "$tmp/disk.img"
		fi
		log "booting $rel with systemd ($a, $CPUS CPUs, $MEM, initramfs $(du -m "$tmp/initrd" | cut -f1) MB)"
		# Emptied here: the poll below must not read an earlier run's log
		# before the background qemu's redirection truncates it.
		: >"$logf"
		start=$SECONDS status=0 up=0
		timeout "$TIMEOUT" qemu-system-x86_64 "${accel_args[@]}" -m "$MEM" -smp "$CPUS" \
			-nographic -no-reboot -nic none "${disk_args[@]}" \
			-kernel "$(ls "$kdir"/boot/vmlinuz-* | head -1)" -initrd "$tmp/initrd" \
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
	code=$(tr -d '\r' <"$logf" | sed -n 's/.*FRE-VM-EXIT \([0-9]*\).*/\1/p' | tail -1)
	if [ -z "$code" ]; then
		log "guest ended without an exit status (qemu $status); see $logf"
		return 1
	fi
	return "$code"
}

case "${1:-}" in
run)
	shift
	[ $# -eq 3 ] || { echo "usage: systemd.sh run STAGE SCRIPT LOG" >&2; exit 2; }
	if [ "$(id -u)" != 0 ]; then
		log "must run as root (the image is built with debootstrap)"
		exit 1
	fi
	run "$@"
	;;
*)
	echo "usage: systemd.sh run STAGE SCRIPT LOG" >&2
	exit 2
	;;
esac
