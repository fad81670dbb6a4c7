// SPDX-License-Identifier: GPL-2.0

//! The module parameters, declared in `bindings/helpers.c` (the 6.12 kernel crate has no module
//! parameter support), first with type1's names, defaults and meaning:
//!
//! - `dma_entry_limit` (65535): mappings per container, read when a container is opened;
//! - `allow_unsafe_interrupts` (N): accept groups without interrupt isolation;
//! - `disable_hugepages` (N): map page by page, never with large IOMMU pages;
//!
//! and one of our own:
//!
//! - `serve` (Y): answer the VFIO core's question for a new container; N leaves new containers to
//!   the next backend (type1) without unloading us, and the containers we serve stay ours.

use crate::bindings;

/// The maximum number of mappings of a new container.
pub(crate) fn dma_entry_limit() -> u32 {
    // SAFETY: Reads an `unsigned int` module parameter with `READ_ONCE`.
    unsafe { bindings::vir_param_dma_entry_limit() }
}

/// Whether groups without isolated MSI may be attached.
pub(crate) fn allow_unsafe_interrupts() -> bool {
    // SAFETY: Reads a `bool` module parameter with `READ_ONCE`.
    unsafe { bindings::vir_param_allow_unsafe_interrupts() }
}

/// Whether mappings must use only `PAGE_SIZE` IOMMU pages.
pub(crate) fn disable_hugepages() -> bool {
    // SAFETY: Reads a `bool` module parameter with `READ_ONCE`.
    unsafe { bindings::vir_param_disable_hugepages() }
}

/// Whether new containers are ours to serve.
pub(crate) fn serve() -> bool {
    // SAFETY: Reads a `bool` module parameter with `READ_ONCE`.
    unsafe { bindings::vir_param_serve() }
}
