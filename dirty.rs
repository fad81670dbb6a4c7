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
//! each allocated on the first mark in its 32,768 pages, kept past a report (as reported, to be
//! zeroed at its next mark) and freed at the first report that finds it without marks (and at
//! `STOP`), so nothing is allocated unless vendor drivers dirty pages, little when they dirty
//! few, and no more than type1's bitmap when they dirty a large mapping densely. A report neither
//! zeroes nor frees the chunks of a densely dirtied mapping: it only clears their bits in the
//! table above them (one bit per chunk). Pinned pages come from the mapping's
//! vendor pins, and "all dirty" is a flag. Reports are produced into the user's bitmap through a
//! 4 KiB window, so kernel memory grows with the spread of the dirtied pages, not with the size
//! of the mappings.
//!
//! The user's bitmaps are written by `user_bitmap.rs`.

use crate::{
    compat::{self, Zeroable},
    mm,
};
use core::mem::size_of;
use kernel::prelude::*;

/// The most pages one mapping may have while tracking (`DIRTY_BITMAP_PAGES_MAX`, `INT_MAX`).
pub(crate) const MAX_MAPPING_PAGES: u64 = i32::MAX as u64;

/// Pages per chunk: a chunk is one 4 KiB bitmap (128 MiB of memory in 4 KiB pages).
pub(crate) const CHUNK_BITS: u64 = 1 << CHUNK_SHIFT;
const CHUNK_SHIFT: u32 = 15;
/// 64-bit words per chunk.
pub(crate) const CHUNK_WORDS: usize = (CHUNK_BITS / 64) as usize;
/// Chunks per leaf table and leaf tables per middle table (a 512-byte leaf, a 1 KiB middle).
const TABLE_SHIFT: u32 = 6;
const TABLE_LEN: usize = 1 << TABLE_SHIFT;
// A leaf's chunks have one bit each in a `u64` of their middle table.
const _: () = assert!(TABLE_LEN == 64);
/// Middle tables in the root (a 128-byte table).
const ROOT_LEN: usize = 16;
/// The largest page number that can be marked: the tables index `ROOT_LEN * TABLE_LEN *
/// TABLE_LEN` chunks, 2^31 pages.
pub(crate) const MAX_PAGE: u64 = ((ROOT_LEN * TABLE_LEN * TABLE_LEN) as u64) * CHUNK_BITS - 1;
// Every page of a trackable mapping can be marked.
const _: () = assert!(MAX_MAPPING_PAGES <= MAX_PAGE + 1);

/// One chunk's bits: bit `n % 64` of word `n / 64` is the chunk's page `n`.
pub(crate) type Chunk = [u64; CHUNK_WORDS];

type Leaf = [Option<KBox<Chunk>>; TABLE_LEN];
type Root = [Option<KBox<Middle>>; ROOT_LEN];

/// A middle table: 64 leaf tables, and a bit per chunk under them (bit `l` of `fresh[m]` for
/// chunk `l` of leaf `m`), set while the chunk holds marks of the current period. A chunk whose
/// bit is clear is stale: it holds only marks already reported, reads as clean, is zeroed at its
/// next mark and is freed at the next report if it has none by then. 1 KiB, a kmalloc size.
#[derive(Zeroable)]
struct Middle {
    leaves: [Option<KBox<Leaf>>; TABLE_LEN],
    fresh: [u64; TABLE_LEN],
}

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
/// marks (`GFP_KERNEL_ACCOUNT`). A report keeps the chunks that have marks of its period, now
/// stale, and frees those that were stale already ([`Self::new_period`]); [`Self::clear`] (or
/// dropping) frees everything, with rescheduling points.
///
/// Invariants (KUnit `dirty_period` checks them with [`Self::counts_hold`]): `chunks` is the
/// number of chunks present and `fresh` the number of them whose bit in their middle table is
/// set; no bit is set for an absent chunk; so `fresh <= chunks <= 2^16`.
pub(crate) struct DirtyPages {
    root: Option<KBox<Root>>,
    chunks: u32,
    fresh: u32,
    /// A mark failed part-way since the last walk of the tables: some may hold no chunk.
    chunkless_tables: bool,
}

impl DirtyPages {
    /// Nothing dirty; allocates nothing.
    pub(crate) fn new() -> Self {
        Self { root: None, chunks: 0, fresh: 0, chunkless_tables: false }
    }

    /// Whether nothing is allocated: no marks, fresh or stale.
    pub(crate) fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// Marks pages `first..=last` (nothing if `first > last`). Fails with `ENOMEM` if a chunk or
    /// table cannot be allocated (the pages before it are marked) and with `EINVAL`, marking
    /// nothing, if `last` is above [`MAX_PAGE`].
    #[unsafe(link_section = ".text.vir_hot")]
    pub(crate) fn mark(&mut self, first: u64, last: u64) -> Result {
        if first > last {
            return Ok(());
        }
        if last > MAX_PAGE {
            return Err(EINVAL);
        }
        let marked = self.mark_chunks(first, last);
        if marked.is_err() {
            // Tables may have been allocated for a chunk that was not: the next report frees them.
            self.chunkless_tables = true;
        }
        marked
    }

    /// [`Self::mark`] of a valid range, allocating tables and chunks as it goes.
    #[unsafe(link_section = ".text.vir_hot")]
    fn mark_chunks(&mut self, first: u64, last: u64) -> Result {
        let root = get_or_alloc(&mut self.root)?;
        let (first_chunk, last_chunk) = (first >> CHUNK_SHIFT, last >> CHUNK_SHIFT);
        let mut c = first_chunk;
        loop {
            let (r, m, l) = slots(c);
            let Middle { leaves, fresh } = get_or_alloc(&mut root[r])?;
            let leaf = get_or_alloc(&mut leaves[m])?;
            let slot = &mut leaf[l];
            let (chunk, new) = match slot {
                Some(chunk) => (chunk, false),
                None => {
                    let chunk = KBox::init(compat::init_zeroed(), GFP_KERNEL_ACCOUNT)?;
                    // At most 2^16 chunks (`last <= MAX_PAGE`): never saturates.
                    self.chunks = self.chunks.saturating_add(1);
                    (slot.insert(chunk), true)
                }
            };
            let bit = 1u64 << l;
            if fresh[m] & bit == 0 {
                // Stale: its marks were reported.
                if !new {
                    chunk.fill(0);
                }
                fresh[m] |= bit;
                self.fresh = self.fresh.saturating_add(1);
            }
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

    /// Starts a new reporting period after a report: forgets every mark. A chunk that had marks
    /// is kept, stale, for the next period, so a range dirtied again (a vendor driver's working
    /// set, reported at every pass of a migration) is marked without allocating and reported
    /// without freeing; a chunk that was stale already (no mark since the report before) is
    /// freed, and so are the tables it leaves empty. A chunk thus outlives its last mark by one
    /// period at most. When every chunk had marks (a densely dirtied mapping) this clears the
    /// fresh bits of the middle tables and touches nothing else: zeroing is left to the next mark
    /// of the chunk, which writes it anyway. After a mark that failed part-way it walks the
    /// tables, to free those it left without a chunk.
    ///
    /// Measured (benchmarks.rst, fifth and sixth passes): under TCG, freeing the two chunks and
    /// three tables of a densely dirtied 256 MiB mapping took 45-94 us of its report; zeroing
    /// the chunks instead took 10-16 us.
    #[unsafe(link_section = ".text.vir_hot")]
    pub(crate) fn new_period(&mut self) {
        if self.chunks != 0 && self.fresh == self.chunks && !self.chunkless_tables {
            if let Some(root) = self.root.as_deref_mut() {
                for middle in root.iter_mut().flatten() {
                    middle.fresh = [0; TABLE_LEN];
                }
            }
            self.fresh = 0;
        } else {
            self.free_chunks(true);
        }
    }

    /// Forgets every mark and frees the chunks and tables: at `START`, `STOP` and when the mapping
    /// goes.
    pub(crate) fn clear(&mut self) {
        self.free_chunks(false);
    }

    /// Frees the stale chunks (every chunk unless `keep_fresh`) and the tables they leave empty,
    /// and makes the chunks kept stale, rescheduling after each leaf table (up to 64 chunks,
    /// 256 KiB).
    fn free_chunks(&mut self, keep_fresh: bool) {
        let mut kept = 0u32;
        if let Some(root) = self.root.as_deref_mut() {
            let used = retain(&mut root[..], |Middle { leaves, fresh }| {
                let mut any = false;
                for (slot, bits) in leaves.iter_mut().zip(fresh.iter_mut()) {
                    let keep = if keep_fresh { *bits } else { 0 };
                    *bits = 0;
                    let Some(leaf) = slot.as_deref_mut() else {
                        continue;
                    };
                    let mut used = false;
                    for (l, chunk) in leaf.iter_mut().enumerate() {
                        if chunk.is_some() && keep & (1u64 << l) != 0 {
                            used = true;
                            kept = kept.saturating_add(1);
                        } else {
                            *chunk = None;
                        }
                    }
                    if used {
                        any = true;
                    } else {
                        *slot = None;
                    }
                    mm::cond_resched();
                }
                any
            });
            if !used {
                self.root = None;
            }
        }
        self.chunks = kept;
        self.fresh = 0;
        self.chunkless_tables = false;
    }

    /// Whether the counts agree with the tables (the invariants of [`DirtyPages`]); walks every
    /// table.
    pub(crate) fn counts_hold(&self) -> bool {
        let (mut chunks, mut fresh) = (0u32, 0u32);
        for middle in self.root.iter().flat_map(|root| root.iter().flatten()) {
            for (slot, &bits) in middle.leaves.iter().zip(middle.fresh.iter()) {
                let mut present = 0u64;
                for (l, chunk) in slot.iter().flat_map(|leaf| leaf.iter().enumerate()) {
                    if chunk.is_some() {
                        present |= 1u64 << l;
                    }
                }
                if bits & !present != 0 {
                    return false;
                }
                chunks = chunks.saturating_add(present.count_ones());
                fresh = fresh.saturating_add(bits.count_ones());
            }
        }
        chunks == self.chunks && fresh == self.fresh
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

    /// Calls `f(base, words)` for the words of marks in `lo..hi` of every fresh chunk, in
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
            // A leaf with no fresh chunk has nothing to report: skipped whole.
            let fresh = middle.fresh[m];
            let Some(leaf) = middle.leaves[m].as_deref().filter(|_| fresh != 0) else {
                c = (c | ((1 << TABLE_SHIFT) - 1)) + 1;
                continue;
            };
            if let Some(chunk) = leaf[l].as_deref().filter(|_| fresh & (1u64 << l) != 0) {
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
    /// [`CHUNK_BITS`]): `None` if nothing is marked there in this period.
    #[unsafe(link_section = ".text.vir_hot")]
    pub(crate) fn chunk_at(&self, lo: u64) -> Option<&Chunk> {
        if lo % CHUNK_BITS != 0 || lo > MAX_PAGE {
            return None;
        }
        let (r, m, l) = slots(lo >> CHUNK_SHIFT);
        let middle = self.root.as_deref()?[r].as_deref()?;
        if middle.fresh[m] & (1u64 << l) == 0 {
            return None;
        }
        middle.leaves[m].as_deref()?[l].as_deref()
    }

    /// The bytes allocated: tables and chunks, stale ones included (not counting allocator
    /// rounding, which the sizes, 128 bytes, 512 bytes, 1 KiB and 4 KiB, do not need). debugfs
    /// `dirty` shows it as `marks_bytes`. At most 2^16 chunks and 1,041 tables: the sums below
    /// stay under 2^29.
    pub(crate) fn footprint(&self) -> usize {
        let Some(root) = self.root.as_deref() else {
            return 0;
        };
        let mut bytes = size_of::<Root>();
        for middle in root.iter().flatten() {
            bytes += size_of::<Middle>();
            for leaf in middle.leaves.iter().flatten() {
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

/// Keeps the tables or chunks in `slots` that `keep` returns true for and frees the others;
/// returns whether any is kept.
fn retain<T>(slots: &mut [Option<KBox<T>>], mut keep: impl FnMut(&mut T) -> bool) -> bool {
    let mut any = false;
    for slot in slots {
        if let Some(t) = slot.as_deref_mut() {
            if keep(t) {
                any = true;
            } else {
                *slot = None;
            }
        }
    }
    any
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
