// SPDX-License-Identifier: GPL-2.0

//! DMA mappings: user memory pinned and mapped at an IOVA range in every domain of a container.
//!
//! A mapping is created whole by `VFIO_IOMMU_MAP_DMA` and removed whole by
//! `VFIO_IOMMU_UNMAP_DMA` (type1 never splits one). Pinning goes in batches of up to 4,096 pages,
//! each charged to the owner's locked memory as it is pinned (type1 charges run by run), and maps
//! each physically contiguous run whole, so the IOMMU driver can use large pages, up to 16 runs
//! with one IOTLB sync per domain (`dma_map.rs`); runs continue across batches, and a mapping of
//! 2 MiB or more records them (`pinned_runs.rs`) if they are few enough. Unmapping takes the runs
//! from that record (or, for a mapping of one run, its first pfn), or else reads them back from
//! the first domain (`iommu_iova_to_phys`; a large IOMMU page is sized by unmapping it, not walked
//! page by page), unmaps them with deferred IOTLB invalidation, and releases their pins after the
//! sync (`dma_unmap.rs`): pfns are never stored per page.
//!
//! Locked memory is accounted per page by its own pfn, with the invariant of [`crate::account`].
//!
//! Locking: every function here runs under the owning container's mutex, or on a mapping that
//! is out of the container's tree (a map or unmap of a busy mapping, `map.rs`), and pins or
//! charges memory under the owner's `mmap_lock` (taken inside [`crate::mm`]).

use crate::{
    account::{LockedAccount, PinCharge},
    compat,
    dirty::{Chunk, CHUNK_BITS},
    dma_map::RunQueue,
    dma_unmap::{unmap_unpin_range, MappedRuns},
    domain::{Domain, Prot, MAP_RUN_MAX_PAGES},
    iova::IovaRange,
    page_records::PageRecords,
    pin_batch::PinBatch,
    pinned_runs::RunRecorder,
    user_bitmap::DirtySource,
    mm::{self, MmOwner, PAGE_SHIFT, PAGE_SIZE},
    vendor::VendorPin,
};
use kernel::{
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::Arc,
};

// A mapping's tree node (`rb_node`, key, mapping) fits the 96-byte slab, like type1's
// `struct vfio_dma`: keep the mapping at 64 bytes.
const _: () = assert!(core::mem::size_of::<DmaMapping>() <= 64);

/// A DMA mapping of a container.
pub(crate) struct DmaMapping {
    /// The range of IO virtual addresses.
    pub(crate) range: IovaRange,
    /// The user virtual address the range maps (meaningless while `vaddr_invalid`).
    pub(crate) vaddr: u64,
    /// What the device may do.
    pub(crate) prot: Prot,
    /// Whose memory it is, and the pages charged to its locked memory ([`crate::account`]).
    pub(crate) account: LockedAccount,
    /// Pages pinned by vendor drivers, keyed by IOVA.
    pub(crate) vendor_pins: RBTree<u64, VendorPin>,
    /// Pages dirtied since the last report, while tracking, and the runs pinned for the IOMMU of
    /// a large mapping, off the node ([`PageRecords`]).
    pub(crate) records: PageRecords,
    /// Every page is dirty once, at the next report (an IOMMU group that could write anywhere
    /// left while tracking, or a mark could not be recorded).
    pub(crate) all_dirty_once: bool,
    /// Whether the memory is pinned and mapped in the container's domains; false while the
    /// container has no domain.
    pub(crate) iommu_mapped: bool,
    /// Whether userspace invalidated `vaddr` (`VFIO_DMA_UNMAP_FLAG_VADDR`) and has not supplied
    /// a new one yet; the device keeps its access meanwhile.
    pub(crate) vaddr_invalid: bool,
    /// Whether a pfn mapped for the IOMMU was MMIO or a reserved page (never pinned, as in type1):
    /// only then does unmapping check each page before unpinning (upstream type1's `has_rsvd`).
    /// Set when such a pfn is pinned and kept until the mapping goes: a stale true costs only the
    /// checks.
    pub(crate) reserved_pfns: bool,
    /// Whether the mapping is pinned and mapped as one physically contiguous run: its unmap then
    /// reads the first pfn only. Set by [`Self::pin_and_map`], cleared by [`Self::unmap_and_unpin`].
    pub(crate) one_run: bool,
    /// Whether a map or unmap is working on the mapping without the container mutex
    /// (`map.rs`); only that task changes it then, everyone else waits ([`crate::container`]).
    pub(crate) busy: Busy,
}

/// What a task is doing to a mapping without the container mutex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Busy {
    /// Nothing: the mapping is as every request sees it.
    No,
    /// `MAP_DMA` is pinning and mapping it: the tree holds a husk (nothing pinned or charged)
    /// that takes the IOVA range until the real mapping replaces it.
    Mapping,
    /// `UNMAP_DMA` removed it from the point of view of every request (its size is counted, its
    /// dirty bits are written); the tree holds the mapping until an unmap takes it out.
    Unmapping,
    /// An unmap took it out and is unmapping and unpinning it: the tree holds a husk until that
    /// unmap removes the node.
    Removing,
}

/// What [`DmaMapping::remove`] released.
pub(crate) struct Removed {
    /// IOMMU pins released that counted as locked memory (see [`DmaMapping::unmap_and_unpin`]).
    pub(crate) iommu_locked: u64,
    /// Vendor pins a driver had left behind, released.
    pub(crate) vendor: u64,
    /// Pages of locked memory returned to the owner.
    pub(crate) uncharged: u64,
}

/// What a failed or finished [`DmaMapping::pin_and_map`] did so far.
#[derive(Default)]
struct Pinned {
    /// Bytes mapped into all domains, from the start of the mapping.
    mapped: u64,
    /// Pages charged for the IOMMU pins.
    charged: u64,
    /// IOMMU-pinned pages that count as locked memory.
    locked: u64,
    /// Of those, pages a vendor pin holds charged already ([`PinCharge::Own`], same pfn): not
    /// charged again; the vendor pins become [`PinCharge::Shared`] if the mapping succeeds.
    shared: u64,
}

impl DmaMapping {
    /// A mapping of `range` at `vaddr` owned by `owner` (the calling task), not yet pinned.
    pub(crate) fn new(range: IovaRange, vaddr: u64, prot: Prot, owner: Arc<MmOwner>) -> Self {
        Self {
            range,
            vaddr,
            prot,
            account: LockedAccount::new(owner),
            vendor_pins: RBTree::new(),
            records: PageRecords::new(),
            all_dirty_once: false,
            iommu_mapped: false,
            vaddr_invalid: false,
            reserved_pfns: false,
            one_run: false,
            busy: Busy::No,
        }
    }

    /// A husk of the mapping in state `busy`: the same range, address, access and owner, and
    /// nothing pinned, charged, marked or mapped. It holds the mapping's place in the tree while a
    /// task works on the mapping itself without the container mutex.
    pub(crate) fn husk(&self, busy: Busy) -> Self {
        let mut h = Self::new(self.range, self.vaddr, self.prot, self.account.owner().clone());
        h.vaddr_invalid = self.vaddr_invalid;
        h.busy = busy;
        h
    }

    /// The size in bytes; a mapping is at most the user address space, so it fits.
    pub(crate) fn size(&self) -> u64 {
        self.range.size().unwrap_or(u64::MAX)
    }

    /// The user address of the page at `iova` (inside the mapping).
    fn vaddr_of(&self, iova: u64) -> Result<u64> {
        let offset = iova.checked_sub(self.range.start).ok_or(EINVAL)?;
        self.vaddr.checked_add(offset).ok_or(EINVAL)
    }

    /// Moves the mapping's charge to the calling task when it supplies a new vaddr from another
    /// address space (type1's `vfio_change_dma_owner`).
    pub(crate) fn change_owner(&mut self) -> Result {
        if self.account.owner().is_current() {
            return Ok(());
        }
        let new = Arc::new(MmOwner::current()?, GFP_KERNEL)?;
        self.account.move_to(new)
    }

    /// Vendor pins in state `charge`.
    pub(crate) fn vendor_pins_in(&self, charge: PinCharge) -> u64 {
        self.vendor_pins.values().filter(|p| p.charge == charge).count() as u64
    }

    /// Pins the mapping's memory and maps it into `domains` (the container's domains, or the
    /// first domain of a container that had none). On failure nothing of it stays pinned, mapped
    /// or charged, and `ENOMEM` comes as soon as a batch does not fit `RLIMIT_MEMLOCK`: pages
    /// that are not locked memory (a device BAR) are never charged, so a BAR maps at the limit.
    ///
    /// Returns how many of the pages pinned count as locked memory (the `iommu_locked` of the
    /// invariant in [`crate::account`]), which [`Self::unmap_and_unpin`] gives back.
    pub(crate) fn pin_and_map(&mut self, domains: &[&Domain], batch: &mut PinBatch) -> Result<u64> {
        let mut p = Pinned::default();
        let pages = self.size() >> PAGE_SHIFT;
        let mut runs = RunRecorder::new(pages);
        if let Err(e) = self.pin_and_map_runs(domains, batch, &mut p, &mut runs) {
            unmap_unpin_range(
                self.range.start,
                p.mapped,
                self.prot.write,
                !self.reserved_pfns,
                MappedRuns::Unknown,
                domains.iter().copied(),
            );
            self.account.uncharge(p.charged);
            return Err(e);
        }
        self.iommu_mapped = true;
        self.one_run = runs.is_one_run(pages);
        self.records.set_runs(runs.finish(pages));
        // Vendor pins of the pages now also pinned for the IOMMU share its charge.
        let mut shared = 0u64;
        if let Some(first) = domains.first() {
            for (&iova, pin) in self.vendor_pins.iter_mut() {
                if pin.charge == PinCharge::Own && first.iova_to_phys(iova) >> PAGE_SHIFT == pin.pfn {
                    pin.charge = PinCharge::Shared;
                    shared += 1;
                }
            }
        }
        if shared != p.shared {
            pr_err!("accounting invariant violated at map: {} shared pins, {} expected\n", shared, p.shared);
        }
        let expected = p.locked.saturating_add(self.vendor_pins_in(PinCharge::Own));
        self.account.check(expected, "map");
        Ok(p.locked)
    }

    /// The loop of [`Self::pin_and_map`]: on return, the first `p.mapped` bytes are mapped into
    /// all domains, `p.charged` pages are charged, nothing else is pinned, and `runs` has
    /// recorded every run mapped.
    fn pin_and_map_runs(
        &mut self,
        domains: &[&Domain],
        batch: &mut PinBatch,
        p: &mut Pinned,
        runs: &mut RunRecorder,
    ) -> Result {
        let total = self.size() >> PAGE_SHIFT;
        let split_runs = crate::params::disable_hugepages();
        let mut pinned = 0u64;
        // A run of physically contiguous pages, pinned, not mapped yet: (pfn, pages).
        let mut run: Option<(u64, u64)> = None;
        // Runs that ended, pinned, not mapped yet.
        let mut q = RunQueue::new();
        let result = 'pin: loop {
            if pinned == total {
                break Ok(());
            }
            if mm::fatal_signal_pending() {
                break Err(EINTR);
            }
            let buf = batch.pfns();
            let want = usize::try_from(total - pinned)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            // Cannot overflow: `vaddr + size - 1` was checked when the mapping was requested.
            let vaddr = self.vaddr + (pinned << PAGE_SHIFT);
            let (n, rsvd) = match self.account.owner().pin(vaddr, self.prot.write, &mut buf[..want]) {
                Ok(r) => r,
                Err(e) => break Err(e),
            };
            let pfns = &buf[..n];
            if rsvd != 0 {
                self.reserved_pfns = true;
            }
            let batch_iova = self.range.start + (pinned << PAGE_SHIFT);
            let locked = (n as u64).saturating_sub(rsvd);
            let shared = shared_with_vendor(&mut self.vendor_pins, batch_iova, pfns);
            if let Err(e) = self.account.charge(locked.saturating_sub(shared)) {
                unpin_each(pfns);
                break Err(e);
            }
            p.charged += locked.saturating_sub(shared);
            p.locked += locked;
            p.shared += shared;
            pinned += n as u64;
            for (i, &pfn) in pfns.iter().enumerate() {
                run = match run {
                    Some((start, len)) if !split_runs && pfn == start + len => Some((start, len + 1)),
                    Some((start, len)) => {
                        if let Err(e) = self.queue_run(domains, &mut q, p, runs, start, len) {
                            unpin_each(&pfns[i..]);
                            run = None;
                            break 'pin Err(e);
                        }
                        Some((pfn, 1))
                    }
                    None => Some((pfn, 1)),
                };
            }
            mm::cond_resched();
        };
        let result = match (run, result) {
            (Some((start, len)), Ok(())) => self.queue_run(domains, &mut q, p, runs, start, len),
            (Some((start, len)), Err(e)) => {
                // SAFETY: The run's pages were pinned by us and are not mapped.
                unsafe { mm::unpin_pfns(start, len, false) };
                Err(e)
            }
            (None, r) => r,
        };
        let result = result.and_then(|()| self.flush_queue(domains, &mut q, p, runs));
        // After an error, what is still queued was never mapped: its pins go here, the one place.
        q.unpin_all();
        result
    }

    /// Queues the pinned run of `pages` pages from `pfn`, which follows the runs queued, mapping
    /// the queue whenever it is full. On failure the rest of this run is released (unpinned; its
    /// charge stays with `p.charged`) and what is queued stays queued, unmapped, for
    /// [`Self::pin_and_map_runs`] to release.
    fn queue_run(
        &self,
        domains: &[&Domain],
        q: &mut RunQueue,
        p: &mut Pinned,
        runs: &mut RunRecorder,
        mut pfn: u64,
        mut pages: u64,
    ) -> Result {
        while pages != 0 {
            let n = pages.min(MAP_RUN_MAX_PAGES);
            let queued = if q.is_full() {
                self.flush_queue(domains, q, p, runs).map(|()| q.push(pfn, n))
            } else {
                Ok(q.push(pfn, n))
            };
            if queued != Ok(true) {
                // SAFETY: The rest of the run was pinned by us and is not mapped.
                unsafe { mm::unpin_pfns(pfn, pages, false) };
                return Err(queued.err().unwrap_or(EINVAL));
            }
            pfn += n;
            pages -= n;
        }
        Ok(())
    }

    /// Maps the queued runs where the mapped part of the mapping ends, in every domain, records
    /// them, and empties the queue; on failure leaves them queued and mapped nowhere.
    fn flush_queue(&self, domains: &[&Domain], q: &mut RunQueue, p: &mut Pinned, runs: &mut RunRecorder) -> Result {
        // Cannot overflow: the queued runs are inside the mapping.
        let iova = self.range.start + p.mapped;
        q.map(domains, iova, self.prot, !self.reserved_pfns)?;
        p.mapped += q.bytes();
        for (pfn, pages) in q.iter() {
            runs.record(pfn, pages);
        }
        q.clear();
        Ok(())
    }

    /// Unmaps the mapping from `domains` (all domains of the container, which all map it) and
    /// releases its IOMMU pins and their charge. Cannot fail and does not allocate. Returns how
    /// many of the pages unpinned count as locked memory (0 if the mapping was not mapped).
    ///
    /// Pages still pinned by vendor drivers stay pinned and charged: a vendor pin that shared the
    /// charge of an IOMMU pin takes it over.
    pub(crate) fn unmap_and_unpin<'a>(&mut self, domains: impl Iterator<Item = &'a Domain>) -> u64 {
        if !self.iommu_mapped {
            return 0;
        }
        let runs = self.records.take_runs();
        let known = match (&runs, self.one_run) {
            (Some(r), _) => MappedRuns::Recorded(r),
            (None, true) => MappedRuns::One,
            (None, false) => MappedRuns::Unknown,
        };
        let unpinned =
            unmap_unpin_range(self.range.start, self.size(), self.prot.write, !self.reserved_pfns, known, domains);
        self.one_run = false;
        self.iommu_mapped = false;
        let mut taken_over = 0u64;
        for pin in self.vendor_pins.values_mut() {
            if pin.charge == PinCharge::Shared {
                pin.charge = PinCharge::Own;
                taken_over += 1;
            }
        }
        if taken_over > unpinned {
            pr_err!("accounting invariant violated at unmap: {} shared pins, {} pages unpinned\n", taken_over, unpinned);
        }
        self.account.uncharge(unpinned.saturating_sub(taken_over));
        let expected = self.vendor_pins_in(PinCharge::Own);
        self.account.check(expected, "unmap");
        unpinned
    }

    /// Takes the mapping down for good: vendor pins left behind by a driver that did not unpin
    /// are released (with a warning), the IOMMU mappings and pins go, and the charge with them.
    pub(crate) fn remove<'a>(mut self, domains: impl Iterator<Item = &'a Domain>) -> Removed {
        let uncharged = self.account.pages();
        let mut left = 0u64;
        loop {
            let Some(&iova) = self.vendor_pins.keys().next() else {
                break;
            };
            if let Some(pin) = self.vendor_pins.remove(&iova) {
                // SAFETY: The vendor pin was taken by `pin_vendor_page` and is released once.
                unsafe { mm::unpin_pfns(pin.pfn, 1, self.prot.write) };
                if pin.charge == PinCharge::Own {
                    self.account.uncharge(1);
                }
                left += 1;
            }
        }
        if left != 0 {
            pr_warn!(
                "{} page(s) at IOVA {:#x} were still pinned by a vendor driver; released\n",
                left,
                self.range.start
            );
        }
        let iommu_locked = self.unmap_and_unpin(domains);
        self.account.check(0, "remove");
        Removed {
            iommu_locked,
            vendor: left,
            uncharged,
        }
    }

    /// Pins the page at `iova` (page aligned, inside the mapping) for a vendor driver; a page
    /// pinned already gets one more reference. `iommu` is the container's first domain, if any.
    /// Returns the pfn and whether the pin is [`PinCharge::Pending`]: a new pin of a page that
    /// counts as locked memory and that no IOMMU pin of `iova` holds. The caller charges such
    /// pins, once for a whole `pin_pages` request, and then calls [`Self::commit_pending`].
    pub(crate) fn pin_vendor_page(&mut self, iova: u64, iommu: Option<&Domain>) -> Result<(u64, bool)> {
        if let Some(pin) = self.vendor_pins.get_mut(&iova) {
            pin.refs = pin.refs.checked_add(1).ok_or(EBUSY)?;
            return Ok((pin.pfn, false));
        }
        let node = RBTreeNodeReservation::new(GFP_KERNEL_ACCOUNT)?;
        let vaddr = self.vaddr_of(iova)?;
        let (pfn, reserved) = self.account.owner().pin_one(vaddr, self.prot.write)?;
        // Vendor drivers get `struct page`s: MMIO (peer-to-peer mappings) is refused, as in type1.
        // Nothing was pinned for it.
        if !mm::pfn_valid(pfn) {
            return Err(EINVAL);
        }
        let iommu_pfn = iommu.filter(|_| self.iommu_mapped).map(|d| d.iova_to_phys(iova) >> PAGE_SHIFT);
        let charge = if reserved {
            PinCharge::Reserved
        } else if iommu_pfn == Some(pfn) {
            PinCharge::Shared
        } else {
            PinCharge::Pending
        };
        self.vendor_pins.insert(node.into_node(iova, VendorPin { pfn, refs: 1, charge }));
        Ok((pfn, charge == PinCharge::Pending))
    }

    /// Marks the [`PinCharge::Pending`] vendor pins of the `pages` pages from `iova` charged
    /// ([`PinCharge::Own`]), once the caller has charged them to [`Self::account`].
    pub(crate) fn commit_pending(&mut self, iova: u64, pages: u64) {
        let end = iova.saturating_add(pages.saturating_mul(PAGE_SIZE));
        let mut cursor = compat::cursor_lower_bound_mut(&mut self.vendor_pins, &iova);
        while let Some(mut c) = cursor {
            let (&at, pin) = c.current_mut();
            if at >= end {
                break;
            }
            if pin.charge == PinCharge::Pending {
                pin.charge = PinCharge::Own;
            }
            cursor = c.move_next();
        }
    }

    /// Drops one vendor reference on the page at `iova`; the last one unpins it (and, while
    /// `tracking`, marks it dirty for the next report: it may have been written while pinned).
    /// Returns the released pin's charge, which the caller returns if it is [`PinCharge::Own`].
    pub(crate) fn unpin_vendor_page(&mut self, iova: u64, tracking: bool, pgshift: u32) -> Option<PinCharge> {
        let mut entry = self.vendor_pins.find_mut(&iova)?;
        let pin = entry.get_mut();
        pin.refs = pin.refs.saturating_sub(1);
        if pin.refs != 0 {
            return None;
        }
        let pin = entry.remove();
        // SAFETY: The vendor pin was taken by `pin_vendor_page` and this was its last reference.
        unsafe { mm::unpin_pfns(pin.pfn, 1, self.prot.write) };
        if tracking {
            let page = (iova - self.range.start) >> pgshift;
            if self.records.mark_dirty(page, page).is_err() {
                // Cannot record it: report everything once rather than lose it.
                self.all_dirty_once = true;
            }
        }
        Some(pin.charge)
    }

    /// Starts a new reporting period after a report: nothing marked dirty; the marks' memory is
    /// kept where pages were marked in the period that ended.
    #[unsafe(link_section = ".text.vir_hot")]
    pub(crate) fn new_dirty_period(&mut self) {
        self.records.new_dirty_period();
        self.all_dirty_once = false;
    }

    /// Nothing marked dirty, and no memory for marks (`START`, `STOP`).
    pub(crate) fn clear_dirty(&mut self) {
        self.records.clear_dirty();
        self.all_dirty_once = false;
    }
}

impl DirtySource for DmaMapping {
    #[unsafe(link_section = ".text.vir_hot")]
    fn range(&self) -> IovaRange {
        self.range
    }

    #[unsafe(link_section = ".text.vir_hot")]
    fn all_dirty_once(&self) -> bool {
        self.all_dirty_once
    }

    /// Pages pinned by vendor drivers are dirty, and pages marked since the last report.
    fn dirty_runs_in(&mut self, lo: u64, hi: u64, pgshift: u32, f: &mut dyn FnMut(u64, &[u64])) {
        // Marks first (runs that never overlap), then the vendor pins, a word each.
        if let Some(d) = self.records.dirty() {
            d.for_each_run_in(lo, hi, &mut |base, words| f(base, words));
        }
        let start = self.range.start;
        let mut cursor = compat::cursor_lower_bound_mut(&mut self.vendor_pins, &(start + (lo << pgshift)));
        while let Some(c) = cursor {
            let (&iova, _) = c.current();
            let p = (iova - start) >> pgshift;
            if p >= hi {
                break;
            }
            f(p & !63, &[1 << (p % 64)]);
            cursor = c.move_next();
        }
    }

    #[unsafe(link_section = ".text.vir_hot")]
    fn whole_chunk(&mut self, lo: u64, pgshift: u32) -> Option<Option<&Chunk>> {
        let pgsize = 1u64.checked_shl(pgshift)?;
        let first = self.range.start.checked_add(lo.checked_mul(pgsize)?)?;
        let last = first.checked_add(CHUNK_BITS.checked_mul(pgsize)? - 1)?;
        let pinned = compat::cursor_lower_bound_mut(&mut self.vendor_pins, &first)
            .is_some_and(|c| *c.current().0 <= last);
        if pinned {
            return None;
        }
        Some(self.records.dirty().and_then(|d| d.chunk_at(lo)))
    }
}

/// How many of the pages just pinned for the IOMMU at `pfns` (from `iova`) are held charged by a
/// vendor pin of the same IOVA and page already.
fn shared_with_vendor(pins: &mut RBTree<u64, VendorPin>, iova: u64, pfns: &[u64]) -> u64 {
    let mut shared = 0u64;
    let mut cursor = compat::cursor_lower_bound_mut(pins, &iova);
    while let Some(c) = cursor {
        let (&at, pin) = c.current();
        let Ok(i) = usize::try_from((at - iova) >> PAGE_SHIFT) else {
            break;
        };
        let Some(&pfn) = pfns.get(i) else {
            break;
        };
        if pin.charge == PinCharge::Own && pin.pfn == pfn {
            shared += 1;
        }
        cursor = c.move_next();
    }
    shared
}

/// Releases the pins of pages that are not contiguous.
fn unpin_each(pfns: &[u64]) {
    for &pfn in pfns {
        // SAFETY: Every pfn in the batch was pinned by us and not mapped or released since.
        unsafe { mm::unpin_pfns(pfn, 1, false) };
    }
}
