#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make check-debug` (and `make fuzz`): the debug kernel (KASAN, lockdep, kmemleak, fault
# injection; clang/LLVM 19), our module built against it with clippy, and one guest boot that runs
# the whole suite against both backends, then fault injection, stress and fuzzing against ours,
# then a kmemleak scan. Usage: check-debug.sh [fuzz]
source "$(dirname "$0")/lib.sh"

mode=debug
[ "${1:-}" = fuzz ] && mode=fuzz
export VIR_VARIANT=debug
kdir=$(bash "$VIR_ROOT/scripts/build-kernel.sh")
build_module_and_guest "$kdir" CLIPPY=1
if [ $mode = fuzz ]; then
	export VIR_GUEST_ENV="VIR_FUZZ_CALLS=${VIR_FUZZ_CALLS:-1000000} VIR_FUZZ_SECONDS=${VIR_FUZZ_SECONDS:-2400} ${VIR_FUZZ_SEED:+VIR_FUZZ_SEED=$VIR_FUZZ_SEED}"
else
	export VIR_GUEST_ENV="VIR_STRESS_SECONDS=${VIR_STRESS_SECONDS:-60} VIR_FUZZ_CALLS=${VIR_FUZZ_CALLS:-200000}"
fi
bash "$VIR_ROOT/scripts/run-guest.sh" "$kdir" $mode "${VIR_GUEST_TIMEOUT:-3000}" || true
stage "results"
bash "$VIR_ROOT/scripts/report.sh" "$VIR_ROOT/out/guest/$mode"
