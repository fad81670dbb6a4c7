// SPDX-License-Identifier: GPL-2.0

//! The owner of a DMA mapping (task and address space), locked-memory accounting and pinning.
//!
//! A thin safe layer over `mm/gup.c` and `mm/util.c` through `bindings/helpers.c`.
//!
//! Lock order: callers may hold their container mutex; these functions take the owner's
//! `mmap_lock` (read to pin, write to account), as type1 does under `iommu->lock`.

use crate::bindings;
use core::{fmt::Write, ptr::NonNull};
use kernel::{ffi, prelude::*};

/// The page size of the CPU and the unit of pinning.
pub(crate) const PAGE_SIZE: u64 = kernel::page::PAGE_SIZE as u64;
/// `log2(PAGE_SIZE)`.
pub(crate) const PAGE_SHIFT: u32 = kernel::page::PAGE_SHIFT as u32;

/// The task and address space that own a mapping's pages and are charged for them.
///
/// As in type1: the task is the mapping process's group leader (its `RLIMIT_MEMLOCK` applies),
/// the mm is the address space the user addresses refer to, and `lock_cap` is whether the task
/// had `CAP_IPC_LOCK` when it created the mapping.
///
/// # Invariants
///
/// `task` holds a task reference and `mm` an `mm_count` reference (`mmgrab`), both released on
/// drop; `mm` may have no users left (the process exited), which [`MmOwner::with_mm`] checks.
pub(crate) struct MmOwner {
    task: NonNull<bindings::task_struct>,
    mm: NonNull<bindings::mm_struct>,
    lock_cap: bool,
}

// SAFETY: The references are counted and the pointed-to objects are only used through functions
// that are safe to call from any task.
unsafe impl Send for MmOwner {}
// SAFETY: See `Send`; `MmOwner` has no interior mutability.
unsafe impl Sync for MmOwner {}

impl MmOwner {
    /// The calling task (the ioctl caller) and its address space; `EFAULT` for a kernel thread.
    pub(crate) fn current() -> Result<Self> {
        // SAFETY: Takes an `mm_count` reference on `current->mm`, or returns NULL without one.
        let mm = NonNull::new(unsafe { bindings::vir_current_mm_grab() }).ok_or(EFAULT)?;
        // SAFETY: Takes a reference on the current task's group leader, which always exists.
        let task = unsafe { bindings::vir_current_leader_get() };
        let Some(task) = NonNull::new(task) else {
            // SAFETY: `mm` holds the reference taken just above.
            unsafe { bindings::vir_mm_drop(mm.as_ptr()) };
            return Err(EFAULT);
        };
        // SAFETY: `capable()` only reads the current task's credentials.
        let lock_cap = unsafe { bindings::vir_capable_ipc_lock() };
        // INVARIANT: Both references were taken above.
        Ok(Self { task, mm, lock_cap })
    }

    /// Whether the calling task uses this address space.
    pub(crate) fn is_current(&self) -> bool {
        // SAFETY: Only compares pointers.
        unsafe { bindings::vir_current_has_mm(self.mm.as_ptr()) }
    }

    /// Whether a mapping the calling task makes now would have this owner: same group leader,
    /// same address space, same `CAP_IPC_LOCK`. Mappings of one process share their owner.
    pub(crate) fn is_current_owner(&self) -> bool {
        // SAFETY: Only compares pointers; `capable()` reads the current task's credentials.
        unsafe {
            bindings::vir_current_is(self.task.as_ptr(), self.mm.as_ptr())
                && bindings::vir_capable_ipc_lock() == self.lock_cap
        }
    }

    /// The owner's thread group id (its pid, as `ps` shows it), for debugfs.
    pub(crate) fn tgid(&self) -> i32 {
        // SAFETY: `task` is valid (task reference, type invariant).
        unsafe { bindings::vir_task_tgid(self.task.as_ptr()) }
    }

    /// The owner's command name (`comm`), for debugfs.
    pub(crate) fn comm(&self) -> TaskComm {
        let mut comm = TaskComm([0; TASK_COMM_LEN]);
        // SAFETY: `task` is valid (type invariant); the helper writes at most `TASK_COMM_LEN` bytes,
        // NUL-terminated, into the buffer.
        unsafe { bindings::vir_task_comm(self.task.as_ptr(), comm.0.as_mut_ptr().cast(), TASK_COMM_LEN) };
        comm
    }

    /// The owner's address space's locked memory (`locked_vm`) in pages, all users of it together.
    pub(crate) fn locked_vm(&self) -> u64 {
        // SAFETY: `mm` is valid (`mm_count` reference, type invariant); the field is read with
        // `READ_ONCE`, racing with changes as `/proc/<pid>/status` does.
        unsafe { bindings::vir_mm_locked_vm(self.mm.as_ptr()) as u64 }
    }

    /// Pins the page of the owner's memory at `vaddr`; returns its pfn and whether it is reserved.
    pub(crate) fn pin_one(&self, vaddr: u64, write: bool) -> Result<(u64, bool)> {
        let mut pfn = [0u64; 1];
        let (_, reserved) = self.pin(vaddr, write, &mut pfn)?;
        Ok((pfn[0], reserved != 0))
    }

    /// Runs `f` with the address space held alive (`mmget_not_zero`); `ESRCH` if it has exited.
    fn with_mm<R>(&self, f: impl FnOnce(*mut bindings::mm_struct) -> Result<R>) -> Result<R> {
        // SAFETY: `mm` is valid (`mm_count` reference, type invariant).
        if !unsafe { bindings::vir_mm_get(self.mm.as_ptr()) } {
            return Err(ESRCH);
        }
        let r = f(self.mm.as_ptr());
        // SAFETY: Drops the user reference taken above.
        unsafe { bindings::vir_mm_put(self.mm.as_ptr()) };
        r
    }

    /// Charges `npages` pages to the owner's locked memory (`locked_vm`), checking
    /// `RLIMIT_MEMLOCK` unless the owner had `CAP_IPC_LOCK`: `ENOMEM` when exceeded, `EINTR` if the
    /// calling task is killed while waiting for the `mmap_lock`, `ESRCH` if the address space has
    /// exited. Only [`crate::account::LockedAccount`] calls this.
    pub(crate) fn charge(&self, npages: u64) -> Result {
        if npages == 0 {
            return Ok(());
        }
        let n = ffi::c_ulong::try_from(npages).map_err(|_| ENOMEM)?;
        let (task, lock_cap) = (self.task.as_ptr(), self.lock_cap);
        self.with_mm(|mm| {
            // SAFETY: `task` and `mm` are valid (type invariant) and `mm` has a user reference
            // for the duration of the call.
            let ret = unsafe { bindings::vir_mm_charge_locked(task, mm, lock_cap, n) };
            kernel::error::to_result(ret)
        })
    }

    /// Returns `npages` pages of a charge made by [`Self::charge`]. Cannot fail: it waits for the
    /// `mmap_lock` even if the calling task is killed, and an address space that has exited took
    /// its `locked_vm` with it. Only [`crate::account::LockedAccount`] calls this.
    pub(crate) fn uncharge(&self, npages: u64) {
        let Ok(n) = ffi::c_ulong::try_from(npages) else {
            return;
        };
        if n == 0 {
            return;
        }
        let (task, lock_cap) = (self.task.as_ptr(), self.lock_cap);
        let _ = self.with_mm(|mm| {
            // SAFETY: As in `charge`.
            unsafe { bindings::vir_mm_uncharge_locked(task, mm, lock_cap, n) };
            Ok(())
        });
    }

    /// Pins up to `pfns.len()` pages of the owner's memory from `vaddr` (for device writes if
    /// `write`) and stores their page frame numbers in `pfns`. Returns how many were pinned (at
    /// least one) and how many of those are reserved pages, or the error of the first page. At a
    /// `VM_PFNMAP` address (another device's BAR, for peer-to-peer DMA) it returns that one MMIO
    /// pfn, counted as reserved: as in type1, such pfns are neither pinned nor charged.
    ///
    /// The caller owns the pins and must release them with [`unpin_pfns`].
    pub(crate) fn pin(&self, vaddr: u64, write: bool, pfns: &mut [u64]) -> Result<(usize, u64)> {
        let want = pfns.len();
        let buf = pfns.as_mut_ptr();
        let mut reserved: ffi::c_ulong = 0;
        let pinned = self.with_mm(|mm| {
            // SAFETY: `mm` has a user reference for the call; `buf` has room for `want` entries,
            // which the helper fills with page pointers and then pfns (same size, checked by the
            // helper at build time).
            let n = unsafe {
                bindings::vir_pin_user_pfns(mm, vaddr as usize, want, write, buf, &mut reserved)
            };
            if n < 0 {
                return Err(Error::from_errno(n as i32));
            }
            usize::try_from(n).map_err(|_| EFAULT)
        })?;
        if pinned == 0 || pinned > want {
            return Err(EFAULT);
        }
        Ok((pinned, reserved as u64))
    }
}

impl Drop for MmOwner {
    fn drop(&mut self) {
        // SAFETY: Releases the references held by `self` (type invariant).
        unsafe {
            bindings::vir_task_put(self.task.as_ptr());
            bindings::vir_mm_drop(self.mm.as_ptr());
        }
    }
}

/// The size of a task's `comm` (`TASK_COMM_LEN`).
const TASK_COMM_LEN: usize = 16;

/// A task's command name, as `get_task_comm()` copies it.
pub(crate) struct TaskComm([u8; TASK_COMM_LEN]);

impl core::fmt::Display for TaskComm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(TASK_COMM_LEN);
        for &b in &self.0[..len] {
            // Printable ASCII as is, anything else escaped: a comm is whatever the task set.
            if b.is_ascii_graphic() || b == b' ' {
                f.write_char(char::from(b))?;
            } else {
                write!(f, "\\x{:02x}", b)?;
            }
        }
        Ok(())
    }
}

/// The calling task's thread group id (its pid, as `ps` shows it).
pub(crate) fn current_tgid() -> i32 {
    // SAFETY: Reads the current task's pid.
    unsafe { bindings::vir_current_tgid() }
}

/// Releases the pins of `npages` physically contiguous pages from `pfn`, marking them dirty if a
/// device could have written them. Returns how many of them count as locked memory (a `struct page` that is not
/// reserved): MMIO and reserved pfns were never pinned and are skipped.
///
/// # Safety
///
/// Each of the pages must have been pinned by [`MmOwner::pin`] and not released since; the caller
/// gives up that pin.
pub(crate) unsafe fn unpin_pfns(pfn: u64, npages: u64, dirty: bool) -> u64 {
    // SAFETY: The pages are pinned by us (function safety contract) and contiguous.
    let n = unsafe { bindings::vir_unpin_pfn_range(pfn as usize, npages as usize, dirty) };
    n as u64
}


/// [`unpin_pfns`] for pages known to be pinned memory that is not reserved: no check per page.
/// Returns `npages` (all of them count as locked memory).
///
/// # Safety
///
/// Each of the pages must have been pinned by [`MmOwner::pin`], not released since, and be memory
/// with a `struct page` that is not reserved; the caller gives up those pins.
pub(crate) unsafe fn unpin_pinned_pfns(pfn: u64, npages: u64, dirty: bool) -> u64 {
    // SAFETY: The pages are pinned memory that is not reserved (function safety contract) and
    // contiguous.
    unsafe { bindings::vir_unpin_pinned_range(pfn as usize, npages as usize, dirty) };
    npages
}

/// Lets other tasks run in long loops.
pub(crate) fn cond_resched() {
    // SAFETY: Called from process context without spinlocks held (all callers hold mutexes only).
    unsafe { bindings::vir_cond_resched() }
}

/// Whether the calling task has been killed; long operations give up with `EINTR`.
pub(crate) fn fatal_signal_pending() -> bool {
    // SAFETY: Reads the current task's signal state.
    unsafe { bindings::vir_fatal_signal_pending() }
}

/// A vendor driver's buffer for `vfio_dma_rw()`: the source of a write to user memory, or the
/// destination of a read, which may be uninitialised until the read fills it.
pub(crate) enum DmaRwData<'a> {
    /// Bytes to write to the mapped memory.
    Write(&'a [u8]),
    /// Room for the bytes read from the mapped memory.
    Read(&'a mut [core::mem::MaybeUninit<u8>]),
}

impl DmaRwData<'_> {
    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Write(d) => d.len(),
            Self::Read(d) => d.len(),
        }
    }

    /// Whether it writes to user memory.
    pub(crate) fn is_write(&self) -> bool {
        matches!(self, Self::Write(_))
    }
}

impl MmOwner {
    /// Copies `len` bytes from `offset` of `data` to or from the owner's memory at `vaddr`, as
    /// type1's `dma_rw`: from a kernel thread by borrowing the address space, from a task only if
    /// it is the owner (`EFAULT` otherwise); `EPERM` if the owner's address space has exited.
    /// `EINVAL` if the part is not inside `data`.
    #[unsafe(link_section = ".text.vir_hot")]
    pub(crate) fn copy(&self, vaddr: u64, data: &mut DmaRwData<'_>, offset: usize, len: usize) -> Result {
        let end = offset.checked_add(len).ok_or(EINVAL)?;
        let (ptr, write) = match data {
            DmaRwData::Write(d) => (d.get(offset..end).ok_or(EINVAL)?.as_ptr().cast_mut(), true),
            DmaRwData::Read(d) => (d.get_mut(offset..end).ok_or(EINVAL)?.as_mut_ptr().cast::<u8>(), false),
        };
        // SAFETY: `mm` is valid (type invariant); `ptr` is valid for `len` bytes of reads (a
        // write to user memory only reads it) or of writes (a read fills it, and a
        // `MaybeUninit` buffer may be written); the helper takes its own user reference on `mm`.
        let ret = unsafe {
            bindings::vir_mm_copy(self.mm.as_ptr(), vaddr as usize, ptr.cast(), len, write)
        };
        kernel::error::to_result(ret)
    }
}

/// Whether `pfn` is memory with a `struct page` (not MMIO).
pub(crate) fn pfn_valid(pfn: u64) -> bool {
    // SAFETY: Only looks the pfn up in the memory map.
    unsafe { bindings::vir_pfn_valid(pfn as usize) }
}

/// The `struct page` of `pfn`, for handing pinned pages to a vendor driver.
pub(crate) fn pfn_to_page(pfn: u64) -> *mut bindings::page {
    // SAFETY: Pure address arithmetic on the memory map (`pfn_to_page`).
    unsafe { bindings::vir_pfn_to_page(pfn as usize) }
}

/// Zeroes `len` bytes of user memory at `ptr`; `EFAULT` if they cannot all be written.
pub(crate) fn clear_user(ptr: u64, len: usize) -> Result {
    // SAFETY: `clear_user` checks the range and handles faults.
    match unsafe { bindings::vir_clear_user(ptr, len) } {
        0 => Ok(()),
        _ => Err(EFAULT),
    }
}

/// Whether `size` bytes from `ptr` could be user memory (`access_ok`).
pub(crate) fn user_range_ok(ptr: u64, size: u64) -> bool {
    // SAFETY: Only compares the range against the user address space limit.
    unsafe { bindings::vir_user_range_ok(ptr, size) }
}
