// SPDX-License-Identifier: GPL-2.0

//! What vendor (mdev) drivers do through a container: `vfio_pin_pages()`, `vfio_unpin_pages()`
//! and `vfio_dma_rw()` (type1's `vfio_iommu_type1_pin_pages`, `_unpin_pages`, `_dma_rw`).
//!
//! Pins are charged per page by their own pfn ([`crate::account`]): a page that an IOMMU pin of
//! the same IOVA already holds is not charged again, any other page that counts as locked memory
//! is, whether or not the container has IOMMU domains.
//!
//! Lock order: as in `container.rs`: called by vendor drivers with none of our locks held.

use crate::{
    account::PinCharge,
    container::Container,
    domain::Prot,
    group::IommuGroup,
    iova::IovaRange,
    mm::{self, DmaRwData, PAGE_SIZE},
    trace,
};
use core::mem::MaybeUninit;
use kernel::prelude::*;

impl Container {
    /// Pins `pages.len()` pages from `iova` for a vendor driver of `group` with access `prot`,
    /// storing their `struct page`s in `pages` (type1's `vfio_iommu_type1_pin_pages`). All or
    /// nothing: on error, the pages pinned by this call are unpinned and uncharged, and `pages`
    /// holds null pointers up to where it got. Emits `vir_pin`.
    pub(crate) fn pin_pages(
        &self,
        group: &IommuGroup,
        iova: u64,
        prot: Prot,
        pages: &mut [MaybeUninit<*mut kernel::bindings::page>],
    ) -> Result<usize> {
        let count = pages.len();
        let r = self.pin_pages_inner(group, iova, prot, pages);
        trace::pin(self.id, group, iova, count, &r);
        r
    }

    /// [`Self::pin_pages`].
    fn pin_pages_inner(
        &self,
        group: &IommuGroup,
        iova: u64,
        prot: Prot,
        pages: &mut [MaybeUninit<*mut kernel::bindings::page>],
    ) -> Result<usize> {
        if self.version != crate::container::Version::V2 {
            return Err(EACCES);
        }
        // Pages of a mapping being made or removed: wait for it, as for the mutex.
        let range = bytes_range(iova, pages.len().saturating_mul(PAGE_SIZE as usize));
        let mut guard = self.lock_settled(range.as_ref())?;
        let inner = &mut *guard;
        if inner.vaddr_invalid_count != 0 {
            pr_warn!("vfio_pin_pages refused while a vaddr is invalid (VFIO_UPDATE_VADDR)\n");
            return Err(EBUSY);
        }
        // Pins are only allowed to drivers that can be told to give them back.
        if self.devices.is_empty() {
            return Err(EINVAL);
        }
        if iova & (PAGE_SIZE - 1) != 0 {
            return Err(EINVAL);
        }
        // Page by page, looking up the mapping only when leaving the current one, and charging
        // the new pins of each mapping at once.
        let n = pages.len();
        let iommu = inner.domains.iter().next();
        let mut done = 0;
        let mut result = Ok(());
        while done < n {
            let Some(at) = page_iova(iova, done) else {
                result = Err(EINVAL);
                break;
            };
            let Some(m) = inner.mappings.containing_mut(at) else {
                result = Err(EINVAL);
                break;
            };
            if (prot.read && !m.prot.read) || (prot.write && !m.prot.write) {
                result = Err(EPERM);
                break;
            }
            let (first, first_done) = (at, done);
            let mut page_iova = at;
            let mut pending = 0u64;
            while done < n && page_iova <= m.range.last {
                match m.pin_vendor_page(page_iova, iommu) {
                    Ok((pfn, charge)) => {
                        pages[done].write(mm::pfn_to_page(pfn));
                        pending += u64::from(charge);
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
                done += 1;
                match page_iova.checked_add(PAGE_SIZE) {
                    Some(next) => page_iova = next,
                    None => break,
                }
            }
            // Charge what this mapping's part pinned (also when it stopped on an error: the
            // rollback below then returns it); a pin left pending is rolled back uncharged.
            match m.account.charge(pending) {
                Ok(()) => m.commit_pending(first, (done - first_done) as u64),
                Err(e) => result = result.and(Err(e)),
            }
            if result.is_err() {
                break;
            }
        }
        if let Err(e) = result {
            for (i, page) in pages.iter_mut().enumerate().take(done) {
                if let Some(at) = page_iova(iova, i) {
                    if let Some(m) = inner.mappings.containing_mut(at) {
                        // Not dirty: this call's pages were never handed to the driver.
                        if m.unpin_vendor_page(at, false, 0) == Some(PinCharge::Own) {
                            m.account.uncharge(1);
                        }
                    }
                }
                page.write(core::ptr::null_mut());
            }
            return Err(e);
        }
        // A group that pins declares that it only dirties what it pins. Until now its device
        // could have written any mapped page: report every IOMMU-mapped page dirty once, or the
        // writes since the last report would be lost (type1 loses them).
        if let Some(g) = inner.groups.get_mut(&group.key()) {
            if !g.pinned_scope {
                g.pinned_scope = true;
                inner.non_pinned_groups = inner.non_pinned_groups.saturating_sub(1);
                inner.scope_changes = inner.scope_changes.wrapping_add(1);
                if inner.dirty_tracking {
                    for m in inner.mappings.iter_mut().filter(|m| m.iommu_mapped) {
                        m.all_dirty_once = true;
                    }
                }
            }
        }
        Ok(done)
    }

    /// Drops one vendor pin on each of `npages` pages from `iova`. Emits `vir_unpin`.
    pub(crate) fn unpin_pages(&self, iova: u64, npages: usize) {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let (tracking, shift) = inner.dirty_unit();
        let mut unpinned = 0u64;
        let mut i = 0usize;
        while i < npages {
            let Some(at) = page_iova(iova, i) else {
                break;
            };
            let Some(m) = inner.mappings.containing_mut(at) else {
                break;
            };
            // The pages of this mapping, uncharged at once.
            let mut page_iova = at;
            let mut released = 0u64;
            while i < npages && page_iova <= m.range.last {
                let charge = m.unpin_vendor_page(page_iova, tracking, shift);
                unpinned += u64::from(charge.is_some());
                if charge == Some(PinCharge::Own) {
                    released += 1;
                }
                i += 1;
                match page_iova.checked_add(PAGE_SIZE) {
                    Some(next) => page_iova = next,
                    None => break,
                }
            }
            m.account.uncharge(released);
        }
        drop(guard);
        trace::unpin(self.id, iova, npages, unpinned);
    }

    /// Copies `data` to or from the memory mapped at `iova` for a vendor driver (type1's
    /// `vfio_iommu_type1_dma_rw`); writes are dirty while tracking. Emits `vir_dma_rw`.
    #[unsafe(link_section = ".text.vir_hot")]
    pub(crate) fn dma_rw(&self, iova: u64, data: DmaRwData<'_>) -> Result {
        let (len, write) = (data.len(), data.is_write());
        let r = self.dma_rw_inner(iova, data);
        trace::dma_rw(self.id, iova, len, write, &r);
        r
    }

    /// [`Self::dma_rw`].
    #[unsafe(link_section = ".text.vir_hot")]
    fn dma_rw_inner(&self, iova: u64, mut data: DmaRwData<'_>) -> Result {
        let mut guard = self.lock_settled(bytes_range(iova, data.len()).as_ref())?;
        let inner = &mut *guard;
        if inner.vaddr_invalid_count != 0 {
            pr_warn!("vfio_dma_rw refused while a vaddr is invalid (VFIO_UPDATE_VADDR)\n");
            return Err(EBUSY);
        }
        let write = data.is_write();
        let (tracking, shift) = inner.dirty_unit();
        let len = data.len();
        let mut done = 0usize;
        while done < len {
            let at = iova.checked_add(done as u64).ok_or(EINVAL)?;
            let m = inner.mappings.containing_mut(at).ok_or(EINVAL)?;
            if (write && !m.prot.write) || !m.prot.read {
                return Err(EPERM);
            }
            let offset = at - m.range.start;
            let room = (m.range.last - at).saturating_add(1);
            let n = usize::try_from(room).unwrap_or(usize::MAX).min(len - done);
            let vaddr = m.vaddr.checked_add(offset).ok_or(EINVAL)?;
            m.account.owner().copy(vaddr, &mut data, done, n)?;
            if write && tracking {
                // `n >= 1`, and the copy ends inside the mapping, whose size fits a `u64`.
                let last_byte = offset.saturating_add(n as u64 - 1);
                let (first, last) = (offset >> shift, last_byte >> shift);
                if m.records.mark_dirty(first, last).is_err() {
                    m.all_dirty_once = true;
                }
            }
            done += n;
        }
        Ok(())
    }
}

/// The IOVA of page `i` from `iova`, if it does not wrap.
fn page_iova(iova: u64, i: usize) -> Option<u64> {
    (i as u64).checked_mul(PAGE_SIZE)?.checked_add(iova)
}

/// The IOVA range of `len` bytes from `iova` (to the top of the address space if they would
/// wrap), if there are any.
fn bytes_range(iova: u64, len: usize) -> Option<IovaRange> {
    let last = iova.saturating_add(len.checked_sub(1)? as u64);
    IovaRange::new(iova, last)
}
