#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make install` / `make uninstall`: install the built module like other out-of-tree modules.
#
#   install    the kernel's own `make -C KDIR M=... modules_install` with INSTALL_MOD_DIR=updates:
#              <root>/lib/modules/<kver>/updates/vfio-iommu-rust.ko (signed/compressed as the
#              kernel's config says), then depmod for <kver> (`depmod -ae -F System.map -b <root>`);
#              and <root>/etc/modprobe.d/vfio-iommu-rust.conf (modprobe.d/ in this tree), which
#              makes modprobe load vfio_iommu_rust right after vfio_iommu_type1.
#   uninstall  removes both and runs depmod again.
#
# <kver> is KDIR's include/config/kernel.release. KDIR defaults to the kernel directory the module
# was last built against (.vir-kdir, written by `make`): install what `make` built, for the kernel
# it was built for, without building anything (so `sudo make install` after `make` needs no
# toolchain). The module root is INSTALL_MOD_PATH (the kernel's variable, default DESTDIR, default
# /) and modprobe.d goes under DESTDIR (default INSTALL_MOD_PATH): DESTDIR=/tmp/stage stages both.
#
# Usage: install.sh install|uninstall   (environment: KDIR, INSTALL_MOD_PATH, DESTDIR, and the
# make variables of the kernel build, e.g. LLVM=1, through the calling make's MAKEFLAGS)
set -euo pipefail

root_dir=$(cd "$(dirname "$0")/.." && pwd)
action=${1:?usage: install.sh install|uninstall}
ko_name=vfio-iommu-rust
conf_name=vfio-iommu-rust.conf

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

stamp_kdir=$(cat "$root_dir/.vir-kdir" 2>/dev/null || true)
kdir=${KDIR:-$stamp_kdir}
[ -n "$kdir" ] || die "no kernel build directory: run \`make\` (or \`make KDIR=...\`) first, or pass KDIR=..."
[ -r "$kdir/include/config/kernel.release" ] ||
	die "$kdir is not a kernel build directory (no include/config/kernel.release)"
kver=$(cat "$kdir/include/config/kernel.release")
mod_path=${INSTALL_MOD_PATH-${DESTDIR:-}}
conf_root=${DESTDIR:-$mod_path}
moddir=$mod_path/lib/modules/$kver
confdir=$conf_root/etc/modprobe.d

# depmod for kver in the (possibly staged) root, as the kernel's scripts/depmod.sh does.
run_depmod() {
	local args=(-a)
	[ -r "$kdir/System.map" ] && args=(-ae -F "$kdir/System.map")
	[ -n "$mod_path" ] && args+=(-b "$mod_path")
	echo "  DEPMOD  $moddir"
	depmod "${args[@]}" "$kver"
}

case $action in
install)
	ko=$root_dir/$ko_name.ko
	[ -f "$ko" ] || die "$ko is not built: run \`make\`${KDIR:+ KDIR=$KDIR} first"
	[ "$stamp_kdir" = "$kdir" ] ||
		die "$ko was built against ${stamp_kdir:-an unknown kernel}, not $kdir: run \`make KDIR=$kdir\` first"
	magic=$(modinfo -F vermagic "$ko")
	[ "${magic%% *}" = "$kver" ] || die "$ko has vermagic \"$magic\", the kernel in $kdir is $kver"
	# The make flags the kernel was built with (LLVM=-19 for this project's debug kernel).
	flags=$(cat "$kdir/.vir-make-flags" 2>/dev/null || true)
	# The kernel runs depmod itself (with -b INSTALL_MOD_PATH) when it has a System.map.
	make -C "$kdir" $flags M="$root_dir" INSTALL_MOD_PATH="$mod_path" INSTALL_MOD_DIR=updates \
		modules_install
	[ -r "$kdir/System.map" ] || run_depmod
	mkdir -p "$confdir"
	install -m 0644 "$root_dir/modprobe.d/$conf_name" "$confdir/$conf_name"
	echo "  INSTALL $confdir/$conf_name"
	echo "installed $ko_name for $kver: $(ls "$moddir/updates/$ko_name.ko"* | head -n1)"
	;;
uninstall)
	removed=
	for f in "$moddir/updates/$ko_name.ko" "$moddir/updates/$ko_name.ko".{gz,xz,zst}; do
		[ -e "$f" ] || continue
		rm -f "$f"
		echo "  REMOVE  $f"
		removed=1
	done
	if [ -e "$confdir/$conf_name" ]; then
		rm -f "$confdir/$conf_name"
		echo "  REMOVE  $confdir/$conf_name"
	fi
	if [ -n "$removed" ] && [ -d "$moddir" ]; then
		rmdir --ignore-fail-on-non-empty "$moddir/updates"
		run_depmod
	fi
	echo "uninstalled $ko_name for $kver"
	;;
*) die "usage: install.sh install|uninstall" ;;
esac
