/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Input to bindgen: the C interfaces vfio-iommu-rust uses that the 6.12 kernel crate does not bind.
 *
 * drivers/vfio/vfio.h is private to drivers/vfio: it is read from the kernel source tree the module is
 * built against (-I$(srctree)/drivers/vfio), so the ops table layout always matches that kernel.
 */
#include <linux/iommu.h>
#include <linux/vfio.h>
#include "vfio.h"
#include "helpers.h"
#include "trace_helpers.h"
#include "debugfs_helpers.h"

/* bindgen cannot evaluate _IO(); the Kbuild rule strips the RUST_CONST_HELPER_ prefix. */
const unsigned int RUST_CONST_HELPER_VFIO_GET_API_VERSION = VFIO_GET_API_VERSION;
const unsigned int RUST_CONST_HELPER_VFIO_CHECK_EXTENSION = VFIO_CHECK_EXTENSION;
const unsigned int RUST_CONST_HELPER_VFIO_SET_IOMMU = VFIO_SET_IOMMU;
const unsigned int RUST_CONST_HELPER_VFIO_IOMMU_GET_INFO = VFIO_IOMMU_GET_INFO;
const unsigned int RUST_CONST_HELPER_VFIO_IOMMU_MAP_DMA = VFIO_IOMMU_MAP_DMA;
const unsigned int RUST_CONST_HELPER_VFIO_IOMMU_UNMAP_DMA = VFIO_IOMMU_UNMAP_DMA;
const unsigned int RUST_CONST_HELPER_VFIO_IOMMU_DIRTY_PAGES = VFIO_IOMMU_DIRTY_PAGES;
/* Not an ioctl, but likewise a macro bindgen cannot evaluate. */
const unsigned long RUST_CONST_HELPER_VFIO_PIN_PAGES_MAX_ENTRIES = VFIO_PIN_PAGES_MAX_ENTRIES;
