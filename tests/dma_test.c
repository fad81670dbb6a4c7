// SPDX-License-Identifier: GPL-2.0
/*
 * The type1 DMA ioctls, table driven: VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA and
 * VFIO_IOMMU_UNMAP_DMA with every invalid input of Documentation/status.rst's errno table and
 * their valid paths, on v1 and v2 containers. Run against type1 and against vfio_iommu_rust in
 * the same boot; every result is also RECORDed, and the host compares the two backends.
 */
#include "kselftest_harness.h"
#include "vfio_test.h"

#define IOVA 0x100000ULL
#define NPAGES 64

FIXTURE(dma) {
	int container;
	int group;
	char *buf;
	char *ro;
	enum vfio_backend backend;
	long pins_before;
};

FIXTURE_VARIANT(dma) {
	unsigned long magic;
	const char *name;
};

FIXTURE_VARIANT_ADD(dma, v1) {
	.magic = VFIO_TYPE1_IOMMU,
	.name = "v1",
};

FIXTURE_VARIANT_ADD(dma, v2) {
	.magic = VFIO_TYPE1v2_IOMMU,
	.name = "v2",
};

FIXTURE_SETUP(dma)
{
	struct backend_refs before = backend_refs();

	self->backend = vfio_backend();
	self->pins_before = pins_outstanding();
	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_GROUP"), variant->magic,
				     &self->container, &self->group));
	ASSERT_SERVED_SINCE(before);
	self->buf = alloc_pages(NPAGES);
	ASSERT_NE(NULL, self->buf);
	self->ro = mmap(NULL, 4 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->ro);
}

FIXTURE_TEARDOWN(dma)
{
	close(self->group);
	close(self->container);
	/* Releasing the container unpins and uncharges everything. */
	EXPECT_EQ(self->pins_before, pins_outstanding());
	EXPECT_EQ(0, locked_vm_kb());
}

#define B(off) ((__u64)(uintptr_t)self->buf + (off))
#define TOP (~0ULL - PAGE + 1)	/* the last page of the 64-bit space */

struct map_case {
	const char *name;
	__u32 argsz;		/* 0: sizeof */
	__u32 flags;
	__u64 iova;
	__u64 vaddr;
	__u64 size;
	int err;		/* both backends */
	int err_rust;		/* if non-zero: ours, and type1 from 6.18 on (type1_handles_top()) */
};

/* A mapping of 4 pages at IOVA exists when these run. */
TEST_F(dma, map_errors)
{
	char *unmapped = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	const struct map_case cases[] = {
		{ "argsz_short", 31, RW, IOVA + 16 * PAGE, B(0), PAGE, EINVAL },
		{ "flag_unknown", 0, RW | (1 << 3), IOVA + 16 * PAGE, B(0), PAGE, EINVAL },
		{ "flags_none", 0, 0, IOVA + 16 * PAGE, B(0), PAGE, EINVAL },
		{ "read_and_vaddr", 0, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_VADDR,
		  IOVA, B(0), 4 * PAGE, EINVAL },
		{ "size_zero", 0, RW, IOVA + 16 * PAGE, B(0), 0, EINVAL },
		{ "iova_unaligned", 0, RW, IOVA + 16 * PAGE + 512, B(0), PAGE, EINVAL },
		{ "vaddr_unaligned", 0, RW, IOVA + 16 * PAGE, B(512), PAGE, EINVAL },
		{ "size_unaligned", 0, RW, IOVA + 16 * PAGE, B(0), PAGE + 512, EINVAL },
		/*
		 * A range that wraps past 2^64 is EOVERFLOW (as type1 from 6.18 on); 6.12 type1 says
		 * EINVAL.
		 */
		{ "iova_wraps", 0, RW, TOP, B(0), 2 * PAGE, EINVAL, EOVERFLOW },
		{ "vaddr_wraps", 0, RW, IOVA + 16 * PAGE, TOP, 2 * PAGE, EINVAL, EOVERFLOW },
		{ "overlap_exact", 0, RW, IOVA, B(0), 4 * PAGE, EEXIST },
		{ "overlap_head", 0, RW, IOVA - PAGE, B(0), 2 * PAGE, EEXIST },
		{ "overlap_tail", 0, RW, IOVA + 3 * PAGE, B(0), 2 * PAGE, EEXIST },
		{ "overlap_inside", 0, RW, IOVA + PAGE, B(0), PAGE, EEXIST },
		{ "overlap_around", 0, RW, IOVA - PAGE, B(0), 8 * PAGE, EEXIST },
		{ "beyond_aperture", 0, RW, 1ULL << 48, B(0), PAGE, EINVAL },
		{ "msi_window", 0, RW, 0xfee00000ULL, B(0), PAGE, EINVAL },
		{ "top_of_space", 0, RW, TOP, B(0), PAGE, EINVAL },
		{ "vaddr_unmapped", 0, RW, IOVA + 16 * PAGE, (uintptr_t)unmapped, PAGE, EFAULT },
		{ "vaddr_readonly_write", 0, RW, IOVA + 16 * PAGE, (uintptr_t)self->ro, PAGE, EFAULT },
		{ "vaddr_update_no_mapping", 0, VFIO_DMA_MAP_FLAG_VADDR, IOVA + 16 * PAGE, B(0),
		  PAGE, ENOENT },
		{ "vaddr_update_valid_mapping", 0, VFIO_DMA_MAP_FLAG_VADDR, IOVA, B(0), 4 * PAGE,
		  EINVAL },
	};
	unsigned int i;

	ASSERT_NE(MAP_FAILED, unmapped);
	ASSERT_EQ(0, dma_map(self->container, IOVA, B(0), 4 * PAGE, RW));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct map_case *c = &cases[i];
		struct vfio_iommu_type1_dma_map map = {
			.argsz = c->argsz ? c->argsz : sizeof(map),
			.flags = c->flags,
			.vaddr = c->vaddr,
			.iova = c->iova,
			.size = c->size,
		};
		int want = c->err_rust && (self->backend == BACKEND_RUST || type1_handles_top()) ?
			   c->err_rust : c->err;
		int err = vfio_errno(ioctl(self->container, VFIO_IOMMU_MAP_DMA, &map));

		EXPECT_EQ(want, err) {
			TH_LOG("case %s: errno %d, expected %d", c->name, err, want);
		}
		if (!c->err_rust || type1_handles_top())
			RECORD("map_errors", "%s.%s %d", variant->name, c->name, err);
	}
	/* Nothing of the failed requests stayed: the one mapping is unmapped whole. */
	__u64 size = 0;

	EXPECT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size));
	EXPECT_EQ(4 * PAGE, size);
}

TEST_F(dma, map_prot)
{
	__u64 size;

	EXPECT_EQ(0, dma_map(self->container, IOVA, B(0), PAGE, VFIO_DMA_MAP_FLAG_READ));
	EXPECT_EQ(0, dma_map(self->container, IOVA + PAGE, B(PAGE), PAGE, VFIO_DMA_MAP_FLAG_WRITE));
	/* Read-only memory may be mapped for device reads. */
	EXPECT_EQ(0, dma_map(self->container, IOVA + 2 * PAGE, (uintptr_t)self->ro, PAGE,
			     VFIO_DMA_MAP_FLAG_READ));
	EXPECT_EQ(0, dma_unmap(self->container, IOVA, 3 * PAGE, 0, &size));
	EXPECT_EQ(3 * PAGE, size);
}

struct unmap_case {
	const char *name;
	__u32 argsz;		/* 0: sizeof */
	__u32 flags;
	__u64 iova;
	__u64 size;
	int err;
	int err_rust;		/* if non-zero: ours, and type1 from 6.18 on (type1_handles_top()) */
};

/* A mapping of 4 pages at IOVA exists when these run; none of them changes it. */
TEST_F(dma, unmap_errors)
{
	const struct unmap_case cases[] = {
		{ "argsz_short", 23, 0, IOVA, 4 * PAGE, EINVAL },
		{ "flag_unknown", 0, 1 << 3, IOVA, 4 * PAGE, EINVAL },
		{ "bitmap_and_all", 0, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_ALL,
		  0, 0, EINVAL },
		{ "bitmap_and_vaddr", 0,
		  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_VADDR, IOVA, 4 * PAGE,
		  EINVAL },
		{ "bitmap_no_room", 0, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, IOVA, 4 * PAGE, EINVAL },
		{ "iova_unaligned", 0, 0, IOVA + 512, 4 * PAGE, EINVAL },
		{ "all_with_iova", 0, VFIO_DMA_UNMAP_FLAG_ALL, IOVA, 0, EINVAL },
		{ "all_with_size", 0, VFIO_DMA_UNMAP_FLAG_ALL, 0, 4 * PAGE, EINVAL },
		{ "size_zero", 0, 0, IOVA, 0, EINVAL },
		{ "size_unaligned", 0, 0, IOVA, 4 * PAGE - 512, EINVAL },
		/* Deliberate, as for MAP_DMA: a wrapping range is EOVERFLOW. */
		{ "range_wraps", 0, 0, TOP, 2 * PAGE, EINVAL, EOVERFLOW },
	};
	unsigned int i;

	ASSERT_EQ(0, dma_map(self->container, IOVA, B(0), 4 * PAGE, RW));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct unmap_case *c = &cases[i];
		struct vfio_iommu_type1_dma_unmap unmap = {
			.argsz = c->argsz ? c->argsz : sizeof(unmap),
			.flags = c->flags,
			.iova = c->iova,
			.size = c->size,
		};
		int want = c->err_rust && (self->backend == BACKEND_RUST || type1_handles_top()) ?
			   c->err_rust : c->err;
		int err = vfio_errno(ioctl(self->container, VFIO_IOMMU_UNMAP_DMA, &unmap));

		EXPECT_EQ(want, err) {
			TH_LOG("case %s: errno %d, expected %d", c->name, err, want);
		}
		/* On error nothing is copied back. */
		EXPECT_EQ(c->size, unmap.size);
		if (!c->err_rust || type1_handles_top())
			RECORD("unmap_errors", "%s.%s %d", variant->name, c->name, err);
	}
	/* The mapping is intact. */
	EXPECT_EQ(EEXIST, dma_map(self->container, IOVA, B(0), 4 * PAGE, RW));
}

/*
 * An unmap whose argument cannot be written back (read-only memory): EFAULT from both. type1 has
 * unmapped by then and cannot report it; we check first and unmap nothing (status.rst).
 */
TEST_F(dma, unmap_result_unwritable)
{
	struct vfio_iommu_type1_dma_unmap *u = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
						    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int err;

	ASSERT_NE(MAP_FAILED, u);
	ASSERT_EQ(0, dma_map(self->container, IOVA, B(0), 4 * PAGE, RW));
	u->argsz = sizeof(*u);
	u->iova = IOVA;
	u->size = 4 * PAGE;
	ASSERT_EQ(0, mprotect(u, PAGE, PROT_READ));
	err = vfio_errno(ioctl(self->container, VFIO_IOMMU_UNMAP_DMA, u));
	EXPECT_EQ(EFAULT, err);
	RECORD("unmap_result_unwritable", "%s.errno %d", variant->name, err);
	err = dma_map(self->container, IOVA, B(0), 4 * PAGE, RW);
	if (self->backend == BACKEND_TYPE1) {
		EXPECT_EQ(0, err);	/* it was unmapped */
	} else {
		EXPECT_EQ(EEXIST, err);	/* nothing was unmapped */
	}
}

/* Unmap with a dirty bitmap while dirty tracking is off: refused, mapping kept. */
TEST_F(dma, unmap_bitmap_without_tracking)
{
	__u64 bits[1] = { 0 };

	ASSERT_EQ(0, dma_map(self->container, IOVA, B(0), 4 * PAGE, RW));
	EXPECT_EQ(EINVAL, dma_unmap_bitmap(self->container, IOVA, 4 * PAGE, PAGE, bits,
					   sizeof(bits), NULL));
	EXPECT_EQ(0, bits[0]);
	EXPECT_EQ(EEXIST, dma_map(self->container, IOVA, B(0), 4 * PAGE, RW));
}

/* Three mappings: A = [IOVA, +4P), B = [+4P, +8P), C = [+16P, +20P). */
static void map_abc(struct __test_metadata *_metadata, FIXTURE_DATA(dma) *self)
{
	ASSERT_EQ(0, dma_map(self->container, IOVA, B(0), 4 * PAGE, RW));
	ASSERT_EQ(0, dma_map(self->container, IOVA + 4 * PAGE, B(4 * PAGE), 4 * PAGE, RW));
	ASSERT_EQ(0, dma_map(self->container, IOVA + 16 * PAGE, B(16 * PAGE), 4 * PAGE, RW));
}

TEST_F(dma, unmap_semantics)
{
	__u64 size;
	int err;

	map_abc(_metadata, self);
	/* Nothing mapped in the range: success, size 0. */
	EXPECT_EQ(0, dma_unmap(self->container, IOVA + 8 * PAGE, 8 * PAGE, 0, &size));
	EXPECT_EQ(0, size);

	/* Starting inside A: v2 refuses to bisect; v1 stops at A, unmapping nothing. */
	err = dma_unmap(self->container, IOVA + PAGE, 3 * PAGE, 0, &size);
	RECORD("unmap_semantics", "%s.start_inside %d %llu", variant->name, err,
	       (unsigned long long)size);
	if (variant->magic == VFIO_TYPE1v2_IOMMU) {
		EXPECT_EQ(EINVAL, err);
	} else {
		EXPECT_EQ(0, err);
		EXPECT_EQ(0, size);
	}

	/* Ending inside B: v2 refuses; v1 removes A and all of B (more than asked). */
	err = dma_unmap(self->container, IOVA, 6 * PAGE, 0, &size);
	RECORD("unmap_semantics", "%s.end_inside %d %llu", variant->name, err,
	       (unsigned long long)size);
	if (variant->magic == VFIO_TYPE1v2_IOMMU) {
		EXPECT_EQ(EINVAL, err);
		/* Spanning A and B exactly, with the hole after: both go. */
		EXPECT_EQ(0, dma_unmap(self->container, IOVA, 16 * PAGE, 0, &size));
		EXPECT_EQ(8 * PAGE, size);
	} else {
		EXPECT_EQ(0, err);
		EXPECT_EQ(8 * PAGE, size);
	}
	/* A and B are gone, C is not. */
	EXPECT_EQ(0, dma_map(self->container, IOVA, B(0), 8 * PAGE, RW));
	EXPECT_EQ(EEXIST, dma_map(self->container, IOVA + 16 * PAGE, B(0), PAGE, RW));
	/* Exact unmap of C, then again: nothing left. */
	EXPECT_EQ(0, dma_unmap(self->container, IOVA + 16 * PAGE, 4 * PAGE, 0, &size));
	EXPECT_EQ(4 * PAGE, size);
	EXPECT_EQ(0, dma_unmap(self->container, IOVA + 16 * PAGE, 4 * PAGE, 0, &size));
	EXPECT_EQ(0, size);
	/* UNMAP_ALL returns the total. */
	EXPECT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size));
	EXPECT_EQ(8 * PAGE, size);
	EXPECT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size));
	EXPECT_EQ(0, size);
}

TEST_F(dma, remap_after_unmap)
{
	__u64 size;
	int i;

	for (i = 0; i < 16; i++) {
		ASSERT_EQ(0, dma_map(self->container, IOVA, B(i % 4 * PAGE), 8 * PAGE, RW));
		ASSERT_EQ(0, dma_unmap(self->container, IOVA, 8 * PAGE, 0, &size));
		ASSERT_EQ(8 * PAGE, size);
	}
	EXPECT_EQ(self->pins_before, pins_outstanding());
}

TEST_F(dma, vaddr_update)
{
	__u64 size;
	int err;

	map_abc(_metadata, self);
	/* Invalidate B: it keeps its IOMMU mapping, its vaddr is unusable. */
	EXPECT_EQ(0, dma_unmap(self->container, IOVA + 4 * PAGE, 4 * PAGE, VFIO_DMA_UNMAP_FLAG_VADDR,
			       &size));
	EXPECT_EQ(4 * PAGE, size);
	/* Again: already invalid. */
	EXPECT_EQ(EINVAL, dma_unmap(self->container, IOVA + 4 * PAGE, 4 * PAGE,
				    VFIO_DMA_UNMAP_FLAG_VADDR, &size));
	/* Over A and B: B is invalid, so A's mark is rolled back; nothing is copied back. */
	EXPECT_EQ(EINVAL, dma_unmap(self->container, IOVA, 8 * PAGE, VFIO_DMA_UNMAP_FLAG_VADDR,
				    &size));
	EXPECT_EQ(8 * PAGE, size);
	EXPECT_EQ(EINVAL, dma_map(self->container, IOVA, B(0), 4 * PAGE, VFIO_DMA_MAP_FLAG_VADDR));
	/* While a vaddr is invalid no group may join (attach could need to pin). */
	int group2 = open_group(env_int("VFIO_TEST_GROUP2"));

	ASSERT_LE(0, group2);
	err = vfio_errno(ioctl(group2, VFIO_GROUP_SET_CONTAINER, &self->container));
	EXPECT_EQ(EBUSY, err);
	RECORD("vaddr_update", "%s.attach_while_invalid %d", variant->name, err);
	/* New vaddr: size must match the mapping. */
	EXPECT_EQ(EINVAL, dma_map(self->container, IOVA + 4 * PAGE, B(32 * PAGE), 2 * PAGE,
				  VFIO_DMA_MAP_FLAG_VADDR));
	EXPECT_EQ(0, dma_map(self->container, IOVA + 4 * PAGE, B(32 * PAGE), 4 * PAGE,
			     VFIO_DMA_MAP_FLAG_VADDR));
	EXPECT_EQ(0, vfio_errno(ioctl(group2, VFIO_GROUP_SET_CONTAINER, &self->container)));
	EXPECT_EQ(0, ioctl(group2, VFIO_GROUP_UNSET_CONTAINER));
	close(group2);
	/* VADDR | ALL invalidates everything; each is then restored. */
	EXPECT_EQ(0, dma_unmap(self->container, 0, 0,
			       VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL, &size));
	EXPECT_EQ(12 * PAGE, size);
	EXPECT_EQ(0, dma_map(self->container, IOVA, B(0), 4 * PAGE, VFIO_DMA_MAP_FLAG_VADDR));
	EXPECT_EQ(0, dma_map(self->container, IOVA + 4 * PAGE, B(4 * PAGE), 4 * PAGE,
			     VFIO_DMA_MAP_FLAG_VADDR));
	EXPECT_EQ(0, dma_map(self->container, IOVA + 16 * PAGE, B(16 * PAGE), 4 * PAGE,
			     VFIO_DMA_MAP_FLAG_VADDR));
	/* Invalidated mappings unmap normally. */
	EXPECT_EQ(0, dma_unmap(self->container, IOVA + 16 * PAGE, 4 * PAGE,
			       VFIO_DMA_UNMAP_FLAG_VADDR, &size));
	EXPECT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size));
	EXPECT_EQ(12 * PAGE, size);
}

/* Pages are pinned and charged while mapped, and only then. */
TEST_F(dma, pin_accounting)
{
	__u64 size;

	ASSERT_EQ(0, dma_map(self->container, IOVA, B(0), 16 * PAGE, RW));
	EXPECT_EQ(self->pins_before + 16, pins_outstanding());
	EXPECT_EQ(16 * PAGE / 1024, locked_vm_kb());
	ASSERT_EQ(0, dma_unmap(self->container, IOVA, 16 * PAGE, 0, &size));
	EXPECT_EQ(self->pins_before, pins_outstanding());
	EXPECT_EQ(0, locked_vm_kb());
	/* Still mapped at close: the release unpins (checked by the teardown). */
	ASSERT_EQ(0, dma_map(self->container, IOVA, B(0), 16 * PAGE, RW));
}

/* Walks the capability chain of @info (of @argsz bytes) and returns the header with @id. */
static struct vfio_info_cap_header *find_cap(void *info, __u32 argsz, __u16 id, int *index)
{
	struct vfio_iommu_type1_info *i = info;
	__u32 off = i->cap_offset;
	int n = 0;

	while (off && off + sizeof(struct vfio_info_cap_header) <= argsz) {
		struct vfio_info_cap_header *h = (void *)((char *)info + off);

		if (h->id == id) {
			*index = n;
			return h;
		}
		off = h->next;
		n++;
	}
	return NULL;
}

TEST_F(dma, get_info)
{
	struct vfio_iommu_type1_info small = { .argsz = 15 };
	struct vfio_iommu_type1_info hdr = { .argsz = 16, .cap_offset = 0xdead };
	struct vfio_iommu_type1_info_dma_avail *avail;
	struct vfio_iommu_type1_info_cap_iova_range *ranges;
	struct vfio_iommu_type1_info_cap_migration *mig;
	struct vfio_info_cap_header *h;
	char buf[4096];
	__u32 needed;
	int idx, i;

	EXPECT_EQ(EINVAL, vfio_errno(ioctl(self->container, VFIO_IOMMU_GET_INFO, &small)));
	/* 16 bytes: the header without cap_offset is written back, argsz tells the size needed. */
	ASSERT_EQ(0, ioctl(self->container, VFIO_IOMMU_GET_INFO, &hdr));
	EXPECT_EQ(VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS, hdr.flags);
	EXPECT_EQ(0xdead, hdr.cap_offset);
	EXPECT_LT(sizeof(hdr), hdr.argsz);
	needed = hdr.argsz;
	RECORD("get_info", "%s.pgsizes %#llx", variant->name, (unsigned long long)hdr.iova_pgsizes);
	/* The minimum page size is the CPU's. */
	EXPECT_EQ(PAGE, hdr.iova_pgsizes & -hdr.iova_pgsizes);

	/* The whole header, still no room for capabilities: cap_offset is 0. */
	hdr.argsz = sizeof(hdr);
	hdr.cap_offset = 0xdead;
	ASSERT_EQ(0, ioctl(self->container, VFIO_IOMMU_GET_INFO, &hdr));
	EXPECT_EQ(needed, hdr.argsz);
	EXPECT_EQ(0, hdr.cap_offset);

	memset(buf, 0xa5, sizeof(buf));
	((struct vfio_iommu_type1_info *)buf)->argsz = needed;
	ASSERT_EQ(0, ioctl(self->container, VFIO_IOMMU_GET_INFO, buf));
	EXPECT_EQ(sizeof(struct vfio_iommu_type1_info),
		  ((struct vfio_iommu_type1_info *)buf)->cap_offset);
	EXPECT_EQ(0xa5, (unsigned char)buf[needed]); /* nothing written past argsz */

	/* No kernel byte reaches userspace uninitialised: the header's pad is 0. */
	EXPECT_EQ(0, ((struct vfio_iommu_type1_info *)buf)->pad);
	avail = (void *)find_cap(buf, needed, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, &idx);
	ASSERT_NE(NULL, avail);
	EXPECT_EQ(1, avail->header.version);
	EXPECT_EQ(65535, avail->avail);
	/* The capability is 12 bytes, padded to 16 with zeros (the buffer was 0xa5 before). */
	EXPECT_EQ(0, *(__u32 *)((char *)avail + 12));
	ranges = (void *)find_cap(buf, needed, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, &idx);
	ASSERT_NE(NULL, ranges);
	EXPECT_EQ(0, ranges->header.next);	/* last in the chain */
	for (i = 0; i < (int)ranges->nr_iovas; i++)
		RECORD("get_info", "%s.iova_range.%d %#llx-%#llx", variant->name, i,
		       (unsigned long long)ranges->iova_ranges[i].start,
		       (unsigned long long)ranges->iova_ranges[i].end);
	/* VT-d with a 48-bit address width, minus the MSI window. */
	ASSERT_EQ(2, ranges->nr_iovas);
	EXPECT_EQ(0, ranges->iova_ranges[0].start);
	EXPECT_EQ(0xfedfffffULL, ranges->iova_ranges[0].end);
	EXPECT_EQ(0xfef00000ULL, ranges->iova_ranges[1].start);
	EXPECT_EQ((1ULL << 48) - 1, ranges->iova_ranges[1].end);

	/* Dirty tracking: first in the chain, even for v1 containers (as type1). */
	mig = (void *)find_cap(buf, needed, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, &idx);
	ASSERT_NE(NULL, mig);
	EXPECT_EQ(0, idx);
	EXPECT_EQ(1, mig->header.version);
	EXPECT_EQ(0, mig->flags);
	EXPECT_EQ(PAGE, mig->pgsize_bitmap);
	EXPECT_EQ(256ULL << 20, mig->max_dirty_bitmap_size);
	/* The hole after flags is zeroed too. */
	EXPECT_EQ(0, *(__u32 *)((char *)mig + 12));
	EXPECT_EQ(0, ranges->reserved);
	RECORD("get_info", "%s.argsz %u", variant->name, needed);

	/* Each mapping uses one DMA_AVAIL slot. */
	ASSERT_EQ(0, dma_map(self->container, IOVA, B(0), PAGE, RW));
	ASSERT_EQ(0, ioctl(self->container, VFIO_IOMMU_GET_INFO, buf));
	h = find_cap(buf, needed, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, &idx);
	ASSERT_NE(NULL, h);
	EXPECT_EQ(65534, ((struct vfio_iommu_type1_info_dma_avail *)h)->avail);
}

TEST_HARNESS_MAIN
