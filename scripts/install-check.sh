#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make install-check` (CI): the install paths against a kernel build tree (default: the cached
# test kernel), on the host, touching nothing outside a temporary directory.
#   1. `make install DESTDIR=<stage>` into a staged root holding the kernel's own modules: the
#      module in lib/modules/<kver>/updates, in modules.dep, and the modprobe configuration;
#      kmod's `modprobe --show-depends` of vfio and vfio-pci (with the staged root's modules and
#      configuration: -d, -C) loads vfio_iommu_type1 and then vfio_iommu_rust; `make uninstall`
#      removes both and vfio loads without us again.
#   2. DKMS, with private trees (--dkmstree, --sourcetree, --installtree): `dkms add` of a copy of
#      this tree (its files that git does not ignore), `dkms build -k <kver> --kernelsourcedir KDIR` (the
#      vermagic of the .ko it built must be the kernel's), `dkms install` into the staged root
#      (depmod there ourselves), `dkms remove --all`. The machine's /var/lib/dkms, /usr/src and
#      /lib/modules are not used.
# Prints one line per check and "install check: ok" (or FAILED, exit 1). The guest's initramfs is
# built with the same `make install` (scripts/build-guest.sh) and tests/module_test.c checks the
# configuration with a real modprobe there.
# Usage: install-check.sh [KDIR]
source "$(dirname "$0")/lib.sh"

kdir=${1:-$(bash "$VIR_ROOT/scripts/build-kernel.sh")}
kver=$(cat "$kdir/include/config/kernel.release")
log=$VIR_LOGDIR/install-check.log
: >"$log"
command -v dkms >/dev/null || die "dkms is not installed (run: bash scripts/setup.sh dkms)"

stage "install check: make install, modprobe configuration and DKMS against $kdir ($kver)"
# The module, as `make check` builds it (so that its build is not repeated there).
run_logged "$VIR_LOGDIR/module-build.log" bash "$VIR_ROOT/scripts/build-module.sh" "$kdir" \
	"$VIR_ROOT" CLIPPY=1 || die "module build failed"

work=$(mktemp -d "${TMPDIR:-/tmp}/vir-install-check.XXXXXX")
pkg=vfio-iommu-rust
ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$VIR_ROOT/dkms.conf")
dkms_args=(--dkmstree "$work/dkms" --sourcetree "$work/src" --installtree "$work/root/lib/modules")
cleanup() {
	if [ -d "$work/dkms/$pkg" ]; then
		dkms remove "$pkg/$ver" --all "${dkms_args[@]}" --no-depmod >>"$log" 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

failed=0
result() { # result NAME OK [DETAIL]
	if [ "$2" = 1 ]; then
		printf '    %-40s ok\n' "$1"
	else
		printf '    %-40s FAILED: %s\n' "$1" "${3:-}"
		failed=$((failed + 1))
	fi
}
# logged CMD...: run CMD with its output in the log (and the command line before it).
logged() { echo "+ $*" >>"$log"; "$@" >>"$log" 2>&1; }

# A staged root with the kernel's modules, as a system with that kernel installed has them.
root=$work/root
moddir=$root/lib/modules/$kver
mkdir -p "$root/lib/modules"
cp -a "$kdir/modroot/lib/modules/$kver" "$root/lib/modules/"
rm -f "$moddir/build" "$moddir/source"

# The order in which modprobe (kmod, dry run) would load MODULE in the staged root: the base names
# of the modules, one per line.
show_depends() {
	echo "+ modprobe --show-depends $1" >>"$log"
	modprobe -d "$root" -S "$kver" -C "$root/etc/modprobe.d" --show-depends "$1" 2>>"$log" |
		tee -a "$log" | awk '$1 == "insmod" { n = split($2, p, "/"); print p[n] }'
}
# loads_after LIST: vfio_iommu_type1.ko and then vfio-iommu-rust.ko are in LIST (our module after
# the last time type1 appears).
loads_after() {
	echo "$1" | awk '/^vfio_iommu_type1\.ko$/ { t = NR } /^vfio-iommu-rust\.ko$/ { r = NR }
		END { exit !(t && r > t) }'
}

# 1. make install / make uninstall.
ok=1
logged make -s -C "$VIR_ROOT" install KDIR="$kdir" DESTDIR="$root" || ok=0
[ -f "$moddir/updates/$pkg.ko" ] || ok=0
[ -f "$root/etc/modprobe.d/$pkg.conf" ] || ok=0
# Our module depends on vfio (and on what vfio depends on, such as iommufd with CONFIG_IOMMUFD=m).
grep -qE "^updates/$pkg\.ko:( .*)? kernel/drivers/vfio/vfio\.ko( |\$)" "$moddir/modules.dep" || ok=0
result "make install (staged root)" $ok "updates/$pkg.ko, modules.dep, modprobe.d (see $log)"

for m in vfio vfio-pci vfio_iommu_type1; do
	order=$(show_depends $m) || true
	loads_after "$order" && ok=1 || ok=0
	result "modprobe $m: type1, us" $ok "$(echo $order)"
done

ok=1
logged make -s -C "$VIR_ROOT" uninstall KDIR="$kdir" DESTDIR="$root" || ok=0
[ ! -e "$moddir/updates/$pkg.ko" ] && [ ! -e "$root/etc/modprobe.d/$pkg.conf" ] || ok=0
! grep -q "$pkg" "$moddir/modules.dep" || ok=0
order=$(show_depends vfio) || true
echo "$order" | grep -qx vfio_iommu_type1.ko && ! echo "$order" | grep -q "$pkg" || ok=0
result "make uninstall (staged root)" $ok "see $log"

# 2. DKMS.
src=$work/src/$pkg-$ver
mkdir -p "$src" "$work/dkms"
git -C "$VIR_ROOT" ls-files -z --cached --others --exclude-standard | (cd "$VIR_ROOT" && tar --null -T - -cf -) | tar -xf - -C "$src"
ok=1
logged dkms add "$pkg/$ver" "${dkms_args[@]}" || ok=0
logged dkms build "$pkg/$ver" "${dkms_args[@]}" -k "$kver" --kernelsourcedir "$kdir" || ok=0
built=$work/dkms/$pkg/$ver/$kver/$(uname -m)/module/$pkg.ko
cat "$work/dkms/$pkg/$ver/$kver/$(uname -m)/log/make.log" >>"$log" 2>/dev/null || true
result "dkms add, dkms build -k $kver" $ok "see $log"

# The vermagic of the kernel: that of its first module.
ref=$kdir/$(sed -n '1s/\.o$/.ko/p' "$kdir/modules.order")
want=$(modinfo -F vermagic "$ref" 2>/dev/null || echo "(no $ref)")
got=$(modinfo -F vermagic "$built" 2>/dev/null || echo "(no $built)")
[ "$got" = "$want" ] && ok=1 || ok=0
result "dkms module vermagic" $ok "\"$got\", the kernel's \"$want\""

ok=1
logged dkms install "$pkg/$ver" "${dkms_args[@]}" -k "$kver" --kernelsourcedir "$kdir" --no-depmod ||
	ok=0
installed=$(cd "$moddir" && ls updates/$pkg.ko updates/*/$pkg.ko 2>/dev/null | head -n1) || true
[ -n "$installed" ] || ok=0
logged depmod -ae -F "$kdir/System.map" -b "$root" "$kver" || ok=0
grep -q "^$installed: kernel/drivers/vfio/vfio.ko" "$moddir/modules.dep" || ok=0
result "dkms install (staged root)" $ok "${installed:-no $pkg.ko under updates/} (see $log)"

ok=1
logged dkms remove "$pkg/$ver" --all "${dkms_args[@]}" --no-depmod || ok=0
[ -z "$(cd "$moddir" && ls updates/$pkg.ko updates/*/$pkg.ko 2>/dev/null)" ] || ok=0
[ ! -e "$work/dkms/$pkg" ] || ok=0
result "dkms remove --all" $ok "see $log"

if [ $failed = 0 ]; then
	echo "install check: ok"
else
	echo "install check: FAILED ($failed checks; log: $log)"
	exit 1
fi
