// SPDX-License-Identifier: GPL-2.0

//! What an operator can see of a container: its debugfs directory
//! `/sys/kernel/debug/vfio_iommu_rust/pid<tgid>-c<id>/` (the process that opened it, and the id in
//! the `container` field of the trace events) with the files `mappings`, `groups`, `accounting`,
//! `dirty` and `vendor`. Documentation/observability.rst describes every line.
//!
//! Reading a file never holds the container's mutex for long: what it shows is copied under the
//! mutex and formatted with it released. `mappings` and `dirty` copy [`CHUNK`] mappings per hold,
//! so a mapping made or removed meanwhile may or may not appear; `accounting` takes one consistent
//! snapshot (one walk over the mappings, adding numbers, in one hold), because its invariant
//! compares sums over all mappings with a counter of the whole container; `groups` copies the
//! groups and domains; `vendor` reads atomic counters only.
//!
//! Lock order: as in `container.rs`. A show takes `Container::inner` alone; the directory is
//! removed by [`Container::unpublish`] with no lock held.

use crate::{
    account::PinCharge,
    container::Container,
    debugfs::{self, SeqFile},
    dma::{Busy, DmaMapping},
    dma_tree::Cover,
    domain::Prot,
    group::GroupType,
    iova::IovaRange,
    mm::{self, MmOwner, PAGE_SHIFT},
};
use core::fmt::Write;
use kernel::{c_str, prelude::*, str::CString, sync::Arc};

/// Mappings copied per hold of the container's mutex.
const CHUNK: usize = 64;
/// Lines of mappings shown at most (the total line counts them all).
pub(crate) const MAX_MAPPING_LINES: u64 = 1000;
/// Owners of mappings told apart in `accounting` (the rest are summed on one line).
const MAX_OWNERS: usize = 8;

/// The index of each file in [`Container::NAMES`](debugfs::Files::NAMES).
const MAPPINGS: usize = 0;
const GROUPS: usize = 1;
const ACCOUNTING: usize = 2;
const DIRTY: usize = 3;
const VENDOR: usize = 4;

impl debugfs::Files for Container {
    const NAMES: &'static [&'static CStr] = &[
        c_str!("mappings"),
        c_str!("groups"),
        c_str!("accounting"),
        c_str!("dirty"),
        c_str!("vendor"),
    ];

    fn show(&self, index: usize, out: &mut SeqFile) -> Result {
        match index {
            MAPPINGS => self.show_mappings(out),
            GROUPS => self.show_groups(out),
            ACCOUNTING => self.show_accounting(out),
            DIRTY => self.show_dirty(out),
            VENDOR => self.show_vendor(out),
            _ => Err(EINVAL),
        }
    }
}

impl Container {
    /// Creates the container's debugfs directory (after `open`). Failing to is logged and
    /// otherwise ignored: the container works without it.
    pub(crate) fn publish(this: &Arc<Self>) {
        let dir = CString::try_from_fmt(format_args!("pid{}-c{}", this.opener, this.id))
            .and_then(|name| debugfs::Dir::new(&name, this.clone()));
        match dir {
            Ok(dir) => *this.debugfs.lock() = Some(dir),
            Err(e) => pr_warn!("container {}: no debugfs directory: {:?}\n", this.id, e),
        }
    }

    /// Removes the container's debugfs directory (first thing at `release`), waiting for reads in
    /// progress; with it goes the directory's reference on the container.
    pub(crate) fn unpublish(&self) {
        let dir = self.debugfs.lock().take();
        drop(dir);
    }

    /// Calls `copy` on every mapping in IOVA order with the mutex held, at most [`CHUNK`] per
    /// hold, then `sink` on each copy with the mutex released, until `sink` returns false.
    fn walk_mappings<C>(
        &self,
        mut copy: impl FnMut(&mut DmaMapping) -> C,
        mut sink: impl FnMut(C) -> bool,
    ) -> Result {
        let mut from = Some(0u64);
        while let Some(start) = from {
            let mut chunk = KVec::with_capacity(CHUNK, GFP_KERNEL)?;
            {
                let mut inner = self.inner.lock();
                let rest = IovaRange {
                    start,
                    last: u64::MAX,
                };
                // Within the capacity: no allocation under the mutex.
                let stopped = inner.mappings.find_covered(&rest, Cover::StartsIn, |m| {
                    if chunk.len() == CHUNK {
                        return Some(Ok(m.range.start));
                    }
                    chunk.push(copy(m), GFP_KERNEL).err().map(|_| Err(ENOMEM))
                });
                from = match stopped {
                    Some(Ok(key)) => Some(key),
                    Some(Err(e)) => return Err(e),
                    None => None,
                };
            }
            for c in chunk {
                if !sink(c) {
                    return Ok(());
                }
            }
            mm::cond_resched();
        }
        Ok(())
    }

    /// `mappings`: one line per mapping (at most [`MAX_MAPPING_LINES`]), then the totals.
    fn show_mappings(&self, out: &mut SeqFile) -> Result {
        let _ = writeln!(out, "# first_iova-last_iova vaddr prot pages charged vendor_pins iommu_mapped");
        let mut total = MappingTotals::default();
        self.walk_mappings(MappingLine::of, |line| {
            total.add(&line);
            if total.mappings <= MAX_MAPPING_LINES {
                line.write(out);
            }
            !out.overflowed()
        })?;
        let _ = writeln!(
            out,
            "total: mappings={} pages={} charged={} vendor_pins={} iommu_mapped={} shown={} runs={} run_bytes={} one_run={}",
            total.mappings,
            total.pages,
            total.charged,
            total.vendor_pins,
            total.iommu_mapped,
            total.mappings.min(MAX_MAPPING_LINES),
            total.runs,
            total.run_bytes,
            total.one_run
        );
        Ok(())
    }

    /// `groups`: the groups, the IOMMU domains and the usable IOVA space.
    fn show_groups(&self, out: &mut SeqFile) -> Result {
        let mut groups = KVec::new();
        let mut domains = KVec::new();
        let mut ranges = KVec::new();
        let (pgsize_bitmap, min_pgsize, coherent) = {
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            for (i, e) in inner.domains.entries_mut().enumerate() {
                let info = e.domain.info();
                domains.push(
                    DomainLine {
                        index: i,
                        key: e.domain.key(),
                        groups: e.groups,
                        pgsize_bitmap: info.pgsize_bitmap,
                        aperture: info.aperture,
                        coherent: info.enforce_cache_coherency,
                    },
                    GFP_KERNEL,
                )?;
            }
            for g in inner.groups.values() {
                let domain = g.domain.and_then(|k| domains.iter().find(|d| d.key == k)).map(|d| d.index);
                groups.push(
                    GroupLine {
                        id: g.group.group().id(),
                        kind: g.kind,
                        domain,
                        pinned_scope: g.pinned_scope,
                    },
                    GFP_KERNEL,
                )?;
            }
            ranges.extend_from_slice(inner.iova_list.ranges(), GFP_KERNEL)?;
            (
                inner.domains.pgsize_bitmap(),
                inner.min_pgsize(),
                inner.domains.enforce_cache_coherency(),
            )
        };
        let version = match self.version {
            crate::container::Version::V1 => "v1",
            crate::container::Version::V2 => "v2",
        };
        let _ = writeln!(out, "version: {}", version);
        let _ = writeln!(out, "groups: {}", groups.len());
        for g in groups.iter() {
            let kind = match g.kind {
                GroupType::Iommu => "iommu",
                GroupType::EmulatedIommu => "emulated",
                GroupType::NoIommu => "noiommu",
            };
            let _ = write!(out, "group {}: {}", g.id, kind);
            if let Some(d) = g.domain {
                let _ = write!(out, " domain={}", d);
            }
            let scope = if g.pinned_scope { "pinned" } else { "all" };
            let _ = writeln!(out, " dirty_scope={}", scope);
        }
        let _ = writeln!(out, "domains: {}", domains.len());
        for d in domains.iter() {
            let _ = writeln!(
                out,
                "domain {}: groups={} page_sizes={:#x} aperture={:#x}-{:#x} enforce_cache_coherency={}",
                d.index,
                d.groups,
                d.pgsize_bitmap,
                d.aperture.start,
                d.aperture.last,
                yes_no(d.coherent)
            );
        }
        let _ = writeln!(out, "page_sizes: {:#x} (smallest {:#x})", pgsize_bitmap, min_pgsize);
        let _ = writeln!(out, "enforce_cache_coherency: {}", yes_no(coherent));
        let _ = write!(out, "iova_ranges:");
        if ranges.is_empty() {
            let _ = write!(out, " any (no IOMMU domain)");
        }
        for r in ranges.iter() {
            let _ = write!(out, " {:#x}-{:#x}", r.start, r.last);
        }
        let _ = writeln!(out);
        Ok(())
    }

    /// `accounting`: the locked memory the container's mappings hold charged, per owner, and the
    /// invariant of `account.rs` over the whole container.
    fn show_accounting(&self, out: &mut SeqFile) -> Result {
        let mut owners: KVec<(Arc<MmOwner>, u64)> = KVec::with_capacity(MAX_OWNERS, GFP_KERNEL)?;
        let (mut mappings, mut charged, mut vendor_own, mut others) = (0u64, 0u64, 0u64, 0u64);
        let (iommu_locked, dma_avail, in_flight) = {
            let inner = self.inner.lock();
            for m in inner.mappings.iter() {
                let pages = m.account.pages();
                mappings = mappings.saturating_add(1);
                charged = charged.saturating_add(pages);
                vendor_own = vendor_own.saturating_add(m.vendor_pins_in(PinCharge::Own));
                if let Some(o) = owners.iter_mut().find(|(o, _)| Arc::ptr_eq(o, m.account.owner())) {
                    o.1 = o.1.saturating_add(pages);
                } else if owners.len() < MAX_OWNERS {
                    // Within the capacity: no allocation under the mutex.
                    owners.push((m.account.owner().clone(), pages), GFP_KERNEL)?;
                } else {
                    others = others.saturating_add(pages);
                }
            }
            (inner.iommu_locked, inner.dma_avail, inner.in_flight)
        };
        let expected = iommu_locked.saturating_add(vendor_own);
        let _ = writeln!(out, "mappings: {}", mappings);
        let _ = writeln!(out, "dma_avail: {}", dma_avail);
        let _ = writeln!(out, "busy: {}", in_flight);
        let _ = writeln!(out, "charged: {}", charged);
        let _ = writeln!(out, "iommu_locked: {}", iommu_locked);
        let _ = writeln!(out, "vendor_own: {}", vendor_own);
        if charged == expected {
            let _ = writeln!(out, "invariant: ok (charged == iommu_locked + vendor_own)");
        } else {
            let _ = writeln!(
                out,
                "invariant: VIOLATED (charged {} != iommu_locked {} + vendor_own {})",
                charged, iommu_locked, vendor_own
            );
        }
        for (o, pages) in owners.iter() {
            let _ = writeln!(
                out,
                "owner pid={} comm={} charged={} locked_vm={}",
                o.tgid(),
                o.comm(),
                pages,
                o.locked_vm()
            );
        }
        if others != 0 {
            let _ = writeln!(out, "owner others charged={}", others);
        }
        Ok(())
    }

    /// `dirty`: dirty tracking and its reports.
    fn show_dirty(&self, out: &mut SeqFile) -> Result {
        let (tracking, pgsize, groups_all, reports) = {
            let inner = self.inner.lock();
            (inner.dirty_tracking, inner.min_pgsize(), inner.non_pinned_groups, inner.reports)
        };
        let (mut marked, mut vendor_pinned, mut all_once, mut marks_bytes) = (0u64, 0u64, 0u64, 0u64);
        let mut counts_wrong = 0u64;
        self.walk_mappings(
            |m| {
                let (mut n, mut bytes, mut counts_hold) = (0u64, 0u64, true);
                if let Some(d) = m.records.dirty() {
                    d.for_each_in(0, u64::MAX, &mut |_| n = n.saturating_add(1));
                    bytes = d.footprint() as u64;
                    counts_hold = d.counts_hold();
                }
                (n, bytes, counts_hold, m.vendor_pins.iter().count() as u64, m.all_dirty_once)
            },
            |(n, bytes, counts_hold, pins, all)| {
                marked = marked.saturating_add(n);
                marks_bytes = marks_bytes.saturating_add(bytes);
                counts_wrong = counts_wrong.saturating_add(u64::from(!counts_hold));
                vendor_pinned = vendor_pinned.saturating_add(pins);
                all_once = all_once.saturating_add(u64::from(all));
                true
            },
        )?;
        let _ = writeln!(out, "tracking: {}", if tracking { "on" } else { "off" });
        let _ = writeln!(out, "page_size: {}", pgsize);
        let _ = writeln!(out, "marked_pending: {}", marked);
        let _ = writeln!(out, "marks_bytes: {}", marks_bytes);
        // Per mapping, the chunk counts of `DirtyPages` agree with its tables (dirty.rs).
        if counts_wrong == 0 {
            let _ = writeln!(out, "marks_invariant: ok (chunks, fresh chunks counted)");
        } else {
            let _ = writeln!(out, "marks_invariant: VIOLATED in {} mappings", counts_wrong);
        }
        let _ = writeln!(out, "vendor_pinned: {}", vendor_pinned);
        let _ = writeln!(out, "all_dirty_once: {}", all_once);
        let _ = writeln!(out, "groups_dirtying_all: {}", groups_all);
        let _ = writeln!(out, "reports: {}", reports.made);
        let _ = writeln!(out, "bytes_written: {}", reports.bytes);
        Ok(())
    }

    /// `vendor`: the vendor devices and their `dma_unmap` notifications.
    fn show_vendor(&self, out: &mut SeqFile) -> Result {
        let s = self.devices.stats();
        let _ = writeln!(out, "devices: {}", s.devices);
        let _ = writeln!(out, "notifications: {}", s.notifications);
        let _ = writeln!(out, "retries: {}", s.retries);
        let _ = writeln!(out, "busy_refusals: {}", s.refusals);
        Ok(())
    }
}

/// A line of `mappings`, copied from a mapping.
struct MappingLine {
    range: IovaRange,
    vaddr: Option<u64>,
    prot: Prot,
    charged: u64,
    vendor_pins: u64,
    iommu_mapped: bool,
    busy: Busy,
    /// Records of pinned runs kept (`pinned_runs.rs`) and their bytes.
    runs: (u64, u64),
    /// Whether it is mapped as one physically contiguous run.
    one_run: bool,
}

impl MappingLine {
    fn of(m: &mut DmaMapping) -> Self {
        Self {
            range: m.range,
            vaddr: (!m.vaddr_invalid).then_some(m.vaddr),
            prot: m.prot,
            charged: m.account.pages(),
            vendor_pins: m.vendor_pins.iter().count() as u64,
            iommu_mapped: m.iommu_mapped,
            busy: m.busy,
            runs: m.records.runs().map_or((0, 0), |r| (r.len() as u64, r.footprint() as u64)),
            one_run: m.one_run,
        }
    }

    fn pages(&self) -> u64 {
        self.range.size().unwrap_or(u64::MAX) >> PAGE_SHIFT
    }

    fn write(&self, out: &mut SeqFile) {
        let _ = write!(out, "{:#x}-{:#x} ", self.range.start, self.range.last);
        let _ = match self.vaddr {
            Some(v) => write!(out, "{:#x}", v),
            None => write!(out, "invalid"),
        };
        let r = if self.prot.read { 'r' } else { '-' };
        let w = if self.prot.write { 'w' } else { '-' };
        let _ = write!(
            out,
            " {}{} {} {} {} {}",
            r,
            w,
            self.pages(),
            self.charged,
            self.vendor_pins,
            yes_no(self.iommu_mapped)
        );
        // A busy mapping (map.rs) shows its husk or, marked for unmapping, itself.
        let _ = match self.busy {
            Busy::No => writeln!(out),
            Busy::Mapping => writeln!(out, " busy=mapping"),
            Busy::Unmapping => writeln!(out, " busy=unmapping"),
            Busy::Removing => writeln!(out, " busy=removing"),
        };
    }
}

/// The total line of `mappings`.
#[derive(Default)]
struct MappingTotals {
    mappings: u64,
    pages: u64,
    charged: u64,
    vendor_pins: u64,
    iommu_mapped: u64,
    runs: u64,
    run_bytes: u64,
    one_run: u64,
}

impl MappingTotals {
    fn add(&mut self, l: &MappingLine) {
        self.mappings = self.mappings.saturating_add(1);
        self.pages = self.pages.saturating_add(l.pages());
        self.charged = self.charged.saturating_add(l.charged);
        self.vendor_pins = self.vendor_pins.saturating_add(l.vendor_pins);
        self.iommu_mapped = self.iommu_mapped.saturating_add(u64::from(l.iommu_mapped));
        self.runs = self.runs.saturating_add(l.runs.0);
        self.run_bytes = self.run_bytes.saturating_add(l.runs.1);
        self.one_run = self.one_run.saturating_add(u64::from(l.one_run));
    }
}

/// A group line of `groups`.
struct GroupLine {
    id: i32,
    kind: GroupType,
    domain: Option<usize>,
    pinned_scope: bool,
}

/// A domain line of `groups` (`key` only matches groups to their domain; it is not shown).
struct DomainLine {
    index: usize,
    key: usize,
    groups: usize,
    pgsize_bitmap: u64,
    aperture: IovaRange,
    coherent: bool,
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
