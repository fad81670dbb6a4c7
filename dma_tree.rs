// SPDX-License-Identifier: GPL-2.0

//! The DMA mappings of a container, keyed by their first IOVA (type1's `dma_list`), and the walks
//! over the mappings an unmap or a dirty bitmap request covers.
//!
//! Walks find the first covered mapping with one lookup and then move a cursor (`O(1)` amortised
//! per step); they never collect keys, so that no request needs memory in proportion to the number
//! of mappings it covers.
//!
//! Locking: every function here runs under the owning container's mutex. A busy mapping
//! ([`Busy`]) is in the tree while a task works on it without the mutex; requests over a range
//! wait until no busy mapping overlaps it (`container.rs`), so the walks below meet busy mappings
//! only where noted.

use crate::{
    compat,
    dma::{Busy, DmaMapping},
    iova::IovaRange,
};
use kernel::{
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
};

/// Which mappings a request over a range covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cover {
    /// Every mapping that starts in the range (v2 unmap and dirty bitmaps; the caller has checked
    /// that no mapping is bisected).
    StartsIn,
    /// `VFIO_TYPE1_IOMMU` unmap: as [`Cover::StartsIn`], but nothing at all if the lowest mapping
    /// overlapping the range starts below it.
    V1,
}

/// A container's mappings, keyed by their first IOVA; they never overlap.
pub(crate) struct DmaTree {
    tree: RBTree<u64, DmaMapping>,
}

impl DmaTree {
    /// No mappings.
    pub(crate) fn new() -> Self {
        Self { tree: RBTree::new() }
    }

    /// The first IOVA of the lowest mapping that overlaps `range`.
    #[unsafe(link_section = ".text.vir_hot")]
    pub(crate) fn first_overlap(&mut self, range: &IovaRange) -> Option<u64> {
        // A mapping starting below `range.start` overlaps if it reaches into it.
        if let Some(cursor) = self.tree.cursor_lower_bound(&range.start) {
            if let Some((_, prev)) = cursor.peek_prev() {
                if prev.range.overlaps(range) {
                    return Some(prev.range.start);
                }
            }
            let (&start, _) = cursor.current();
            return (start <= range.last).then_some(start);
        }
        let cursor = self.tree.cursor_back()?;
        let (&start, m) = cursor.current();
        m.range.overlaps(range).then_some(start)
    }

    /// The first IOVA of the mapping that contains `iova`.
    pub(crate) fn containing(&mut self, iova: u64) -> Option<u64> {
        self.first_overlap(&IovaRange { start: iova, last: iova })
    }

    /// The mapping that contains `iova`.
    #[unsafe(link_section = ".text.vir_hot")]
    pub(crate) fn containing_mut(&mut self, iova: u64) -> Option<&mut DmaMapping> {
        let key = self.containing(iova)?;
        self.get_mut(key)
    }

    /// The first IOVA of the next mapping after the one starting at `start`.
    pub(crate) fn next_after(&mut self, start: u64) -> Option<u64> {
        let cursor = self.tree.cursor_lower_bound(&start)?;
        cursor.peek_next().map(|(&k, _)| k)
    }

    /// The first IOVA of the first mapping a request over `range` covers.
    #[unsafe(link_section = ".text.vir_hot")]
    fn first_covered(&mut self, range: &IovaRange, cover: Cover) -> Option<u64> {
        let first = self.first_overlap(range)?;
        let key = if first < range.start {
            if cover == Cover::V1 {
                return None;
            }
            // Bisected at the start (refused by the caller) or starting below: skip it.
            self.next_after(first)?
        } else {
            first
        };
        (key <= range.last).then_some(key)
    }

    /// Visits the mappings a request over `range` covers, in IOVA order, until `f` returns
    /// `Some`, which is returned.
    #[unsafe(link_section = ".text.vir_hot")]
    pub(crate) fn find_covered<R>(
        &mut self,
        range: &IovaRange,
        cover: Cover,
        mut f: impl FnMut(&mut DmaMapping) -> Option<R>,
    ) -> Option<R> {
        let first = self.first_covered(range, cover)?;
        let mut cursor = compat::cursor_lower_bound_mut(&mut self.tree, &first);
        while let Some(mut c) = cursor {
            let (&key, m) = c.current_mut();
            if key > range.last {
                break;
            }
            if let Some(r) = f(m) {
                return Some(r);
            }
            cursor = c.move_next();
        }
        None
    }

    /// Removes the mappings a request over `range` covers, in IOVA order, handing each to `f`.
    pub(crate) fn remove_covered(&mut self, range: &IovaRange, cover: Cover, f: impl FnMut(DmaMapping)) {
        self.drain_covered(range, cover, |_| true, f);
    }

    /// Removes the mappings a request over `range` covers for which `remove_now` returns true,
    /// in IOVA order, handing each to `f`; the others stay (`remove_now` marks them for later).
    pub(crate) fn drain_covered(
        &mut self,
        range: &IovaRange,
        cover: Cover,
        mut remove_now: impl FnMut(&mut DmaMapping) -> bool,
        mut f: impl FnMut(DmaMapping),
    ) {
        let Some(first) = self.first_covered(range, cover) else {
            return;
        };
        let mut cursor = compat::cursor_lower_bound_mut(&mut self.tree, &first);
        while let Some(mut c) = cursor {
            let (&key, m) = c.current_mut();
            if key > range.last {
                break;
            }
            if !remove_now(m) {
                cursor = c.move_next();
                continue;
            }
            let (next, node) = c.remove_current();
            let (_, mapping) = node.to_key_value();
            f(mapping);
            // Removing the last node moves the cursor back: the walk ends there.
            cursor = next.filter(|n| *n.current().0 > key);
        }
    }

    /// Whether a busy mapping ([`Busy`]) overlaps `range`.
    pub(crate) fn busy_overlapping(&mut self, range: &IovaRange) -> bool {
        let Some(first) = self.first_overlap(range) else {
            return false;
        };
        let mut cursor = compat::cursor_lower_bound_mut(&mut self.tree, &first);
        while let Some(c) = cursor {
            let (&key, m) = c.current();
            if key > range.last {
                break;
            }
            if m.busy != Busy::No {
                return true;
            }
            cursor = c.move_next();
        }
        false
    }

    /// The first IOVA, from `from` to `range.last`, of a mapping in state `busy`.
    pub(crate) fn next_busy(&mut self, range: &IovaRange, from: u64, busy: Busy) -> Option<u64> {
        let mut cursor = compat::cursor_lower_bound_mut(&mut self.tree, &from);
        while let Some(c) = cursor {
            let (&key, m) = c.current();
            if key > range.last {
                break;
            }
            if m.busy == busy {
                return Some(key);
            }
            cursor = c.move_next();
        }
        None
    }

    /// Takes the mapping starting at `start`, marked [`Busy::Unmapping`], out of the tree for a
    /// task to unmap without the mutex, leaving a [`Busy::Removing`] husk in its place
    /// ([`DmaMapping::husk`]): no other unmap takes it then.
    pub(crate) fn take_out(&mut self, start: u64) -> Option<DmaMapping> {
        let slot = self.tree.get_mut(&start).filter(|m| m.busy == Busy::Unmapping)?;
        let husk = slot.husk(Busy::Removing);
        Some(core::mem::replace(slot, husk))
    }

    /// Removes the husk in state `busy` at `start` (of a map, or the one [`Self::take_out`]
    /// left); false if there is none.
    pub(crate) fn remove_husk(&mut self, start: u64, busy: Busy) -> bool {
        if busy == Busy::No || self.tree.get(&start).map(|m| m.busy) != Some(busy) {
            return false;
        }
        drop(self.tree.remove(&start));
        true
    }

    /// Puts `mapping` in place of the husk of a map ([`Busy::Mapping`]) that holds its range, no
    /// longer busy; hands it back if there is no such husk.
    pub(crate) fn put_back(&mut self, mut mapping: DmaMapping) -> core::result::Result<(), DmaMapping> {
        let Some(slot) = self.tree.get_mut(&mapping.range.start).filter(|h| h.busy == Busy::Mapping) else {
            return Err(mapping);
        };
        mapping.busy = Busy::No;
        drop(core::mem::replace(slot, mapping));
        Ok(())
    }

    /// Whether `range` bisects a mapping at either end (v2 unmaps and dirty bitmaps must not).
    #[unsafe(link_section = ".text.vir_hot")]
    pub(crate) fn bisects(&mut self, range: &IovaRange) -> bool {
        if let Some(k) = self.containing(range.start) {
            if k != range.start {
                return true;
            }
        }
        if let Some(k) = self.containing(range.last) {
            if self.get(k).map(|m| m.range.last) != Some(range.last) {
                return true;
            }
        }
        false
    }

    /// The mapping starting at `start`.
    pub(crate) fn get(&self, start: u64) -> Option<&DmaMapping> {
        self.tree.get(&start)
    }

    /// The mapping starting at `start`.
    pub(crate) fn get_mut(&mut self, start: u64) -> Option<&mut DmaMapping> {
        self.tree.get_mut(&start)
    }

    /// Allocates the tree node of a mapping to be inserted, so that inserting cannot fail.
    pub(crate) fn reserve() -> Result<DmaNode> {
        Ok(DmaNode(RBTreeNodeReservation::new(GFP_KERNEL_ACCOUNT)?))
    }

    /// Adds a mapping that overlaps none, in a node reserved before.
    pub(crate) fn insert(&mut self, node: DmaNode, mapping: DmaMapping) {
        self.tree.insert(node.0.into_node(mapping.range.start, mapping));
    }

    /// The mappings in IOVA order.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut DmaMapping> {
        self.tree.values_mut()
    }

    /// The mappings in IOVA order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &DmaMapping> {
        self.tree.values()
    }

}

/// A tree node reserved for a mapping.
pub(crate) struct DmaNode(RBTreeNodeReservation<u64, DmaMapping>);
