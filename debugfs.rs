// SPDX-License-Identifier: GPL-2.0

//! Read-only debugfs files whose contents Rust writes: a thin safe layer over debugfs and
//! `seq_file` (`bindings/debugfs.c`), which the 6.12 kernel crate does not bind.
//!
//! The module's directory is `/sys/kernel/debug/vfio_iommu_rust/` ([`Root`], for as long as the
//! module is loaded); a [`Dir`] in it holds a reference on what its files show (a type
//! implementing [`Files`]) and removes them before dropping it. Files are mode 0400 in a
//! filesystem only root can enter (debugfs' default).
//!
//! Lock order: none here. Removing a directory waits for reads in progress, which take whatever
//! locks [`Files::show`] takes, so a [`Dir`] must be dropped with none of those held.

use crate::bindings;
use core::fmt;
use kernel::{ffi, prelude::*, str::CStr, sync::Arc};

/// What the files of a [`Dir`] show.
pub(crate) trait Files: Send + Sync + Sized + 'static {
    /// The files' names.
    const NAMES: &'static [&'static CStr];

    /// Writes the contents of the file `NAMES[index]` to `out`. Called for each read from the
    /// start of the file, possibly several times (with a larger buffer each time) if the output
    /// overflows the buffer ([`SeqFile::overflowed`]); no lock is held.
    fn show(&self, index: usize, out: &mut SeqFile) -> Result;
}

/// The module's debugfs directory, from creation to drop.
pub(crate) struct Root(());

impl Root {
    /// Creates `/sys/kernel/debug/vfio_iommu_rust/`. Without debugfs, nothing happens (and no
    /// [`Dir`] appears), as debugfs users are meant to behave.
    pub(crate) fn new() -> Self {
        // SAFETY: Called once, from module init, before any `Dir` is created.
        unsafe { bindings::vir_debugfs_init() };
        Self(())
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // SAFETY: Called from module exit; every `Dir` has been dropped (each belongs to a
        // container, and the module outlives its containers).
        unsafe { bindings::vir_debugfs_exit() };
    }
}

/// The output of a debugfs file being read.
///
/// # Invariants
///
/// `m` is the `seq_file` of a read in progress, valid while `self` is.
pub(crate) struct SeqFile {
    m: *mut bindings::seq_file,
}

impl SeqFile {
    /// Whether the output no longer fits the buffer: the rest is discarded, and the read calls
    /// [`Files::show`] again with a buffer twice as large. A show can stop early.
    pub(crate) fn overflowed(&self) -> bool {
        // SAFETY: `m` is valid (type invariant).
        unsafe { bindings::vir_seq_has_overflowed(self.m) }
    }
}

impl fmt::Write for SeqFile {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // SAFETY: `m` is valid (type invariant) and `s` is valid for `s.len()` bytes. An overflow
        // is recorded in the `seq_file` (see `overflowed`), not an error of the formatting.
        unsafe { bindings::seq_write(self.m, s.as_ptr().cast(), s.len()) };
        Ok(())
    }
}

/// A directory of the files of `T` in the module's directory, removed on drop.
///
/// # Invariants
///
/// `dentry` is the directory made by `vir_debugfs_dir` (or an error pointer, when debugfs is
/// unavailable). Its files point to the entries of `_files`, whose heap buffer never moves (the
/// vector is never changed after creation), and those point to `*_data`. The directory is removed
/// before `_files` and `_data` are dropped.
pub(crate) struct Dir<T: Files> {
    dentry: *mut bindings::dentry,
    /// What the files point to: only kept alive here.
    _files: KVec<bindings::vir_debugfs_file>,
    /// What the entries point to: only kept alive here.
    _data: Arc<T>,
}

// SAFETY: The dentry is only used to remove the directory, which may be done from any task; the
// entries are only read (by the show callbacks) and `T` is `Send + Sync`.
unsafe impl<T: Files> Send for Dir<T> {}
// SAFETY: A shared `Dir` gives access to nothing (no method takes `&self`).
unsafe impl<T: Files> Sync for Dir<T> {}

impl<T: Files> Dir<T> {
    /// Creates the directory `name` with the files of `T::NAMES`, which show `data`.
    pub(crate) fn new(name: &CStr, data: Arc<T>) -> Result<Self> {
        let mut files = KVec::with_capacity(T::NAMES.len(), GFP_KERNEL)?;
        let ptr: *const T = &*data;
        for index in 0..T::NAMES.len() {
            files.push(
                bindings::vir_debugfs_file {
                    show: Some(Self::show_callback),
                    data: ptr.cast(),
                    index: ffi::c_uint::try_from(index).map_err(|_| EINVAL)?,
                },
                GFP_KERNEL,
            )?;
        }
        // SAFETY: `name` is NUL-terminated and only read for the call.
        let dentry = unsafe { bindings::vir_debugfs_dir(name.as_char_ptr()) };
        // INVARIANT: The files point to the entries, which are complete and are not moved by
        // moving the vector into `Self`, and the entries to `data`.
        for (file, name) in files.iter_mut().zip(T::NAMES) {
            // SAFETY: `dentry` is a directory or an error pointer (which debugfs ignores), `name`
            // is NUL-terminated, and `file` stays valid until the directory is removed (type
            // invariant).
            unsafe { bindings::vir_debugfs_file(dentry, name.as_char_ptr(), file) };
        }
        Ok(Self {
            dentry,
            _files: files,
            _data: data,
        })
    }

    /// The show callback of every file.
    ///
    /// # Safety
    ///
    /// Only called by `bindings/debugfs.c` for a file of a `Dir<T>` not yet removed, with its
    /// `seq_file` and its entry's `data` and `index`.
    unsafe extern "C" fn show_callback(
        m: *mut bindings::seq_file,
        data: *const ffi::c_void,
        index: ffi::c_uint,
    ) -> ffi::c_int {
        // SAFETY: `data` points to the `T` of the `Dir` (type invariant), which holds a reference
        // on it until after the file is removed, and removal waits for this call to return.
        let data = unsafe { &*data.cast::<T>() };
        // INVARIANT: `m` is the read's `seq_file`, valid for this call, which `out` does not
        // outlive.
        let mut out = SeqFile { m };
        match data.show(index as usize, &mut out) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }
}

impl<T: Files> Drop for Dir<T> {
    fn drop(&mut self) {
        // SAFETY: `dentry` is ours (type invariant); this waits for reads in progress, after which
        // no show callback can use `_files` or `_data`, dropped after this function.
        unsafe { bindings::vir_debugfs_remove(self.dentry) };
    }
}
