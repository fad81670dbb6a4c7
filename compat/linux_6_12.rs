// SPDX-License-Identifier: GPL-2.0

//! The kernel crate of Linux 6.12.y, as the backend sees it (selected by `Kbuild` from the kernel
//! tree's `VERSION`; `compat/linux_7_3.rs` is the same surface over 7.3's crate).
//!
//! Everything the backend uses from the `kernel` crate whose name or shape differs between the
//! kernel lines the module supports goes through here, and nothing else: user pointers, the
//! monotonic clock, zero-initialised allocations, the byte-view traits, `ForeignOwnable` pointers,
//! and the `module!` declaration.

use kernel::{
    ffi::c_void,
    rbtree::RBTree,
    sync::{Arc, ArcBorrow},
    time::Ktime,
    types::ForeignOwnable,
    uaccess::UserSlice,
};

pub(crate) use kernel::init::{zeroed as init_zeroed, Zeroable};
pub(crate) use kernel::types::{AsBytes, FromBytes};

/// The user memory of `len` bytes at user address `addr` (6.12: a `UserPtr` is a `usize`).
pub(crate) fn user_slice(addr: usize, len: usize) -> UserSlice {
    UserSlice::new(addr, len)
}

/// A point in time of the monotonic clock.
#[derive(Clone, Copy)]
pub(crate) struct Instant(Ktime);

impl Instant {
    /// Now.
    pub(crate) fn now() -> Self {
        Self(Ktime::ktime_get())
    }

    /// Nanoseconds since `self` (0 if the clock went backwards, which it does not).
    pub(crate) fn elapsed_ns(self) -> u64 {
        u64::try_from(Ktime::ktime_get().to_ns().saturating_sub(self.0.to_ns())).unwrap_or(0)
    }
}

/// `arc` as the opaque pointer a C structure keeps (6.12: `into_foreign` gives a const pointer).
pub(crate) fn arc_into_foreign<T: Send + Sync + 'static>(arc: Arc<T>) -> *mut c_void {
    arc.into_foreign().cast_mut()
}

/// Borrows the `Arc` behind `ptr`.
///
/// # Safety
///
/// `ptr` came from [`arc_into_foreign`] of an `Arc<T>` and [`arc_from_foreign`] has not been called
/// on it, for the whole lifetime `'a`.
pub(crate) unsafe fn arc_borrow<'a, T: Send + Sync + 'static>(ptr: *mut c_void) -> ArcBorrow<'a, T> {
    // SAFETY: The caller's contract is `ForeignOwnable::borrow`'s.
    unsafe { <Arc<T> as ForeignOwnable>::borrow(ptr) }
}

/// Takes back the `Arc` behind `ptr`.
///
/// # Safety
///
/// `ptr` came from [`arc_into_foreign`] of an `Arc<T>`, and this is the only call for it, after
/// every borrow of it has ended.
pub(crate) unsafe fn arc_from_foreign<T: Send + Sync + 'static>(ptr: *mut c_void) -> Arc<T> {
    // SAFETY: The caller's contract is `ForeignOwnable::from_foreign`'s.
    unsafe { <Arc<T> as ForeignOwnable>::from_foreign(ptr) }
}

/// The module's `module!` declaration (6.12 takes one `author`).
macro_rules! vir_module {
    ($($body:tt)*) => {
        ::kernel::prelude::module! { $($body)* }
    };
}
pub(crate) use vir_module;

/// The module's KUnit cases (each a `fn() -> i32`, 0 on success, else the failed check's line), as
/// C functions `vir_kunit_<case>` that `bindings/kunit.c` registers in a suite: the 6.12 kernel crate
/// has no Rust KUnit support.
macro_rules! kunit_suite {
    ($suite:ident: $($case:ident),+ $(,)?) => {
        $(
            ::kernel::macros::paste! {
                #[no_mangle]
                extern "C" fn [<vir_kunit_ $case>]() -> i32 {
                    $case()
                }
            }
        )+
    };
}
pub(crate) use kunit_suite;

/// A cursor of an `RBTree` that moves, changes values and removes nodes (6.12: its `Cursor` does
/// all of that).
pub(crate) use kernel::rbtree::Cursor as CursorMut;

/// A [`CursorMut`] at the first node of `tree` whose key is at least `key`.
pub(crate) fn cursor_lower_bound_mut<'a, K: Ord, V>(
    tree: &'a mut RBTree<K, V>,
    key: &K,
) -> Option<CursorMut<'a, K, V>> {
    tree.cursor_lower_bound(key)
}
