// SPDX-License-Identifier: GPL-2.0

//! Taking a mapping's pages out of the IOMMU and releasing their pins: the runs are read back from
//! the first domain, unmapped with deferred IOTLB invalidation (`iommu_unmap_fast` into a gather),
//! and unpinned only after the sync that removed their translations.
//!
//! Lock order: called with the container mutex held (by `DmaMapping`); takes no lock itself.

use crate::{
    domain::{Domain, Gather},
    mm::{self, PAGE_SHIFT, PAGE_SIZE},
    pinned_runs::PinnedRuns,
};
use kernel::prelude::*;

/// The bytes from `iova` (translating to `phys` in `domain`) that are physically contiguous, up
/// to `max`, one page-table walk per page. With `large` (a page size of the domain, or 0) it also
/// stops at the first address aligned to `large` where the physical address is aligned too: where
/// a large IOMMU page may start, which [`unmap_unpin_range`] sizes without walking it page by page.
pub(crate) fn contiguous_len(domain: &Domain, iova: u64, phys: u64, max: u64, large: u64) -> u64 {
    let coaligned = large != 0 && (iova ^ phys) & (large - 1) == 0;
    let mut len = PAGE_SIZE;
    while len < max
        && !(coaligned && (iova + len) & (large - 1) == 0)
        && domain.iova_to_phys(iova + len) == phys + len
    {
        len += PAGE_SIZE;
    }
    len
}

/// What a mapping knows of the runs it mapped.
pub(crate) enum MappedRuns<'a> {
    /// Their record (`pinned_runs.rs`).
    Recorded(&'a PinnedRuns),
    /// The mapping is one physically contiguous run.
    One,
    /// Nothing: they are read back from the first domain.
    Unknown,
}

/// Unmaps `size` bytes from `iova` in every domain and releases the pins of the pages they
/// mapped, which `runs` tells if it knows them ([`unmap_recorded`]; or one run, whose first pfn
/// the first domain tells), and else the first domain (type1's `vfio_unmap_unpin`). Returns how
/// many of the unpinned pages count as locked memory.
///
/// The first domain is read and unmapped in windows: the physically contiguous runs of a window
/// are read (`iommu_iova_to_phys`) and recorded, the window is unmapped with one
/// `iommu_unmap_fast`, and after up to [`UNPIN_RUNS`] runs one IOTLB sync invalidates everything
/// unmapped so far, after which the runs are unpinned ([`Unpinner`]). Where a large IOMMU page may
/// start (address and physical address aligned to the domain's smallest large page size),
/// unmapping its first page unmaps the whole page and tells its size, instead of a walk per 4 KiB
/// page of it.
pub(crate) fn unmap_unpin_range<'a>(
    iova: u64,
    size: u64,
    dirty: bool,
    all_pinned: bool,
    runs: MappedRuns<'_>,
    mut domains: impl Iterator<Item = &'a Domain>,
) -> u64 {
    let Some(first) = domains.next() else {
        return 0;
    };
    if size == 0 {
        return 0;
    }
    for d in domains {
        d.unmap(iova, size);
    }
    match runs {
        MappedRuns::Recorded(runs) => return unmap_recorded(first, iova, runs.iter(), dirty, all_pinned),
        MappedRuns::One => {
            let phys = first.iova_to_phys(iova);
            if phys != 0 {
                let one = [(phys >> PAGE_SHIFT, size >> PAGE_SHIFT)];
                return unmap_recorded(first, iova, one.into_iter(), dirty, all_pinned);
            }
            // Cannot be (the run was mapped there); walk rather than guess.
            pr_err!("unmap at {:#x}: the mapping's one run is not mapped\n", iova);
        }
        MappedRuns::Unknown => {}
    }
    let large = first.info().large_pgsize();
    first.with_gather(|gather| {
        let mut q = Unpinner::new(gather, dirty, all_pinned);
        let mut offset = 0;
        while offset < size {
            let pos = iova + offset;
            let rest = size - offset;
            let phys = first.iova_to_phys(pos);
            if phys == 0 {
                offset += PAGE_SIZE;
                continue;
            }
            if large != 0 && (pos | phys) & (large - 1) == 0 && rest >= large {
                match q.unmap_page(pos) {
                    // Not a large page, or one the driver did not unmap whole: walk it.
                    0 => {}
                    n if n <= rest && n % PAGE_SIZE == 0 => {
                        q.add_unmapped(phys >> PAGE_SHIFT, n >> PAGE_SHIFT);
                        offset += n;
                        continue;
                    }
                    n => {
                        // Cannot be: large pages only cover runs inside the mapping. The pages
                        // stay pinned rather than be released while perhaps still mapped.
                        pr_err!("unmap at {:#x}: IOMMU unmapped {:#x} of {:#x} bytes\n", pos, n, rest);
                        break;
                    }
                }
            }
            let len = contiguous_len(first, pos, phys, rest, large);
            q.add(pos, phys >> PAGE_SHIFT, len >> PAGE_SHIFT);
            offset += len;
            mm::cond_resched();
        }
        q.finish()
    })
}

/// Releases the pins of the run of `pages` pages from `pfn` (dirtied if `dirty`) and returns how
/// many count as locked memory: with one call if `all_pinned`, else checking each page.
///
/// # Safety
///
/// The run's pages were pinned for the mapping, are reachable by no device (unmapped, IOTLB
/// synced) and are released once; `all_pinned` only if the mapping pinned no MMIO or reserved pfn.
unsafe fn unpin_run(pfn: u64, pages: u64, dirty: bool, all_pinned: bool) -> u64 {
    if all_pinned {
        // SAFETY: The caller's contract; every page of the run is pinned memory, not reserved.
        unsafe { mm::unpin_pinned_pfns(pfn, pages, dirty) }
    } else {
        // SAFETY: The caller's contract.
        unsafe { mm::unpin_pfns(pfn, pages, dirty) }
    }
}

/// Bytes unmapped from the first domain per IOTLB sync when the runs are recorded: a rescheduling
/// point per 1 GiB (at least one run), as type1 has one per run.
const RECORDED_SPAN: u64 = 1 << 30;

/// [`unmap_unpin_range`] of a mapping whose runs are known (`runs`, (first pfn, pages) from
/// `iova`): spans of whole runs of about [`RECORDED_SPAN`] bytes are unmapped from `first` with
/// one `iommu_unmap_fast` each and one IOTLB sync, then their runs are unpinned. No page-table
/// read.
///
/// If the IOMMU unmapped less than a span (which cannot be: every page of it is mapped, and a
/// large IOMMU page never crosses a run's end), the pages it did not unmap stay pinned rather
/// than be released while perhaps still mapped.
fn unmap_recorded(
    first: &Domain,
    iova: u64,
    runs: impl Iterator<Item = (u64, u64)> + Clone,
    dirty: bool,
    all_pinned: bool,
) -> u64 {
    first.with_gather(|gather| {
        let mut locked = 0u64;
        let mut pos = iova;
        let mut rest = runs.peekable();
        while rest.peek().is_some() {
            // The span: whole runs, until it reaches RECORDED_SPAN bytes.
            let span = rest.clone();
            let mut bytes = 0u64;
            let mut count = 0usize;
            while let Some(&(_, pages)) = rest.peek() {
                if bytes >= RECORDED_SPAN {
                    break;
                }
                bytes += pages << PAGE_SHIFT;
                count += 1;
                rest.next();
            }
            let unmapped = gather.unmap(pos, bytes);
            gather.sync();
            if unmapped != bytes {
                pr_err!("unmap at {:#x}: IOMMU unmapped {:#x} of {:#x} bytes\n", pos, unmapped, bytes);
            }
            // Pages the IOMMU unmapped, from the span's start: those are released.
            let mut keep = unmapped.min(bytes) >> PAGE_SHIFT;
            for (i, (pfn, pages)) in span.take(count).enumerate() {
                // A span can hold 100,000 runs of fragmented memory: reschedule now and then, as
                // the walk does once per run.
                if i % 64 == 63 {
                    mm::cond_resched();
                }
                let n = pages.min(keep);
                if n == 0 {
                    break;
                }
                keep -= n;
                // The pages were pinned for this mapping and mapped at this span (its record says
                // so, or its one run, whose first pfn the first domain translates the span's start
                // to), unmapped from every domain just above, the first one's IOTLB synced (the
                // others unmap with their own sync): no device reaches them.
                // SAFETY: As above; `all_pinned` is the mapping's (no MMIO or reserved pfn pinned).
                locked += unsafe { unpin_run(pfn, n, dirty, all_pinned) };
            }
            pos += bytes;
            mm::cond_resched();
        }
        locked
    })
}

/// Runs recorded between IOTLB syncs of [`unmap_unpin_range`] (16 bytes each, on the stack).
const UNPIN_RUNS: usize = 64;

/// The pins of pages unmapped from the first domain, held until the IOTLB sync that removes their
/// translations, then released: a page is never unpinned while the device may still reach it.
///
/// Runs are recorded as `(pfn, pages)` in IOVA order. The runs from `window_run` on are the IOVA
/// span `window` (start, bytes), read but not unmapped yet; the runs before it are unmapped,
/// through the gather, but perhaps not synced.
struct Unpinner<'g, 'a> {
    gather: &'g mut Gather<'a>,
    runs: [(u64, u64); UNPIN_RUNS],
    len: usize,
    window: (u64, u64),
    window_run: usize,
    dirty: bool,
    /// Every pfn is a pinned page that is not reserved: runs are unpinned without a check per page.
    all_pinned: bool,
    /// Pages released that count as locked memory.
    locked: u64,
}

impl<'g, 'a> Unpinner<'g, 'a> {
    fn new(gather: &'g mut Gather<'a>, dirty: bool, all_pinned: bool) -> Self {
        Self {
            gather,
            runs: [(0, 0); UNPIN_RUNS],
            len: 0,
            window: (0, 0),
            window_run: 0,
            dirty,
            all_pinned,
            locked: 0,
        }
    }

    /// Records the run of `pages` pages from `pfn` mapped at `iova`, to be unmapped with the window.
    fn add(&mut self, iova: u64, pfn: u64, pages: u64) {
        let (start, bytes) = self.window;
        if bytes != 0 && start + bytes != iova {
            // A hole before `iova` ends the window.
            self.unmap_window();
        }
        if self.window.1 == 0 {
            self.window = (iova, 0);
            self.window_run = self.len;
        }
        if !self.merge(pfn, pages, self.window_run) {
            if self.len == UNPIN_RUNS {
                // Full: unmap and release what is recorded, and start the window here.
                self.release();
                self.window = (iova, 0);
                self.window_run = 0;
            }
            self.runs[self.len] = (pfn, pages);
            self.len += 1;
        }
        self.window.1 += pages << PAGE_SHIFT;
    }

    /// Records the run of `pages` pages from `pfn` that was unmapped already ([`Self::unmap_page`]).
    fn add_unmapped(&mut self, pfn: u64, pages: u64) {
        // The window was unmapped first: every run recorded is unmapped, any may be extended.
        if !self.merge(pfn, pages, 0) {
            if self.len == UNPIN_RUNS {
                self.release();
            }
            self.runs[self.len] = (pfn, pages);
            self.len += 1;
        }
        self.window_run = self.len;
    }

    /// Extends the last run if it is at `from` or later and `pfn` continues it.
    fn merge(&mut self, pfn: u64, pages: u64, from: usize) -> bool {
        match self.len.checked_sub(1).filter(|&last| last >= from) {
            Some(last) if self.runs[last].0 + self.runs[last].1 == pfn => {
                self.runs[last].1 += pages;
                true
            }
            _ => false,
        }
    }

    /// Unmaps the IOMMU page at `iova` (after the window, which goes first) and returns its size:
    /// the whole large page if one is there.
    fn unmap_page(&mut self, iova: u64) -> u64 {
        self.unmap_window();
        self.gather.unmap(iova, PAGE_SIZE)
    }

    /// Unmaps the window. If the IOMMU unmapped less, the runs it did not unmap are dropped: they
    /// stay pinned rather than be released while still mapped.
    fn unmap_window(&mut self) {
        let (start, bytes) = self.window;
        self.window = (0, 0);
        if bytes == 0 {
            self.window_run = self.len;
            return;
        }
        let unmapped = self.gather.unmap(start, bytes);
        if unmapped != bytes {
            pr_err!("unmap at {:#x}: IOMMU unmapped {:#x} of {:#x} bytes\n", start, unmapped, bytes);
        }
        if unmapped < bytes {
            let mut keep = unmapped >> PAGE_SHIFT;
            let mut i = self.window_run;
            while i < self.len && keep != 0 {
                self.runs[i].1 = self.runs[i].1.min(keep);
                keep -= self.runs[i].1;
                i += 1;
            }
            self.len = i;
        }
        self.window_run = self.len;
    }

    /// Unmaps the window, syncs the IOTLB, and releases the pins of every run recorded.
    fn release(&mut self) {
        self.unmap_window();
        self.gather.sync();
        for &(pfn, pages) in &self.runs[..self.len] {
            // The run's pages were pinned for this mapping and mapped contiguously (large IOMMU
            // pages only cover contiguous pinned runs). They are unmapped from every domain, the
            // first one's IOTLB synced just above (the others unmap with their own sync): no
            // device reaches them, and the pins are ours to release.
            // SAFETY: As above; `all_pinned` is the mapping's (no MMIO or reserved pfn pinned).
            self.locked += unsafe { unpin_run(pfn, pages, self.dirty, self.all_pinned) };
        }
        self.len = 0;
        self.window_run = 0;
    }

    /// Releases what is left; returns how many pages released count as locked memory.
    fn finish(mut self) -> u64 {
        self.release();
        self.locked
    }
}
