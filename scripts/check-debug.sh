#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make check-debug` (and `make fuzz`): the debug kernel (KASAN, lockdep, kmemleak, fault
# injection; clang/LLVM 19), our module built against it with clippy, and one guest boot that runs
# the whole suite against our backend, then fault injection, stress and the two fuzzers (ioctls,
# memory churn) against ours, then a kmemleak scan. Usage: check-debug.sh [fuzz]
#
# Environment (both modes): VIR_FUZZ_SEED replays a seed (of a run, or of one churn sequence);
# VIR_CHURN_STEPS and VIR_FUZZ_CALLS bound the churn and the ioctl fuzzer (debug: 100,000 steps and
# 200,000 calls; fuzz: 1,000,000 each). In fuzz mode VIR_FUZZ_SECONDS is the time for the fuzzing,
# shared by the fuzzers that run (VIR_ONLY=churn_test: that one alone); with it the counts only
# bound what is given.
source "$(dirname "$0")/lib.sh"

mode=debug
[ "${1:-}" = fuzz ] && mode=fuzz
export VIR_VARIANT=debug
kdir=$(bash "$VIR_ROOT/scripts/build-kernel.sh")
build_module_and_guest "$kdir" CLIPPY=1
seed=${VIR_FUZZ_SEED:+VIR_FUZZ_SEED=$VIR_FUZZ_SEED}
# Churn knobs (tests/churn.h): VIR_CHURN_TRACE=1 logs every step, VIR_CHURN_EXACT=1 refreshes vmstat
# at every check (for replays), VIR_CHURN_AVOID_TAINT=1 steers clear of a known bug.
trace=
for v in VIR_CHURN_TRACE VIR_CHURN_EXACT VIR_CHURN_AVOID_TAINT VIR_CHURN_MAX_FAILURES; do
	if [ -n "${!v:-}" ]; then trace="$trace $v=${!v}"; fi
done
if [ $mode = fuzz ]; then
	if [ -n "${VIR_FUZZ_SECONDS:-}" ]; then
		calls=${VIR_FUZZ_CALLS:-1000000000}
		steps=${VIR_CHURN_STEPS:-1000000000}
		seconds=$VIR_FUZZ_SECONDS
	else
		calls=${VIR_FUZZ_CALLS:-1000000}
		steps=${VIR_CHURN_STEPS:-1000000}
		# Counts bound the run; the time only guards (about 65 min for 1e6 steps and calls on
		# the reference machine).
		seconds=21600
	fi
	limit=${VIR_GUEST_TIMEOUT:-$((seconds + 900))}
	export VIR_GUEST_ENV="VIR_FUZZ_CALLS=$calls VIR_CHURN_STEPS=$steps VIR_FUZZ_SECONDS=$seconds $seed $trace"
else
	limit=${VIR_GUEST_TIMEOUT:-4500}
	export VIR_GUEST_ENV="VIR_STRESS_SECONDS=${VIR_STRESS_SECONDS:-60} VIR_FUZZ_CALLS=${VIR_FUZZ_CALLS:-200000} VIR_CHURN_STEPS=${VIR_CHURN_STEPS:-100000} $seed $trace"
fi
bash "$VIR_ROOT/scripts/run-guest.sh" "$kdir" $mode "$limit" || true
stage "results"
bash "$VIR_ROOT/scripts/report.sh" "$VIR_ROOT/out/guest/$mode"
