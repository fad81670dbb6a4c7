// SPDX-License-Identifier: GPL-2.0

//! vfio-iommu-rust: a VFIO IOMMU backend for the legacy container (`/dev/vfio/vfio`), written in
//! Rust, serving `VFIO_TYPE1_IOMMU` and `VFIO_TYPE1v2_IOMMU` in place of
//! `drivers/vfio/vfio_iommu_type1.c`.
//!
//! The VFIO core asks the most recently registered backend first, so once this module is loaded
//! (after `vfio_iommu_type1`, which `vfio` pulls in) new containers are served by it; containers
//! opened before keep their backend. See `Documentation/` for the design.

// The thin safe layer over C (the only modules with `unsafe` besides `bindings`).
mod bindings;
// What differs between the kernel lines' `kernel` crates, one file per line (chosen by Kbuild).
#[cfg_attr(vir_kernel_line = "7.3", path = "compat/linux_7_3.rs")]
#[cfg_attr(not(vir_kernel_line = "7.3"), path = "compat/linux_6_12.rs")]
mod compat;
mod debugfs;
mod domain;
mod driver;
mod group;
mod mm;
mod params;
mod trace;
mod vendor;

// The backend, safe Rust over that layer.
mod account;
mod attach;
mod backend;
mod container;
mod dirty;
mod dirty_report;
mod dma;
mod dma_map;
mod dma_unmap;
mod dma_tree;
mod inspect;
mod ioctl;
mod iova;
mod map;
mod page_records;
mod pin_batch;
mod pinned_runs;
mod user_bitmap;
mod vendor_pins;

#[cfg(CONFIG_KUNIT)]
mod kunit_tests;

use kernel::prelude::*;

// The functions of `vfio_dma_rw()` with its dirty marks and of the dirty-bitmap report carry
// `#[unsafe(link_section = ".text.vir_hot")]` (their C helpers `__vir_hot`), so that a report
// touches two pages of module text, shared with the `dma_rw` path, rather than a dozen
// (Documentation/architecture.rst, "Code layout"). This opens that section page-aligned: the
// module's inline assembly comes first in this object, and this object first in the link.
// The attribute is `unsafe` because a section's flags must suit what is put in it; this one is
// opened "ax" (allocated, executable), as `.text`, and holds only functions.
core::arch::global_asm!(".pushsection .text.vir_hot,\"ax\",@progbits", ".balign 4096", ".popsection");

compat::vir_module! {
    type: VfioIommuRust,
    name: "vfio_iommu_rust",
    author: "vfio-iommu-rust developers",
    description: "VFIO IOMMU backend implementing the type1 container interface, in Rust",
    license: "GPL",
}

/// The module: its registration with the VFIO core, and its debugfs directory (which outlives the
/// registration, and with it every container's directory: fields drop in order).
struct VfioIommuRust {
    _registration: driver::Registration<container::Container>,
    _debugfs: debugfs::Root,
}

impl kernel::Module for VfioIommuRust {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let debugfs = debugfs::Root::new();
        let registration = driver::Registration::new(module)?;
        pr_info!("registered for VFIO_TYPE1_IOMMU and VFIO_TYPE1v2_IOMMU containers\n");
        Ok(Self {
            _registration: registration,
            _debugfs: debugfs,
        })
    }
}

impl Drop for VfioIommuRust {
    fn drop(&mut self) {
        pr_info!("unregistering\n");
    }
}
