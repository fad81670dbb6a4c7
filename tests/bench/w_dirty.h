/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vir-bench: the dirty-tracking workloads (sparse, dense, all dirty). Included by bench.c only.
 */
#ifndef VIR_BENCH_W_DIRTY_H
#define VIR_BENCH_W_DIRTY_H

static const char na_mdev_dirty[] =
	"iommufd tracks dirty pages only in IOMMU page tables with hardware dirty tracking "
	"(IOMMU_HWPT_GET_DIRTY_BITMAP); what an emulated (mdev) device pins or writes with "
	"vfio_dma_rw() through an iommufd access is not recorded";

/* GET_BITMAP over 64 GiB of mapped IOVA with 64 pinned pages. */
static void w_bitmap_sparse(enum bk b, const char *tag)
{
	struct ctx c;
	double t0, t1;
	int err, i;

	if (b == IOMMUFD) {
		na("get_bitmap_64g_sparse", b, na_mdev_dirty);
		return;
	}
	ctx_open(b, WANT(VMDEV), &c);
	err = ctx_map(&c, BIG_IOVA, reserve, BIG);
	if (err)
		fail("64 GiB map", err);
	for (i = 0; i < 64; i++)
		if (vmdev(c.dev[VMDEV], VIR_MDEV_PIN, BIG_IOVA + (__u64)i * (BIG / 64), 1,
			  VIR_MDEV_FLAG_WRITE, NULL))
			fail("sparse pin", errno);
	if (dirty_pages(c.fd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START))
		fail("start", errno);
	prof_start();
	t0 = now_ms();
	err = dirty_bitmap(c.fd, BIG_IOVA, BIG, PAGE, bitmap, BIG / PAGE / 8);
	t1 = now_ms();
	/* Profiled: 50 more reports (the pinned pages stay dirty). */
	for (i = 0; i < prof_reps(50) && !err; i++)
		err = dirty_bitmap(c.fd, BIG_IOVA, BIG, PAGE, bitmap, BIG / PAGE / 8);
	prof_stop("get_bitmap_64g_sparse", bk_name[b]);
	if (err)
		fail("get bitmap", err);
	/* The 64 pinned pages are the dirty ones. */
	for (i = 0; i < 64; i++) {
		__u64 bit = (BIG / 64 / PAGE) * i;

		if (!(bitmap[bit / 64] & (1ULL << (bit % 64))))
			fail("bitmap content", EIO);
	}
	ctx_close(&c);
	report(tag, "get_bitmap_64g_sparse", b, t1 - t0, "ms");
}

#define DENSE (256 * MIB)
#define REREPORTS 7

/*
 * The dense mapping reported again, REREPORTS times, after the vendor driver wrote one page in
 * each 128 MiB half (a page that moves): the report that follows a migration pass, with its
 * code warm. Both backends copy the same 8 KiB (type1 its bitmap, ours both chunks, fresh
 * again). Each bitmap is checked exactly; the median time is returned.
 */
static double dense_rereports(struct ctx *c)
{
	double t[REREPORTS];
	char byte = 0x5a;
	int k;
	__u64 i;

	for (k = 0; k < REREPORTS; k++) {
		__u64 p0 = 3 + k, p1 = DENSE / PAGE / 2 + 64 * k;
		double t0;

		if (vmdev(c->dev[VMDEV], VIR_MDEV_WRITE, p0 * PAGE, 1, 0, &byte) ||
		    vmdev(c->dev[VMDEV], VIR_MDEV_WRITE, p1 * PAGE, 1, 0, &byte))
			fail("re-report dma_rw", errno);
		memset(bitmap, 0xff, DENSE / PAGE / 8);
		t0 = now_ms();
		if (dirty_bitmap(c->fd, 0, DENSE, PAGE, bitmap, DENSE / PAGE / 8))
			fail("re-report get bitmap", errno);
		t[k] = now_ms() - t0;
		for (i = 0; i < DENSE / PAGE / 64; i++) {
			__u64 want = (i == p0 / 64 ? 1ULL << (p0 % 64) : 0) |
				     (i == p1 / 64 ? 1ULL << (p1 % 64) : 0);

			if (bitmap[i] != want)
				failf("re-report %d: word %llu is %#llx, not %#llx", k,
				      (unsigned long long)i, (unsigned long long)bitmap[i],
				      (unsigned long long)want);
		}
	}
	qsort(t, REREPORTS, sizeof(t[0]), cmp_double);
	return t[REREPORTS / 2];
}

/*
 * Dense dirty: in a vir_mdev (mdev-only) container with dirty tracking on, the vendor driver
 * writes every page of a 256 MiB mapping with vfio_dma_rw() (1 MiB per call), then GET_BITMAP:
 * its time, the writes' time (informational), and the kernel memory (slab and vmalloc) that
 * tracking holds before GET_BITMAP, from before DIRTY_PAGES START.
 */
static void w_dense(enum bk b, const char *tag)
{
	static char *src;
	long before, after;
	double t0, t1, t2, t3, rereport;
	struct ctx c;
	__u64 i;
	int err;

	if (b == IOMMUFD) {
		na("dirty_dense_256m_get_bitmap", b, na_mdev_dirty);
		na("dirty_dense_256m_rereport", b, na_mdev_dirty);
		na("dirty_dense_256m_rw", b, na_mdev_dirty);
		na("dirty_dense_256m_mem", b, na_mdev_dirty);
		return;
	}
	if (!src) {
		src = malloc(MIB);
		if (!src)
			fail("malloc", errno);
		memset(src, 0x5a, MIB);
	}
	ctx_open(b, WANT(VMDEV), &c);
	err = ctx_map(&c, 0, anon, DENSE);
	if (err)
		fail("dense map", err);
	before = kmem_bytes();
	if (dirty_pages(c.fd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START))
		fail("dirty start", errno);
	t0 = now_ms();
	for (i = 0; i < DENSE; i += MIB)
		if (vmdev(c.dev[VMDEV], VIR_MDEV_WRITE, i, MIB, 0, src))
			fail("dma_rw", errno);
	t1 = now_ms();
	after = kmem_bytes();
	memset(bitmap, 0, DENSE / PAGE / 8);
	t2 = now_ms();
	err = dirty_bitmap(c.fd, 0, DENSE, PAGE, bitmap, DENSE / PAGE / 8);
	t3 = now_ms();
	if (err)
		fail("dense get bitmap", err);
	for (i = 0; i < DENSE / PAGE / 64; i++)
		if (bitmap[i] != ~0ULL)
			failf("dense bitmap word %llu is %#llx, not all dirty",
			      (unsigned long long)i, (unsigned long long)bitmap[i]);
	rereport = dense_rereports(&c);
	if (dirty_pages(c.fd, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP))
		fail("dirty stop", errno);
	ctx_close(&c);
	report(tag, "dirty_dense_256m_get_bitmap", b, t3 - t2, "ms");
	report(tag, "dirty_dense_256m_rereport", b, rereport, "ms");
	report(tag, "dirty_dense_256m_rw", b, t1 - t0, "ms");
	report(tag, "dirty_dense_256m_mem", b, (double)(after - before), "bytes");
}

/*
 * GET_BITMAP of a 1 GiB mapping in a container with an IOMMU-backed group (edu): with a device
 * that could have written anything, every page is reported dirty.
 */
static void w_alldirty(enum bk b, const char *tag)
{
	struct iommu_hw_info info = { .size = sizeof(info) };
	double t0, t1;
	struct ctx c;
	__u64 i;
	int err;

	ctx_open(b, WANT(EDU), &c);
	if (b == IOMMUFD) {
		info.dev_id = c.devid[EDU];
		if (ioctl(c.fd, IOMMU_GET_HW_INFO, &info))
			fail("IOMMU_GET_HW_INFO", errno);
		na("get_bitmap_1g_all_dirty", b,
		   info.out_capabilities & IOMMU_HW_CAP_DIRTY_TRACKING ?
		   "the IOMMU has dirty tracking, but this benchmark does not measure iommufd's "
		   "IOMMU_HWPT_GET_DIRTY_BITMAP yet" :
		   "IOMMU_GET_HW_INFO reports no IOMMU_HW_CAP_DIRTY_TRACKING (QEMU's VT-d model "
		   "has none), so no dirty-tracking HWPT for IOMMU_HWPT_GET_DIRTY_BITMAP");
		ctx_close(&c);
		return;
	}
	err = ctx_map(&c, 0, anon, GIB);
	if (err)
		fail("all-dirty map", err);
	if (dirty_pages(c.fd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START))
		fail("dirty start", errno);
	memset(bitmap, 0, GIB / PAGE / 8);
	prof_start();
	t0 = now_ms();
	err = dirty_bitmap(c.fd, 0, GIB, PAGE, bitmap, GIB / PAGE / 8);
	t1 = now_ms();
	/* Profiled: 50 more reports (all dirty every time). */
	for (i = 0; i < (__u64)prof_reps(50) && !err; i++)
		err = dirty_bitmap(c.fd, 0, GIB, PAGE, bitmap, GIB / PAGE / 8);
	prof_stop("get_bitmap_1g_all_dirty", bk_name[b]);
	if (err)
		fail("all-dirty get bitmap", err);
	for (i = 0; i < GIB / PAGE / 64; i++)
		if (bitmap[i] != ~0ULL)
			failf("all-dirty bitmap word %llu is %#llx", (unsigned long long)i,
			      (unsigned long long)bitmap[i]);
	if (dirty_pages(c.fd, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP))
		fail("dirty stop", errno);
	err = ctx_unmap(&c, 0, GIB);
	if (err)
		fail("all-dirty unmap", err);
	ctx_close(&c);
	report(tag, "get_bitmap_1g_all_dirty", b, t1 - t0, "ms");
}

#endif /* VIR_BENCH_W_DIRTY_H */
