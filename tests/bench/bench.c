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

/* Selects the backend of the next legacy containers: loads or unloads our module. */
static void use_backend(enum bk b)
{
	int loaded = module_refcnt(RUST_MODULE) >= 0;

	if (b == RUST && !loaded) {
		int fd = open(env_str("VFIO_RUST_KO"), O_RDONLY | O_CLOEXEC);

		if (fd < 0 || syscall(SYS_finit_module, fd, "", 0))
			fail("loading vfio_iommu_rust", errno);
		close(fd);
	} else if (b == TYPE1 && loaded) {
		if (syscall(SYS_delete_module, RUST_MODULE, O_NONBLOCK))
			fail("unloading vfio_iommu_rust", errno);
	}
	/* iommufd does not depend on which legacy backend is loaded. */
}

static void report(const char *tag, const char *work, enum bk b, double value, const char *unit)
{
	printf("BENCH %s%s %s %.3f %s\n", tag, work, bk_name[b], value, unit);
	fflush(stdout);
}

/* @b cannot serve @work: one line per affected workload name, with the reason. */
static void na(const char *work, enum bk b, const char *reason)
{
	printf("BENCH-NA %s %s %s\n", work, bk_name[b], reason);
	fflush(stdout);
}

/* --- Containers and IOASes --------------------------------------------------------------------- */

/* The devices a workload needs, by index into the tables below. */
enum { EDU, EDU2, VMDEV, NDEVS };
#define WANT(d) (1U << (d))

static const char *const group_env[NDEVS] = {
	"VFIO_TEST_GROUP", "VFIO_TEST_GROUP2", "VFIO_TEST_VMDEV_GROUP",
};
static const char *const dev_env[NDEVS] = { "VFIO_TEST_BDF", "VFIO_TEST_BDF2", "VFIO_TEST_VMDEV" };
static const char *const dev_bus[NDEVS] = { "pci", "pci", "mdev" };

/*
 * What a workload maps through: a legacy container (type1 or ours) holding the groups of the
 * devices asked for, or an iommufd context with an IOAS that the devices' cdevs are attached to.
 * Device fds: legacy, only those of EDU2 and VMDEV (the workloads use them); iommufd, all of them
 * (a cdev is the device).
 */
struct ctx {
	enum bk b;
	int fd;			/* /dev/vfio/vfio or /dev/iommu */
	__u32 ioas;
	int group[NDEVS];
	int dev[NDEVS];
	__u32 devid[NDEVS];
};

/* The /dev/vfio/devices/vfioN path of device @d. */
static void cdev_path(int d, char *path, size_t len)
{
	char dir[256];
	struct dirent *e;
	DIR *dp;

	snprintf(dir, sizeof(dir), "/sys/bus/%s/devices/%s/vfio-dev", dev_bus[d], env_str(dev_env[d]));
	dp = opendir(dir);
	if (!dp)
		failf("%s: %s (a kernel without CONFIG_VFIO_DEVICE_CDEV?)", dir, strerror(errno));
	while ((e = readdir(dp)))
		if (!strncmp(e->d_name, "vfio", 4))
			break;
	if (!e)
		failf("no vfio cdev under %s", dir);
	snprintf(path, len, "/dev/vfio/devices/%s", e->d_name);
	closedir(dp);
}

static void iommufd_open(struct ctx *c, unsigned int want)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	int d;

	c->fd = open("/dev/iommu", O_RDWR);
	if (c->fd < 0)
		fail("opening /dev/iommu (iommufd loaded?)", errno);
	if (ioctl(c->fd, IOMMU_IOAS_ALLOC, &alloc))
		fail("IOMMU_IOAS_ALLOC", errno);
	c->ioas = alloc.out_ioas_id;
	for (d = 0; d < NDEVS; d++) {
		struct vfio_device_bind_iommufd bind = {
			.argsz = sizeof(bind), .iommufd = c->fd,
		};
		struct vfio_device_attach_iommufd_pt attach = {
			.argsz = sizeof(attach), .pt_id = c->ioas,
		};
		char path[300];

		if (!(want & WANT(d)))
			continue;
		cdev_path(d, path, sizeof(path));
		c->dev[d] = open(path, O_RDWR);
		if (c->dev[d] < 0)
			failf("opening %s: %s", path, strerror(errno));
		if (ioctl(c->dev[d], VFIO_DEVICE_BIND_IOMMUFD, &bind))
			failf("VFIO_DEVICE_BIND_IOMMUFD %s (its group still open?): %s", path,
			      strerror(errno));
		c->devid[d] = bind.out_devid;
		if (ioctl(c->dev[d], VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach))
			failf("VFIO_DEVICE_ATTACH_IOMMUFD_PT %s: %s", path, strerror(errno));
		/*
		 * The proof that iommufd serves the device: a physical device attached to an IOAS
		 * gets a hardware page table of its own (an IOMMU domain), whose id comes back; an
		 * emulated one is attached to the IOAS itself, through an iommufd access.
		 */
		if (d == VMDEV ? attach.pt_id != c->ioas : attach.pt_id == c->ioas)
			failf("%s attached to page table %u (IOAS %u)", path, attach.pt_id, c->ioas);
		if (d != VMDEV) {
			struct iommu_hw_info info = {
				.size = sizeof(info), .dev_id = c->devid[d],
			};

			if (ioctl(c->fd, IOMMU_GET_HW_INFO, &info))
				fail("IOMMU_GET_HW_INFO", errno);
			if (info.out_data_type != IOMMU_HW_INFO_TYPE_INTEL_VTD)
				failf("%s: IOMMU type %u, not VT-d", path, info.out_data_type);
		}
	}
}

/* A container over the groups of @want, served by @b (checked by module reference). */
static void legacy_open(struct ctx *c, unsigned int want)
{
	struct backend_refs before = backend_refs(), after;
	bool first = true;
	int d, err;

	for (d = 0; d < NDEVS; d++) {
		if (!(want & WANT(d)))
			continue;
		if (first) {
			err = open_container(env_int(group_env[d]), VFIO_TYPE1v2_IOMMU, &c->fd,
					     &c->group[d]);
			if (err)
				fail("opening a container", err);
			after = backend_refs();
			if (c->b == RUST ? after.rust != before.rust + 1 :
					   after.type1 != before.type1 + 1)
				fail("container served by the wrong backend", EPROTO);
			first = false;
		} else {
			c->group[d] = open_group(env_int(group_env[d]));
			if (c->group[d] < 0)
				fail("opening a group", errno);
			if (ioctl(c->group[d], VFIO_GROUP_SET_CONTAINER, &c->fd))
				fail("adding a group to the container", errno);
		}
		if (d != EDU) {
			c->dev[d] = ioctl(c->group[d], VFIO_GROUP_GET_DEVICE_FD, env_str(dev_env[d]));
			if (c->dev[d] < 0)
				fail("getting a device fd", errno);
		}
	}
}

static void ctx_open(enum bk b, unsigned int want, struct ctx *c)
{
	int d;

	c->b = b;
	c->fd = -1;
	for (d = 0; d < NDEVS; d++)
		c->group[d] = c->dev[d] = -1;
	if (b == IOMMUFD)
		iommufd_open(c, want);
	else
		legacy_open(c, want);
}

/* Closes everything: the vendor device first (it gives back its pins), the container last. */
static void ctx_close(struct ctx *c)
{
	int d;

	for (d = NDEVS - 1; d >= 0; d--) {
		if (c->dev[d] >= 0)
			close(c->dev[d]);
		if (c->group[d] >= 0)
			close(c->group[d]);
	}
	close(c->fd);
}

/* MAP_DMA or IOMMU_IOAS_MAP (fixed IOVA), read and write; returns 0 or the errno. */
static int ctx_map(struct ctx *c, __u64 iova, const void *va, __u64 len)
{
	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = c->ioas,
		.user_va = (uintptr_t)va,
		.length = len,
		.iova = iova,
	};

	if (c->b != IOMMUFD)
		return dma_map(c->fd, iova, (uintptr_t)va, len, RW);
	return vfio_errno(ioctl(c->fd, IOMMU_IOAS_MAP, &map));
}

/* UNMAP_DMA or IOMMU_IOAS_UNMAP of [iova, iova + len), which must be what was unmapped. */
static int ctx_unmap(struct ctx *c, __u64 iova, __u64 len)
{
	struct iommu_ioas_unmap unmap = {
		.size = sizeof(unmap), .ioas_id = c->ioas, .iova = iova, .length = len,
	};
	__u64 size = 0;
	int err;

	if (c->b != IOMMUFD) {
		err = dma_unmap(c->fd, iova, len, 0, &size);
	} else {
		err = vfio_errno(ioctl(c->fd, IOMMU_IOAS_UNMAP, &unmap));
		size = unmap.length;
	}
	return err ? err : size == len ? 0 : EIO;
}

/* UNMAP_DMA with UNMAP_ALL, or IOMMU_IOAS_UNMAP of everything; @len bytes must go. */
static int ctx_unmap_all(struct ctx *c, __u64 len)
{
	struct iommu_ioas_unmap unmap = {
		.size = sizeof(unmap), .ioas_id = c->ioas, .iova = 0, .length = UINT64_MAX,
	};
	__u64 size = 0;
	int err;

	if (c->b != IOMMUFD) {
		err = dma_unmap(c->fd, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size);
	} else {
		err = vfio_errno(ioctl(c->fd, IOMMU_IOAS_UNMAP, &unmap));
		size = unmap.length;
	}
	return err ? err : size == len ? 0 : EIO;
}

static int vmdev(int dev, unsigned long op, __u64 iova, __u64 count, __u32 flags, void *buf)
{
	struct vir_mdev_cmd cmd = {
		.iova = iova, .count = count, .flags = flags, .buf = (uintptr_t)buf, .value = 0x5a,
	};

	return ioctl(dev, op, &cmd) ? errno : 0;
}

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

#include "floor.h"

/* --- Workloads --------------------------------------------------------------------------------- */

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
	double tm, tu, fl;
	struct ctx c;
	char w[64];

	ctx_open(b, WANT(EDU), &c);
	snprintf(w, sizeof(w), "map_unmap_1g_%s", kind);
	prof_start();
	map_unmap(&c, 0, va, GIB, &tm, &tu);
	prof_stop(w, bk_name[b]);
	ctx_close(&c);
	report(tag, w, b, tm + tu, "ms");
	snprintf(w, sizeof(w), "map_1g_%s", kind);
	report(tag, w, b, tm, "ms");
	snprintf(w, sizeof(w), "unmap_1g_%s", kind);
	report(tag, w, b, tu, "ms");
	if (b != RUST)
		return;
	fl = floor_pin_unpin(va, GIB);
	if (fl < 0)
		fail("the floor: io_uring fixed buffer of 1 GiB", (int)-fl);
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

	ctx_open(b, WANT(EDU), &c);
	report(tag, "map_16k_64k_unmap_all", b, many_maps(&c, 0, 16384), "ms");
	ctx_close(&c);
}

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
	t0 = now_ms();
	err = dirty_bitmap(c.fd, BIG_IOVA, BIG, PAGE, bitmap, BIG / PAGE / 8);
	t1 = now_ms();
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

/* 512 pages pinned and unpinned through the vendor driver, 64 times; per round of 512. */
static void w_pin(enum bk b, const char *tag)
{
	struct ctx c;
	double t0, t1;
	int i, err;

	ctx_open(b, WANT(VMDEV), &c);
	err = ctx_map(&c, 0, anon, 512 * PAGE);
	if (err)
		fail("pin map", err);
	t0 = now_ms();
	for (i = 0; i < 64; i++) {
		if (vmdev(c.dev[VMDEV], VIR_MDEV_PIN, 0, 512, VIR_MDEV_FLAG_WRITE, NULL) ||
		    vmdev(c.dev[VMDEV], VIR_MDEV_UNPIN, 0, 512, 0, NULL))
			fail("pin/unpin", errno);
	}
	t1 = now_ms();
	ctx_close(&c);
	report(tag, "pin_unpin_512", b, (t1 - t0) / 64, "ms");
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

#define DENSE (256 * MIB)

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
	double t0, t1, t2, t3;
	struct ctx c;
	__u64 i;
	int err;

	if (b == IOMMUFD) {
		na("dirty_dense_256m_get_bitmap", b, na_mdev_dirty);
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
	if (dirty_pages(c.fd, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP))
		fail("dirty stop", errno);
	ctx_close(&c);
	report(tag, "dirty_dense_256m_get_bitmap", b, t3 - t2, "ms");
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
	t0 = now_ms();
	err = dirty_bitmap(c.fd, 0, GIB, PAGE, bitmap, GIB / PAGE / 8);
	t1 = now_ms();
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

/*
 * The vendor thread of the contention workload: a device that pins one page and unpins it again
 * every VENDOR_PERIOD_US, until told to stop. A pin's latency is counted from when it was due,
 * not from when a blocked thread got round to issuing it: a pin that waits 500 ms delays the
 * 500 due after it, and each of them counts what it waited (otherwise a backend that blocks the
 * vendor for the whole map would show one slow call among few, and its p99 would hide it). The
 * unpin that follows a pin is counted from when the pin returned.
 */
#define VENDOR_PERIOD_US 1000

struct vendor_loop {
	int dev;
	int stop;
	int err;
	size_t n, cap;
	double *lat;	/* microseconds, per call */
};

static void *vendor_run(void *arg)
{
	struct vendor_loop *v = arg;
	double due = now_ms(), t1, t2;

	/* After the stop, the calls that fell due meanwhile are still made (and counted). */
	while (!__atomic_load_n(&v->stop, __ATOMIC_ACQUIRE) || due < now_ms()) {
		double wait = due - now_ms();

		if (wait > 0)
			usleep(wait * 1e3);
		v->err = vmdev(v->dev, VIR_MDEV_PIN, VENDOR_IOVA, 1, 0, NULL);
		t1 = now_ms();
		if (v->err)
			break;
		v->err = vmdev(v->dev, VIR_MDEV_UNPIN, VENDOR_IOVA, 1, 0, NULL);
		t2 = now_ms();
		if (v->err)
			break;
		if (v->n + 2 <= v->cap) {
			v->lat[v->n++] = (t1 - due) * 1e3;
			v->lat[v->n++] = (t2 - t1) * 1e3;
		}
		due += VENDOR_PERIOD_US / 1e3;
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

#define CONTENTION_CYCLES 2
#define CONTENTION_PAUSE_US 100000

/*
 * Contention: one container (or IOAS) with the edu device and the vir_mdev device. A thread
 * pins and unpins one page through the vendor driver every millisecond while this one maps and
 * unmaps 1 GiB of 4K pages twice, 100 ms apart; the vendor calls' p99 and maximum latency, in
 * microseconds.
 */
static void w_contention(enum bk b, const char *tag)
{
	static char *page;
	struct vendor_loop v = { .cap = 1 << 20 };
	double t0, total = 0;
	pthread_t thread;
	struct ctx c;
	int i, err;

	if (!page) {
		page = alloc_pages(1);
		if (!page)
			fail("vendor page", errno);
	}
	v.lat = malloc(v.cap * sizeof(*v.lat));
	if (!v.lat)
		fail("malloc", errno);
	ctx_open(b, WANT(EDU) | WANT(VMDEV), &c);
	err = ctx_map(&c, VENDOR_IOVA, page, PAGE);
	if (err)
		fail("vendor page map", err);
	v.dev = c.dev[VMDEV];
	err = pthread_create(&thread, NULL, vendor_run, &v);
	if (err)
		fail("pthread_create", err);
	/*
	 * A pause before each MAP and each UNMAP and at the end lets a stalled vendor catch up, so
	 * that a latency is what one MAP or UNMAP made it wait, not a backlog across several.
	 */
	for (i = 0; i < CONTENTION_CYCLES; i++) {
		usleep(CONTENTION_PAUSE_US);
		t0 = now_ms();
		err = ctx_map(&c, 0, anon, GIB);
		if (err)
			fail("contention map", err);
		total += now_ms() - t0;
		usleep(CONTENTION_PAUSE_US);
		t0 = now_ms();
		err = ctx_unmap(&c, 0, GIB);
		if (err)
			fail("contention unmap", err);
		total += now_ms() - t0;
	}
	usleep(CONTENTION_PAUSE_US);
	__atomic_store_n(&v.stop, 1, __ATOMIC_RELEASE);
	pthread_join(thread, NULL);
	if (v.err)
		fail("vendor pin/unpin", v.err);
	err = ctx_unmap(&c, VENDOR_IOVA, PAGE);
	if (err)
		fail("vendor page unmap", err);
	ctx_close(&c);
	if (v.n < 100)
		failf("contention: only %zu vendor calls", v.n);
	qsort(v.lat, v.n, sizeof(*v.lat), cmp_double);
	printf("# contention %s%s: %zu vendor calls (median %.1f us) during %d x map+unmap of "
	       "1 GiB (%.1f ms)\n", tag, bk_name[b], v.n, v.lat[v.n / 2], CONTENTION_CYCLES, total);
	report(tag, "contention_vendor_pin_p99", b, v.lat[(v.n * 99 + 99) / 100 - 1], "us");
	report(tag, "contention_vendor_pin_max", b, v.lat[v.n - 1], "us");
	free(v.lat);
}

/* Growth: map+unmap of 256 MiB, 1 GiB and 2 GiB of 4K pages, per page (ns). */
static void w_growth_4k(enum bk b, const char *tag)
{
	static const struct { __u64 len; const char *name; } sizes[] = {
		{ 256 * MIB, "growth_4k_256m" }, { GIB, "growth_4k_1g" }, { 2 * GIB, "growth_4k_2g" },
	};
	double tm, tu;
	struct ctx c;
	size_t i;

	ctx_open(b, WANT(EDU), &c);
	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		map_unmap(&c, HIGH_IOVA, anon, sizes[i].len, &tm, &tu);
		report(tag, sizes[i].name, b, (tm + tu) * 1e6 / (sizes[i].len / PAGE), "ns");
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

/* Kernel memory per vendor-pinned page: 16384 pages pinned through the vendor driver. */
static void w_mem_pin(enum bk b, const char *tag)
{
	long before, after;
	struct ctx c;
	int i, err;

	ctx_open(b, WANT(VMDEV), &c);
	err = ctx_map(&c, 0, anon, 16384 * PAGE);
	if (err)
		fail("pin memory map", err);
	/* The driver's own records are counted too: measure them without backend state first. */
	before = slab_bytes();
	for (i = 0; i < 32; i++)
		if (vmdev(c.dev[VMDEV], VIR_MDEV_PIN, (__u64)i * 512 * PAGE, 512, 0, NULL))
			fail("pin for memory", errno);
	after = slab_bytes();
	ctx_close(&c);
	report(tag, "mem_per_pinned_page", b, (double)(after - before) / 16384, "bytes");
}

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
	{ "growth_4k", w_growth_4k, 2 * GIB },
	{ "growth_small_maps", w_growth_small, 65535 * SMALL },
	{ "mem_per_mapping", w_mem_map, 16384 * PAGE, 0, true },
	{ "mem_per_pinned_page", w_mem_pin, 16384 * PAGE, 0, true },
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
