// SPDX-License-Identifier: GPL-2.0

//! IOVA range arithmetic and a container's usable IOVA space.
//!
//! Ranges are inclusive (`start..=last`), as in iommufd, so that a range ending at the top of the
//! 64-bit space (`last == u64::MAX`) is representable and no computation ever forms `start + size`.
//! Every computation that could overflow is checked: sizes and addresses come from userspace.

use kernel::prelude::*;

/// An inclusive, non-empty range of IO virtual addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IovaRange {
    /// The first address in the range.
    pub(crate) start: u64,
    /// The last address in the range (inclusive).
    pub(crate) last: u64,
}

impl IovaRange {
    /// The range `start..=last`, if `start <= last`.
    pub(crate) fn new(start: u64, last: u64) -> Option<Self> {
        (start <= last).then_some(Self { start, last })
    }

    /// The range of `size` bytes from `start`: `EINVAL` for an empty range, `EOVERFLOW` if it would
    /// wrap past the top of the address space (a range may end exactly at `u64::MAX`).
    pub(crate) fn from_start_size(start: u64, size: u64) -> Result<Self> {
        let last = size
            .checked_sub(1)
            .ok_or(EINVAL)?
            .checked_add(start)
            .ok_or(eoverflow())?;
        Ok(Self { start, last })
    }

    /// The size in bytes, or `None` for the whole 64-bit space (which has 2^64 bytes).
    #[inline]
    pub(crate) fn size(&self) -> Option<u64> {
        (self.last - self.start).checked_add(1)
    }

    /// Whether `other` lies entirely inside this range.
    pub(crate) fn contains(&self, other: &IovaRange) -> bool {
        self.start <= other.start && other.last <= self.last
    }

    /// Whether the two ranges share at least one address.
    pub(crate) fn overlaps(&self, other: &IovaRange) -> bool {
        self.start <= other.last && other.start <= self.last
    }

    /// The addresses the two ranges share, if any.
    pub(crate) fn intersection(&self, other: &IovaRange) -> Option<IovaRange> {
        IovaRange::new(self.start.max(other.start), self.last.min(other.last))
    }
}

/// The `EOVERFLOW` error, which `kernel::error::code` of 6.12 does not define.
pub(crate) fn eoverflow() -> Error {
    Error::from_errno(-(crate::bindings::EOVERFLOW as i32))
}

/// A container's usable IOVA space: sorted, disjoint, non-adjacent ranges.
///
/// Empty for a container without IOMMU domains (only emulated groups), where type1 accepts any
/// IOVA.
pub(crate) struct IovaList {
    ranges: KVec<IovaRange>,
}

impl IovaList {
    /// The empty list.
    pub(crate) const fn empty() -> Self {
        Self { ranges: KVec::new() }
    }

    /// Computes the usable space of a set of domains: the intersection of their `apertures`,
    /// minus the `reserved` regions. Returns the empty list if there are no apertures, and
    /// `EINVAL` if apertures exist but nothing usable is left.
    pub(crate) fn compute<'a>(
        apertures: impl Iterator<Item = IovaRange>,
        reserved: impl Iterator<Item = &'a IovaRange>,
    ) -> Result<Self> {
        let mut aperture: Option<IovaRange> = None;
        let mut any = false;
        for a in apertures {
            aperture = if any {
                match aperture.and_then(|cur| cur.intersection(&a)) {
                    Some(i) => Some(i),
                    None => return Err(EINVAL),
                }
            } else {
                Some(a)
            };
            any = true;
        }
        let Some(aperture) = aperture else {
            return Ok(Self::empty());
        };
        let mut ranges = KVec::new();
        ranges.push(aperture, GFP_KERNEL)?;
        let mut list = Self { ranges };
        for r in reserved {
            list = list.exclude(r)?;
        }
        if list.ranges.is_empty() {
            return Err(EINVAL);
        }
        Ok(list)
    }

    /// This list without the addresses of `hole`.
    fn exclude(&self, hole: &IovaRange) -> Result<Self> {
        let mut ranges = KVec::with_capacity(self.ranges.len() + 1, GFP_KERNEL)?;
        for r in self.ranges.iter() {
            if !r.overlaps(hole) {
                ranges.push(*r, GFP_KERNEL)?;
                continue;
            }
            if r.start < hole.start {
                // `hole.start > r.start >= 0`, so `hole.start - 1` cannot underflow.
                ranges.push(IovaRange { start: r.start, last: hole.start - 1 }, GFP_KERNEL)?;
            }
            if hole.last < r.last {
                // `hole.last < r.last <= u64::MAX`, so `hole.last + 1` cannot overflow.
                ranges.push(IovaRange { start: hole.last + 1, last: r.last }, GFP_KERNEL)?;
            }
        }
        Ok(Self { ranges })
    }

    /// Whether `range` may be mapped: inside one usable range, or the list is empty.
    pub(crate) fn allows(&self, range: &IovaRange) -> bool {
        self.ranges.is_empty() || self.ranges.iter().any(|r| r.contains(range))
    }

    /// The ranges, in ascending order.
    pub(crate) fn ranges(&self) -> &[IovaRange] {
        &self.ranges
    }
}
