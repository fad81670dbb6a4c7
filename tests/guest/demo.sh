#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The guest side of `make demo`: load our backend after type1 and show it serving an edu group;
# with `make demo QEMU=1`, also the host's QEMU live migrating a VM over it.
echo "DEMO: IOMMU: $(ls /sys/class/iommu) (groups: $(ls /sys/kernel/iommu_groups | wc -l))"
echo "DEMO: backends before: type1 refcnt $(cat /sys/module/vfio_iommu_type1/refcnt)"
insmod $VFIO_RUST_KO
echo "DEMO: loaded $VFIO_RUST_KO after type1"
VFIO_BACKEND=rust vir-demo
if [ "${VIR_DEMO_QEMU:-0}" = 1 ]; then
	echo "DEMO: --- the host's QEMU over $(basename $VFIO_RUST_KO .ko): live migration with dirty pages"
	VFIO_BACKEND=rust vir-demo-qemu || echo "DEMO: QEMU demo FAILED"
fi
rmmod vfio_iommu_rust && echo "DEMO: rmmod vfio_iommu_rust: ok"
