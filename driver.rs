// SPDX-License-Identifier: GPL-2.0

//! A safe Rust interface over the VFIO core's `struct vfio_iommu_driver_ops`.
//!
//! C header: [`drivers/vfio/vfio.h`](srctree/drivers/vfio/vfio.h); caller:
//! [`drivers/vfio/container.c`](srctree/drivers/vfio/container.c).
//!
//! A backend implements [`IommuDriver`] and keeps a [`Registration`] alive for as long as it is
//! registered. The trampolines in [`Adapter`] are the only code that sees the `void *iommu_data`
//! the core stores for a container: it is always an [`Arc`] of the backend's container type.
//!
//! Contract of the 6.12 core, which the trampolines rely on:
//! - `ioctl(NULL, VFIO_CHECK_EXTENSION, ext)` is called before any `open`, for every registered
//!   driver, when userspace asks the container which extensions exist;
//! - `open(magic)` is called by `VFIO_SET_IOMMU` with the requested magic, after this driver
//!   answered that magic positively, with a module reference taken on [`Registration`]'s owner;
//! - `attach_group`/`detach_group`/`release` are serialised by the core's container `group_lock`;
//! - every other container ioctl is passed to `ioctl` with no core lock held, concurrently with
//!   anything, including the `release` that follows the detach of the container's last group.

use crate::bindings;
use crate::domain::Prot;
use crate::group::{GroupType, IommuGroup};
use crate::vendor::VfioDevice;
use core::ptr;
use kernel::ffi;
use kernel::{
    error::{from_result, to_result},
    prelude::*,
    sync::Arc,
    types::ForeignOwnable,
    uaccess::UserPtr,
    ThisModule,
};

/// The operations of a VFIO IOMMU backend, called by the VFIO core for its containers.
pub(crate) trait IommuDriver: Send + Sync + Sized + 'static {
    /// The driver's name, shown in the VFIO core's messages.
    const NAME: &'static CStr;

    /// Answers `VFIO_CHECK_EXTENSION` for `extension`: a positive value if supported, else 0.
    ///
    /// `container` is `None` when the core asks before `VFIO_SET_IOMMU` selected a backend.
    fn check_extension(container: Option<&Self>, extension: u64) -> i64;

    /// Creates the backend state of a container for `VFIO_SET_IOMMU` with `magic`.
    fn open(magic: u64) -> Result<Arc<Self>>;

    /// Tears down a container: the core's last reference is handed back.
    ///
    /// Must not fail. An ioctl may still be running on another CPU with its own reference.
    fn release(container: Arc<Self>);

    /// Handles a container ioctl other than `VFIO_CHECK_EXTENSION`; `arg` is a user pointer or
    /// value, as the ioctl defines.
    fn ioctl(container: &Arc<Self>, cmd: u32, arg: UserPtr) -> Result<i64>;

    /// Attaches `group` (of type `kind`) to the container.
    fn attach_group(container: &Self, group: &IommuGroup, kind: GroupType) -> Result;

    /// Detaches `group`, which was attached before, from the container. Must not fail.
    fn detach_group(container: &Self, group: &IommuGroup);

    /// Pins `pages.len()` pages from `iova` for a vendor driver of `group`; returns how many.
    fn pin_pages(
        container: &Self,
        group: &IommuGroup,
        iova: u64,
        prot: Prot,
        pages: &mut [*mut bindings::page],
    ) -> Result<usize>;

    /// Releases `npages` vendor pins from `iova`.
    fn unpin_pages(container: &Self, iova: u64, npages: usize);

    /// A vendor device was opened in the container.
    fn register_device(container: &Self, dev: &VfioDevice);

    /// A vendor device was closed.
    fn unregister_device(container: &Self, dev: &VfioDevice);

    /// Copies between `data` and the memory mapped at `iova`, for a vendor driver.
    fn dma_rw(container: &Self, iova: u64, data: &mut [u8], write: bool) -> Result;
}

/// The `extern "C"` trampolines of a [`IommuDriver`].
struct Adapter<T: IommuDriver>(core::marker::PhantomData<T>);

impl<T: IommuDriver> Adapter<T> {
    /// Borrows the container behind `iommu_data`.
    ///
    /// # Safety
    ///
    /// `iommu_data` must be non-null and come from [`Self::open_callback`], with the matching
    /// [`Self::release_callback`] not yet returned for the lifetime `'a`.
    unsafe fn container<'a>(iommu_data: *mut ffi::c_void) -> kernel::sync::ArcBorrow<'a, T> {
        // SAFETY: Guaranteed by the caller; `open_callback` made the pointer with `into_foreign`.
        unsafe { <Arc<T> as ForeignOwnable>::borrow(iommu_data) }
    }

    /// # Safety
    ///
    /// Only called by the VFIO core, from `VFIO_SET_IOMMU`.
    unsafe extern "C" fn open_callback(arg: ffi::c_ulong) -> *mut ffi::c_void {
        match T::open(arg as u64) {
            Ok(container) => container.into_foreign().cast_mut(),
            Err(e) => e.to_ptr(),
        }
    }

    /// # Safety
    ///
    /// Only called by the VFIO core, once per successful `open_callback`, with its result.
    unsafe extern "C" fn release_callback(iommu_data: *mut ffi::c_void) {
        // SAFETY: `iommu_data` came from `open_callback` and the core releases it exactly once;
        // ownership of that reference moves back to Rust here.
        let container = unsafe { <Arc<T> as ForeignOwnable>::from_foreign(iommu_data) };
        T::release(container);
    }

    /// # Safety
    ///
    /// Only called by the VFIO core: `iommu_data` is NULL (only for `VFIO_CHECK_EXTENSION`
    /// before `VFIO_SET_IOMMU`) or comes from `open_callback` and has not been released.
    unsafe extern "C" fn ioctl_callback(
        iommu_data: *mut ffi::c_void,
        cmd: ffi::c_uint,
        arg: ffi::c_ulong,
    ) -> ffi::c_long {
        if cmd == bindings::VFIO_CHECK_EXTENSION {
            let container = if iommu_data.is_null() {
                None
            } else {
                // SAFETY: Non-null `iommu_data` is a live container (function safety contract).
                Some(unsafe { Self::container(iommu_data) })
            };
            return T::check_extension(container.as_deref(), arg as u64) as ffi::c_long;
        }
        if iommu_data.is_null() {
            return EINVAL.to_errno() as ffi::c_long;
        }
        // SAFETY: Non-null `iommu_data` is a live container (function safety contract). Taking
        // our own reference keeps the state alive for the whole ioctl even if the core releases
        // the container meanwhile (the core calls `ioctl` without a lock).
        let container: Arc<T> = unsafe { Self::container(iommu_data) }.into();
        from_result(|| Ok(T::ioctl(&container, cmd, arg as UserPtr)? as ffi::c_long))
    }

    /// # Safety
    ///
    /// Only called by the VFIO core with a live container and a group it holds a reference on.
    unsafe extern "C" fn attach_group_callback(
        iommu_data: *mut ffi::c_void,
        group: *mut bindings::iommu_group,
        kind: bindings::vfio_group_type,
    ) -> ffi::c_int {
        from_result(|| {
            // SAFETY: `iommu_data` is a live container (function safety contract).
            let container = unsafe { Self::container(iommu_data) };
            // SAFETY: The core holds a reference on `group` for the duration of the call.
            let group = unsafe { IommuGroup::from_raw(group) };
            T::attach_group(&container, group, GroupType::from_raw(kind)?)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Only called by the VFIO core with a live container and a group attached to it before.
    unsafe extern "C" fn detach_group_callback(
        iommu_data: *mut ffi::c_void,
        group: *mut bindings::iommu_group,
    ) {
        // SAFETY: `iommu_data` is a live container (function safety contract).
        let container = unsafe { Self::container(iommu_data) };
        // SAFETY: The core holds a reference on `group` for the duration of the call.
        let group = unsafe { IommuGroup::from_raw(group) };
        T::detach_group(&container, group);
    }

    /// # Safety
    ///
    /// Only called by the VFIO core (`vfio_pin_pages()`) with a live container, a group in it,
    /// `1 <= npage <= VFIO_PIN_PAGES_MAX_ENTRIES` and `pages` an array of `npage` entries.
    unsafe extern "C" fn pin_pages_callback(
        iommu_data: *mut ffi::c_void,
        group: *mut bindings::iommu_group,
        user_iova: bindings::dma_addr_t,
        npage: ffi::c_int,
        prot: ffi::c_int,
        pages: *mut *mut bindings::page,
    ) -> ffi::c_int {
        from_result(|| {
            let n = usize::try_from(npage).map_err(|_| EINVAL)?;
            if pages.is_null() || n == 0 {
                return Err(EINVAL);
            }
            let known = (bindings::IOMMU_READ | bindings::IOMMU_WRITE) as ffi::c_int;
            if prot & !known != 0 {
                return Err(EINVAL);
            }
            let prot = Prot {
                read: prot & bindings::IOMMU_READ as ffi::c_int != 0,
                write: prot & bindings::IOMMU_WRITE as ffi::c_int != 0,
            };
            // SAFETY: `iommu_data` is a live container (function safety contract).
            let container = unsafe { Self::container(iommu_data) };
            // SAFETY: The core holds a reference on `group` for the duration of the call.
            let group = unsafe { IommuGroup::from_raw(group) };
            // SAFETY: `pages` has `npage` entries, owned by the caller for the call.
            let pages = unsafe { core::slice::from_raw_parts_mut(pages, n) };
            let done = T::pin_pages(&container, group, user_iova, prot, pages)?;
            ffi::c_int::try_from(done).map_err(|_| EINVAL)
        })
    }

    /// # Safety
    ///
    /// Only called by the VFIO core (`vfio_unpin_pages()`) with a live container.
    unsafe extern "C" fn unpin_pages_callback(
        iommu_data: *mut ffi::c_void,
        user_iova: bindings::dma_addr_t,
        npage: ffi::c_int,
    ) {
        let Ok(n) = usize::try_from(npage) else {
            return;
        };
        // SAFETY: `iommu_data` is a live container (function safety contract).
        let container = unsafe { Self::container(iommu_data) };
        T::unpin_pages(&container, user_iova, n);
    }

    /// # Safety
    ///
    /// Only called by the VFIO core with a live container and a device it holds open.
    unsafe extern "C" fn register_device_callback(
        iommu_data: *mut ffi::c_void,
        vdev: *mut bindings::vfio_device,
    ) {
        // SAFETY: `iommu_data` is a live container (function safety contract).
        let container = unsafe { Self::container(iommu_data) };
        // SAFETY: The device stays live until `unregister_device_callback` (core contract).
        T::register_device(&container, unsafe { VfioDevice::from_raw(vdev) });
    }

    /// # Safety
    ///
    /// Only called by the VFIO core with a live container and a device registered before.
    unsafe extern "C" fn unregister_device_callback(
        iommu_data: *mut ffi::c_void,
        vdev: *mut bindings::vfio_device,
    ) {
        // SAFETY: `iommu_data` is a live container (function safety contract).
        let container = unsafe { Self::container(iommu_data) };
        // SAFETY: The device is live for the call.
        T::unregister_device(&container, unsafe { VfioDevice::from_raw(vdev) });
    }

    /// # Safety
    ///
    /// Only called by the VFIO core (`vfio_dma_rw()`) with a live container and `data` valid for
    /// `count` bytes (`count > 0`).
    unsafe extern "C" fn dma_rw_callback(
        iommu_data: *mut ffi::c_void,
        user_iova: bindings::dma_addr_t,
        data: *mut ffi::c_void,
        count: usize,
        write: bool,
    ) -> ffi::c_int {
        from_result(|| {
            if data.is_null() || count == 0 {
                return Err(EINVAL);
            }
            // SAFETY: `iommu_data` is a live container (function safety contract).
            let container = unsafe { Self::container(iommu_data) };
            // SAFETY: `data` is valid for `count` bytes for the call (function safety contract).
            let data = unsafe { core::slice::from_raw_parts_mut(data.cast::<u8>(), count) };
            T::dma_rw(&container, user_iova, data, write)?;
            Ok(0)
        })
    }

    /// The ops table handed to the VFIO core.
    fn ops(module: &'static ThisModule) -> bindings::vfio_iommu_driver_ops {
        bindings::vfio_iommu_driver_ops {
            name: T::NAME.as_char_ptr().cast_mut(),
            owner: module.as_ptr(),
            open: Some(Self::open_callback),
            release: Some(Self::release_callback),
            ioctl: Some(Self::ioctl_callback),
            attach_group: Some(Self::attach_group_callback),
            detach_group: Some(Self::detach_group_callback),
            pin_pages: Some(Self::pin_pages_callback),
            unpin_pages: Some(Self::unpin_pages_callback),
            register_device: Some(Self::register_device_callback),
            unregister_device: Some(Self::unregister_device_callback),
            dma_rw: Some(Self::dma_rw_callback),
            group_iommu_domain: None,
        }
    }
}

/// A registration of the backend `T` with the VFIO core; dropping it unregisters.
///
/// The core cannot unregister a driver that a container still uses: every container holds a
/// reference on the owning module, so the module (and with it this registration) outlives them.
///
/// # Invariants
///
/// `ops` is registered with the VFIO core from [`Registration::new`] until `drop`; it is never
/// written after registration.
pub(crate) struct Registration<T: IommuDriver> {
    ops: Pin<KBox<bindings::vfio_iommu_driver_ops>>,
    _driver: core::marker::PhantomData<T>,
}

impl<T: IommuDriver> Registration<T> {
    /// Registers `T` with the VFIO core on behalf of `module`.
    pub(crate) fn new(module: &'static ThisModule) -> Result<Self> {
        let ops = KBox::pin(Adapter::<T>::ops(module), GFP_KERNEL)?;
        // SAFETY: `ops` is a valid, fully initialised ops table whose address is stable (pinned
        // box) until `drop`, which unregisters it before the box is freed.
        to_result(unsafe { bindings::vfio_register_iommu_driver(&*ops) })?;
        // INVARIANT: Registered just above.
        Ok(Self {
            ops,
            _driver: core::marker::PhantomData,
        })
    }
}

impl<T: IommuDriver> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: `ops` is registered (type invariant); the core removes it by address.
        unsafe { bindings::vfio_unregister_iommu_driver(ptr::from_ref(&*self.ops)) };
    }
}

// SAFETY: The ops table is immutable after registration; its pointers refer to static data (the
// name, the module) and to functions, so it may be shared and dropped from any thread.
unsafe impl<T: IommuDriver> Send for Registration<T> {}

// SAFETY: See `Send`: nothing in a registration is mutated through a shared reference.
unsafe impl<T: IommuDriver> Sync for Registration<T> {}
