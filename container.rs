// SPDX-License-Identifier: GPL-2.0

//! The backend state of one VFIO container (type1's `struct vfio_iommu`): its groups, IOMMU
//! domains, usable IOVA space and DMA mappings.
//!
//! The operations on a container live beside this file, one concern each, as `impl Container`
//! blocks: `attach.rs` (groups and domains: attach, detach, replay, release), `map.rs` (DMA map,
//! unmap, vaddr updates), `dirty_report.rs` (dirty tracking and bitmaps), `vendor_pins.rs`
//! (`vfio_pin_pages`, `vfio_unpin_pages`, `vfio_dma_rw`), `inspect.rs` (its debugfs files). This
//! file has the state they share.
//!
//! A container is created by `VFIO_SET_IOMMU` (`open`), gains and loses groups through the VFIO
//! core's attach/detach calls, serves the container ioctls decoded in `ioctl.rs` and is torn down
//! by `release` after its last group left.
//!
//! Lock order (outermost first):
//! 1. `Container::devices` (the vendor devices to notify; `vendor.rs`), never taken while holding
//!    2, because a notified vendor driver unpins, which takes 2;
//! 2. `Container::inner` (mutex; may sleep, allocates with `GFP_KERNEL`); a map or unmap of a
//!    large mapping drops it while it pins and maps, or unmaps and unpins, the mapping, which is
//!    busy meanwhile; waiting for a busy mapping (`Container::settled`) releases it;
//! 3. a mapping owner's `mmap_lock` (read to pin, write to charge locked memory; in `mm.rs`);
//! 4. IOMMU driver and group locks (inside the IOMMU API).
//!
//! `Container::debugfs` is taken alone, and the directory it holds is removed (which waits for
//! readers, who take 2) with no lock held.
//!
//! Counters and their invariants (checked where they change):
//! - `dma_avail + mappings.len() == dma_entry_limit` at open (never below 0: `ENOSPC`);
//! - `vaddr_invalid_count` == mappings with `vaddr_invalid`;
//! - `non_pinned_groups` == attached groups without `pinned_scope`;
//! - `in_flight` == mappings in the tree that are busy (`dma::Busy`);
//! - each mapping's locked-memory charge: `account.rs`; summed over the mappings it equals
//!   `iommu_locked` plus the vendor pins with their own charge (checked by debugfs' `accounting`).

use crate::{
    debugfs,
    dma::DmaMapping,
    dma_tree::DmaTree,
    domain::{Domain, DomainSet},
    group::{GroupRef, GroupType},
    iova::{IovaList, IovaRange},
    params, trace,
    vendor::{DeviceSet, VfioDevice},
};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{
    new_condvar, new_mutex,
    prelude::*,
    rbtree::RBTree,
    sync::{
        lock::{mutex::MutexBackend, Guard},
        Arc, CondVar, Mutex,
    },
};

/// The id of the next container (ids are never reused while the module is loaded).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

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
pub(crate) struct AttachedGroup {
    /// The group (a counted reference), for detaching it from its domain at release.
    pub(crate) group: GroupRef,
    /// How the group's devices reach memory.
    pub(crate) kind: GroupType,
    /// The key of the domain the group is attached to (IOMMU groups only).
    pub(crate) domain: Option<usize>,
    /// The group's reserved regions, excluded from the usable IOVA space.
    pub(crate) reserved: KVec<IovaRange>,
    /// Whether the group's devices dirty only pages they pin (emulated groups, and groups whose
    /// driver has pinned pages); others may write anything mapped.
    pub(crate) pinned_scope: bool,
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
    pub(crate) prot: Option<crate::domain::Prot>,
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

/// The dirty bitmaps a container has written (`dirty_report.rs` counts them; debugfs shows them).
#[derive(Clone, Copy, Default)]
pub(crate) struct DirtyReports {
    /// Bitmaps written, by `GET_BITMAP` or an unmap with a bitmap.
    pub(crate) made: u64,
    /// Bytes copied into those bitmaps (a 64-bit word two mappings share is copied twice).
    pub(crate) bytes: u64,
}

impl DirtyReports {
    /// One more bitmap written, of `bytes` bytes.
    pub(crate) fn record(&mut self, bytes: u64) {
        self.made = self.made.saturating_add(1);
        self.bytes = self.bytes.saturating_add(bytes);
    }
}

/// The part of a container protected by its mutex.
pub(crate) struct ContainerInner {
    /// Set by `release`: in-flight ioctls that still hold a reference fail with `EINVAL`.
    pub(crate) released: bool,
    /// The attached groups, keyed by [`crate::group::IommuGroup::key`].
    pub(crate) groups: RBTree<usize, AttachedGroup>,
    /// The IOMMU domains of the IOMMU groups.
    pub(crate) domains: DomainSet,
    /// The DMA mappings.
    pub(crate) mappings: DmaTree,
    /// Where mappings may be created.
    pub(crate) iova_list: IovaList,
    /// How many more mappings may be created (`dma_entry_limit` at open, minus live mappings).
    pub(crate) dma_avail: u32,
    /// Mappings whose vaddr is invalid.
    pub(crate) vaddr_invalid_count: u32,
    /// Whether dirty pages are tracked (`VFIO_IOMMU_DIRTY_PAGES_FLAG_START`).
    pub(crate) dirty_tracking: bool,
    /// Attached groups not in pinned scope: while any, IOMMU-mapped pages are all dirty.
    pub(crate) non_pinned_groups: u32,
    /// The owner of the last mapping made, shared with the next one if the same task makes it.
    pub(crate) last_owner: Option<Arc<crate::mm::MmOwner>>,
    /// IOMMU pins of all mappings that count as locked memory: what [`DmaMapping::pin_and_map`]
    /// returned, less what [`DmaMapping::unmap_and_unpin`] did (the first term of the invariant
    /// of `account.rs`, for the whole container).
    ///
    /// [`DmaMapping::pin_and_map`]: crate::dma::DmaMapping::pin_and_map
    /// [`DmaMapping::unmap_and_unpin`]: crate::dma::DmaMapping::unmap_and_unpin
    pub(crate) iommu_locked: u64,
    /// Dirty bitmaps written.
    pub(crate) reports: DirtyReports,
    /// Busy mappings in the tree ([`crate::dma::Busy`]): maps and unmaps working without the
    /// mutex. Attach, detach and release wait until it is 0; it only changes under the mutex, and
    /// every decrement wakes [`Container::settled`].
    pub(crate) in_flight: u32,
    /// Groups that declared pinned scope so far: a mapping that was being pinned and mapped
    /// without the mutex while one did is reported all dirty once (its device could have written
    /// it before).
    pub(crate) scope_changes: u64,
}

impl ContainerInner {
    /// The smallest page size of the container: the unit of every IOVA, vaddr and size.
    pub(crate) fn min_pgsize(&self) -> u64 {
        self.domains.min_pgsize()
    }

    /// Whether dirty pages are tracked, and the shift of the bitmap page size (the smallest IOMMU
    /// page size), for marking pages dirty.
    pub(crate) fn dirty_unit(&self) -> (bool, u32) {
        (self.dirty_tracking, self.min_pgsize().trailing_zeros())
    }

    /// Whether an emulated (mdev) group is attached.
    pub(crate) fn has_emulated(&self) -> bool {
        self.groups.values().any(|g| g.kind == GroupType::EmulatedIommu)
    }

    /// The usable IOVA space of the current domains and groups plus an `extra` aperture and
    /// reserved regions (of a group being attached).
    pub(crate) fn compute_iova_list(&self, extra: Option<(IovaRange, &[IovaRange])>) -> Result<IovaList> {
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

    /// `pages` more IOMMU pins counting as locked memory (`iommu_locked`).
    pub(crate) fn iommu_pinned(&mut self, pages: u64) {
        self.iommu_locked = self.iommu_locked.saturating_add(pages);
    }

    /// `pages` IOMMU pins counting as locked memory released (`iommu_locked`).
    pub(crate) fn iommu_unpinned(&mut self, pages: u64) {
        self.iommu_locked = self.iommu_locked.saturating_sub(pages);
    }

    /// A busy mapping became a plain one or went away; the caller wakes [`Container::settled`].
    pub(crate) fn settle_one(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// `removed` mappings are gone, `invalid` of them with an invalid vaddr: `dma_avail` and
    /// `vaddr_invalid_count` follow.
    pub(crate) fn forget_mappings(&mut self, removed: u32, invalid: u32) {
        self.dma_avail = self.dma_avail.saturating_add(removed);
        self.vaddr_invalid_count = self.vaddr_invalid_count.saturating_sub(invalid);
    }
}

/// What one walk removed from a container's mappings, applied to its counters at the end
/// ([`Removals::apply`]).
#[derive(Default)]
pub(crate) struct Removals {
    removed: u32,
    invalid: u32,
    iommu_locked: u64,
}

impl Removals {
    /// Unmaps, unpins and uncharges `m`, just taken out of the tree, from `domains`, and emits
    /// `vir_unmap` for container `id` (`bitmap`: an unmap with dirty bitmap; `release`: the
    /// container or its last domain is going).
    pub(crate) fn remove<'a>(
        &mut self,
        m: DmaMapping,
        domains: impl Iterator<Item = &'a Domain>,
        id: u64,
        bitmap: bool,
        release: bool,
    ) {
        let (start, size) = (m.range.start, m.size());
        self.removed = self.removed.saturating_add(1);
        self.invalid = self.invalid.saturating_add(u32::from(m.vaddr_invalid));
        let gone = m.remove(domains);
        self.iommu_locked = self.iommu_locked.saturating_add(gone.iommu_locked);
        let unpinned = gone.iommu_locked.saturating_add(gone.vendor);
        trace::unmap(id, start, size, bitmap, unpinned, gone.uncharged, release);
        crate::mm::cond_resched();
    }

    /// The mappings are gone: `dma_avail`, `vaddr_invalid_count` (less `invalid` more, of
    /// mappings forgotten otherwise) and `iommu_locked` follow.
    pub(crate) fn apply(self, inner: &mut ContainerInner, invalid: u32) {
        inner.forget_mappings(self.removed, self.invalid.saturating_add(invalid));
        inner.iommu_unpinned(self.iommu_locked);
    }
}

/// The backend state of a VFIO container.
///
/// # Locking
///
/// `version` is immutable. Everything else lives in `inner`, behind a mutex held for each
/// operation (as type1's `iommu->lock`), with one exception: a `MAP_DMA` or `UNMAP_DMA` of a
/// large mapping pins and maps, or unmaps and unpins, it without the mutex, so that vendor
/// drivers and requests on other IOVAs do not wait for it. The mapping is then busy
/// ([`crate::dma::Busy`]): its node holds its IOVA range, and every request whose range overlaps
/// it waits on `settled` ([`Container::wait_settled`]) and then checks again, as it would have
/// waited for the mutex; attach, detach and release wait until nothing is busy, so the domains
/// a busy mapping is mapped into stay those of the container. The core serialises
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
    /// The container's number, unique while the module is loaded: the `c<id>` of its debugfs
    /// directory and the `container` field of its trace events.
    pub(crate) id: u64,
    /// The thread group that opened the container (`VFIO_SET_IOMMU`): the `pid<tgid>` of its
    /// debugfs directory.
    pub(crate) opener: i32,
    /// Its debugfs directory, from [`Container::publish`] to [`Container::unpublish`].
    #[pin]
    pub(crate) debugfs: Mutex<Option<debugfs::Dir<Container>>>,
    /// Vendor devices to notify when pinned pages are unmapped.
    #[pin]
    pub(crate) devices: DeviceSet,
    #[pin]
    pub(crate) inner: Mutex<ContainerInner>,
    /// Signalled (with `inner` held) whenever a busy mapping settles.
    #[pin]
    pub(crate) settled: CondVar,
}

impl Container {
    /// Creates the state of a container opened with `version` by the calling task.
    pub(crate) fn new(version: Version) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                version,
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                opener: crate::mm::current_tgid(),
                debugfs <- new_mutex!(None, "Container::debugfs"),
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
                        iommu_locked: 0,
                        reports: DirtyReports::default(),
                        in_flight: 0,
                        scope_changes: 0,
                    },
                    "Container::inner"
                ),
                settled <- new_condvar!("Container::settled"),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    /// Locks the container for an operation; `EINVAL` once it has been released (an ioctl that
    /// raced with the release of the last group).
    #[unsafe(link_section = ".text.vir_hot")]
    pub(crate) fn lock_live(&self) -> Result<Guard<'_, ContainerInner, MutexBackend>> {
        let inner = self.inner.lock();
        if inner.released {
            return Err(EINVAL);
        }
        Ok(inner)
    }

    /// Waits, with `guard`'s mutex released meanwhile, until no busy mapping overlaps `range`
    /// (every mapping if `None`). Returns whether it waited: the caller then checks again what
    /// it checked under the mutex before.
    #[unsafe(link_section = ".text.vir_hot")]
    pub(crate) fn wait_settled(&self, guard: &mut Guard<'_, ContainerInner, MutexBackend>, range: Option<&IovaRange>) -> bool {
        let mut waited = false;
        loop {
            let inner = &mut **guard;
            let busy = inner.in_flight != 0
                && match range {
                    None => true,
                    Some(r) => inner.mappings.busy_overlapping(r),
                };
            if !busy {
                return waited;
            }
            self.settled.wait(guard);
            waited = true;
        }
    }

    /// Locks the container for a request over `range` ([`Self::lock_live`]) once no busy mapping
    /// overlaps it ([`Self::wait_settled`]); `EINVAL` if it was released meanwhile.
    #[unsafe(link_section = ".text.vir_hot")]
    pub(crate) fn lock_settled(&self, range: Option<&IovaRange>) -> Result<Guard<'_, ContainerInner, MutexBackend>> {
        let mut guard = self.lock_live()?;
        if let Some(range) = range {
            if self.wait_settled(&mut guard, Some(range)) && guard.released {
                return Err(EINVAL);
            }
        }
        Ok(guard)
    }

    /// A busy mapping settled: counts it and wakes the waiters.
    pub(crate) fn settle(&self, inner: &mut ContainerInner) {
        inner.settle_one();
        self.settled.notify_all();
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
