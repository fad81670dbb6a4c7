// SPDX-License-Identifier: GPL-2.0
/*
 * Containers with an emulated-IOMMU (mdev) group, the kernel's mtty sample mdev.
 * Such a container has no IOMMU domain: nothing is pinned at map time, every IOVA is accepted,
 * vaddr updates are refused. An IOMMU group (edu) joining it pins and maps what is mapped; its
 * leaving unpins. Against both backends.
 */
#include "kselftest_harness.h"
#include "edu.h"

#define TOP (~0ULL - PAGE + 1)	/* the last page of the 64-bit space */

FIXTURE(mdev) {
	int container;
	int group;
	long pins_before;
	enum vfio_backend backend;
	char *buf;
};

FIXTURE_SETUP(mdev)
{
	struct backend_refs before = backend_refs();

	self->backend = vfio_backend();
	self->pins_before = pins_outstanding();
	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_MDEV_GROUP"), VFIO_TYPE1v2_IOMMU,
				    &self->container, &self->group));
	ASSERT_SERVED_SINCE(before);
	self->buf = alloc_pages(16);
	ASSERT_NE(NULL, self->buf);
}

FIXTURE_TEARDOWN(mdev)
{
	close(self->group);
	close(self->container);
	EXPECT_EQ(self->pins_before, pins_outstanding());
	EXPECT_EQ(0, locked_vm_kb());
}

TEST_F(mdev, info_and_extensions)
{
	struct vfio_iommu_type1_info *info;
	struct vfio_info_cap_header *h;
	char buf[1024] = { 0 };
	__u32 off;
	int n = 0;

	EXPECT_EQ(0, ioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	EXPECT_EQ(1, ioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL));
	/* No domain: "every domain" enforces coherency. */
	EXPECT_EQ(1, ioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU));

	info = (void *)buf;
	info->argsz = sizeof(buf);
	ASSERT_EQ(0, ioctl(self->container, VFIO_IOMMU_GET_INFO, info));
	/* Without a domain: any page size the CPU's or larger. */
	EXPECT_EQ(~(PAGE - 1), info->iova_pgsizes);
	RECORD("info_and_extensions", "pgsizes %#llx", (unsigned long long)info->iova_pgsizes);
	/* No IOVA_RANGE capability: every IOVA is accepted. */
	for (off = info->cap_offset; off; off = h->next, n++) {
		h = (void *)(buf + off);
		EXPECT_NE(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, h->id);
		if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL)
			RECORD("info_and_extensions", "dma_avail %u",
			       ((struct vfio_iommu_type1_info_dma_avail *)h)->avail);
	}
	EXPECT_LE(1, n);
}

TEST_F(mdev, map_without_pinning)
{
	__u64 size;

	ASSERT_EQ(0, dma_map(self->container, 0x100000, (uintptr_t)self->buf, 16 * PAGE, RW));
	EXPECT_EQ(self->pins_before, pins_outstanding());
	EXPECT_EQ(0, locked_vm_kb());
	/* Beyond any IOMMU aperture, and even unmapped user memory: nothing is checked yet. */
	EXPECT_EQ(0, dma_map(self->container, 1ULL << 60, (uintptr_t)self->buf, PAGE, RW));
	/* Vaddr invalidation is refused with an mdev. */
	EXPECT_EQ(EBUSY, dma_unmap(self->container, 0x100000, 16 * PAGE, VFIO_DMA_UNMAP_FLAG_VADDR,
				   &size));
	EXPECT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size));
	EXPECT_EQ(17 * PAGE, size);
}

/*
 * A mapping of the last page of the 64-bit space. 6.12 type1 computes iova + size, which wraps
 * to 0, so its lookups never find such a mapping (measured): the same page maps twice, unmap and
 * even UNMAP_ALL report size 0 and leave both behind until the container closes (with an IOMMU
 * domain their pages would stay pinned that long). We treat it like any other mapping
 * (Documentation/status.rst), as type1 does from 6.18 on (type1_handles_top()).
 */
TEST_F(mdev, top_of_address_space)
{
	__u64 size;

	ASSERT_EQ(0, dma_map(self->container, TOP, (uintptr_t)self->buf, PAGE, RW));
	if (self->backend == BACKEND_TYPE1 && !type1_handles_top()) {
		EXPECT_EQ(0, dma_map(self->container, TOP, (uintptr_t)self->buf, PAGE, RW));
		EXPECT_EQ(0, dma_unmap(self->container, TOP, PAGE, 0, &size));
		EXPECT_EQ(0, size);
		EXPECT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size));
		EXPECT_EQ(0, size);
		return;
	}
	EXPECT_EQ(EEXIST, dma_map(self->container, TOP, (uintptr_t)self->buf, PAGE, RW));
	EXPECT_EQ(EEXIST, dma_map(self->container, TOP - PAGE, (uintptr_t)self->buf, 2 * PAGE, RW));
	EXPECT_EQ(0, dma_unmap(self->container, TOP, PAGE, 0, &size));
	EXPECT_EQ(PAGE, size);
	/* Gone: it maps again, with its neighbour, and UNMAP_ALL finds both. */
	EXPECT_EQ(0, dma_map(self->container, TOP, (uintptr_t)self->buf, PAGE, RW));
	EXPECT_EQ(0, dma_map(self->container, TOP - PAGE, (uintptr_t)self->buf, PAGE, RW));
	EXPECT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size));
	EXPECT_EQ(2 * PAGE, size);
}

/*
 * An IOMMU group joins the mdev container: the existing mappings are pinned and mapped into its
 * new domain, and the device can DMA into them. When it leaves, they are unpinned but stay.
 */
TEST_F(mdev, iommu_group_joins_and_leaves)
{
	unsigned char expect[EDU_DMA_MAX];
	int edu_group = open_group(env_int("VFIO_TEST_GROUP"));
	struct edu edu;
	__u64 size;
	int i;

	ASSERT_LE(0, edu_group);
	for (i = 0; i < EDU_DMA_MAX; i++)
		self->buf[i] = (char)(i * 3 + 1);
	memcpy(expect, self->buf, EDU_DMA_MAX);
	memset(self->buf + 8 * PAGE, 0, PAGE);
	ASSERT_EQ(0, dma_map(self->container, 0x100000, (uintptr_t)self->buf, 16 * PAGE, RW));
	EXPECT_EQ(self->pins_before, pins_outstanding());

	ASSERT_EQ(0, ioctl(edu_group, VFIO_GROUP_SET_CONTAINER, &self->container));
	EXPECT_EQ(self->pins_before + 16, pins_outstanding());
	EXPECT_EQ(64, locked_vm_kb());
	EXPECT_EQ(0, ioctl(self->container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	ASSERT_EQ(0, edu_open(edu_group, env_str("VFIO_TEST_BDF"), &edu));
	ASSERT_EQ(0, edu_dma(&edu, 0x100000, 0, EDU_DMA_MAX, 0));
	ASSERT_EQ(0, edu_dma(&edu, 0x100000 + 8 * PAGE, 0, EDU_DMA_MAX, 1));
	EXPECT_EQ(0, memcmp(expect, self->buf + 8 * PAGE, EDU_DMA_MAX));
	/* A mapping made now is pinned at once; one beyond the IOMMU aperture is refused. */
	EXPECT_EQ(0, dma_map(self->container, 0x200000, (uintptr_t)self->buf, PAGE, RW));
	EXPECT_EQ(self->pins_before + 17, pins_outstanding());
	EXPECT_EQ(EINVAL, dma_map(self->container, 1ULL << 60, (uintptr_t)self->buf, PAGE, RW));
	edu_close(&edu);

	ASSERT_EQ(0, ioctl(edu_group, VFIO_GROUP_UNSET_CONTAINER));
	close(edu_group);
	EXPECT_EQ(self->pins_before, pins_outstanding());
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size));
	EXPECT_EQ(17 * PAGE, size);
}

/*
 * An existing mapping outside the IOVA space of a joining IOMMU group makes the join fail, and
 * the container carries on without it.
 */
TEST_F(mdev, iommu_group_conflicts)
{
	int edu_group = open_group(env_int("VFIO_TEST_GROUP"));
	int err;

	ASSERT_LE(0, edu_group);
	ASSERT_EQ(0, dma_map(self->container, 0xfee00000ULL, (uintptr_t)self->buf, PAGE, RW));
	err = vfio_errno(ioctl(edu_group, VFIO_GROUP_SET_CONTAINER, &self->container));
	EXPECT_EQ(EINVAL, err);
	RECORD("iommu_group_conflicts", "msi_window %d", err);
	EXPECT_EQ(self->pins_before, pins_outstanding());
	close(edu_group);
}

TEST_HARNESS_MAIN
