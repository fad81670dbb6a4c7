// SPDX-License-Identifier: GPL-2.0
/*
 * The memory-churn fuzzer (tests/churn.h) in `make check`, against both backends: a bounded run
 * (VIR_CHURN_DIFF_STEPS, default 2000 steps) with the boot's seed (VIR_FUZZ_SEED, which the guest
 * draws once per boot unless given), without the scenarios where 6.12 type1 is known to answer
 * differently (churn.h; Documentation/reliability.rst, Differential). Every step asserts the
 * pins and VmLck the model expects; each sequence RECORDs digests of its steps' results, of VmLck
 * and pin counts after every step, and of the dirty bitmaps read, which the report compares
 * between the type1 and the rust run.
 */
#include "kselftest_harness.h"
#include "churn.h"

FIXTURE(churn) {
	int unused;
};

FIXTURE_SETUP(churn)
{
}

FIXTURE_TEARDOWN(churn)
{
}

TEST_F_TIMEOUT(churn, differential, 900)
{
	const char *e = getenv("VIR_CHURN_DIFF_STEPS");
	struct churn c = {
		.seed = churn_seed(),
		.max_steps = e ? atol(e) : 2000,
		.seconds = 900,
		.diff = 1,
		.rust = vfio_backend() == BACKEND_RUST,
		.module = backend_module(vfio_backend()),
		.trace = (e = getenv("VIR_CHURN_TRACE")) && atoi(e),
		.exact_every = 1,
	};

	ASSERT_EQ(0, churn_run(&c));
}

TEST_HARNESS_MAIN
