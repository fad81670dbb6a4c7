// SPDX-License-Identifier: GPL-2.0

//! KUnit cases of the module's pure logic, registered by `bindings/kunit.c` (suite
//! `vfio_iommu_rust`). Each returns 0 if every check holds, else the line of the first that does
//! not. Built only on `CONFIG_KUNIT` kernels.

use crate::{
    dirty::{self, UserBitmap},
    iova::{eoverflow, IovaList, IovaRange},
};
use kernel::prelude::*;

/// Returns the current line from the calling case if `$cond` does not hold.
macro_rules! check {
    ($cond:expr) => {
        if !$cond {
            return line!() as i32;
        }
    };
}

const TOP: u64 = u64::MAX;

fn r(start: u64, last: u64) -> IovaRange {
    IovaRange { start, last }
}

/// Inclusive ranges: construction, sizes up to the top of the address space, overlap.
#[no_mangle]
extern "C" fn vir_kunit_iova_range() -> i32 {
    check!(IovaRange::from_start_size(0x1000, 0) == Err(EINVAL));
    check!(IovaRange::from_start_size(0x1000, 0x1000) == Ok(r(0x1000, 0x1fff)));
    // Ending exactly at the top is fine; one byte more wraps.
    check!(IovaRange::from_start_size(TOP - 0xfff, 0x1000) == Ok(r(TOP - 0xfff, TOP)));
    check!(IovaRange::from_start_size(TOP - 0xfff, 0x2000) == Err(eoverflow()));
    check!(IovaRange::from_start_size(TOP, TOP) == Err(eoverflow()));
    check!(r(0, TOP).size().is_none());
    check!(r(TOP, TOP).size() == Some(1));
    check!(IovaRange::new(2, 1).is_none());
    check!(r(0x1000, 0x1fff).contains(&r(0x1000, 0x1fff)));
    check!(!r(0x1000, 0x1fff).contains(&r(0x1000, 0x2000)));
    check!(r(0x1000, 0x1fff).overlaps(&r(0x1fff, 0x3000)));
    check!(!r(0x1000, 0x1fff).overlaps(&r(0x2000, 0x3000)));
    check!(r(0, 10).intersection(&r(5, 20)) == Some(r(5, 10)));
    check!(r(0, 10).intersection(&r(11, 20)).is_none());
    0
}

/// The usable IOVA space: apertures intersected, reserved regions cut out.
#[no_mangle]
extern "C" fn vir_kunit_iova_list() -> i32 {
    let aperture = r(0, (1 << 48) - 1);
    let msi = r(0xfee0_0000, 0xfeef_ffff);
    let Ok(l) = IovaList::compute([aperture].into_iter(), [msi].iter()) else {
        return line!() as i32;
    };
    check!(l.ranges() == [r(0, 0xfedf_ffff), r(0xfef0_0000, (1 << 48) - 1)]);
    check!(l.allows(&r(0x1000, 0x1fff)));
    check!(!l.allows(&r(0xfedf_f000, 0xfee0_0fff)));
    check!(!l.allows(&r(1 << 48, 1 << 48)));
    // Two apertures: their intersection. Disjoint ones leave nothing: EINVAL.
    let Ok(l) = IovaList::compute([aperture, r(0x1000, TOP)].into_iter(), [].iter()) else {
        return line!() as i32;
    };
    check!(l.ranges() == [r(0x1000, (1 << 48) - 1)]);
    check!(IovaList::compute([r(0, 9), r(10, 20)].into_iter(), [].iter()).is_err());
    // Holes at the edges, and one that covers everything.
    let Ok(l) = IovaList::compute([r(0, 99)].into_iter(), [r(0, 9), r(90, 99)].iter()) else {
        return line!() as i32;
    };
    check!(l.ranges() == [r(10, 89)]);
    check!(IovaList::compute([r(0, 99)].into_iter(), [r(0, 200)].iter()).is_err());
    // The whole 64-bit space, minus its last page.
    let Ok(l) = IovaList::compute([r(0, TOP)].into_iter(), [r(TOP - 0xfff, TOP)].iter()) else {
        return line!() as i32;
    };
    check!(l.ranges() == [r(0, TOP - 0x1000)]);
    // No domain: no list, every IOVA allowed.
    let Ok(l) = IovaList::compute(core::iter::empty(), [msi].iter()) else {
        return line!() as i32;
    };
    check!(l.ranges().is_empty() && l.allows(&r(TOP, TOP)));
    0
}

/// Bit ranges of a little-endian bitmap, and bitmap sizes in whole words.
#[no_mangle]
extern "C" fn vir_kunit_bitmap_bits() -> i32 {
    let mut b = [0u8; 16];
    dirty::set_bits(&mut b, 3, 4);
    check!(b[0] == 0x08);
    dirty::set_bits(&mut b, 6, 19);
    check!(b[0] == 0xc8 && b[1] == 0xff && b[2] == 0x07);
    dirty::set_bits(&mut b, 64, 128);
    check!(b[8..] == [0xff; 8]);
    check!(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) == 0x07ffc8);
    let mut c = [0u8; 2];
    dirty::set_bits(&mut c, 5, 5);
    check!(c == [0, 0]);
    check!(dirty::bitmap_bytes(0) == 0);
    check!(dirty::bitmap_bytes(1) == 8);
    check!(dirty::bitmap_bytes(64) == 8);
    check!(dirty::bitmap_bytes(65) == 16);
    0
}

/// type1's checks of a user bitmap against the range it describes.
#[no_mangle]
extern "C" fn vir_kunit_user_bitmap() -> i32 {
    let ok = |pgsize, size, range| {
        UserBitmap {
            pgsize,
            size,
            data: 0x10_0000,
        }
        .validate(range)
        .is_ok()
    };
    check!(ok(4096, 8, 64 * 4096));
    check!(!ok(4096, 8, 65 * 4096));
    check!(ok(4096, 16, 65 * 4096));
    check!(!ok(0, 8, 4096));
    check!(!ok(3000, 8, 4096));
    check!(!ok(4096, 0, 4096));
    check!(!ok(4096, 8, 0));
    check!(!ok(4096, dirty::MAX_BITMAP_BYTES + 8, 4096));
    check!(ok(4096, dirty::MAX_BITMAP_BYTES, 4096));
    let kernel = UserBitmap {
        pgsize: 4096,
        size: 8,
        data: 0xffff_8880_0000_0000,
    };
    check!(kernel.validate(4096).is_err());
    0
}

/// Page-size bitmaps of domains: sizes below `PAGE_SIZE` fold into it, the smallest size is the
/// unit, and an empty intersection (which an attach refuses) never makes a shift of 64.
#[no_mangle]
extern "C" fn vir_kunit_pgsizes() -> i32 {
    use crate::domain::{fold_pgsizes, min_pgsize};
    let intel = 0x4020_1000u64; // 4K, 2M, 1G
    check!(fold_pgsizes(intel) == intel);
    check!(fold_pgsizes(0x0000_1e00) == 0x1000); // 512..4K folds to 4K
    check!(fold_pgsizes(0x0020_0800) == 0x0020_1000);
    check!(min_pgsize(intel) == 0x1000);
    check!(min_pgsize(0x0020_0000) == 0x0020_0000);
    check!(min_pgsize(1 << 63) == 1 << 63);
    check!(min_pgsize(0) == crate::mm::PAGE_SIZE);
    // 4K-only and 2M-only domains share nothing.
    check!(fold_pgsizes(0x1000 & 0x0020_0000) == 0);
    0
}
