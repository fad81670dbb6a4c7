// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit suite "vfio_iommu_rust": the module's pure logic (IOVA ranges and spaces, dirty bitmap bit
 * math, user bitmap checks, the sparse bitmap of dirty marks, domain page sizes), run when the
 * module loads on a CONFIG_KUNIT kernel. The 6.12 kernel crate has no Rust KUnit macros, so the
 * cases are written in Rust (kunit_tests.rs) as functions returning 0, or the line of the first
 * failed check, and registered here.
 */
#include <kunit/test.h>

/*
 * The cases, in the order of the kunit_suite! list of kunit_tests.rs: scripts/build-module.sh
 * fails the build if the two lists differ.
 */
#define VIR_CASES(X)	\
	X(iova_range)	\
	X(iova_list)	\
	X(bitmap_bits)	\
	X(user_bitmap)	\
	X(dirty_chunks)	\
	X(dirty_ranges)	\
	X(dirty_top)	\
	X(dirty_words)	\
	X(dirty_clear)	\
	X(dirty_period)	\
	X(dirty_exact)	\
	X(pgsizes)	\
	X(pinned_runs)

#define VIR_DECLARE(name) int vir_kunit_##name(void);
VIR_CASES(VIR_DECLARE)

#define VIR_CASE(name)							\
	static void name(struct kunit *test)				\
	{								\
		int line = vir_kunit_##name();				\
									\
		KUNIT_EXPECT_EQ_MSG(test, line, 0, "check at kunit_tests.rs:%d failed", line); \
	}
VIR_CASES(VIR_CASE)

#define VIR_KUNIT_CASE(name) KUNIT_CASE(name),
static struct kunit_case vir_cases[] = {
	VIR_CASES(VIR_KUNIT_CASE)
	{}
};

static struct kunit_suite vir_suite = {
	.name = "vfio_iommu_rust",
	.test_cases = vir_cases,
};
kunit_test_suite(vir_suite);
