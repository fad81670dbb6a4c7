// SPDX-License-Identifier: GPL-2.0
/*
 * Fault injection in the style of iommufd_fail_nth: every ioctl path of vfio_iommu_rust that
 * allocates or pins is run with /proc/thread-self/fail-nth = 1, 2, ... until it succeeds without
 * the injected fault being reached. After every injected failure: the call returned an errno (or
 * absorbed the failure and succeeded), no page stays pinned, locked memory is unchanged, the
 * container still works, and its teardown is clean. Needs the debug kernel (failslab,
 * fail_page_alloc, fault-injection debugfs); runs against our backend only.
 */
#include <pthread.h>
#include "kselftest_harness.h"
#include "vfio_test.h"
#include "mdev/vir_mdev.h"

#define IOVA 0x100000ULL

static int write_file(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY), ok;

	if (fd < 0)
		return errno;
	ok = write(fd, value, strlen(value)) == (ssize_t)strlen(value);
	close(fd);
	return ok ? 0 : EIO;
}

/* Make failslab and fail_page_alloc fail GFP_KERNEL and order-0 allocations, quietly. */
static void setup_fault_injection(struct __test_metadata *_metadata)
{
	ASSERT_EQ(0, write_file("/sys/kernel/debug/failslab/ignore-gfp-wait", "N"));
	ASSERT_EQ(0, write_file("/sys/kernel/debug/failslab/verbose", "0"));
	ASSERT_EQ(0, write_file("/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait", "N"));
	ASSERT_EQ(0, write_file("/sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem", "N"));
	ASSERT_EQ(0, write_file("/sys/kernel/debug/fail_page_alloc/min-order", "0"));
	ASSERT_EQ(0, write_file("/sys/kernel/debug/fail_page_alloc/verbose", "0"));
}

static int fail_nth_fd = -1;

/* Arms the n-th fault point of this thread. */
static void arm(int n)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%d", n);
	if (fail_nth_fd < 0)
		fail_nth_fd = open("/proc/thread-self/fail-nth", O_RDWR);
	if (pwrite(fail_nth_fd, buf, strlen(buf), 0) < 0)
		abort();
}

/* Disarms; returns whether the armed fault was injected. */
static int disarm(void)
{
	char buf[16] = { 0 };
	int injected;

	if (pread(fail_nth_fd, buf, sizeof(buf) - 1, 0) <= 0)
		abort();
	injected = atoi(buf) == 0;
	if (pwrite(fail_nth_fd, "0", 1, 0) < 0)
		abort();
	return injected;
}

struct env {
	int container, group, group2, mdev_container, mdev_group, dev;
	char *buf, *huge;
};

static void env_open(struct __test_metadata *_metadata, struct env *e)
{
	memset(e, 0xff, sizeof(*e));
	e->buf = alloc_pages(64);
	ASSERT_NE(NULL, e->buf);
	e->huge = mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, e->huge);
	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU, &e->container,
				    &e->group));
	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_VMDEV_GROUP"), VFIO_TYPE1v2_IOMMU,
				    &e->mdev_container, &e->mdev_group));
	e->dev = ioctl(e->mdev_group, VFIO_GROUP_GET_DEVICE_FD, env_str("VFIO_TEST_VMDEV"));
	ASSERT_LE(0, e->dev);
	ASSERT_EQ(0, dma_map(e->mdev_container, IOVA, (uintptr_t)e->buf, 64 * PAGE, RW));
	e->group2 = open_group(env_int("VFIO_TEST_GROUP2"));
	ASSERT_LE(0, e->group2);
}

static void env_close(struct env *e)
{
	close(e->group2);
	close(e->dev);
	close(e->mdev_group);
	close(e->mdev_container);
	close(e->group);
	close(e->container);
	munmap(e->buf, 64 * PAGE);
	munmap(e->huge, 2 << 20);
}

/*
 * The fault is armed around the one ioctl under test only: the VFIO core's own teardown paths
 * (releasing DMA ownership when a group is closed) must succeed and WARN when an allocation in
 * them fails, which is not ours to test.
 */
static int nth, injected;

static int armed_ioctl(int fd, unsigned long cmd, void *arg)
{
	int err;

	arm(nth);
	err = vfio_errno(ioctl(fd, cmd, arg));
	injected = disarm();
	return err;
}

/* The operations under test; each returns 0 or an errno. */
static int op_set_iommu(struct env *e)
{
	int c = open("/dev/vfio/vfio", O_RDWR), err;

	if (c < 0)
		return errno;

	if (ioctl(e->group2, VFIO_GROUP_SET_CONTAINER, &c))
		return errno;
	arm(nth);
	err = vfio_errno(ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	injected = disarm();
	ioctl(e->group2, VFIO_GROUP_UNSET_CONTAINER);
	close(c);
	return err;
}

static int op_attach(struct env *e)
{
	return armed_ioctl(e->group2, VFIO_GROUP_SET_CONTAINER, &e->container);
}

static int op_map(struct env *e, void *vaddr, __u64 iova, __u64 size)
{
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m), .flags = RW, .vaddr = (uintptr_t)vaddr, .iova = iova,
		.size = size,
	};

	return armed_ioctl(e->container, VFIO_IOMMU_MAP_DMA, &m);
}

static int op_map_small(struct env *e)
{
	return op_map(e, e->buf, IOVA, 4 * PAGE);
}

static int op_map_large(struct env *e)
{
	return op_map(e, e->buf, IOVA, 64 * PAGE);
}

static int op_map_hugetlb(struct env *e)
{
	return op_map(e, e->huge, 0x200000, 2 << 20);
}

static int op_unmap_bitmap(struct env *e)
{
	__u64 bits[1] = { 0 };
	struct {
		struct vfio_iommu_type1_dma_unmap unmap;
		struct vfio_bitmap bitmap;
	} req = {
		.unmap = { .argsz = sizeof(req), .flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
			   .iova = IOVA, .size = 64 * PAGE },
		.bitmap = { .pgsize = PAGE, .size = sizeof(bits), .data = bits },
	};

	if (dirty_pages(e->mdev_container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START))
		return errno;
	return armed_ioctl(e->mdev_container, VFIO_IOMMU_UNMAP_DMA, &req);
}

static int op_dirty_start(struct env *e)
{
	struct vfio_iommu_type1_dirty_bitmap db = {
		.argsz = sizeof(db), .flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
	};

	return armed_ioctl(e->mdev_container, VFIO_IOMMU_DIRTY_PAGES, &db);
}

static int op_get_bitmap(struct env *e)
{
	__u64 bits[1] = { 0 };
	struct {
		struct vfio_iommu_type1_dirty_bitmap db;
		struct vfio_iommu_type1_dirty_bitmap_get get;
	} req = {
		.db = { .argsz = sizeof(req), .flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP },
		.get = { .iova = IOVA, .size = 64 * PAGE,
			 .bitmap = { .pgsize = PAGE, .size = sizeof(bits), .data = bits } },
	};

	if (dirty_pages(e->mdev_container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START))
		return errno;
	return armed_ioctl(e->mdev_container, VFIO_IOMMU_DIRTY_PAGES, &req);
}

static int op_get_info(struct env *e)
{
	char info[512] = { 0 };

	((struct vfio_iommu_type1_info *)info)->argsz = sizeof(info);
	return armed_ioctl(e->container, VFIO_IOMMU_GET_INFO, info);
}

static int op_pin_pages(struct env *e)
{
	struct vir_mdev_cmd cmd = { .iova = IOVA, .count = 16, .flags = VIR_MDEV_FLAG_WRITE };

	return armed_ioctl(e->dev, VIR_MDEV_PIN, &cmd);
}

static int op_dma_rw(struct env *e)
{
	char data[64] = "fail_nth";
	struct vir_mdev_cmd cmd = { .iova = IOVA + 100, .count = sizeof(data),
				    .buf = (uintptr_t)data };

	if (dirty_pages(e->mdev_container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START))
		return errno;
	return armed_ioctl(e->dev, VIR_MDEV_WRITE, &cmd);
}

/* After each attempt, the containers work: map, unmap, pin and unpin. */
static void check_usable(struct __test_metadata *_metadata, struct env *e)
{
	struct vir_mdev_cmd cmd = { .iova = IOVA + 32 * PAGE, .count = 2 };
	__u64 size;
	int err;

	dma_unmap(e->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL);
	/* The operation may have unmapped the vendor device's memory: then it maps again. */
	err = dma_map(e->mdev_container, IOVA, (uintptr_t)e->buf, 64 * PAGE, RW);
	EXPECT_TRUE(err == 0 || err == EEXIST);
	EXPECT_EQ(0, dma_map(e->container, 0x4000000, (uintptr_t)e->buf, 2 * PAGE, RW));
	EXPECT_EQ(0, dma_unmap(e->container, 0x4000000, 2 * PAGE, 0, &size));
	EXPECT_EQ(0, vfio_errno(ioctl(e->dev, VIR_MDEV_PIN, &cmd)));
	EXPECT_EQ(0, vfio_errno(ioctl(e->dev, VIR_MDEV_UNPIN, &cmd)));
}

struct path {
	const char *name;
	int (*op)(struct env *e);
};

static const struct path paths[] = {
	{ "set_iommu", op_set_iommu },
	{ "attach_group", op_attach },
	{ "map_dma_small", op_map_small },
	{ "map_dma_large", op_map_large },
	{ "map_dma_hugetlb", op_map_hugetlb },
	{ "unmap_with_bitmap", op_unmap_bitmap },
	{ "dirty_start", op_dirty_start },
	{ "dirty_get_bitmap", op_get_bitmap },
	{ "get_info", op_get_info },
	{ "pin_pages", op_pin_pages },
	{ "dma_rw", op_dma_rw },
};

FIXTURE(fail) {
	int unused;
};

FIXTURE_SETUP(fail)
{
	ASSERT_EQ(BACKEND_RUST, vfio_backend());
	setup_fault_injection(_metadata);
}

FIXTURE_TEARDOWN(fail)
{
}

TEST_F_TIMEOUT(fail, nth, 3600)
{
	unsigned int p;

	for (p = 0; p < sizeof(paths) / sizeof(paths[0]); p++) {
		int failed = 0, err = 0;

		injected = 1;
		for (nth = 1; injected && nth < 2000; nth++) {
			long pins = pins_outstanding(), locked = locked_vm_kb();
			struct env e;

			env_open(_metadata, &e);
			err = paths[p].op(&e);
			if (injected && err)
				failed++;
			/* Success means no fault was reached, or it was absorbed. */
			EXPECT_TRUE(!err || injected) {
				TH_LOG("%s: errno %d without an injected fault", paths[p].name, err);
			}
			check_usable(_metadata, &e);
			env_close(&e);
			EXPECT_EQ(pins, pins_outstanding()) {
				TH_LOG("%s, fault %d: pins leaked", paths[p].name, nth);
			}
			EXPECT_EQ(locked, locked_vm_kb());
			EXPECT_EQ(0, module_refcnt(RUST_MODULE));
		}
		EXPECT_FALSE(injected) TH_LOG("%s: still failing after 2000 faults", paths[p].name);
		EXPECT_EQ(0, err) TH_LOG("%s: fails without a fault", paths[p].name);
		printf("# fail_nth %s: %d fault points, %d failed with an errno\n", paths[p].name,
		       nth - 2, failed);
	}
}

TEST_HARNESS_MAIN
