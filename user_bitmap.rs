// SPDX-License-Identifier: GPL-2.0

//! The user's dirty bitmaps (`VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP`, unmap with
//! `VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP`): checked as type1 checks them, and written a 4 KiB
//! window at a time from what a mapping tells ([`DirtySource`]; `dirty.rs` has the model).
//!
//! Bitmap layout (type1's `update_user_bitmap`): bit `n` is page `base + n * pgsize`; a mapping's
//! bits are written as whole 64-bit words from the word holding its first bit to the word holding
//! its last. The first word keeps the user's bits below the mapping's first bit (so mappings that
//! share a word merge); the rest of the written words is overwritten. Mappings are written in IOVA
//! order.

use crate::{
    compat,
    dirty::{Chunk, CHUNK_BITS, CHUNK_WORDS},
    iova::IovaRange,
    mm,
};
use core::mem::size_of;
use kernel::prelude::*;

/// The largest user bitmap type1 accepts (`DIRTY_BITMAP_SIZE_MAX`), and the one we report.
pub(crate) const MAX_BITMAP_BYTES: u64 = 256 << 20;
/// Words written to the user per copy: a chunk's.
const WINDOW_WORDS: usize = CHUNK_WORDS;

/// Bytes of a bitmap of `bits` bits, in whole 64-bit words (`DIRTY_BITMAP_BYTES`).
pub(crate) fn bitmap_bytes(bits: u64) -> u64 {
    bits.div_ceil(64) * 8
}

/// A chunk of pages all dirty, written as it is for a window of an all-dirty mapping.
static ALL_DIRTY: Chunk = [!0; CHUNK_WORDS];

/// What a report needs to know of a mapping (implemented by `DmaMapping`, so that dirty tracking
/// does not depend on the mapping type).
pub(crate) trait DirtySource {
    /// The mapping's IOVA range.
    fn range(&self) -> IovaRange;
    /// Whether every page is dirty once, at the next report.
    fn all_dirty_once(&self) -> bool;
    /// Calls `f(base, words)` for the dirty page numbers in `lo..hi` (in `1 << pgshift` units
    /// from the start of the mapping), in runs of 64-bit words: bit `i` of `words[j]` is page
    /// `base + 64 * j + i`, `base` is a multiple of 64, and no bit is set for a page outside
    /// `lo..hi`. Runs of more than one word come first and never overlap; single words after
    /// them may repeat pages of any run.
    fn dirty_runs_in(&mut self, lo: u64, hi: u64, pgshift: u32, f: &mut dyn FnMut(u64, &[u64]));
    /// For pages `lo..lo + CHUNK_BITS` (`lo` a multiple of [`CHUNK_BITS`]): `Some` if only marks
    /// make them dirty (no vendor pin is among them), with the chunk of marks, or `None` in it if
    /// none is marked; `None` if a vendor pin is among them.
    fn whole_chunk(&mut self, lo: u64, pgshift: u32) -> Option<Option<&Chunk>>;
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
    #[unsafe(link_section = ".text.vir_hot")]
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
    #[unsafe(link_section = ".text.vir_hot")]
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
            let word: u64 = compat::user_slice(at, size_of::<u64>()).reader().read()?;
            word & ((1u64 << shift) - 1)
        } else {
            0
        };

        let mut w = 0u64;
        while w < words {
            let n = usize::try_from(words - w).unwrap_or(WINDOW_WORDS).min(WINDOW_WORDS);
            let len = n * size_of::<u64>();
            let at = self.user_range(first_word + w, len)?;
            // Aligned (`shift == 0`, the usual case), a whole window is one chunk of pages: all
            // dirty, or a chunk of marks as it is, or clean, is written with one copy.
            let lo = w * 64;
            if shift == 0 && n == WINDOW_WORDS && lo + CHUNK_BITS <= nbits {
                let whole = if all { Some(Some(&ALL_DIRTY)) } else { mapping.whole_chunk(lo, pgshift) };
                if let Some(chunk) = whole {
                    match chunk {
                        Some(c) => compat::user_slice(at, len).writer().write(c)?,
                        None => mm::clear_user(at as u64, len)?,
                    }
                    w += n as u64;
                    // Every 64 windows (256 KiB of bitmap).
                    if (w / WINDOW_WORDS as u64) % 64 == 0 {
                        mm::cond_resched();
                    }
                    continue;
                }
            }
            // Pages whose bits fall in this window: [lo, hi), page `p` at window bit
            // `p + shift - w * 64` (never negative: `lo + shift >= w * 64`).
            let lo = (w * 64).saturating_sub(shift);
            let hi = ((w + n as u64) * 64 - shift).min(nbits);
            let to_bit = |page: u64| page + shift - w * 64;
            let Some(bytes) = window.bytes()?.get_mut(..len) else {
                return Err(EINVAL);
            };
            let mut touched = false;
            if all && lo < hi {
                only_bits(bytes, to_bit(lo), to_bit(hi));
                touched = true;
            } else if !all {
                // Runs of words of marks (a densely dirtied chunk comes whole). A run's first
                // page may lie below the window (`lo` not a multiple of 64), but none of its set
                // bits do. Aligned (`shift == 0`, the usual case), each word is ORed in place.
                let origin = w * 64;
                mapping.dirty_runs_in(lo, hi, pgshift, &mut |base, words| {
                    if !touched {
                        bytes.fill(0);
                        touched = true;
                    }
                    let at = base + shift;
                    if shift == 0 && at >= origin {
                        let first = ((at - origin) / 64) as usize;
                        if let [bits] = words {
                            or_at(bytes, first, *bits);
                        } else {
                            // A run of a chunk: the mapping's runs come first and never overlap,
                            // so this part of the window is still zero; copied, not ORed.
                            copy_words(bytes, first, words);
                        }
                        return;
                    }
                    for (i, &bits) in words.iter().enumerate() {
                        let at = at + (i as u64) * 64;
                        if at >= origin {
                            or_word(bytes, at - origin, bits);
                        } else if origin - at < 64 {
                            or_word(bytes, 0, bits >> (origin - at));
                        }
                    }
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
                compat::user_slice(at, len).writer().write_slice(bytes)?;
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
    #[unsafe(link_section = ".text.vir_hot")]
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

/// Makes bits `first..end` the only bits set in the little-endian bitmap `bytes`, in one pass.
pub(crate) fn only_bits(bytes: &mut [u8], first: u64, end: u64) {
    // Bits past the end of `bytes` are dropped (callers pass none).
    let end = end.min((bytes.len() as u64).saturating_mul(8));
    let (Ok(head), Ok(tail)) = (usize::try_from(first / 8), usize::try_from(end.div_ceil(8))) else {
        return;
    };
    if first >= end {
        bytes.fill(0);
        return;
    }
    bytes[..head].fill(0);
    bytes[tail..].fill(0);
    // The partial bytes at both ends keep only the bits `set_bits` sets in them.
    bytes[head] = 0;
    bytes[tail - 1] = 0;
    set_bits(bytes, first, end);
}

/// ORs `bits` into the little-endian bitmap `bytes` (whole 64-bit words) with bit 0 at bit `pos`;
/// bits that fall past the last whole word are dropped. Two word operations at most: a dense
/// report places 64 pages per call.
pub(crate) fn or_word(bytes: &mut [u8], pos: u64, bits: u64) {
    let Ok(word) = usize::try_from(pos / 64) else {
        return;
    };
    let shift = (pos % 64) as u32;
    or_at(bytes, word, bits << shift);
    if shift != 0 {
        if let Some(next) = word.checked_add(1) {
            or_at(bytes, next, bits >> (64 - shift));
        }
    }
}

/// Writes `words` over the little-endian bitmap `bytes` from word `first` on; words past its
/// end are dropped.
fn copy_words(bytes: &mut [u8], first: usize, words: &[u64]) {
    for (i, &w) in words.iter().enumerate() {
        let Some(at) = first.checked_add(i).and_then(|word| word.checked_mul(8)) else {
            return;
        };
        let Some(d) = at.checked_add(8).and_then(|end| bytes.get_mut(at..end)) else {
            return;
        };
        d.copy_from_slice(&w.to_le_bytes());
    }
}

/// ORs `value` into word `word` of the little-endian bitmap `bytes`, if it has that word.
fn or_at(bytes: &mut [u8], word: usize, value: u64) {
    if value == 0 {
        return;
    }
    let Some(at) = word.checked_mul(8) else {
        return;
    };
    let Some(b) = at.checked_add(8).and_then(|end| bytes.get_mut(at..end)) else {
        return;
    };
    let mut le = [0u8; 8];
    le.copy_from_slice(b);
    b.copy_from_slice(&(u64::from_le_bytes(le) | value).to_le_bytes());
}

/// Bytes of a window.
const WINDOW_BYTES: usize = WINDOW_WORDS * size_of::<u64>();

/// Scratch space for [`UserBitmap::write`]: the bytes of one window, allocated when a window is
/// first built (a report of clean, whole-chunk or all-dirty windows needs none).
pub(crate) struct Window {
    bytes: Option<KBox<[u8; WINDOW_BYTES]>>,
}

impl Window {
    /// No window yet.
    pub(crate) fn new() -> Self {
        Self { bytes: None }
    }

    /// The window's [`WINDOW_WORDS`] words, allocated on first use. Zeroed in place with one
    /// `memset` (`KVec::from_elem` filled it a byte at a time: 4,096 iterations per report).
    fn bytes(&mut self) -> Result<&mut [u8]> {
        let bytes = match self.bytes.take() {
            Some(b) => b,
            None => KBox::init(compat::init_zeroed(), GFP_KERNEL)?,
        };
        Ok(&mut self.bytes.insert(bytes)[..])
    }
}
