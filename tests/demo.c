// SPDX-License-Identifier: GPL-2.0
/*
 * The guest program of `make demo`: opens a type1 container the way QEMU does, puts the first edu
 * device's group in it, selects VFIO_TYPE1v2_IOMMU, shows which backend serves it, and has the
 * device copy memory through an IOMMU mapping made by that backend. Then dirty page tracking: a
 * vendor (mdev) device pins and writes pages and writes with vfio_dma_rw(), and the container's
 * dirty bitmap shows exactly those pages; what the backend's debugfs shows of that container
 * (Documentation/observability.rst) is printed once.
 */
#include "edu.h"
#include "mdev/vir_mdev.h"
#include "observe.h"

#define DEMO(fmt, ...) printf("DEMO: " fmt "\n", ##__VA_ARGS__)

static int vmdev(int dev, unsigned long op, __u64 iova, __u64 count, __u32 flags, void *buf)
{
	struct vir_mdev_cmd cmd = { .iova = iova, .count = count, .flags = flags, .value = 0x42,
				    .buf = (uintptr_t)buf };

	return ioctl(dev, op, &cmd) ? errno : 0;
}

/* The container's debugfs directory, file by file (this process has one container open). */
static void debugfs_summary(void)
{
	static const char *const files[] = { "mappings", "groups", "accounting", "dirty", "vendor" };
	char dir[256], *text, *line, *save;
	unsigned int i;

	if (container_dir(dir, sizeof(dir)) <= 0) {
		DEMO("no debugfs directory of this container in %s", VIR_DEBUGFS);
		return;
	}
	DEMO("debugfs of this container: %s", dir);
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		text = container_file(dir, files[i]);
		if (!text) {
			DEMO("  %s: cannot read", files[i]);
			continue;
		}
		for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			DEMO("  %-10s %s", files[i], line);
		free(text);
	}
}

/* A container over the vir_mdev device: the vendor driver dirties pages, the bitmap shows them. */
static int dirty_demo(void)
{
	const unsigned long long iova = 0x10000000;
	const char *uuid = env_str("VFIO_TEST_VMDEV");
	__u64 bits[1] = { 0 };
	char map[65], msg[] = "written by the device with vfio_dma_rw()";
	struct backend_refs before = backend_refs(), after;
	unsigned char *buf = alloc_pages(64);
	int container, group, dev, err, i;

	err = open_container(env_int("VFIO_TEST_VMDEV_GROUP"), VFIO_TYPE1v2_IOMMU, &container,
			     &group);
	after = backend_refs();
	if (err || !buf)
		return DEMO("mdev container: %s", strerror(err)), 1;
	DEMO("vir_mdev device %s: container served by %s", uuid,
	     after.rust == before.rust + 1 ? RUST_MODULE : "?");
	dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, uuid);
	if (dev < 0 || dma_map(container, iova, (uintptr_t)buf, 64 * PAGE, RW))
		return DEMO("mdev device or map failed: %s", strerror(errno)), 1;
	err = dirty_pages(container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START);
	DEMO("VFIO_IOMMU_DIRTY_PAGES START over 64 mapped pages: %s", err ? strerror(err) : "ok");
	/* The device pins pages 1, 5-6 and 33 for write and writes them; dma_rw into page 12. */
	err = vmdev(dev, VIR_MDEV_PIN, iova + 1 * PAGE, 1, VIR_MDEV_FLAG_WRITE, NULL) ||
	      vmdev(dev, VIR_MDEV_PIN, iova + 5 * PAGE, 2, VIR_MDEV_FLAG_WRITE, NULL) ||
	      vmdev(dev, VIR_MDEV_PIN, iova + 33 * PAGE, 1, VIR_MDEV_FLAG_WRITE, NULL) ||
	      vmdev(dev, VIR_MDEV_WRITE, iova + 12 * PAGE + 64, sizeof(msg), 0, msg);
	DEMO("device pinned pages 1, 5, 6, 33 and wrote 0x42 into them; dma_rw wrote page 12: %s",
	     err ? "FAILED" : "ok");
	DEMO("page 5 now starts with 0x%02x, page 12 reads \"%s\"", buf[5 * PAGE],
	     (char *)buf + 12 * PAGE + 64);
	err = dirty_bitmap(container, iova, 64 * PAGE, PAGE, bits, sizeof(bits));
	for (i = 0; i < 64; i++)
		map[i] = bits[0] & (1ULL << i) ? '#' : '.';
	map[64] = 0;
	DEMO("VFIO_IOMMU_DIRTY_PAGES GET_BITMAP: %s, bitmap 0x%016llx", err ? strerror(err) : "ok",
	     (unsigned long long)bits[0]);
	DEMO("dirty page map (page 0 left): %s", map);
	debugfs_summary();
	close(dev);
	close(group);
	close(container);
	return err;
}

int main(void)
{
	int group_id = env_int("VFIO_TEST_GROUP");
	const char *bdf = env_str("VFIO_TEST_BDF");
	struct backend_refs before, after;
	int container, group;

	container = open("/dev/vfio/vfio", O_RDWR);
	if (container < 0 || ioctl(container, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
		return DEMO("cannot open /dev/vfio/vfio"), 1;
	DEMO("container: API version %d, TYPE1v2 supported: %d", VFIO_API_VERSION,
	     ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
	group = open_group(group_id);
	if (group < 0 || ioctl(group, VFIO_GROUP_SET_CONTAINER, &container))
		return DEMO("cannot put group %d in the container: %s", group_id, strerror(errno)), 1;
	DEMO("edu device %s is in IOMMU group %d (/dev/vfio/%d)", bdf, group_id, group_id);

	before = backend_refs();
	if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		return DEMO("VFIO_SET_IOMMU failed: %s", strerror(errno)), 1;
	after = backend_refs();
	DEMO("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU): module references %s %ld -> %ld, %s %ld -> %ld",
	     RUST_MODULE, before.rust, after.rust, TYPE1_MODULE, before.type1, after.type1);
	DEMO("container served by %s",
	     after.rust == before.rust + 1 ? RUST_MODULE :
	     after.type1 == before.type1 + 1 ? TYPE1_MODULE : "?");

	struct vfio_iommu_type1_info info = { .argsz = sizeof(info) };
	unsigned long long iova = 0x100000;
	unsigned char *buf = alloc_pages(2);
	struct edu edu;
	__u64 size;
	int i, err;

	if (!buf || ioctl(container, VFIO_IOMMU_GET_INFO, &info))
		return DEMO("VFIO_IOMMU_GET_INFO failed: %s", strerror(errno)), 1;
	DEMO("VFIO_IOMMU_GET_INFO: IOMMU page sizes %#llx", (unsigned long long)info.iova_pgsizes);
	static const char text[] = "vfio-iommu-rust moved these bytes through the IOMMU. ";

	for (i = 0; i < (int)PAGE; i++)
		buf[i] = text[i % (sizeof(text) - 1)];
	memset(buf + PAGE, '.', PAGE);
	err = dma_map(container, iova, (uintptr_t)buf, 2 * PAGE, RW);
	DEMO("VFIO_IOMMU_MAP_DMA iova %#llx, 2 pages at %p: %s; %ld pages pinned, VmLck %ld kB",
	     iova, buf, err ? strerror(err) : "ok", pins_outstanding(), locked_vm_kb());
	if (err)
		return 1;
	err = edu_open(group, bdf, &edu);
	if (err)
		return DEMO("edu: %s", strerror(err)), 1;
	DEMO("edu %s: device DMA iova %#llx -> device buffer, device buffer -> iova %#llx",
	     bdf, iova, iova + PAGE);
	if (edu_dma(&edu, iova, 0, 64, 0) || edu_dma(&edu, iova + PAGE, 0, 64, 1))
		return DEMO("edu DMA timed out"), 1;
	DEMO("second page now reads: \"%.64s\"", buf + PAGE);
	DEMO("round trip %s", memcmp(buf, buf + PAGE, 64) ? "FAILED" : "ok: the bytes match");
	edu_close(&edu);
	err = dma_unmap(container, iova, 2 * PAGE, 0, &size);
	DEMO("VFIO_IOMMU_UNMAP_DMA: %s, %llu bytes; %ld pages pinned, VmLck %ld kB",
	     err ? strerror(err) : "ok", (unsigned long long)size, pins_outstanding(),
	     locked_vm_kb());
	close(group);
	close(container);
	after = backend_refs();
	DEMO("closed: %s references back to %ld", RUST_MODULE, after.rust);
	return dirty_demo();
}
