#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make demo`: build everything, boot the guest and show our backend at work. Usage: demo.sh [KDIR]
# With VIR_DEMO_QEMU=1 (make demo QEMU=1) the guest also runs the host's QEMU over our backend: a
# live migration of a VM whose mdev device dirties pages.
source "$(dirname "$0")/lib.sh"

kdir=${1:-$(bash "$VIR_ROOT/scripts/build-kernel.sh")}
build_module_and_guest "$kdir"
[ "${VIR_DEMO_QEMU:-0}" = 1 ] && export VIR_GUEST_ENV="${VIR_GUEST_ENV:-} VIR_DEMO_QEMU=1"
bash "$VIR_ROOT/scripts/run-guest.sh" "$kdir" demo 300 || true
grep -q '^DEMO: rmmod vfio_iommu_rust: ok' "$VIR_ROOT/out/guest/demo/console.log" ||
	die "the demo did not complete; see $VIR_ROOT/out/guest/demo/console.log"
if [ "${VIR_DEMO_QEMU:-0}" = 1 ] && ! grep -q '^DEMO: both QEMUs exited' "$VIR_ROOT/out/guest/demo/console.log"; then
	die "the QEMU demo did not complete; see $VIR_ROOT/out/guest/demo/console.log"
fi
stage "demo complete (full guest console: $VIR_ROOT/out/guest/demo/console.log)"
