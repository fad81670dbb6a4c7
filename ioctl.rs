// SPDX-License-Identifier: GPL-2.0

//! The type1 container uAPI (`include/uapi/linux/vfio.h`) on top of [`Container`].
//!
//! This is the backend's face to userspace, in the spirit of iommufd's `vfio_compat.c`: it
//! answers `VFIO_CHECK_EXTENSION`, copies ioctl arguments in and out with the `argsz` protocol,
//! validates flags, and leaves range checks to the container. The backend is registered for
//! `VFIO_TYPE1_IOMMU` (1) and `VFIO_TYPE1v2_IOMMU` (3) so unmodified userspace selects it.
//!
//! Errors are type1's (6.12) for every input, except where Documentation/status.rst lists a
//! deliberate difference.

use crate::{
    bindings, compat,
    container::{Container, Info, MapRequest, UnmapRequest, Version},
    domain::Prot,
    iova::IovaRange,
    params,
    user_bitmap::{self, UserBitmap},
};
use core::mem::size_of;
use kernel::prelude::*;

/// Serves a container ioctl other than `VFIO_CHECK_EXTENSION`.
#[unsafe(link_section = ".text.vir_hot")]
pub(crate) fn container_ioctl(container: &Container, cmd: u32, arg: usize) -> Result<i64> {
    match cmd {
        bindings::VFIO_IOMMU_GET_INFO => get_info(container, arg),
        bindings::VFIO_IOMMU_MAP_DMA => map_dma(container, arg),
        bindings::VFIO_IOMMU_UNMAP_DMA => unmap_dma(container, arg),
        bindings::VFIO_IOMMU_DIRTY_PAGES => dirty_pages(container, arg),
        _ => Err(ENOTTY),
    }
    .map(|()| 0)
}

/// Answers `VFIO_CHECK_EXTENSION` for `extension`: 1 if supported, else 0. `container` is `None`
/// before `VFIO_SET_IOMMU` selected a backend (and then everything is 0 while `serve` is N).
pub(crate) fn check_extension(container: Option<&Container>, extension: u64) -> i64 {
    let Ok(ext) = u32::try_from(extension) else {
        return 0;
    };
    // Standing aside (`serve=N`): the core asks the next backend for a new container.
    if container.is_none() && !params::serve() {
        return 0;
    }
    let yes = match ext {
        bindings::VFIO_TYPE1_IOMMU | bindings::VFIO_TYPE1v2_IOMMU => true,
        bindings::VFIO_UNMAP_ALL => true,
        bindings::VFIO_UPDATE_VADDR | bindings::VFIO_DMA_CC_IOMMU => {
            container.is_some_and(|c| c.has_extension(ext))
        }
        // Nesting is not offered (type1 of 6.12 claims it but cannot attach on x86).
        _ => false,
    };
    yes.into()
}

/// `VFIO_IOMMU_MAP_DMA`.
#[inline(never)]
fn map_dma(container: &Container, arg: usize) -> Result {
    let minsz = size_of::<bindings::vfio_iommu_type1_dma_map>();
    let map: bindings::vfio_iommu_type1_dma_map = compat::user_slice(arg, minsz).reader().read()?;
    let mask = bindings::VFIO_DMA_MAP_FLAG_READ
        | bindings::VFIO_DMA_MAP_FLAG_WRITE
        | bindings::VFIO_DMA_MAP_FLAG_VADDR;
    if (map.argsz as usize) < minsz || map.flags & !mask != 0 {
        return Err(EINVAL);
    }
    let prot = Prot {
        read: map.flags & bindings::VFIO_DMA_MAP_FLAG_READ != 0,
        write: map.flags & bindings::VFIO_DMA_MAP_FLAG_WRITE != 0,
    };
    let set_vaddr = map.flags & bindings::VFIO_DMA_MAP_FLAG_VADDR != 0;
    let any_prot = prot.read || prot.write;
    if any_prot == set_vaddr {
        return Err(EINVAL);
    }
    container.map(&MapRequest {
        iova: map.iova,
        vaddr: map.vaddr,
        size: map.size,
        prot: any_prot.then_some(prot),
    })
}

/// `VFIO_IOMMU_UNMAP_DMA`: on success the unmapped size is written back.
#[inline(never)]
fn unmap_dma(container: &Container, arg: usize) -> Result {
    let minsz = size_of::<bindings::vfio_iommu_type1_dma_unmap>();
    let (mut reader, mut writer) = compat::user_slice(arg, minsz).reader_writer();
    let mut unmap: bindings::vfio_iommu_type1_dma_unmap = reader.read()?;
    let mask = bindings::VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP
        | bindings::VFIO_DMA_UNMAP_FLAG_VADDR
        | bindings::VFIO_DMA_UNMAP_FLAG_ALL;
    if (unmap.argsz as usize) < minsz || unmap.flags & !mask != 0 {
        return Err(EINVAL);
    }
    let dirty_bitmap = unmap.flags & bindings::VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP != 0;
    let all = unmap.flags & bindings::VFIO_DMA_UNMAP_FLAG_ALL != 0;
    let vaddr = unmap.flags & bindings::VFIO_DMA_UNMAP_FLAG_VADDR != 0;
    if dirty_bitmap && (all || vaddr) {
        return Err(EINVAL);
    }
    let bitmap = if dirty_bitmap {
        if (unmap.argsz as usize) < minsz + size_of::<bindings::vfio_bitmap>() {
            return Err(EINVAL);
        }
        let at = arg.checked_add(minsz).ok_or(EFAULT)?;
        let b: bindings::vfio_bitmap =
            compat::user_slice(at, size_of::<bindings::vfio_bitmap>()).reader().read()?;
        let bitmap = UserBitmap {
            pgsize: b.pgsize,
            size: b.size,
            data: b.data as u64,
        };
        bitmap.validate(unmap.size)?;
        Some(bitmap)
    } else {
        None
    };
    // Before anything is unmapped, make sure the result can be written back (type1 unmaps, then
    // fails with EFAULT having reported nothing): rewrite the header as it is. This is a check,
    // not a guarantee: another thread can unmap or write-protect the header between this probe
    // and the final write, and then the unmap has happened and the call fails with EFAULT, as in
    // type1 (Documentation/status.rst).
    let probe = || compat::user_slice(arg, minsz).writer().write(&unmap_copy(&unmap));
    let size = container.unmap(
        &UnmapRequest {
            iova: unmap.iova,
            size: unmap.size,
            all,
            vaddr,
        },
        bitmap.as_ref(),
        probe,
    )?;
    unmap.size = size;
    writer.write(&unmap)
}

/// A copy of an unmap header (the generated struct is not `Copy` because of its flexible array).
fn unmap_copy(u: &bindings::vfio_iommu_type1_dma_unmap) -> bindings::vfio_iommu_type1_dma_unmap {
    bindings::vfio_iommu_type1_dma_unmap {
        argsz: u.argsz,
        flags: u.flags,
        iova: u.iova,
        size: u.size,
        data: Default::default(),
    }
}

/// `VFIO_IOMMU_DIRTY_PAGES` (v2 containers only): exactly one of START, STOP, GET_BITMAP.
#[unsafe(link_section = ".text.vir_hot")]
fn dirty_pages(container: &Container, arg: usize) -> Result {
    if container.version != Version::V2 {
        return Err(EACCES);
    }
    let minsz = size_of::<bindings::vfio_iommu_type1_dirty_bitmap>();
    let dirty: bindings::vfio_iommu_type1_dirty_bitmap =
        compat::user_slice(arg, minsz).reader().read()?;
    let mask = bindings::VFIO_IOMMU_DIRTY_PAGES_FLAG_START
        | bindings::VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP
        | bindings::VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
    if (dirty.argsz as usize) < minsz || dirty.flags & !mask != 0 || dirty.flags.count_ones() != 1 {
        return Err(EINVAL);
    }
    match dirty.flags {
        bindings::VFIO_IOMMU_DIRTY_PAGES_FLAG_START => container.set_dirty_tracking(true),
        bindings::VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP => container.set_dirty_tracking(false),
        _ => {
            let getsz = size_of::<bindings::vfio_iommu_type1_dirty_bitmap_get>();
            if (dirty.argsz as usize) - minsz < getsz {
                return Err(EINVAL);
            }
            let at = arg.checked_add(minsz).ok_or(EFAULT)?;
            let get: bindings::vfio_iommu_type1_dirty_bitmap_get =
                compat::user_slice(at, getsz).reader().read()?;
            let bitmap = UserBitmap {
                pgsize: get.bitmap.pgsize,
                size: get.bitmap.size,
                data: get.bitmap.data as u64,
            };
            // A range that wraps is EOVERFLOW (see status.rst); one may end at 2^64.
            if get.size != 0 {
                IovaRange::from_start_size(get.iova, get.size)?;
            }
            bitmap.validate(get.size)?;
            let range = IovaRange::from_start_size(get.iova, get.size)?;
            container.dirty_bitmap(&range, &bitmap)
        }
    }
}

/// Size of `struct vfio_iommu_type1_info` and the offset of its first capability.
const INFO_SIZE: usize = size_of::<bindings::vfio_iommu_type1_info>();

/// `VFIO_IOMMU_GET_INFO`: the header, then the capability chain if `argsz` leaves room for it;
/// otherwise `argsz` tells the size needed (type1's protocol).
#[inline(never)]
fn get_info(container: &Container, arg: usize) -> Result {
    // minsz: argsz, flags and iova_pgsizes.
    let minsz = 16;
    let mut reader = compat::user_slice(arg, minsz).reader();
    let argsz: u32 = reader.read()?;
    if (argsz as usize) < minsz {
        return Err(EINVAL);
    }
    let info = container.info()?;
    let caps = build_caps(&info)?;
    let mut out = bindings::vfio_iommu_type1_info {
        argsz,
        flags: bindings::VFIO_IOMMU_INFO_PGSIZES,
        iova_pgsizes: info.pgsize_bitmap,
        cap_offset: 0,
        pad: 0,
    };
    if !caps.is_empty() {
        out.flags |= bindings::VFIO_IOMMU_INFO_CAPS;
        let needed = INFO_SIZE + caps.len();
        if (argsz as usize) < needed {
            out.argsz = u32::try_from(needed).map_err(|_| EINVAL)?;
        } else {
            let at = arg.checked_add(INFO_SIZE).ok_or(EFAULT)?;
            compat::user_slice(at, caps.len()).writer().write_slice(&caps)?;
            out.cap_offset = INFO_SIZE as u32;
        }
    }
    // The header as laid out in `struct vfio_iommu_type1_info`, of which the first `argsz` bytes
    // (at least 16) are copied back.
    let mut bytes = [0u8; INFO_SIZE];
    bytes[0..4].copy_from_slice(&out.argsz.to_ne_bytes());
    bytes[4..8].copy_from_slice(&out.flags.to_ne_bytes());
    bytes[8..16].copy_from_slice(&out.iova_pgsizes.to_ne_bytes());
    bytes[16..20].copy_from_slice(&out.cap_offset.to_ne_bytes());
    let len = (argsz as usize).min(INFO_SIZE);
    compat::user_slice(arg, len).writer().write_slice(&bytes[..len])
}

/// The capability chain of `VFIO_IOMMU_GET_INFO`, laid out as it will be at offset
/// [`INFO_SIZE`], in type1's order: `MIGRATION` (dirty tracking: smallest page size only, 256 MiB
/// bitmaps; reported for v1 containers too, as type1 does), `DMA_AVAIL`, then `IOVA_RANGE` unless
/// the container has no IOMMU domain.
fn build_caps(info: &Info) -> Result<KVec<u8>> {
    let mut caps = CapChain::new();
    let mut migration = KVec::new();
    migration.extend_from_slice(&0u32.to_ne_bytes(), GFP_KERNEL)?; // flags
    migration.extend_from_slice(&0u32.to_ne_bytes(), GFP_KERNEL)?; // padding
    migration.extend_from_slice(&info.min_pgsize.to_ne_bytes(), GFP_KERNEL)?;
    migration.extend_from_slice(&user_bitmap::MAX_BITMAP_BYTES.to_ne_bytes(), GFP_KERNEL)?;
    caps.add(bindings::VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, &migration)?;
    let mut avail = KVec::new();
    avail.extend_from_slice(&info.dma_avail.to_ne_bytes(), GFP_KERNEL)?;
    caps.add(bindings::VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, &avail)?;
    if !info.iova_ranges.is_empty() {
        let n = u32::try_from(info.iova_ranges.len()).map_err(|_| EINVAL)?;
        let mut body = KVec::new();
        body.extend_from_slice(&n.to_ne_bytes(), GFP_KERNEL)?;
        body.extend_from_slice(&0u32.to_ne_bytes(), GFP_KERNEL)?;
        for r in info.iova_ranges.iter() {
            body.extend_from_slice(&r.start.to_ne_bytes(), GFP_KERNEL)?;
            body.extend_from_slice(&r.last.to_ne_bytes(), GFP_KERNEL)?;
        }
        caps.add(bindings::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, &body)?;
    }
    Ok(caps.buf)
}

/// A chain of `struct vfio_info_cap_header`-prefixed capabilities, each 8-byte aligned and
/// zero-padded, linked by offsets from the start of the info struct (`vfio_info_cap_add` +
/// `vfio_info_cap_shift`).
struct CapChain {
    buf: KVec<u8>,
    /// Offset in `buf` of the last header's `next` field.
    last_next: Option<usize>,
}

impl CapChain {
    fn new() -> Self {
        Self {
            buf: KVec::new(),
            last_next: None,
        }
    }

    /// Appends capability `id` (version 1) with `body` after its header.
    fn add(&mut self, id: u32, body: &[u8]) -> Result {
        let at = self.buf.len();
        let offset = u32::try_from(INFO_SIZE + at).map_err(|_| EINVAL)?;
        if let Some(next) = self.last_next {
            self.buf[next..next + 4].copy_from_slice(&offset.to_ne_bytes());
        }
        let id = u16::try_from(id).map_err(|_| EINVAL)?;
        self.buf.extend_from_slice(&id.to_ne_bytes(), GFP_KERNEL)?;
        self.buf.extend_from_slice(&1u16.to_ne_bytes(), GFP_KERNEL)?;
        self.buf.extend_from_slice(&0u32.to_ne_bytes(), GFP_KERNEL)?;
        self.buf.extend_from_slice(body, GFP_KERNEL)?;
        let pad = (8 - self.buf.len() % 8) % 8;
        self.buf.extend_with(pad, 0, GFP_KERNEL)?;
        self.last_next = Some(at + 4);
        Ok(())
    }
}
