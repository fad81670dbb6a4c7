// SPDX-License-Identifier: GPL-2.0
/*
 * The memory-churn fuzzer (tests/churn.h) against our backend, with every scenario: seeded random
 * sequences of maps, unmaps, dirty tracking, vendor pins, group joins and leaves, remaps of the
 * memory behind mapped vaddrs (anonymous, THP, hugetlb, an edu BAR, holes), fork children and
 * processes exiting with everything open, with the pins and VmLck checked after every step.
 * Bounded by VIR_CHURN_STEPS (default 100000) and VIR_FUZZ_SECONDS (default 3000). A failed
 * sequence is reported and the run goes on with the next one, up to VIR_CHURN_MAX_FAILURES (10). The seed
 * (VIR_FUZZ_SEED, fresh if not given) is printed first and each sequence's seed goes to the kernel
 * log: `make fuzz VIR_FUZZ_SEED=<seed>` replays a run, or a failing sequence given its own seed.
 */
#include "kselftest_harness.h"
#include "churn.h"

FIXTURE(long_running) {
	int unused;
};

FIXTURE_SETUP(long_running)
{
}

FIXTURE_TEARDOWN(long_running)
{
}

TEST_F_TIMEOUT(long_running, churn, 86400)
{
	const char *e;
	struct churn c = {
		.seed = churn_seed(),
		.max_steps = (e = getenv("VIR_CHURN_STEPS")) ? atol(e) : 100000,
		.seconds = (e = getenv("VIR_FUZZ_SECONDS")) ? atol(e) : 3000,
		.rust = 1,
		.module = RUST_MODULE,
		.trace = (e = getenv("VIR_CHURN_TRACE")) && atoi(e),
		.max_failures = (e = getenv("VIR_CHURN_MAX_FAILURES")) ? atoi(e) : 10,
		.exact_every = (e = getenv("VIR_CHURN_EXACT")) && atoi(e) ? 1 : 8,
		.avoid_taint = (e = getenv("VIR_CHURN_AVOID_TAINT")) && atoi(e),
	};

	ASSERT_EQ(BACKEND_RUST, vfio_backend());
	ASSERT_EQ(0, churn_run(&c));
}

TEST_HARNESS_MAIN
