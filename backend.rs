// SPDX-License-Identifier: GPL-2.0

//! The backend as the VFIO core sees it: [`Container`] implements the safe [`IommuDriver`] trait
//! of `driver.rs` by delegating each call to the container operations and, for ioctls, to the
//! uAPI layer of `ioctl.rs`.

use crate::{
    bindings,
    container::{Container, Version},
    domain::Prot,
    driver::IommuDriver,
    group::{GroupType, IommuGroup},
    ioctl,
    mm::DmaRwData,
    vendor::VfioDevice,
};
use core::mem::MaybeUninit;
use kernel::{c_str, prelude::*, sync::Arc};

impl IommuDriver for Container {
    const NAME: &'static CStr = c_str!("vfio-iommu-rust");

    fn check_extension(container: Option<&Self>, extension: u64) -> i64 {
        ioctl::check_extension(container, extension)
    }

    fn open(magic: u64) -> Result<Arc<Self>> {
        // The core only opens us for a magic we answered positively.
        let version = Version::from_magic(magic).ok_or(EINVAL)?;
        let container = Container::new(version)?;
        Container::publish(&container);
        pr_debug!("container {} opened ({:?})\n", container.id, version);
        Ok(container)
    }

    fn release(container: Arc<Self>) {
        // First, with no lock held: removing the debugfs directory waits for its readers.
        container.unpublish();
        container.release();
        pr_debug!("container released\n");
    }

    #[unsafe(link_section = ".text.vir_hot")]
    fn ioctl(container: &Arc<Self>, cmd: u32, arg: usize) -> Result<i64> {
        ioctl::container_ioctl(container, cmd, arg)
    }

    fn attach_group(container: &Self, group: &IommuGroup, kind: GroupType) -> Result {
        container.attach_group(group, kind)
    }

    fn detach_group(container: &Self, group: &IommuGroup) {
        container.detach_group(group)
    }

    fn pin_pages(
        container: &Self,
        group: &IommuGroup,
        iova: u64,
        prot: Prot,
        pages: &mut [MaybeUninit<*mut bindings::page>],
    ) -> Result<usize> {
        container.pin_pages(group, iova, prot, pages)
    }

    fn unpin_pages(container: &Self, iova: u64, npages: usize) {
        container.unpin_pages(iova, npages)
    }

    fn register_device(container: &Self, dev: &VfioDevice) {
        container.register_device(dev)
    }

    fn unregister_device(container: &Self, dev: &VfioDevice) {
        container.unregister_device(dev)
    }

    #[unsafe(link_section = ".text.vir_hot")]
    fn dma_rw(container: &Self, iova: u64, data: DmaRwData<'_>) -> Result {
        container.dma_rw(iova, data)
    }
}
