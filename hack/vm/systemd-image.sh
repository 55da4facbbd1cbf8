#!/usr/bin/env bash
# hack/vm/systemd-image.sh: the root of FRE's systemd guest (hack/vm/systemd.sh):
# a Debian bookworm tree from `debootstrap --variant=minbase` plus systemd,
# systemd-sysv and D-Bus, configured for a headless boot without network or
# disk (no getty, no login, no timers, no network waits; hostname fre-vm; an
# empty machine-id that systemd fills at boot), packed as an uncompressed
# cpio (decompression is slow under emulation). Built once and cached:
#
#   $CACHE/systemd-<key>/tree        debootstrap's tree (key: suite, mirror
#                                    and package list: a change rebuilds it)
#   $CACHE/systemd-<key>/root-<c>.cpio  that tree configured (c: the
#                                    configuration below; a change re-packs
#                                    it without a new debootstrap)
#
# Prints the directory $CACHE/systemd-<key>; its "root.cpio" is a symlink
# to the current configured image, "tree" the unconfigured tree (for
# looking up its layout: /bin, /lib are symlinks into /usr).
#
# Env:
#   FRE_VM_CACHE     cache (default /var/cache/fre-vm)
#   FRE_VM_MIRROR    Debian mirror (default: the host's apt source for
#                    bookworm, else http://deb.debian.org/debian)
#   FRE_VM_PACKAGES  packages on top of minbase (default below)
#
# Runs as root (debootstrap). debootstrap mounts proc and sys in its target
# while it configures packages; they are checked to be gone afterwards.
set -euo pipefail

CACHE=${FRE_VM_CACHE:-/var/cache/fre-vm}
SUITE=bookworm
# systemd and D-Bus (what the systemd cgroup driver talks to); kmod for
# modprobe of the kernel's modules; iproute2 and procps for the tests.
PACKAGES=${FRE_VM_PACKAGES:-systemd systemd-sysv dbus kmod iproute2 procps}

log() { echo "systemd-image: $*" >&2; }

# mirror: the host's apt source for the suite (deb822 or one-line form).
mirror() {
	if [ -n "${FRE_VM_MIRROR:-}" ]; then
		echo "$FRE_VM_MIRROR"
		return
	fi
	local f u
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		# The stanza whose Suites name the suite itself (not -security).
		u=$(awk -v s="$SUITE" '
			/^$/ { if (ok && uri != "") { print uri; exit } ok = 0; uri = "" }
			/^URIs:/ { uri = $2 }
			/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
			END { if (ok && uri != "") print uri }' "$f" | head -1)
		if [ -n "$u" ]; then
			echo "$u"
			return
		fi
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		u=$(awk -v s="$SUITE" '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i == s) { print $(i-1); exit } }' "$f" | sed 's/^\[.*\]$//' | head -1)
		if [ -n "$u" ]; then
			echo "$u"
			return
		fi
	done
	echo http://deb.debian.org/debian
}

# Units that wait for, or fail without, a network, a disk, a terminal or
# a clock; and the periodic jobs of a long-lived host.
MASK="getty@.service serial-getty@.service console-getty.service container-getty@.service
systemd-firstboot.service systemd-networkd.service systemd-networkd.socket
systemd-networkd-wait-online.service systemd-resolved.service systemd-timesyncd.service
systemd-time-wait-sync.service apt-daily.service apt-daily.timer apt-daily-upgrade.service
apt-daily-upgrade.timer dpkg-db-backup.service dpkg-db-backup.timer e2scrub_all.service
e2scrub_all.timer e2scrub_reap.service fstrim.service fstrim.timer man-db.service man-db.timer
systemd-tmpfiles-clean.timer systemd-pstore.service systemd-hwdb-update.service
systemd-journal-catalog-update.service ldconfig.service systemd-update-utmp.service
systemd-update-utmp-runlevel.service getty-static.service systemd-network-generator.service
proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount systemd-binfmt.service"

# configure ROOT: the headless set-up (its text is part of the cache key).
configure() {
	local root=$1 u
	echo fre-vm >"$root/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\tfre-vm\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
	# Empty: systemd makes a machine-id at each boot (a tmpfs root).
	: >"$root/etc/machine-id"
	rm -f "$root/var/lib/dbus/machine-id"
	# No login: root's password is locked.
	sed -i 's/^root:[^:]*:/root:*:/' "$root/etc/shadow"
	echo "# FRE guest: the root is an initramfs moved to a tmpfs" >"$root/etc/fstab"
	for u in $MASK; do
		ln -sfn /dev/null "$root/etc/systemd/system/$u"
	done
	ln -sfn /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"
	mkdir -p "$root/etc/systemd/journald.conf.d" "$root/etc/systemd/system.conf.d"
	# The journal in memory, copied to the console only when asked.
	printf '[Journal]\nStorage=volatile\nForwardToConsole=no\n' >"$root/etc/systemd/journald.conf.d/fre-vm.conf"
	# Status lines only for errors; short stop timeouts (a guest that hangs
	# on a unit is stopped by the harness's timeout anyway).
	printf '[Manager]\nShowStatus=error\nDefaultTimeoutStartSec=60s\nDefaultTimeoutStopSec=10s\n' \
		>"$root/etc/systemd/system.conf.d/fre-vm.conf"
	printf 'LANG=C.UTF-8\n' >"$root/etc/default/locale"
	echo "nameserver 127.0.0.1" >"$root/etc/resolv.conf"
	# No /etc/.updated newer than /usr needed: the units that would
	# rebuild caches at first boot (ldconfig, hwdb, catalog) are masked.
}

# strip ROOT: what a guest never reads.
strip_tree() {
	local root=$1
	rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
		"$root"/usr/share/locale/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
		"$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
}

# check_mounts DIR: nothing of debootstrap's stays mounted under DIR
# (each left mount is unmounted by its exact path, the deepest first).
check_mounts() {
	local dir=$1 m
	for m in $(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
		log "unmounting $m (left by debootstrap)"
		umount "$m"
	done
	if grep -qF " $dir" /proc/self/mountinfo; then
		log "still mounted under $dir:"
		grep -F " $dir" /proc/self/mountinfo >&2
		exit 1
	fi
}

main() {
	if [ "$(id -u)" != 0 ]; then
		log "must run as root (debootstrap)"
		exit 1
	fi
	local url key dir
	url=$(mirror)
	key=$(printf '%s\n' "$SUITE" "$url" "$PACKAGES" | sha256sum | cut -c1-12)
	dir=$CACHE/systemd-$key
	mkdir -p "$dir"
	exec 9>"$dir/.lock"
	flock 9
	if [ ! -f "$dir/tree/.done" ]; then
		if ! command -v debootstrap >/dev/null; then
			log "installing debootstrap"
			apt-get install -y -q debootstrap >/dev/null 2>&1 || {
				apt-get update -q >/dev/null
				apt-get install -y -q debootstrap >/dev/null
			}
		fi
		log "debootstrap $SUITE from $url with: $PACKAGES (once; a few minutes)"
		rm -rf "$dir/tree"
		mkdir -p "$dir/tree"
		local status=0 start=$SECONDS
		debootstrap --variant=minbase --include="${PACKAGES// /,}" \
			"$SUITE" "$dir/tree" "$url" >"$dir/debootstrap.log" 2>&1 || status=$?
		check_mounts "$dir/tree"
		if [ "$status" != 0 ]; then
			log "debootstrap failed ($status); see $dir/debootstrap.log"
			tail -20 "$dir/debootstrap.log" >&2
			exit 1
		fi
		strip_tree "$dir/tree"
		touch "$dir/tree/.done"
		log "tree built in $((SECONDS - start)) s: $(du -sm "$dir/tree" | cut -f1) MB"
	fi
	local conf img
	conf=$({ declare -f configure; echo "$MASK"; } | sha256sum | cut -c1-12)
	img=$dir/root-$conf.cpio
	if [ ! -f "$img" ]; then
		log "configuring and packing the tree ($img)"
		local work=$dir/work old
		rm -rf "$work"
		cp -a "$dir/tree" "$work"
		rm -f "$work/.done"
		configure "$work"
		(cd "$work" && find . -print0 | cpio --null -o -H newc --quiet) >"$img.tmp"
		mv "$img.tmp" "$img"
		rm -rf "$work"
		# Images of an older configuration go.
		for old in "$dir"/root-*.cpio; do
			[ "$old" = "$img" ] || rm -f "$old"
		done
	fi
	ln -sfn "$(basename "$img")" "$dir/root.cpio"
	echo "$dir"
}

main "$@"
