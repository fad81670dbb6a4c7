// SPDX-License-Identifier: GPL-2.0

//! The backend state of one VFIO container: its groups, IOMMU domains, usable IOVA space and DMA
//! mappings, and the operations on them (type1's `struct vfio_iommu`).
//!
//! A container is created by `VFIO_SET_IOMMU` (`open`), gains and loses groups through the VFIO
//! core's attach/detach calls, serves the container ioctls decoded in `ioctl.rs` and is torn down
//! by `release` after its last group left.
//!
//! Lock order (outermost first):
//! 1. `Container::devices` (the vendor devices to notify; `vendor.rs`), never taken while holding
//!    2, because a notified vendor driver unpins, which takes 2;
//! 2. `Container::inner` (mutex; may sleep, allocates with `GFP_KERNEL`);
//! 3. a mapping owner's `mmap_lock` (read to pin, write to charge locked memory; in `mm.rs`);
//! 4. IOMMU driver and group locks (inside the IOMMU API).

use crate::{
    dirty::{self, UserBitmap},
    dma::{DmaMapping, DmaTree, PinBatch},
    domain::{Domain, DomainSet, Prot},
    group::{GroupRef, GroupType, IommuGroup},
    iova::{IovaList, IovaRange},
    mm::{self, MmOwner, PAGE_SIZE},
    params,
    vendor::{DeviceSet, VfioDevice},
};
use kernel::{
    new_mutex,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::{
        lock::{mutex::MutexBackend, Guard},
        Arc, Mutex,
    },
};

/// How often an unmap notifies vendor drivers about the same mapping before giving up.
pub(crate) const NOTIFY_RETRIES: u32 = 10;

/// The unmap semantics a container was opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    /// `VFIO_TYPE1_IOMMU`: an unmap removes every mapping that starts inside its range, whole,
    /// and stops at a mapping that starts before it.
    V1,
    /// `VFIO_TYPE1v2_IOMMU`: an unmap must not bisect a mapping; dirty tracking is available.
    V2,
}

impl Version {
    /// The version `VFIO_SET_IOMMU` asks for with `magic`, if it is one we serve.
    pub(crate) fn from_magic(magic: u64) -> Option<Self> {
        match magic {
            m if m == u64::from(crate::bindings::VFIO_TYPE1_IOMMU) => Some(Self::V1),
            m if m == u64::from(crate::bindings::VFIO_TYPE1v2_IOMMU) => Some(Self::V2),
            _ => None,
        }
    }
}

/// A group attached to a container.
struct AttachedGroup {
    /// The group, for detaching it from its domain at release.
    group: GroupRef,
    /// How the group's devices reach memory.
    kind: GroupType,
    /// The key of the domain the group is attached to (IOMMU groups only).
    domain: Option<usize>,
    /// The group's reserved regions, excluded from the usable IOVA space.
    reserved: KVec<IovaRange>,
    /// Whether the group's devices dirty only pages they pin (emulated groups, and groups whose
    /// driver has pinned pages); others may write anything mapped.
    pinned_scope: bool,
}

/// A `VFIO_IOMMU_MAP_DMA` request, validated for flags.
pub(crate) struct MapRequest {
    /// First IOVA.
    pub(crate) iova: u64,
    /// User virtual address.
    pub(crate) vaddr: u64,
    /// Size in bytes.
    pub(crate) size: u64,
    /// The device's access; `None` for `VFIO_DMA_MAP_FLAG_VADDR` (new vaddr for a mapping).
    pub(crate) prot: Option<Prot>,
}

/// A `VFIO_IOMMU_UNMAP_DMA` request, validated for flags.
pub(crate) struct UnmapRequest {
    /// First IOVA.
    pub(crate) iova: u64,
    /// Size in bytes.
    pub(crate) size: u64,
    /// `VFIO_DMA_UNMAP_FLAG_ALL`.
    pub(crate) all: bool,
    /// `VFIO_DMA_UNMAP_FLAG_VADDR`: invalidate the vaddr of the mappings instead of unmapping.
    pub(crate) vaddr: bool,
}

/// What `VFIO_IOMMU_GET_INFO` reports.
pub(crate) struct Info {
    /// The smallest page size: the only one dirty bitmaps use.
    pub(crate) min_pgsize: u64,
    /// Page sizes all domains support.
    pub(crate) pgsize_bitmap: u64,
    /// Mappings that may still be created.
    pub(crate) dma_avail: u32,
    /// The usable IOVA ranges (none without an IOMMU domain).
    pub(crate) iova_ranges: KVec<IovaRange>,
}

/// The part of a container protected by its mutex.
struct ContainerInner {
    /// Set by `release`: in-flight ioctls that still hold a reference fail with `EINVAL`.
    released: bool,
    /// The attached groups, keyed by [`IommuGroup::key`].
    groups: RBTree<usize, AttachedGroup>,
    /// The IOMMU domains of the IOMMU groups.
    domains: DomainSet,
    /// The DMA mappings.
    mappings: DmaTree,
    /// Where mappings may be created.
    iova_list: IovaList,
    /// How many more mappings may be created (`dma_entry_limit` at open, minus live mappings).
    dma_avail: u32,
    /// Mappings whose vaddr is invalid.
    vaddr_invalid_count: u32,
    /// Whether dirty pages are tracked (`VFIO_IOMMU_DIRTY_PAGES_FLAG_START`).
    dirty_tracking: bool,
    /// Attached groups not in pinned scope: while any, IOMMU-mapped pages are all dirty.
    non_pinned_groups: u32,
    /// The owner of the last mapping made, shared with the next one if the same task makes it.
    last_owner: Option<Arc<MmOwner>>,
}

impl ContainerInner {
    /// The smallest page size of the container: the unit of every IOVA, vaddr and size.
    fn min_pgsize(&self) -> u64 {
        let bitmap = self.domains.pgsize_bitmap();
        1u64 << bitmap.trailing_zeros()
    }

    /// Whether dirty pages are tracked, and the shift of the bitmap page size (the smallest IOMMU
    /// page size), for marking pages dirty.
    fn dirty_unit(&self) -> (bool, u32) {
        (self.dirty_tracking, self.min_pgsize().trailing_zeros())
    }

    /// Whether an emulated (mdev) group is attached.
    fn has_emulated(&self) -> bool {
        self.groups.values().any(|g| g.kind == GroupType::EmulatedIommu)
    }

    /// The usable IOVA space of the current domains and groups plus an `extra` aperture and
    /// reserved regions (of a group being attached).
    fn compute_iova_list(&self, extra: Option<(IovaRange, &[IovaRange])>) -> Result<IovaList> {
        let apertures = Iterator::chain(
            self.domains.iter().map(|d| d.info().aperture),
            extra.map(|(a, _)| a),
        );
        let reserved = Iterator::chain(
            self.groups.values().flat_map(|g| g.reserved.iter()),
            extra.into_iter().flat_map(|(_, r)| r.iter()),
        );
        IovaList::compute(apertures, reserved)
    }

    /// Unmaps and unpins every mapping; removes them too if `remove`.
    fn unmap_unpin_all(&mut self, remove: bool) {
        if !remove {
            let domains = &self.domains;
            for m in self.mappings.iter_mut() {
                m.unmap_and_unpin(domains.iter());
            }
            return;
        }
        while let Some(k) = self.mappings.first_key() {
            if let Some(m) = self.mappings.remove(k) {
                m.remove(self.domains.iter());
            }
            self.dma_avail = self.dma_avail.saturating_add(1);
        }
        self.vaddr_invalid_count = 0;
    }

    /// The first IOVAs of the mappings an unmap of `range` removes: every mapping that starts
    /// in it; for v1 the walk stops at a mapping that starts below it.
    fn keys_in(&mut self, version: Version, range: &IovaRange) -> Result<KVec<u64>> {
        let mut keys = KVec::new();
        let mut next = self.mappings.first_overlap(range);
        while let Some(key) = next {
            if key > range.last || (version == Version::V1 && range.start > key) {
                break;
            }
            next = self.mappings.next_after(key);
            if key >= range.start {
                keys.push(key, GFP_KERNEL)?;
            }
        }
        Ok(keys)
    }

    /// Refuses `range` if it bisects a mapping at either end (v2 unmap and dirty bitmap rule).
    fn check_no_bisect(&mut self, range: &IovaRange) -> Result {
        if let Some(k) = self.mappings.containing(range.start) {
            if k != range.start {
                return Err(EINVAL);
            }
        }
        if let Some(k) = self.mappings.containing(range.last) {
            if self.mappings.get(k).map(|m| m.range.last) != Some(range.last) {
                return Err(EINVAL);
            }
        }
        Ok(())
    }

    /// Writes the dirty bits of the mappings at `keys` into `bitmap` (bit 0 = `base`); all of
    /// them or an error.
    fn write_dirty_bits(&mut self, keys: &[u64], base: u64, bitmap: &UserBitmap) -> Result {
        let mut window = dirty::Window::new()?;
        let all_mapped = self.non_pinned_groups != 0;
        for &k in keys {
            if let Some(m) = self.mappings.get_mut(k) {
                let all = all_mapped && m.iommu_mapped;
                bitmap.write(base, m, all, &mut window)?;
            }
        }
        Ok(())
    }
}

/// The backend state of a VFIO container.
///
/// # Locking
///
/// `version` is immutable. Everything else lives in `inner`, behind a mutex held for the whole
/// of each operation, pinning included (as type1's `iommu->lock`): the core serialises
/// attach/detach/release, but ioctls arrive concurrently with them and with each other.
///
/// # Lifetime
///
/// Reference counted: the VFIO core owns one reference from `open` to `release`; every ioctl in
/// flight owns another, so the state outlives a `release` that races with an ioctl, which then
/// finds `released` set.
#[pin_data]
pub(crate) struct Container {
    /// Unmap semantics requested at `VFIO_SET_IOMMU`.
    pub(crate) version: Version,
    /// Vendor devices to notify when pinned pages are unmapped.
    #[pin]
    devices: DeviceSet,
    #[pin]
    inner: Mutex<ContainerInner>,
}

impl Container {
    /// Creates the state of a container opened with `version`.
    pub(crate) fn new(version: Version) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                version,
                devices <- DeviceSet::new(),
                inner <- new_mutex!(
                    ContainerInner {
                        released: false,
                        groups: RBTree::new(),
                        domains: DomainSet::new(),
                        mappings: DmaTree::new(),
                        iova_list: IovaList::empty(),
                        dma_avail: params::dma_entry_limit(),
                        vaddr_invalid_count: 0,
                        dirty_tracking: false,
                        non_pinned_groups: 0,
                        last_owner: None,
                    },
                    "Container::inner"
                ),
            }),
            GFP_KERNEL,
        )
    }

    /// Locks the container for an operation; `EINVAL` once it has been released (an ioctl that
    /// raced with the release of the last group).
    fn lock_live(&self) -> Result<Guard<'_, ContainerInner, MutexBackend>> {
        let inner = self.inner.lock();
        if inner.released {
            return Err(EINVAL);
        }
        Ok(inner)
    }

    /// Answers `VFIO_CHECK_EXTENSION` for an open container.
    pub(crate) fn has_extension(&self, ext: u32) -> bool {
        let inner = self.inner.lock();
        match ext {
            crate::bindings::VFIO_UPDATE_VADDR => !inner.has_emulated(),
            crate::bindings::VFIO_DMA_CC_IOMMU => inner.domains.enforce_cache_coherency(),
            _ => false,
        }
    }

    /// Attaches `group`: `EBUSY` while a vaddr is invalid, `EINVAL` if it is attached already, is
    /// a no-IOMMU group, or its IOMMU constraints conflict with the mappings, `EPERM` without
    /// interrupt isolation.
    pub(crate) fn attach_group(&self, group: &IommuGroup, kind: GroupType) -> Result {
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let mut inner = self.lock_live()?;
        // Attaching could require pinning, which needs valid vaddrs.
        if inner.vaddr_invalid_count != 0 {
            return Err(EBUSY);
        }
        if inner.groups.get(&group.key()).is_some() {
            pr_debug!("group {} is already attached\n", group.id());
            return Err(EINVAL);
        }
        let (domain, reserved) = match kind {
            GroupType::NoIommu => return Err(EINVAL),
            GroupType::EmulatedIommu => (None, KVec::new()),
            GroupType::Iommu => {
                let (key, reserved) = Self::attach_iommu_group(&mut inner, group)?;
                (Some(key), reserved)
            }
        };
        // SAFETY: The reference is dropped by `detach_group` or `release`, before the core lets
        // go of the group.
        let group_ref = unsafe { GroupRef::new(group) };
        let pinned_scope = kind != GroupType::Iommu;
        let attached = AttachedGroup {
            group: group_ref,
            kind,
            domain,
            reserved,
            pinned_scope,
        };
        inner.groups.insert(node.into_node(group.key(), attached));
        if !pinned_scope {
            inner.non_pinned_groups += 1;
        }
        pr_debug!("group {} attached ({:?})\n", group.id(), kind);
        Ok(())
    }

    /// Puts an IOMMU group in a domain of the container (an existing compatible one or a new one
    /// into which all mappings are replayed) and updates the IOVA space. Returns the domain's key
    /// and the group's reserved regions.
    fn attach_iommu_group(
        inner: &mut ContainerInner,
        group: &IommuGroup,
    ) -> Result<(usize, KVec<IovaRange>)> {
        let domain_node = DomainSet::reserve()?;
        let domain = Domain::alloc_attached(group)?;
        let r = Self::place_group(inner, group, &domain);
        match r {
            Ok((Some(existing), reserved)) => {
                drop(domain);
                Ok((existing, reserved))
            }
            Ok((None, reserved)) => {
                let key = domain.key();
                inner.domains.insert(domain_node, domain);
                Ok((key, reserved))
            }
            Err(e) => {
                domain.detach(group);
                Err(e)
            }
        }
    }

    /// The checks and moves of [`Self::attach_iommu_group`] once `group` is attached to the new
    /// `domain`. On success the group is either attached to an existing domain (whose key is
    /// returned; the new domain is then unused) or stays in the new one, into which every
    /// mapping was replayed. On error the group is attached to the new domain, which maps
    /// nothing.
    fn place_group(
        inner: &mut ContainerInner,
        group: &IommuGroup,
        domain: &Domain,
    ) -> Result<(Option<usize>, KVec<IovaRange>)> {
        let reserved = reserved_regions(group)?;
        let info = *domain.info();
        let iova_list = inner.compute_iova_list(Some((info.aperture, &reserved)))?;
        if inner.mappings.iter().any(|m| !iova_list.allows(&m.range)) {
            pr_debug!("group {}: IOMMU constraints conflict with mappings\n", group.id());
            return Err(EINVAL);
        }
        if !params::allow_unsafe_interrupts() && !group.has_isolated_msi() {
            pr_warn!(
                "group {}: no interrupt remapping support; the module parameter \"allow_unsafe_interrupts\" accepts such groups\n",
                group.id()
            );
            return Err(EPERM);
        }

        // Prefer a compatible existing domain: nothing to replay.
        for e in inner.domains.entries_mut() {
            if !e.domain.info().compatible(&info) {
                continue;
            }
            domain.detach(group);
            if e.domain.attach(group).is_ok() {
                e.groups += 1;
                inner.iova_list = iova_list;
                return Ok((Some(e.domain.key()), reserved));
            }
            domain.attach(group)?;
        }

        Self::replay(inner, domain)?;
        inner.iova_list = iova_list;
        Ok((None, reserved))
    }

    /// Maps every mapping into the new `domain`: copied from an existing domain, or pinned now if
    /// the container had none. On failure, undoes what it did.
    fn replay(inner: &mut ContainerInner, domain: &Domain) -> Result {
        let mut batch = None;
        let mut result = Ok(());
        let first = inner.domains.iter().next();
        for m in inner.mappings.iter_mut() {
            result = match first {
                Some(from) => m.replay(from, domain),
                None => {
                    if batch.is_none() {
                        batch = Some(PinBatch::new(u64::MAX)?);
                    }
                    match batch.as_mut() {
                        Some(b) => m.pin_and_map(&[domain], b),
                        None => Err(ENOMEM),
                    }
                }
            };
            if result.is_err() {
                break;
            }
        }
        if result.is_err() && first.is_none() {
            // Release the pins taken above; the new domain is freed by the caller.
            for m in inner.mappings.iter_mut() {
                m.unmap_and_unpin(core::iter::once(domain));
            }
        }
        result
    }

    /// Detaches `group`, which the core attached before. When it was the last group of its
    /// domain, the domain goes; with the last domain, all mappings are unpinned (and removed if
    /// no emulated group is left to use them).
    pub(crate) fn detach_group(&self, group: &IommuGroup) {
        let mut inner = self.inner.lock();
        let Some(g) = inner.groups.remove(&group.key()) else {
            pr_warn!("detach of group {}, which is not attached\n", group.id());
            return;
        };
        if !g.pinned_scope {
            // The group could have written anything mapped: report everything once.
            inner.non_pinned_groups -= 1;
            if inner.dirty_tracking {
                for m in inner.mappings.iter_mut() {
                    m.all_dirty_once = true;
                }
            }
        }
        let Some(key) = g.domain else {
            pr_debug!("group {} detached ({:?})\n", group.id(), g.kind);
            return;
        };
        let last_group = match inner.domains.get_mut(key) {
            Some(e) => {
                e.domain.detach(group);
                e.groups -= 1;
                e.groups == 0
            }
            None => false,
        };
        if last_group {
            let last_domain = inner.domains.iter().nth(1).is_none();
            if last_domain {
                let keep = inner.has_emulated();
                inner.unmap_unpin_all(!keep);
            }
            drop(inner.domains.remove(key));
        }
        match inner.compute_iova_list(None) {
            Ok(list) => inner.iova_list = list,
            // Keeping the old, smaller space is safe.
            Err(e) => pr_warn!("IOVA ranges not widened after detach: {:?}\n", e),
        }
        pr_debug!("group {} detached\n", group.id());
    }

    /// Tears the container down when the core releases it: unmaps, unpins and uncharges every
    /// mapping and frees the domains. Its groups have normally all been detached already.
    pub(crate) fn release(&self) {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        inner.released = true;
        inner.unmap_unpin_all(true);
        inner.last_owner = None;
        loop {
            let Some(key) = inner.groups.keys().next().copied() else {
                break;
            };
            let Some(g) = inner.groups.remove(&key) else {
                break;
            };
            pr_warn!("release with group {} still attached\n", g.group.group().id());
            if let Some(e) = g.domain.and_then(|d| inner.domains.get_mut(d)) {
                e.domain.detach(g.group.group());
            }
        }
        loop {
            let Some(key) = inner.domains.iter().next().map(|d| d.key()) else {
                break;
            };
            drop(inner.domains.remove(key));
        }
    }

    /// Serves `VFIO_IOMMU_MAP_DMA`.
    pub(crate) fn map(&self, req: &MapRequest) -> Result {
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
            inner.vaddr_invalid_count -= 1;
            return Ok(());
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
        if inner.dirty_tracking && (req.size >> inner.min_pgsize().trailing_zeros()) > dirty::MAX_MAPPING_PAGES {
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
        if !inner.domains.is_empty() {
            let domains = inner.domains.refs()?;
            let mut batch = PinBatch::new(req.size)?;
            m.pin_and_map(&domains, &mut batch)?;
        }
        inner.mappings.insert(node, m);
        inner.dma_avail -= 1;
        Ok(())
    }

    /// Serves `VFIO_IOMMU_UNMAP_DMA`; returns the bytes unmapped (or whose vaddr was
    /// invalidated). With `bitmap` (`VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP`), the dirty bits of
    /// every mapping removed are written first; if that fails, nothing is removed.
    ///
    /// `commit` runs once everything is checked, right before the first mapping is changed; its
    /// error aborts the unmap with nothing changed (the ioctl layer checks there that it can write
    /// the result back, so that a bad user pointer does not leave an unmap half-reported).
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
            if self.version == Version::V2 && !req.all {
                inner.check_no_bisect(&range)?;
            }
            if req.vaddr {
                if let Some(commit) = commit.take() {
                    commit()?;
                }
                return Self::invalidate_vaddrs(inner, self.version, &range);
            }
            let keys = inner.keys_in(self.version, &range)?;

            // Vendor drivers must unpin first; they are notified without our lock.
            let pinned = keys.iter().find_map(|&k| {
                let m = inner.mappings.get(k)?;
                m.vendor_pins.iter().next().map(|_| (k, m.size()))
            });
            if let Some((key, size)) = pinned {
                if last_notified == Some(key) {
                    retries += 1;
                    if retries > NOTIFY_RETRIES {
                        pr_warn!(
                            "unmap of IOVA {:#x}: vendor driver still holds pinned pages after {} dma_unmap notifications\n",
                            key,
                            NOTIFY_RETRIES
                        );
                        return Err(EBUSY);
                    }
                } else {
                    last_notified = Some(key);
                    retries = 0;
                }
                drop(guard);
                self.devices.notify_dma_unmap(key, size);
                continue;
            }

            if let Some(b) = bitmap {
                inner.write_dirty_bits(&keys, req.iova, b)?;
            }
            if let Some(commit) = commit.take() {
                commit()?;
            }
            let mut unmapped = 0u64;
            for &key in keys.iter() {
                let Some(m) = inner.mappings.remove(key) else {
                    continue;
                };
                unmapped = unmapped.saturating_add(m.size());
                inner.dma_avail = inner.dma_avail.saturating_add(1);
                if m.vaddr_invalid {
                    inner.vaddr_invalid_count -= 1;
                }
                m.remove(inner.domains.iter());
            }
            return Ok(unmapped);
        }
    }

    /// Marks the vaddr of every mapping in `range` invalid (`VFIO_DMA_UNMAP_FLAG_VADDR`); if one
    /// already is, undoes the marks of this call and fails with `EINVAL`.
    fn invalidate_vaddrs(
        inner: &mut ContainerInner,
        version: Version,
        range: &IovaRange,
    ) -> Result<u64> {
        let first = inner.mappings.first_overlap(range);
        let mut invalidated = 0u64;
        let mut next = first;
        let mut failed = None;
        while let Some(key) = next {
            if key > range.last || (version == Version::V1 && range.start > key) {
                break;
            }
            let Some(m) = inner.mappings.get_mut(key) else {
                break;
            };
            if m.vaddr_invalid {
                failed = Some(key);
                break;
            }
            m.vaddr_invalid = true;
            invalidated = invalidated.saturating_add(m.size());
            inner.vaddr_invalid_count += 1;
            next = inner.mappings.next_after(key);
        }
        let Some(stop) = failed else {
            return Ok(invalidated);
        };
        let mut next = first;
        while let Some(key) = next {
            if key == stop {
                break;
            }
            if let Some(m) = inner.mappings.get_mut(key) {
                m.vaddr_invalid = false;
                inner.vaddr_invalid_count -= 1;
            }
            next = inner.mappings.next_after(key);
        }
        Err(EINVAL)
    }

    /// Starts (`on`) or stops dirty page tracking; both are idempotent. Starting fails with
    /// `EINVAL` if a mapping has more pages than a bitmap may describe.
    pub(crate) fn set_dirty_tracking(&self, on: bool) -> Result {
        let mut inner = self.lock_live()?;
        if inner.dirty_tracking == on {
            return Ok(());
        }
        if on {
            let shift = inner.min_pgsize().trailing_zeros();
            if inner
                .mappings
                .iter()
                .any(|m| m.size() >> shift > dirty::MAX_MAPPING_PAGES)
            {
                return Err(EINVAL);
            }
        }
        for m in inner.mappings.iter_mut() {
            m.clear_dirty();
        }
        inner.dirty_tracking = on;
        Ok(())
    }

    /// Serves `VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP` for `range`: writes the dirty bits of every
    /// mapping in it to `bitmap` and starts a new reporting period for them, only if all bits
    /// were written (type1 loses the bits of the mappings before a fault).
    pub(crate) fn dirty_bitmap(&self, range: &IovaRange, bitmap: &UserBitmap) -> Result {
        let mut guard = self.lock_live()?;
        let inner = &mut *guard;
        let pgsize = inner.min_pgsize();
        if bitmap.pgsize != pgsize || range.start & (pgsize - 1) != 0 {
            return Err(EINVAL);
        }
        match range.size() {
            Some(size) if size & (pgsize - 1) == 0 => (),
            _ => return Err(EINVAL),
        }
        if !inner.dirty_tracking {
            return Err(EINVAL);
        }
        inner.check_no_bisect(range)?;
        let keys = inner.keys_in(Version::V2, range)?;
        inner.write_dirty_bits(&keys, range.start, bitmap)?;
        for &k in keys.iter() {
            if let Some(m) = inner.mappings.get_mut(k) {
                m.clear_dirty();
            }
        }
        Ok(())
    }

    /// Pins `pages.len()` pages from `iova` for a vendor driver of `group` with access `prot`,
    /// storing their `struct page`s in `pages` (type1's `vfio_iommu_type1_pin_pages`). All or
    /// nothing: on error, the pages pinned by this call are unpinned.
    pub(crate) fn pin_pages(
        &self,
        group: &IommuGroup,
        iova: u64,
        prot: Prot,
        pages: &mut [*mut kernel::bindings::page],
    ) -> Result<usize> {
        if self.version != Version::V2 {
            return Err(EACCES);
        }
        let mut guard = self.lock_live()?;
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
        // the new pins of each mapping at once. `charged` pages (from the first) are charged.
        let n = pages.len();
        let mut done = 0;
        let mut charged = 0;
        let mut result = Ok(());
        'pages: while done < n {
            let Some(at) = (done as u64)
                .checked_mul(PAGE_SIZE)
                .and_then(|o| o.checked_add(iova))
            else {
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
            let mut page_iova = at;
            let mut to_charge = 0u64;
            while done < n && page_iova <= m.range.last {
                match m.pin_vendor_page(page_iova) {
                    Ok((pfn, charge)) => {
                        pages[done] = mm::pfn_to_page(pfn);
                        to_charge += u64::from(charge);
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
            if let Err(e) = m.charge(to_charge) {
                result = Err(e);
            }
            if result.is_err() {
                break 'pages;
            }
            charged = done;
        }
        if let Err(e) = result {
            let (tracking, shift) = inner.dirty_unit();
            for (i, page) in pages.iter_mut().enumerate().take(done) {
                let at = iova + i as u64 * PAGE_SIZE;
                if let Some(m) = inner.mappings.containing_mut(at) {
                    if m.unpin_vendor_page(at, tracking, shift) && i < charged {
                        m.uncharge_pages(1);
                    }
                }
                *page = core::ptr::null_mut();
            }
            return Err(e);
        }
        // A group that pins declares that it only dirties what it pins.
        if let Some(g) = inner.groups.get_mut(&group.key()) {
            if !g.pinned_scope {
                g.pinned_scope = true;
                inner.non_pinned_groups -= 1;
            }
        }
        Ok(done)
    }

    /// Drops one vendor pin on each of `npages` pages from `iova`.
    pub(crate) fn unpin_pages(&self, iova: u64, npages: usize) {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let (tracking, shift) = inner.dirty_unit();
        let mut i = 0u64;
        while i < npages as u64 {
            let Some(at) = i.checked_mul(PAGE_SIZE).and_then(|o| o.checked_add(iova)) else {
                break;
            };
            let Some(m) = inner.mappings.containing_mut(at) else {
                break;
            };
            // The pages of this mapping, uncharged at once.
            let mut page_iova = at;
            let mut released = 0;
            while i < npages as u64 && page_iova <= m.range.last {
                released += u64::from(m.unpin_vendor_page(page_iova, tracking, shift));
                i += 1;
                match page_iova.checked_add(PAGE_SIZE) {
                    Some(next) => page_iova = next,
                    None => break,
                }
            }
            m.uncharge_pages(released);
        }
    }

    /// Copies `data` to (`write`) or from the memory mapped at `iova` for a vendor driver
    /// (type1's `vfio_iommu_type1_dma_rw`); writes are dirty while tracking.
    pub(crate) fn dma_rw(&self, iova: u64, data: &mut [u8], write: bool) -> Result {
        let mut guard = self.lock_live()?;
        let inner = &mut *guard;
        if inner.vaddr_invalid_count != 0 {
            pr_warn!("vfio_dma_rw refused while a vaddr is invalid (VFIO_UPDATE_VADDR)\n");
            return Err(EBUSY);
        }
        let (tracking, shift) = inner.dirty_unit();
        let mut done = 0usize;
        while done < data.len() {
            let at = iova.checked_add(done as u64).ok_or(EINVAL)?;
            let m = inner.mappings.containing_mut(at).ok_or(EINVAL)?;
            if (write && !m.prot.write) || !m.prot.read {
                return Err(EPERM);
            }
            let offset = at - m.range.start;
            let room = (m.range.last - at).saturating_add(1);
            let n = usize::try_from(room).unwrap_or(usize::MAX).min(data.len() - done);
            m.owner.copy(m.vaddr + offset, &mut data[done..done + n], write)?;
            if write && tracking {
                let (first, last) = (offset >> shift, (offset + n as u64 - 1) >> shift);
                if m.dirty.mark(first, last).is_err() {
                    m.all_dirty_once = true;
                }
            }
            done += n;
        }
        Ok(())
    }

    /// Remembers a vendor device to notify (`register_device`).
    pub(crate) fn register_device(&self, dev: &VfioDevice) {
        self.devices.register(dev)
    }

    /// Forgets a vendor device (`unregister_device`).
    pub(crate) fn unregister_device(&self, dev: &VfioDevice) {
        self.devices.unregister(dev)
    }

    /// What `VFIO_IOMMU_GET_INFO` reports now.
    pub(crate) fn info(&self) -> Result<Info> {
        let inner = self.inner.lock();
        let mut iova_ranges = KVec::with_capacity(inner.iova_list.ranges().len(), GFP_KERNEL)?;
        iova_ranges.extend_from_slice(inner.iova_list.ranges(), GFP_KERNEL)?;
        Ok(Info {
            min_pgsize: inner.min_pgsize(),
            pgsize_bitmap: inner.domains.pgsize_bitmap(),
            dma_avail: inner.dma_avail,
            iova_ranges,
        })
    }
}

/// The reserved regions of `group` that must not be mapped: all but the relaxable direct-mapped
/// ones, as in type1.
fn reserved_regions(group: &IommuGroup) -> Result<KVec<IovaRange>> {
    let all = group.reserved_regions()?;
    let mut out = KVec::with_capacity(all.len(), GFP_KERNEL)?;
    for r in all.iter().filter(|r| !r.relaxable) {
        out.push(r.range, GFP_KERNEL)?;
    }
    Ok(out)
}
