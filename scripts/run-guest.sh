#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Boot the test guest under QEMU: q35 with a virtual Intel IOMMU (interrupt remapping, caching mode,
# 48-bit addresses) and two edu devices, and the host's root filesystem read-only over virtio-9p (the
# tests run the host's own QEMU and DPDK inside the guest from it, by chroot). The suite's guests
# (check, debug) also have two modern virtio-net NICs behind the IOMMU on one QEMU hub, so that what
# one sends the other receives and nothing leaves the guest (tests/dpdk_test.c). The kernel console
# goes to out/guest/<mode>/console.log, the tests' TAP to tap.log beside it, QEMU's own messages to
# qemu.log. TCG by default; VIR_KVM=1 uses KVM.
# Usage: run-guest.sh KDIR MODE [TIMEOUT_SECONDS]
#   MODE: check (the suite), demo (make demo), isolation (the IOMMU without interrupt remapping),
#         bench (make bench), debug (make check-debug, on the debug kernel), fuzz (make fuzz)
# VIR_GUEST_ENV="NAME=VALUE ..." exports variables to the guest's tests; VIR_ONLY="a_test b_test"
# runs only those test binaries (for iterating on a few tests; the leak and boot checks still run).
# VIR_QEMU_ARGS="..." adds QEMU options, split at spaces: "-icount shift=0,sleep=off" makes the
# guest's clock count executed instructions (1 ns each), so that `make bench` reports instructions
# instead of time (Documentation/benchmarks.rst, "Seventh pass").
source "$(dirname "$0")/lib.sh"

kdir=${1:?usage: run-guest.sh KDIR MODE}
mode=${2:?usage: run-guest.sh KDIR MODE}
limit=${3:-600}
out=$VIR_ROOT/out/guest/$mode
mkdir -p "$out"
console=$out/console.log
tap=$out/tap.log
qemulog=$out/qemu.log
intremap=on
[ "$mode" = isolation ] && intremap=off
# The benchmark holds 4 GiB of 4K pages (65,535 mappings of 64 KiB), 1 GiB of THP, 1 GiB of 2M
# hugetlb pages, one 1 GiB hugetlb page (reserved at boot: it needs pdpe1gb, which -cpu max has)
# and, per sample, a fresh 1 GiB of 4K pages. The suite's guest has one 1 GiB huge page, reserved
# at boot, for the 1G hugetlb variants of the upstream vfio_dma_mapping_test, and 2 GiB more RAM
# than the others for it.
mem=2G
bootargs=
if [ "$mode" = bench ]; then
	mem=10G
	bootargs="hugepagesz=1G hugepages=1"
elif [ "$mode" = check ]; then
	mem=4G
	bootargs="hugepagesz=1G hugepages=1"
fi
# The CPU model (VIR_CPU overrides). For the benchmark, without the fast short string CPUID bits
# that QEMU >= 8.1 gives TCG's "max": with them the kernel copies and clears user memory with
# rep movsb/stosb, which TCG emulates a byte at a time, and every user copy of a bitmap is timed
# as that emulation (Documentation/benchmarks.rst).
cpu=max
[ "$mode" = bench ] && cpu=max,fsrm=off,fsrs=off,fzrm=off,fsrc=off
cpu=${VIR_CPU:-$cpu}
printf '%s, -cpu %s%s\n' "$(qemu-system-x86_64 --version | head -n1)" "$cpu" "${VIR_QEMU_ARGS:+, $VIR_QEMU_ARGS}" >"$out/emulator"
: >"$console"
: >"$tap"

accel=tcg
[ "${VIR_KVM:-0}" = 1 ] && accel=kvm
# The NICs for DPDK, found by their id (1af4:1041). With a -netdev, QEMU adds no default NIC (an
# e1000e at 00:02.0 that the guest has no driver for), so in these boots the edu devices are at
# 00:02.0 and 00:03.0; the tests find every device by its id.
nics=()
case $mode in
check | debug)
	for i in 0 1; do
		nics+=(-netdev "hubport,id=vnet$i,hubid=0"
			-device "virtio-net-pci,netdev=vnet$i,mac=52:54:00:00:00:1$i,disable-legacy=on,iommu_platform=on,ats=on")
	done
	;;
esac
cmd=(qemu-system-x86_64
	-M q35,kernel-irqchip=split -accel "$accel" -cpu "$cpu" -smp 2 -m "$mem" ${VIR_QEMU_ARGS:-}
	-device intel-iommu,intremap=$intremap,caching-mode=on,aw-bits=48
	-device edu -device edu
	-virtfs local,path=/,mount_tag=host,security_model=none,readonly=on
	"${nics[@]}"
	-display none -monitor none -no-reboot
	-serial "file:$console" -serial "file:$tap"
	-kernel "$kdir/arch/x86/boot/bzImage" -initrd "$VIR_ROOT/out/guest/initramfs.cpio.gz"
	-append "console=ttyS0 intel_iommu=on oops=panic panic=-1 ${bootargs:+$bootargs }vir.mode=$mode $(for v in ${VIR_GUEST_ENV:-} ${VIR_ONLY:+VIR_ONLY=${VIR_ONLY// /,}}; do printf 'vir.env.%s ' "$v"; done)")

# One guest at a time on this machine (2 cores): a second run waits for the first.
exec 9>"${TMPDIR:-/tmp}/vir-guest.lock"
if ! flock -n 9; then
	info "guest: another guest is running; waiting for it"
	flock 9
fi
stage "guest: booting ($accel, mode $mode, limit ${limit}s; console: $console)"
start=$(date +%s)
set +e
if [ "$mode" = demo ]; then
	timeout "$limit" "${cmd[@]}" 2>"$qemulog" &
	qpid=$!
	# Show the demo's own lines (and the kernel's about our module) as they come.
	tail -n +1 -f --pid=$qpid "$console" 2>/dev/null |
		grep --line-buffered -E '^(VIR|DEMO)|vfio_iommu_rust|DMAR: Intel|Oops|BUG|WARNING' |
		sed -u 's/^/    guest| /' &
	wait $qpid
	rc=$?
	sleep 0.5
else
	timeout "$limit" "${cmd[@]}" 2>"$qemulog"
	rc=$?
fi
set -e
el=$(( $(date +%s) - start ))
if [ $rc = 124 ]; then
	printf 'error: guest timed out after %ss; last console lines:\n' "$limit" >&2
	tail -n 30 "$console" | sed 's/^/    | /' >&2
fi
if [ $rc != 0 ] && [ -s "$qemulog" ]; then
	printf 'QEMU said (%s):\n' "$qemulog" >&2
	tail -n 10 "$qemulog" | sed 's/^/    | /' >&2
fi
info "guest: exited with status $rc after ${el}s"
exit $rc
