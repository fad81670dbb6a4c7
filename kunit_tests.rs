// SPDX-License-Identifier: GPL-2.0

//! KUnit cases of the module's pure logic, in the suite `vfio_iommu_rust`. Each returns 0 if every
//! check holds, else the line of the first that does not. Built only on `CONFIG_KUNIT` kernels, and
//! registered by `compat::kunit_suite!`: on 7.3 with the kernel crate's `#[kunit_tests]`, on 6.12
//! (which has no Rust KUnit support) as C-callable functions that `bindings/kunit.c` registers.

use crate::{
    dirty::{self, DirtyPages},
    iova::{eoverflow, IovaList, IovaRange},
    pinned_runs::{RunRecorder, MAX_RECORD_PAGES, MIN_PAGES, PAGES_PER_RUN, PFN_BITS},
    user_bitmap::{self, UserBitmap},
};
use kernel::prelude::*;

/// Returns the current line from the calling case if `$cond` does not hold.
macro_rules! check {
    ($cond:expr) => {
        if !$cond {
            return line!() as i32;
        }
    };
}

const TOP: u64 = u64::MAX;

fn r(start: u64, last: u64) -> IovaRange {
    IovaRange { start, last }
}

/// Inclusive ranges: construction, sizes up to the top of the address space, overlap.
fn iova_range() -> i32 {
    check!(IovaRange::from_start_size(0x1000, 0) == Err(EINVAL));
    check!(IovaRange::from_start_size(0x1000, 0x1000) == Ok(r(0x1000, 0x1fff)));
    // Ending exactly at the top is fine; one byte more wraps.
    check!(IovaRange::from_start_size(TOP - 0xfff, 0x1000) == Ok(r(TOP - 0xfff, TOP)));
    check!(IovaRange::from_start_size(TOP - 0xfff, 0x2000) == Err(eoverflow()));
    check!(IovaRange::from_start_size(TOP, TOP) == Err(eoverflow()));
    check!(r(0, TOP).size().is_none());
    check!(r(TOP, TOP).size() == Some(1));
    check!(IovaRange::new(2, 1).is_none());
    check!(r(0x1000, 0x1fff).contains(&r(0x1000, 0x1fff)));
    check!(!r(0x1000, 0x1fff).contains(&r(0x1000, 0x2000)));
    check!(r(0x1000, 0x1fff).overlaps(&r(0x1fff, 0x3000)));
    check!(!r(0x1000, 0x1fff).overlaps(&r(0x2000, 0x3000)));
    check!(r(0, 10).intersection(&r(5, 20)) == Some(r(5, 10)));
    check!(r(0, 10).intersection(&r(11, 20)).is_none());
    0
}

/// The usable IOVA space: apertures intersected, reserved regions cut out.
fn iova_list() -> i32 {
    let aperture = r(0, (1 << 48) - 1);
    let msi = r(0xfee0_0000, 0xfeef_ffff);
    let Ok(l) = IovaList::compute([aperture].into_iter(), [msi].iter()) else {
        return line!() as i32;
    };
    check!(l.ranges() == [r(0, 0xfedf_ffff), r(0xfef0_0000, (1 << 48) - 1)]);
    check!(l.allows(&r(0x1000, 0x1fff)));
    check!(!l.allows(&r(0xfedf_f000, 0xfee0_0fff)));
    check!(!l.allows(&r(1 << 48, 1 << 48)));
    // Two apertures: their intersection. Disjoint ones leave nothing: EINVAL.
    let Ok(l) = IovaList::compute([aperture, r(0x1000, TOP)].into_iter(), [].iter()) else {
        return line!() as i32;
    };
    check!(l.ranges() == [r(0x1000, (1 << 48) - 1)]);
    check!(IovaList::compute([r(0, 9), r(10, 20)].into_iter(), [].iter()).is_err());
    // Holes at the edges, and one that covers everything.
    let Ok(l) = IovaList::compute([r(0, 99)].into_iter(), [r(0, 9), r(90, 99)].iter()) else {
        return line!() as i32;
    };
    check!(l.ranges() == [r(10, 89)]);
    check!(IovaList::compute([r(0, 99)].into_iter(), [r(0, 200)].iter()).is_err());
    // The whole 64-bit space, minus its last page.
    let Ok(l) = IovaList::compute([r(0, TOP)].into_iter(), [r(TOP - 0xfff, TOP)].iter()) else {
        return line!() as i32;
    };
    check!(l.ranges() == [r(0, TOP - 0x1000)]);
    // No domain: no list, every IOVA allowed.
    let Ok(l) = IovaList::compute(core::iter::empty(), [msi].iter()) else {
        return line!() as i32;
    };
    check!(l.ranges().is_empty() && l.allows(&r(TOP, TOP)));
    0
}

/// Bit ranges of a little-endian bitmap, and bitmap sizes in whole words.
fn bitmap_bits() -> i32 {
    let mut b = [0u8; 16];
    user_bitmap::set_bits(&mut b, 3, 4);
    check!(b[0] == 0x08);
    user_bitmap::set_bits(&mut b, 6, 19);
    check!(b[0] == 0xc8 && b[1] == 0xff && b[2] == 0x07);
    user_bitmap::set_bits(&mut b, 64, 128);
    check!(b[8..] == [0xff; 8]);
    check!(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) == 0x07ffc8);
    let mut c = [0u8; 2];
    user_bitmap::set_bits(&mut c, 5, 5);
    check!(c == [0, 0]);
    // `only_bits` clears everything else, partial end bytes included, in one pass.
    let mut d = [0xa5u8; 4];
    user_bitmap::only_bits(&mut d, 3, 13);
    check!(d == [0xf8, 0x1f, 0, 0]);
    user_bitmap::only_bits(&mut d, 8, 32);
    check!(d == [0, 0xff, 0xff, 0xff]);
    user_bitmap::only_bits(&mut d, 30, 31);
    check!(d == [0, 0, 0, 0x40]);
    check!(user_bitmap::bitmap_bytes(0) == 0);
    check!(user_bitmap::bitmap_bytes(1) == 8);
    check!(user_bitmap::bitmap_bytes(64) == 8);
    check!(user_bitmap::bitmap_bytes(65) == 16);
    0
}

/// type1's checks of a user bitmap against the range it describes.
fn user_bitmap() -> i32 {
    let ok = |pgsize, size, range| {
        UserBitmap {
            pgsize,
            size,
            data: 0x10_0000,
        }
        .validate(range)
        .is_ok()
    };
    check!(ok(4096, 8, 64 * 4096));
    check!(!ok(4096, 8, 65 * 4096));
    check!(ok(4096, 16, 65 * 4096));
    check!(!ok(0, 8, 4096));
    check!(!ok(3000, 8, 4096));
    check!(!ok(4096, 0, 4096));
    check!(!ok(4096, 8, 0));
    check!(!ok(4096, user_bitmap::MAX_BITMAP_BYTES + 8, 4096));
    check!(ok(4096, user_bitmap::MAX_BITMAP_BYTES, 4096));
    let kernel = UserBitmap {
        pgsize: 4096,
        size: 8,
        data: 0xffff_8880_0000_0000,
    };
    check!(kernel.validate(4096).is_err());
    0
}

/// Pages per chunk of the sparse dirty bitmap.
const CB: u64 = dirty::CHUNK_BITS;
/// Bytes of its root, middle and leaf tables and of a chunk (`DirtyPages::footprint`).
const ROOT: usize = 128;
const MIDDLE: usize = 1024;
const LEAF: usize = 512;
const CHUNK: usize = 4096;

/// Whether `d` reports exactly `expect`, in that order, in `lo..hi`.
fn reports(d: &mut DirtyPages, lo: u64, hi: u64, expect: &[u64]) -> bool {
    let mut i = 0;
    let mut ok = true;
    d.for_each_in(lo, hi, &mut |p| {
        ok &= expect.get(i) == Some(&p);
        i += 1;
    });
    ok && i == expect.len()
}

/// Counts what `d` reports in `lo..hi`, checking that it is ascending and inside the range; `None`
/// if it is not.
fn count(d: &mut DirtyPages, lo: u64, hi: u64) -> Option<(u64, u64, u64)> {
    let (mut n, mut first, mut last, mut ok) = (0u64, None, 0u64, true);
    d.for_each_in(lo, hi, &mut |p| {
        ok &= p >= lo && p < hi && (n == 0 || p > last);
        first.get_or_insert(p);
        last = p;
        n += 1;
    });
    ok.then_some((n, first.unwrap_or(0), last))
}

/// Sparse dirty bitmap: single pages on both sides of chunk and table boundaries, queries that
/// start and end anywhere; a mark in a present chunk allocates nothing.
fn dirty_chunks() -> i32 {
    let mut d = DirtyPages::new();
    check!(d.footprint() == 0 && reports(&mut d, 0, u64::MAX, &[]));
    let pages = [0, 63, 64, CB - 1, CB, 64 * CB - 1, 64 * CB, 4096 * CB - 1, 4096 * CB];
    for p in pages {
        check!(d.mark(p, p).is_ok());
    }
    check!(reports(&mut d, 0, u64::MAX, &pages));
    check!(reports(&mut d, 0, dirty::MAX_PAGE + 1, &pages));
    check!(reports(&mut d, 1, CB, &[63, 64, CB - 1]));
    check!(reports(&mut d, 64, 65, &[64]));
    check!(reports(&mut d, 65, CB - 1, &[]));
    check!(reports(&mut d, CB - 1, CB + 1, &[CB - 1, CB]));
    check!(reports(&mut d, CB + 1, 64 * CB - 1, &[]));
    check!(reports(&mut d, 64 * CB - 1, 4096 * CB, &[64 * CB - 1, 64 * CB, 4096 * CB - 1]));
    check!(reports(&mut d, 5, 5, &[]) && reports(&mut d, 9, 3, &[]));
    // Chunks 0, 1, 63, 64, 4095 and 4096, behind 4 leaves, 2 middle tables, a root.
    let footprint = d.footprint();
    check!(footprint == ROOT + 2 * MIDDLE + 4 * LEAF + 6 * CHUNK);
    // Marking again, or more of a present chunk: no allocation.
    check!(d.mark(1, CB - 2).is_ok() && d.mark(CB, CB).is_ok());
    check!(d.footprint() == footprint);
    check!(count(&mut d, 0, 2 * CB) == Some((CB + 1, 0, CB)));
    0
}

/// Sparse dirty bitmap: ranges within a word, over word and chunk boundaries, over many chunks.
fn dirty_ranges() -> i32 {
    let mut d = DirtyPages::new();
    check!(d.mark(3, 5).is_ok());
    check!(reports(&mut d, 0, 64, &[3, 4, 5]));
    check!(d.mark(60, 68).is_ok());
    check!(count(&mut d, 0, 128) == Some((12, 3, 68)));
    check!(reports(&mut d, 59, 62, &[60, 61]));
    // Nothing for an empty range.
    check!(d.mark(9, 8).is_ok());
    check!(count(&mut d, 0, u64::MAX) == Some((12, 3, 68)));
    d.clear();
    // Three chunks and a bit, not aligned at either end.
    let (first, last) = (CB - 70, 4 * CB + 6);
    check!(d.mark(first, last).is_ok());
    check!(count(&mut d, 0, u64::MAX) == Some((last - first + 1, first, last)));
    check!(count(&mut d, 2 * CB - 1, 2 * CB + 1) == Some((2, 2 * CB - 1, 2 * CB)));
    check!(count(&mut d, last, last + 100) == Some((1, last, last)));
    check!(count(&mut d, 0, first + 1) == Some((1, first, first)));
    check!(d.footprint() == ROOT + MIDDLE + LEAF + 5 * CHUNK);
    // A mark ending on a word boundary and one starting on it.
    d.clear();
    check!(d.mark(64, 127).is_ok() && d.mark(192, 192).is_ok());
    check!(count(&mut d, 0, 256) == Some((65, 64, 192)));
    check!(reports(&mut d, 126, 200, &[126, 127, 192]));
    0
}

/// Sparse dirty bitmap: the largest page number (`INT_MAX` pages per mapping), and page numbers
/// beyond it, refused without panicking or marking anything.
fn dirty_top() -> i32 {
    let top = dirty::MAX_PAGE;
    check!(top >= dirty::MAX_MAPPING_PAGES - 1);
    let mut d = DirtyPages::new();
    check!(d.mark(top, top).is_ok());
    check!(reports(&mut d, 0, u64::MAX, &[top]));
    check!(reports(&mut d, top, top + 1, &[top]));
    check!(reports(&mut d, top + 1, u64::MAX, &[]));
    check!(reports(&mut d, u64::MAX - 1, u64::MAX, &[]));
    // One page costs a chunk and a path of tables.
    check!(d.footprint() == ROOT + MIDDLE + LEAF + CHUNK);
    check!(d.mark(top - 100, top).is_ok());
    check!(count(&mut d, 0, u64::MAX) == Some((101, top - 100, top)));
    check!(d.mark(top + 1, top + 1) == Err(EINVAL));
    check!(d.mark(u64::MAX, u64::MAX) == Err(EINVAL));
    check!(d.mark(0, u64::MAX) == Err(EINVAL));
    check!(d.mark(top, u64::MAX) == Err(EINVAL));
    check!(count(&mut d, 0, u64::MAX) == Some((101, top - 100, top)));
    check!(d.footprint() == ROOT + MIDDLE + LEAF + CHUNK);
    0
}

/// Marks a word at a time: `for_each_word_in` masks words to the range, and `or_word` places a word
/// at any bit of a window, dropping what falls past its end.
fn dirty_words() -> i32 {
    let mut d = DirtyPages::new();
    check!(d.mark(10, 200).is_ok());
    let mut words = KVec::new();
    let mut full = false;
    d.for_each_word_in(5, 130, &mut |base, bits| {
        full = words.push((base, bits), GFP_KERNEL).is_err();
    });
    check!(!full);
    check!(words[..] == [(0, !0u64 << 10), (64, !0u64), (128, 0b11)]);
    let mut n = 0u64;
    d.for_each_word_in(201, 1 << 20, &mut |_, _| n += 1);
    check!(n == 0);
    // The same words in runs: a masked first and last word, whole words between.
    let mut runs = KVec::new();
    d.for_each_run_in(5, 130, &mut |base, w| {
        full |= runs.push((base, w.len(), w.first().copied().unwrap_or(0)), GFP_KERNEL).is_err();
    });
    check!(!full);
    check!(runs[..] == [(0, 1, !0u64 << 10), (64, 1, !0u64), (128, 1, 0b11)]);
    // A whole chunk comes as one slice of its 512 words.
    let mut e = DirtyPages::new();
    check!(e.mark(0, dirty::CHUNK_BITS - 1).is_ok());
    let mut whole = (0usize, 0u64);
    e.for_each_run_in(0, dirty::CHUNK_BITS, &mut |_, w| {
        whole.0 += w.len();
        whole.1 += w.iter().map(|x| u64::from(x.count_ones())).sum::<u64>();
    });
    check!(whole == (512, dirty::CHUNK_BITS));

    let mut bytes = [0u8; 16];
    user_bitmap::or_word(&mut bytes, 0, 0xff);
    check!(bytes[0] == 0xff && bytes[1] == 0);
    user_bitmap::or_word(&mut bytes, 12, 1);
    check!(bytes[1] == 0x10);
    user_bitmap::or_word(&mut bytes, 60, 0xff);
    check!(bytes[7] == 0xf0 && bytes[8] == 0x0f);
    // Bits past the end are dropped; a position past it writes nothing.
    user_bitmap::or_word(&mut bytes, 124, !0);
    check!(bytes[15] == 0xf0);
    user_bitmap::or_word(&mut bytes, 1 << 40, !0);
    check!(bytes.iter().map(|b| b.count_ones()).sum::<u32>() == 8 + 1 + 8 + 4);
    0
}

/// Sparse dirty bitmap: clearing frees everything, and marking works again after it; the memory
/// for dense marking is no more than type1's bitmap.
fn dirty_clear() -> i32 {
    let mut d = DirtyPages::new();
    d.clear();
    check!(d.footprint() == 0);
    check!(d.mark(5, 5).is_ok() && d.mark(3 * CB, 3 * CB + 1).is_ok());
    d.clear();
    check!(d.footprint() == 0 && reports(&mut d, 0, u64::MAX, &[]));
    d.clear();
    check!(d.mark(7, 7).is_ok());
    check!(reports(&mut d, 0, u64::MAX, &[7]));
    d.clear();
    // 256 MiB of 4 KiB pages, all dirty: two chunks. type1: kvzalloc(8 KiB + 8), 16 KiB.
    check!(d.mark(0, (256 << 8) - 1).is_ok());
    check!(d.footprint() == ROOT + MIDDLE + LEAF + 2 * CHUNK);
    check!(d.footprint() < 16 << 10);
    check!(count(&mut d, 0, u64::MAX) == Some((256 << 8, 0, (256 << 8) - 1)));
    d.clear();
    // 64 GiB: 512 chunks, 8 leaves. type1: 2 MiB + 8 bytes, vmalloc'ed: 513 pages, and 2 more
    // for vmalloc's array of them.
    check!(d.mark(0, (64 << 18) - 1).is_ok());
    check!(d.footprint() == ROOT + MIDDLE + 8 * LEAF + 512 * CHUNK);
    check!(d.footprint() <= (64 << 18) / 8 + 3 * 4096);
    check!(count(&mut d, (64 << 18) - 3, u64::MAX) == Some((3, (64 << 18) - 3, (64 << 18) - 1)));
    d.clear();
    check!(d.footprint() == 0);
    // Dropped with marks: freed by `Drop`.
    check!(d.mark(CB, 2 * CB).is_ok());
    drop(d);
    0
}

/// Sparse dirty bitmap: a new reporting period keeps the chunks that had marks (stale: reported
/// clean, zeroed at their next mark), frees those that were stale already and the tables they
/// leave empty; a period with no marks at all frees everything. The counts agree with the tables
/// after every step.
fn dirty_period() -> i32 {
    let mut d = DirtyPages::new();
    d.new_period();
    check!(d.footprint() == 0 && d.is_empty() && d.counts_hold());
    // 256 MiB marked densely: two chunks, kept, reported clean, not zeroed yet.
    check!(d.mark(0, 2 * CB - 1).is_ok() && d.counts_hold());
    let dense = d.footprint();
    check!(dense == ROOT + MIDDLE + LEAF + 2 * CHUNK);
    d.new_period();
    check!(d.counts_hold() && d.footprint() == dense && reports(&mut d, 0, u64::MAX, &[]));
    check!(d.chunk_at(0).is_none() && d.chunk_at(CB).is_none());
    // Marked again: nothing allocated; the chunks' old bits are gone, the new ones reported
    // exactly, whole chunks included.
    check!(d.mark(5, 5).is_ok() && d.mark(CB + 7, CB + 9).is_ok() && d.counts_hold());
    check!(d.footprint() == dense && reports(&mut d, 0, u64::MAX, &[5, CB + 7, CB + 8, CB + 9]));
    check!(d.chunk_at(0).is_some_and(|c| c[0] == 1 << 5 && c[1..].iter().all(|&w| w == 0)));
    check!(d.chunk_at(CB).is_some_and(|c| c[0] == 0b111 << 7 && c[1..].iter().all(|&w| w == 0)));
    // Only the second chunk marked in the next period: the first goes at the report after it.
    d.new_period();
    check!(d.mark(CB, CB).is_ok() && d.counts_hold());
    check!(reports(&mut d, 0, u64::MAX, &[CB]) && d.chunk_at(0).is_none());
    d.new_period();
    check!(d.counts_hold() && d.footprint() == ROOT + MIDDLE + LEAF + CHUNK);
    check!(reports(&mut d, 0, u64::MAX, &[]));
    // A chunk behind its own middle and leaf tables. Chunk 1 had no mark in this period: it goes
    // with its tables. Then a period without marks: all freed.
    check!(d.mark(4096 * CB, 4096 * CB).is_ok() && d.counts_hold());
    check!(d.footprint() == ROOT + 2 * (MIDDLE + LEAF) + 2 * CHUNK);
    d.new_period();
    check!(d.counts_hold() && d.footprint() == ROOT + MIDDLE + LEAF + CHUNK);
    check!(d.chunk_at(CB).is_none() && d.chunk_at(4096 * CB).is_none());
    d.new_period();
    check!(d.counts_hold() && d.footprint() == 0 && d.is_empty());
    check!(reports(&mut d, 0, u64::MAX, &[]));
    // One mark over a stale chunk (after a report of the fast path) and an absent one: the stale
    // one is zeroed, the absent one allocated, both reported exactly.
    check!(d.mark(0, CB - 1).is_ok());
    d.new_period();
    check!(d.mark(CB - 2, CB + 1).is_ok() && d.counts_hold());
    check!(reports(&mut d, 0, u64::MAX, &[CB - 2, CB - 1, CB, CB + 1]));
    // Kept chunks go with `clear` (STOP) and when dropped.
    d.new_period();
    check!(d.footprint() != 0);
    d.clear();
    check!(d.footprint() == 0 && d.counts_hold());
    check!(d.mark(3, 3).is_ok());
    d.new_period();
    drop(d);
    0
}

/// A xorshift64 generator, for reproducible patterns.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Whether the model bitmap `model` has page `p`.
fn has(model: &[u64], p: u64) -> bool {
    model.get((p / 64) as usize).is_some_and(|w| w & (1 << (p % 64)) != 0)
}

/// Whether `d` reports, in `base + lo..base + hi`, exactly the pages of `model` (from `base`) in
/// `lo..hi`, ascending.
fn same_as_model(d: &mut DirtyPages, model: &[u64], base: u64, lo: u64, hi: u64) -> bool {
    let (mut at, mut ok) = (lo, true);
    d.for_each_in(base + lo, base + hi, &mut |p| {
        // `p` in the model, no page from `at` to `p` in it.
        let p = p.wrapping_sub(base);
        ok &= p >= at && p < hi && has(model, p);
        while ok && at < p {
            ok &= !has(model, at);
            at += 1;
        }
        at = p.wrapping_add(1);
    });
    while ok && at < hi {
        ok &= !has(model, at);
        at += 1;
    }
    ok
}

/// Sparse dirty bitmap against a plain bitmap model, in 4 chunks at `base`: random single pages
/// and short ranges (a quarter of them starting within 40 pages of a chunk boundary), then a few
/// long ones; after each phase, random windows are compared page for page (with the model neither
/// nearly empty nor nearly full, so that the comparison means something).
fn dirty_exact_at(base: u64, seed: u64) -> i32 {
    const SPAN: u64 = 4 * CB;
    let Ok(mut model) = KVec::from_elem(0u64, (SPAN / 64) as usize, GFP_KERNEL) else {
        return line!() as i32;
    };
    let mut d = DirtyPages::new();
    let mut s = seed;
    for (marks, long) in [(1500u64, false), (6, true)] {
        for i in 0..marks {
            let r = next(&mut s);
            let start = if r % 4 == 0 {
                ((r >> 8) % 4 * CB + SPAN - 40 + (r >> 16) % 80) % SPAN
            } else {
                (r >> 8) % SPAN
            };
            let len = match (long, i % 10) {
                (true, _) => (r >> 24) % CB,
                (false, 0..=3) => (r >> 24) % 200,
                _ => 0,
            };
            let end = (start + len).min(SPAN - 1);
            check!(d.mark(base + start, base + end).is_ok());
            for p in start..=end {
                model[(p / 64) as usize] |= 1 << (p % 64);
            }
        }
        let set: u64 = model.iter().map(|w| u64::from(w.count_ones())).sum();
        check!(set > SPAN / 10 && set < SPAN - SPAN / 10);
        check!(count(&mut d, 0, u64::MAX).is_some_and(|(n, _, _)| n == set));
        for _ in 0..200 {
            let (a, b) = (next(&mut s) % (SPAN + 1), next(&mut s) % (SPAN + 1));
            check!(same_as_model(&mut d, &model, base, a.min(b), a.max(b)));
        }
        check!(same_as_model(&mut d, &model, base, 0, SPAN));
    }
    // Nothing outside the span.
    check!(reports(&mut d, 0, base, &[]) && reports(&mut d, base + SPAN, u64::MAX, &[]));
    d.clear();
    check!(reports(&mut d, 0, u64::MAX, &[]));
    0
}

/// Sparse dirty bitmap: exactly the pages marked, at the bottom, across a root slot (chunk
/// 4096), and at the top of the page numbers.
fn dirty_exact() -> i32 {
    for (base, seed) in [
        (0, 0x9e37_79b9_7f4a_7c15),
        (4096 * CB - 2 * CB, 0xdead_beef_cafe_f00d),
        (dirty::MAX_PAGE + 1 - 4 * CB, 0x0123_4567_89ab_cdef),
    ] {
        let line = dirty_exact_at(base, seed);
        if line != 0 {
            return line;
        }
    }
    0
}

/// Page-size bitmaps of domains: sizes below `PAGE_SIZE` fold into it, the smallest size is the
/// unit, and an empty intersection (which an attach refuses) never makes a shift of 64.
fn pgsizes() -> i32 {
    use crate::domain::{fold_pgsizes, min_pgsize};
    let intel = 0x4020_1000u64; // 4K, 2M, 1G
    check!(fold_pgsizes(intel) == intel);
    check!(fold_pgsizes(0x0000_1e00) == 0x1000); // 512..4K folds to 4K
    check!(fold_pgsizes(0x0020_0800) == 0x0020_1000);
    check!(min_pgsize(intel) == 0x1000);
    check!(min_pgsize(0x0020_0000) == 0x0020_0000);
    check!(min_pgsize(1 << 63) == 1 << 63);
    check!(min_pgsize(0) == crate::mm::PAGE_SIZE);
    // 4K-only and 2M-only domains share nothing.
    check!(fold_pgsizes(0x1000 & 0x0020_0000) == 0);
    0
}

/// The record of pinned runs: what is recorded comes back exactly, long runs split, and the
/// recorder gives up (records nothing) below the minimum size, over the budget, for a pfn that does
/// not fit a record, or when the pages recorded are not the mapping's; a mapping of one run is
/// known as one, recorded or not.
fn pinned_runs() -> i32 {
    fn runs_of(r: Option<crate::pinned_runs::PinnedRuns>) -> Option<KVec<(u64, u64)>> {
        let r = r?;
        let mut v = KVec::new();
        for run in r.iter() {
            v.push(run, GFP_KERNEL).ok()?;
        }
        Some(v)
    }
    let pages = 4 * MIN_PAGES;
    let mut rec = RunRecorder::new(pages);
    rec.record(0x1234, 1);
    rec.record(0x5000, pages - 2);
    rec.record((1 << PFN_BITS) - 1, 1);
    let Some(v) = runs_of(rec.finish(pages)) else {
        return line!() as i32;
    };
    check!(v[..] == [(0x1234, 1), (0x5000, pages - 2), ((1 << PFN_BITS) - 1, 1)]);
    // A run longer than a record holds takes two.
    let big = MAX_RECORD_PAGES + 3;
    let mut rec = RunRecorder::new(big);
    rec.record(0x10_0000, big);
    let Some(v) = runs_of(rec.finish(big)) else {
        return line!() as i32;
    };
    check!(v[..] == [(0x10_0000, MAX_RECORD_PAGES), (0x10_0000 + MAX_RECORD_PAGES, 3)]);
    // Too small a mapping: nothing recorded, but one run is known as one.
    let mut rec = RunRecorder::new(MIN_PAGES - 1);
    rec.record(0x1000, MIN_PAGES - 1);
    check!(rec.is_one_run(MIN_PAGES - 1));
    check!(rec.finish(MIN_PAGES - 1).is_none());
    let mut rec = RunRecorder::new(16);
    rec.record(0x1000, 8);
    rec.record(0x2000, 8);
    check!(!rec.is_one_run(16));
    // Budget: one run per PAGES_PER_RUN pages; one more gives up for good.
    let mut rec = RunRecorder::new(MIN_PAGES);
    let budget = MIN_PAGES / PAGES_PER_RUN;
    for i in 0..budget {
        rec.record(0x1000 + 2 * i * PAGES_PER_RUN, PAGES_PER_RUN);
    }
    let mut full = RunRecorder::new(MIN_PAGES);
    for i in 0..budget {
        full.record(0x1000 + 2 * i * PAGES_PER_RUN, PAGES_PER_RUN);
    }
    check!(runs_of(full.finish(MIN_PAGES)).is_some_and(|v| v.len() as u64 == budget));
    rec.record(0x9000, 1);
    check!(rec.finish(MIN_PAGES + 1).is_none());
    // A pfn beyond what a record holds (the last page of the run counts).
    let mut rec = RunRecorder::new(MIN_PAGES);
    rec.record((1 << PFN_BITS) - 1, 2);
    check!(rec.finish(2).is_none());
    // Fewer pages recorded than the mapping has (a map that stopped early).
    let mut rec = RunRecorder::new(MIN_PAGES);
    rec.record(0x1000, MIN_PAGES - 1);
    check!(rec.finish(MIN_PAGES).is_none());
    0
}

crate::compat::kunit_suite!(vfio_iommu_rust: iova_range, iova_list, bitmap_bits, user_bitmap, dirty_chunks, dirty_ranges, dirty_top, dirty_words, dirty_clear, dirty_period, dirty_exact, pgsizes, pinned_runs);
