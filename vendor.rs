// SPDX-License-Identifier: GPL-2.0

//! The vendor (mdev) driver side of a container: the devices that want `dma_unmap` notifications
//! and the pages vendor drivers pin through `vfio_pin_pages()`.
//!
//! Lock order: [`DeviceSet`]'s mutex is taken *before* a container's mutex (a notified driver
//! unpins, which takes the container's), and never while holding it. The container reads the
//! number of devices without the set's lock.

use crate::bindings;
use core::{
    ptr::NonNull,
    sync::atomic::{AtomicUsize, Ordering},
};
use kernel::{
    new_mutex,
    prelude::*,
    rbtree::RBTree,
    sync::Mutex,
    types::Opaque,
};

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

    /// The device's address, which identifies it in a container.
    pub(crate) fn key(&self) -> usize {
        self.0.get() as usize
    }
}

/// A device registered with a container, remembered between `register_device` and
/// `unregister_device`.
///
/// # Invariants
///
/// The device is live and has a `dma_unmap` callback while the reference is in its set: the core
/// unregisters a device (taking the set's lock to remove it) before it goes away.
struct DeviceRef(NonNull<bindings::vfio_device>);

// SAFETY: Only used to call the driver's `dma_unmap`, which may run in any task.
unsafe impl Send for DeviceRef {}

/// The devices of a container that asked for `dma_unmap` notifications (type1's `device_list`).
#[pin_data]
pub(crate) struct DeviceSet {
    #[pin]
    devices: Mutex<RBTree<usize, DeviceRef>>,
    /// How many devices are registered, readable without the lock (type1 tests its list for
    /// emptiness under its container lock only).
    count: AtomicUsize,
}

impl DeviceSet {
    /// An empty set.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            devices <- new_mutex!(RBTree::new(), "DeviceSet::devices"),
            count: AtomicUsize::new(0),
        })
    }

    /// Registers `dev` if its driver implements `dma_unmap`.
    pub(crate) fn register(&self, dev: &VfioDevice) {
        if !dev.has_dma_unmap() {
            return;
        }
        let mut devices = self.devices.lock();
        // INVARIANT: Removed by `unregister`, which the core calls before the device goes.
        let r = DeviceRef(NonNull::from(dev).cast());
        match devices.try_create_and_insert(dev.key(), r, GFP_KERNEL) {
            Ok(_) => {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
            // Without the registration the driver cannot pin pages (EINVAL), which is safe.
            Err(e) => pr_warn!("device not registered for dma_unmap: {:?}\n", e),
        }
    }

    /// Unregisters `dev`.
    pub(crate) fn unregister(&self, dev: &VfioDevice) {
        let mut devices = self.devices.lock();
        if devices.remove(&dev.key()).is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Whether any device can be notified (vendor pins are refused otherwise, as in type1).
    pub(crate) fn is_empty(&self) -> bool {
        self.count.load(Ordering::Relaxed) == 0
    }

    /// Tells every registered device that `size` bytes from `iova` are being unmapped, so that
    /// its driver unpins what it pinned there. Called without the container's lock.
    pub(crate) fn notify_dma_unmap(&self, iova: u64, size: u64) {
        let devices = self.devices.lock();
        for d in devices.values() {
            // SAFETY: The device is live while in the set (type invariant) and the set's lock is
            // held, so it cannot be unregistered meanwhile.
            unsafe { bindings::vir_device_dma_unmap(d.0.as_ptr(), iova, size) };
        }
    }
}

/// A page a vendor driver pinned through the container (type1's `struct vfio_pfn`).
pub(crate) struct VendorPin {
    /// The page frame.
    pub(crate) pfn: u64,
    /// How many `pin_pages` calls hold it.
    pub(crate) refs: u32,
    /// Whether the page is reserved (never charged to locked memory, as in type1).
    pub(crate) reserved: bool,
}
