// SPDX-License-Identifier: GPL-2.0

//! What a mapping records about its pages, kept off its tree node: a mapping's node fits the
//! 96-byte slab, as type1's `struct vfio_dma` does, and has no room for a second pointer. Both
//! records are usually absent, and then this is one null pointer:
//! - the pages marked dirty since the last report, while tracking ([`DirtyPages`], `dirty.rs`);
//! - the runs pinned and mapped for the IOMMU, for a large mapping ([`PinnedRuns`],
//!   `pinned_runs.rs`).
//!
//! Lock order: none taken; the owner of the mapping serialises all use.

use crate::{dirty::DirtyPages, pinned_runs::PinnedRuns};
use kernel::prelude::*;

/// The records of one mapping; see the module documentation.
pub(crate) struct PageRecords {
    inner: Option<KBox<Records>>,
}

struct Records {
    dirty: DirtyPages,
    runs: Option<PinnedRuns>,
}

impl PageRecords {
    /// No records; allocates nothing.
    pub(crate) fn new() -> Self {
        Self { inner: None }
    }

    fn get_or_alloc(&mut self) -> Result<&mut Records> {
        let b = match self.inner.take() {
            Some(b) => b,
            None => KBox::new(Records { dirty: DirtyPages::new(), runs: None }, GFP_KERNEL_ACCOUNT)?,
        };
        Ok(self.inner.insert(b))
    }

    /// Frees the box once it holds nothing.
    fn free_if_empty(&mut self) {
        if self.inner.as_ref().is_some_and(|r| r.runs.is_none() && r.dirty.is_empty()) {
            self.inner = None;
        }
    }

    /// The dirty marks (fresh since the last report, or stale and kept), if any are allocated.
    pub(crate) fn dirty(&mut self) -> Option<&mut DirtyPages> {
        self.inner.as_mut().map(|r| &mut r.dirty)
    }

    /// Marks pages `first..=last` dirty ([`DirtyPages::mark`]); fails with `ENOMEM` if the records
    /// cannot be allocated.
    #[unsafe(link_section = ".text.vir_hot")]
    pub(crate) fn mark_dirty(&mut self, first: u64, last: u64) -> Result {
        let r = self.get_or_alloc()?.dirty.mark(first, last);
        self.free_if_empty();
        r
    }

    /// Starts a new reporting period ([`crate::dirty::DirtyPages::new_period`]).
    pub(crate) fn new_dirty_period(&mut self) {
        if let Some(r) = self.inner.as_mut() {
            r.dirty.new_period();
        }
        self.free_if_empty();
    }

    /// Forgets the dirty marks and frees their memory.
    pub(crate) fn clear_dirty(&mut self) {
        if let Some(r) = self.inner.as_mut() {
            r.dirty.clear();
        }
        self.free_if_empty();
    }

    /// The runs pinned and mapped for the IOMMU, if recorded.
    pub(crate) fn runs(&self) -> Option<&PinnedRuns> {
        self.inner.as_ref().and_then(|r| r.runs.as_ref())
    }

    /// Keeps `runs` as the mapping's record. If the box cannot be allocated, the record is dropped
    /// and the mapping is read back from the IOMMU when unmapped.
    pub(crate) fn set_runs(&mut self, runs: Option<PinnedRuns>) {
        let Some(runs) = runs else {
            return;
        };
        if let Ok(r) = self.get_or_alloc() {
            r.runs = Some(runs);
        }
    }

    /// Takes the record of the runs away (the mapping is being unmapped).
    pub(crate) fn take_runs(&mut self) -> Option<PinnedRuns> {
        let runs = self.inner.as_mut().and_then(|r| r.runs.take());
        self.free_if_empty();
        runs
    }
}
