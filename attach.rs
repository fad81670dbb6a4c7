// SPDX-License-Identifier: GPL-2.0

//! Groups and domains of a container: attaching a group (to a compatible IOMMU domain, or to a new
//! one into which every mapping is replayed), detaching it, and tearing the container down.
//!
//! Lock order: as in `container.rs`; called by the VFIO core with its container `group_lock`
//! held, which serialises attach, detach and release (not ioctls or vendor calls). Each first
//! waits until no mapping is busy (`Container::wait_settled`): a busy mapping is being mapped
//! into, or unmapped from, the domains the container had when it became busy.

use crate::{
    container::{AttachedGroup, Container, ContainerInner, Removals},
    dma_tree::Cover,
    domain::{Domain, DomainSet},
    group::{GroupRef, GroupType, IommuGroup},
    iova::IovaRange,
    params,
    pin_batch::PinBatch,
};
use kernel::{
    prelude::*,
    rbtree::RBTreeNodeReservation,
    sync::{Arc, UniqueArc},
};

impl ContainerInner {
    /// Unmaps and unpins every mapping (the last domain is going); removes them too if `remove`
    /// (no emulated group is left to use them, or the container `id` is released).
    pub(crate) fn unmap_unpin_all(&mut self, id: u64, remove: bool) {
        if !remove {
            let domains = &self.domains;
            let mut unpinned = 0u64;
            for m in self.mappings.iter_mut() {
                unpinned = unpinned.saturating_add(m.unmap_and_unpin(domains.iter()));
                crate::mm::cond_resched();
            }
            self.iommu_unpinned(unpinned);
            return;
        }
        let all = IovaRange {
            start: 0,
            last: u64::MAX,
        };
        let mut gone = Removals::default();
        let domains = &self.domains;
        self.mappings
            .remove_covered(&all, Cover::StartsIn, |m| gone.remove(m, domains.iter(), id, false, true));
        gone.apply(self, 0);
    }
}

impl Container {
    /// Attaches `group`: `EBUSY` while a vaddr is invalid, `EINVAL` if it is attached already, is
    /// a no-IOMMU group, or its IOMMU constraints conflict with the mappings, `EPERM` without
    /// interrupt isolation.
    pub(crate) fn attach_group(&self, group: &IommuGroup, kind: GroupType) -> Result {
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let mut inner = self.lock_live()?;
        // A new domain must receive every mapping, and replay maps only settled ones.
        if self.wait_settled(&mut inner, None) && inner.released {
            return Err(EINVAL);
        }
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
        let group_ref = GroupRef::new(group);
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
            inner.non_pinned_groups = inner.non_pinned_groups.saturating_add(1);
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
        // Allocated first: a domain must not be dropped with its group attached.
        let slot = UniqueArc::new_uninit(GFP_KERNEL)?;
        let domain: Arc<Domain> = slot.write(Domain::alloc_attached(group)?).into();
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
        // The container's page sizes must keep one in common: its smallest is the unit of every
        // request and of dirty bitmaps.
        if inner.domains.pgsize_bitmap_with(info.pgsize_bitmap) == 0 {
            pr_warn!("group {}: its IOMMU shares no page size with the container's\n", group.id());
            return Err(EINVAL);
        }
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
        let mut pinned = 0u64;
        let first = inner.domains.iter().next();
        for m in inner.mappings.iter_mut() {
            result = match first {
                Some(from) => m.replay(from, domain),
                None => {
                    if batch.is_none() {
                        batch = Some(PinBatch::new(u64::MAX)?);
                    }
                    match batch.as_mut() {
                        Some(b) => m.pin_and_map(&[domain], b).map(|n| pinned = pinned.saturating_add(n)),
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
            pinned = 0;
        }
        inner.iommu_pinned(pinned);
        result
    }

    /// Detaches `group`, which the core attached before. When it was the last group of its
    /// domain, the domain goes; with the last domain, all mappings are unpinned (and removed if
    /// no emulated group is left to use them).
    pub(crate) fn detach_group(&self, group: &IommuGroup) {
        let mut inner = self.inner.lock();
        // Busy mappings are being mapped into or unmapped from the domains: let them finish.
        self.wait_settled(&mut inner, None);
        let Some(g) = inner.groups.remove(&group.key()) else {
            pr_warn!("detach of group {}, which is not attached\n", group.id());
            return;
        };
        if !g.pinned_scope {
            // The group could have written anything mapped: report everything once.
            inner.non_pinned_groups = inner.non_pinned_groups.saturating_sub(1);
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
                e.groups = e.groups.saturating_sub(1);
                e.groups == 0
            }
            None => false,
        };
        if last_group {
            let last_domain = inner.domains.iter().nth(1).is_none();
            if last_domain {
                let keep = inner.has_emulated();
                inner.unmap_unpin_all(self.id, !keep);
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
        self.wait_settled(&mut guard, None);
        let inner = &mut *guard;
        inner.released = true;
        inner.unmap_unpin_all(self.id, true);
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
