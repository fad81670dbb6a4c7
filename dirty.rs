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

use crate::{iova::IovaRange, mm};
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

/// Pages of a mapping marked dirty since the last report, while tracking: page numbers from the
/// mapping's first page, in units of the bitmap page size. (Whether every page is dirty once is a
/// flag of the mapping, `DmaMapping::all_dirty_once`, kept there so that a mapping's tree node
/// fits the 96-byte slab, as type1's `struct vfio_dma` does.)
pub(crate) struct DirtyPages {
    marked: RBTree<u64, ()>,
}

impl DirtyPages {
    /// Nothing dirty.
    pub(crate) fn new() -> Self {
        Self {
            marked: RBTree::new(),
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

/// What a report needs to know of a mapping (implemented by `DmaMapping`, so that dirty tracking
/// does not depend on the mapping type).
pub(crate) trait DirtySource {
    /// The mapping's IOVA range.
    fn range(&self) -> IovaRange;
    /// Whether every page is dirty once, at the next report.
    fn all_dirty_once(&self) -> bool;
    /// Calls `f` for the dirty page numbers in `lo..hi` (in `1 << pgshift` units from the start of
    /// the mapping), in ascending order; a page may be reported more than once.
    fn dirty_pages_in(&mut self, lo: u64, hi: u64, pgshift: u32, f: &mut dyn FnMut(u64));
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
    /// The words are produced a window at a time: a window without a dirty bit is zeroed in user
    /// memory directly (`clear_user`), one with bits is built in `window` and copied.
    pub(crate) fn write(
        &self,
        base: u64,
        mapping: &mut impl DirtySource,
        all: bool,
        window: &mut Window,
    ) -> Result {
        let pgshift = self.pgsize.trailing_zeros();
        let range = mapping.range();
        let nbits = range.size().unwrap_or(u64::MAX) >> pgshift;
        let bit_offset = range.start.checked_sub(base).ok_or(EINVAL)? >> pgshift;
        let first_word = bit_offset / 64;
        let shift = bit_offset % 64;
        let words = (nbits + shift).div_ceil(64);
        let all = all || mapping.all_dirty_once();

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
            let len = n * size_of::<u64>();
            let at = self.user_range(first_word + w, len)?;
            // Pages whose bits fall in this window: [lo, hi), page `p` at window bit
            // `p + shift - w * 64` (never negative: `lo + shift >= w * 64`).
            let lo = (w * 64).saturating_sub(shift);
            let hi = ((w + n as u64) * 64 - shift).min(nbits);
            let to_bit = |page: u64| page + shift - w * 64;
            let bytes = &mut window.bytes[..len];
            let mut touched = false;
            if all && lo < hi {
                bytes.fill(0);
                set_bits(bytes, to_bit(lo), to_bit(hi));
                touched = true;
            } else if !all {
                mapping.dirty_pages_in(lo, hi, pgshift, &mut |page| {
                    if !touched {
                        bytes.fill(0);
                        touched = true;
                    }
                    let bit = to_bit(page);
                    set_bits(bytes, bit, bit + 1);
                });
            }
            if w == 0 && leftover != 0 {
                if !touched {
                    bytes.fill(0);
                    touched = true;
                }
                for (b, l) in bytes[..8].iter_mut().zip(leftover.to_le_bytes()) {
                    *b |= l;
                }
            }
            if touched {
                UserSlice::new(at, len).writer().write_slice(bytes)?;
            } else {
                mm::clear_user(at as u64, len)?;
            }
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

// The user bitmap is an array of `u64` in CPU byte order. On a little-endian CPU bit `n` of it is
// bit `n % 8` of byte `n / 8`, so windows are built byte-wise and ranges of bits are ranges of
// bytes. A big-endian port would have to swap the bytes of each word before copying.
const _: () = assert!(cfg!(target_endian = "little"));

/// Sets bits `first..end` of the little-endian bitmap `bytes`.
pub(crate) fn set_bits(bytes: &mut [u8], first: u64, end: u64) {
    let mut bit = first;
    while bit < end && bit % 8 != 0 {
        bytes[(bit / 8) as usize] |= 1 << (bit % 8);
        bit += 1;
    }
    let full_end = end - end % 8;
    if bit < full_end {
        bytes[(bit / 8) as usize..(full_end / 8) as usize].fill(0xff);
        bit = full_end;
    }
    while bit < end {
        bytes[(bit / 8) as usize] |= 1 << (bit % 8);
        bit += 1;
    }
}

/// Scratch space for [`UserBitmap::write`]: the bytes of one window.
pub(crate) struct Window {
    bytes: KVec<u8>,
}

impl Window {
    /// Allocates a window of [`WINDOW_WORDS`] words.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            bytes: KVec::from_elem(0u8, WINDOW_WORDS * size_of::<u64>(), GFP_KERNEL)?,
        })
    }
}
