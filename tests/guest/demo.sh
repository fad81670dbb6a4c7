#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The guest side of `make demo`: load our backend after type1 and show it serving an edu group.
echo "DEMO: IOMMU: $(ls /sys/class/iommu) (groups: $(ls /sys/kernel/iommu_groups | wc -l))"
echo "DEMO: backends before: type1 refcnt $(cat /sys/module/vfio_iommu_type1/refcnt)"
insmod $VFIO_RUST_KO
echo "DEMO: loaded $VFIO_RUST_KO after type1"
VFIO_BACKEND=rust vir-demo
rmmod vfio_iommu_rust && echo "DEMO: rmmod vfio_iommu_rust: ok"
