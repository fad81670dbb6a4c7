#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build the guest: the static test binaries (kselftest harness from the kernel tree, uAPI headers of
# the kernel under test), the upstream VFIO selftests (scripts/build-vfio-selftests.sh) and a busybox
# initramfs with the VFIO modules, our module (installed by `make install`), kmod's modprobe and the
# tests.
# Usage: build-guest.sh KDIR
source "$(dirname "$0")/lib.sh"

kdir=${1:?usage: build-guest.sh KDIR}
srctree=$kdir/source
out=$VIR_ROOT/out/guest
ko=$VIR_ROOT/vfio-iommu-rust.ko
[ -f "$ko" ] || die "$ko not built (run: make)"
release=$(cat "$kdir/include/config/kernel.release")
modroot=$kdir/modroot/lib/modules/$release
[ -d "$modroot" ] || die "$modroot missing: kernel build incomplete"

stage "guest: building test binaries"
rm -rf "$out/tests" "$out/tests-isolation" "$out/tests-debug"
mkdir -p "$out/tests" "$out/tests-isolation" "$out/tests-debug"
cflags=(-static -O2 -g -Wall -Werror -D_GNU_SOURCE -I"$kdir/usr/include"
	-I"$srctree/tools/testing/selftests" -I"$VIR_ROOT/tests")
# tests/*_test.c run in the check boot, tests/isolation/*_test.c in the isolation boot,
# tests/debug/*_test.c (fault injection, stress, fuzzing) on the debug kernel.
for src in "$VIR_ROOT"/tests/*_test.c "$VIR_ROOT"/tests/isolation/*_test.c \
	"$VIR_ROOT"/tests/debug/*_test.c; do
	name=$(basename "$src" .c)
	dest=$out/tests
	case $src in
	*/isolation/*) dest=$out/tests-isolation ;;
	*/debug/*) dest=$out/tests-debug ;;
	esac
	run_logged "$VIR_LOGDIR/build-$name.log" gcc "${cflags[@]}" -pthread -o "$dest/$name" "$src" ||
		die "building $name failed"
done
run_logged "$VIR_LOGDIR/build-bench.log" gcc "${cflags[@]}" -pthread -o "$out/vir-bench" \
	"$VIR_ROOT/tests/bench/bench.c" || die "building the benchmark failed"
run_logged "$VIR_LOGDIR/build-demo.log" gcc "${cflags[@]}" -o "$out/vir-demo" "$VIR_ROOT/tests/demo.c" ||
	die "building the demo failed"
run_logged "$VIR_LOGDIR/build-demo-qemu.log" gcc "${cflags[@]}" -o "$out/vir-demo-qemu" \
	"$VIR_ROOT/tests/demo_qemu.c" || die "building the QEMU demo failed"
bash "$VIR_ROOT/scripts/build-vfio-selftests.sh" "$out/tests-upstream"

stage "guest: building the test vendor driver (tests/mdev)"
run_logged "$VIR_LOGDIR/build-vir_mdev.log" bash "$VIR_ROOT/scripts/build-module.sh" "$kdir" \
	"$VIR_ROOT/tests/mdev" ||
	die "building tests/mdev/vir_mdev.ko failed"

stage "guest: building initramfs"
root=$out/root
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,tests,tests-isolation,tests-debug,tests-upstream,lib/modules}
cp /bin/busybox "$root/bin/busybox"
cp "$VIR_ROOT/tests/guest/init" "$root/init"
cp "$VIR_ROOT/tests/guest/demo.sh" "$root/demo.sh"
cp "$out/vir-demo" "$out/vir-demo-qemu" "$root/bin/"
cp "$out/vir-bench" "$root/bin/vir-bench"
cp "$out"/tests/* "$root/tests/"
cp "$out"/tests-isolation/* "$root/tests-isolation/"
cp "$out"/tests-debug/* "$root/tests-debug/"
cp "$out"/tests-upstream/* "$root/tests-upstream/"
cp -a "$modroot" "$root/lib/modules/"
rm -f "$root/lib/modules/$release"/{build,source}
mkdir -p "$root/lib/modules/$release/extra"
cp "$VIR_ROOT/tests/mdev/vir_mdev.ko" "$root/lib/modules/$release/extra/"
# Our module as `make install` installs it: lib/modules/<release>/updates, depmod, and
# /etc/modprobe.d/vfio-iommu-rust.conf (tests/module_test.c checks it with kmod's modprobe).
run_logged "$VIR_LOGDIR/guest-install.log" make -s -C "$VIR_ROOT" install KDIR="$kdir" \
	DESTDIR="$root" || die "make install into the initramfs failed"
# kmod's modprobe, with its shared libraries: busybox's ignores softdep lines. It is
# /usr/lib/vir/modprobe, not /sbin/modprobe, which the kernel would run for request_module().
kmod=$(command -v kmod) || die "kmod not found"
mkdir -p "$root/usr/lib/vir"
cp "$kmod" "$root/usr/lib/vir/kmod"
ln -s kmod "$root/usr/lib/vir/modprobe"
for lib in $(ldd "$kmod" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
	cp -L --parents "$lib" "$root"
done
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/initramfs.cpio.gz"
info "guest: $(du -h "$out/initramfs.cpio.gz" | cut -f1) initramfs, $(ls "$out/tests" | wc -l) test binaries"
