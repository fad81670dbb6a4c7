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
//!   anything, including the `release` that follows the detach of the container's last group;
//! - the core drops the module reference it took for a container right after `release`, even if
//!   an `ioctl` of that container is still running (`vfio_fops_unl_ioctl` reads the driver
//!   pointer without a lock or reference). So `rmmod` can begin while our code runs: the
//!   [`Registration`] counts the ioctls in flight and its drop waits for them
//!   ([`InFlight`]; Documentation/reliability.rst has the argument);
//! - `pin_pages`, `unpin_pages` and `dma_rw` come from a vendor driver of a device that is open in
//!   the container, which keeps the container (and so the module reference) alive.

use crate::bindings;
use crate::domain::Prot;
use crate::compat;
use crate::group::{GroupType, IommuGroup};
use crate::mm::DmaRwData;
use crate::vendor::VfioDevice;
use core::{
    mem::MaybeUninit,
    ptr,
    sync::atomic::{AtomicUsize, Ordering},
};
use kernel::ffi;
use kernel::{
    error::{from_result, to_result},
    prelude::*,
    sync::Arc,
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
    fn ioctl(container: &Arc<Self>, cmd: u32, arg: usize) -> Result<i64>;

    /// Attaches `group` (of type `kind`) to the container.
    fn attach_group(container: &Self, group: &IommuGroup, kind: GroupType) -> Result;

    /// Detaches `group`, which was attached before, from the container. Must not fail.
    fn detach_group(container: &Self, group: &IommuGroup);

    /// Pins `pages.len()` pages from `iova` for a vendor driver of `group`; returns how many, and
    /// has written that many entries of `pages` (which may be uninitialised before the call).
    fn pin_pages(
        container: &Self,
        group: &IommuGroup,
        iova: u64,
        prot: Prot,
        pages: &mut [MaybeUninit<*mut bindings::page>],
    ) -> Result<usize>;

    /// Releases `npages` vendor pins from `iova`.
    fn unpin_pages(container: &Self, iova: u64, npages: usize);

    /// A vendor device was opened in the container.
    fn register_device(container: &Self, dev: &VfioDevice);

    /// A vendor device was closed.
    fn unregister_device(container: &Self, dev: &VfioDevice);

    /// Copies between `data` and the memory mapped at `iova`, for a vendor driver.
    fn dma_rw(container: &Self, iova: u64, data: DmaRwData<'_>) -> Result;
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
        // SAFETY: Guaranteed by the caller; `open_callback` made the pointer with
        // `arc_into_foreign`.
        unsafe { compat::arc_borrow(iommu_data) }
    }

    /// # Safety
    ///
    /// Only called by the VFIO core, from `VFIO_SET_IOMMU`.
    unsafe extern "C" fn open_callback(arg: ffi::c_ulong) -> *mut ffi::c_void {
        match T::open(arg as u64) {
            Ok(container) => compat::arc_into_foreign(container),
            Err(e) => e.to_ptr(),
        }
    }

    /// # Safety
    ///
    /// Only called by the VFIO core, once per successful `open_callback`, with its result.
    unsafe extern "C" fn release_callback(iommu_data: *mut ffi::c_void) {
        // SAFETY: `iommu_data` came from `open_callback` and the core releases it exactly once;
        // ownership of that reference moves back to Rust here.
        let container = unsafe { compat::arc_from_foreign::<T>(iommu_data) };
        T::release(container);
    }

    /// # Safety
    ///
    /// Only called by the VFIO core: `iommu_data` is NULL (only for `VFIO_CHECK_EXTENSION`
    /// before `VFIO_SET_IOMMU`) or comes from `open_callback` and has not been released.
    #[unsafe(link_section = ".text.vir_hot")]
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
        let _call = InFlight::enter();
        // The core reads `iommu_data` without a lock, so `release_callback` may run concurrently:
        // our own reference, taken at once, keeps the state alive for the whole ioctl (the race
        // of this borrow with the release is the core's, as for every backend).
        // SAFETY: Non-null `iommu_data` is a container from `open_callback` (function contract).
        let container: Arc<T> = unsafe { Self::container(iommu_data) }.into();
        // Matched here rather than through `from_result`, whose instance would sit outside the
        // hot section (see `Documentation/architecture.rst`, "Code layout").
        match T::ioctl(&container, cmd, arg) {
            Ok(v) => v as ffi::c_long,
            Err(e) => e.to_errno() as ffi::c_long,
        }
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
    /// and `pages` an array of `npage` entries owned by the caller for the call, possibly
    /// uninitialised (the core checks `npage <= VFIO_PIN_PAGES_MAX_ENTRIES`; so do we).
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
            if n as u64 > bindings::VFIO_PIN_PAGES_MAX_ENTRIES as u64 {
                return Err(E2BIG);
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
            // SAFETY: `pages` is non-null and has `npage` entries that the caller owns and does not
            // touch for the call; as `MaybeUninit`, uninitialised entries are allowed.
            let pages = unsafe {
                core::slice::from_raw_parts_mut(pages.cast::<MaybeUninit<*mut bindings::page>>(), n)
            };
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
    /// `count` bytes, owned by the calling vendor driver for the call: read if `write` (copied to
    /// the mapped memory), written if not (and then possibly uninitialised before the call).
    #[unsafe(link_section = ".text.vir_hot")]
    unsafe extern "C" fn dma_rw_callback(
        iommu_data: *mut ffi::c_void,
        user_iova: bindings::dma_addr_t,
        data: *mut ffi::c_void,
        count: usize,
        write: bool,
    ) -> ffi::c_int {
        if data.is_null() || count == 0 {
            return EINVAL.to_errno();
        }
        // SAFETY: `iommu_data` is a live container (function safety contract).
        let container = unsafe { Self::container(iommu_data) };
        let data = if write {
            // SAFETY: `data` is valid for reads of `count` bytes for the call (function safety
            // contract), and only read.
            DmaRwData::Write(unsafe { core::slice::from_raw_parts(data.cast::<u8>(), count) })
        } else {
            // SAFETY: `data` is valid for writes of `count` bytes and not otherwise accessed for
            // the call (function safety contract); `MaybeUninit` allows uninitialised bytes.
            DmaRwData::Read(unsafe {
                core::slice::from_raw_parts_mut(data.cast::<MaybeUninit<u8>>(), count)
            })
        };
        // Matched here rather than through `from_result`, as in `ioctl_callback`.
        match T::dma_rw(&container, user_iova, data) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
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
        InFlight::wait_for_none();
    }
}

/// The container ioctls running in this module, counted so that module exit can wait for them.
///
/// Once the last container is released, nothing can start a new call into us, but the core may
/// have read our `ioctl` pointer before the release (it takes no lock or reference for ioctls)
/// and be about to call it, or be in it. [`InFlight::wait_for_none`] first waits for every task
/// that might be between the core's indirect call and our [`InFlight::enter`] (an RCU Tasks grace
/// period on preemptible kernels that have it, an RCU grace period otherwise, which on a
/// non-preemptible kernel implies every CPU scheduled), then for the count to drop to zero, then
/// once more for the tasks between our [`InFlight`] drop and their return to the core.
pub(crate) struct InFlight(());

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

impl InFlight {
    /// Counts a call in; the returned guard counts it out.
    #[inline]
    fn enter() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        Self(())
    }

    /// Waits until no call is in this module's code (see the type's documentation).
    fn wait_for_none() {
        // SAFETY: Called from module exit, in process context, without locks held.
        unsafe { bindings::vir_wait_for_callers() };
        while IN_FLIGHT.load(Ordering::Acquire) != 0 {
            // SAFETY: As above; sleeps.
            unsafe { bindings::vir_msleep(1) };
        }
        // SAFETY: As above.
        unsafe { bindings::vir_wait_for_callers() };
    }
}

impl Drop for InFlight {
    #[inline]
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}

// SAFETY: The ops table is immutable after registration; its pointers refer to static data (the
// name, the module) and to functions, so it may be shared and dropped from any thread.
unsafe impl<T: IommuDriver> Send for Registration<T> {}

// SAFETY: See `Send`: nothing in a registration is mutated through a shared reference.
unsafe impl<T: IommuDriver> Sync for Registration<T> {}
