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
stamp=$dir/.vir-kdir
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$kdir" ]; then
	make -s -C "$kdir" M="$dir" clean
	echo "$kdir" >"$stamp"
fi
exec make -C "$kdir" $(kdir_make_flags "$kdir") "$@" M="$dir" modules
