// SPDX-License-Identifier: GPL-2.0

//! The backend state of one VFIO container.
//!
//! A container is created by `VFIO_SET_IOMMU` (`open`), gains and loses groups through the VFIO
//! core's attach/detach calls, serves the container ioctls (see `ioctl.rs`) and is torn down by
//! `release` after its last group left.
//!
//! Lock order (outermost first):
//! 1. `Container::inner` (mutex; may sleep, allocates with `GFP_KERNEL`).

use crate::group::{GroupType, IommuGroup};
use kernel::{new_mutex, prelude::*, rbtree::RBTree, sync::Arc, sync::Mutex};

/// The unmap semantics a container was opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    /// `VFIO_TYPE1_IOMMU`: an unmap may split nothing but removes whole mappings it touches.
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
    /// The group's number (`/dev/vfio/<id>`), for messages.
    id: i32,
    /// How the group's devices reach memory.
    kind: GroupType,
}

/// The part of a container protected by its mutex.
struct ContainerInner {
    /// The attached groups, keyed by [`IommuGroup::key`].
    groups: RBTree<usize, AttachedGroup>,
}

/// The backend state of a VFIO container.
///
/// # Locking
///
/// `version` is immutable. Everything else lives in `inner`, behind a mutex: the core serialises
/// attach/detach/release, but ioctls arrive concurrently with them and with each other.
///
/// # Lifetime
///
/// Reference counted: the VFIO core owns one reference from `open` to `release`; every ioctl in
/// flight owns another, so the state outlives a `release` that races with an ioctl.
#[pin_data]
pub(crate) struct Container {
    /// Unmap semantics requested at `VFIO_SET_IOMMU`.
    pub(crate) version: Version,
    #[pin]
    inner: Mutex<ContainerInner>,
}

impl Container {
    /// Creates the state of a container opened with `version`.
    pub(crate) fn new(version: Version) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                version,
                inner <- new_mutex!(ContainerInner { groups: RBTree::new() }, "Container::inner"),
            }),
            GFP_KERNEL,
        )
    }

    /// Attaches `group`: fails with `EINVAL` if it is already attached or of a type a type1
    /// container cannot serve.
    pub(crate) fn attach_group(&self, group: &IommuGroup, kind: GroupType) -> Result {
        if kind == GroupType::NoIommu {
            pr_debug!("group {}: no-IOMMU groups are not served\n", group.id());
            return Err(EINVAL);
        }
        let mut inner = self.inner.lock();
        if inner.groups.get(&group.key()).is_some() {
            pr_debug!("group {} is already attached\n", group.id());
            return Err(EINVAL);
        }
        let attached = AttachedGroup {
            id: group.id(),
            kind,
        };
        inner
            .groups
            .try_create_and_insert(group.key(), attached, GFP_KERNEL)?;
        pr_debug!("group {} attached ({:?})\n", group.id(), kind);
        Ok(())
    }

    /// Detaches `group`, which the core attached before.
    pub(crate) fn detach_group(&self, group: &IommuGroup) {
        let mut inner = self.inner.lock();
        match inner.groups.remove(&group.key()) {
            Some(g) => pr_debug!("group {} detached ({:?})\n", g.id, g.kind),
            None => pr_warn!("detach of group {}, which is not attached\n", group.id()),
        }
    }

    /// Tears the container down when the core releases it; its groups have all been detached.
    pub(crate) fn release(&self) {
        let inner = self.inner.lock();
        for g in inner.groups.values() {
            pr_warn!("release with group {} still attached\n", g.id);
        }
    }

    /// The number of groups attached now.
    pub(crate) fn group_count(&self) -> usize {
        self.inner.lock().groups.iter().count()
    }
}
