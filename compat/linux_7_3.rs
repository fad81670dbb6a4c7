// SPDX-License-Identifier: GPL-2.0

//! The kernel crate of Linux 7.3.y, as the backend sees it (selected by `Kbuild` from the kernel
//! tree's `VERSION`): the surface of `compat/linux_6_12.rs`, over 7.3's crate.
//!
//! Where 7.3 has a new abstraction for what 6.12 lacks, it is used here: `UserPtr` is a newtype,
//! time is an `Instant<Monotonic>`, zeroed initialisers and `Zeroable` come from `pin_init`, the
//! byte-view traits live in `kernel::transmute`, `ForeignOwnable` speaks `*mut c_void`, and
//! `module!` takes a list of `authors`.

use kernel::{
    ffi::c_void,
    rbtree::RBTree,
    sync::{Arc, ArcBorrow},
    time::{Instant as KInstant, Monotonic},
    types::ForeignOwnable,
    uaccess::{UserPtr, UserSlice},
};

pub(crate) use kernel::transmute::{AsBytes, FromBytes};
pub(crate) use pin_init::{init_zeroed, Zeroable};

/// The user memory of `len` bytes at user address `addr`.
pub(crate) fn user_slice(addr: usize, len: usize) -> UserSlice {
    UserSlice::new(UserPtr::from_addr(addr), len)
}

/// A point in time of the monotonic clock.
#[derive(Clone, Copy)]
pub(crate) struct Instant(KInstant<Monotonic>);

impl Instant {
    /// Now.
    pub(crate) fn now() -> Self {
        Self(KInstant::<Monotonic>::now())
    }

    /// Nanoseconds since `self` (0 if the clock went backwards, which it does not).
    pub(crate) fn elapsed_ns(self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(0)
    }
}

/// `arc` as the opaque pointer a C structure keeps.
pub(crate) fn arc_into_foreign<T: Send + Sync + 'static>(arc: Arc<T>) -> *mut c_void {
    arc.into_foreign()
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

/// The module's `module!` declaration (7.3 takes a list of `authors`).
macro_rules! vir_module {
    (type: $type:tt, name: $name:tt, author: $author:tt, description: $description:tt,
     license: $license:tt $(,)?) => {
        ::kernel::prelude::module! {
            type: $type,
            name: $name,
            authors: [$author],
            description: $description,
            license: $license,
        }
    };
}
pub(crate) use vir_module;

/// The module's KUnit cases (each a `fn() -> i32`, 0 on success, else the failed check's line), as
/// the suite `$suite` of the kernel crate's `#[kunit_tests]`.
macro_rules! kunit_suite {
    ($suite:ident: $($case:ident),+ $(,)?) => {
        #[::kernel::macros::kunit_tests($suite)]
        mod kunit_suite {
            $(
                #[test]
                fn $case() {
                    assert_eq!(super::$case(), 0);
                }
            )+
        }
    };
}
pub(crate) use kunit_suite;

/// A cursor of an `RBTree` that moves, changes values and removes nodes (7.3 splits the 6.12
/// `Cursor` into a read-only `Cursor`, which cannot move, and this one).
pub(crate) use kernel::rbtree::CursorMut;

/// A [`CursorMut`] at the first node of `tree` whose key is at least `key`.
pub(crate) fn cursor_lower_bound_mut<'a, K: Ord, V>(
    tree: &'a mut RBTree<K, V>,
    key: &K,
) -> Option<CursorMut<'a, K, V>> {
    tree.cursor_lower_bound_mut(key)
}
