// SPDX-License-Identifier: GPL-2.0
/*
 * vir-bench: the guest side of `make bench`. One process, one boot: for every workload, a warm-up
 * run on each backend, then VIR_BENCH_ROUNDS rounds (default 5) rotating type1, vfio_iommu_rust
 * and iommufd on the same memory. The legacy container's backend is switched by unloading or
 * loading our module from this process (the VFIO core asks the newest backend first, type1 serves
 * when ours is not loaded), and each container's serving backend is checked by module reference.
 * iommufd does not go through the container: the devices' cdevs (/dev/vfio/devices/vfioN) are
 * bound to /dev/iommu and attached to an IOAS, and the attach that returns a hardware page table
 * (or, for the vendor device, the IOAS's emulated access) is the check that iommufd serves them.
 *
 * Prints "BENCH <workload> <backend> <value> <unit>" lines, and "BENCH-NA <workload> <backend>
 * <reason>" for what a backend cannot serve; scripts/bench.sh turns them into a table and a plot.
 * Any failing call prints "BENCH-ERROR <what>: <error>" and ends the run. VIR_BENCH_ONLY (comma
 * separated names of the workload table below) runs only those workloads.
 *
 * One translation unit: ctx.h (containers and IOASes), memory.h (the buffers), floor.h (pin+unpin
 * with no IOMMU work), w_map.h, w_dirty.h and w_vendor.h (the workloads); this file has the
 * workload table and the rounds.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <linux/iommufd.h>
#include "../vfio_test.h"
#include "../edu.h"
#include "profile.h"
#include "../mdev/vir_mdev.h"

#define GIB (1ULL << 30)
#define MIB (1ULL << 20)
/* Above the interrupt window at 0xfee00000, which no IOMMU-backed container may map. */
#define HIGH_IOVA (4 * GIB)
/* The vendor page of the contention workload, away from its 1 GiB at IOVA 0. */
#define VENDOR_IOVA (2 * GIB)
#define SMALL (64 * 1024ULL)
#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif
#ifndef MAP_HUGE_1GB
#define MAP_HUGE_1GB (30U << MAP_HUGE_SHIFT)
#endif

enum bk { TYPE1, RUST, IOMMUFD, NBACKENDS };

static const char *const bk_name[NBACKENDS] = { "type1", "rust", "iommufd" };

static int fail(const char *what, int err)
{
	printf("BENCH-ERROR %s: %s\n", what, strerror(err));
	fflush(stdout);
	exit(1);
}

static void failf(const char *fmt, ...)
{
	va_list ap;

	printf("BENCH-ERROR ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(1);
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/*
 * Selects the backend of the next legacy containers: our module is loaded once and stays loaded,
 * and its `serve` parameter hands new containers to type1 (N) or keeps them (Y). Unloading and
 * reloading it at every switch measured ours with freshly loaded code, whose every path TCG must
 * translate again on its first run, while type1's stayed translated: a dense GET_BITMAP whose own
 * work took 0.16 ms was timed at 1.6 to 4.8 ms (Documentation/benchmarks.rst).
 */
static void use_backend(enum bk b)
{
	int err;

	if (module_refcnt(RUST_MODULE) < 0) {
		int fd = open(env_str("VFIO_RUST_KO"), O_RDONLY | O_CLOEXEC);

		if (fd < 0 || syscall(SYS_finit_module, fd, "", 0))
			fail("loading vfio_iommu_rust", errno);
		close(fd);
	}
	/* iommufd does not depend on which legacy backend serves. */
	if (b == IOMMUFD)
		return;
	err = write_module_param(RUST_MODULE, "serve", b == RUST ? "Y" : "N");
	if (err)
		fail("vfio_iommu_rust's serve parameter", err);
}

static void report(const char *tag, const char *work, enum bk b, double value, const char *unit)
{
	printf("BENCH %s%s %s %.6f %s\n", tag, work, bk_name[b], value, unit);
	fflush(stdout);
}

/* qsort() order of doubles. */
static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* @b cannot serve @work: one line per affected workload name, with the reason. */
static void na(const char *work, enum bk b, const char *reason)
{
	printf("BENCH-NA %s %s %s\n", work, bk_name[b], reason);
	fflush(stdout);
}

#include "ctx.h"
#include "memory.h"
#include "floor.h"
#include "w_map.h"
#include "w_dirty.h"
#include "w_vendor.h"

/* --- The workload table ------------------------------------------------------------------------ */

#define NEED_HUGE2M	(1 << 0)
#define NEED_HUGE1G	(1 << 1)
#define NEED_THP	(1 << 2)
#define NEED_RESERVE	(1 << 3)

static const struct workload {
	const char *name;		/* for VIR_BENCH_ONLY */
	void (*run)(enum bk b, const char *tag);
	size_t anon;			/* bytes of the 4K buffer it uses */
	unsigned int needs;		/* NEED_*: the other buffers */
	bool memory;			/* a memory measure: rounds 1 and 2 only, no warm-up */
} workloads[] = {
	{ "map_unmap_1g_4k", w_4k, GIB },
	{ "map_unmap_1g_2m_hugetlb", w_2m, 0, NEED_HUGE2M },
	{ "map_16k_64k_unmap_all", w_small, GIB },
	{ "get_bitmap_64g_sparse", w_bitmap_sparse, 0, NEED_RESERVE },
	{ "pin_unpin_512", w_pin, 512 * PAGE },
	{ "map_unmap_1g_thp", w_thp, 0, NEED_THP },
	{ "map_unmap_1g_1g_hugetlb", w_1g, 0, NEED_HUGE1G },
	{ "map_unmap_1g_4k_fresh", w_fresh },
	{ "p2p_bar_map_unmap_1m", w_bar },
	{ "dirty_dense_256m", w_dense, DENSE, NEED_RESERVE },
	{ "get_bitmap_1g_all_dirty", w_alldirty, GIB, NEED_RESERVE },
	{ "contention_vendor_pin", w_contention, GIB },
	{ "growth_4k", w_growth_4k, GROWTH_SPAN },
	{ "growth_small_maps", w_growth_small, 65535 * SMALL },
	{ "mem_per_mapping", w_mem_map, 16384 * PAGE, 0, true },
	{ "mem_per_pinned_page", w_mem_pin, MEM_PIN_PAGES * PAGE, 0, true },
};

#define NWORKLOADS ARRAY_SIZE(workloads)

static bool selected[NWORKLOADS];

/* VIR_BENCH_ONLY: the workloads named, or all. */
static void select_workloads(void)
{
	const char *only = getenv("VIR_BENCH_ONLY");
	char *list, *tok, *save;
	size_t i;

	for (i = 0; i < NWORKLOADS; i++)
		selected[i] = !only || !*only;
	if (!only || !*only)
		return;
	list = strdup(only);
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < NWORKLOADS; i++)
			if (!strcmp(tok, workloads[i].name))
				break;
		if (i == NWORKLOADS) {
			char names[1024] = "";

			for (i = 0; i < NWORKLOADS; i++)
				snprintf(names + strlen(names), sizeof(names) - strlen(names), " %s",
					 workloads[i].name);
			failf("VIR_BENCH_ONLY: no workload %s; the workloads:%s", tok, names);
		}
		selected[i] = true;
	}
	free(list);
}

static void alloc_memory(void)
{
	unsigned int needs = 0;
	size_t i, off;

	for (i = 0; i < NWORKLOADS; i++) {
		if (!selected[i])
			continue;
		needs |= workloads[i].needs;
		if (workloads[i].anon > anon_size)
			anon_size = workloads[i].anon;
	}
	if (anon_size) {
		/* 4K pages only: no THP, populated page by page. */
		anon = alloc_4k(anon_size);
		for (off = 0; off < anon_size; off += PAGE)
			anon[off] = 1;
	}
	if (needs & NEED_HUGE2M)
		alloc_huge2m();
	if (needs & NEED_HUGE1G)
		alloc_huge1g();
	if (needs & NEED_THP)
		alloc_thp();
	if (needs & NEED_RESERVE)
		alloc_reserve();
}

int main(void)
{
	const enum bk order[NBACKENDS] = { TYPE1, RUST, IOMMUFD };
	const char *env = getenv("VIR_BENCH_ROUNDS");
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
	int rounds = 5, r, k, err;
	size_t i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (env && *env) {
		char *end;

		rounds = strtol(env, &end, 10);
		if (*end || rounds < 1 || rounds > 100)
			failf("VIR_BENCH_ROUNDS=%s: want 1 to 100", env);
	}
	select_workloads();
	/*
	 * As an unprivileged VMM with a raised limit runs: without CAP_IPC_LOCK, which would make
	 * iommufd skip its locked-memory accounting (type1 and ours account either way).
	 */
	if (setrlimit(RLIMIT_MEMLOCK, &unlimited))
		fail("RLIMIT_MEMLOCK", errno);
	err = drop_cap_ipc_lock();
	if (err)
		fail("dropping CAP_IPC_LOCK", err);
	alloc_memory();
	printf("# vir-bench: %d rounds; 4K buffer %zu MiB; workloads:", rounds, anon_size >> 20);
	for (i = 0; i < NWORKLOADS; i++)
		if (selected[i])
			printf(" %s", workloads[i].name);
	printf("\n");

	/* Round 0 is the warm-up of each backend; it is reported as such and not counted. */
	for (r = 0; r <= rounds; r++) {
		prof_round = r;
		for (k = 0; k < NBACKENDS; k++) {
			enum bk b = order[(r + k) % NBACKENDS];
			const char *tag = r ? "" : "warmup-";

			use_backend(b);
			for (i = 0; i < NWORKLOADS; i++) {
				if (!selected[i])
					continue;
				if (workloads[i].memory && (r < 1 || r > 2))
					continue;
				workloads[i].run(b, tag);
			}
		}
	}
	if (thp)
		check_thp();
	use_backend(RUST);
	printf("BENCH-DONE\n");
	return 0;
}
