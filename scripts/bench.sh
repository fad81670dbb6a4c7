#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make bench`: build, boot the guest once in bench mode (10 GiB, 520 2 MiB and one 1 GiB huge
# pages), run vir-bench (tests/bench/bench.c), and turn its numbers into bench/results/<date>.md
# and .png.
# Usage: bench.sh [KDIR]
#   VIR_BENCH_ROUNDS=N      measured rounds per backend and workload (default 5)
#   VIR_BENCH_ONLY=a,b      only these workloads (names: Documentation/benchmarks.rst)
#   VIR_BENCH_TIMEOUT=S     limit of the guest run in seconds (default 3000)
#   VIR_BENCH_ICOUNT=0      no second boot for the instruction counts (below; none either when
#                           VIR_QEMU_ARGS has -icount: every time is then a count)
# When the dense dirty workload runs, a second, shorter boot runs it alone under QEMU's -icount
# (the guest clock counts executed instructions, 1 ns each; 2 rounds), and the table adds its
# instruction counts below the wall-clock ones (Documentation/benchmarks.rst, "Instructions").
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
guest=$VIR_ROOT/out/guest/bench
# bench_boot DEST: one bench boot; its TAP is copied to DEST (the next boot starts a new one).
bench_boot() {
	bash "$VIR_ROOT/scripts/run-guest.sh" "$kdir" bench "${VIR_BENCH_TIMEOUT:-3000}" || true
	if ! grep -q '^BENCH-DONE' "$guest/tap.log"; then
		grep '^BENCH-ERROR' "$guest/tap.log" >&2 || true
		die "the benchmark did not complete; see $guest/tap.log and $guest/console.log"
	fi
	cp "$guest/tap.log" "$1"
}
bench_boot "$guest/tap-wallclock.log"
emulator=$(cat "$guest/emulator")
icount_tap=()
# Not when the first boot ran under -icount already (VIR_QEMU_ARGS): its times are the counts.
if [ "${VIR_BENCH_ICOUNT:-1}" != 0 ] && [[ ${VIR_QEMU_ARGS:-} != *-icount* ]] &&
	grep -q '^BENCH dirty_dense_256m_get_bitmap ' "$guest/tap-wallclock.log"; then
	stage "instructions: the dense dirty workload alone under -icount"
	VIR_GUEST_ENV="VIR_BENCH_ROUNDS=2 VIR_BENCH_ONLY=dirty_dense_256m" \
		VIR_QEMU_ARGS="${VIR_QEMU_ARGS:+$VIR_QEMU_ARGS }-icount shift=0,sleep=off" \
		bench_boot "$guest/tap-icount.log"
	icount_tap=("$guest/tap-icount.log")
fi
stage "results"
mkdir -p "$VIR_ROOT/bench/results"
/usr/bin/python3 "$VIR_ROOT/scripts/bench-report.py" "$guest/tap-wallclock.log" \
	"$VIR_ROOT/bench/results" "$(kernel_version)" "$(uname -m)" "$(nproc)" "$emulator" \
	"${icount_tap[@]}"
