#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make demo`: build everything, boot the guest and show our backend at work. Usage: demo.sh [KDIR]
source "$(dirname "$0")/lib.sh"

kdir=${1:-$(bash "$VIR_ROOT/scripts/build-kernel.sh")}
build_module_and_guest "$kdir"
bash "$VIR_ROOT/scripts/run-guest.sh" "$kdir" demo 300 || true
grep -q '^DEMO: rmmod vfio_iommu_rust: ok' "$VIR_ROOT/out/guest/demo/console.log" ||
	die "the demo did not complete; see $VIR_ROOT/out/guest/demo/console.log"
stage "demo complete (full guest console: $VIR_ROOT/out/guest/demo/console.log)"
