// SPDX-License-Identifier: GPL-2.0

//! Dirty page tracking (`VFIO_IOMMU_DIRTY_PAGES`, unmap with `VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP`)
//! with type1's model and bitmap layout, without type1's per-mapping kernel bitmaps.
//!
//! What is dirty (type1, 6.12):
//! - every page of a pinned (IOMMU-mapped) mapping, on every report, while any IOMMU group of the
//!   container has not declared that it only dirties pages it pins (a plain vfio-pci device can
//!   write anywhere it is mapped);
//! - every page of every mapping once after such a group leaves while tracking;
//! - otherwise, pages pinned by a vendor driver (while pinned and once after), and pages written
//!   with `vfio_dma_rw()`, since the last report.
//!
//! type1 keeps a bitmap per mapping, allocated for all mappings at START (up to 256 MiB each).
//! Here a mapping keeps only the page numbers marked since the last report (a red-black tree,
//! empty unless vendor drivers write); pinned pages come from the mapping's vendor pins, and "all
//! dirty" is a flag. Reports are produced into the user's bitmap through an 8 KiB window, so kernel
//! memory grows with the number of dirtied pages, not with the size of the mappings.
//!
//! Bitmap layout (type1's `update_user_bitmap`): bit `n` is page `base + n * pgsize`; a mapping's
//! bits are written as whole 64-bit words from the word holding its first bit to the word holding
//! its last. The first word keeps the user's bits below the mapping's first bit (so mappings that
//! share a word merge); the rest of the written words is overwritten. Mappings are written in IOVA
//! order.

use crate::{
    dma::DmaMapping,
    mm,
};
use core::mem::size_of;
use kernel::{
    prelude::*,
    rbtree::RBTree,
    uaccess::UserSlice,
};

/// The largest user bitmap type1 accepts (`DIRTY_BITMAP_SIZE_MAX`), and the one we report.
pub(crate) const MAX_BITMAP_BYTES: u64 = 256 << 20;
/// The most pages one mapping may have while tracking (`DIRTY_BITMAP_PAGES_MAX`, `INT_MAX`).
pub(crate) const MAX_MAPPING_PAGES: u64 = i32::MAX as u64;
/// Words written to the user per copy.
const WINDOW_WORDS: usize = 512;

/// Bytes of a bitmap of `bits` bits, in whole 64-bit words (`DIRTY_BITMAP_BYTES`).
pub(crate) fn bitmap_bytes(bits: u64) -> u64 {
    bits.div_ceil(64) * 8
}

/// Pages of a mapping marked dirty since the last report, while tracking.
pub(crate) struct DirtyPages {
    /// Page numbers (from the mapping's first page, in units of the bitmap page size).
    marked: RBTree<u64, ()>,
    /// Every page is dirty once, at the next report.
    pub(crate) all_once: bool,
}

impl DirtyPages {
    /// Nothing dirty.
    pub(crate) fn new() -> Self {
        Self {
            marked: RBTree::new(),
            all_once: false,
        }
    }

    /// Marks pages `first..=last`.
    pub(crate) fn mark(&mut self, first: u64, last: u64) -> Result {
        for p in first..=last {
            if self.marked.get(&p).is_none() {
                self.marked.try_create_and_insert(p, (), GFP_KERNEL)?;
            }
        }
        Ok(())
    }

    /// Forgets what was reported.
    pub(crate) fn clear(&mut self) {
        self.marked = RBTree::new();
        self.all_once = false;
    }

    /// Calls `f` for every marked page in `lo..hi`, in order.
    pub(crate) fn for_each_in(&mut self, lo: u64, hi: u64, f: &mut impl FnMut(u64)) {
        let mut cursor = self.marked.cursor_lower_bound(&lo);
        while let Some(c) = cursor {
            let (&p, ()) = c.current();
            if p >= hi {
                break;
            }
            f(p);
            cursor = c.move_next();
        }
    }
}

/// A user bitmap of `VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP` or of an unmap.
pub(crate) struct UserBitmap {
    /// Bytes per bit.
    pub(crate) pgsize: u64,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// Its user address.
    pub(crate) data: u64,
}

impl UserBitmap {
    /// Checks the bitmap for a range of `range_size` bytes as type1 does before taking its lock:
    /// the memory could be user memory, and its size is non-zero, at most
    /// [`MAX_BITMAP_BYTES`] and enough for the range's pages (`EINVAL` otherwise). A page size that
    /// is zero or not a power of two is refused too.
    pub(crate) fn validate(&self, range_size: u64) -> Result {
        if !mm::user_range_ok(self.data, self.size) || !self.pgsize.is_power_of_two() {
            return Err(EINVAL);
        }
        let pages = range_size >> self.pgsize.trailing_zeros();
        if pages == 0 || self.size == 0 || self.size > MAX_BITMAP_BYTES || self.size < bitmap_bytes(pages) {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Writes `mapping`'s bits, with bit 0 standing for `base`; every page is dirty if `all`.
    ///
    /// `window` is scratch space of [`WINDOW_WORDS`] words.
    pub(crate) fn write(
        &self,
        base: u64,
        mapping: &mut DmaMapping,
        all: bool,
        window: &mut Window,
    ) -> Result {
        let pgshift = self.pgsize.trailing_zeros();
        let nbits = mapping.size() >> pgshift;
        let bit_offset = (mapping.range.start - base) >> pgshift;
        let first_word = bit_offset / 64;
        let shift = bit_offset % 64;
        let words = (nbits + shift).div_ceil(64);
        let all = all || mapping.dirty.all_once;

        // The user's bits below ours in the first word are kept.
        let leftover = if shift != 0 {
            let at = self.user_range(first_word, size_of::<u64>())?;
            let word: u64 = UserSlice::new(at, size_of::<u64>()).reader().read()?;
            word & ((1u64 << shift) - 1)
        } else {
            0
        };

        let mut w = 0u64;
        while w < words {
            let n = usize::try_from(words - w).unwrap_or(WINDOW_WORDS).min(WINDOW_WORDS);
            let buf = &mut window.words[..n];
            buf.fill(0);
            // Pages whose bits fall in this window: [lo, hi).
            let lo = (w * 64).saturating_sub(shift);
            let hi = ((w + n as u64) * 64 - shift).min(nbits);
            let mut set = |page: u64| {
                let bit = page + shift - w * 64;
                buf[(bit / 64) as usize] |= 1u64 << (bit % 64);
            };
            if all {
                for p in lo..hi {
                    set(p);
                }
            } else {
                mapping.dirty_pages_in(lo, hi, pgshift, &mut set);
            }
            if w == 0 {
                buf[0] |= leftover;
            }
            let len = n * size_of::<u64>();
            let at = self.user_range(first_word + w, len)?;
            for (word, bytes) in buf.iter().zip(window.bytes.chunks_exact_mut(8)) {
                bytes.copy_from_slice(&word.to_ne_bytes());
            }
            UserSlice::new(at, len).writer().write_slice(&window.bytes[..len])?;
            w += n as u64;
            mm::cond_resched();
        }
        Ok(())
    }

    /// The user address of `len` bytes from word `word` of the bitmap; `EINVAL` if they are not
    /// all inside it (never the case for mappings inside the validated range).
    fn user_range(&self, word: u64, len: usize) -> Result<usize> {
        let off = word.checked_mul(8).ok_or(EINVAL)?;
        let end = off.checked_add(len as u64).ok_or(EINVAL)?;
        if end > self.size {
            return Err(EINVAL);
        }
        usize::try_from(self.data + off).map_err(|_| EINVAL)
    }
}

/// Scratch space for [`UserBitmap::write`]: the words of a window and their bytes.
pub(crate) struct Window {
    words: KVec<u64>,
    bytes: KVec<u8>,
}

impl Window {
    /// Allocates a window of [`WINDOW_WORDS`] words.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            words: KVec::from_elem(0u64, WINDOW_WORDS, GFP_KERNEL)?,
            bytes: KVec::from_elem(0u8, WINDOW_WORDS * size_of::<u64>(), GFP_KERNEL)?,
        })
    }
}
