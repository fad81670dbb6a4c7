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
//! Here a mapping keeps only the pages marked since the last report (unpinned by, or written with
//! `vfio_dma_rw()` for, vendor drivers) in a sparse bitmap ([`DirtyPages`]): 4 KiB chunks of bits,
//! each allocated on the first mark in its 32,768 pages and freed at the report, so nothing is
//! allocated unless vendor drivers dirty pages, little when they dirty few, and no more than
//! type1's bitmap when they dirty a large mapping densely. Pinned pages come from the mapping's
//! vendor pins, and "all dirty" is a flag. Reports are produced into the user's bitmap through a
//! 4 KiB window, so kernel memory grows with the spread of the dirtied pages, not with the size
//! of the mappings.
//!
//! Bitmap layout (type1's `update_user_bitmap`): bit `n` is page `base + n * pgsize`; a mapping's
//! bits are written as whole 64-bit words from the word holding its first bit to the word holding
//! its last. The first word keeps the user's bits below the mapping's first bit (so mappings that
//! share a word merge); the rest of the written words is overwritten. Mappings are written in IOVA
//! order.

use crate::{
    compat::{self, Zeroable},
    iova::IovaRange,
    mm,
};
use core::mem::size_of;
use kernel::prelude::*;

/// The largest user bitmap type1 accepts (`DIRTY_BITMAP_SIZE_MAX`), and the one we report.
pub(crate) const MAX_BITMAP_BYTES: u64 = 256 << 20;
/// The most pages one mapping may have while tracking (`DIRTY_BITMAP_PAGES_MAX`, `INT_MAX`).
pub(crate) const MAX_MAPPING_PAGES: u64 = i32::MAX as u64;
/// Words written to the user per copy: a chunk's.
const WINDOW_WORDS: usize = CHUNK_WORDS;

/// Bytes of a bitmap of `bits` bits, in whole 64-bit words (`DIRTY_BITMAP_BYTES`).
pub(crate) fn bitmap_bytes(bits: u64) -> u64 {
    bits.div_ceil(64) * 8
}

/// Pages per chunk: a chunk is one 4 KiB bitmap (128 MiB of memory in 4 KiB pages).
pub(crate) const CHUNK_BITS: u64 = 1 << CHUNK_SHIFT;
const CHUNK_SHIFT: u32 = 15;
/// 64-bit words per chunk.
const CHUNK_WORDS: usize = (CHUNK_BITS / 64) as usize;
/// Chunks per leaf table and leaf tables per middle table (512-byte tables).
const TABLE_SHIFT: u32 = 6;
const TABLE_LEN: usize = 1 << TABLE_SHIFT;
/// Middle tables in the root (a 128-byte table).
const ROOT_LEN: usize = 16;
/// The largest page number that can be marked: the tables index `ROOT_LEN * TABLE_LEN *
/// TABLE_LEN` chunks, 2^31 pages.
pub(crate) const MAX_PAGE: u64 = ((ROOT_LEN * TABLE_LEN * TABLE_LEN) as u64) * CHUNK_BITS - 1;
// Every page of a trackable mapping can be marked.
const _: () = assert!(MAX_MAPPING_PAGES <= MAX_PAGE + 1);

/// One chunk's bits: bit `n % 64` of word `n / 64` is the chunk's page `n`.
pub(crate) type Chunk = [u64; CHUNK_WORDS];

/// A chunk of pages all dirty, written as it is for a window of an all-dirty mapping.
static ALL_DIRTY: Chunk = [!0; CHUNK_WORDS];
type Leaf = [Option<KBox<Chunk>>; TABLE_LEN];
type Middle = [Option<KBox<Leaf>>; TABLE_LEN];
type Root = [Option<KBox<Middle>>; ROOT_LEN];

/// Where chunk `c` (at most `MAX_PAGE >> CHUNK_SHIFT`) is: root, middle and leaf slots.
fn slots(c: u64) -> (usize, usize, usize) {
    // The remainders keep every index in range whatever `c` is (callers pass chunks of pages up
    // to `MAX_PAGE`, for which they change nothing).
    let c = c as usize;
    (
        (c >> (2 * TABLE_SHIFT)) % ROOT_LEN,
        (c >> TABLE_SHIFT) % TABLE_LEN,
        c % TABLE_LEN,
    )
}

/// The table or chunk in `slot`, allocated zeroed (and charged to the caller's memory cgroup) if
/// there is none yet.
fn get_or_alloc<T: Zeroable>(slot: &mut Option<KBox<T>>) -> Result<&mut T> {
    let b = match slot.take() {
        Some(b) => b,
        None => KBox::init(compat::init_zeroed(), GFP_KERNEL_ACCOUNT)?,
    };
    Ok(slot.insert(b))
}

/// Pages of a mapping marked dirty since the last report, while tracking: page numbers from the
/// mapping's first page, in units of the bitmap page size. (Whether every page is dirty once is a
/// flag of the mapping, `DmaMapping::all_dirty_once`, kept there so that a mapping's tree node
/// fits the 96-byte slab, as type1's `struct vfio_dma` does.)
///
/// A sparse bitmap: 4 KiB chunks of 32,768 bits, allocated zeroed on the first mark in their
/// range, found through a three-level table (a 16-entry root, 64-entry middle and leaf tables)
/// that is itself allocated on demand; nothing is allocated until something is marked. Marking
/// is O(1) per chunk touched (three indexings) and allocates only for a chunk not present yet;
/// a range is set a word at a time. All of it is charged to the memory cgroup of the task that
/// marks (`GFP_KERNEL_ACCOUNT`), and freed by [`Self::clear`] (or when dropped), a chunk at a
/// time with rescheduling points.
pub(crate) struct DirtyPages {
    root: Option<KBox<Root>>,
}

impl DirtyPages {
    /// Nothing dirty; allocates nothing.
    pub(crate) fn new() -> Self {
        Self { root: None }
    }

    /// Marks pages `first..=last` (nothing if `first > last`). Fails with `ENOMEM` if a chunk or
    /// table cannot be allocated (the pages before it are marked) and with `EINVAL`, marking
    /// nothing, if `last` is above [`MAX_PAGE`].
    pub(crate) fn mark(&mut self, first: u64, last: u64) -> Result {
        if first > last {
            return Ok(());
        }
        if last > MAX_PAGE {
            return Err(EINVAL);
        }
        let root = get_or_alloc(&mut self.root)?;
        let (first_chunk, last_chunk) = (first >> CHUNK_SHIFT, last >> CHUNK_SHIFT);
        let mut c = first_chunk;
        loop {
            let (r, m, l) = slots(c);
            let middle = get_or_alloc(&mut root[r])?;
            let leaf = get_or_alloc(&mut middle[m])?;
            let chunk = get_or_alloc(&mut leaf[l])?;
            // Bits `lo..=hi` of this chunk.
            let lo = if c == first_chunk { first % CHUNK_BITS } else { 0 };
            let hi = if c == last_chunk { last % CHUNK_BITS } else { CHUNK_BITS - 1 };
            set_chunk_bits(chunk, lo as usize, hi as usize);
            if c >= last_chunk {
                return Ok(());
            }
            c += 1;
            // A long range (up to 2^31 pages) allocates and fills a chunk per step.
            mm::cond_resched();
        }
    }

    /// Forgets every mark and frees the chunks and tables, rescheduling between chunks.
    ///
    /// Freeing at every report rather than zeroing the chunks for reuse: a chunk dirtied again
    /// costs one allocation more than zeroing it would (the zeroing is the same, and about what
    /// the report's walk of its 512 words costs), and nothing stays allocated after the last
    /// report or `STOP`, which the callers cannot tell from the other clears.
    pub(crate) fn clear(&mut self) {
        let Some(mut root) = self.root.take() else {
            return;
        };
        for mut middle in root.iter_mut().filter_map(Option::take) {
            for mut leaf in middle.iter_mut().filter_map(Option::take) {
                for chunk in leaf.iter_mut().filter_map(Option::take) {
                    drop(chunk);
                }
                // A leaf's chunks at a time (up to 64, 256 KiB).
                mm::cond_resched();
            }
        }
    }

    /// Calls `f` for every marked page in `lo..hi`, in ascending order. Absent tables and chunks
    /// are skipped whole, and zero words one compare each: the cost follows the chunks present
    /// and the pages marked, not the size of `lo..hi`.
    pub(crate) fn for_each_in(&mut self, lo: u64, hi: u64, f: &mut impl FnMut(u64)) {
        self.for_each_word_in(lo, hi, &mut |base, mut bits| {
            while bits != 0 {
                f(base + u64::from(bits.trailing_zeros()));
                bits &= bits - 1;
            }
        });
    }

    /// Calls `f(base, bits)` for every word of marks in `lo..hi` that has one, in ascending order:
    /// bit `i` of `bits` is page `base + i` (`base` a multiple of 64), and bits of pages outside
    /// `lo..hi` are clear.
    pub(crate) fn for_each_word_in(&mut self, lo: u64, hi: u64, f: &mut impl FnMut(u64, u64)) {
        self.for_each_run_in(lo, hi, &mut |base, words| {
            for (j, &bits) in (0u64..).zip(words) {
                if bits != 0 {
                    f(base + j * 64, bits);
                }
            }
        });
    }

    /// Calls `f(base, words)` for the words of marks in `lo..hi` of every chunk present, in
    /// ascending order: bit `i` of `words[j]` is page `base + 64 * j + i` (`base` a multiple of
    /// 64), and bits of pages outside `lo..hi` are clear. A densely marked range comes as slices
    /// of whole chunks (512 words each), for reports to copy rather than visit word by word; zero
    /// words are included.
    pub(crate) fn for_each_run_in(&mut self, lo: u64, hi: u64, f: &mut impl FnMut(u64, &[u64])) {
        let Some(root) = self.root.as_deref() else {
            return;
        };
        let hi = hi.min(MAX_PAGE + 1);
        if lo >= hi {
            return;
        }
        let last_chunk = (hi - 1) >> CHUNK_SHIFT;
        let mut c = lo >> CHUNK_SHIFT;
        // `c <= last_chunk <= MAX_PAGE >> CHUNK_SHIFT` (2^16 - 1): the steps below cannot overflow.
        while c <= last_chunk {
            let (r, m, l) = slots(c);
            let Some(middle) = root[r].as_deref() else {
                c = (c | ((1 << (2 * TABLE_SHIFT)) - 1)) + 1;
                continue;
            };
            let Some(leaf) = middle[m].as_deref() else {
                c = (c | ((1 << TABLE_SHIFT) - 1)) + 1;
                continue;
            };
            if let Some(chunk) = leaf[l].as_deref() {
                let base = c << CHUNK_SHIFT;
                // Bits `from..to` of the chunk are in `lo..hi` (`lo < base + CHUNK_BITS`, `hi > base`).
                let from = lo.saturating_sub(base) as usize;
                let to = (hi - base).min(CHUNK_BITS) as usize;
                chunk_runs(chunk, from, to, &mut |w, words| f(base + (w as u64) * 64, words));
            }
            c += 1;
        }
    }

    /// The marks of pages `lo..lo + CHUNK_BITS` if they are one chunk (`lo` a multiple of
    /// [`CHUNK_BITS`]): `None` if nothing is marked there.
    pub(crate) fn chunk_at(&self, lo: u64) -> Option<&Chunk> {
        if lo % CHUNK_BITS != 0 || lo > MAX_PAGE {
            return None;
        }
        let (r, m, l) = slots(lo >> CHUNK_SHIFT);
        self.root.as_deref()?[r].as_deref()?[m].as_deref()?[l].as_deref()
    }

    /// The bytes allocated: tables and chunks (not counting allocator rounding, which the sizes,
    /// 128 bytes, 512 bytes and 4 KiB, do not need).
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn footprint(&self) -> usize {
        let Some(root) = self.root.as_deref() else {
            return 0;
        };
        let mut bytes = size_of::<Root>();
        for middle in root.iter().flatten() {
            bytes += size_of::<Middle>();
            for leaf in middle.iter().flatten() {
                bytes += size_of::<Leaf>() + leaf.iter().flatten().count() * size_of::<Chunk>();
            }
        }
        bytes
    }
}

impl Drop for DirtyPages {
    fn drop(&mut self) {
        // A mapping unmapped (or a container released) while tracking: free with rescheduling.
        self.clear();
    }
}

/// Sets bits `lo..=hi` (both below [`CHUNK_BITS`]) of `chunk`, whole words at a time.
fn set_chunk_bits(chunk: &mut Chunk, lo: usize, hi: usize) {
    let (first, last) = (lo / 64, hi / 64);
    let low_mask = !0u64 << (lo % 64);
    let high_mask = !0u64 >> (63 - hi % 64);
    let Some(words) = chunk.get_mut(first..=last) else {
        return;
    };
    match words {
        [] => {}
        [only] => *only |= low_mask & high_mask,
        [head, middle @ .., tail] => {
            *head |= low_mask;
            middle.fill(!0);
            *tail |= high_mask;
        }
    }
}

/// Calls `f(w, words)` for the words of `chunk` from word `w` on, masked to the bits `from..to`
/// (`to` at most [`CHUNK_BITS`]): a partial first or last word alone, the whole words between as
/// one slice.
fn chunk_runs(chunk: &Chunk, from: usize, to: usize, f: &mut impl FnMut(usize, &[u64])) {
    if from >= to {
        return;
    }
    let (mut first, mut end) = (from / 64, to.div_ceil(64));
    if from % 64 != 0 {
        let Some(&word) = chunk.get(first) else {
            return;
        };
        let mut bits = word & (!0u64 << (from % 64));
        if first + 1 == end && to % 64 != 0 {
            bits &= (1u64 << (to % 64)) - 1;
        }
        f(first, &[bits]);
        first += 1;
    }
    let mut tail = None;
    if to % 64 != 0 && end > first {
        end -= 1;
        tail = chunk.get(end).map(|&word| word & ((1u64 << (to % 64)) - 1));
    }
    if let Some(words) = chunk.get(first..end).filter(|w| !w.is_empty()) {
        f(first, words);
    }
    if let Some(bits) = tail {
        f(end, &[bits]);
    }
}

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

/// Scratch space for [`UserBitmap::write`]: the bytes of one window, allocated when a window is
/// first built (a report of clean, whole-chunk or all-dirty windows needs none).
pub(crate) struct Window {
    bytes: Option<KVec<u8>>,
}

impl Window {
    /// No window yet.
    pub(crate) fn new() -> Self {
        Self { bytes: None }
    }

    /// The window's [`WINDOW_WORDS`] words, allocated on first use.
    fn bytes(&mut self) -> Result<&mut KVec<u8>> {
        let bytes = match self.bytes.take() {
            Some(b) => b,
            None => KVec::from_elem(0u8, WINDOW_WORDS * size_of::<u64>(), GFP_KERNEL)?,
        };
        Ok(self.bytes.insert(bytes))
    }
}
