/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The churn fuzzer's DMA steps: map, unmap (ranges, UNMAP_ALL, with a dirty bitmap), vendor
 * pin, unpin and dma_rw, dirty tracking and GET_BITMAP, each checked against the model. Part of
 * tests/churn.h, which includes it.
 */
#ifndef CHURN_DMA_STEPS_H
#define CHURN_DMA_STEPS_H

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
static inline int ch_check_report(struct churn *c, const __u64 *bits, uint32_t first,
				  uint32_t npages)
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
	uint32_t fail_at = UINT32_MAX;
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
			fail_at = fail_at < p ? fail_at : p;
			continue;
		}
		if (S->vref[p])
			continue;
		if (!S->alive[pm->owner] || S->kind[pm->vpage + (p - pm->ipage)] != K_RAM) {
			expect_ok = 0;
			fail_at = fail_at < p ? fail_at : p;
		}
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
	if (err && S->iommu_set && !unaligned) {
		/*
		 * vir_mdev pins in calls of VIR_MDEV_PIN_CHUNK pages, each all or nothing, and unpins
		 * the calls that succeeded when a later one fails: those pages were the driver's,
		 * so they are dirty (where it failed, an uncertain page, is not known exactly).
		 */
		if (uncertain)
			ch_dirty_mark(S, first, n, D_MAYBE);
		else if (fail_at != UINT32_MAX)
			ch_dirty_mark(S, first, (fail_at - first) / VIR_MDEV_PIN_CHUNK * VIR_MDEV_PIN_CHUNK,
				      D_DIRTY);
	}
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

#endif /* CHURN_DMA_STEPS_H */
