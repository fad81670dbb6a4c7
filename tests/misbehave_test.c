// SPDX-License-Identifier: GPL-2.0
/*
 * A vendor driver that ignores dma_unmap notifications (vir_mdev with VIR_MDEV_MISBEHAVE). type1
 * BUG()s after 10 notifications for the same mapping, so this runs against our backend only: the
 * unmap must fail with EBUSY after 10 retries, change nothing, leak nothing, and say so in the log.
 */
#include <sys/klog.h>
#include "kselftest_harness.h"
#include "mdev/vir_mdev.h"
#include "vfio_test.h"

#define IOVA 0x10000000ULL

static __u64 notifications(int dev)
{
	struct vir_mdev_cmd st = { 0 };

	return ioctl(dev, VIR_MDEV_STATS, &st) ? ~0ULL : st.out;
}

static int vmdev(int dev, unsigned long op, __u64 iova, __u64 count, __u32 flags, __u32 value)
{
	struct vir_mdev_cmd cmd = { .iova = iova, .count = count, .flags = flags, .value = value };

	return vfio_errno(ioctl(dev, op, &cmd));
}

static int log_contains(const char *needle)
{
	static char log[1 << 20];
	int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, log, sizeof(log) - 1);

	if (n <= 0)
		return 0;
	log[n] = 0;
	return strstr(log, needle) != NULL;
}

TEST(unmap_with_pins_kept)
{
	long pins = pins_outstanding();
	int container, group, dev;
	__u64 size = 0, before;
	char *buf = alloc_pages(8);

	ASSERT_EQ(BACKEND_RUST, vfio_backend());
	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_VMDEV_GROUP"), VFIO_TYPE1v2_IOMMU,
				    &container, &group));
	ASSERT_EQ(1, module_refcnt(RUST_MODULE));
	dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, env_str("VFIO_TEST_VMDEV"));
	ASSERT_LE(0, dev);
	before = notifications(dev);
	ASSERT_EQ(0, dma_map(container, IOVA, (uintptr_t)buf, 8 * PAGE, RW));
	ASSERT_EQ(0, vmdev(dev, VIR_MDEV_PIN, IOVA + 2 * PAGE, 2, VIR_MDEV_FLAG_WRITE, 7));
	ASSERT_EQ(0, vmdev(dev, VIR_MDEV_MISBEHAVE, 0, 0, 0, 1));

	EXPECT_EQ(EBUSY, dma_unmap(container, IOVA, 8 * PAGE, 0, &size));
	/* The first notification and 10 retries. */
	EXPECT_EQ(before + 11, notifications(dev));
	EXPECT_TRUE(log_contains("vendor driver still holds pinned pages after 10 dma_unmap"));
	/* Nothing changed: the mapping and the driver's pins are there, still charged. */
	EXPECT_EQ(EEXIST, dma_map(container, IOVA, (uintptr_t)buf, PAGE, RW));
	EXPECT_EQ(pins + 2, pins_outstanding());
	EXPECT_EQ(8, locked_vm_kb());

	/* Behaving again, the unmap goes through and everything is released. */
	ASSERT_EQ(0, vmdev(dev, VIR_MDEV_MISBEHAVE, 0, 0, 0, 0));
	ASSERT_EQ(0, dma_unmap(container, IOVA, 8 * PAGE, 0, &size));
	EXPECT_EQ(8 * PAGE, size);
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(0, locked_vm_kb());
	close(dev);
	close(group);
	close(container);
}

/*
 * The driver never lets go, not even when its device is closed: releasing the container unpins and
 * uncharges the pages anyway, with a warning.
 */
TEST(release_with_pins_abandoned)
{
	long pins = pins_outstanding();
	int container, group, dev;
	char *buf = alloc_pages(8);

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_VMDEV_GROUP"), VFIO_TYPE1v2_IOMMU,
				    &container, &group));
	dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, env_str("VFIO_TEST_VMDEV"));
	ASSERT_LE(0, dev);
	ASSERT_EQ(0, dma_map(container, IOVA, (uintptr_t)buf, 8 * PAGE, RW));
	ASSERT_EQ(0, vmdev(dev, VIR_MDEV_PIN, IOVA, 4, VIR_MDEV_FLAG_WRITE, 1));
	ASSERT_EQ(0, vmdev(dev, VIR_MDEV_MISBEHAVE, 0, 0, 0, 2));
	EXPECT_EQ(EBUSY, dma_unmap(container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL));
	close(dev);
	/* The device is closed and its driver forgot the pins: they are still held. */
	EXPECT_EQ(pins + 4, pins_outstanding());
	EXPECT_EQ(16, locked_vm_kb());
	close(group);
	close(container);
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(0, module_refcnt(RUST_MODULE));
	EXPECT_TRUE(log_contains("were still pinned by a vendor driver; released"));
}

TEST_HARNESS_MAIN
