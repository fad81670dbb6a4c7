// SPDX-License-Identifier: GPL-2.0

//! Mapping a mapping's pinned runs into its domains a few at a time: up to [`MAP_RUNS_MAX`] runs,
//! one after the other in IOVA, with one IOTLB sync per domain (`Domain::map_runs`, the IOMMU
//! core's `iommu_map_sg()`), where one `iommu_map()` per run, as type1 and iommufd do, syncs once
//! per run. With a VT-d in caching mode (a guest's vIOMMU) every sync is an invalidation the
//! hypervisor traps, and 4 KiB memory in a guest that has run a while comes in runs of about 3
//! pages: 100,000 syncs for 1 GiB.
//!
//! Also here: replaying a mapping into a new domain.
//!
//! A mapping that pinned MMIO or reserved pfns (no `struct page`, which a scatterlist needs) maps
//! its runs one `iommu_map()` each, as before.
//!
//! Lock order: as the caller (`DmaMapping::pin_and_map`); takes no lock.

use crate::{
    dma::DmaMapping,
    dma_unmap::contiguous_len,
    domain::{Domain, Prot, MAP_RUNS_MAX, MAP_RUN_MAX_PAGES},
    mm::{self, PAGE_SHIFT, PAGE_SIZE},
};
use kernel::prelude::*;

/// Runs pinned and not mapped yet, in IOVA order from where the mapping's mapped part ends.
pub(crate) struct RunQueue {
    /// (first pfn, pages) pairs.
    runs: [u64; 2 * MAP_RUNS_MAX],
    /// Runs queued.
    len: usize,
    /// Their bytes.
    bytes: u64,
}

impl RunQueue {
    /// An empty queue.
    pub(crate) fn new() -> Self {
        Self {
            runs: [0; 2 * MAP_RUNS_MAX],
            len: 0,
            bytes: 0,
        }
    }

    /// Whether another run fits.
    pub(crate) fn is_full(&self) -> bool {
        self.len == MAP_RUNS_MAX
    }

    /// Queues `pages` pages from `pfn` (at most [`MAP_RUN_MAX_PAGES`]) after the queued runs.
    /// The caller makes room first ([`Self::is_full`]); a run that does not fit is not queued and
    /// `false` is returned.
    pub(crate) fn push(&mut self, pfn: u64, pages: u64) -> bool {
        if self.is_full() || pages == 0 || pages > MAP_RUN_MAX_PAGES {
            return false;
        }
        self.runs[2 * self.len] = pfn;
        self.runs[2 * self.len + 1] = pages;
        self.len += 1;
        self.bytes += pages << PAGE_SHIFT;
        true
    }

    /// The queued runs: (first pfn, pages).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.runs[..2 * self.len].chunks_exact(2).map(|r| (r[0], r[1]))
    }

    /// Bytes queued.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Empties the queue (after mapping it, or releasing its pins).
    pub(crate) fn clear(&mut self) {
        self.len = 0;
        self.bytes = 0;
    }

    /// Releases the pins of the queued runs, which are not mapped, and empties the queue.
    pub(crate) fn unpin_all(&mut self) {
        for (pfn, pages) in self.iter() {
            // SAFETY: Every queued run was pinned by the map and is mapped nowhere (a failed
            // [`Self::map`] left none of it mapped).
            unsafe { mm::unpin_pfns(pfn, pages, false) };
        }
        self.clear();
    }

    /// Maps the queued runs into every domain from `iova`: one [`Domain::map_runs`] per domain if
    /// `batched`, else one `iommu_map()` per run. On failure nothing queued is mapped in any
    /// domain (what was mapped is unmapped) and the queue is left as it was.
    pub(crate) fn map(&self, domains: &[&Domain], iova: u64, prot: Prot, batched: bool) -> Result {
        if self.len == 0 {
            return Ok(());
        }
        for (i, d) in domains.iter().enumerate() {
            let r = if batched {
                d.map_runs(iova, &self.runs[..2 * self.len], prot)
            } else {
                map_each(d, iova, self.iter(), prot)
            };
            if let Err(e) = r {
                for done in &domains[..i] {
                    done.unmap(iova, self.bytes);
                }
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Maps `runs`, (first pfn, pages) one after the other from `iova`, into `d` with one
/// `iommu_map()` each; on failure unmaps those it mapped.
fn map_each(d: &Domain, iova: u64, runs: impl Iterator<Item = (u64, u64)>, prot: Prot) -> Result {
    let mut offset = 0u64;
    for (pfn, pages) in runs {
        let size = pages << PAGE_SHIFT;
        if let Err(e) = d.map(iova + offset, pfn << PAGE_SHIFT, size, prot) {
            if offset != 0 {
                d.unmap(iova, offset);
            }
            return Err(e);
        }
        offset += size;
        mm::cond_resched();
    }
    Ok(())
}

impl DmaMapping {
    /// Maps the pinned mapping into the new domain `to`, copying the translations of `from` (or
    /// of the record of its runs, which holds the same).
    pub(crate) fn replay(&self, from: &Domain, to: &Domain) -> Result {
        let mut offset = 0;
        let size = self.size();
        if let Some(runs) = self.records.runs() {
            return map_each(to, self.range.start, runs.iter(), self.prot);
        }
        while offset < size {
            let iova = self.range.start + offset;
            let phys = from.iova_to_phys(iova);
            if phys == 0 {
                offset += PAGE_SIZE;
                continue;
            }
            let len = contiguous_len(from, iova, phys, size - offset, 0);
            if let Err(e) = to.map(iova, phys, len, self.prot) {
                to.unmap(self.range.start, offset);
                return Err(e);
            }
            offset += len;
            mm::cond_resched();
        }
        Ok(())
    }
}
