// SPDX-License-Identifier: GPL-2.0
/*
 * Dirty page tracking, against both backends: VFIO_IOMMU_DIRTY_PAGES and unmap with a dirty
 * bitmap, with the vir_mdev test vendor driver (tests/mdev) pinning and writing pages and using
 * vfio_dma_rw(), and with an edu IOMMU group for the "everything is dirty" scope. Bitmaps are
 * compared bit for bit with a model; the backends' bitmaps are RECORDed and compared too.
 */
#include "kselftest_harness.h"
#include "mdev/vir_mdev.h"
#include "vfio_test.h"

#define IOVA 0x10000000ULL
#define NPAGES 512
#define MAXBITS 4096

FIXTURE(dirty) {
	int container;
	int group;
	int dev;
	char *buf;
	long pins_before;
	enum vfio_backend backend;
};

FIXTURE_SETUP(dirty)
{
	struct backend_refs before = backend_refs();

	self->backend = vfio_backend();
	self->pins_before = pins_outstanding();
	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_VMDEV_GROUP"), VFIO_TYPE1v2_IOMMU,
				    &self->container, &self->group));
	ASSERT_SERVED_SINCE(before);
	self->dev = ioctl(self->group, VFIO_GROUP_GET_DEVICE_FD, env_str("VFIO_TEST_VMDEV"));
	ASSERT_LE(0, self->dev);
	self->buf = alloc_pages(NPAGES);
	ASSERT_NE(NULL, self->buf);
}

FIXTURE_TEARDOWN(dirty)
{
	close(self->dev);
	close(self->group);
	close(self->container);
	EXPECT_EQ(self->pins_before, pins_outstanding());
	EXPECT_EQ(0, locked_vm_kb());
}

#define B(page) ((__u64)(uintptr_t)self->buf + (__u64)(page) * PAGE)

static int vmdev(int dev, unsigned long op, __u64 iova, __u64 count, __u32 flags, __u32 value,
		 void *buf, __u64 *out)
{
	struct vir_mdev_cmd cmd = {
		.iova = iova, .count = count, .flags = flags, .value = value,
		.buf = (uintptr_t)buf,
	};
	int err = vfio_errno(ioctl(dev, op, &cmd));

	if (out)
		*out = op == VIR_MDEV_STATS ? cmd.out : cmd.out;
	return err;
}

static __u64 notifications(int dev)
{
	__u64 n = 0;

	vmdev(dev, VIR_MDEV_STATS, 0, 0, 0, 0, NULL, &n);
	return n;
}

/* The set bits of @bits (of @nbits) as a list "a b c", for messages and records. */
static const char *bits_str(const __u64 *bits, int nbits)
{
	static char s[8192];
	int i, n = 0;

	s[0] = 0;
	for (i = 0; i < nbits && n < (int)sizeof(s) - 16; i++)
		if (bits[i / 64] & (1ULL << (i % 64)))
			n += snprintf(s + n, sizeof(s) - n, "%s%d", n ? " " : "", i);
	return s;
}

static int bits_equal(const __u64 *a, const __u64 *b, int nbits)
{
	return !memcmp(a, b, (nbits + 63) / 64 * 8);
}

static void set_bit(__u64 *bits, int i)
{
	bits[i / 64] |= 1ULL << (i % 64);
}

TEST_F(dirty, errors)
{
	__u64 bits[MAXBITS / 64] = { 0 };
	struct vfio_iommu_type1_dirty_bitmap db = { .argsz = 7, .flags = 1 };
	int err;

	ASSERT_EQ(0, dma_map(self->container, IOVA, B(0), 64 * PAGE, RW));
	EXPECT_EQ(EINVAL, vfio_errno(ioctl(self->container, VFIO_IOMMU_DIRTY_PAGES, &db)));
	EXPECT_EQ(EINVAL, dirty_pages(self->container, 0));
	EXPECT_EQ(EINVAL, dirty_pages(self->container, 1 << 3));
	EXPECT_EQ(EINVAL, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START |
						      VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP));
	/* GET_BITMAP without its range struct. */
	db.argsz = sizeof(db) + 8;
	db.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
	EXPECT_EQ(EINVAL, vfio_errno(ioctl(self->container, VFIO_IOMMU_DIRTY_PAGES, &db)));
	/* Not tracking. */
	EXPECT_EQ(EINVAL, dirty_bitmap(self->container, IOVA, 64 * PAGE, PAGE, bits, sizeof(bits)));
	EXPECT_EQ(EINVAL, dma_unmap_bitmap(self->container, IOVA, 64 * PAGE, PAGE, bits,
					   sizeof(bits), NULL));
	/* START and STOP are idempotent. */
	EXPECT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	EXPECT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	struct {
		const char *name;
		__u64 iova, size, pgsize, bytes;
		__u64 *data;
		int err, err_rust;
	} cases[] = {
		{ "ok", IOVA, 64 * PAGE, PAGE, 8, bits, 0 },
		{ "pgsize_large", IOVA, 64 * PAGE, 2 * PAGE, 8, bits, EINVAL },
		{ "pgsize_small", IOVA, 64 * PAGE, 512, 64, bits, EINVAL },
		{ "iova_unaligned", IOVA + 512, 64 * PAGE, PAGE, 8, bits, EINVAL },
		{ "size_zero", IOVA, 0, PAGE, 8, bits, EINVAL },
		{ "size_unaligned", IOVA, 64 * PAGE - 512, PAGE, 8, bits, EINVAL },
		{ "bitmap_short", IOVA, 65 * PAGE, PAGE, 8, bits, EINVAL },
		{ "bitmap_empty", IOVA, 64 * PAGE, PAGE, 0, bits, EINVAL },
		{ "bitmap_huge", IOVA, 64 * PAGE, PAGE, (256ULL << 20) + 8, bits, EINVAL },
		{ "bitmap_kernel_address", IOVA, 64 * PAGE, PAGE, 8,
		  (__u64 *)0xffff888000000000ULL, EINVAL },
		{ "bisect_start", IOVA + PAGE, 63 * PAGE, PAGE, 8, bits, EINVAL },
		{ "bisect_end", IOVA, 32 * PAGE, PAGE, 8, bits, EINVAL },
		{ "holes_around", IOVA - 64 * PAGE, 192 * PAGE, PAGE, 24, bits, 0 },
		{ "nothing_mapped", IOVA + 128 * PAGE, 64 * PAGE, PAGE, 8, bits, 0 },
		/* A range that wraps is EOVERFLOW (status.rst), as type1's from 6.18 on. */
		{ "wraps", ~0ULL - PAGE + 1, 2 * PAGE, PAGE, 8, bits, EINVAL, EOVERFLOW },
	};
	unsigned int i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int want = cases[i].err_rust && (self->backend == BACKEND_RUST || type1_handles_top()) ?
			   cases[i].err_rust : cases[i].err;

		err = dirty_bitmap(self->container, cases[i].iova, cases[i].size, cases[i].pgsize,
				   cases[i].data, cases[i].bytes);
		EXPECT_EQ(want, err) {
			TH_LOG("case %s: errno %d, expected %d", cases[i].name, err, want);
		}
		if (!cases[i].err_rust || type1_handles_top())
			RECORD("errors", "get_bitmap.%s %d", cases[i].name, err);
	}
	/* Unmap with a bitmap: the bitmap is checked against the requested size and page size. */
	err = dma_unmap_bitmap(self->container, IOVA, 64 * PAGE, 2 * PAGE, bits, 8, NULL);
	EXPECT_EQ(EINVAL, err);
	err = dma_unmap_bitmap(self->container, IOVA, 128 * PAGE, PAGE, bits, 8, NULL);
	EXPECT_EQ(EINVAL, err);
	EXPECT_EQ(EEXIST, dma_map(self->container, IOVA, B(0), PAGE, RW));
	EXPECT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP));
	EXPECT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP));
	EXPECT_EQ(EINVAL, dirty_bitmap(self->container, IOVA, 64 * PAGE, PAGE, bits, sizeof(bits)));
}

TEST(v1_refused)
{
	int container, group;

	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_VMDEV_GROUP"), VFIO_TYPE1_IOMMU, &container,
				    &group));
	EXPECT_EQ(EACCES, dirty_pages(container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	EXPECT_EQ(EACCES, dirty_pages(container, 0));
	close(group);
	close(container);
}

/* Pages pinned for write by the vendor driver are dirty while pinned and once after. */
TEST_F(dirty, pinned_pages)
{
	__u64 bits[1], want[1], n;
	int i;

	ASSERT_EQ(0, dma_map(self->container, IOVA, B(0), 64 * PAGE, RW));
	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	/* Nothing yet. */
	bits[0] = 0;
	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, 64 * PAGE, PAGE, bits, 8));
	EXPECT_EQ(0, bits[0]);
	/* The driver pins pages 3-4 and 40 for write and writes them. */
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_PIN, IOVA + 3 * PAGE, 2, VIR_MDEV_FLAG_WRITE, 0xa5,
			   NULL, &n));
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_PIN, IOVA + 40 * PAGE, 1, VIR_MDEV_FLAG_WRITE, 0x5a,
			   NULL, &n));
	EXPECT_EQ(3, n);
	/* The device really wrote this process's pages. */
	for (i = 0; i < 64; i++)
		EXPECT_EQ(i == 3 || i == 4 ? 0xa5 : i == 40 ? 0x5a : 0,
			  (unsigned char)self->buf[i * PAGE + 100]);
	want[0] = (1ULL << 3) | (1ULL << 4) | (1ULL << 40);
	bits[0] = 0;
	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, 64 * PAGE, PAGE, bits, 8));
	EXPECT_EQ(want[0], bits[0]) TH_LOG("dirty: %s", bits_str(bits, 64));
	RECORD("pinned_pages", "while_pinned %s", bits_str(bits, 64));
	/* Still pinned: still dirty. */
	bits[0] = 0;
	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, 64 * PAGE, PAGE, bits, 8));
	EXPECT_EQ(want[0], bits[0]);
	/* Unpinned: dirty once more, then clean. */
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_UNPIN, IOVA + 3 * PAGE, 2, 0, 0, NULL, NULL));
	bits[0] = 0;
	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, 64 * PAGE, PAGE, bits, 8));
	EXPECT_EQ(want[0], bits[0]);
	bits[0] = 0;
	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, 64 * PAGE, PAGE, bits, 8));
	EXPECT_EQ(1ULL << 40, bits[0]);
	RECORD("pinned_pages", "after_unpin %s", bits_str(bits, 64));
	/* Pinned before tracking started, unpinned after: reported. */
	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP));
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_PIN, IOVA + 10 * PAGE, 1, 0, 0, NULL, NULL));
	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_UNPIN, IOVA + 10 * PAGE, 1, 0, 0, NULL, NULL));
	bits[0] = 0;
	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, 64 * PAGE, PAGE, bits, 8));
	EXPECT_EQ((1ULL << 10) | (1ULL << 40), bits[0]);
	RECORD("pinned_pages", "pinned_before_start %s", bits_str(bits, 64));
	/* Pins are charged to the mapping's owner (no IOMMU domain pinned them). */
	EXPECT_EQ(4, locked_vm_kb());
}

/* vfio_dma_rw() writes are dirty once; reads are not. */
TEST_F(dirty, dma_rw)
{
	unsigned char data[200], back[200];
	__u64 bits[1] = { 0 };
	int i;

	for (i = 0; i < (int)sizeof(data); i++)
		data[i] = (unsigned char)(i + 1);
	ASSERT_EQ(0, dma_map(self->container, IOVA, B(0), 64 * PAGE, RW));
	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	/* 200 bytes across the boundary of pages 7 and 8. */
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_WRITE, IOVA + 8 * PAGE - 100, sizeof(data), 0, 0,
			   data, NULL));
	EXPECT_EQ(0, memcmp(data, self->buf + 8 * PAGE - 100, sizeof(data)));
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_READ, IOVA + 8 * PAGE - 100, sizeof(back), 0, 0,
			   back, NULL));
	EXPECT_EQ(0, memcmp(data, back, sizeof(data)));
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_READ, IOVA + 20 * PAGE, sizeof(back), 0, 0, back,
			   NULL));
	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, 64 * PAGE, PAGE, bits, 8));
	EXPECT_EQ((1ULL << 7) | (1ULL << 8), bits[0]);
	RECORD("dma_rw", "written %s", bits_str(bits, 64));
	bits[0] = 0;
	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, 64 * PAGE, PAGE, bits, 8));
	EXPECT_EQ(0, bits[0]);
	/* Not tracking: writes are not recorded. */
	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP));
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_WRITE, IOVA, 8, 0, 0, data, NULL));
	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, 64 * PAGE, PAGE, bits, 8));
	EXPECT_EQ(0, bits[0]);
}

TEST_F(dirty, vendor_errors)
{
	unsigned char data[8] = { 0 };
	int err;

	ASSERT_EQ(0, dma_map(self->container, IOVA, B(0), 8 * PAGE, RW));
	ASSERT_EQ(0, dma_map(self->container, IOVA + 8 * PAGE, B(8), 8 * PAGE,
			     VFIO_DMA_MAP_FLAG_READ));
	err = vmdev(self->dev, VIR_MDEV_PIN, IOVA + 16 * PAGE, 1, 0, 0, NULL, NULL);
	EXPECT_EQ(EINVAL, err);
	RECORD("vendor_errors", "pin_unmapped %d", err);
	/* Crossing into an unmapped page: nothing stays pinned. */
	err = vmdev(self->dev, VIR_MDEV_PIN, IOVA + 14 * PAGE, 4, 0, 0, NULL, NULL);
	EXPECT_EQ(EINVAL, err);
	err = vmdev(self->dev, VIR_MDEV_PIN, IOVA + 8 * PAGE, 1, VIR_MDEV_FLAG_WRITE, 0, NULL, NULL);
	EXPECT_EQ(EPERM, err);
	RECORD("vendor_errors", "pin_write_readonly %d", err);
	EXPECT_EQ(self->pins_before, pins_outstanding());
	EXPECT_EQ(0, locked_vm_kb());
	err = vmdev(self->dev, VIR_MDEV_WRITE, IOVA + 8 * PAGE, 8, 0, 0, data, NULL);
	EXPECT_EQ(EPERM, err);
	RECORD("vendor_errors", "write_readonly %d", err);
	err = vmdev(self->dev, VIR_MDEV_READ, IOVA + 16 * PAGE, 8, 0, 0, data, NULL);
	EXPECT_EQ(EINVAL, err);
	RECORD("vendor_errors", "read_unmapped %d", err);
	/* Vaddr updates are refused with an mdev in the container. */
	EXPECT_EQ(EBUSY, dma_unmap(self->container, IOVA, 8 * PAGE, VFIO_DMA_UNMAP_FLAG_VADDR, NULL));
}

/*
 * A vendor pin that fails part-way (it runs into an unmapped IOVA) gave the driver nothing, so its
 * pages are not dirty. type1 (6.12 and 7.3) marks each page in the bitmap as it pins it and its
 * unwind unpins without clearing the bits: it reports them dirty until the next report of that
 * mapping (the churn_diff seed 0xe82a9add5ccb6c7c difference; reliability.rst). Ours marks pages
 * only once the whole pin succeeded.
 */
TEST_F(dirty, failed_pin_not_dirty)
{
	__u64 bits[1] = { 0 };
	int err;

	ASSERT_EQ(0, dma_map(self->container, IOVA, B(0), 8 * PAGE, RW));
	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	/* Pages 5, 6 and 7 are pinned, page 8 is not mapped: the pin fails and is undone. */
	err = vmdev(self->dev, VIR_MDEV_PIN, IOVA + 5 * PAGE, 4, 0, 0, NULL, NULL);
	EXPECT_EQ(EINVAL, err);
	EXPECT_EQ(self->pins_before, pins_outstanding());
	EXPECT_EQ(0, locked_vm_kb());
	ASSERT_EQ(0, dma_unmap_bitmap(self->container, IOVA, 8 * PAGE, PAGE, bits, 8, NULL));
	if (self->backend == BACKEND_RUST) {
		EXPECT_EQ(0, bits[0]) TH_LOG("dirty: %s", bits_str(bits, 8));
	} else {	/* The type1 flaw, measured: the bits of the unwound pin stay. */
		EXPECT_EQ(7ULL << 5, bits[0]) TH_LOG("type1 dirty: %s", bits_str(bits, 8));
	}
}

/*
 * A clean mapping right after a reported one stays clean. type1's update_user_bitmap() shifts a
 * mapping's bitmap in place when the report starts at a bit offset that is not a multiple of 64 and
 * clears only the mapping's own bits afterwards; the shifted-out bits are copied, whole words, into
 * the next report, and the next mapping ORs that whole word into its own bits (bitmap_or() works on
 * words): its clean pages come back dirty (the churn_diff seed 0x7c84b1629a725b1c difference).
 */
TEST_F(dirty, neighbour_stays_clean)
{
	__u64 bits[1] = { 0 };

	/* A: pages 12-23 of the report; B: pages 24-39, right after it. */
	ASSERT_EQ(0, dma_map(self->container, IOVA + 12 * PAGE, B(0), 12 * PAGE, RW));
	ASSERT_EQ(0, dma_map(self->container, IOVA + 24 * PAGE, B(12), 16 * PAGE, RW));
	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_PIN, IOVA + 12 * PAGE, 12, 0, 0, NULL, NULL));
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_UNPIN, IOVA + 12 * PAGE, 12, 0, 0, NULL, NULL));
	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, 40 * PAGE, PAGE, bits, 8));
	EXPECT_EQ(0xfffULL << 12, bits[0]) TH_LOG("dirty: %s", bits_str(bits, 64));
	RECORD("neighbour_stays_clean", "first %s", bits_str(bits, 64));
	/* Nothing happened since: nothing is dirty. */
	bits[0] = 0;
	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, 40 * PAGE, PAGE, bits, 8));
	if (self->backend == BACKEND_RUST) {
		EXPECT_EQ(0, bits[0]) TH_LOG("dirty: %s", bits_str(bits, 64));
	} else {	/* The type1 flaw, measured: A's stale bits on B, B's past the range. */
		EXPECT_EQ(0xfffULL << 24 | 0xffULL << 40, bits[0])
			TH_LOG("type1 dirty: %s", bits_str(bits, 64));
	}
	EXPECT_EQ(0, dma_unmap(self->container, IOVA, 40 * PAGE, 0, NULL));
}

/* Unmapping pinned pages notifies the driver, which unpins; the pages are reported dirty. */
TEST_F(dirty, unmap_notifies)
{
	__u64 bits[2] = { 0 }, size, held = 0, before;

	ASSERT_EQ(0, dma_map(self->container, IOVA, B(0), 64 * PAGE, RW));
	ASSERT_EQ(0, dma_map(self->container, IOVA + 64 * PAGE, B(64), 64 * PAGE, RW));
	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_PIN, IOVA + 62 * PAGE, 4, VIR_MDEV_FLAG_WRITE, 1,
			   NULL, NULL));
	before = notifications(self->dev);
	ASSERT_EQ(0, dma_unmap_bitmap(self->container, IOVA, 128 * PAGE, PAGE, bits, sizeof(bits),
				      &size));
	EXPECT_EQ(128 * PAGE, size);
	/* The driver was notified (once per mapping that still had pins) and let go of all. */
	EXPECT_LE(before + 1, notifications(self->dev));
	EXPECT_GE(before + 2, notifications(self->dev));
	struct vir_mdev_cmd st = { 0 };

	ASSERT_EQ(0, ioctl(self->dev, VIR_MDEV_STATS, &st));
	held = st.count;
	EXPECT_EQ(0, held);
	EXPECT_EQ(0xc000000000000000ULL, bits[0]);
	EXPECT_EQ(0x3ULL, bits[1]);
	RECORD("unmap_notifies", "bits %s", bits_str(bits, 128));
	EXPECT_EQ(self->pins_before, pins_outstanding());
}

/*
 * Bitmaps over mappings whose boundaries are not multiples of 64 pages: random layouts (seeded),
 * random pins and dma_rw writes, compared with the model bit for bit, by GET_BITMAP and by unmap.
 */
TEST_F(dirty, bit_shift_fuzz)
{
	enum { ROUNDS = 24, MAXMAP = 12 };
	unsigned int seed = 20201125, r;

	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	for (r = 0; r < ROUNDS; r++) {
		__u64 got[MAXBITS / 64], want[MAXBITS / 64], size;
		int start[MAXMAP], len[MAXMAP], nmap = 0, page = 0, i, total;
		unsigned long long base = IOVA + (rand_r(&seed) % 64) * PAGE;
		int use_unmap = r % 2;

		memset(want, 0, sizeof(want));
		/* Mappings of 1..150 pages, with gaps of 0..70 pages, within NPAGES of buffer. */
		while (nmap < MAXMAP) {
			int gap = rand_r(&seed) % 3 ? rand_r(&seed) % 71 : 0;
			int l = 1 + rand_r(&seed) % 150;

			if (page + gap + l > NPAGES)
				break;
			start[nmap] = page + gap;
			len[nmap] = l;
			ASSERT_EQ(0, dma_map(self->container, base + (__u64)start[nmap] * PAGE,
					     B(start[nmap]), (__u64)l * PAGE, RW));
			page = start[nmap] + l;
			nmap++;
		}
		total = page;
		/* Dirty some pages: pins for write (kept or released) and dma_rw writes. */
		for (i = 0; i < nmap; i++) {
			int k, n = rand_r(&seed) % 4;

			for (k = 0; k < n; k++) {
				int p = start[i] + rand_r(&seed) % len[i];
				int how = rand_r(&seed) % 3;
				unsigned char byte = (unsigned char)r;

				if (how == 0) {
					ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_PIN, base + (__u64)p * PAGE,
							   1, VIR_MDEV_FLAG_WRITE, r, NULL, NULL));
				} else if (how == 1) {
					ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_PIN, base + (__u64)p * PAGE,
							   1, VIR_MDEV_FLAG_WRITE, r, NULL, NULL));
					ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_UNPIN,
							   base + (__u64)p * PAGE, 1, 0, 0, NULL, NULL));
				} else {
					ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_WRITE,
							   base + (__u64)p * PAGE + 7, 1, 0, 0, &byte,
							   NULL));
				}
				set_bit(want, p);
			}
		}
		memset(got, 0, sizeof(got));
		if (use_unmap) {
			ASSERT_EQ(0, dma_unmap_bitmap(self->container, base, (__u64)total * PAGE, PAGE,
						      got, (total + 63) / 64 * 8, &size));
			ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL));
		} else {
			ASSERT_EQ(0, dirty_bitmap(self->container, base, (__u64)total * PAGE, PAGE,
						  got, (total + 63) / 64 * 8));
			/* Pins go with the unmap (the driver is notified). */
			ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL));
		}
		EXPECT_TRUE(bits_equal(want, got, total)) {
			TH_LOG("round %u (%s): want %s", r, use_unmap ? "unmap" : "get_bitmap",
			       bits_str(want, total));
			TH_LOG("got %s", bits_str(got, total));
		}
		RECORD("bit_shift_fuzz", "round%u %s", r, bits_str(got, total));
	}
	EXPECT_EQ(self->pins_before, pins_outstanding());
}

/* The worked example of Documentation/dirty-tracking.rst, exactly. */
TEST_F(dirty, worked_example)
{
	unsigned char data[200] = { 1 };
	__u64 bits[2] = { 0 };

	ASSERT_EQ(0, dma_map(self->container, IOVA, B(0), 3 * PAGE, RW));
	ASSERT_EQ(0, dma_map(self->container, IOVA + 3 * PAGE, B(3), 80 * PAGE, RW));
	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_PIN, IOVA + PAGE, 1, VIR_MDEV_FLAG_WRITE, 3, NULL,
			   NULL));
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_WRITE, 0x10043f9cULL, sizeof(data), 0, 0, data,
			   NULL));
	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, 0x60000, PAGE, bits, sizeof(bits)));
	EXPECT_EQ(0x2ULL, bits[0]);
	EXPECT_EQ(0x18ULL, bits[1]);
	memset(bits, 0, sizeof(bits));
	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, 0x60000, PAGE, bits, sizeof(bits)));
	EXPECT_EQ(0x2ULL, bits[0]);
	EXPECT_EQ(0x0ULL, bits[1]);
}

/*
 * Reporting periods over a mapping of two whole chunks of our sparse bitmap (32,768 pages each)
 * and 64 pages more, so that reports take the whole-chunk path as well as the word path: each
 * report has exactly the pages written or pinned since the one before, never those of an earlier
 * period (ours keeps a reported chunk, stale, and zeroes it at its next mark), including stale
 * chunks marked again and reported through the word path (the tail, and a chunk with a vendor
 * pin in it).
 */
TEST_F(dirty, periods_whole_chunks)
{
	enum { CHUNK = 32768, N = 2 * CHUNK + 64, RUN = 16 };
	static const int singles[] = { 0, 1000, CHUNK - 1, CHUNK, 2 * CHUNK - 1, N - 1 };
	size_t bytes = (N + 63) / 64 * 8;
	__u64 *got = calloc(1, bytes), *want = calloc(1, bytes);
	unsigned char *run = calloc(RUN, PAGE), byte = 0x5a;
	char *big = mmap(NULL, (size_t)N * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	unsigned int i;
	int period;

	ASSERT_TRUE(got && want && run);
	ASSERT_NE(MAP_FAILED, big);
	ASSERT_EQ(0, dma_map(self->container, IOVA, (uintptr_t)big, (__u64)N * PAGE, RW));
	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	for (period = 1; period <= 5; period++) {
		memset(want, 0, bytes);
		switch (period) {
		case 1: /* Pages at both ends of both chunks and of the tail, and a run. */
			for (i = 0; i < ARRAY_SIZE(singles); i++) {
				ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_WRITE,
						   IOVA + (__u64)singles[i] * PAGE, 1, 0, 0, &byte, NULL));
				set_bit(want, singles[i]);
			}
			ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_WRITE, IOVA + 40000ULL * PAGE,
					   RUN * PAGE, 0, 0, run, NULL));
			for (i = 0; i < RUN; i++)
				set_bit(want, 40000 + i);
			break;
		case 2: /* Other pages of the same chunks, the tail's reported by words. */
			ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_WRITE, IOVA + 5 * PAGE, 1, 0, 0, &byte,
					   NULL));
			ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_WRITE, IOVA + (CHUNK + 1ULL) * PAGE, 1, 0,
					   0, &byte, NULL));
			ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_WRITE, IOVA + (2 * CHUNK + 1ULL) * PAGE, 1,
					   0, 0, &byte, NULL));
			set_bit(want, 5);
			set_bit(want, CHUNK + 1);
			set_bit(want, 2 * CHUNK + 1);
			break;
		case 3: /* A vendor pin and a write in the first chunk (reported by words). */
			ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_PIN, IOVA + 9 * PAGE, 1,
					   VIR_MDEV_FLAG_WRITE, 3, NULL, NULL));
			ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_WRITE, IOVA + 11 * PAGE, 1, 0, 0, &byte,
					   NULL));
			set_bit(want, 9);
			set_bit(want, 11);
			break;
		case 4: /* The pin released (dirty once more), and the tail written. */
			ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_UNPIN, IOVA + 9 * PAGE, 1, 0, 0, NULL,
					   NULL));
			ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_WRITE, IOVA + (N - 1ULL) * PAGE, 1, 0, 0,
					   &byte, NULL));
			set_bit(want, 9);
			set_bit(want, N - 1);
			break;
		default: /* Nothing. */
			break;
		}
		memset(got, 0xff, bytes);
		ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, (__u64)N * PAGE, PAGE, got, bytes));
		EXPECT_TRUE(bits_equal(want, got, N)) {
			TH_LOG("period %d: want %s", period, bits_str(want, N));
			TH_LOG("got %s", bits_str(got, N));
		}
		RECORD("periods_whole_chunks", "period%d %s", period, bits_str(got, N));
	}
	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA, (__u64)N * PAGE, 0, NULL));
	munmap(big, (size_t)N * PAGE);
	free(got);
	free(want);
	free(run);
}

/* With an IOMMU group (edu, vfio-pci) in the container every mapped page is dirty. */
TEST_F(dirty, iommu_group_scope)
{
	int edu = open_group(env_int("VFIO_TEST_GROUP"));
	__u64 bits[2] = { 0 };

	ASSERT_LE(0, edu);
	ASSERT_EQ(0, dma_map(self->container, IOVA, B(0), 70 * PAGE, RW));
	ASSERT_EQ(0, ioctl(edu, VFIO_GROUP_SET_CONTAINER, &self->container));
	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, 70 * PAGE, PAGE, bits, sizeof(bits)));
	EXPECT_EQ(~0ULL, bits[0]);
	EXPECT_EQ(0x3fULL, bits[1]);
	/* And again: a device could have written anything since. */
	memset(bits, 0, sizeof(bits));
	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, 70 * PAGE, PAGE, bits, sizeof(bits)));
	EXPECT_EQ(~0ULL, bits[0]);
	/* The group leaves: everything once more, then only what the vendor driver dirties. */
	ASSERT_EQ(0, ioctl(edu, VFIO_GROUP_UNSET_CONTAINER));
	memset(bits, 0, sizeof(bits));
	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, 70 * PAGE, PAGE, bits, sizeof(bits)));
	EXPECT_EQ(~0ULL, bits[0]);
	EXPECT_EQ(0x3fULL, bits[1]);
	memset(bits, 0, sizeof(bits));
	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, 70 * PAGE, PAGE, bits, sizeof(bits)));
	EXPECT_EQ(0, bits[0]);
	EXPECT_EQ(0, bits[1]);
	close(edu);
}

TEST_HARNESS_MAIN
