/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vir-bench: the MAP/UNMAP workloads (1 GiB of each kind of memory, small maps, the device
 * BAR, growth, memory per mapping). Included by bench.c only.
 */
#ifndef VIR_BENCH_W_MAP_H
#define VIR_BENCH_W_MAP_H

/* --- Map workloads ---------------------------------------------------------------------------- */

/* MAP then UNMAP of @len bytes at @va in one mapping at @iova; the times of each, in ms. */
static void map_unmap(struct ctx *c, __u64 iova, const void *va, __u64 len, double *tmap,
		      double *tunmap)
{
	double t0, t1, t2;
	int err;

	t0 = now_ms();
	err = ctx_map(c, iova, va, len);
	t1 = now_ms();
	if (err)
		fail("map", err);
	err = ctx_unmap(c, iova, len);
	t2 = now_ms();
	if (err)
		fail("unmap", err);
	*tmap = t1 - t0;
	*tunmap = t2 - t1;
}

/*
 * One 1 GiB mapping of @va in a container or IOAS with the first edu device: three lines. After
 * ours, the floor of the same memory (floor.h), as the pseudo-backend "floor" of the map+unmap.
 */
static void map_unmap_1g(enum bk b, const char *tag, const char *kind, const void *va)
{
	double tm, tu, fl, t0, t1;
	struct ctx c;
	char w[64];
	int i;

	ctx_open(b, WANT(EDU), &c);
	snprintf(w, sizeof(w), "map_unmap_1g_%s", kind);
	prof_start();
	map_unmap(&c, 0, va, GIB, &tm, &tu);
	/* Profiled: 10 more (tens of ms each with large pages). */
	for (i = 0; i < prof_reps(10); i++)
		map_unmap(&c, 0, va, GIB, &t0, &t1);
	prof_stop(w, bk_name[b]);
	ctx_close(&c);
	report(tag, w, b, tm + tu, "ms");
	snprintf(w, sizeof(w), "map_1g_%s", kind);
	report(tag, w, b, tm, "ms");
	snprintf(w, sizeof(w), "unmap_1g_%s", kind);
	report(tag, w, b, tu, "ms");
	if (b != RUST)
		return;
	/* The floor profiled as ours, as the pseudo-backend "floor". */
	snprintf(w, sizeof(w), "map_unmap_1g_%s", kind);
	prof_start();
	fl = floor_pin_unpin(va, GIB);
	for (i = 0; i < prof_reps(10) && fl >= 0; i++)
		floor_pin_unpin(va, GIB);
	prof_stop(w, "floor");
	if (fl == -ENOSYS)
		printf("BENCH-NA map_unmap_1g_%s floor this kernel has no io_uring (CONFIG_IO_URING)\n",
		       kind);
	else if (fl < 0)
		fail("the floor: io_uring fixed buffer of 1 GiB", (int)-fl);
	else
		printf("BENCH %smap_unmap_1g_%s floor %.3f ms\n", tag, kind, fl);
}

static void w_4k(enum bk b, const char *tag)
{
	map_unmap_1g(b, tag, "4k", anon);
}

static void w_2m(enum bk b, const char *tag)
{
	map_unmap_1g(b, tag, "2m_hugetlb", huge2m);
}

static void w_1g(enum bk b, const char *tag)
{
	map_unmap_1g(b, tag, "1g_hugetlb", huge1g);
}

static void w_thp(enum bk b, const char *tag)
{
	map_unmap_1g(b, tag, "thp", thp);
}

/* A fresh 1 GiB of 4K pages per sample: its physical layout differs each time. */
static void w_fresh(enum bk b, const char *tag)
{
	char *p = alloc_4k(GIB);

	/* Populated after THP is off for it (MAP_POPULATE would fault in THPs first). */
	if (madvise(p, GIB, MADV_POPULATE_WRITE))
		fail("MADV_POPULATE_WRITE", errno);
	map_unmap_1g(b, tag, "4k_fresh", p);
	if (munmap(p, GIB))
		fail("munmap", errno);
}

/* @n mappings of 64 KiB from @iova, then UNMAP_ALL; in ms. */
static double many_maps(struct ctx *c, __u64 iova, int n)
{
	double t0, t1;
	int i, err;

	t0 = now_ms();
	for (i = 0; i < n; i++) {
		err = ctx_map(c, iova + (__u64)i * SMALL, anon + (size_t)i * SMALL, SMALL);
		if (err)
			fail("small map", err);
	}
	err = ctx_unmap_all(c, (__u64)n * SMALL);
	t1 = now_ms();
	if (err)
		fail("unmap all", err);
	return t1 - t0;
}

static void w_small(enum bk b, const char *tag)
{
	struct ctx c;

	double t;

	ctx_open(b, WANT(EDU), &c);
	prof_start();
	t = many_maps(&c, 0, 16384);
	prof_stop("map_16k_64k_unmap_all", bk_name[b]);
	report(tag, "map_16k_64k_unmap_all", b, t, "ms");
	ctx_close(&c);
}

#define BAR_ROUNDS 200

/*
 * Peer-to-peer: the second edu device's BAR0 (1 MiB of MMIO, a VM_PFNMAP mapping of its device
 * fd) mapped for the first one and unmapped, 200 times; per pair, in microseconds.
 */
static void w_bar(enum bk b, const char *tag)
{
	struct vfio_region_info info = {
		.argsz = sizeof(info), .index = VFIO_PCI_BAR0_REGION_INDEX,
	};
	char reason[400];
	double t0, t1;
	struct ctx c;
	void *bar;
	int i, err;

	ctx_open(b, WANT(EDU) | WANT(EDU2), &c);
	if (ioctl(c.dev[EDU2], VFIO_DEVICE_GET_REGION_INFO, &info))
		fail("VFIO_DEVICE_GET_REGION_INFO", errno);
	if (!(info.flags & VFIO_REGION_INFO_FLAG_MMAP) || info.size != MIB)
		failf("edu BAR0: flags %#x, size %llu: not a mmappable 1 MiB BAR", info.flags,
		      (unsigned long long)info.size);
	bar = mmap(NULL, info.size, PROT_READ | PROT_WRITE, MAP_SHARED, c.dev[EDU2], info.offset);
	if (bar == MAP_FAILED)
		fail("mmap of the edu BAR", errno);
	if (*(volatile unsigned int *)bar != EDU_IDENT)
		failf("edu BAR0 reads %#x, not the edu ident", *(volatile unsigned int *)bar);
	err = ctx_map(&c, HIGH_IOVA, bar, MIB);
	if (err && b == IOMMUFD) {
		/* Not served, and why: iommufd pins user memory, which a BAR is not. */
		snprintf(reason, sizeof(reason),
			 "IOMMU_IOAS_MAP of a device BAR mmap (VM_PFNMAP) fails with %s: iommufd "
			 "pins user memory with pin_user_pages(), which refuses VM_IO/VM_PFNMAP "
			 "mappings", strerror(err));
		na("p2p_bar_map_unmap_1m", b, reason);
		goto out;
	}
	if (err)
		fail("BAR map", err);
	err = ctx_unmap(&c, HIGH_IOVA, MIB);
	if (err)
		fail("BAR unmap", err);
	t0 = now_ms();
	for (i = 0; i < BAR_ROUNDS; i++) {
		err = ctx_map(&c, HIGH_IOVA, bar, MIB);
		if (err)
			fail("BAR map", err);
		err = ctx_unmap(&c, HIGH_IOVA, MIB);
		if (err)
			fail("BAR unmap", err);
	}
	t1 = now_ms();
	report(tag, "p2p_bar_map_unmap_1m", b, (t1 - t0) * 1e3 / BAR_ROUNDS, "us");
out:
	munmap(bar, info.size);
	ctx_close(&c);
}

/*
 * Growth: map+unmap of 4K pages in mappings of 256 MiB, 1 GiB and 2 GiB, per page (ns). Every
 * size covers the same GROWTH_SPAN of the buffer, one window after the other (8, 2 and 1
 * MAP+UNMAP pairs), so that the sizes differ in size only, not in which memory they pin: the
 * physical fragmentation of a buffer is not spread evenly (Documentation/benchmarks.rst, growth).
 */
#define GROWTH_SPAN (2 * GIB)

static void w_growth_4k(enum bk b, const char *tag)
{
	static const struct { __u64 len; const char *name; } sizes[] = {
		{ 256 * MIB, "growth_4k_256m" }, { GIB, "growth_4k_1g" }, { 2 * GIB, "growth_4k_2g" },
	};
	double tm, tu, total;
	struct ctx c;
	__u64 off;
	size_t i;

	ctx_open(b, WANT(EDU), &c);
	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		total = 0;
		for (off = 0; off < GROWTH_SPAN; off += sizes[i].len) {
			map_unmap(&c, HIGH_IOVA, anon + off, sizes[i].len, &tm, &tu);
			total += tm + tu;
		}
		report(tag, sizes[i].name, b, total * 1e6 / (GROWTH_SPAN / PAGE), "ns");
	}
	ctx_close(&c);
}

/*
 * Growth: 4,096, 16,384 and 65,535 mappings of 64 KiB, then UNMAP_ALL, per mapping (us). 65,535
 * is type1's (and our) default dma_entry_limit, one short of 64Ki.
 */
static void w_growth_small(enum bk b, const char *tag)
{
	static const struct { int n; const char *name; } counts[] = {
		{ 4096, "growth_small_4k" }, { 16384, "growth_small_16k" },
		{ 65535, "growth_small_64k" },
	};
	struct ctx c;
	size_t i;

	ctx_open(b, WANT(EDU), &c);
	for (i = 0; i < ARRAY_SIZE(counts); i++)
		report(tag, counts[i].name, b,
		       many_maps(&c, HIGH_IOVA, counts[i].n) * 1e3 / counts[i].n, "us");
	ctx_close(&c);
}

/*
 * Kernel memory per mapping: 16384 one-page mappings in an mdev-only container, or an IOAS with
 * only the vendor device attached (no pinning either way).
 */
static void w_mem_map(enum bk b, const char *tag)
{
	long before, after;
	struct ctx c;
	int i, err;

	ctx_open(b, WANT(VMDEV), &c);
	before = slab_bytes();
	for (i = 0; i < 16384; i++) {
		err = ctx_map(&c, (__u64)i * PAGE, anon + (size_t)i * PAGE, PAGE);
		if (err)
			fail("mapping for memory", err);
	}
	after = slab_bytes();
	ctx_close(&c);
	report(tag, "mem_per_mapping", b, (double)(after - before) / 16384, "bytes");
}

#endif /* VIR_BENCH_W_MAP_H */
