/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The churn fuzzer's dirty model (included by tests/churn.h after its container model): what a
 * dirty report (GET_BITMAP, unmap with a dirty bitmap) must say for every mapped IOVA page.
 *
 * The semantics are type1's, which ours follows (Documentation/dirty-tracking.rst):
 *
 *   - dirty[p] is page p's bit in its mapping's own bitmap while tracking: 0 at MAP_DMA and at
 *     DIRTY_PAGES START, except that START sets it for pages vendor-pinned then; a successful
 *     vendor pin sets it; a successful vfio_dma_rw() write sets it for every page it touched; an
 *     IOMMU-backed group (edu, which never pins) leaving the container while tracking sets it for
 *     every mapped page (what the device may have written while it was in is reported once);
 *   - a report gives 1 for every page of a mapping the IOMMU mapped while an IOMMU-backed group is
 *     in the container ("everything is dirty"), else dirty[p]; after a GET_BITMAP, dirty[p] is
 *     reset to "vendor-pinned now" (a pinned page stays dirty);
 *   - D_MAYBE: a vfio_dma_rw() write that failed may have written part of its range (both backends
 *     copy chunk by chunk); such a page may be reported either way, once.
 *
 * Ours must report exactly this, and no bit of an unmapped IOVA. type1 may report more (its
 * known over-reports, Documentation/reliability.rst: bits of a vendor pin it unwound, and stale
 * bits of a previous report shifted into unmapped IOVAs, past the range asked for, and ORed into
 * the next mapping's bits); those are counted, not failed. Any bit the model says is dirty and a
 * backend does not report fails the run on either backend: that would be a page a migration misses.
 */
#ifndef CHURN_DIRTY_H
#define CHURN_DIRTY_H

enum { D_CLEAN, D_DIRTY, D_MAYBE };

/* Pages [first, first + n) of the window got @v (D_DIRTY, or D_MAYBE only over clean pages). */
static inline void ch_dirty_mark(struct ch_shared *S, uint32_t first, uint32_t n, uint8_t v)
{
	uint32_t p;

	if (!S->tracking)
		return;
	for (p = first; p < first + n && p < CH_WIN_PAGES; p++)
		if (ch_map_at(S, p) && (v == D_DIRTY || S->dirty[p] == D_CLEAN))
			S->dirty[p] = v;
}

/* DIRTY_PAGES START while not tracking: the mappings' bitmaps hold their vendor-pinned pages. */
static inline void ch_dirty_start(struct ch_shared *S)
{
	uint32_t p;

	for (p = 0; p < CH_WIN_PAGES; p++)
		S->dirty[p] = S->vref[p] ? D_DIRTY : D_CLEAN;
}

/* An IOMMU-backed group left while tracking: everything mapped is dirty until reported. */
static inline void ch_dirty_scope_narrowed(struct ch_shared *S)
{
	ch_dirty_mark(S, 0, CH_WIN_PAGES, D_DIRTY);
}

/* What a report must say for page @p: -1 if it is not mapped, else D_CLEAN, D_DIRTY or D_MAYBE. */
static inline int ch_dirty_expect(struct ch_shared *S, uint32_t p)
{
	struct ch_map *m = ch_map_at(S, p);

	if (!m)
		return -1;
	if (S->g1_in && m->iommu)
		return D_DIRTY;
	return S->dirty[p];
}

/* After a GET_BITMAP of [first, first + n): what stays dirty is what is vendor-pinned. */
static inline void ch_dirty_reported(struct ch_shared *S, uint32_t first, uint32_t n)
{
	uint32_t p;

	for (p = first; p < first + n; p++)
		S->dirty[p] = S->vref[p] ? D_DIRTY : D_CLEAN;
}

#endif /* CHURN_DIRTY_H */
