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

/* --- random numbers ----------------------------------------------------------------------- */

static inline unsigned long long ch_splitmix(unsigned long long x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static inline unsigned long long ch_rnd(struct churn *c)
{
	/* xorshift64* */
	c->rs ^= c->rs >> 12;
	c->rs ^= c->rs << 25;
	c->rs ^= c->rs >> 27;
	return c->rs * 0x2545f4914f6cdd1dULL;
}

static inline unsigned int ch_r(struct churn *c, unsigned int n)
{
	return n ? (unsigned int)(ch_rnd(c) % n) : 0;
}

/* A fresh seed, unless VIR_FUZZ_SEED gives one. */
static inline unsigned long long churn_seed(void)
{
	const char *e = getenv("VIR_FUZZ_SEED");
	unsigned long long s = 0;

	if (e && *e)
		return strtoull(e, NULL, 0);
	if (getrandom(&s, sizeof(s), 0) != sizeof(s))
		s = (unsigned long long)time(NULL) * 0x9e3779b97f4a7c15ULL ^ (unsigned long long)getpid();
	return s ? s : 1;
}

static inline uint64_t ch_hash(uint64_t h, uint64_t v)
{
	int i;

	if (!h)
		h = 0xcbf29ce484222325ULL;
	for (i = 0; i < 8; i++) {
		h ^= (v >> (8 * i)) & 0xff;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* --- measurements ------------------------------------------------------------------------- */

/*
 * Outstanding FOLL_PIN pages, from one read of /proc/vmstat; exact only after a vmstat refresh
 * (@refresh), which folds the per-CPU differences (it runs work on every CPU: about 1 ms under TCG,
 * more than most steps). Without it, pins taken or released since the last fold may not show yet.
 */
static inline long ch_read_pins(int refresh)
{
	static char buf[16384];
	long acq = -1, rel = -1;
	ssize_t n = 0, r;
	char *p;
	int fd = refresh ? open("/proc/sys/vm/stat_refresh", O_WRONLY) : -1;

	if (fd >= 0) {
		if (write(fd, "1", 1) != 1)
			fprintf(stderr, "stat_refresh: %s\n", strerror(errno));
		close(fd);
	}
	fd = open("/proc/vmstat", O_RDONLY);
	if (fd < 0)
		return -1000000;
	while (n < (ssize_t)sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += r;
	close(fd);
	buf[n] = 0;
	p = strstr(buf, "\nnr_foll_pin_acquired ");
	if (p)
		acq = atol(p + strlen("\nnr_foll_pin_acquired "));
	p = strstr(buf, "\nnr_foll_pin_released ");
	if (p)
		rel = atol(p + strlen("\nnr_foll_pin_released "));
	if (acq < 0 || rel < 0)
		return -1000000;
	return acq - rel;
}

static inline long ch_pins(void)
{
	return ch_read_pins(1);
}

/* VmLck of this process in kB (-1 if unreadable). */
static inline long ch_vmlck(void)
{
	char buf[4096], *p;
	ssize_t n;
	int fd = open("/proc/self/status", O_RDONLY);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strstr(buf, "VmLck:");
	return p ? strtol(p + 6, NULL, 10) : -1;
}

static inline long ch_hugepages_free(void)
{
	return proc_field("/proc/meminfo", "HugePages_Free");
}

/* --- reporting ---------------------------------------------------------------------------- */

static inline void ch_kmsg(struct churn *c, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	if (c->kmsg < 0)
		return;
	n = snprintf(line, sizeof(line), "<5>vir-churn: ");
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 1)
		n = sizeof(line) - 1;
	if (write(c->kmsg, line, n) < 0)
		c->kmsg = -1;
}

/* Notes the step about to be taken (for the failure report and the trace). */
static inline void ch_note(struct churn *c, const char *fmt, ...)
{
	struct ch_shared *S = c->S;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->what, sizeof(c->what), fmt, ap);
	va_end(ap);
	c->noted = 1;
	c->last_err = -1;
	snprintf(S->ring[S->ringpos++ % CH_RING], sizeof(S->ring[0]), "%s%ld.%ld %s",
		 c->child ? "child " : "", (long)c->seq, c->seq_steps, c->what);
	if (c->trace)
		ch_kmsg(c, "seq %d step %ld%s: %s\n", c->seq, c->seq_steps,
			c->child ? " (fork child)" : "", c->what);
}

/* Completes the noted step with its result. */
static inline void ch_result(struct churn *c, int err)
{
	struct ch_shared *S = c->S;
	char *slot = S->ring[(S->ringpos - 1) % CH_RING];
	size_t len = strlen(slot);

	c->last_err = err;
	snprintf(slot + len, sizeof(S->ring[0]) - len, " -> %s", err ? strerror(err) : "ok");
}

static inline int ch_fail(struct churn *c, int line, const char *fmt, ...)
{
	struct ch_shared *S = c->S;
	char msg[512];
	unsigned int i;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (S->failed++)
		return -1;
	printf("# churn: FAILED (churn.h:%d) %s\n", line, msg);
	printf("# churn: run seed %#llx, sequence %d (seed %#llx), step %ld of the sequence, %ld steps in all, %s%s\n",
	       c->seed, c->seq, c->seq_seed, c->seq_steps, S->steps,
	       c->child ? "in a fork child" : "in the main process", c->diff ? ", differential" : "");
	printf("# churn: replay: VIR_FUZZ_SEED=%#llx (this sequence first)\n", c->seq_seed);
	printf("# churn: last steps (sequence.step):\n");
	for (i = S->ringpos > CH_RING ? S->ringpos - CH_RING : 0; i < S->ringpos; i++)
		printf("#   %s\n", S->ring[i % CH_RING]);
	fflush(stdout);
	ch_kmsg(c, "FAILED seq %d (seed %#llx) step %ld: %s\n", c->seq, c->seq_seed, c->seq_steps,
		msg);
	return -1;
}

#define CH_FAIL(c, ...) return ch_fail((c), __LINE__, __VA_ARGS__)
#define CH_CHECK(c, cond, ...) do { if (!(cond)) CH_FAIL((c), __VA_ARGS__); } while (0)

/* --- the model ---------------------------------------------------------------------------- */

static inline struct ch_map *ch_map_at(struct ch_shared *S, uint32_t ipage)
{
	int i;

	for (i = 0; i < CH_MAXMAP; i++) {
		struct ch_map *m = &S->map[i];

		if (m->used && ipage >= m->ipage && ipage < m->ipage + m->npages)
			return m;
	}
	return NULL;
}

static inline int ch_nmaps(struct ch_shared *S)
{
	int i, n = 0;

	for (i = 0; i < CH_MAXMAP; i++)
		n += S->map[i].used;
	return n;
}

/* Pins the model expects beyond the baseline. */
static inline long ch_model_pins(struct ch_shared *S)
{
	long n = 0;
	uint32_t p;
	int i;

	for (i = 0; i < CH_MAXMAP; i++) {
		struct ch_map *m = &S->map[i];

		if (!m->used)
			continue;
		for (p = m->ipage; p < m->ipage + m->npages; p++)
			n += (m->iommu && S->ikind[p] == K_RAM) + (S->vref[p] > 0);
	}
	return n;
}

/*
 * The pages charged to owner @who's locked memory: exactly [*lo, *hi], or a range for tainted
 * mappings.
 */
static inline void ch_model_vmlck(struct ch_shared *S, int who, long *lo, long *hi)
{
	uint32_t p;
	int i;

	*lo = *hi = 0;
	for (i = 0; i < CH_MAXMAP; i++) {
		struct ch_map *m = &S->map[i];
		long iommu_ram = 0, vendor = 0, taint = 0;

		if (!m->used || m->owner != who)
			continue;
		for (p = m->ipage; p < m->ipage + m->npages; p++) {
			iommu_ram += m->iommu && S->ikind[p] == K_RAM;
			vendor += S->vref[p] > 0;
			taint |= S->tainted[p];
		}
		if (taint) {
			*hi += iommu_ram + vendor;
		} else {
			*lo += m->iommu ? iommu_ram : vendor;
			*hi += m->iommu ? iommu_ram : vendor;
		}
	}
}

/*
 * Whether a vendor pin of @p now would hold another page than the IOMMU pin of @p: RAM over MMIO,
 * or RAM that replaced the page the IOMMU pinned (our backend charges such a pin by itself, type1
 * deems the IOMMU's charge to cover it: Documentation/status.rst).
 */
static inline int ch_would_taint_pin(struct churn *c, struct ch_map *m, uint32_t p)
{
	struct ch_shared *S = c->S;

	uint32_t v = m->vpage + (p - m->ipage);

	return m->iommu && S->vref[p] == 0 && S->kind[v] == K_RAM &&
	       (S->ikind[p] != K_RAM || S->igen[p] != S->gen[v]);
}

static inline double ch_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/*
 * After a step: pins and VmLck as the model says (@level 2), or nothing (@level 0: dma_rw, dirty
 * tracking and remaps change neither; what they leaked would show at the next check).
 *
 * The pins are read without a vmstat refresh, and exactly (with one) when that read differs from
 * the model, every exact_every-th check and at the end of a sequence: a leak can hide in the
 * per-CPU differences for a few steps, not longer. VIR_CHURN_EXACT=1 (and the differential) refresh
 * at every check, for the exact step of a failure.
 */
static inline int ch_check_level(struct churn *c, int level)
{
	/* The model's charge at the last VmLck read by this process. */
	static long last_lo = -1, last_hi = -1;
	struct ch_shared *S = c->S;
	double t0 = ch_now(), t1;
	long pins, want, kb, lo, hi;
	int exact;

	if (!level)
		return 0;
	want = ch_model_pins(S);
	ch_model_vmlck(S, c->me, &lo, &hi);
	exact = c->exact_every <= 1 || level > 2 || ++S->pin_checks % c->exact_every == 0;
	pins = ch_read_pins(exact) - c->pins_base;
	if (!exact && pins != want) {
		exact = 1;
		pins = ch_pins() - c->pins_base;
	}
	S->exact_checks += exact;
	t1 = ch_now();
	S->t_pins += t1 - t0;
	/* VmLck (/proc/self/status is slow to generate): when exact, or the charge should have moved. */
	if (exact || lo != last_lo || hi != last_hi) {
		kb = ch_vmlck();
		last_lo = lo;
		last_hi = hi;
	} else {
		kb = lo * 4;
	}
	S->t_check += ch_now() - t0;
	if (exact)
		S->h_pins = ch_hash(S->h_pins, (uint64_t)pins);
	S->h_vmlck = ch_hash(S->h_vmlck, (uint64_t)kb);
	if (kb > S->max_vmlck)
		S->max_vmlck = kb;
	S->checks++;
	CH_CHECK(c, pins == want,
		 "after %s: %ld pages pinned beyond the baseline, the model says %ld", c->what,
		 pins, want);
	CH_CHECK(c, kb >= 0 && kb < (1L << 30), "after %s: VmLck %ld kB (negative or huge)", c->what,
		 kb);
	if (lo == hi)
		CH_CHECK(c, kb == lo * 4, "after %s: VmLck %ld kB, the model says %ld kB", c->what, kb,
			 lo * 4);
	else
		CH_CHECK(c, kb >= lo * 4 && kb <= hi * 4,
			 "after %s: VmLck %ld kB, not within the model's %ld..%ld kB (tainted mapping)",
			 c->what, kb, lo * 4, hi * 4);
	return 0;
}

/* A check with exact pins. */
static inline int ch_check(struct churn *c)
{
	return ch_check_level(c, 3);
}

/* Drops vir_mdev's pin record @i (the driver unpinned it). */
static inline void ch_drop_rec(struct ch_shared *S, int i, int unpin)
{
	uint32_t p;

	if (unpin)
		for (p = S->rec[i].ipage; p < S->rec[i].ipage + S->rec[i].n; p++)
			S->vref[p]--;
	S->rec[i] = S->rec[--S->nrec];
}

/* The vendor device closes: it unpins its records (or walks away from them, misbehave 2). */
static inline void ch_model_dm_close(struct ch_shared *S)
{
	int abandon = S->misbehave == 2;

	while (S->nrec)
		ch_drop_rec(S, S->nrec - 1, !abandon);
	S->misbehave = 0;
	S->dm_open = 0;
}

static inline void ch_model_remove(struct ch_shared *S, struct ch_map *m)
{
	uint32_t p;

	for (p = m->ipage; p < m->ipage + m->npages; p++) {
		S->vref[p] = 0;
		S->tainted[p] = 0;
		S->ikind[p] = K_HOLE;
	}
	memset(m, 0, sizeof(*m));
}

/* The container lost its last group: every mapping is gone. */
static inline void ch_model_release(struct ch_shared *S)
{
	int i;

	for (i = 0; i < CH_MAXMAP; i++)
		if (S->map[i].used)
			ch_model_remove(S, &S->map[i]);
	S->nrec = 0;
	S->iommu_set = 0;
	S->tracking = 0;
}

/* The IOMMU pins mapping @m now (map with a domain, or a domain's first group joining). */
static inline void ch_model_iommu_pin(struct ch_shared *S, struct ch_map *m)
{
	uint32_t i;

	m->iommu = 1;
	for (i = 0; i < m->npages; i++) {
		uint32_t p = m->ipage + i;

		S->ikind[p] = S->kind[m->vpage + i];
		S->igen[p] = S->gen[m->vpage + i];
		if (S->vref[p] && (S->ikind[p] != K_RAM || S->igen[p] != S->vgen[p]))
			S->tainted[p] = 1;
	}
}

#include "churn_dirty.h"

/* --- the arena ---------------------------------------------------------------------------- */

static inline char *ch_va(struct churn *c, uint32_t vpage)
{
	return c->arena + (size_t)vpage * PAGE;
}

/* What backs arena pages [vp, vp + n) changed. */
static inline void ch_bump_gen(struct ch_shared *S, uint32_t vp, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		S->gen[vp + i]++;
}

static inline int ch_hole(struct churn *c, uint32_t vp, uint32_t n)
{
	if (munmap(ch_va(c, vp), n * PAGE))
		return errno;
	if (mmap(ch_va(c, vp), n * PAGE, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED)
		return errno;
	memset(&c->S->kind[vp], K_HOLE, n);
	ch_bump_gen(c->S, vp, n);
	return 0;
}

enum { R_ANON, R_THP, R_HUGE, R_MMIO, R_HOLE, R_N };
static const char *const ch_remap_name[R_N] = { "anon", "thp", "hugetlb", "mmio", "hole" };

/*
 * Remaps arena pages [vp, vp + n) as @how. THP and hugetlb take whole slots; a slot holding
 * hugetlb is made a hole first when a part of it is remapped. Returns 0, or -1 after a failure.
 */
static inline int ch_remap(struct churn *c, uint32_t vp, uint32_t n, int how, int shared)
{
	struct ch_shared *S = c->S;
	uint32_t s, first = vp / CH_SLOT_PAGES, last = (vp + n - 1) / CH_SLOT_PAGES;
	int nhuge = 0, err;
	void *p;

	for (s = first; s <= last; s++) {
		if (S->huge[s] == 1 || S->huge[s] == 2) {
			err = ch_hole(c, s * CH_SLOT_PAGES, CH_SLOT_PAGES);
			CH_CHECK(c, !err, "making hugetlb slot %u a hole: %s", s, strerror(err));
		}
		S->huge[s] = 0;
	}
	for (s = 0; s < CH_SLOTS; s++)
		nhuge += S->huge[s] == 1 || S->huge[s] == 2;
	switch (how) {
	case R_ANON:
		p = mmap(ch_va(c, vp), n * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_POPULATE, -1, 0);
		CH_CHECK(c, p != MAP_FAILED, "mmap anon: %s", strerror(errno));
		memset(&S->kind[vp], K_RAM, n);
		ch_bump_gen(S, vp, n);
		return 0;
	case R_THP:
		p = mmap(ch_va(c, vp), n * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		CH_CHECK(c, p != MAP_FAILED, "mmap anon for THP: %s", strerror(errno));
		madvise(p, n * PAGE, MADV_HUGEPAGE);
		if (madvise(p, n * PAGE, 23 /* MADV_POPULATE_WRITE */))
			memset(p, 0x5a, n * PAGE);
		memset(&S->kind[vp], K_RAM, n);
		ch_bump_gen(S, vp, n);
		S->huge[first] = 3;
		return 0;
	case R_HUGE:
		/* Only if the pool has a page: try one elsewhere first. */
		p = nhuge < CH_MAXHUGE && ch_hugepages_free() > 2 ?
		    mmap(NULL, CH_SLOT_PAGES * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0) : MAP_FAILED;
		if (p == MAP_FAILED)
			return ch_remap(c, vp, n, R_ANON, 0);
		munmap(p, CH_SLOT_PAGES * PAGE);
		err = ch_hole(c, vp, n);
		CH_CHECK(c, !err, "making a hole for hugetlb: %s", strerror(err));
		p = mmap(ch_va(c, vp), n * PAGE, PROT_READ | PROT_WRITE,
			 (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_HUGETLB | MAP_FIXED |
			 MAP_POPULATE, -1, 0);
		if (p == MAP_FAILED) {
			err = ch_hole(c, vp, n);
			CH_CHECK(c, !err, "restoring a hole after hugetlb failed: %s", strerror(err));
			return 0;
		}
		memset(&S->kind[vp], K_RAM, n);
		ch_bump_gen(S, vp, n);
		S->huge[first] = shared ? 2 : 1;
		return 0;
	case R_MMIO: {
		uint32_t off = ch_r(c, c->bar_pages - n + 1);

		p = mmap(ch_va(c, vp), n * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, c->d2,
			 c->bar_off + off * PAGE);
		CH_CHECK(c, p != MAP_FAILED, "mmap of the edu BAR: %s", strerror(errno));
		memset(&S->kind[vp], K_MMIO, n);
		ch_bump_gen(S, vp, n);
		return 0;
	}
	default:
		err = ch_hole(c, vp, n);
		CH_CHECK(c, !err, "munmap: %s", strerror(err));
		return 0;
	}
}

/* --- the steps ---------------------------------------------------------------------------- */

static inline int ch_vmdev(int dev, unsigned long op, __u64 iova, __u64 count, __u32 flags,
			   __u32 value, void *buf)
{
	struct vir_mdev_cmd cmd = {
		.iova = iova, .count = count, .flags = flags, .value = value,
		.buf = (uintptr_t)buf,
	};

	return vfio_errno(ioctl(dev, op, &cmd));
}

static inline __u64 ch_iova(uint32_t ipage)
{
	return CH_IOVA + (__u64)ipage * PAGE;
}

/* A random used mapping, or NULL. */
static inline struct ch_map *ch_any_map(struct churn *c)
{
	int n = ch_nmaps(c->S), k, i;

	if (!n)
		return NULL;
	k = ch_r(c, n);
	for (i = 0; i < CH_MAXMAP; i++)
		if (c->S->map[i].used && !k--)
			return &c->S->map[i];
	return NULL;
}

static inline uint32_t ch_npages(struct churn *c)
{
	switch (ch_r(c, 20)) {
	case 0 ... 11:
		return 1 + ch_r(c, 16);
	case 12 ... 16:
		return 17 + ch_r(c, 112);
	case 17 ... 18:
		return CH_SLOT_PAGES;
	default:
		return 129 + ch_r(c, 896);
	}
}

static inline int op_map(struct churn *c)
{
	struct ch_shared *S = c->S;
	uint32_t n = ch_npages(c), vp, ip, i, p;
	int write = ch_r(c, 8) != 0, expect_fail = 0, uncertain = 0, slot = -1, err;
	struct ch_map *m = ch_any_map(c);

	if (n == CH_SLOT_PAGES)
		vp = ch_r(c, CH_SLOTS) * CH_SLOT_PAGES;
	else
		vp = ch_r(c, CH_ARENA_PAGES - n + 1);
	switch (ch_r(c, 4)) {
	case 0:	/* right after a mapping, or right before it */
		if (m) {
			ip = ch_r(c, 2) || m->ipage < n ? m->ipage + m->npages : m->ipage - n;
			break;
		}
		/* fall through */
	case 1:	/* 2 MiB aligned, for large IOMMU pages */
		ip = ch_r(c, CH_WIN_PAGES / CH_SLOT_PAGES) * CH_SLOT_PAGES + vp % CH_SLOT_PAGES;
		break;
	default:
		ip = ch_r(c, CH_WIN_PAGES);
	}
	if (ip + n > CH_WIN_PAGES)
		ip = CH_WIN_PAGES - n;
	for (i = 0; i < CH_MAXMAP; i++)
		if (!S->map[i].used) {
			slot = i;
			break;
		}
	if (slot < 0)
		return 0;
	for (p = ip; p < ip + n; p++)
		if (ch_map_at(S, p))
			expect_fail = 1;
	if (!S->iommu_set)
		expect_fail = 1;
	if (S->g1_in)
		for (i = 0; i < n; i++) {
			if (S->kind[vp + i] == K_HOLE)
				expect_fail = 1;
			/* A child's write pin of private hugetlb needs a page of the pool (COW). */
			if (c->child && S->huge[(vp + i) / CH_SLOT_PAGES] == 1)
				uncertain = 1;
		}
	ch_note(c, "map iova %#llx +%u pages vaddr page %u %s", ch_iova(ip), n, vp,
		write ? "rw" : "r");
	err = dma_map(c->mc, ch_iova(ip), (uintptr_t)ch_va(c, vp), (__u64)n * PAGE,
		      write ? RW : VFIO_DMA_MAP_FLAG_READ);
	ch_result(c, err);
	if (expect_fail)
		CH_CHECK(c, err, "%s succeeded: it overlaps, has a hole or no IOMMU is set", c->what);
	else if (!uncertain)
		CH_CHECK(c, !err, "%s failed: %s", c->what, strerror(err));
	if (err)
		return 0;
	m = &S->map[slot];
	m->used = 1;
	m->ipage = ip;
	m->npages = n;
	m->vpage = vp;
	m->write = write;
	m->owner = c->me;
	m->iommu = 0;
	for (p = ip; p < ip + n; p++) {
		S->vref[p] = 0;
		S->tainted[p] = 0;
		S->dirty[p] = D_CLEAN;
	}
	if (S->g1_in)
		ch_model_iommu_pin(S, m);
	return 0;
}

/*
 * The effect of an unmap of IOVA pages [first, last] that the model accepts (no bisection): the
 * mappings inside, in IOVA order; each with vendor pins is notified, the driver unpins its
 * records over it (unless misbehaving); one still pinned after that fails the unmap with EBUSY
 * (ours; type1 BUG()s) and nothing is removed. Returns the bytes the model removes, or -1 for
 * EBUSY. Applies the effect only if @apply.
 */
static inline long long ch_model_unmap(struct churn *c, uint32_t first, uint32_t last, int apply)
{
	struct ch_shared *S = c->S;
	struct ch_map *in[CH_MAXMAP];
	long long bytes = 0;
	int n = 0, i, j, k;
	uint32_t p;

	for (i = 0; i < CH_MAXMAP; i++) {
		struct ch_map *m = &S->map[i];

		if (m->used && m->ipage >= first && m->ipage + m->npages - 1 <= last)
			in[n++] = m;
	}
	/* IOVA order. */
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && in[j]->ipage < in[j - 1]->ipage; j--) {
			struct ch_map *t = in[j];

			in[j] = in[j - 1];
			in[j - 1] = t;
		}
	for (i = 0; i < n; i++) {
		struct ch_map *m = in[i];
		int pinned = 0, stuck = 0;

		for (p = m->ipage; p < m->ipage + m->npages; p++)
			pinned |= S->vref[p] > 0;
		if (!pinned)
			continue;
		if (!apply) {
			/* Would the driver's records over it release every pin of it? */
			for (p = m->ipage; p < m->ipage + m->npages && !stuck; p++) {
				long refs = 0;

				if (!S->vref[p])
					continue;
				for (k = 0; k < S->nrec; k++)
					if (S->rec[k].ipage <= p && S->rec[k].ipage + S->rec[k].n > p)
						refs++;
				stuck = S->misbehave || refs < S->vref[p];
			}
			if (stuck)
				return -1;
			continue;
		}
		if (!S->misbehave)
			for (k = S->nrec - 1; k >= 0; k--)
				if (S->rec[k].ipage <= m->ipage + m->npages - 1 &&
				    S->rec[k].ipage + S->rec[k].n - 1 >= m->ipage)
					ch_drop_rec(S, k, 1);
		for (p = m->ipage; p < m->ipage + m->npages; p++)
			stuck |= S->vref[p] > 0;
		if (stuck)
			return -1;
	}
	for (i = 0; i < n; i++) {
		bytes += (long long)in[i]->npages * PAGE;
		if (apply)
			ch_model_remove(S, in[i]);
	}
	return bytes;
}

/* Whether IOVA page @p is inside a mapping other than at its start (a range starting there bisects). */
static inline int ch_bisects_start(struct ch_shared *S, uint32_t p)
{
	struct ch_map *m = ch_map_at(S, p);

	return m && m->ipage != p;
}

static inline int ch_bisects_end(struct ch_shared *S, uint32_t p)
{
	struct ch_map *m = ch_map_at(S, p);

	return m && m->ipage + m->npages - 1 != p;
}

/* A range of IOVA pages for unmap and GET_BITMAP: one mapping, several, bisecting, random. */
static inline void ch_range(struct churn *c, uint32_t *first, uint32_t *last)
{
	struct ch_map *a = ch_any_map(c), *b = ch_any_map(c);
	uint32_t x;

	switch (a ? ch_r(c, 10) : 9) {
	case 0 ... 4:
		*first = a->ipage;
		*last = a->ipage + a->npages - 1;
		return;
	case 5 ... 6:
		*first = a->ipage < b->ipage ? a->ipage : b->ipage;
		*last = a->ipage < b->ipage ? b->ipage + b->npages - 1 : a->ipage + a->npages - 1;
		return;
	case 7:
		*first = a->ipage + ch_r(c, a->npages);
		*last = a->ipage + a->npages - 1 + ch_r(c, 3);
		break;
	case 8:
		*first = a->ipage > 2 ? a->ipage - ch_r(c, 3) : a->ipage;
		*last = a->ipage + ch_r(c, a->npages);
		break;
	default:
		*first = ch_r(c, CH_WIN_PAGES);
		*last = *first + ch_r(c, 2048);
	}
	if (*last >= CH_WIN_PAGES)
		*last = CH_WIN_PAGES - 1;
	if (*last < *first) {
		x = *first;
		*first = *last;
		*last = x;
	}
}

/*
 * Checks the dirty bitmap of IOVA pages [first, first + npages) (bit 0 = @first), read by
 * GET_BITMAP or an unmap, against the dirty model as it was before the call (churn_dirty.h): ours
 * exactly and with no bit of an unmapped IOVA (nor past the range, in the last word); type1 with
 * every page the model says is dirty, its extra bits counted. The digest RECORDed for the
 * differential is of the model's answer, page by page.
 */
static inline int ch_check_report(struct churn *c, const __u64 *bits, uint32_t first, uint32_t npages)
{
	struct ch_shared *S = c->S;
	size_t words = (npages + 63) / 64, n = 0, set = 0, extra = 0, i;
	char list[160];
	long stray = -1, missed = -1, spurious = -1;

	list[0] = 0;
	for (i = 0; i < words * 64; i++) {
		int bit = bits[i / 64] >> (i % 64) & 1;
		int want = i < npages ? ch_dirty_expect(S, first + i) : -1;

		if (want >= 0) {
			S->h_dirty = ch_hash(S->h_dirty, (uint64_t)i << 2 | want);
			S->report_pages++;
		}
		if (bit && want < 0 && stray < 0)
			stray = i;
		if (!bit && want == D_DIRTY && missed < 0)
			missed = i;
		if (bit && want == D_CLEAN && spurious < 0)
			spurious = i;
		if (bit && want != D_DIRTY && want != D_MAYBE)
			extra++;
		if (!bit || !c->trace)
			continue;
		set++;
		if (n < sizeof(list) - 24 && !(i && bits[(i - 1) / 64] >> ((i - 1) % 64) & 1))
			n += snprintf(list + n, sizeof(list) - n, " %zu", i);
	}
	S->reports++;
	if (c->trace)
		ch_kmsg(c, "  %zu dirty, starting at:%s%s\n", set, list,
			extra && !c->rust ? " (type1: over-reports)" : "");
	CH_CHECK(c, missed < 0, "%s: page %ld (IOVA %#llx) is dirty but not reported", c->what, missed,
		 ch_iova(first) + missed * PAGE);
	if (!c->rust) {
		S->over_reported += extra;
		return 0;
	}
	CH_CHECK(c, stray < 0, "%s: dirty bit %ld (IOVA %#llx) is not of a mapped page", c->what, stray,
		 ch_iova(first) + stray * PAGE);
	CH_CHECK(c, spurious < 0, "%s: page %ld (IOVA %#llx) is reported dirty but is clean", c->what,
		 spurious, ch_iova(first) + spurious * PAGE);
	return 0;
}

static inline int op_unmap(struct churn *c)
{
	static __u64 bits[CH_WIN_PAGES / 64];
	struct ch_shared *S = c->S;
	uint32_t first, last;
	int all = ch_r(c, 12) == 0, bitmap = !all && ch_r(c, 6) == 0, err, bisect;
	long long want;
	__u64 size = 0;
	size_t words;

	if (all) {
		first = 0;
		last = CH_WIN_PAGES - 1;
	} else {
		ch_range(c, &first, &last);
	}
	bisect = !all && (ch_bisects_start(S, first) || ch_bisects_end(S, last));
	words = (last - first + 1 + 63) / 64;
	want = bisect || !S->iommu_set || (bitmap && !S->tracking) ? -2 :
	       ch_model_unmap(c, first, last, 0);
	if (c->diff && want == -1) {
		return 0;	/* a driver keeping pins: type1 BUG()s */
	}
	ch_note(c, "unmap%s iova %#llx +%u pages%s", all ? "_all" : "", ch_iova(first),
		last - first + 1, bitmap ? " with dirty bitmap" : "");
	if (all) {
		err = dma_unmap(c->mc, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size);
	} else if (bitmap) {
		memset(bits, 0, words * 8);
		err = dma_unmap_bitmap(c->mc, ch_iova(first), (__u64)(last - first + 1) * PAGE, PAGE,
				       bits, words * 8, &size);
	} else {
		err = dma_unmap(c->mc, ch_iova(first), (__u64)(last - first + 1) * PAGE, 0, &size);
	}
	ch_result(c, err);
	if (want == -2)
		CH_CHECK(c, err, "%s succeeded (bisects, no IOMMU or not tracking)", c->what);
	else if (want == -1)
		CH_CHECK(c, err == EBUSY, "%s: %s, expected EBUSY (vendor pins kept)", c->what,
			 strerror(err));
	else
		CH_CHECK(c, !err, "%s failed: %s", c->what, strerror(err));
	if (!err && bitmap && ch_check_report(c, bits, first, last - first + 1))
		return -1;
	if (want >= 0 || want == -1) {
		/* The notifications happened whatever the outcome. */
		long long got = ch_model_unmap(c, first, last, 1);

		if (!err)
			CH_CHECK(c, (long long)size == got, "%s unmapped %llu bytes, the model %lld",
				 c->what, (unsigned long long)size, got);
	}
	return 0;
}

static inline int op_vpin(struct churn *c)
{
	struct ch_shared *S = c->S;
	struct ch_map *m = ch_any_map(c);
	uint32_t first, n, p;
	int write = ch_r(c, 2), unaligned = c->rust && !c->diff && ch_r(c, 40) == 0;
	int expect_ok, uncertain = 0, err;
	__u64 iova;

	if (!S->dm_open)
		return 0;
	switch (ch_r(c, 20)) {
	case 0 ... 13:
		n = 1 + (ch_r(c, 4) ? ch_r(c, 8) : ch_r(c, 64));
		break;
	case 14:
		n = 500 + ch_r(c, 100);	/* more than one vfio_pin_pages() call */
		break;
	default:
		n = 1;
	}
	if (m && ch_r(c, 10)) {
		first = m->ipage + ch_r(c, m->npages);
		if (ch_r(c, 3) && first + n > m->ipage + m->npages)
			n = m->ipage + m->npages - first;
	} else {
		first = ch_r(c, CH_WIN_PAGES);
	}
	if (first + n > CH_WIN_PAGES)
		n = CH_WIN_PAGES - first;
	expect_ok = S->iommu_set && !unaligned;
	for (p = first; p < first + n; p++) {
		struct ch_map *pm = ch_map_at(S, p);

		if (!pm || (write && !pm->write)) {
			expect_ok = 0;
			continue;
		}
		if (S->vref[p])
			continue;
		if (!S->alive[pm->owner] || S->kind[pm->vpage + (p - pm->ipage)] != K_RAM)
			expect_ok = 0;
		if ((c->diff || c->avoid_taint) && ch_would_taint_pin(c, pm, p))
			return 0;	/* excluded: type1 accounts it differently */
		if (write && S->huge[(pm->vpage + (p - pm->ipage)) / CH_SLOT_PAGES] == 1 &&
		    pm->owner != 0)
			uncertain = 1;
	}
	iova = ch_iova(first) + (unaligned ? 0x10 : 0);
	ch_note(c, "vendor pin iova %#llx +%u pages%s", iova, n, write ? " for write" : "");
	err = ch_vmdev(c->dm, VIR_MDEV_PIN, iova, n, write ? VIR_MDEV_FLAG_WRITE : 0,
		       ch_r(c, 256), NULL);
	ch_result(c, err);
	if (!expect_ok)
		CH_CHECK(c, err, "%s succeeded (unmapped, no access, not RAM or owner gone)", c->what);
	else if (!uncertain)
		CH_CHECK(c, !err, "%s failed: %s", c->what, strerror(err));
	if (err)
		return 0;
	ch_dirty_mark(S, first, n, D_DIRTY);
	if (S->nrec == CH_MAXREC) {
		/* The model cannot hold it: give it back. */
		ch_vmdev(c->dm, VIR_MDEV_UNPIN, iova, n, 0, 0, NULL);
		return 0;
	}
	for (p = first; p < first + n; p++) {
		struct ch_map *pm = ch_map_at(S, p);

		uint32_t v = pm->vpage + (p - pm->ipage);

		if (!S->vref[p]) {
			S->vgen[p] = S->gen[v];
			if (pm->iommu && (S->ikind[p] != K_RAM || S->igen[p] != S->vgen[p])) {
				S->tainted[p] = 1;
				if (c->trace)
					ch_kmsg(c, "  taints IOVA %#llx: vendor pin of another page than the IOMMU pin's (%s) (mapping %#llx +%u)\n",
						ch_iova(p), ch_kind_name[S->ikind[p]], ch_iova(pm->ipage), pm->npages);
			}
		}
		S->vref[p]++;
	}
	S->rec[S->nrec].ipage = first;
	S->rec[S->nrec].n = n;
	S->nrec++;
	return 0;
}

static inline int op_vunpin(struct churn *c)
{
	struct ch_shared *S = c->S;
	int i = S->nrec && ch_r(c, 6) ? (int)ch_r(c, S->nrec) : -1, err;
	uint32_t first = i >= 0 ? S->rec[i].ipage : ch_r(c, CH_WIN_PAGES), n = i >= 0 ? S->rec[i].n : 1;
	int k;

	if (!S->dm_open)
		return 0;
	ch_note(c, "vendor unpin iova %#llx +%u pages", ch_iova(first), n);
	err = ch_vmdev(c->dm, VIR_MDEV_UNPIN, ch_iova(first), n, 0, 0, NULL);
	ch_result(c, err);
	for (k = 0; k < S->nrec; k++)
		if (S->rec[k].ipage == first && S->rec[k].n == n)
			break;
	CH_CHECK(c, !err == (k < S->nrec), "%s: %s, but the driver %s such a record", c->what,
		 strerror(err), k < S->nrec ? "has" : "has no");
	if (!err)
		ch_drop_rec(S, k, 1);
	return 0;
}

static inline int op_vrw(struct churn *c)
{
	static char buf[3 * 4096];
	struct ch_shared *S = c->S;
	struct ch_map *m = ch_any_map(c);
	int write = ch_r(c, 2), err;
	__u64 iova, len = 1 + ch_r(c, sizeof(buf));

	if (!S->dm_open)
		return 0;
	iova = m ? ch_iova(m->ipage) + ch_r(c, m->npages * PAGE) : ch_iova(ch_r(c, CH_WIN_PAGES));
	/* Zeros: harmless to the edu registers if the vaddr is its BAR. */
	memset(buf, 0, sizeof(buf));
	ch_note(c, "dma_rw %s iova %#llx +%llu bytes", write ? "write" : "read", iova, len);
	err = ch_vmdev(c->dm, write ? VIR_MDEV_WRITE : VIR_MDEV_READ, iova, len, 0, 0, buf);
	ch_result(c, err);
	if (write && iova >= CH_IOVA) {
		uint32_t p0 = (iova - CH_IOVA) / PAGE, p1 = (iova + len - 1 - CH_IOVA) / PAGE;

		/* A failed write may have copied (and marked) its first chunks. */
		ch_dirty_mark(S, p0, p1 - p0 + 1, err ? D_MAYBE : D_DIRTY);
	}
	return 0;
}

static inline int op_dirty(struct churn *c)
{
	static __u64 bits[CH_WIN_PAGES / 64];
	struct ch_shared *S = c->S;
	uint32_t first, last;
	size_t words;
	int what = ch_r(c, 10), err;

	if (what < 3) {
		int start = what < 2;

		ch_note(c, "dirty tracking %s", start ? "start" : "stop");
		err = dirty_pages(c->mc, start ? VFIO_IOMMU_DIRTY_PAGES_FLAG_START :
						 VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP);
		ch_result(c, err);
		CH_CHECK(c, !err == !!S->iommu_set, "%s: %s", c->what, strerror(err));
		if (!err && start && !S->tracking)
			ch_dirty_start(S);
		if (!err)
			S->tracking = start;
		return 0;
	}
	ch_range(c, &first, &last);
	words = (last - first + 1 + 63) / 64;
	memset(bits, 0, words * 8);
	ch_note(c, "get dirty bitmap iova %#llx +%u pages", ch_iova(first), last - first + 1);
	err = dirty_bitmap(c->mc, ch_iova(first), (__u64)(last - first + 1) * PAGE, PAGE, bits,
			   words * 8);
	ch_result(c, err);
	CH_CHECK(c, !err == (S->iommu_set && S->tracking && !ch_bisects_start(S, first) &&
			     !ch_bisects_end(S, last)),
		 "%s: %s (tracking %d)", c->what, strerror(err), S->tracking);
	if (!err && ch_check_report(c, bits, first, last - first + 1))
		return -1;
	if (!err)
		ch_dirty_reported(S, first, last - first + 1);
	return 0;
}

static inline int ch_set_iommu(struct churn *c)
{
	long before = module_refcnt(c->module);
	int err = vfio_errno(ioctl(c->mc, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));

	CH_CHECK(c, !err, "VFIO_SET_IOMMU: %s", strerror(err));
	CH_CHECK(c, module_refcnt(c->module) == before + 1,
		 "the container is not served by %s (refcnt %ld, was %ld)", c->module,
		 module_refcnt(c->module), before);
	c->S->iommu_set = 1;
	return 0;
}

static inline int ch_open_dm(struct churn *c)
{
	c->dm = ioctl(c->gm, VFIO_GROUP_GET_DEVICE_FD, c->vmdev);
	CH_CHECK(c, c->dm >= 0, "opening the vir_mdev device: %s", strerror(errno));
	c->S->dm_open = 1;
	return 0;
}

static inline void ch_close_dm(struct churn *c)
{
	close(c->dm);
	c->dm = -1;
	ch_model_dm_close(c->S);
}

/*
 * Whether a join of the edu group (an IOMMU domain replaying the mappings) is excluded: in the
 * differential when the model has a mapping of an exited process (6.12 type1 replays it with the
 * joining process's memory, current->mm, not the owner's); in the differential and with
 * avoid_taint when it would taint a mapping (a vendor pin of RAM where the memory is MMIO now).
 */
static inline int ch_join_excluded(struct churn *c)
{
	struct ch_shared *S = c->S;
	uint32_t p;
	int i;

	for (i = 0; i < CH_MAXMAP; i++) {
		struct ch_map *m = &S->map[i];

		if (!m->used)
			continue;
		if (c->diff && !S->alive[m->owner])
			return 1;
		for (p = m->ipage; p < m->ipage + m->npages && (c->diff || c->avoid_taint); p++)
			if (S->vref[p] && (S->kind[m->vpage + (p - m->ipage)] != K_RAM ||
					   S->vgen[p] != S->gen[m->vpage + (p - m->ipage)]))
				return 1;
	}
	return 0;
}

static inline int op_group(struct churn *c)
{
	struct ch_shared *S = c->S;
	int what = ch_r(c, 6), err, i, expect_ok = 1;
	uint32_t k;

	switch (what) {
	case 0:
	case 1:	/* G1, the edu group: join or leave */
		if (!S->g1_in) {
			if (S->iommu_set && ch_join_excluded(c))
				return 0;	/* excluded */
			for (i = 0; i < CH_MAXMAP; i++) {
				struct ch_map *m = &S->map[i];

				if (!m->used)
					continue;
				if (!S->alive[m->owner])
					expect_ok = 0;
				for (k = 0; k < m->npages; k++)
					if (S->kind[m->vpage + k] == K_HOLE)
						expect_ok = 0;
			}
			ch_note(c, "edu group joins%s", S->iommu_set ? "" : " (first group)");
			err = vfio_errno(ioctl(c->g1, VFIO_GROUP_SET_CONTAINER, &c->mc));
			ch_result(c, err);
			CH_CHECK(c, expect_ok ? !err : !!err, "%s: %s (a hole or a mapping of an exited process: must fail)",
				 c->what, strerror(err));
			if (err)
				return 0;
			S->g1_in = 1;
			if (!S->iommu_set)
				return ch_set_iommu(c);
			for (i = 0; i < CH_MAXMAP; i++) {
				struct ch_map *m = &S->map[i];

				if (!m->used)
					continue;
				ch_model_iommu_pin(S, m);
				for (k = 0; c->trace && k < m->npages; k++)
					if (S->tainted[m->ipage + k] && S->vref[m->ipage + k])
						ch_kmsg(c, "  taints IOVA %#llx: IOMMU pin of %s under a vendor pin of RAM (mapping %#llx +%u)\n",
							ch_iova(m->ipage + k),
							ch_kind_name[S->ikind[m->ipage + k]],
							ch_iova(m->ipage), m->npages);
			}
			return 0;
		}
		ch_note(c, "edu group leaves%s", S->gm_in ? "" : " (last group)");
		err = vfio_errno(ioctl(c->g1, VFIO_GROUP_UNSET_CONTAINER));
		ch_result(c, err);
		CH_CHECK(c, !err, "%s: %s", c->what, strerror(err));
		S->g1_in = 0;
		if (!S->gm_in)
			ch_model_release(S);
		else
			ch_dirty_scope_narrowed(S);
		for (i = 0; i < CH_MAXMAP; i++)
			S->map[i].iommu = 0;
		return 0;
	case 2:
	case 3:	/* GM, the vir_mdev group: join (and open the device) or leave */
		if (!S->gm_in) {
			ch_note(c, "vir_mdev group joins%s", S->iommu_set ? "" : " (first group)");
			err = vfio_errno(ioctl(c->gm, VFIO_GROUP_SET_CONTAINER, &c->mc));
			ch_result(c, err);
			CH_CHECK(c, !err, "%s: %s", c->what, strerror(err));
			S->gm_in = 1;
			if (!S->iommu_set && ch_set_iommu(c))
				return -1;
			return ch_r(c, 8) ? ch_open_dm(c) : 0;
		}
		ch_note(c, "vir_mdev group leaves%s%s", S->g1_in ? "" : " (last group)",
			S->dm_open ? " after closing its device" : "");
		if (S->dm_open)
			ch_close_dm(c);
		err = vfio_errno(ioctl(c->gm, VFIO_GROUP_UNSET_CONTAINER));
		ch_result(c, err);
		CH_CHECK(c, !err, "%s: %s", c->what, strerror(err));
		S->gm_in = 0;
		if (!S->g1_in)
			ch_model_release(S);
		return 0;
	default: /* the vir_mdev device: close (its pins go) and reopen */
		if (!S->gm_in)
			return 0;
		ch_note(c, "vir_mdev device %s", S->dm_open ? "closes and reopens" : "opens");
		if (S->dm_open)
			ch_close_dm(c);
		ch_result(c, 0);
		if (ch_check(c))
			return -1;
		return ch_open_dm(c);
	}
}

static inline int op_misbehave(struct churn *c)
{
	struct ch_shared *S = c->S;
	int v = ch_r(c, 4), err;

	if (!S->dm_open || c->diff)
		return 0;
	v = v == 3 ? 2 : v == 2 ? 1 : 0;
	ch_note(c, "vendor driver misbehaves: %d", v);
	err = ch_vmdev(c->dm, VIR_MDEV_MISBEHAVE, 0, 0, 0, v, NULL);
	ch_result(c, err);
	CH_CHECK(c, !err, "%s: %s", c->what, strerror(err));
	S->misbehave = v;
	return 0;
}

static inline int op_remap(struct churn *c)
{
	struct ch_shared *S = c->S;
	struct ch_map *m = ch_any_map(c);
	int how = ch_r(c, 10), shared = ch_r(c, 2);
	uint32_t vp, n;

	how = how < 3 ? R_ANON : how < 4 ? R_THP : how < 5 ? R_HUGE : how < 9 ? R_MMIO : R_HOLE;
	if (how == R_THP || how == R_HUGE) {
		vp = (m && ch_r(c, 2) ? m->vpage / CH_SLOT_PAGES : ch_r(c, CH_SLOTS)) * CH_SLOT_PAGES;
		n = CH_SLOT_PAGES;
	} else if (m && ch_r(c, 3)) {
		/* The memory behind (a part of) a mapping. */
		vp = m->vpage;
		n = m->npages;
		if (ch_r(c, 3) == 0) {
			vp += ch_r(c, n);
			n = 1 + ch_r(c, m->vpage + m->npages - vp);
		}
	} else {
		vp = ch_r(c, CH_ARENA_PAGES);
		n = 1 + ch_r(c, 64);
	}
	if (how == R_MMIO && n > (uint32_t)c->bar_pages)
		n = c->bar_pages;
	if (vp + n > CH_ARENA_PAGES)
		n = CH_ARENA_PAGES - vp;
	ch_note(c, "remap vaddr page %u +%u pages (was %s) as %s%s", vp, n,
		ch_kind_name[S->kind[vp]], ch_remap_name[how],
		how == R_HUGE ? (shared ? " shared" : " private") : "");
	if (ch_remap(c, vp, n, how, shared))
		return -1;
	ch_result(c, 0);
	return 0;
}

static int ch_step(struct churn *c, int op);

/* A fork child makes a few calls with the inherited fds, then exits (sometimes unmapping first). */
static inline int op_fork(struct churn *c)
{
	struct ch_shared *S = c->S;
	int id, status, i, n = 1 + ch_r(c, 6), tidy = ch_r(c, 2);
	unsigned long long child_seed = ch_rnd(c);
	pid_t pid;

	if (S->nown >= CH_MAXOWN || c->child)
		return 0;
	id = S->nown++;
	S->alive[id] = 1;
	ch_note(c, "fork: child %d makes %d calls%s", id, n, tidy ? " and unmaps its own" : "");
	fflush(stdout);
	pid = fork();
	CH_CHECK(c, pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		static const int ops[] = { OP_MAP, OP_MAP, OP_UNMAP, OP_VPIN, OP_VPIN, OP_VUNPIN,
					   OP_VRW, OP_DIRTY };

		c->me = id;
		c->child = 1;
		c->rs = child_seed | 1;
		if (ch_check(c))
			_exit(1);
		for (i = 0; i < n && !S->failed; i++)
			if (ch_step(c, ops[ch_r(c, sizeof(ops) / sizeof(ops[0]))]))
				_exit(1);
		for (i = 0; tidy && i < CH_MAXMAP && !S->failed; i++) {
			struct ch_map *m = &S->map[i];
			long long want;
			__u64 size;
			int err;

			if (!m->used || m->owner != id)
				continue;
			want = ch_model_unmap(c, m->ipage, m->ipage + m->npages - 1, 0);
			if (want < 0)
				continue;
			ch_note(c, "unmap own iova %#llx +%u pages", ch_iova(m->ipage), m->npages);
			err = dma_unmap(c->mc, ch_iova(m->ipage), (__u64)m->npages * PAGE, 0, &size);
			ch_result(c, err);
			if (err) {
				ch_fail(c, __LINE__, "%s: %s", c->what, strerror(err));
				_exit(1);
			}
			ch_model_unmap(c, m->ipage, m->ipage + m->npages - 1, 1);
			if (ch_check_level(c, 2))
				_exit(1);
		}
		_exit(S->failed ? 1 : 0);
	}
	CH_CHECK(c, waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
	S->alive[id] = 0;
	ch_note(c, "fork: child %d exited (status %#x)", id, status);
	ch_result(c, 0);
	if (S->failed)
		return -1;
	CH_CHECK(c, WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork child ended with status %#x",
		 status);
	return 0;
}

static const int ch_weight[OP_N] = {
	[OP_MAP] = 20, [OP_UNMAP] = 12, [OP_VPIN] = 16, [OP_VUNPIN] = 10, [OP_VRW] = 5,
	[OP_DIRTY] = 8, [OP_GROUP] = 8, [OP_REMAP] = 16, [OP_FORK] = 1, [OP_MISBEHAVE] = 1,
};

static int ch_step(struct churn *c, int op)
{
	struct ch_shared *S = c->S;
	int r, ok;

	double t0 = ch_now();

	c->noted = 0;
	switch (op) {
	case OP_MAP: r = op_map(c); break;
	case OP_UNMAP: r = op_unmap(c); break;
	case OP_VPIN: r = op_vpin(c); break;
	case OP_VUNPIN: r = op_vunpin(c); break;
	case OP_VRW: r = op_vrw(c); break;
	case OP_DIRTY: r = op_dirty(c); break;
	case OP_GROUP: r = op_group(c); break;
	case OP_REMAP: r = op_remap(c); break;
	case OP_FORK: r = op_fork(c); break;
	default: r = op_misbehave(c);
	}
	if (r)
		return r;
	if (!c->noted) {
		/* Not possible in this state, or excluded in differential mode. */
		S->skipped++;
		return 0;
	}
	ok = c->last_err == 0;
	S->t_op[op] += ch_now() - t0;
	S->ops[op]++;
	S->ops_ok[op] += ok;
	S->h_ok = ch_hash(S->h_ok, (uint64_t)(op << 1 | ok));
	S->steps++;
	c->seq_steps++;
	return ch_check_level(c, op == OP_VRW || op == OP_DIRTY || op == OP_REMAP ? 0 : 2);
}

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
