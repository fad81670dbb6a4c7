#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make check`: build (kernel from cache if possible, module with clippy, guest), boot the guest,
# run every test against type1 and against us, report. Usage: check.sh [KDIR]
source "$(dirname "$0")/lib.sh"

kdir=${1:-$(bash "$VIR_ROOT/scripts/build-kernel.sh")}
build_module_and_guest "$kdir" CLIPPY=1
# The differential churn fuzzer's seed (drawn by the guest unless given) and length.
export VIR_GUEST_ENV="${VIR_GUEST_ENV:-} ${VIR_FUZZ_SEED:+VIR_FUZZ_SEED=$VIR_FUZZ_SEED} ${VIR_CHURN_DIFF_STEPS:+VIR_CHURN_DIFF_STEPS=$VIR_CHURN_DIFF_STEPS} ${VIR_CHURN_TRACE:+VIR_CHURN_TRACE=$VIR_CHURN_TRACE}"
# Two boots: the suite, and a guest whose IOMMU has no interrupt remapping (isolation checks).
bash "$VIR_ROOT/scripts/run-guest.sh" "$kdir" check "${VIR_GUEST_TIMEOUT:-900}" || true
bash "$VIR_ROOT/scripts/run-guest.sh" "$kdir" isolation 300 || true
stage "results"
bash "$VIR_ROOT/scripts/report.sh" "$VIR_ROOT/out/guest/check" "$VIR_ROOT/out/guest/isolation"
