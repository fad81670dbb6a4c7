// SPDX-License-Identifier: GPL-2.0
/*
 * vir-bench: the guest side of `make bench`. One process, one boot: for every workload, a warm-up
 * run on each backend, then ROUNDS rounds alternating type1 and vfio_iommu_rust on the same memory.
 * The backend is switched by unloading or loading our module from this process (the VFIO core
 * asks the newest backend first, type1 serves when ours is not loaded), and each container's
 * serving backend is checked by module reference. Prints "BENCH <workload> <backend> <value>
 * <unit>" lines; scripts/bench.sh turns them into a table and a plot.
 */
#include <sys/syscall.h>
#include <time.h>
#include "../vfio_test.h"
#include "../mdev/vir_mdev.h"
#include "profile.h"

#define ROUNDS 5
#define GIB (1ULL << 30)
#define MIB (1ULL << 20)

static int fail(const char *what, int err)
{
	printf("BENCH-ERROR %s: %s\n", what, strerror(err));
	fflush(stdout);
	exit(1);
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Selects the backend of the next containers: loads or unloads our module. */
static void use_backend(enum vfio_backend b)
{
	int loaded = module_refcnt(RUST_MODULE) >= 0;

	if (b == BACKEND_RUST && !loaded) {
		int fd = open(env_str("VFIO_RUST_KO"), O_RDONLY | O_CLOEXEC);

		if (fd < 0 || syscall(SYS_finit_module, fd, "", 0))
			fail("loading vfio_iommu_rust", errno);
		close(fd);
	} else if (b == BACKEND_TYPE1 && loaded) {
		if (syscall(SYS_delete_module, RUST_MODULE, O_NONBLOCK))
			fail("unloading vfio_iommu_rust", errno);
	}
}

/* A container over @group_id served by @b (checked). */
static void open_on(enum vfio_backend b, int group_id, int *container, int *group)
{
	struct backend_refs before = backend_refs(), after;
	int err = open_container(group_id, VFIO_TYPE1v2_IOMMU, container, group);

	if (err)
		fail("opening a container", err);
	after = backend_refs();
	if (b == BACKEND_RUST ? after.rust != before.rust + 1 : after.type1 != before.type1 + 1)
		fail("container served by the wrong backend", EPROTO);
}

static const char *name(enum vfio_backend b)
{
	return b == BACKEND_RUST ? "rust" : "type1";
}

static void report(const char *workload, enum vfio_backend b, double value, const char *unit)
{
	printf("BENCH %s %s %.3f %s\n", workload, name(b), value, unit);
	fflush(stdout);
}

/* MAP_DMA + UNMAP_DMA of @len bytes at @buf in one mapping; profiled as @prof if it is given. */
static double map_unmap(enum vfio_backend b, void *buf, size_t len, const char *prof)
{
	int container, group, err;
	__u64 size;
	double t0, t1;

	open_on(b, env_int("VFIO_TEST_GROUP"), &container, &group);
	if (prof)
		prof_start();
	t0 = now_ms();
	err = dma_map(container, 0, (uintptr_t)buf, len, RW);
	if (err)
		fail("map", err);
	err = dma_unmap(container, 0, len, 0, &size);
	t1 = now_ms();
	if (prof)
		prof_stop(prof, name(b));
	if (err || size != len)
		fail("unmap", err ? err : EIO);
	close(group);
	close(container);
	return t1 - t0;
}

/*
 * map_unmap() of 512 MiB of memory allocated for the run and freed after it: 4K pages (THP off)
 * faulted in page by page, which the page allocator hands out physically scattered once memory has
 * been used (short physically contiguous runs, as in a process started on a busy host); or, with
 * @thp, transparent huge pages.
 */
static double map_unmap_fresh(enum vfio_backend b, int thp, const char *prof)
{
	size_t len = 512 * MIB, i;
	char *raw, *buf;
	double t;

	raw = mmap(NULL, len + 2 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		fail("fresh memory", errno);
	buf = (char *)(((uintptr_t)raw + 2 * MIB - 1) & ~(uintptr_t)(2 * MIB - 1));
	if (madvise(buf, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
		fail("madvise", errno);
	for (i = 0; i < len; i += PAGE)
		buf[i] = 1;
	t = map_unmap(b, buf, len, prof);
	munmap(raw, len + 2 * MIB);
	return t;
}

/* Whether VIR_BENCH_ONLY (a comma-separated list of workloads) is unset or names @w. */
static int selected(const char *w)
{
	const char *only = getenv("VIR_BENCH_ONLY");
	size_t n = strlen(w);

	for (const char *p = only; p && *p; p += strcspn(p, ",")) {
		p += *p == ',';
		if (!strncmp(p, w, n) && (p[n] == ',' || !p[n]))
			return 1;
	}
	return !only || !*only;
}

/* 16384 mappings of 64 KiB, then UNMAP_ALL. */
static double many_maps(enum vfio_backend b, char *buf)
{
	int container, group, i, err;
	double t0, t1;
	__u64 size;

	open_on(b, env_int("VFIO_TEST_GROUP"), &container, &group);
	t0 = now_ms();
	for (i = 0; i < 16384; i++) {
		err = dma_map(container, (__u64)i << 16, (uintptr_t)buf + ((size_t)i << 16), 1 << 16, RW);
		if (err)
			fail("small map", err);
	}
	err = dma_unmap(container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size);
	t1 = now_ms();
	if (err || size != GIB)
		fail("unmap all", err ? err : EIO);
	close(group);
	close(container);
	return t1 - t0;
}

/* The vir_mdev device in a container over @reserve (64 GiB of PROT_NONE with 64 RW pages). */
struct mdev_setup {
	int container, group, dev;
};

static void mdev_open(enum vfio_backend b, struct mdev_setup *m)
{
	open_on(b, env_int("VFIO_TEST_VMDEV_GROUP"), &m->container, &m->group);
	m->dev = ioctl(m->group, VFIO_GROUP_GET_DEVICE_FD, env_str("VFIO_TEST_VMDEV"));
	if (m->dev < 0)
		fail("vir_mdev device", errno);
}

static void mdev_close(struct mdev_setup *m)
{
	close(m->dev);
	close(m->group);
	close(m->container);
}

static int vmdev(int dev, unsigned long op, __u64 iova, __u64 count, __u32 flags)
{
	struct vir_mdev_cmd cmd = { .iova = iova, .count = count, .flags = flags };

	return ioctl(dev, op, &cmd) ? errno : 0;
}

#define BIG_IOVA 0x1000000000ULL
#define BIG (64 * GIB)

/* GET_BITMAP over 64 GiB of mapped IOVA with 64 pinned pages. */
static double get_bitmap(enum vfio_backend b, char *reserve, __u64 *bitmap)
{
	struct mdev_setup m;
	double t0, t1;
	int err, i;

	mdev_open(b, &m);
	if (dma_map(m.container, BIG_IOVA, (uintptr_t)reserve, BIG, RW))
		fail("64 GiB map", errno);
	for (i = 0; i < 64; i++)
		if (vmdev(m.dev, VIR_MDEV_PIN, BIG_IOVA + (__u64)i * (BIG / 64), 1, VIR_MDEV_FLAG_WRITE))
			fail("sparse pin", errno);
	if (dirty_pages(m.container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START))
		fail("start", errno);
	t0 = now_ms();
	err = dirty_bitmap(m.container, BIG_IOVA, BIG, PAGE, bitmap, BIG / PAGE / 8);
	t1 = now_ms();
	if (err)
		fail("get bitmap", err);
	/* The 64 pinned pages are the dirty ones. */
	for (i = 0; i < 64; i++) {
		__u64 bit = (BIG / 64 / PAGE) * i;

		if (!(bitmap[bit / 64] & (1ULL << (bit % 64))))
			fail("bitmap content", EIO);
	}
	mdev_close(&m);
	return t1 - t0;
}

/* 512 pages pinned and unpinned through the vendor driver, 64 times; per round of 512. */
static double pin_unpin(enum vfio_backend b, char *buf)
{
	struct mdev_setup m;
	double t0, t1;
	int i;

	mdev_open(b, &m);
	if (dma_map(m.container, 0, (uintptr_t)buf, 512 * PAGE, RW))
		fail("pin map", errno);
	t0 = now_ms();
	for (i = 0; i < 64; i++) {
		if (vmdev(m.dev, VIR_MDEV_PIN, 0, 512, VIR_MDEV_FLAG_WRITE) ||
		    vmdev(m.dev, VIR_MDEV_UNPIN, 0, 512, 0))
			fail("pin/unpin", errno);
	}
	t1 = now_ms();
	mdev_close(&m);
	return (t1 - t0) / 64;
}

/* Unreclaimable slab memory in bytes, after letting RCU-freed objects go. */
static long slab_bytes(void)
{
	char line[128];
	long kb = -1;
	FILE *f;

	usleep(200000);
	f = fopen("/proc/meminfo", "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "SUnreclaim: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

/* Kernel memory per mapping: 16384 one-page mappings in an mdev-only container (no pinning). */
static double mem_per_mapping(enum vfio_backend b, char *buf)
{
	struct mdev_setup m;
	long before, after;
	int i;

	mdev_open(b, &m);
	before = slab_bytes();
	for (i = 0; i < 16384; i++)
		if (dma_map(m.container, (__u64)i * PAGE, (uintptr_t)buf + (size_t)i * PAGE, PAGE, RW))
			fail("mapping for memory", errno);
	after = slab_bytes();
	mdev_close(&m);
	return (double)(after - before) / 16384;
}

/* Kernel memory per vendor-pinned page: 16384 pages pinned through the vendor driver. */
static double mem_per_pin(enum vfio_backend b, char *buf)
{
	struct mdev_setup m;
	long before, after;
	int i;

	mdev_open(b, &m);
	if (dma_map(m.container, 0, (uintptr_t)buf, 16384 * PAGE, RW))
		fail("pin memory map", errno);
	/* The driver's own records are counted too: measure them without backend state first. */
	before = slab_bytes();
	for (i = 0; i < 32; i++)
		if (vmdev(m.dev, VIR_MDEV_PIN, (__u64)i * 512 * PAGE, 512, 0))
			fail("pin for memory", errno);
	after = slab_bytes();
	mdev_close(&m);
	return (double)(after - before) / 16384;
}

int main(void)
{
	enum vfio_backend order[2] = { BACKEND_TYPE1, BACKEND_RUST };
	char *anon, *huge, *reserve;
	__u64 *bitmap;
	int rounds = getenv("VIR_BENCH_ROUNDS") ? atoi(getenv("VIR_BENCH_ROUNDS")) : ROUNDS;
	int r, k, i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	anon = mmap(NULL, GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	huge = mmap(NULL, GIB, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
	reserve = mmap(NULL, BIG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	bitmap = calloc(BIG / PAGE / 8, 1);
	if (anon == MAP_FAILED || huge == MAP_FAILED || reserve == MAP_FAILED || !bitmap)
		fail("allocating the benchmark memory", errno);
	/* 4K pages only for the anonymous buffer: no THP, populated page by page. */
	if (anon != MAP_FAILED) {
		if (madvise(anon, GIB, MADV_NOHUGEPAGE))
			fail("MADV_NOHUGEPAGE", errno);
		for (i = 0; i < (int)(GIB / PAGE); i++)
			anon[(size_t)i * PAGE] = 1;
	}
	/* 64 real pages in the reservation, for the vendor driver to pin. */
	for (i = 0; i < 64; i++)
		if (mmap(reserve + (BIG / 64) * i, PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_POPULATE, -1, 0) == MAP_FAILED)
			fail("sparse pages", errno);

	/* Round 0 is the warm-up of each backend; it is reported as such and not counted. */
	for (r = 0; r <= rounds; r++) {
		for (k = 0; k < 2; k++) {
			enum vfio_backend b = order[(r + k) % 2];
			const char *tag = r ? "" : "warmup-";
			char w[64];

#define RUN(work, expr, unit)                                     \
	do {                                                      \
		const char *prof = work;                          \
		(void)prof;                                       \
		if (selected(work)) {                             \
			snprintf(w, sizeof(w), "%s%s", tag, work); \
			report(w, b, expr, unit);                 \
		}                                                 \
	} while (0)
			prof_round = r;
			use_backend(b);
			RUN("map_unmap_1g_4k", map_unmap(b, anon, GIB, prof), "ms");
			RUN("map_unmap_1g_2m_hugetlb", map_unmap(b, huge, GIB, prof), "ms");
			RUN("map_unmap_512m_4k_fresh", map_unmap_fresh(b, 0, prof), "ms");
			RUN("map_unmap_512m_thp_fresh", map_unmap_fresh(b, 1, prof), "ms");
			RUN("map_16k_64k_unmap_all", many_maps(b, anon), "ms");
			RUN("get_bitmap_64g_sparse", get_bitmap(b, reserve, bitmap), "ms");
			RUN("pin_unpin_512", pin_unpin(b, anon), "ms");
			if (r == 1 || r == 2) {
				tag = "";
				RUN("mem_per_mapping", mem_per_mapping(b, anon), "bytes");
				RUN("mem_per_pinned_page", mem_per_pin(b, anon), "bytes");
			}
#undef RUN
		}
	}
	use_backend(BACKEND_RUST);
	printf("BENCH-DONE\n");
	return 0;
}
