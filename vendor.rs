// SPDX-License-Identifier: GPL-2.0

//! The vendor (mdev) driver side of a container: the devices that want `dma_unmap` notifications
//! and the pages vendor drivers pin through `vfio_pin_pages()`.
//!
//! Lock order: [`DeviceSet`]'s mutex is taken *before* a container's mutex (a notified driver
//! unpins, which takes the container's), and never while holding it. The container reads the
//! number of devices, and debugfs the counters, without the set's lock.

use crate::{account::PinCharge, bindings};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use kernel::{new_mutex, prelude::*, sync::Mutex, types::Opaque};

/// A `struct vfio_device` of a vendor driver, as the VFIO core hands it to a backend.
#[repr(transparent)]
pub(crate) struct VfioDevice(Opaque<bindings::vfio_device>);

impl VfioDevice {
    /// Creates a reference to the device at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a live `struct vfio_device` for the lifetime `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::vfio_device) -> &'a Self {
        // SAFETY: Transparent wrapper; `ptr` is valid for `'a` (function safety contract).
        unsafe { &*ptr.cast::<Self>() }
    }

    /// Whether the driver implements `dma_unmap` (only those may pin pages).
    pub(crate) fn has_dma_unmap(&self) -> bool {
        // SAFETY: `self` is live; reads the device's ops table.
        unsafe { bindings::vir_device_has_dma_unmap(self.0.get()) }
    }
}

/// The devices of a container that asked for `dma_unmap` notifications (type1's `device_list`).
///
/// The devices are linked through their own `vfio_device::iommu_entry`, the list head the VFIO
/// core reserves for the IOMMU backend, so registering needs no memory and cannot fail.
///
/// # Invariants
///
/// `head` is an initialised list head whose entries are the `iommu_entry` of the devices registered
/// and not yet unregistered; it is only read or changed with `lock` held. `count` is their number.
#[pin_data]
pub(crate) struct DeviceSet {
    #[pin]
    lock: Mutex<()>,
    #[pin]
    head: Opaque<bindings::list_head>,
    /// How many devices are registered, readable without the lock (type1 tests its list for
    /// emptiness under its container lock only).
    count: AtomicUsize,
    /// `dma_unmap` calls made, one per device per notification.
    notifications: AtomicU64,
    /// Notifications repeated for a mapping whose pins were not all released.
    retries: AtomicU64,
    /// Unmaps refused with `EBUSY` because a driver kept its pins.
    refusals: AtomicU64,
}

/// The counters of a [`DeviceSet`], for debugfs.
pub(crate) struct DeviceStats {
    /// Devices registered.
    pub(crate) devices: usize,
    /// `dma_unmap` calls made.
    pub(crate) notifications: u64,
    /// Repeated notifications.
    pub(crate) retries: u64,
    /// `EBUSY` refusals.
    pub(crate) refusals: u64,
}

// SAFETY: The list is only used with `lock` held, and the devices on it are only used to call
// their driver's `dma_unmap`, which may run in any task.
unsafe impl Send for DeviceSet {}
// SAFETY: See `Send`.
unsafe impl Sync for DeviceSet {}

impl DeviceSet {
    /// An empty set.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            lock <- new_mutex!((), "DeviceSet::lock"),
            // SAFETY: `INIT_LIST_HEAD` initialises the list head in place, at its final address.
            head <- Opaque::ffi_init(|p| unsafe { bindings::vir_device_list_init(p) }),
            count: AtomicUsize::new(0),
            notifications: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
        })
    }

    /// Registers `dev` if its driver implements `dma_unmap`.
    pub(crate) fn register(&self, dev: &VfioDevice) {
        if !dev.has_dma_unmap() {
            return;
        }
        let _guard = self.lock.lock();
        // SAFETY: `head` is initialised and the lock is held (type invariant); the core registers
        // a device once, and its `iommu_entry` is ours until `unregister`, which the core calls
        // before the device goes away.
        unsafe { bindings::vir_device_list_add(self.head.get(), dev.0.get()) };
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Unregisters `dev`, registered before if its driver implements `dma_unmap`.
    pub(crate) fn unregister(&self, dev: &VfioDevice) {
        if !dev.has_dma_unmap() {
            return;
        }
        let _guard = self.lock.lock();
        // SAFETY: The device was added by `register` (the core pairs the calls, and the driver's
        // ops do not change), and the lock is held.
        unsafe { bindings::vir_device_list_del(dev.0.get()) };
        self.count.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether any device can be notified (vendor pins are refused otherwise, as in type1).
    pub(crate) fn is_empty(&self) -> bool {
        self.count.load(Ordering::Relaxed) == 0
    }

    /// Tells every registered device that `size` bytes from `iova` are being unmapped, so that
    /// its driver unpins what it pinned there; `attempt` counts the notifications of the same
    /// mapping before this one (for the `vir_notify` trace event of container `container`). Called
    /// without the container's lock.
    pub(crate) fn notify_dma_unmap(&self, container: u64, iova: u64, size: u64, attempt: u32) {
        let _guard = self.lock.lock();
        // SAFETY: The list is initialised and its devices are live while on it (type invariant);
        // the lock is held, so none can be unregistered meanwhile.
        let n = unsafe { bindings::vir_device_list_notify(self.head.get(), container, iova, size, attempt) };
        self.notifications.fetch_add(u64::from(n), Ordering::Relaxed);
        if attempt != 0 {
            self.retries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An unmap gave up with `EBUSY`: a driver kept its pins through every notification.
    pub(crate) fn refused(&self) {
        self.refusals.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now (each read on its own: they may be mid-change relative to each other).
    pub(crate) fn stats(&self) -> DeviceStats {
        DeviceStats {
            devices: self.count.load(Ordering::Relaxed),
            notifications: self.notifications.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            refusals: self.refusals.load(Ordering::Relaxed),
        }
    }
}

/// A page a vendor driver pinned through the container (type1's `struct vfio_pfn`).
pub(crate) struct VendorPin {
    /// The page frame.
    pub(crate) pfn: u64,
    /// How many `pin_pages` calls hold it.
    pub(crate) refs: u32,
    /// Its part in the mapping's locked-memory charge.
    pub(crate) charge: PinCharge,
}
