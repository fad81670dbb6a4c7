#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make bench`: build, boot the guest once in bench mode (10 GiB, 520 2 MiB and one 1 GiB huge
# pages), run vir-bench (tests/bench/bench.c), and turn its numbers into bench/results/<date>.md
# and .png.
# Usage: bench.sh [KDIR]
#   VIR_BENCH_ROUNDS=N      measured rounds per backend and workload (default 5)
#   VIR_BENCH_ONLY=a,b      only these workloads (names: Documentation/benchmarks.rst)
#   VIR_BENCH_TIMEOUT=S     limit of the guest run in seconds (default 3000)
source "$(dirname "$0")/lib.sh"

# The two knobs reach vir-bench in the guest as kernel command line variables (run-guest.sh).
for v in VIR_BENCH_ROUNDS VIR_BENCH_ONLY; do
	val=${!v:-}
	[ -n "$val" ] || continue
	[[ $val =~ ^[A-Za-z0-9_,]+$ ]] || die "$v=$val: only letters, digits, _ and , please"
	VIR_GUEST_ENV="${VIR_GUEST_ENV:+$VIR_GUEST_ENV }$v=$val"
done
export VIR_GUEST_ENV

kdir=${1:-$(bash "$VIR_ROOT/scripts/build-kernel.sh")}
build_module_and_guest "$kdir"
bash "$VIR_ROOT/scripts/run-guest.sh" "$kdir" bench "${VIR_BENCH_TIMEOUT:-3000}" || true
tap=$VIR_ROOT/out/guest/bench/tap.log
if ! grep -q '^BENCH-DONE' "$tap"; then
	grep '^BENCH-ERROR' "$tap" >&2 || true
	die "the benchmark did not complete; see $tap and $VIR_ROOT/out/guest/bench/console.log"
fi
stage "results"
mkdir -p "$VIR_ROOT/bench/results"
/usr/bin/python3 "$VIR_ROOT/scripts/bench-report.py" "$tap" "$VIR_ROOT/bench/results" \
	"$(kernel_version)" "$(uname -m)" "$(nproc)" "$(cat "$VIR_ROOT/out/guest/bench/emulator")"
