// SPDX-License-Identifier: GPL-2.0

//! Locked-memory accounting of a DMA mapping: the one owner of the pages a mapping charges to its
//! owner's `locked_vm` (`RLIMIT_MEMLOCK`).
//!
//! # The invariant
//!
//! A mapping's [`LockedAccount`] holds exactly one page of charge for every page we hold pinned
//! for the mapping that has a `struct page` which is not reserved (type1's `!is_invalid_reserved_pfn()`),
//! counting a page once however many pins of the same IOVA hold it:
//!
//! ```text
//! account.pages() == iommu_locked + vendor_own
//! ```
//!
//! - `iommu_locked`: the IOMMU pins of the mapping (all of its pages while it is mapped in the
//!   container's domains) that count as locked memory;
//! - `vendor_own`: the vendor pins in state [`PinCharge::Own`]: a non-reserved page that no IOMMU
//!   pin of the same IOVA holds. A vendor pin of the same page as the IOMMU pin of its IOVA is
//!   [`PinCharge::Shared`] and charges nothing; it becomes `Own` (keeping the IOMMU pin's charge)
//!   when the IOMMU pins go, and `Own` becomes `Shared` (returning its charge) when an IOMMU pin of
//!   the same page is taken.
//!
//! Each page is decided when it is pinned, by its own pfn, so nothing depends on the memory behind
//! the mapping's vaddr staying what it was: userspace may remap it between any two calls (type1
//! assumes it does not, and its counts go wrong when it does). The mapping code checks the
//! invariant at every transition ([`LockedAccount::check`]) and logs a violation, which the test
//! suites treat as a failure.
//!
//! Charges are checked arithmetic on `u64`; an uncharge larger than the account is a bug that is
//! logged and clamped, never an overflow panic.
//!
//! Lock order: called under the container mutex; takes the owner's `mmap_lock` (in [`crate::mm`]).

use crate::mm::MmOwner;
use kernel::{prelude::*, sync::Arc};

/// How a vendor pin relates to the mapping's locked-memory charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PinCharge {
    /// A reserved page or MMIO: never charged, as in type1.
    Reserved,
    /// The same page as the IOMMU pin of its IOVA, which carries the charge.
    Shared,
    /// Carries one page of the mapping's charge.
    Own,
    /// Taken by the `vfio_pin_pages()` call in progress; becomes [`PinCharge::Own`] once that call
    /// has charged it, or is released uncharged if the call fails.
    Pending,
}

/// The pages a mapping has charged to its owner's locked memory, and the owner.
pub(crate) struct LockedAccount {
    owner: Arc<MmOwner>,
    pages: u64,
}

impl LockedAccount {
    /// An account of `owner` with nothing charged.
    pub(crate) fn new(owner: Arc<MmOwner>) -> Self {
        Self { owner, pages: 0 }
    }

    /// The pages charged.
    pub(crate) fn pages(&self) -> u64 {
        self.pages
    }

    /// Whose memory the mapping is.
    pub(crate) fn owner(&self) -> &Arc<MmOwner> {
        &self.owner
    }

    /// Charges `n` more pages: `ENOMEM` beyond `RLIMIT_MEMLOCK` (without `CAP_IPC_LOCK`), and
    /// nothing changes on error.
    pub(crate) fn charge(&mut self, n: u64) -> Result {
        if n == 0 {
            return Ok(());
        }
        let total = self.pages.checked_add(n).ok_or(ENOMEM)?;
        self.owner.charge(n)?;
        self.pages = total;
        Ok(())
    }

    /// Returns `n` pages of the charge. Cannot fail; more than is charged is a bug, logged and
    /// clamped to what is charged.
    pub(crate) fn uncharge(&mut self, n: u64) {
        let n = if n > self.pages {
            pr_err!(
                "accounting invariant violated: uncharging {} pages of a mapping that has {}\n",
                n,
                self.pages
            );
            self.pages
        } else {
            n
        };
        self.owner.uncharge(n);
        self.pages -= n;
    }

    /// Returns the whole charge (the mapping is going).
    pub(crate) fn release(&mut self) {
        self.uncharge(self.pages);
    }

    /// Moves the charge to `new` (type1's `vfio_change_dma_owner`): charged to `new` first, so
    /// that on error (`ENOMEM`) nothing changes.
    pub(crate) fn move_to(&mut self, new: Arc<MmOwner>) -> Result {
        new.charge(self.pages)?;
        self.owner.uncharge(self.pages);
        self.owner = new;
        Ok(())
    }

    /// Checks the invariant: the account holds `expected` pages (`where_` names the transition).
    /// A mismatch is logged (the tests fail on the message) and the account is corrected by
    /// returning the excess or charging the shortfall, so that `locked_vm` never drifts.
    pub(crate) fn check(&mut self, expected: u64, where_: &str) -> bool {
        if self.pages == expected {
            return true;
        }
        pr_err!(
            "accounting invariant violated at {}: {} pages charged, {} expected\n",
            where_,
            self.pages,
            expected
        );
        if self.pages > expected {
            self.uncharge(self.pages - expected);
        } else {
            // Charged if the limit allows (it normally does: the pages were charged once).
            let n = expected - self.pages;
            if self.owner.charge(n).is_ok() {
                self.pages = expected;
            }
        }
        false
    }
}

impl Drop for LockedAccount {
    /// Destroy never fails and never leaks: a charge left behind is a bug, logged and returned.
    fn drop(&mut self) {
        if self.pages != 0 {
            pr_err!(
                "accounting invariant violated: mapping freed with {} pages charged\n",
                self.pages
            );
            self.release();
        }
    }
}
