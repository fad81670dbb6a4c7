// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit suite "vfio_iommu_rust": the module's pure logic (IOVA ranges and spaces, dirty bitmap bit
 * math, user bitmap checks, the sparse bitmap of dirty marks, domain page sizes), run when the
 * module loads on a CONFIG_KUNIT kernel. The 6.12 kernel crate has no Rust KUnit macros, so the
 * cases are written in Rust (kunit_tests.rs) as functions returning 0, or the line of the first
 * failed check, and registered here.
 */
#include <kunit/test.h>

int vir_kunit_iova_range(void);
int vir_kunit_iova_list(void);
int vir_kunit_bitmap_bits(void);
int vir_kunit_user_bitmap(void);
int vir_kunit_dirty_chunks(void);
int vir_kunit_dirty_ranges(void);
int vir_kunit_dirty_top(void);
int vir_kunit_dirty_words(void);
int vir_kunit_dirty_clear(void);
int vir_kunit_dirty_period(void);
int vir_kunit_dirty_exact(void);
int vir_kunit_pgsizes(void);
int vir_kunit_pinned_runs(void);

#define VIR_CASE(name)							\
	static void name(struct kunit *test)				\
	{								\
		int line = vir_kunit_##name();				\
									\
		KUNIT_EXPECT_EQ_MSG(test, line, 0, "check at kunit_tests.rs:%d failed", line); \
	}

VIR_CASE(iova_range)
VIR_CASE(iova_list)
VIR_CASE(bitmap_bits)
VIR_CASE(user_bitmap)
VIR_CASE(dirty_chunks)
VIR_CASE(dirty_ranges)
VIR_CASE(dirty_top)
VIR_CASE(dirty_words)
VIR_CASE(dirty_clear)
VIR_CASE(dirty_period)
VIR_CASE(dirty_exact)
VIR_CASE(pgsizes)
VIR_CASE(pinned_runs)

static struct kunit_case vir_cases[] = {
	KUNIT_CASE(iova_range),
	KUNIT_CASE(iova_list),
	KUNIT_CASE(bitmap_bits),
	KUNIT_CASE(user_bitmap),
	KUNIT_CASE(dirty_chunks),
	KUNIT_CASE(dirty_ranges),
	KUNIT_CASE(dirty_top),
	KUNIT_CASE(dirty_words),
	KUNIT_CASE(dirty_clear),
	KUNIT_CASE(dirty_period),
	KUNIT_CASE(dirty_exact),
	KUNIT_CASE(pgsizes),
	KUNIT_CASE(pinned_runs),
	{}
};

static struct kunit_suite vir_suite = {
	.name = "vfio_iommu_rust",
	.test_cases = vir_cases,
};
kunit_test_suite(vir_suite);
