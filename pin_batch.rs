// SPDX-License-Identifier: GPL-2.0

//! The buffer a map pins into: the pfns of one batch of GUP, on the stack for small mappings,
//! allocated once per request for larger ones.
//!
//! Lock order: none taken.

use crate::mm::PAGE_SHIFT;
use kernel::prelude::*;

/// Pages pinned per call of GUP: 32 KiB of pfns, as iommufd's pfn reader pins up to 64 KiB of page
/// pointers a call. type1 pins 512 (`VFIO_BATCH_MAX_CAPACITY`); with 512, GUP-fast's share of our
/// 4K MAP+UNMAP profile was a third larger than iommufd's for the same pages (benchmarks.rst).
const BATCH_PAGES: usize = 4096;

/// Pages of a batch small enough to live on the stack (256 bytes).
const SMALL_BATCH_PAGES: usize = 32;

/// The buffer for pinning, once per request: on the stack for small mappings, allocated for the
/// others.
#[expect(
    clippy::large_enum_variant,
    reason = "the inline variant is the point: small mappings pin without allocating"
)]
pub(crate) enum PinBatch {
    /// Mappings of up to [`SMALL_BATCH_PAGES`] pages.
    Small([u64; SMALL_BATCH_PAGES]),
    /// Larger mappings: [`BATCH_PAGES`] pages at a time.
    Large(KVVec<u64>),
}

impl PinBatch {
    /// A buffer for mappings of up to `size` bytes.
    pub(crate) fn new(size: u64) -> Result<Self> {
        let pages = usize::try_from(size >> PAGE_SHIFT).unwrap_or(BATCH_PAGES);
        if pages <= SMALL_BATCH_PAGES {
            return Ok(Self::Small([0; SMALL_BATCH_PAGES]));
        }
        // `kvmalloc`: 32 KiB from the slab when memory is not too fragmented, else vmalloc.
        Ok(Self::Large(KVVec::from_elem(0u64, pages.min(BATCH_PAGES), GFP_KERNEL)?))
    }

    /// The buffer.
    pub(crate) fn pfns(&mut self) -> &mut [u64] {
        match self {
            Self::Small(a) => a,
            Self::Large(v) => v,
        }
    }
}

