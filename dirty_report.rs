// SPDX-License-Identifier: GPL-2.0

//! Dirty tracking operations of a container: `VFIO_IOMMU_DIRTY_PAGES` START, STOP and
//! GET_BITMAP, and the bits an unmap with dirty bitmap writes (`dirty.rs` has the model and the
//! bitmap layout).
//!
//! Lock order: as in `container.rs`; user bitmaps are written under the container mutex, as in
//! type1 (a fault on them sleeps, which the mutex allows).

use crate::{
    container::{Container, ContainerInner},
    dirty::{self, UserBitmap},
    dma_tree::Cover,
    iova::IovaRange,
};
use kernel::prelude::*;

impl ContainerInner {
    /// Writes the dirty bits of the mappings a request over `range` covers into `bitmap` (bit 0
    /// = `base`); all of them or an error.
    pub(crate) fn write_dirty_bits(&mut self, range: &IovaRange, cover: Cover, base: u64, bitmap: &UserBitmap) -> Result {
        let mut window = dirty::Window::new()?;
        let all_mapped = self.non_pinned_groups != 0;
        let failed = self.mappings.find_covered(range, cover, |m| {
            let all = all_mapped && m.iommu_mapped;
            bitmap.write(base, m, all, &mut window).err()
        });
        failed.map_or(Ok(()), Err)
    }
}

impl Container {
    /// Starts (`on`) or stops dirty page tracking; both are idempotent. Starting fails with
    /// `EINVAL` if a mapping has more pages than a bitmap may describe.
    pub(crate) fn set_dirty_tracking(&self, on: bool) -> Result {
        let mut inner = self.lock_live()?;
        if inner.dirty_tracking == on {
            return Ok(());
        }
        if on {
            let shift = inner.min_pgsize().trailing_zeros();
            if inner
                .mappings
                .iter()
                .any(|m| m.size() >> shift > dirty::MAX_MAPPING_PAGES)
            {
                return Err(EINVAL);
            }
        }
        for m in inner.mappings.iter_mut() {
            m.clear_dirty();
            crate::mm::cond_resched();
        }
        inner.dirty_tracking = on;
        Ok(())
    }

    /// Serves `VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP` for `range`: writes the dirty bits of every
    /// mapping in it to `bitmap` and starts a new reporting period for them, only if all bits
    /// were written (type1 loses the bits of the mappings before a fault).
    pub(crate) fn dirty_bitmap(&self, range: &IovaRange, bitmap: &UserBitmap) -> Result {
        let mut guard = self.lock_live()?;
        let inner = &mut *guard;
        let pgsize = inner.min_pgsize();
        if bitmap.pgsize != pgsize || range.start & (pgsize - 1) != 0 {
            return Err(EINVAL);
        }
        match range.size() {
            Some(size) if size & (pgsize - 1) == 0 => (),
            _ => return Err(EINVAL),
        }
        if !inner.dirty_tracking {
            return Err(EINVAL);
        }
        if inner.mappings.bisects(range) {
            return Err(EINVAL);
        }
        inner.write_dirty_bits(range, Cover::StartsIn, range.start, bitmap)?;
        inner.mappings.find_covered(range, Cover::StartsIn, |m| {
            m.clear_dirty();
            None::<()>
        });
        Ok(())
    }
}
