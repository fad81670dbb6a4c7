/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vir-bench: the benchmark's memory (4K, THP, 2M and 1G hugetlb buffers, the 64 GiB
 * reserve) and the kernel memory measures. Included by bench.c only.
 */
#ifndef VIR_BENCH_MEMORY_H
#define VIR_BENCH_MEMORY_H

/* --- Memory ------------------------------------------------------------------------------------ */

/* The benchmark's memory, allocated for the workloads selected (struct workload's needs). */
static char *anon;		/* 4K pages only (THP off), populated page by page */
static size_t anon_size;
static char *huge2m;		/* 1 GiB of 2 MiB hugetlb pages */
static char *huge1g;		/* one 1 GiB hugetlb page */
static char *thp;		/* 1 GiB of anonymous memory in transparent huge pages */
static char *reserve;		/* 64 GiB of PROT_NONE with 64 populated pages */
static __u64 *bitmap;		/* room for the bitmap of 64 GiB */

#define BIG_IOVA 0x1000000000ULL
#define BIG (64 * GIB)

/* 4K-only anonymous memory: THP off before the first touch, then populated. */
static char *alloc_4k(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fail("allocating 4K memory", errno);
	if (madvise(p, len, MADV_NOHUGEPAGE))
		fail("MADV_NOHUGEPAGE", errno);
	return p;
}

static long read_long(const char *path)
{
	char buf[64];
	long v = -1;
	int fd = open(path, O_RDONLY);

	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);

		if (n > 0) {
			buf[n] = 0;
			v = strtol(buf, NULL, 10);
		}
		close(fd);
	}
	return v;
}

/* AnonHugePages of the mapping that contains @p, in kB, from /proc/self/smaps. */
static long anon_huge_kb(const void *p, unsigned long *start, unsigned long *end)
{
	unsigned long a = (uintptr_t)p, s, e;
	char line[512];
	bool in = false;
	long kb = -1;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		fail("/proc/self/smaps", errno);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = s <= a && a < e;
			if (in) {
				*start = s;
				*end = e;
			}
			continue;
		}
		if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

/* The THP buffer must be THP: every one of its 512 PMDs a huge page (BENCH-ERROR otherwise). */
static void check_thp(void)
{
	unsigned long s = 0, e = 0;
	long kb = anon_huge_kb(thp, &s, &e);

	if (kb < (long)(GIB >> 10) || s > (uintptr_t)thp || e < (uintptr_t)thp + GIB)
		failf("THP buffer %p: AnonHugePages %ld kB of its mapping %lx-%lx, want %llu kB",
		      thp, kb, s, e, GIB >> 10);
}

static void alloc_thp(void)
{
	char mode[128] = "";
	char *p;
	size_t i;
	int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, mode, sizeof(mode) - 1);

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		failf("/sys/kernel/mm/transparent_hugepage/enabled unreadable (no THP in the kernel?)");
	mode[n] = 0;
	if (!strstr(mode, "[always]") && !strstr(mode, "[madvise]"))
		failf("THP disabled in the guest: transparent_hugepage/enabled is %s", mode);
	/* 2 MiB aligned: map 2 MiB more and cut. */
	p = mmap(NULL, GIB + 2 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fail("allocating the THP buffer", errno);
	thp = (char *)(((uintptr_t)p + 2 * MIB - 1) & ~(uintptr_t)(2 * MIB - 1));
	if (thp > p && munmap(p, thp - p))
		fail("munmap", errno);
	if (munmap(thp + GIB, p + 2 * MIB - thp))
		fail("munmap", errno);
	if (madvise(thp, GIB, MADV_HUGEPAGE))
		fail("MADV_HUGEPAGE", errno);
	for (i = 0; i < GIB; i += PAGE)
		thp[i] = 1;
	check_thp();
}

static void alloc_huge1g(void)
{
	long free1g = read_long("/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages");

	if (free1g < 1)
		failf("no free 1 GiB hugetlb page (%ld): boot with hugepagesz=1G hugepages=1 on a CPU "
		      "with pdpe1gb", free1g);
	huge1g = mmap(NULL, GIB, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_1GB | MAP_POPULATE, -1, 0);
	if (huge1g == MAP_FAILED)
		fail("allocating a 1 GiB hugetlb page", errno);
	if ((uintptr_t)huge1g & (GIB - 1))
		failf("1 GiB hugetlb page at %p, not 1 GiB aligned", huge1g);
}

static void alloc_huge2m(void)
{
	huge2m = mmap(NULL, GIB, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
	if (huge2m == MAP_FAILED)
		fail("allocating 1 GiB of 2 MiB hugetlb pages", errno);
}

static void alloc_reserve(void)
{
	int i;

	reserve = mmap(NULL, BIG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	bitmap = calloc(BIG / PAGE / 8, 1);
	if (reserve == MAP_FAILED || !bitmap)
		fail("allocating the reservation", errno);
	/* 64 real pages in the reservation, for the vendor driver to pin. */
	for (i = 0; i < 64; i++)
		if (mmap(reserve + (BIG / 64) * i, PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_POPULATE, -1, 0) == MAP_FAILED)
			fail("sparse pages", errno);
}

/* Unreclaimable slab memory in bytes, after letting RCU-freed objects go. */
static long slab_bytes(void)
{
	usleep(200000);
	return proc_field("/proc/meminfo", "SUnreclaim") * 1024;
}

/* Kernel memory a bitmap may take: unreclaimable slab and vmalloc, in bytes. */
static long kmem_bytes(void)
{
	usleep(200000);
	return (proc_field("/proc/meminfo", "SUnreclaim") +
		proc_field("/proc/meminfo", "VmallocUsed")) * 1024;
}

#endif /* VIR_BENCH_MEMORY_H */
