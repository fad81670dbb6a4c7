#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build the upstream VFIO selftests (tools/testing/selftests/vfio, new in 6.18) for the test guest,
# from the newest cached kernel tree that has them (lib.sh: vfio_selftests_src), unchanged: by their
# own Makefile, with the host's gcc, statically, against that tree's uAPI headers (`make
# headers_install`, cached in $VIR_CACHE/uapi/linux-<version>; 6.12's vfio.h and iommufd.h lack
# what they use), objects in out/vfio-selftests. Linked in: tests/upstream/vir_shim.c (the IOMMU
# mode of tests without mode variants; ioctl() wrapped to report which backend served each
# container). The same binaries run on every kernel line's guest (6.12 has no selftests/vfio).
# Usage: build-vfio-selftests.sh DEST
#   DEST receives the test binaries and SOURCE (the tree's version), or only MISSING with the reason
#   there are none, which the guest reports as a failing test.
source "$(dirname "$0")/lib.sh"

dest=${1:?usage: build-vfio-selftests.sh DEST}
rm -rf "$dest"
mkdir -p "$dest"
src=$(vfio_selftests_src)
if [ -z "$src" ]; then
	# Unpack the 7.3 source setup.sh downloaded (build-kernel.sh would, for KERNEL=7.3).
	if [ -n "$(VIR_KERNEL=7.3 VIR_KERNEL_PKG=linux-source-7.3 kernel_tarball)" ]; then
		stage "guest: unpacking linux-source-7.3 for the upstream VFIO selftests"
		(VIR_KERNEL=7.3 VIR_KERNEL_PKG=linux-source-7.3 && unpack_kernel_src)
		src=$(vfio_selftests_src)
	fi
fi
if [ -z "$src" ] || [ ! -f "$src/tools/testing/selftests/vfio/Makefile" ]; then
	why="no kernel tree with tools/testing/selftests/vfio in $VIR_CACHE/src${src:+ ($src)} (make setup)"
	echo "$why" >"$dest/MISSING"
	info "upstream VFIO selftests: $why"
	exit 0
fi
version=$(make -s -C "$src" kernelversion)

# The tree's uAPI headers, installed once per version (a 30 s step), one installer at a time.
hdr=$VIR_CACHE/uapi/linux-$version
if [ ! -f "$hdr/.vir-complete" ]; then
	exec 8>"$VIR_CACHE/.uapi.lock"
	flock 8
	if [ ! -f "$hdr/.vir-complete" ]; then
		stage "guest: installing the uAPI headers of linux-$version into $hdr"
		rm -rf "$hdr"
		mkdir -p "$hdr"
		run_logged "$VIR_LOGDIR/uapi-headers-$version.log" make -C "$src" O="$hdr/build" ARCH=x86_64 \
			INSTALL_HDR_PATH="$hdr" headers_install || die "make headers_install in $src failed"
		rm -rf "$hdr/build"
		touch "$hdr/.vir-complete"
	fi
	exec 8>&-
fi

stage "guest: building the upstream VFIO selftests of linux-$version"
obj=$VIR_ROOT/out/vfio-selftests
rm -rf "$obj"
mkdir -p "$obj"
run_logged "$VIR_LOGDIR/build-vfio-selftests.log" bash -c "
	set -e
	gcc -Wall -Werror -D_GNU_SOURCE -isystem '$hdr/include' -I'$VIR_ROOT/tests' \
		-c '$VIR_ROOT/tests/upstream/vir_shim.c' -o '$obj/vir_shim.o'
	make -C '$src/tools/testing/selftests/vfio' OUTPUT='$obj' \
		KHDR_INCLUDES='-isystem $hdr/include' USERLDFLAGS='-static -Wl,--wrap=ioctl' \
		LDLIBS='$obj/vir_shim.o -luuid'" || die "building the upstream VFIO selftests failed"
find "$obj" -maxdepth 1 -type f -perm -u+x -exec cp {} "$dest/" \;
echo "linux-$version" >"$dest/SOURCE"
info "upstream VFIO selftests: $(ls "$dest" | grep -c _test) test binaries from $src"
