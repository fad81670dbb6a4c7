#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build a module tree (this repository, or tests/mdev) against a kernel build directory:
#   make -C KDIR [the kernel's make flags] [MAKE ARGS...] M=DIR modules
# Kbuild keeps the objects and generated bindings of a tree built against another kernel when
# the compile commands are the same (two GCC builds of one source tree with different configs),
# which links a module with the other kernel's struct layouts. So DIR remembers its kernel in
# DIR/.vir-kdir and is cleaned first when that changes (or is not known).
# Usage: build-module.sh KDIR DIR [MAKE ARGS...]
source "$(dirname "$0")/lib.sh"

kdir=${1:?usage: build-module.sh KDIR DIR [MAKE ARGS...]}
dir=${2:?usage: build-module.sh KDIR DIR [MAKE ARGS...]}
shift 2
# The 6.12 KUnit suite is listed twice, in kunit_tests.rs and in C (VIR_CASES in bindings/kunit.c):
# a case missing from the C list would never run there, silently.
if [ -f "$dir/kunit_tests.rs" ] && [ -f "$dir/bindings/kunit.c" ]; then
	rs_cases=$(sed -n 's/^crate::compat::kunit_suite!(vfio_iommu_rust: \(.*\));$/\1/p' \
		"$dir/kunit_tests.rs" | tr -d ' ' | tr ',' '\n')
	c_cases=$(sed -n 's/^\tX(\([a-z0-9_]*\))[[:space:]\\]*$/\1/p' "$dir/bindings/kunit.c")
	if [ -z "$rs_cases" ] || [ "$rs_cases" != "$c_cases" ]; then
		echo "build-module.sh: the KUnit cases of kunit_tests.rs and bindings/kunit.c differ:" >&2
		diff <(echo "$rs_cases") <(echo "$c_cases") >&2 || true
		exit 1
	fi
fi
stamp=$dir/.vir-kdir
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$kdir" ]; then
	make -s -C "$kdir" M="$dir" clean
	echo "$kdir" >"$stamp"
fi
exec make -C "$kdir" $(kdir_make_flags "$kdir") "$@" M="$dir" modules
