// SPDX-License-Identifier: GPL-2.0

//! The type1 container uAPI (`include/uapi/linux/vfio.h`) on top of [`Container`].
//!
//! This is the backend's face to userspace, in the spirit of iommufd's `vfio_compat.c`: it decodes
//! and validates ioctl arguments and answers `VFIO_CHECK_EXTENSION`. The backend is registered for
//! `VFIO_TYPE1_IOMMU` (1) and `VFIO_TYPE1v2_IOMMU` (3) so unmodified userspace selects it.
//!
//! Implemented so far: extension checks and container/group lifetime. The DMA ioctls
//! (`VFIO_IOMMU_GET_INFO`, `VFIO_IOMMU_MAP_DMA`, `VFIO_IOMMU_UNMAP_DMA`, `VFIO_IOMMU_DIRTY_PAGES`)
//! return `ENOTTY` until they are implemented, and the extensions that depend on them
//! (`VFIO_UNMAP_ALL`, `VFIO_UPDATE_VADDR`, `VFIO_DMA_CC_IOMMU`) are answered 0.

use crate::{
    container::{Container, Version},
    driver::IommuDriver,
    group::{GroupType, IommuGroup},
};
use kernel::{c_str, prelude::*, sync::Arc, uaccess::UserPtr};

impl IommuDriver for Container {
    const NAME: &'static CStr = c_str!("vfio-iommu-rust");

    fn check_extension(_container: Option<&Self>, extension: u64) -> i64 {
        match Version::from_magic(extension) {
            Some(_) => 1,
            None => 0,
        }
    }

    fn open(magic: u64) -> Result<Arc<Self>> {
        // The core only opens us for a magic we answered positively.
        let version = Version::from_magic(magic).ok_or(EINVAL)?;
        let container = Container::new(version)?;
        pr_debug!("container opened ({:?})\n", version);
        Ok(container)
    }

    fn release(container: Arc<Self>) {
        container.release();
        pr_debug!("container released\n");
    }

    fn ioctl(container: &Arc<Self>, cmd: u32, _arg: UserPtr) -> Result<i64> {
        pr_debug!(
            "unsupported ioctl {:#x} on a {:?} container with {} group(s)\n",
            cmd,
            container.version,
            container.group_count()
        );
        Err(ENOTTY)
    }

    fn attach_group(container: &Self, group: &IommuGroup, kind: GroupType) -> Result {
        container.attach_group(group, kind)
    }

    fn detach_group(container: &Self, group: &IommuGroup) {
        container.detach_group(group)
    }
}
