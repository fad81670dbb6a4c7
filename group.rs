// SPDX-License-Identifier: GPL-2.0

//! IOMMU groups as the VFIO core hands them to a backend.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h).

use crate::bindings;
use kernel::{prelude::*, types::Opaque};

/// How the devices of a group reach memory (`enum vfio_group_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GroupType {
    /// Devices behind a real IOMMU: the backend attaches the group to its IOMMU domains.
    Iommu,
    /// Mediated devices (mdev): no IOMMU; their vendor driver pins pages and reads/writes IOVAs.
    EmulatedIommu,
    /// Devices without an IOMMU (`vfio-noiommu`); never offered to a type1 backend by the core.
    NoIommu,
}

impl GroupType {
    /// Converts the C enum value, rejecting values this backend does not know.
    pub(crate) fn from_raw(kind: bindings::vfio_group_type) -> Result<Self> {
        match kind {
            bindings::vfio_group_type_VFIO_IOMMU => Ok(Self::Iommu),
            bindings::vfio_group_type_VFIO_EMULATED_IOMMU => Ok(Self::EmulatedIommu),
            bindings::vfio_group_type_VFIO_NO_IOMMU => Ok(Self::NoIommu),
            _ => Err(EINVAL),
        }
    }
}

/// A reference to a `struct iommu_group`.
///
/// Instances are only created by [`IommuGroup::from_raw`] for the duration of a core callback,
/// during which the core holds a reference on the group.
#[repr(transparent)]
pub(crate) struct IommuGroup(Opaque<bindings::iommu_group>);

impl IommuGroup {
    /// Creates a reference to the group at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a live `struct iommu_group` for the lifetime `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::iommu_group) -> &'a Self {
        // SAFETY: `IommuGroup` is a transparent wrapper of the C struct and `ptr` is valid for
        // `'a` (function safety contract).
        unsafe { &*ptr.cast::<Self>() }
    }

    /// The group's number, as in `/dev/vfio/<id>`.
    pub(crate) fn id(&self) -> i32 {
        // SAFETY: `self` refers to a live group (type invariant of the reference).
        unsafe { bindings::iommu_group_id(self.0.get()) }
    }

    /// A key that identifies this group while it is attached to a container.
    ///
    /// The address is only compared, never dereferenced through the key.
    pub(crate) fn key(&self) -> usize {
        self.0.get() as usize
    }
}
