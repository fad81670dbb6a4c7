// SPDX-License-Identifier: GPL-2.0

//! IOMMU domains: a thin safe layer over the IOMMU API (`include/linux/iommu.h`).

use crate::{bindings, group::IommuGroup, iova::IovaRange};
use core::{mem::MaybeUninit, ptr::NonNull};
use kernel::{
    error::to_result,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::Arc,
};

/// The most runs [`Domain::map_runs`] maps at once (`VIR_MAP_RUNS_MAX`).
pub(crate) const MAP_RUNS_MAX: usize = bindings::VIR_MAP_RUNS_MAX as usize;
/// The most pages of one run of [`Domain::map_runs`] (`VIR_MAP_RUN_MAX_PAGES`: 2 GiB).
pub(crate) const MAP_RUN_MAX_PAGES: u64 = bindings::VIR_MAP_RUN_MAX_PAGES as u64;

/// Device-side access rights of a mapping (`IOMMU_READ`/`IOMMU_WRITE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Prot {
    /// The device may read the memory.
    pub(crate) read: bool,
    /// The device may write the memory.
    pub(crate) write: bool,
}

impl Prot {
    /// The `IOMMU_*` flags for `iommu_map`, always cache coherent as in type1.
    fn flags(self) -> i32 {
        let mut f = bindings::IOMMU_CACHE as i32;
        if self.read {
            f |= bindings::IOMMU_READ as i32;
        }
        if self.write {
            f |= bindings::IOMMU_WRITE as i32;
        }
        f
    }
}

/// What a container needs to know about a domain, read once when it is allocated.
#[derive(Clone, Copy)]
pub(crate) struct DomainInfo {
    /// Page sizes the domain can map.
    pub(crate) pgsize_bitmap: u64,
    /// The addresses the domain can translate.
    pub(crate) aperture: IovaRange,
    /// Whether the domain blocks no-snoop DMA (`VFIO_DMA_CC_IOMMU`).
    pub(crate) enforce_cache_coherency: bool,
    /// The domain's `iommu_domain_ops`: domains with the same ops (and coherency) are compatible.
    ops: usize,
}

impl DomainInfo {
    /// The smallest page size above `PAGE_SIZE` the domain can map, or 0 if it has none.
    pub(crate) fn large_pgsize(&self) -> u64 {
        let page = crate::mm::PAGE_SIZE;
        let large = self.pgsize_bitmap & !(page | (page - 1));
        if large == 0 {
            0
        } else {
            1u64 << large.trailing_zeros()
        }
    }

    /// Whether a group attached to a domain with `self` may move to one with `other`.
    pub(crate) fn compatible(&self, other: &DomainInfo) -> bool {
        self.ops == other.ops && self.enforce_cache_coherency == other.enforce_cache_coherency
    }
}

/// An unmanaged IOMMU paging domain, owned by a container.
///
/// # Invariants
///
/// `ptr` is a domain from `iommu_paging_domain_alloc` that is freed on drop; the owner detaches
/// every group before dropping it.
pub(crate) struct Domain {
    ptr: NonNull<bindings::iommu_domain>,
    info: DomainInfo,
}

// The IOMMU API's page-table calls (`iommu_map`, `iommu_unmap_fast`, `iommu_iova_to_phys`) take no
// domain lock and may run concurrently for disjoint IOVA ranges (iommufd maps and unmaps disjoint
// areas of one domain concurrently); the container never works on overlapping ranges concurrently
// (one task owns a busy mapping's range, the container mutex covers the rest) and serialises
// attach/detach with its mutex.
// SAFETY: The IOMMU API may be called for a domain from any task, under the rules above.
unsafe impl Send for Domain {}
// SAFETY: See `Send`.
unsafe impl Sync for Domain {}

impl Domain {
    /// Allocates a paging domain suitable for the devices of `group` and attaches the group.
    pub(crate) fn alloc_attached(group: &IommuGroup) -> Result<Self> {
        // SAFETY: `group` is live for the call (type invariant of `IommuGroup`).
        let ptr = unsafe { bindings::vir_group_alloc_domain(group.as_raw()) };
        let ptr = kernel::error::from_err_ptr(ptr)?;
        let ptr = NonNull::new(ptr).ok_or(ENOMEM)?;
        // SAFETY: Both pointers are valid for the call.
        let attached = to_result(unsafe { bindings::iommu_attach_group(ptr.as_ptr(), group.as_raw()) });
        // The geometry and page sizes are final only once a device is attached (the Intel
        // driver sizes the domain to the IOMMU's address width then), and a domain that enforces
        // snooping cannot be attached to an IOMMU without snoop control: ask afterwards.
        let mut raw = bindings::vir_domain_info::default();
        if attached.is_ok() {
            // SAFETY: `ptr` is a valid domain, `raw` a valid output location.
            unsafe { bindings::vir_domain_info(ptr.as_ptr(), &mut raw) };
        }
        let aperture = IovaRange::new(raw.aperture_start, raw.aperture_end)
            .filter(|_| raw.pgsize_bitmap != 0);
        let (Some(aperture), Ok(())) = (aperture, attached) else {
            if attached.is_ok() {
                // SAFETY: `group` was attached just above.
                unsafe { bindings::iommu_detach_group(ptr.as_ptr(), group.as_raw()) };
            }
            // SAFETY: `ptr` was allocated above and no group is attached to it.
            unsafe { bindings::iommu_domain_free(ptr.as_ptr()) };
            return Err(attached.err().unwrap_or(ENODEV));
        };
        // SAFETY: `ptr` is a valid domain.
        let enforce_cache_coherency =
            unsafe { bindings::vir_domain_enforce_cache_coherency(ptr.as_ptr()) };
        // INVARIANT: `ptr` was allocated above and is owned by the new `Domain`.
        Ok(Self {
            ptr,
            info: DomainInfo {
                pgsize_bitmap: raw.pgsize_bitmap,
                aperture,
                enforce_cache_coherency,
                ops: raw.ops as usize,
            },
        })
    }

    /// The domain's properties.
    pub(crate) fn info(&self) -> &DomainInfo {
        &self.info
    }

    /// The domain's address, which identifies it in a container.
    pub(crate) fn key(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Attaches `group` to this domain.
    pub(crate) fn attach(&self, group: &IommuGroup) -> Result {
        // SAFETY: Both pointers are valid for the call.
        to_result(unsafe { bindings::iommu_attach_group(self.ptr.as_ptr(), group.as_raw()) })
    }

    /// Detaches `group`, which is attached to this domain.
    pub(crate) fn detach(&self, group: &IommuGroup) {
        // SAFETY: Both pointers are valid for the call.
        unsafe { bindings::iommu_detach_group(self.ptr.as_ptr(), group.as_raw()) }
    }

    /// Maps `size` bytes of physical memory at `paddr` at `iova`.
    pub(crate) fn map(&self, iova: u64, paddr: u64, size: u64, prot: Prot) -> Result {
        let gfp = bindings::GFP_KERNEL_ACCOUNT;
        // SAFETY: `ptr` is valid; the IOMMU driver validates the range against the domain.
        to_result(unsafe {
            bindings::iommu_map(self.ptr.as_ptr(), iova as usize, paddr, size as usize, prot.flags(), gfp)
        })
    }

    /// Maps `runs`, pairs of (first pfn, pages), one after the other from `iova`, with one IOTLB
    /// sync: at most [`MAP_RUNS_MAX`] runs of at most [`MAP_RUN_MAX_PAGES`] pages of memory
    /// with a `struct page` (not MMIO; `EINVAL` otherwise). All are mapped, or none.
    pub(crate) fn map_runs(&self, iova: u64, runs: &[u64], prot: Prot) -> Result {
        let n = u32::try_from(runs.len() / 2).map_err(|_| EINVAL)?;
        if runs.len() % 2 != 0 {
            return Err(EINVAL);
        }
        // SAFETY: `ptr` is valid and `runs` holds `n` pairs; the helper checks the counts and
        // that every pfn has a `struct page`, and reads nothing past `runs`.
        to_result(unsafe {
            bindings::vir_map_runs(self.ptr.as_ptr(), iova as usize, runs.as_ptr(), n, prot.flags())
        })
    }

    /// Unmaps up to `size` bytes at `iova` and returns how many bytes were unmapped (which may
    /// exceed `size` when a large page covers more, and is 0 if nothing was mapped there).
    pub(crate) fn unmap(&self, iova: u64, size: u64) -> u64 {
        // SAFETY: `ptr` is valid.
        unsafe { bindings::iommu_unmap(self.ptr.as_ptr(), iova as usize, size as usize) as u64 }
    }

    /// The physical address `iova` translates to, or 0 if it is not mapped.
    pub(crate) fn iova_to_phys(&self, iova: u64) -> u64 {
        // SAFETY: `ptr` is valid.
        unsafe { bindings::iommu_iova_to_phys(self.ptr.as_ptr(), iova) }
    }

    /// Runs `f` with a [`Gather`] for unmapping from this domain with deferred IOTLB
    /// invalidation; what `f` leaves unsynced is synced when it returns.
    pub(crate) fn with_gather<R>(&self, f: impl FnOnce(&mut Gather<'_>) -> R) -> R {
        let mut raw = MaybeUninit::<bindings::iommu_iotlb_gather>::uninit();
        // SAFETY: `raw` is valid for writes of a gather, which the helper initialises whole.
        unsafe { bindings::vir_iotlb_gather_init(raw.as_mut_ptr()) };
        // SAFETY: Initialised just above. `raw` stays in this frame, borrowed, until `g` is gone.
        let raw = unsafe { raw.assume_init_mut() };
        // INVARIANT: `raw` was initialised for unmaps of `self` and is pinned by the borrow.
        let mut g = Gather { domain: self, raw, pending: false };
        f(&mut g)
    }
}

/// Unmapping from a domain with deferred IOTLB invalidation: `iommu_unmap_fast` into a
/// `struct iommu_iotlb_gather`, and one `iommu_iotlb_sync` for many unmaps (type1's
/// `unmap_unpin_fast()`). Made by [`Domain::with_gather`].
///
/// The device may still reach pages unmapped through it (through the IOTLB) until the next
/// [`Gather::sync`] returns: their pins must be held until then.
///
/// # Invariants
///
/// `raw` was initialised by `iommu_iotlb_gather_init` and does not move while `self` exists (its
/// free list points at itself); it gathers unmaps of `domain` only. `pending` is whether an unmap
/// was gathered since the last sync.
pub(crate) struct Gather<'a> {
    domain: &'a Domain,
    raw: &'a mut bindings::iommu_iotlb_gather,
    pending: bool,
}

impl Gather<'_> {
    /// Unmaps up to `size` bytes at `iova`, without invalidating the IOTLB yet, and returns how many
    /// bytes were unmapped (as [`Domain::unmap`]: more than `size` when a large page covers more,
    /// 0 if nothing was mapped at `iova`).
    pub(crate) fn unmap(&mut self, iova: u64, size: u64) -> u64 {
        self.pending = true;
        // SAFETY: `domain` is valid and `raw` is an initialised gather of it (type invariants).
        unsafe {
            bindings::iommu_unmap_fast(self.domain.ptr.as_ptr(), iova as usize, size as usize, &mut *self.raw)
                as u64
        }
    }

    /// Invalidates the IOTLB for everything unmapped since the last sync; afterwards the device can
    /// no longer reach those pages.
    pub(crate) fn sync(&mut self) {
        if !self.pending {
            return;
        }
        // SAFETY: `domain` is valid and `raw` is an initialised gather of it (type invariants);
        // the helper leaves it initialised.
        unsafe { bindings::vir_iotlb_sync(self.domain.ptr.as_ptr(), &mut *self.raw) };
        self.pending = false;
    }
}

impl Drop for Gather<'_> {
    fn drop(&mut self) {
        // Nothing unmapped may stay reachable, and the page tables the unmaps freed are released
        // by the sync.
        self.sync();
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        // SAFETY: `ptr` is owned by `self` and no group is attached (type invariant).
        unsafe { bindings::iommu_domain_free(self.ptr.as_ptr()) }
    }
}

/// Counted references to the domains of a container at one time ([`DomainSet::refs`]).
pub(crate) struct DomainRefs(KVec<Arc<Domain>>);

impl DomainRefs {
    /// The domains, as the mapping code takes them.
    pub(crate) fn as_refs(&self) -> Result<KVec<&Domain>> {
        let mut v = KVec::with_capacity(self.0.len(), GFP_KERNEL)?;
        for d in self.0.iter() {
            v.push(&**d, GFP_KERNEL)?;
        }
        Ok(v)
    }
}

/// A domain of a container and how many of the container's groups are attached to it.
pub(crate) struct DomainEntry {
    /// The domain (shared with maps and unmaps working without the container mutex).
    pub(crate) domain: Arc<Domain>,
    /// Attached groups; the domain is freed when the last one leaves.
    pub(crate) groups: usize,
}

/// The IOMMU domains of a container, keyed by [`Domain::key`].
///
/// Every domain maps every pinned mapping of the container; the first one is the container's
/// record of which physical pages back a mapping (type1's "pfn oracle").
pub(crate) struct DomainSet {
    tree: RBTree<usize, DomainEntry>,
}

impl DomainSet {
    /// An empty set.
    pub(crate) fn new() -> Self {
        Self { tree: RBTree::new() }
    }

    /// Whether the container has no domain (only emulated groups, or none).
    pub(crate) fn is_empty(&self) -> bool {
        self.tree.iter().next().is_none()
    }

    /// The domains.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Domain> {
        self.tree.values().map(|e| &*e.domain)
    }

    /// References to all domains, for the mapping code under the container mutex.
    pub(crate) fn borrowed(&self) -> Result<KVec<&Domain>> {
        let mut v = KVec::new();
        for d in self.iter() {
            v.push(d, GFP_KERNEL)?;
        }
        Ok(v)
    }

    /// Counted references to all domains, for the mapping code (which may drop the container
    /// mutex while it holds them).
    pub(crate) fn refs(&self) -> Result<DomainRefs> {
        let mut v = KVec::with_capacity(self.tree.iter().count(), GFP_KERNEL)?;
        for e in self.tree.values() {
            v.push(e.domain.clone(), GFP_KERNEL)?;
        }
        Ok(DomainRefs(v))
    }

    /// The entry of the domain with `key`.
    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut DomainEntry> {
        self.tree.get_mut(&key)
    }

    /// The entries.
    pub(crate) fn entries_mut(&mut self) -> impl Iterator<Item = &mut DomainEntry> {
        self.tree.values_mut()
    }

    /// Allocates the tree node of a domain to be inserted, so that inserting cannot fail.
    pub(crate) fn reserve() -> Result<DomainNode> {
        Ok(DomainNode(RBTreeNodeReservation::new(GFP_KERNEL)?))
    }

    /// Adds a domain with its first group, in a node reserved before.
    pub(crate) fn insert(&mut self, node: DomainNode, domain: Arc<Domain>) {
        let key = domain.key();
        self.tree
            .insert(node.0.into_node(key, DomainEntry { domain, groups: 1 }));
    }

    /// Removes the domain with `key` and hands it back (it is freed with the last reference).
    pub(crate) fn remove(&mut self, key: usize) -> Option<Arc<Domain>> {
        self.tree.remove(&key).map(|e| e.domain)
    }

    /// The page sizes every domain supports, with sizes below `PAGE_SIZE` folded into
    /// `PAGE_SIZE` (type1's `vfio_update_pgsize_bitmap`); `PAGE_MASK` without domains.
    pub(crate) fn pgsize_bitmap(&self) -> u64 {
        self.pgsize_bitmap_with(u64::MAX)
    }

    /// [`Self::pgsize_bitmap`] with one more domain that supports `extra`: 0 if they share no page
    /// size, which `attach` refuses.
    #[unsafe(link_section = ".text.vir_hot")]
    pub(crate) fn pgsize_bitmap_with(&self, extra: u64) -> u64 {
        fold_pgsizes(self.iter().fold(extra, |b, d| b & d.info().pgsize_bitmap))
    }

    /// The smallest page size of the container: the unit of its IOVAs and dirty bitmaps.
    pub(crate) fn min_pgsize(&self) -> u64 {
        min_pgsize(self.pgsize_bitmap())
    }

    /// Whether every domain enforces cache coherency (true without domains, as in type1).
    pub(crate) fn enforce_cache_coherency(&self) -> bool {
        self.iter().all(|d| d.info().enforce_cache_coherency)
    }
}

/// A tree node reserved for a domain.
pub(crate) struct DomainNode(RBTreeNodeReservation<usize, DomainEntry>);

/// Folds page sizes below `PAGE_SIZE` into `PAGE_SIZE` (type1's `vfio_update_pgsize_bitmap`).
pub(crate) fn fold_pgsizes(bitmap: u64) -> u64 {
    let page_mask = !(crate::mm::PAGE_SIZE - 1);
    if bitmap & !page_mask != 0 {
        (bitmap & page_mask) | crate::mm::PAGE_SIZE
    } else {
        bitmap
    }
}

/// The smallest page size of `bitmap`; `PAGE_SIZE` for an empty one (which an attach refuses to
/// create, so it never serves a request).
pub(crate) fn min_pgsize(bitmap: u64) -> u64 {
    1u64.checked_shl(bitmap.trailing_zeros()).unwrap_or(crate::mm::PAGE_SIZE)
}
