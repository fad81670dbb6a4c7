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
    container::{Container, ContainerInner, MapRequest, Removals, UnmapRequest, Version},
    dirty,
    dma::{Busy, DmaMapping},
    dma_tree::{Cover, DmaTree},
    iova::IovaRange,
    mm::MmOwner,
    pin_batch::PinBatch,
    trace,
    user_bitmap::UserBitmap,
};
use kernel::{prelude::*, sync::Arc};

/// How often an unmap notifies vendor drivers about the same mapping before giving up.
pub(crate) const NOTIFY_RETRIES: u32 = 10;

/// The largest mapping pinned and mapped, or unmapped and unpinned, with the container mutex held
/// (2 MiB: 512 pages, the pin batch); larger ones are busy meanwhile and the mutex is free.
pub(crate) const MAP_UNDER_MUTEX_BYTES: u64 = 2 << 20;

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
        let mut node = Some(DmaTree::reserve()?);
        loop {
            let mut inner = self.lock_live()?;
            let pgsize = inner.min_pgsize();
            if req.size == 0 || (req.size | req.iova | req.vaddr) & (pgsize - 1) != 0 {
                return Err(EINVAL);
            }
            let range = IovaRange::from_start_size(req.iova, req.size)?;
            IovaRange::from_start_size(req.vaddr, req.size)?;
            // A mapping of the range is being made or removed: see what is there after that.
            if self.wait_settled(&mut inner, Some(&range)) {
                continue;
            }
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
            let node = node.take().ok_or(EINVAL)?;
            if inner.domains.is_empty() {
                // Nothing to pin: vendor drivers pin what they use.
                inner.mappings.insert(node, m);
                inner.dma_avail -= 1;
                return Ok(Mapped::default());
            }
            let mut batch = PinBatch::new(req.size)?;
            if req.size <= MAP_UNDER_MUTEX_BYTES {
                let domains = inner.domains.borrowed()?;
                let pinned = m.pin_and_map(&domains, &mut batch)?;
                drop(domains);
                let charged = m.account.pages();
                inner.mappings.insert(node, m);
                inner.iommu_pinned(pinned);
                inner.dma_avail -= 1;
                return Ok(Mapped { pinned, charged });
            }
            let domains = inner.domains.refs()?;
            let refs = domains.as_refs()?;
            // Without the mutex: a husk takes the range; the domains stay (attach, detach and
            // release wait for busy mappings).
            inner.in_flight = inner.in_flight.checked_add(1).ok_or(EBUSY)?;
            inner.mappings.insert(node, m.husk(Busy::Mapping));
            inner.dma_avail -= 1;
            let scope_changes = inner.scope_changes;
            drop(inner);

            let r = m.pin_and_map(&refs, &mut batch);
            drop(batch);

            // Not `lock_live`: release waits for busy mappings, so the container is live.
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            let r = match r {
                Ok(pinned) => {
                    let charged = m.account.pages();
                    let (tracking, _) = inner.dirty_unit();
                    if tracking && inner.scope_changes != scope_changes {
                        m.all_dirty_once = true;
                    }
                    match inner.mappings.put_back(m) {
                        Ok(()) => {
                            inner.iommu_pinned(pinned);
                            Ok(Mapped { pinned, charged })
                        }
                        Err(m) => {
                            // No husk: cannot be (only this task removes it); undo the map.
                            pr_err!("map of IOVA {:#x}: its busy node is gone\n", range.start);
                            let _ = m.remove(refs.iter().copied());
                            Err(EINVAL)
                        }
                    }
                }
                // `pin_and_map` undid its work.
                Err(e) => Err(e),
            };
            if r.is_err() && inner.mappings.remove_husk(range.start, Busy::Mapping) {
                inner.dma_avail = inner.dma_avail.saturating_add(1);
            }
            self.settle(inner);
            return r;
        }
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
            // A mapping of the range is being made or removed: see what is there after that.
            if self.wait_settled(&mut guard, Some(&range)) {
                continue;
            }
            let inner = &mut *guard;
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
            let (unmapped, deferred) = remove_covered(inner, self.id, &range, cover, bitmap.is_some());
            if deferred {
                drop(guard);
                self.unmap_busy(&range, bitmap.is_some());
            }
            return Ok(unmapped);
        }
    }

    /// Unmaps, unpins and removes the mappings in `range` that an unmap made busy
    /// ([`Busy::Unmapping`]), one at a time, each without the mutex; returns once none in `range`
    /// is left, also of those another unmap took out ([`Busy::Removing`]: an unmap of all that
    /// covers this one's range may take this one's mappings). Cannot fail.
    fn unmap_busy(&self, range: &IovaRange, bitmap: bool) {
        let mut from = range.start;
        loop {
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            let Some(key) = inner.mappings.next_busy(range, from, Busy::Unmapping) else {
                // Wait for the ones of this range that another unmap is removing.
                while guard.mappings.next_busy(range, range.start, Busy::Removing).is_some() {
                    self.settled.wait(&mut guard);
                }
                return;
            };
            from = key;
            // References to the domains, or (if they cannot be allocated) the work under the
            // mutex, which needs none.
            let domains = inner.domains.refs().ok();
            let refs = domains.as_ref().and_then(|d| d.as_refs().ok());
            let Some(m) = inner.mappings.take_out(key) else {
                continue;
            };
            // Its pins leave `iommu_locked` with it: with no vendor pin (the unmap waited for
            // them), a mapping's charge is its IOMMU pins that count as locked memory.
            let locked = m.account.pages();
            inner.iommu_unpinned(locked);
            let (start, size) = (m.range.start, m.size());
            let gone = match &refs {
                Some(refs) => {
                    drop(guard);
                    let gone = m.remove(refs.iter().copied());
                    guard = self.inner.lock();
                    gone
                }
                None => m.remove(guard.domains.iter()),
            };
            let inner = &mut *guard;
            if gone.iommu_locked != locked || gone.vendor != 0 {
                pr_err!(
                    "accounting invariant violated at unmap of IOVA {:#x}: {} IOMMU pins, {} charged, {} vendor pins\n",
                    start,
                    gone.iommu_locked,
                    locked,
                    gone.vendor
                );
                // `iommu_locked` follows what was released.
                inner.iommu_pinned(locked);
                inner.iommu_unpinned(gone.iommu_locked);
            }
            if inner.mappings.remove_husk(key, Busy::Removing) {
                // Its invalid vaddr was forgotten when it was marked.
                inner.forget_mappings(1, 0);
                self.settle(inner);
            } else {
                pr_err!("unmap of IOVA {:#x}: its busy node is gone\n", key);
            }
            trace::unmap(self.id, start, size, bitmap, gone.iommu_locked, gone.uncharged, false);
            drop(guard);
            crate::mm::cond_resched();
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
/// container `id`: mappings of at most [`MAP_UNDER_MUTEX_BYTES`] at once, larger ones only marked
/// busy ([`Busy::Unmapping`]) for [`Container::unmap_busy`]. Returns the total size of both, and
/// whether any was marked.
fn remove_covered(inner: &mut ContainerInner, id: u64, range: &IovaRange, cover: Cover, bitmap: bool) -> (u64, bool) {
    let mut unmapped = 0u64;
    let mut gone = Removals::default();
    let (mut marked, mut marked_invalid) = (0u32, 0u32);
    let domains = &inner.domains;
    inner.mappings.drain_covered(
        range,
        cover,
        |m| {
            unmapped = unmapped.saturating_add(m.size());
            if m.size() <= MAP_UNDER_MUTEX_BYTES {
                return true;
            }
            // Gone for every request from now on: its invalid vaddr too.
            m.busy = Busy::Unmapping;
            marked_invalid = marked_invalid.saturating_add(u32::from(m.vaddr_invalid));
            m.vaddr_invalid = false;
            marked = marked.saturating_add(1);
            false
        },
        |m| gone.remove(m, domains.iter(), id, bitmap, false),
    );
    gone.apply(inner, marked_invalid);
    inner.in_flight = inner.in_flight.saturating_add(marked);
    (unmapped, marked != 0)
}
