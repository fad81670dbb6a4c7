/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The churn fuzzer's model of the container: mappings, IOMMU and vendor pins, the pins and
 * VmLck it expects, and the check after every step. Part of tests/churn.h, which includes it.
 */
#ifndef CHURN_MODEL_H
#define CHURN_MODEL_H

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

#endif /* CHURN_MODEL_H */
