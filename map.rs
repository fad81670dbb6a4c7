// SPDX-License-Identifier: GPL-2.0

//! DMA operations of a container: `VFIO_IOMMU_MAP_DMA` (including new vaddrs for invalidated
//! mappings) and `VFIO_IOMMU_UNMAP_DMA` (including `UNMAP_ALL`, vaddr invalidation and unmap with
//! dirty bitmap).
//!
//! An unmap never allocates in proportion to the mappings it covers: it walks them in the tree
//! (`dma_tree.rs`) once to find vendor pins, once to write dirty bits, and once to remove them.
//!
//! Lock order: as in `container.rs`; vendor drivers are notified with no container lock held.

use crate::{
    container::{Container, ContainerInner, MapRequest, UnmapRequest, Version},
    dirty::{self, UserBitmap},
    dma::{DmaMapping, PinBatch},
    dma_tree::{Cover, DmaTree},
    iova::IovaRange,
    mm::MmOwner,
    trace,
};
use kernel::{prelude::*, sync::Arc};

/// How often an unmap notifies vendor drivers about the same mapping before giving up.
pub(crate) const NOTIFY_RETRIES: u32 = 10;

/// What a successful map did: IOMMU pins that count as locked memory, and pages the mapping
/// charged (for the `vir_map` trace event).
#[derive(Default)]
struct Mapped {
    pinned: u64,
    charged: u64,
}

impl Container {
    /// Serves `VFIO_IOMMU_MAP_DMA`; emits `vir_map` (except for new vaddrs).
    pub(crate) fn map(&self, req: &MapRequest) -> Result {
        if req.prot.is_none() {
            return self.map_inner(req).map(|_| ());
        }
        let start = trace::start_if(trace::map_enabled());
        let r = self.map_inner(req);
        let done = r.as_ref().ok();
        let (pinned, charged) = done.map_or((0, 0), |d| (d.pinned, d.charged));
        let r = r.map(|_| ());
        trace::map(self.id, req.iova, req.size, pinned, charged, start, &r);
        r
    }

    /// [`Self::map`].
    fn map_inner(&self, req: &MapRequest) -> Result<Mapped> {
        let node = DmaTree::reserve()?;
        let mut inner = self.lock_live()?;
        let pgsize = inner.min_pgsize();
        if req.size == 0 || (req.size | req.iova | req.vaddr) & (pgsize - 1) != 0 {
            return Err(EINVAL);
        }
        let range = IovaRange::from_start_size(req.iova, req.size)?;
        IovaRange::from_start_size(req.vaddr, req.size)?;
        let overlap = inner.mappings.first_overlap(&range);

        let Some(prot) = req.prot else {
            // VFIO_DMA_MAP_FLAG_VADDR: a new vaddr for an invalidated mapping.
            let key = overlap.ok_or(ENOENT)?;
            let m = inner.mappings.get_mut(key).ok_or(ENOENT)?;
            if !m.vaddr_invalid || m.range != range {
                return Err(EINVAL);
            }
            m.change_owner()?;
            m.vaddr = req.vaddr;
            m.vaddr_invalid = false;
            inner.vaddr_invalid_count = inner.vaddr_invalid_count.saturating_sub(1);
            return Ok(Mapped::default());
        };
        if overlap.is_some() {
            return Err(EEXIST);
        }
        if inner.dma_avail == 0 {
            return Err(ENOSPC);
        }
        if !inner.iova_list.allows(&range) {
            return Err(EINVAL);
        }
        if inner.dirty_tracking && (req.size >> pgsize.trailing_zeros()) > dirty::MAX_MAPPING_PAGES {
            return Err(EINVAL);
        }
        let owner = match &inner.last_owner {
            Some(o) if o.is_current_owner() => o.clone(),
            _ => {
                let o = Arc::new(MmOwner::current()?, GFP_KERNEL)?;
                inner.last_owner = Some(o.clone());
                o
            }
        };
        let mut m = DmaMapping::new(range, req.vaddr, prot, owner);
        let mut pinned = 0;
        if !inner.domains.is_empty() {
            let domains = inner.domains.refs()?;
            let mut batch = PinBatch::new(req.size)?;
            pinned = m.pin_and_map(&domains, &mut batch)?;
        }
        let charged = m.account.pages();
        inner.mappings.insert(node, m);
        inner.iommu_pinned(pinned);
        inner.dma_avail -= 1;
        Ok(Mapped { pinned, charged })
    }

    /// Serves `VFIO_IOMMU_UNMAP_DMA`; returns the bytes unmapped (or whose vaddr was
    /// invalidated). With `bitmap` (`VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP`), the dirty bits of
    /// every mapping removed are written first; if that fails, nothing is removed.
    ///
    /// `commit` runs once everything is checked, right before the first mapping is changed; its
    /// error aborts the unmap with nothing changed (the ioctl layer checks there that it can write
    /// the result back; see `ioctl.rs` for what that does and does not guarantee).
    ///
    /// Mappings with pages pinned by vendor drivers are unmapped only once the drivers, notified
    /// through `dma_unmap`, have unpinned them. A driver that does not is notified again, up to
    /// [`NOTIFY_RETRIES`] times for the same mapping, then the unmap fails with `EBUSY` and
    /// changes nothing (type1 `BUG()`s there).
    pub(crate) fn unmap(
        &self,
        req: &UnmapRequest,
        bitmap: Option<&UserBitmap>,
        commit: impl FnOnce() -> Result,
    ) -> Result<u64> {
        let mut commit = Some(commit);
        let mut last_notified = None;
        let mut retries = 0u32;
        loop {
            let mut guard = self.lock_live()?;
            let inner = &mut *guard;
            if req.vaddr && inner.has_emulated() {
                return Err(EBUSY);
            }
            let pgsize = inner.min_pgsize();
            if req.iova & (pgsize - 1) != 0 {
                return Err(EINVAL);
            }
            let range = if req.all {
                if req.iova != 0 || req.size != 0 {
                    return Err(EINVAL);
                }
                IovaRange {
                    start: 0,
                    last: u64::MAX,
                }
            } else {
                if req.size == 0 || req.size & (pgsize - 1) != 0 {
                    return Err(EINVAL);
                }
                IovaRange::from_start_size(req.iova, req.size)?
            };
            if let Some(b) = bitmap {
                if !inner.dirty_tracking || b.pgsize != pgsize {
                    return Err(EINVAL);
                }
            }
            if self.version == Version::V2 && !req.all && inner.mappings.bisects(&range) {
                return Err(EINVAL);
            }
            let cover = match self.version {
                Version::V1 => Cover::V1,
                Version::V2 => Cover::StartsIn,
            };
            if req.vaddr {
                if let Some(commit) = commit.take() {
                    commit()?;
                }
                return Self::invalidate_vaddrs(inner, cover, &range);
            }

            // Vendor drivers must unpin first; they are notified without our lock.
            if let Some((key, size)) = first_vendor_pinned(&mut inner.mappings, &range, cover) {
                if last_notified == Some(key) {
                    retries += 1;
                    if retries > NOTIFY_RETRIES {
                        pr_warn!(
                            "unmap of IOVA {:#x}: vendor driver still holds pinned pages after {} dma_unmap notifications\n",
                            key,
                            NOTIFY_RETRIES
                        );
                        self.devices.refused();
                        return Err(EBUSY);
                    }
                } else {
                    last_notified = Some(key);
                    retries = 0;
                }
                drop(guard);
                self.devices.notify_dma_unmap(self.id, key, size, retries);
                continue;
            }

            if let Some(b) = bitmap {
                inner.write_dirty_bits(self.id, &range, cover, req.iova, b, true)?;
            }
            if let Some(commit) = commit.take() {
                commit()?;
            }
            return Ok(remove_covered(inner, self.id, &range, cover, bitmap.is_some()));
        }
    }

    /// Marks the vaddr of every mapping an unmap of `range` covers invalid
    /// (`VFIO_DMA_UNMAP_FLAG_VADDR`); if one already is, undoes the marks of this call and fails
    /// with `EINVAL`.
    fn invalidate_vaddrs(inner: &mut ContainerInner, cover: Cover, range: &IovaRange) -> Result<u64> {
        let (mut invalidated, mut count) = (0u64, 0u32);
        let failed = inner.mappings.find_covered(range, cover, |m| {
            if m.vaddr_invalid {
                return Some(m.range.start);
            }
            m.vaddr_invalid = true;
            invalidated = invalidated.saturating_add(m.size());
            count = count.saturating_add(1);
            None
        });
        let Some(stop) = failed else {
            inner.vaddr_invalid_count = inner.vaddr_invalid_count.saturating_add(count);
            return Ok(invalidated);
        };
        inner.mappings.find_covered(range, cover, |m| {
            if m.range.start == stop {
                return Some(());
            }
            m.vaddr_invalid = false;
            None
        });
        Err(EINVAL)
    }
}

/// The first mapping an unmap of `range` covers that has pages pinned by a vendor driver: its
/// first IOVA and size.
fn first_vendor_pinned(mappings: &mut DmaTree, range: &IovaRange, cover: Cover) -> Option<(u64, u64)> {
    mappings.find_covered(range, cover, |m| {
        m.vendor_pins.iter().next().map(|_| (m.range.start, m.size()))
    })
}

/// Removes the mappings an unmap of `range` covers (with a dirty bitmap if `bitmap`) from
/// container `id`; returns their total size.
fn remove_covered(inner: &mut ContainerInner, id: u64, range: &IovaRange, cover: Cover, bitmap: bool) -> u64 {
    let mut unmapped = 0u64;
    let (mut removed, mut invalid, mut iommu_locked) = (0u32, 0u32, 0u64);
    let domains = &inner.domains;
    inner.mappings.remove_covered(range, cover, |m| {
        let (start, size) = (m.range.start, m.size());
        unmapped = unmapped.saturating_add(size);
        removed = removed.saturating_add(1);
        invalid = invalid.saturating_add(u32::from(m.vaddr_invalid));
        let gone = m.remove(domains.iter());
        iommu_locked = iommu_locked.saturating_add(gone.iommu_locked);
        let unpinned = gone.iommu_locked.saturating_add(gone.vendor);
        trace::unmap(id, start, size, bitmap, unpinned, gone.uncharged, false);
        crate::mm::cond_resched();
    });
    inner.forget_mappings(removed, invalid);
    inner.iommu_unpinned(iommu_locked);
    unmapped
}
