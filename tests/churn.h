/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The memory-churn fuzzer engine, shared by tests/debug/churn_test.c (our backend, every scenario,
 * long runs) and tests/churn_diff_test.c (both backends in `make check`, a bounded run whose facts
 * the report compares).
 *
 * A run is a chain of sequences; sequence i has its own seed (the first one is the run's seed, the
 * next ones follow by splitmix64), so a failing sequence is replayed alone by giving its seed as
 * VIR_FUZZ_SEED. A sequence opens a v2 container (/dev/vfio/vfio) with the first edu device's
 * IOMMU group (G1) and/or the vir_mdev group (GM) and the vir_mdev device fd, then takes random
 * steps that interleave:
 *
 *   MAP_DMA / UNMAP_DMA (ranges of one or several mappings, bisecting ones, UNMAP_ALL, unmap with
 *   a dirty bitmap), DIRTY_PAGES START/STOP/GET_BITMAP, vendor pin/unpin/dma_rw through the
 *   vir_mdev device (VIR_MDEV_PIN/UNPIN/WRITE/READ), attach and detach of G1 and GM
 *   (VFIO_GROUP_SET_CONTAINER/UNSET_CONTAINER; the container is released with its last group),
 *   closing and reopening the vir_mdev device, and remaps of the memory behind mapped vaddrs
 *   (MAP_FIXED) between anonymous 4K memory, THP (MADV_HUGEPAGE on a 2M slot), hugetlb (2M), the
 *   second edu device's BAR (MMIO, mmapped from its vfio-pci device fd in a side container) and
 *   holes; a fork() whose child makes calls with the inherited fds and exits; and, for some
 *   sequences, the whole sequence runs in a child that exits with everything open.
 *
 * A model of the container (mappings, what the IOMMU pinned for each IOVA page and whether it was
 * RAM or MMIO, vendor pin references, the vendor driver's pin records, which process owns each
 * mapping) is kept in shared memory, so that fork children update it too. After every step:
 *
 *   - pins: the system's outstanding FOLL_PIN pages (pins_outstanding()) are exactly the baseline
 *     plus the RAM pages the IOMMU pinned for the mappings plus the distinct vendor-pinned pages;
 *   - VmLck of the calling process is exactly what both backends charge for its mappings: with an
 *     IOMMU domain the RAM pages pinned for it, without one the vendor-pinned pages. A mapping
 *     where a vendor pin holds another page than the IOMMU pin of its IOVA ("tainted": RAM over
 *     MMIO, or RAM that replaced the page the IOMMU pinned: the memory behind the vaddr changed
 *     between the two pins; the model tells by generations of the arena's pages) only gets the
 *     bounds 0 <= charge <= IOMMU RAM pages + vendor pins: ours charges such a vendor pin by
 *     itself, type1 does not and leaks in some of these cases (Documentation/status.rst); the
 *     backend's own invariant check (account.rs) is exact there;
 *
 * (the pins exactly after a vmstat refresh, which long runs only do every few checks: see
 * ch_check_level()), and after a sequence, with everything closed (or the process gone), the pins
 * are back to the baseline, VmLck is 0 and the backend's module holds only the side container's
 * reference.
 *
 * Every dirty report (GET_BITMAP, unmap with a dirty bitmap) is checked page by page against the
 * dirty model (churn_dirty.h): ours exactly, type1 for every page that must be dirty (its known
 * over-reports are counted, not failed).
 *
 * In differential mode (churn_diff_test) the scenarios where 6.12 type1 is known to answer
 * differently are not generated (look for c->diff: tainting vendor pins and joins, joins replaying
 * a mapping of an exited process, misbehaving drivers, unaligned pins), and each sequence ends with
 * a RECORD line of digests (step outcomes, VmLck and pin counts after every step, the dirty
 * model's answers), which the host's report compares between the type1 and the rust runs of the
 * same seed. Documentation/reliability.rst has the details and findings.
 *
 * The parts, in the order included below: churn_base.h (random numbers, measurements, reporting),
 * churn_model.h (the container model and the checks), churn_dirty.h (the dirty model),
 * churn_arena.h (remaps), churn_dma_steps.h and churn_env_steps.h (the steps); this file has the
 * configuration, the shared state and the sequences.
 */
#ifndef CHURN_H
#define CHURN_H

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include "vfio_test.h"
#include "mdev/vir_mdev.h"

#define CH_SLOTS	8			/* 2 MiB slots of the memory arena */
#define CH_SLOT_PAGES	512
#define CH_ARENA_PAGES	(CH_SLOTS * CH_SLOT_PAGES)
#define CH_IOVA		0x10000000ULL		/* the IOVA window mappings are made in */
#define CH_WIN_PAGES	16384			/* 64 MiB */
#define CH_MAXMAP	48
#define CH_MAXREC	64
#define CH_MAXOWN	250			/* owners (processes) per sequence */
#define CH_MAXHUGE	3			/* hugetlb slots at once (the guest has 16 pages) */
#define CH_RING		32			/* recent steps shown on failure */

enum { K_HOLE, K_RAM, K_MMIO };
static const char *const ch_kind_name[] = { "hole", "ram", "mmio" };

struct ch_map {
	uint32_t ipage;		/* first IOVA page, index into the window */
	uint32_t npages;
	uint32_t vpage;		/* first arena page */
	uint8_t used;
	uint8_t write;		/* mapped read/write (else read-only) */
	uint8_t owner;		/* the process that made it (0: the sequence's main process) */
	uint8_t iommu;		/* pinned and mapped for an IOMMU domain */
};

/* The model, in memory shared with the fork children. */
struct ch_shared {
	/* The arena: what backs each page now (for every process of the sequence: only the main
	 * process remaps, children inherit its layout). */
	uint8_t kind[CH_ARENA_PAGES];
	uint8_t huge[CH_SLOTS];		/* 1: hugetlb private, 2: hugetlb shared, 3: THP */
	/* The container. */
	uint8_t iommu_set;		/* VFIO_SET_IOMMU done (some group attached) */
	uint8_t g1_in, gm_in, dm_open, tracking, misbehave;
	struct ch_map map[CH_MAXMAP];
	uint8_t ikind[CH_WIN_PAGES];	/* what the IOMMU pinned at the page (while map.iommu) */
	uint16_t vref[CH_WIN_PAGES];	/* vendor pin references */
	uint8_t dirty[CH_WIN_PAGES];	/* the page's bit in its mapping's bitmap (churn_dirty.h) */
	uint8_t tainted[CH_WIN_PAGES];	/* a vendor pin of another page than the IOMMU's, ever, in this map */
	/* Generations of what backs each arena page (bumped by every remap and hole), and the
	 * generation the IOMMU pin and the first vendor pin of each IOVA page found: two pins hold
	 * the same page only if they found the same generation. */
	uint32_t gen[CH_ARENA_PAGES];
	uint32_t igen[CH_WIN_PAGES];
	uint32_t vgen[CH_WIN_PAGES];
	struct { uint32_t ipage, n; } rec[CH_MAXREC];	/* vir_mdev's pin records */
	int nrec;
	uint8_t alive[CH_MAXOWN];
	int nown;
	/* Progress and results. */
	long steps;			/* steps taken by every process of the run */
	long skipped;			/* steps not taken (excluded, or impossible in this state) */
	long ops[16], ops_ok[16];
	int failed;
	uint64_t h_ok, h_vmlck, h_pins, h_dirty;
	long reports, report_pages;	/* dirty reports checked against the model, their mapped pages */
	long over_reported;		/* type1's bits the model says are clean (its known over-reports) */
	long max_vmlck;
	double t_check;			/* seconds spent measuring pins and VmLck */
	double t_pins;			/* of which the pins */
	long checks, pin_checks, exact_checks;
	double t_op[16];		/* seconds in each kind of step, its check excluded */
	char ring[CH_RING][192];
	unsigned int ringpos;
};

/* The run's configuration and the per-process state. */
struct churn {
	/* configuration */
	unsigned long long seed;
	long max_steps;
	long seconds;
	int diff;			/* differential mode: exclusions and RECORDs */
	int rust;			/* the backend under test is ours */
	int trace;			/* log every step to the kernel log */
	int max_failures;		/* failed sequences to report before stopping (at least 1) */
	int exact_every;		/* exact pin checks: every Nth pin check (1: all) */
	int avoid_taint;		/* do not generate tainted mappings (a known bug of ours) */
	const char *module;		/* the backend's module */
	/* environment */
	int g1_id, gm_id;
	const char *vmdev;
	int sc, g2, d2;			/* the side container with the second edu device */
	unsigned long long bar_off;
	int bar_pages;
	long pins_base, refs_base;
	time_t end;
	char *arena;
	int kmsg;
	/* the sequence */
	struct ch_shared *S;
	int seq;
	unsigned long long seq_seed;
	int mc, g1, gm, dm;
	int me;				/* the owner id of this process */
	int child;			/* a fork child: container and vendor calls only */
	long seq_steps;
	unsigned long long rs;		/* the random state */
	char what[112];			/* the current step */
	int noted;			/* the step was taken (not skipped) */
	int last_err;			/* its result */
};

enum {
	OP_MAP, OP_UNMAP, OP_VPIN, OP_VUNPIN, OP_VRW, OP_DIRTY, OP_GROUP, OP_REMAP, OP_FORK,
	OP_MISBEHAVE, OP_N
};
static const char *const ch_op_name[OP_N] = {
	"map", "unmap", "vpin", "vunpin", "dma_rw", "dirty", "group", "remap", "fork", "misbehave",
};

#include "churn_base.h"
#include "churn_model.h"
#include "churn_dirty.h"
#include "churn_arena.h"
#include "churn_dma_steps.h"
#include "churn_env_steps.h"

/* --- sequences ---------------------------------------------------------------------------- */

static inline int ch_budget_left(struct churn *c)
{
	return c->S->steps < c->max_steps && (c->diff || time(NULL) < c->end) && !c->S->failed;
}

/* Opens the sequence's container, groups and vendor device and lays the arena out. */
static inline int ch_setup(struct churn *c)
{
	struct ch_shared *S = c->S;
	int start = ch_r(c, 10), s, err;

	c->mc = open("/dev/vfio/vfio", O_RDWR);
	c->g1 = open_group(c->g1_id);
	c->gm = open_group(c->gm_id);
	c->dm = -1;
	CH_CHECK(c, c->mc >= 0 && c->g1 >= 0 && c->gm >= 0, "opening the container and groups: %s",
		 strerror(errno));
	/* Anonymous memory, a THP slot or two, sometimes hugetlb or MMIO. */
	for (s = 0; s < CH_SLOTS; s++) {
		int how = ch_r(c, 8);

		how = how < 5 ? R_ANON : how < 6 ? R_THP : how < 7 ? R_HUGE : R_MMIO;
		if (ch_remap(c, s * CH_SLOT_PAGES, how == R_MMIO ? c->bar_pages : CH_SLOT_PAGES, how,
			     ch_r(c, 2)))
			return -1;
		if (how == R_MMIO && ch_remap(c, s * CH_SLOT_PAGES + c->bar_pages,
					      CH_SLOT_PAGES - c->bar_pages, R_ANON, 0))
			return -1;
	}
	ch_note(c, "setup: %s", start < 4 ? "edu and vir_mdev groups" :
			      start < 7 ? "vir_mdev group" : "edu group");
	if (start < 7) {
		err = vfio_errno(ioctl(c->gm, VFIO_GROUP_SET_CONTAINER, &c->mc));
		CH_CHECK(c, !err, "vir_mdev group SET_CONTAINER: %s", strerror(err));
		S->gm_in = 1;
	}
	if (start < 4 || start >= 7) {
		err = vfio_errno(ioctl(c->g1, VFIO_GROUP_SET_CONTAINER, &c->mc));
		CH_CHECK(c, !err, "edu group SET_CONTAINER: %s", strerror(err));
		S->g1_in = 1;
	}
	if (ch_set_iommu(c))
		return -1;
	if (S->gm_in && ch_open_dm(c))
		return -1;
	ch_result(c, 0);
	return ch_check(c);
}

/* Closes everything; the caller checks that nothing is left. */
static inline void ch_teardown(struct churn *c)
{
	if (c->dm >= 0)
		close(c->dm);
	if (c->gm >= 0)
		close(c->gm);
	if (c->g1 >= 0)
		close(c->g1);
	if (c->mc >= 0)
		close(c->mc);
	c->dm = c->gm = c->g1 = c->mc = -1;
	ch_model_release(c->S);
	c->S->misbehave = 0;
	c->S->dm_open = c->S->g1_in = c->S->gm_in = 0;
}

static inline int ch_body(struct churn *c, long nsteps)
{
	struct ch_shared *S = c->S;
	int total = 0, op, w;

	if (ch_setup(c))
		return -1;
	for (op = 0; op < OP_N; op++)
		total += ch_weight[op];
	while (c->seq_steps < nsteps && ch_budget_left(c)) {
		w = ch_r(c, total);
		for (op = 0; w >= ch_weight[op]; op++)
			w -= ch_weight[op];
		if (ch_step(c, op))
			return -1;
	}
	return S->failed ? -1 : 0;
}

/* After a sequence, with its files closed or its process gone: nothing left. */
static inline int ch_check_released(struct churn *c, const char *how)
{
	long pins = ch_pins() - c->pins_base, kb = ch_vmlck(), refs = module_refcnt(c->module);

	snprintf(c->what, sizeof(c->what), "%s", how);
	CH_CHECK(c, pins == 0, "%s: %ld pages still pinned", how, pins);
	CH_CHECK(c, kb == 0, "%s: VmLck %ld kB", how, kb);
	CH_CHECK(c, refs == c->refs_base, "%s: %s refcnt %ld, expected %ld", how, c->module, refs,
		 c->refs_base);
	return 0;
}

static inline int ch_sequence(struct churn *c)
{
	static uint8_t kind[CH_ARENA_PAGES], huge[CH_SLOTS];
	struct ch_shared *S = c->S;
	long nsteps;
	int in_child, status;
	pid_t pid;

	c->rs = ch_splitmix(c->seq_seed) | 1;
	nsteps = 20 + ch_r(c, 300);
	in_child = ch_r(c, 100) < 15;
	memset(S->alive, 0, sizeof(S->alive));
	S->alive[0] = 1;
	S->nown = 1;
	S->h_ok = S->h_vmlck = S->h_pins = S->h_dirty = 0;
	c->me = 0;
	c->child = 0;
	c->seq_steps = 0;
	ch_kmsg(c, "seq %d seed %#llx (run seed %#llx, %ld steps so far)%s\n", c->seq, c->seq_seed,
		c->seed, S->steps, in_child ? " in a child that exits with everything open" : "");
	if (!in_child) {
		int r = ch_body(c, nsteps);

		ch_teardown(c);
		if (r)
			return -1;
		return ch_check_released(c, "sequence closed");
	}
	/* The child remaps its copy of the arena: the parent's layout is restored afterwards. */
	memcpy(kind, S->kind, sizeof(kind));
	memcpy(huge, S->huge, sizeof(huge));
	fflush(stdout);
	pid = fork();
	CH_CHECK(c, pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int r = ch_body(c, nsteps);

		if (r == 0 && ch_r(c, 2))
			raise(SIGKILL);
		_exit(r ? 1 : 0);
	}
	CH_CHECK(c, waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
	ch_teardown(c);
	memcpy(S->kind, kind, sizeof(kind));
	memcpy(S->huge, huge, sizeof(huge));
	if (S->failed)
		return -1;
	CH_CHECK(c, (WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
		    (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL),
		 "sequence child ended with status %#x", status);
	return ch_check_released(c, "sequence process exited with everything open");
}

/*
 * Runs sequences until max_steps or seconds; returns 0 or -1 (the failure has been printed).
 * In differential mode prints a RECORD per sequence.
 */
static inline int churn_run(struct churn *c)
{
	struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
	struct timespec t0, t1;
	struct ch_shared *S;
	double el;
	void *p;
	int r = 0, op, nfailed = 0;

	c->mc = c->g1 = c->gm = c->dm = -1;
	c->kmsg = open("/dev/kmsg", O_WRONLY);
	c->end = time(NULL) + c->seconds;
	S = mmap(NULL, sizeof(*S), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (S == MAP_FAILED)
		return -1;
	memset(S, 0, sizeof(*S));
	c->S = S;
	printf("# churn: seed %#llx, %ld steps at most, %ld s at most, %s, against %s\n", c->seed,
	       c->max_steps, c->seconds, c->diff ? "differential" : "all scenarios", c->module);
	fflush(stdout);
	c->g1_id = env_int("VFIO_TEST_GROUP");
	c->gm_id = env_int("VFIO_TEST_VMDEV_GROUP");
	c->vmdev = env_str("VFIO_TEST_VMDEV");
	/* The side container: the second edu device, whose BAR is the MMIO behind some vaddrs. */
	if (open_container(env_int("VFIO_TEST_GROUP2"), VFIO_TYPE1v2_IOMMU, &c->sc, &c->g2))
		CH_FAIL(c, "side container with the second edu group: %s", strerror(errno));
	c->d2 = ioctl(c->g2, VFIO_GROUP_GET_DEVICE_FD, env_str("VFIO_TEST_BDF2"));
	CH_CHECK(c, c->d2 >= 0, "second edu device: %s", strerror(errno));
	CH_CHECK(c, !ioctl(c->d2, VFIO_DEVICE_GET_REGION_INFO, &bar) &&
		    (bar.flags & VFIO_REGION_INFO_FLAG_MMAP) && bar.size >= PAGE,
		 "edu BAR0 cannot be mmapped");
	c->bar_off = bar.offset;
	c->bar_pages = bar.size / PAGE > CH_SLOT_PAGES ? CH_SLOT_PAGES : bar.size / PAGE;
	/* The arena: 2 MiB aligned slots. */
	p = mmap(NULL, (CH_SLOTS + 1) * CH_SLOT_PAGES * PAGE, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CH_CHECK(c, p != MAP_FAILED, "arena: %s", strerror(errno));
	c->arena = (char *)(((uintptr_t)p + CH_SLOT_PAGES * PAGE - 1) & ~(CH_SLOT_PAGES * PAGE - 1));
	/* What a measurement costs (the vmstat refresh dominates: it runs work on every CPU). */
	{
		double t = ch_now(), refresh, plain;
		int i;

		for (i = 0; i < 20; i++)
			ch_pins();
		refresh = (ch_now() - t) / 20;
		t = ch_now();
		for (i = 0; i < 20; i++) {
			int fd = open("/proc/vmstat", O_RDONLY);
			char b[16384];

			if (fd >= 0) {
				while (read(fd, b, sizeof(b)) > 0)
					;
				close(fd);
			}
			ch_vmlck();
		}
		plain = (ch_now() - t) / 20;
		t = ch_now();
		for (i = 0; i < 20; i++)
			ch_vmlck();
		printf("# churn: one measurement: %.2f ms with the vmstat refresh, %.2f ms without, of which VmLck %.2f ms\n",
		       refresh * 1e3, plain * 1e3, (ch_now() - t) / 20 * 1e3);
	}
	c->pins_base = ch_pins();
	c->refs_base = module_refcnt(c->module);
	CH_CHECK(c, ch_vmlck() == 0, "VmLck %ld kB before starting", ch_vmlck());
	clock_gettime(CLOCK_MONOTONIC, &t0);
	c->seq_seed = c->seed;
	for (c->seq = 0; ch_budget_left(c); c->seq++) {
		long before = S->steps;

		if (ch_sequence(c)) {
			/* Reported; go on with the next sequence if it left nothing behind. */
			printf("# churn: sequence %d (seed %#llx) FAILED\n", c->seq, c->seq_seed);
			fflush(stdout);
			r = -1;
			if (++nfailed >= c->max_failures)
				break;
			S->failed = 0;
			if (ch_check_released(c, "failed sequence closed")) {
				printf("# churn: stopping: the failed sequence left something behind\n");
				break;
			}
			c->seq_seed = ch_splitmix(c->seq_seed);
			continue;
		}
		if (c->diff)
			RECORD("churn", "seq%d steps %ld ok %016llx vmlck %016llx pins %016llx dirty %016llx",
			       c->seq, S->steps - before, (unsigned long long)S->h_ok,
			       (unsigned long long)S->h_vmlck, (unsigned long long)S->h_pins,
			       (unsigned long long)S->h_dirty);
		c->seq_seed = ch_splitmix(c->seq_seed);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	el = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("# churn: %ld steps in %d sequences, %.1f s, %.0f steps/s; %ld skipped; max VmLck %ld kB\n",
	       S->steps, c->seq, el, el > 0 ? S->steps / el : 0.0, S->skipped, S->max_vmlck);
	printf("# churn: %ld checks (%ld with a vmstat refresh) took %.1f s, the pins %.1f s of it\n",
	       S->checks, S->exact_checks, S->t_check, S->t_pins);
	printf("# churn: %ld dirty reports (%ld mapped pages) checked against the dirty model%s",
	       S->reports, S->report_pages, c->rust ? "\n" : "");
	if (!c->rust)
		printf("; type1 over-reported %ld bits\n", S->over_reported);
	for (op = 0; op < OP_N; op++)
		printf("# churn:   %-10s %8ld steps, %8ld succeeded, %6.2f ms each\n", ch_op_name[op],
		       S->ops[op], S->ops_ok[op], S->ops[op] ? S->t_op[op] * 1e3 / S->ops[op] : 0.0);
	if (nfailed)
		printf("# churn: %d sequence(s) failed\n", nfailed);
	ch_kmsg(c, "%s after %ld steps (%d failed sequences)\n", r ? "FAILED" : "done", S->steps,
		nfailed);
	close(c->d2);
	close(c->g2);
	close(c->sc);
	munmap(p, (CH_SLOTS + 1) * CH_SLOT_PAGES * PAGE);
	if (c->kmsg >= 0)
		close(c->kmsg);
	return r;
}

#endif /* CHURN_H */
