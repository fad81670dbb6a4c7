// SPDX-License-Identifier: GPL-2.0

//! Dirty tracking operations of a container: `VFIO_IOMMU_DIRTY_PAGES` START, STOP and
//! GET_BITMAP, and the bits an unmap with dirty bitmap writes (`dirty.rs` has the model,
//! `user_bitmap.rs` the bitmap layout).
//!
//! Every bitmap written is counted (`ContainerInner::reports`, shown in debugfs) and emits the
//! `vir_dirty_report` trace event, whose bit count is read back from the user's bitmap only while
//! the event is enabled.
//!
//! Lock order: as in `container.rs`; user bitmaps are written under the container mutex, as in
//! type1 (a fault on them sleeps, which the mutex allows).

use crate::{
    compat,
    container::{Container, ContainerInner},
    dirty,
    dma_tree::Cover,
    iova::IovaRange,
    trace,
    user_bitmap::{self, UserBitmap},
};
use kernel::prelude::*;

impl ContainerInner {
    /// Writes the dirty bits of the mappings a request over `range` covers into `bitmap` (bit 0
    /// = `base`); all of them or an error. `id` is the container's and `unmap` tells an unmap
    /// from `GET_BITMAP`, for the trace event.
    #[unsafe(link_section = ".text.vir_hot")]
    pub(crate) fn write_dirty_bits(
        &mut self,
        id: u64,
        range: &IovaRange,
        cover: Cover,
        base: u64,
        bitmap: &UserBitmap,
        unmap: bool,
    ) -> Result {
        let mut window = user_bitmap::Window::new();
        // Only allocated, and the bitmap only read back, while the trace event is enabled.
        let mut readback = if trace::dirty_report_enabled() {
            Some(KBox::<[u8; READBACK_BYTES]>::init(compat::init_zeroed(), GFP_KERNEL)?)
        } else {
            None
        };
        let pgshift = bitmap.pgsize.trailing_zeros();
        let (mut bytes, mut bits) = (0u64, 0u64);
        let all_mapped = self.non_pinned_groups != 0;
        let failed = self.mappings.find_covered(range, cover, |m| {
            let all = all_mapped && m.iommu_mapped;
            if let Err(e) = bitmap.write(base, m, all, &mut window) {
                return Some(e);
            }
            let first = m.range.start.saturating_sub(base) >> pgshift;
            let nbits = m.size() >> pgshift;
            bytes = bytes.saturating_add(words_spanned(first, nbits).saturating_mul(8));
            if let Some(buf) = readback.as_mut() {
                match bits_set(bitmap, first, nbits, &mut buf[..]) {
                    Ok(n) => bits = bits.saturating_add(n),
                    Err(e) => return Some(e),
                }
            }
            None
        });
        if let Some(e) = failed {
            return Err(e);
        }
        self.reports.record(bytes);
        if readback.is_some() {
            trace::dirty_report(id, range.start, range.size().unwrap_or(u64::MAX), bits, bytes, unmap);
        }
        Ok(())
    }
}

/// Bytes read back from a user bitmap at a time, to count its bits for the trace event.
const READBACK_BYTES: usize = 4096;

/// The 64-bit words a mapping's `nbits` bits from bit `first` are written as (user_bitmap.rs: whole
/// words from the one holding the first bit to the one holding the last).
fn words_spanned(first: u64, nbits: u64) -> u64 {
    (first % 64).saturating_add(nbits).div_ceil(64)
}

/// The bits set among the `nbits` bits from bit `first` of the user's `bitmap`, read back with
/// `buf` (after they were written: a mapping's bits are its own until the next request).
fn bits_set(bitmap: &UserBitmap, first: u64, nbits: u64, buf: &mut [u8]) -> Result<u64> {
    let end = first.checked_add(nbits).ok_or(EINVAL)?;
    let end_word = end.div_ceil(64);
    let mut word = first / 64;
    let mut count = 0u64;
    while word < end_word {
        let n = usize::try_from(end_word - word).unwrap_or(usize::MAX).min(buf.len() / 8);
        let len = n * 8;
        let off = word.checked_mul(8).ok_or(EINVAL)?;
        if off.checked_add(len as u64).ok_or(EINVAL)? > bitmap.size {
            return Err(EINVAL);
        }
        let at = usize::try_from(bitmap.data.checked_add(off).ok_or(EINVAL)?).map_err(|_| EINVAL)?;
        compat::user_slice(at, len).reader().read_slice(&mut buf[..len])?;
        for (w, bytes) in (word..).zip(buf[..len].chunks_exact(8)) {
            let mut le = [0u8; 8];
            le.copy_from_slice(bytes);
            let mut v = u64::from_le_bytes(le);
            // `w * 64` cannot overflow: `w < end_word <= u64::MAX / 64 + 1`.
            let lo = w * 64;
            if first > lo {
                v &= u64::MAX << (first - lo);
            }
            if end - lo < 64 {
                v &= (1u64 << (end - lo)) - 1;
            }
            count += u64::from(v.count_ones());
        }
        word += n as u64;
        crate::mm::cond_resched();
    }
    Ok(count)
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
    #[unsafe(link_section = ".text.vir_hot")]
    pub(crate) fn dirty_bitmap(&self, range: &IovaRange, bitmap: &UserBitmap) -> Result {
        // A mapping of the range is being made or removed: report what is there after that.
        let mut guard = self.lock_settled(Some(range))?;
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
        inner.write_dirty_bits(self.id, range, Cover::StartsIn, range.start, bitmap, false)?;
        inner.mappings.find_covered(range, Cover::StartsIn, |m| {
            m.new_dirty_period();
            None::<()>
        });
        Ok(())
    }
}
