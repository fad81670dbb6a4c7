/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the vfio-iommu-rust guest tests.
 *
 * The guest runner (tests/guest/init) runs every test binary once per backend in the same boot and
 * tells it which backend must serve the container through the environment:
 *
 *   VFIO_BACKEND      "type1" (our module not loaded) or "rust" (our module loaded after type1)
 *   VFIO_TEST_GROUP   the IOMMU group number of the first edu device, bound to vfio-pci
 *   VFIO_TEST_GROUP2  the group of the second edu device
 *   VFIO_TEST_BDF     the PCI address of the first edu device
 *   VFIO_RUST_KO      the path of our module, for the load/unload tests (where `make install`
 *                     put it in the guest: lib/modules/<release>/updates)
 *   VIR_MODPROBE      kmod's modprobe, for module_test's checks of the installed configuration
 *
 * Each test that sets an IOMMU asserts which module serves the container by the module reference
 * the VFIO core takes on the serving backend (/sys/module/<name>/refcnt).
 */
#ifndef VFIO_TEST_H
#define VFIO_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <linux/capability.h>
#include <unistd.h>
#include <linux/vfio.h>

/* 7.x's uAPI header renamed the nesting type (6.13): the number is what the tests ask for. */
#ifndef VFIO_TYPE1_NESTING_IOMMU
#define VFIO_TYPE1_NESTING_IOMMU 6
#endif

#define PAGE 4096ULL

#define TYPE1_MODULE "vfio_iommu_type1"
#define RUST_MODULE "vfio_iommu_rust"

enum vfio_backend { BACKEND_TYPE1, BACKEND_RUST };

static inline enum vfio_backend vfio_backend(void)
{
	const char *b = getenv("VFIO_BACKEND");

	if (b && !strcmp(b, "rust"))
		return BACKEND_RUST;
	if (b && !strcmp(b, "type1"))
		return BACKEND_TYPE1;
	fprintf(stderr, "VFIO_BACKEND must be \"type1\" or \"rust\"\n");
	exit(2);
}

static inline const char *backend_module(enum vfio_backend b)
{
	return b == BACKEND_RUST ? RUST_MODULE : TYPE1_MODULE;
}

/* The module's reference count, or -1 when the module is not loaded. */
static inline long module_refcnt(const char *module)
{
	char path[128], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/module/%s/refcnt", module);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return strtol(buf, NULL, 10);
}

/* Whether the running kernel is at least @major.@minor (from uname). */
static inline int kernel_at_least(int major, int minor)
{
	struct utsname u;
	int maj = 0, min = 0;

	if (uname(&u) || sscanf(u.release, "%d.%d", &maj, &min) != 2)
		return 0;
	return maj > major || (maj == major && min >= minor);
}

/*
 * type1 from Linux 6.18 on ("vfio/type1: handle DMA map/unmap up to the addressable limit" and
 * "sanitize for overflow using check_*_overflow()"): a range that wraps past 2^64 is EOVERFLOW and
 * a mapping can end at the top of the 64-bit space, as with our backend. 6.12's type1 says EINVAL
 * and cannot find such a mapping again. The tests expect each kernel line's type1 behaviour and
 * compare the records of the two backends where they should agree.
 */
static inline int type1_handles_top(void)
{
	return kernel_at_least(6, 18);
}

/* type1 claims VFIO_TYPE1_NESTING_IOMMU (removed in 6.13: "vfio: Remove VFIO_TYPE1_NESTING_IOMMU"). */
static inline int type1_has_nesting(void)
{
	return !kernel_at_least(6, 13);
}

static inline int env_int(const char *name)
{
	const char *v = getenv(name);

	if (!v) {
		fprintf(stderr, "%s is not set\n", name);
		exit(2);
	}
	return atoi(v);
}

static inline const char *env_str(const char *name)
{
	const char *v = getenv(name);

	if (!v) {
		fprintf(stderr, "%s is not set\n", name);
		exit(2);
	}
	return v;
}

static inline int open_group(int group)
{
	char path[64];

	snprintf(path, sizeof(path), "/dev/vfio/%d", group);
	return open(path, O_RDWR);
}

/* The errno of a failed call, or 0 if it succeeded: for EXPECT_EQ(EINVAL, vfio_errno(ioctl(..))). */
static inline int vfio_errno(long ret)
{
	return ret < 0 ? errno : 0;
}

/* Module references held by the two backends, to see which one a SET_IOMMU landed on. */
struct backend_refs {
	long type1;
	long rust;
};

static inline struct backend_refs backend_refs(void)
{
	struct backend_refs r = {
		.type1 = module_refcnt(TYPE1_MODULE),
		.rust = module_refcnt(RUST_MODULE),
	};
	return r;
}

/*
 * A type1 container holding the group @group_id with the IOMMU set to @magic. Returns 0, or the
 * errno of the step that failed.
 */
static inline int open_container(int group_id, unsigned long magic, int *container, int *group)
{
	*group = -1;
	*container = open("/dev/vfio/vfio", O_RDWR);
	if (*container < 0)
		return errno;
	*group = open_group(group_id);
	if (*group < 0)
		return errno;
	if (ioctl(*group, VFIO_GROUP_SET_CONTAINER, container))
		return errno;
	if (ioctl(*container, VFIO_SET_IOMMU, magic))
		return errno;
	return 0;
}

/*
 * In a kselftest test: asserts that the backend under test, and only it, took a module reference
 * since @before was read, i.e. serves the container set up meanwhile.
 */
#define ASSERT_SERVED_SINCE(before) do {						\
	struct backend_refs __now = backend_refs();					\
	if (vfio_backend() == BACKEND_RUST) {						\
		ASSERT_EQ((before).rust + 1, __now.rust);				\
		ASSERT_EQ((before).type1, __now.type1);					\
	} else {									\
		ASSERT_EQ((before).type1 + 1, __now.type1);				\
	}										\
} while (0)

/* Writes @value to /sys/module/@module/parameters/@param; returns 0 or an errno. */
static inline int write_module_param(const char *module, const char *param, const char *value)
{
	char path[128];
	int fd, ok;

	snprintf(path, sizeof(path), "/sys/module/%s/parameters/%s", module, param);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return errno;
	ok = write(fd, value, strlen(value)) == (ssize_t)strlen(value);
	close(fd);
	return ok ? 0 : EIO;
}

/* VFIO_IOMMU_MAP_DMA; returns 0 or the errno. */
static inline int dma_map(int fd, __u64 iova, __u64 vaddr, __u64 size, __u32 flags)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = flags,
		.vaddr = vaddr,
		.iova = iova,
		.size = size,
	};

	return vfio_errno(ioctl(fd, VFIO_IOMMU_MAP_DMA, &map));
}

#define RW (VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)

/* VFIO_IOMMU_UNMAP_DMA; returns 0 or the errno, and the size field as the kernel left it. */
static inline int dma_unmap(int fd, __u64 iova, __u64 size, __u32 flags, __u64 *size_out)
{
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.flags = flags,
		.iova = iova,
		.size = size,
	};
	int err = vfio_errno(ioctl(fd, VFIO_IOMMU_UNMAP_DMA, &unmap));

	if (size_out)
		*size_out = unmap.size;
	return err;
}

/* A value from /proc/vmstat, or -1. */
static inline long vmstat(const char *key)
{
	char name[64];
	long value, found = -1;
	FILE *f;
	int fd = open("/proc/sys/vm/stat_refresh", O_WRONLY);

	/* Fold the per-CPU counters first, or the values may lag. */
	if (fd >= 0) {
		if (write(fd, "1", 1) != 1)
			fprintf(stderr, "stat_refresh: %s\n", strerror(errno));
		close(fd);
	}
	f = fopen("/proc/vmstat", "r");
	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld", name, &value) == 2) {
		if (!strcmp(name, key)) {
			found = value;
			break;
		}
	}
	fclose(f);
	return found;
}

/* Pages pinned with FOLL_PIN and not released, system wide (nothing else pins in the guest). */
static inline long pins_outstanding(void)
{
	return vmstat("nr_foll_pin_acquired") - vmstat("nr_foll_pin_released");
}

/* Drops CAP_IPC_LOCK from this process, so that RLIMIT_MEMLOCK binds it; returns 0 or an errno. */
static inline int drop_cap_ipc_lock(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return errno;
	d[0].effective &= ~(1U << CAP_IPC_LOCK);
	d[0].permitted &= ~(1U << CAP_IPC_LOCK);
	return syscall(SYS_capset, &h, d) ? errno : 0;
}

/* The number after "@key:" on a line of the file @path (/proc/.../status, /proc/meminfo), or -1. */
static inline long proc_field(const char *path, const char *key)
{
	size_t len = strlen(key);
	char line[256];
	long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, len) && line[len] == ':') {
			v = strtol(line + len + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

/* This process's locked memory (VmLck) in kB, or -1. */
static inline long locked_vm_kb(void)
{
	return proc_field("/proc/self/status", "VmLck");
}

/* Anonymous memory, populated. */
static inline void *alloc_pages(size_t pages)
{
	void *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/*
 * A fact to compare between the backends: the host's report compares every RECORD line of a
 * type1 run with the same line of the rust run of the same test binary. Written unbuffered, as
 * the harness runs each test in a child process.
 */
#define RECORD(name, fmt, ...) dprintf(1, "# RECORD %s " fmt "\n", name, ##__VA_ARGS__)

/* VFIO_IOMMU_DIRTY_PAGES with one flag; returns 0 or the errno. */
static inline int dirty_pages(int fd, __u32 flag)
{
	struct vfio_iommu_type1_dirty_bitmap db = { .argsz = sizeof(db), .flags = flag };

	return vfio_errno(ioctl(fd, VFIO_IOMMU_DIRTY_PAGES, &db));
}

/* VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP of [iova, iova + size) into @bits (@bytes long). */
static inline int dirty_bitmap(int fd, __u64 iova, __u64 size, __u64 pgsize, __u64 *bits,
			       __u64 bytes)
{
	struct {
		struct vfio_iommu_type1_dirty_bitmap db;
		struct vfio_iommu_type1_dirty_bitmap_get get;
	} req = {
		.db = { .argsz = sizeof(req), .flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP },
		.get = {
			.iova = iova,
			.size = size,
			.bitmap = { .pgsize = pgsize, .size = bytes, .data = bits },
		},
	};

	return vfio_errno(ioctl(fd, VFIO_IOMMU_DIRTY_PAGES, &req));
}

/* VFIO_IOMMU_UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP. */
static inline int dma_unmap_bitmap(int fd, __u64 iova, __u64 size, __u64 pgsize, __u64 *bits,
				   __u64 bytes, __u64 *size_out)
{
	struct {
		struct vfio_iommu_type1_dma_unmap unmap;
		struct vfio_bitmap bitmap;
	} req = {
		.unmap = {
			.argsz = sizeof(req),
			.flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
			.iova = iova,
			.size = size,
		},
		.bitmap = { .pgsize = pgsize, .size = bytes, .data = bits },
	};
	int err = vfio_errno(ioctl(fd, VFIO_IOMMU_UNMAP_DMA, &req));

	if (size_out)
		*size_out = req.unmap.size;
	return err;
}

#endif /* VFIO_TEST_H */
