// SPDX-License-Identifier: GPL-2.0
/*
 * The guest program of `make demo`: opens a type1 container the way QEMU does, puts the first edu
 * device's group in it, selects VFIO_TYPE1v2_IOMMU, shows which backend serves it, and has the
 * device copy memory through an IOMMU mapping made by that backend.
 */
#include "edu.h"

#define DEMO(fmt, ...) printf("DEMO: " fmt "\n", ##__VA_ARGS__)

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
	return 0;
}
