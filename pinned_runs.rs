// SPDX-License-Identifier: GPL-2.0

//! The physically contiguous runs a mapping pinned and mapped for the IOMMU, recorded as they are
//! mapped, so that unmapping need not read them back from the IOMMU page table one 4 KiB page at
//! a time. That read (`iommu_iova_to_phys()` per page, what type1 does and what iommufd does when
//! it unpins from a domain) was 89% of a 1 GiB 4K unmap on Linux 7.3 (0.54 of 0.60 s under TCG,
//! with the VT-d driver's generic page table) and 17% of the 4K profile on 6.12.
//!
//! A record is one `u64` per run: the first pfn in the high [`PFN_BITS`] bits, the pages less one
//! in the low [`LEN_BITS`] (a longer run takes more records). It is kept only while it stays
//! small next to what it spares:
//! - only for mappings of at least [`MIN_PAGES`] pages (a smaller one is read back, as before:
//!   a record would cost two allocations per mapping);
//! - at most one record per [`PAGES_PER_RUN`] pages of the mapping, so at most 4 bytes per
//!   pinned page once the map is done (iommufd keeps 8 bytes per pinned page; type1 none). Fresh
//!   4 KiB memory in a guest that has run a while comes in runs of about 4 pages (466 runs in
//!   2,048 pages, measured in the test guest), so a tighter budget would record little but
//!   hugepages and memory allocated early;
//! - and only if every allocation succeeds.
//!
//! Otherwise the recorder gives up, frees what it had, and the mapping is read back from the
//! IOMMU at unmap as before: the record is a shortcut, never the only way to find the pins, and
//! a map never fails for want of it. Memory is charged to the mapping task's memory cgroup
//! (`GFP_KERNEL_ACCOUNT`).
//!
//! The record is the truth about the mapping's IOMMU pins exactly as the first domain's page table
//! is: it is written from the same pfns, in the same order, by the only code that maps them
//! (`DmaMapping::pin_and_map`), and taken away by the only code that unmaps them
//! (`DmaMapping::unmap_and_unpin`), which never unmaps part of a mapping.
//!
//! Lock order: none taken; the owner of the mapping (container mutex, or a busy mapping's task)
//! serialises all use.

use kernel::prelude::*;

/// Bits of a record holding the pfn: 52-bit physical addresses (x86-64 with 5-level paging).
pub(crate) const PFN_BITS: u32 = 40;
/// Bits of a record holding the run's pages less one.
const LEN_BITS: u32 = 64 - PFN_BITS;
/// The most pages one record holds.
pub(crate) const MAX_RECORD_PAGES: u64 = 1 << LEN_BITS;
/// Mappings smaller than this (2 MiB of 4 KiB pages) are not recorded.
pub(crate) const MIN_PAGES: u64 = 512;
/// A mapping keeps its record only with at most one run per this many pages.
pub(crate) const PAGES_PER_RUN: u64 = 2;
/// Records the first allocation makes room for.
const FIRST_CAPACITY: usize = 64;

/// The runs of one mapping, complete: every page of the mapping, in IOVA order from its start.
pub(crate) struct PinnedRuns {
    records: KVVec<u64>,
}

impl PinnedRuns {
    /// The runs, in IOVA order from the mapping's start: `(first pfn, pages)`.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + Clone + '_ {
        self.records.iter().map(|&r| (r >> LEN_BITS, (r & (MAX_RECORD_PAGES - 1)) + 1))
    }

    /// Records held.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// Bytes allocated for the records.
    pub(crate) fn footprint(&self) -> usize {
        self.records.capacity().saturating_mul(core::mem::size_of::<u64>())
    }
}

/// Builds the [`PinnedRuns`] of a mapping while it is mapped.
pub(crate) struct RunRecorder {
    /// `None` once the recorder gave up (or never started).
    records: Option<KVVec<u64>>,
    /// The most records allowed.
    budget: usize,
    /// Runs mapped, and their pages, recorded or not (while `records` is there, every one was).
    runs: u64,
    mapped: u64,
}

impl RunRecorder {
    /// A recorder for a mapping of `pages` pages; allocates nothing yet.
    pub(crate) fn new(pages: u64) -> Self {
        let recording = pages >= MIN_PAGES;
        Self {
            records: recording.then(KVVec::new),
            budget: usize::try_from(pages / PAGES_PER_RUN).unwrap_or(usize::MAX),
            runs: 0,
            mapped: 0,
        }
    }

    /// Records the next run: `pages` pages from `pfn`, mapped right after the pages recorded so
    /// far. Gives up (frees everything) if the run does not fit a record, the budget is spent or
    /// an allocation fails.
    pub(crate) fn record(&mut self, pfn: u64, pages: u64) {
        self.runs = self.runs.saturating_add(1);
        self.mapped = self.mapped.saturating_add(pages);
        if self.try_record(pfn, pages).is_none() {
            self.records = None;
        }
    }

    fn try_record(&mut self, mut pfn: u64, mut pages: u64) -> Option<()> {
        let records = self.records.as_mut()?;
        while pages != 0 {
            let n = pages.min(MAX_RECORD_PAGES);
            // The run's last pfn fits the record's pfn bits, so every pfn of it does.
            if pfn.checked_add(n - 1)? >> PFN_BITS != 0 || records.len() >= self.budget {
                return None;
            }
            if records.capacity() == 0 {
                records.reserve(FIRST_CAPACITY.min(self.budget), GFP_KERNEL_ACCOUNT).ok()?;
            }
            records.push(pfn << LEN_BITS | (n - 1), GFP_KERNEL_ACCOUNT).ok()?;
            pfn += n;
            pages -= n;
        }
        Some(())
    }

    /// Whether the mapping of `pages` pages was mapped as one physically contiguous run (which
    /// its unmap can read back with one `iommu_iova_to_phys()`), recorded or not.
    pub(crate) fn is_one_run(&self, pages: u64) -> bool {
        self.runs == 1 && self.mapped == pages
    }

    /// The record of a mapping of `pages` pages, if it covers them all, in an allocation of its
    /// size (if one can be had; else in the one it grew in, up to twice that).
    pub(crate) fn finish(self, pages: u64) -> Option<PinnedRuns> {
        let records = self.records.filter(|r| !r.is_empty() && self.mapped == pages)?;
        if records.capacity() == records.len() {
            return Some(PinnedRuns { records });
        }
        let mut exact = KVVec::new();
        if exact.reserve(records.len(), GFP_KERNEL_ACCOUNT).is_ok()
            && exact.extend_from_slice(&records, GFP_KERNEL_ACCOUNT).is_ok()
        {
            return Some(PinnedRuns { records: exact });
        }
        Some(PinnedRuns { records })
    }
}
