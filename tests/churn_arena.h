/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The churn fuzzer's memory arena: remaps of the memory behind mapped vaddrs (anonymous, THP,
 * hugetlb, MMIO, holes). Part of tests/churn.h, which includes it.
 */
#ifndef CHURN_ARENA_H
#define CHURN_ARENA_H

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

#endif /* CHURN_ARENA_H */
