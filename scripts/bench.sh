#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make bench`: build, boot the guest once in bench mode (4 GiB, 520 huge pages), run vir-bench
# (tests/bench/bench.c), and turn its numbers into bench/results/<date>.md and .png.
# Usage: bench.sh [KDIR]
source "$(dirname "$0")/lib.sh"

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
