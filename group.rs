// SPDX-License-Identifier: GPL-2.0

//! IOMMU groups as the VFIO core hands them to a backend.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h).

use crate::bindings;
use core::ptr::NonNull;
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

    /// The C pointer, for the thin FFI layer.
    pub(crate) fn as_raw(&self) -> *mut bindings::iommu_group {
        self.0.get()
    }

    /// A key that identifies this group while it is attached to a container.
    ///
    /// The address is only compared, never dereferenced through the key.
    pub(crate) fn key(&self) -> usize {
        self.0.get() as usize
    }
}

/// A counted reference to a group, which a container keeps between `attach_group` and
/// `detach_group` (or `release`).
///
/// # Invariants
///
/// `self.0` holds a reference on the group's kobject (`iommu_group_ref_get`), released on drop.
pub(crate) struct GroupRef(NonNull<bindings::iommu_group>);

// SAFETY: The reference is counted, and the group is only used through IOMMU API functions that
// may run in any task.
unsafe impl Send for GroupRef {}
// SAFETY: See `Send`.
unsafe impl Sync for GroupRef {}

impl GroupRef {
    /// Takes a reference on `group`.
    pub(crate) fn new(group: &IommuGroup) -> Self {
        // SAFETY: `group` is live (type invariant of `IommuGroup`); the function takes a reference
        // on it and returns it.
        unsafe { bindings::iommu_group_ref_get(group.as_raw()) };
        // INVARIANT: The reference was taken just above.
        Self(NonNull::from(group).cast())
    }

    /// The group.
    pub(crate) fn group(&self) -> &IommuGroup {
        // SAFETY: The group is live while `self` holds its reference (type invariant).
        unsafe { IommuGroup::from_raw(self.0.as_ptr()) }
    }
}

impl Drop for GroupRef {
    fn drop(&mut self) {
        // SAFETY: Releases the reference taken by `new` (type invariant).
        unsafe { bindings::iommu_group_put(self.0.as_ptr()) };
    }
}

/// A reserved region of a group: IOVAs its devices must not be given.
#[derive(Clone, Copy)]
pub(crate) struct ReservedRegion {
    /// The addresses.
    pub(crate) range: crate::iova::IovaRange,
    /// `IOMMU_RESV_DIRECT_RELAXABLE`: advertised as identity-mapped but usable for device
    /// assignment (type1 does not exclude these).
    pub(crate) relaxable: bool,
}

impl IommuGroup {
    /// Whether the group's devices cannot forge MSIs (interrupt remapping is in place).
    pub(crate) fn has_isolated_msi(&self) -> bool {
        // SAFETY: `self` refers to a live group.
        unsafe { bindings::iommu_group_has_isolated_msi(self.as_raw()) }
    }

    /// The group's reserved regions.
    pub(crate) fn reserved_regions(&self) -> Result<KVec<ReservedRegion>> {
        let mut cap = 8usize;
        loop {
            let mut buf = KVec::from_elem(0u64, cap.checked_mul(3).ok_or(ENOMEM)?, GFP_KERNEL)?;
            let max = i32::try_from(cap).map_err(|_| ENOMEM)?;
            // SAFETY: `buf` has room for `max` triples; the group is live.
            let n = unsafe { bindings::vir_group_resv_regions(self.as_raw(), buf.as_mut_ptr(), max) };
            let n = usize::try_from(n).map_err(|_| Error::from_errno(n))?;
            if n > cap {
                cap = n;
                continue;
            }
            let mut out = KVec::with_capacity(n, GFP_KERNEL)?;
            for r in buf[..n * 3].chunks_exact(3) {
                let (start, length, kind) = (r[0], r[1], r[2]);
                let Some(last) = length.checked_sub(1).and_then(|l| l.checked_add(start)) else {
                    continue;
                };
                let range = crate::iova::IovaRange { start, last };
                let relaxable =
                    kind == u64::from(bindings::iommu_resv_type_IOMMU_RESV_DIRECT_RELAXABLE);
                out.push(ReservedRegion { range, relaxable }, GFP_KERNEL)?;
            }
            return Ok(out);
        }
    }
}
