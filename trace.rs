// SPDX-License-Identifier: GPL-2.0

//! The module's trace events (`bindings/vir_trace.h`, system `vfio_iommu_rust` in tracefs): a thin
//! safe layer over their tracepoints. Documentation/observability.rst describes the events.
//!
//! # Cost when disabled
//!
//! The 6.12 kernel crate has no tracepoint or static key support, so this file has its own, as
//! later kernels do (`rust/kernel/jump_label.rs`): each event's check is a jump label on its
//! tracepoint's static key, a 5-byte NOP in the instruction stream with an entry in the module's
//! `__jump_table`, which the kernel patches into a jump when the event is enabled (exactly what
//! C's `trace_*()` compiles to). A disabled event therefore costs that NOP: no call, no load, and
//! the arguments are only computed on the enabled path (the callers compute expensive ones, such as
//! a duration or a bit count, only after `*_enabled()` said yes). An enabled event makes one
//! out-of-line call to its C wrapper in `bindings/trace.c`.
//!
//! Without `CONFIG_JUMP_LABEL` the check is a read of the key's count and a branch, as in C;
//! without `CONFIG_TRACEPOINTS` it is `false`.
//!
//! Lock order: none taken; events may be emitted under any of the container's locks.

use crate::{bindings, group::IommuGroup};
use crate::compat::Instant;

/// Whether the tracepoint `$tp` (a `bindings::__tracepoint_vir_*`) is enabled: its static key.
#[cfg(all(CONFIG_TRACEPOINTS, CONFIG_JUMP_LABEL))]
macro_rules! tracepoint_enabled {
    ($tp:ident) => {
        'check: {
            // The instruction is a 5-byte NOP (the one x86 `arch_static_branch` emits and
            // `__jump_label_patch` expects) followed by a `__jump_table` entry in the layout of
            // `struct jump_entry` with relative references (`CONFIG_HAVE_ARCH_JUMP_LABEL_RELATIVE`):
            // the NOP, the code to jump to, and the static key `key` of the tracepoint, a global of
            // this module (`bindings/trace.c`), with branch bit 0 (`static_key_false`). The module
            // loader registers the entry with the key, and the kernel only ever rewrites the NOP
            // into a jump to `enabled` and back.
            // SAFETY: As just said: a NOP and a `__jump_table` entry; nothing is read or written.
            unsafe {
                core::arch::asm!(
                    "1: .byte 0x0f,0x1f,0x44,0x00,0x00",
                    ".pushsection __jump_table, \"aw\"",
                    ".balign 8",
                    ".long 1b - .",
                    ".long {enabled} - .",
                    ".quad {tracepoint} + {key} - .",
                    ".popsection",
                    tracepoint = sym bindings::$tp,
                    key = const core::mem::offset_of!(bindings::tracepoint, key),
                    enabled = label {
                        break 'check true;
                    },
                    options(att_syntax, nostack),
                );
            }
            false
        }
    };
}

/// Whether the tracepoint `$tp` (a `bindings::__tracepoint_vir_*`) is enabled: its static key.
#[cfg(all(CONFIG_TRACEPOINTS, not(CONFIG_JUMP_LABEL)))]
macro_rules! tracepoint_enabled {
    ($tp:ident) => {
        // SAFETY: Reads the `atomic_t` count of the tracepoint's static key, a global of this
        // module that the kernel only changes atomically, with a volatile (`READ_ONCE`) load, as
        // `static_key_count()` does; no reference to the static is formed.
        unsafe {
            core::ptr::read_volatile(core::ptr::addr_of!(bindings::$tp.key.enabled.counter)) > 0
        }
    };
}

/// Never: without `CONFIG_TRACEPOINTS` there are no tracepoints (and `bindings/trace.c` defines
/// none).
#[cfg(not(CONFIG_TRACEPOINTS))]
macro_rules! tracepoint_enabled {
    ($tp:ident) => {
        false
    };
}

/// Whether the `vir_map` event is enabled.
#[inline(always)]
pub(crate) fn map_enabled() -> bool {
    tracepoint_enabled!(__tracepoint_vir_map)
}

/// The start of an operation whose duration an event reports: the time now if `enabled`.
#[inline(always)]
pub(crate) fn start_if(enabled: bool) -> Option<Instant> {
    enabled.then(Instant::now)
}

/// Nanoseconds since `start` (0 if the event was enabled during the operation).
fn elapsed_ns(start: Option<Instant>) -> u64 {
    start.map_or(0, Instant::elapsed_ns)
}

/// The errno of a result, 0 for success, as events report it.
fn errno(r: &kernel::error::Result<impl Sized>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `vir_map`: a `VFIO_IOMMU_MAP_DMA` of `size` bytes at `iova` of container `container` returned
/// `result`, having pinned `pinned` pages for the IOMMU and charged the mapping `charged` pages;
/// `start` is from [`start_if`].
#[inline(always)]
pub(crate) fn map(
    container: u64,
    iova: u64,
    size: u64,
    pinned: u64,
    charged: u64,
    start: Option<Instant>,
    result: &kernel::error::Result,
) {
    if map_enabled() {
        let (ns, result) = (elapsed_ns(start), errno(result));
        // SAFETY: Emits a trace event from its arguments; callable in any context.
        unsafe { bindings::vir_trace_map(container, iova, size, pinned, charged, ns, result) };
    }
}

/// `vir_unmap`: a mapping of `size` bytes at `iova` was removed, by an unmap (with a dirty bitmap
/// if `bitmap`) or with the container (`release`), releasing `unpinned` pins and `uncharged` pages of
/// locked memory.
#[inline(always)]
pub(crate) fn unmap(container: u64, iova: u64, size: u64, bitmap: bool, unpinned: u64, uncharged: u64, release: bool) {
    if tracepoint_enabled!(__tracepoint_vir_unmap) {
        // SAFETY: Emits a trace event from its arguments; callable in any context.
        unsafe { bindings::vir_trace_unmap(container, iova, size, bitmap, unpinned, uncharged, release) };
    }
}

/// `vir_pin`: `vfio_pin_pages()` of `count` pages at `iova` for a device of IOMMU group `group`
/// (whose number is only looked up, a call into the IOMMU core, when the event is enabled).
#[inline(always)]
pub(crate) fn pin(container: u64, group: &IommuGroup, iova: u64, count: usize, result: &kernel::error::Result<usize>) {
    if tracepoint_enabled!(__tracepoint_vir_pin) {
        let group = group.id();
        let result = match result {
            Ok(n) => i32::try_from(*n).unwrap_or(i32::MAX),
            Err(e) => e.to_errno(),
        };
        // SAFETY: Emits a trace event from its arguments; callable in any context.
        unsafe { bindings::vir_trace_pin(container, group, iova, count as u64, result) };
    }
}

/// `vir_unpin`: `vfio_unpin_pages()` of `count` pages at `iova`; `released` lost their last pin.
#[inline(always)]
pub(crate) fn unpin(container: u64, iova: u64, count: usize, released: u64) {
    if tracepoint_enabled!(__tracepoint_vir_unpin) {
        // SAFETY: Emits a trace event from its arguments; callable in any context.
        unsafe { bindings::vir_trace_unpin(container, iova, count as u64, released) };
    }
}

/// `vir_dma_rw`: `vfio_dma_rw()` of `len` bytes at `iova`.
#[inline(always)]
pub(crate) fn dma_rw(container: u64, iova: u64, len: usize, write: bool, result: &kernel::error::Result) {
    if tracepoint_enabled!(__tracepoint_vir_dma_rw) {
        let result = errno(result);
        // SAFETY: Emits a trace event from its arguments; callable in any context.
        unsafe { bindings::vir_trace_dma_rw(container, iova, len as u64, write, result) };
    }
}

/// Whether the `vir_dirty_report` event is enabled (counting its bits costs a read of the bitmap).
#[inline(always)]
pub(crate) fn dirty_report_enabled() -> bool {
    tracepoint_enabled!(__tracepoint_vir_dirty_report)
}

/// `vir_dirty_report`: a dirty bitmap of the `size` bytes from `iova` was written (by an unmap if
/// `unmap`): `bits` bits set, `bytes` bytes copied to the user.
pub(crate) fn dirty_report(container: u64, iova: u64, size: u64, bits: u64, bytes: u64, unmap: bool) {
    if dirty_report_enabled() {
        // SAFETY: Emits a trace event from its arguments; callable in any context.
        unsafe { bindings::vir_trace_dirty_report(container, iova, size, bits, bytes, unmap) };
    }
}
