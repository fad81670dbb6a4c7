// SPDX-License-Identifier: GPL-2.0

//! DMA mappings: user memory pinned and mapped at an IOVA range in every domain of a container.
//!
//! A mapping is created whole by `VFIO_IOMMU_MAP_DMA` and removed whole by
//! `VFIO_IOMMU_UNMAP_DMA` (type1 never splits one). Pinning goes in batches of up to 512 pages
//! and maps each physically contiguous run with one `iommu_map` per domain, so the IOMMU driver
//! can use large pages; runs continue across batches. Unmapping reads the runs back from the
//! first domain (`iommu_iova_to_phys`), unmaps each with one `iommu_unmap` per domain and then
//! releases its pins: pfns are not stored per page.
//!
//! Locking: every function here runs under the owning container's mutex, and pins or charges
//! memory under the owner's `mmap_lock` (taken inside [`crate::mm`]).

use crate::{
    dirty::DirtyPages,
    domain::{Domain, Prot},
    iova::IovaRange,
    mm::{self, MmOwner, PAGE_SHIFT, PAGE_SIZE},
    vendor::VendorPin,
};
use kernel::{
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::Arc,
};

/// Pages pinned per call of `pin_user_pages_remote` (type1's `VFIO_BATCH_MAX_CAPACITY`).
const BATCH_PAGES: usize = 512;

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
    /// Whose memory it is and who is charged for it; shared by the mappings a process makes.
    pub(crate) owner: Arc<MmOwner>,
    /// Pages charged to the owner's locked memory: the distinct, non-reserved pages of the
    /// mapping we hold pinned, for the IOMMU or for vendor drivers (type1's `locked_vm`).
    locked_pages: u64,
    /// Pages pinned by vendor drivers, keyed by IOVA.
    pub(crate) vendor_pins: RBTree<u64, VendorPin>,
    /// Pages dirtied since the last report, while tracking.
    pub(crate) dirty: DirtyPages,
    /// Every page is dirty once, at the next report (an IOMMU group that could write anywhere
    /// left while tracking, or a mark could not be recorded).
    pub(crate) all_dirty_once: bool,
    /// Whether the memory is pinned and mapped in the container's domains; false while the
    /// container has no domain.
    pub(crate) iommu_mapped: bool,
    /// Whether userspace invalidated `vaddr` (`VFIO_DMA_UNMAP_FLAG_VADDR`) and has not supplied
    /// a new one yet; the device keeps its access meanwhile.
    pub(crate) vaddr_invalid: bool,
}

impl DmaMapping {
    /// A mapping of `range` at `vaddr` owned by `owner` (the calling task), not yet pinned.
    pub(crate) fn new(range: IovaRange, vaddr: u64, prot: Prot, owner: Arc<MmOwner>) -> Self {
        Self {
            range,
            vaddr,
            prot,
            owner,
            locked_pages: 0,
            vendor_pins: RBTree::new(),
            dirty: DirtyPages::new(),
            all_dirty_once: false,
            iommu_mapped: false,
            vaddr_invalid: false,
        }
    }

    /// The size in bytes; a mapping is at most the user address space, so it fits.
    pub(crate) fn size(&self) -> u64 {
        self.range.size().unwrap_or(u64::MAX)
    }

    /// Moves the mapping's charge to the calling task when it supplies a new vaddr from another
    /// address space (type1's `vfio_change_dma_owner`).
    pub(crate) fn change_owner(&mut self) -> Result {
        if self.owner.is_current() {
            return Ok(());
        }
        let new = Arc::new(MmOwner::current()?, GFP_KERNEL)?;
        let pages = i64::try_from(self.locked_pages).map_err(|_| EINVAL)?;
        new.account(pages)?;
        // The old address space may be gone; then its charge went with it.
        let _ = self.owner.account(-pages);
        self.owner = new;
        Ok(())
    }

    /// Pins the mapping's memory and maps it into `domains`. On failure nothing of it stays
    /// pinned, mapped or charged.
    ///
    /// The whole mapping is charged to the owner's locked memory first (one `mmap_lock` round
    /// trip, and `ENOMEM` before anything is pinned when it does not fit); the pages that are not
    /// to be charged (reserved pages, and pages a vendor driver pinned, which are charged already)
    /// are given back at the end. The outcome is type1's, which charges run by run.
    pub(crate) fn pin_and_map(&mut self, domains: &[&Domain], batch: &mut PinBatch) -> Result {
        let total = self.size() >> PAGE_SHIFT;
        let pages = i64::try_from(total).map_err(|_| ENOMEM)?;
        self.owner.account(pages)?;
        let mut mapped = 0u64;
        let mut reserved = 0u64;
        let r = self.pin_and_map_runs(domains, batch, &mut mapped, &mut reserved);
        match r {
            Ok(()) => {
                let vendor = self.vendor_pins.values().filter(|v| !v.reserved).count() as u64;
                let not_charged = reserved + vendor;
                let _ = self.owner.account(-(not_charged as i64));
                self.locked_pages += total - not_charged;
                self.iommu_mapped = true;
            }
            Err(_) => {
                let domains = domains.iter().copied();
                unmap_unpin_range(self.range.start, mapped, self.prot.write, domains);
                let _ = self.owner.account(-pages);
            }
        }
        r
    }

    /// The loop of [`Self::pin_and_map`]: on return, the first `mapped` bytes are mapped into all
    /// domains, and nothing else is pinned; `reserved` counts the reserved pages pinned.
    fn pin_and_map_runs(
        &mut self,
        domains: &[&Domain],
        batch: &mut PinBatch,
        mapped: &mut u64,
        reserved: &mut u64,
    ) -> Result {
        let total = self.size() >> PAGE_SHIFT;
        let split_runs = crate::params::disable_hugepages();
        let mut pinned = 0u64;
        // A run of physically contiguous pages, pinned, not mapped yet: (pfn, pages).
        let mut run: Option<(u64, u64)> = None;
        let result = 'pin: loop {
            if pinned == total {
                break Ok(());
            }
            if mm::fatal_signal_pending() {
                break Err(EINTR);
            }
            let buf = batch.pfns();
            let want = usize::try_from(total - pinned)
                .unwrap_or(BATCH_PAGES)
                .min(buf.len());
            // Cannot overflow: `vaddr + size - 1` was checked when the mapping was requested.
            let vaddr = self.vaddr + (pinned << PAGE_SHIFT);
            let (n, rsvd) = match self.owner.pin(vaddr, self.prot.write, &mut buf[..want]) {
                Ok(r) => r,
                Err(e) => break Err(e),
            };
            let pfns = &buf[..n];
            *reserved += rsvd;
            pinned += n as u64;
            for (i, &pfn) in pfns.iter().enumerate() {
                run = match run {
                    Some((start, len)) if !split_runs && pfn == start + len => Some((start, len + 1)),
                    Some((start, len)) => {
                        if let Err(e) = self.map_run(domains, *mapped, start, len) {
                            // SAFETY: The run's pages were pinned by us and are not mapped.
                            unsafe { mm::unpin_pfns(start, len, false) };
                            unpin_each(&pfns[i..]);
                            run = None;
                            break 'pin Err(e);
                        }
                        *mapped += len << PAGE_SHIFT;
                        Some((pfn, 1))
                    }
                    None => Some((pfn, 1)),
                };
            }
            mm::cond_resched();
        };
        if let Some((start, len)) = run {
            let r = result.and_then(|()| self.map_run(domains, *mapped, start, len));
            match r {
                Ok(()) => *mapped += len << PAGE_SHIFT,
                Err(e) => {
                    // SAFETY: The run's pages were pinned by us and are not mapped.
                    unsafe { mm::unpin_pfns(start, len, false) };
                    return Err(e);
                }
            }
        }
        result
    }

    /// Maps the run of `pages` pages from `pfn` at `offset` into the mapping, in every domain; on
    /// failure in one, unmaps it from the others.
    fn map_run(&self, domains: &[&Domain], offset: u64, pfn: u64, pages: u64) -> Result {
        let iova = self.range.start + offset;
        let size = pages << PAGE_SHIFT;
        for (i, d) in domains.iter().enumerate() {
            if let Err(e) = d.map(iova, pfn << PAGE_SHIFT, size, self.prot) {
                for done in &domains[..i] {
                    done.unmap(iova, size);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Unmaps the mapping from `domains` (all domains of the container, which all map it),
    /// releases its pins and its charge. Cannot fail and does not allocate.
    ///
    /// Pages still pinned by vendor drivers stay pinned and charged.
    pub(crate) fn unmap_and_unpin<'a>(&mut self, domains: impl Iterator<Item = &'a Domain>) {
        if !self.iommu_mapped {
            return;
        }
        unmap_unpin_range(self.range.start, self.size(), self.prot.write, domains);
        self.iommu_mapped = false;
        let vendor = self.vendor_pins.values().filter(|v| !v.reserved).count() as u64;
        let pages = i64::try_from(self.locked_pages - vendor).unwrap_or(i64::MAX);
        let _ = self.owner.account(-pages);
        self.locked_pages = vendor;
    }

    /// Takes the mapping down for good: vendor pins left behind by a driver that did not unpin
    /// are released (with a warning), the IOMMU mappings and pins go, and the charge with them.
    pub(crate) fn remove<'a>(mut self, domains: impl Iterator<Item = &'a Domain>) {
        let mut left = 0u64;
        loop {
            let Some(iova) = self.vendor_pins.keys().next().copied() else {
                break;
            };
            if let Some(pin) = self.vendor_pins.remove(&iova) {
                // SAFETY: The vendor pin was taken by `pin_vendor_page` and is released once.
                unsafe { mm::unpin_pfns(pin.pfn, 1, self.prot.write) };
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
        self.unmap_and_unpin(domains);
        self.uncharge();
    }

    /// Pins the page at `iova` (page aligned, inside the mapping) for a vendor driver; a page
    /// pinned already gets one more reference. Returns its pfn and whether it must be charged to
    /// the owner's locked memory: a new pin of a non-reserved page while the mapping is not pinned
    /// for the IOMMU (which charged its pages already). The caller charges such pages with
    /// [`Self::charge`], once for a whole `pin_pages` request (type1 takes the owner's
    /// `mmap_lock` per page).
    pub(crate) fn pin_vendor_page(&mut self, iova: u64) -> Result<(u64, bool)> {
        if let Some(pin) = self.vendor_pins.get_mut(&iova) {
            pin.refs = pin.refs.checked_add(1).ok_or(EBUSY)?;
            return Ok((pin.pfn, false));
        }
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let vaddr = self.vaddr + (iova - self.range.start);
        let (pfn, reserved) = self.owner.pin_one(vaddr, self.prot.write)?;
        // Vendor drivers get `struct page`s: MMIO (peer-to-peer mappings) is refused, as in type1.
        // Nothing was pinned for it.
        if !mm::pfn_valid(pfn) {
            return Err(EINVAL);
        }
        let pin = VendorPin {
            pfn,
            refs: 1,
            reserved,
        };
        self.vendor_pins.insert(node.into_node(iova, pin));
        Ok((pfn, !self.iommu_mapped && !reserved))
    }

    /// Charges `pages` pages pinned by [`Self::pin_vendor_page`] to the owner's locked memory
    /// (`ENOMEM` beyond `RLIMIT_MEMLOCK`, as for mappings).
    pub(crate) fn charge(&mut self, pages: u64) -> Result {
        if pages != 0 {
            self.owner.account(i64::try_from(pages).map_err(|_| ENOMEM)?)?;
            self.locked_pages += pages;
        }
        Ok(())
    }

    /// Returns `pages` pages released by [`Self::unpin_vendor_page`] to the owner's locked memory.
    pub(crate) fn uncharge_pages(&mut self, pages: u64) {
        if pages != 0 {
            let _ = self.owner.account(-(i64::try_from(pages).unwrap_or(i64::MAX)));
            self.locked_pages -= pages;
        }
    }

    /// Drops one vendor reference on the page at `iova`; the last one unpins it (and, while
    /// `tracking`, marks it dirty for the next report: it may have been written while pinned).
    /// Returns whether a charged page was released: the caller uncharges such pages with
    /// [`Self::uncharge_pages`] (or not at all if they were never charged).
    pub(crate) fn unpin_vendor_page(&mut self, iova: u64, tracking: bool, pgshift: u32) -> bool {
        let Some(mut entry) = self.vendor_pins.find_mut(&iova) else {
            return false;
        };
        let pin = entry.get_mut();
        pin.refs -= 1;
        if pin.refs != 0 {
            return false;
        }
        let pin = entry.remove();
        // SAFETY: The vendor pin was taken by `pin_vendor_page` and this was its last reference.
        unsafe { mm::unpin_pfns(pin.pfn, 1, self.prot.write) };
        if tracking {
            let page = (iova - self.range.start) >> pgshift;
            if self.dirty.mark(page, page).is_err() {
                // Cannot record it: report everything once rather than lose it.
                self.all_dirty_once = true;
            }
        }
        !self.iommu_mapped && !pin.reserved
    }

    /// Calls `f` for the page numbers in `lo..hi` (in `1 << pgshift` units) that are pinned by
    /// vendor drivers or marked dirty.
    pub(crate) fn dirty_pages_in(&mut self, lo: u64, hi: u64, pgshift: u32, f: &mut impl FnMut(u64)) {
        let start = self.range.start;
        let mut cursor = self.vendor_pins.cursor_lower_bound(&(start + (lo << pgshift)));
        while let Some(c) = cursor {
            let (&iova, _) = c.current();
            let p = (iova - start) >> pgshift;
            if p >= hi {
                break;
            }
            f(p);
            cursor = c.move_next();
        }
        self.dirty.for_each_in(lo, hi, f);
    }

    /// Maps the pinned mapping into the new domain `to`, copying the translations of `from`.
    pub(crate) fn replay(&self, from: &Domain, to: &Domain) -> Result {
        let mut offset = 0;
        let size = self.size();
        while offset < size {
            let iova = self.range.start + offset;
            let phys = from.iova_to_phys(iova);
            if phys == 0 {
                offset += PAGE_SIZE;
                continue;
            }
            let len = contiguous_len(from, iova, phys, size - offset);
            if let Err(e) = to.map(iova, phys, len, self.prot) {
                to.unmap(self.range.start, offset);
                return Err(e);
            }
            offset += len;
            mm::cond_resched();
        }
        Ok(())
    }

    /// Starts a new reporting period: nothing marked dirty.
    pub(crate) fn clear_dirty(&mut self) {
        self.dirty.clear();
        self.all_dirty_once = false;
    }

    /// Releases the mapping's charge on the owner's locked memory.
    fn uncharge(&mut self) {
        let pages = i64::try_from(self.locked_pages).unwrap_or(i64::MAX);
        // Uncharging cannot exceed what was charged; an exited owner is not charged any more.
        let _ = self.owner.account(-pages);
        self.locked_pages = 0;
    }
}

/// The bytes from `iova` (translating to `phys` in `domain`) that are physically contiguous, up
/// to `max`.
fn contiguous_len(domain: &Domain, iova: u64, phys: u64, max: u64) -> u64 {
    let mut len = PAGE_SIZE;
    while len < max && domain.iova_to_phys(iova + len) == phys + len {
        len += PAGE_SIZE;
    }
    len
}

/// Releases the pins of pages that are not contiguous.
fn unpin_each(pfns: &[u64]) {
    for &pfn in pfns {
        // SAFETY: Every pfn in the batch was pinned by us and not mapped or released since.
        unsafe { mm::unpin_pfns(pfn, 1, false) };
    }
}

/// Unmaps `size` bytes from `iova` in every domain and releases the pins of the pages they
/// mapped, which the first domain tells (type1's `vfio_unmap_unpin`).
fn unmap_unpin_range<'a>(
    iova: u64,
    size: u64,
    dirty: bool,
    mut domains: impl Iterator<Item = &'a Domain>,
) {
    let Some(first) = domains.next() else {
        return;
    };
    if size == 0 {
        return;
    }
    for d in domains {
        d.unmap(iova, size);
    }
    let mut offset = 0;
    while offset < size {
        let pos = iova + offset;
        let phys = first.iova_to_phys(pos);
        if phys == 0 {
            offset += PAGE_SIZE;
            continue;
        }
        let len = contiguous_len(first, pos, phys, size - offset);
        let unmapped = first.unmap(pos, len);
        if unmapped == 0 || unmapped > size - offset {
            pr_err!("unmap at {:#x}: IOMMU unmapped {:#x} of {:#x} bytes\n", pos, unmapped, len);
            offset += len;
            continue;
        }
        // SAFETY: The range was mapped from pages pinned for this mapping, physically
        // contiguous from `phys` (large IOMMU pages only cover contiguous pinned runs), and is
        // now unmapped everywhere, so these pins are ours to release.
        unsafe { mm::unpin_pfns(phys >> PAGE_SHIFT, unmapped >> PAGE_SHIFT, dirty) };
        offset += unmapped;
        mm::cond_resched();
    }
}

/// Pages of a batch small enough to live on the stack (256 bytes).
const SMALL_BATCH_PAGES: usize = 32;

/// The buffer for pinning, once per request: on the stack for small mappings, allocated for the
/// others.
#[expect(
    clippy::large_enum_variant,
    reason = "the inline variant is the point: small mappings pin without allocating"
)]
pub(crate) enum PinBatch {
    /// Mappings of up to [`SMALL_BATCH_PAGES`] pages.
    Small([u64; SMALL_BATCH_PAGES]),
    /// Larger mappings: [`BATCH_PAGES`] pages at a time.
    Large(KVec<u64>),
}

impl PinBatch {
    /// A buffer for mappings of up to `size` bytes.
    pub(crate) fn new(size: u64) -> Result<Self> {
        let pages = usize::try_from(size >> PAGE_SHIFT).unwrap_or(BATCH_PAGES);
        if pages <= SMALL_BATCH_PAGES {
            return Ok(Self::Small([0; SMALL_BATCH_PAGES]));
        }
        Ok(Self::Large(KVec::from_elem(0u64, pages.min(BATCH_PAGES), GFP_KERNEL)?))
    }

    /// The buffer.
    fn pfns(&mut self) -> &mut [u64] {
        match self {
            Self::Small(a) => a,
            Self::Large(v) => v,
        }
    }
}

/// A container's mappings, keyed by their first IOVA; they never overlap.
pub(crate) struct DmaTree {
    tree: RBTree<u64, DmaMapping>,
}

impl DmaTree {
    /// No mappings.
    pub(crate) fn new() -> Self {
        Self { tree: RBTree::new() }
    }

    /// The first IOVA of the lowest mapping that overlaps `range`.
    pub(crate) fn first_overlap(&mut self, range: &IovaRange) -> Option<u64> {
        // A mapping starting below `range.start` overlaps if it reaches into it.
        if let Some(cursor) = self.tree.cursor_lower_bound(&range.start) {
            if let Some((_, prev)) = cursor.peek_prev() {
                if prev.range.overlaps(range) {
                    return Some(prev.range.start);
                }
            }
            let (&start, _) = cursor.current();
            return (start <= range.last).then_some(start);
        }
        let cursor = self.tree.cursor_back()?;
        let (&start, m) = cursor.current();
        m.range.overlaps(range).then_some(start)
    }

    /// The first IOVA of the mapping that contains `iova`.
    pub(crate) fn containing(&mut self, iova: u64) -> Option<u64> {
        self.first_overlap(&IovaRange { start: iova, last: iova })
    }

    /// The mapping that contains `iova`.
    pub(crate) fn containing_mut(&mut self, iova: u64) -> Option<&mut DmaMapping> {
        let key = self.containing(iova)?;
        self.get_mut(key)
    }

    /// The first IOVA of the next mapping after the one starting at `start`.
    pub(crate) fn next_after(&mut self, start: u64) -> Option<u64> {
        let cursor = self.tree.cursor_lower_bound(&start)?;
        cursor.peek_next().map(|(&k, _)| k)
    }

    /// The mapping starting at `start`.
    pub(crate) fn get(&self, start: u64) -> Option<&DmaMapping> {
        self.tree.get(&start)
    }

    /// The mapping starting at `start`.
    pub(crate) fn get_mut(&mut self, start: u64) -> Option<&mut DmaMapping> {
        self.tree.get_mut(&start)
    }

    /// Allocates the tree node of a mapping to be inserted, so that inserting cannot fail.
    pub(crate) fn reserve() -> Result<DmaNode> {
        Ok(DmaNode(RBTreeNodeReservation::new(GFP_KERNEL)?))
    }

    /// Adds a mapping that overlaps none, in a node reserved before.
    pub(crate) fn insert(&mut self, node: DmaNode, mapping: DmaMapping) {
        self.tree.insert(node.0.into_node(mapping.range.start, mapping));
    }

    /// Removes the mapping starting at `start`.
    pub(crate) fn remove(&mut self, start: u64) -> Option<DmaMapping> {
        self.tree.remove(&start)
    }

    /// The mappings in IOVA order.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut DmaMapping> {
        self.tree.values_mut()
    }

    /// The mappings in IOVA order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &DmaMapping> {
        self.tree.values()
    }

    /// The first IOVA of the lowest mapping.
    pub(crate) fn first_key(&self) -> Option<u64> {
        self.tree.keys().next().copied()
    }
}

/// A tree node reserved for a mapping.
pub(crate) struct DmaNode(RBTreeNodeReservation<u64, DmaMapping>);
