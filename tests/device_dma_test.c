// SPDX-License-Identifier: GPL-2.0
/*
 * Real device DMA through the virtual Intel IOMMU: QEMU's edu device, bound to vfio-pci, reads
 * and writes memory mapped by the backend under test (type1 or vfio_iommu_rust, same boot).
 */
#include <sys/klog.h>
#include "kselftest_harness.h"
#include "edu.h"

#define IOVA 0x100000ULL

FIXTURE(device) {
	int container;
	int group;
	struct edu edu;
	long pins_before;
	enum vfio_backend backend;
};

FIXTURE_SETUP(device)
{
	struct backend_refs before = backend_refs();

	self->backend = vfio_backend();
	self->pins_before = pins_outstanding();
	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU,
				    &self->container, &self->group));
	ASSERT_SERVED_SINCE(before);
	ASSERT_EQ(0, edu_open(self->group, env_str("VFIO_TEST_BDF"), &self->edu));
}

FIXTURE_TEARDOWN(device)
{
	edu_close(&self->edu);
	close(self->group);
	close(self->container);
	EXPECT_EQ(self->pins_before, pins_outstanding());
	EXPECT_EQ(0, locked_vm_kb());
}

static void fill(unsigned char *p, size_t n, unsigned int seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(seed * 131 + i * 7 + (i >> 8));
}

/* RAM -> device -> RAM through two mapped pages. */
TEST_F(device, round_trip)
{
	unsigned char *buf = alloc_pages(2), expect[EDU_DMA_MAX];

	ASSERT_NE(NULL, buf);
	fill(buf, PAGE, 1);
	memset(buf + PAGE, 0, PAGE);
	memcpy(expect, buf + 100, EDU_DMA_MAX);
	ASSERT_EQ(0, dma_map(self->container, IOVA, (uintptr_t)buf, 2 * PAGE, RW));
	ASSERT_EQ(0, edu_dma(&self->edu, IOVA + 100, 0, EDU_DMA_MAX, 0));
	ASSERT_EQ(0, edu_dma(&self->edu, IOVA + PAGE + 8, 0, EDU_DMA_MAX, 1));
	EXPECT_EQ(0, memcmp(expect, buf + PAGE + 8, EDU_DMA_MAX));
	/* The bytes around the transfer are untouched. */
	EXPECT_EQ(0, buf[PAGE + 7]);
	EXPECT_EQ(0, buf[PAGE + 8 + EDU_DMA_MAX]);
}

/*
 * Whether the kernel log reports an IOMMU fault of the edu device at @iova. The DMAR fault handler
 * is ratelimited (10 per 5 s, three per fault), so a boot can only rely on three logged faults in
 * a row: this suite asserts one per backend.
 */
static int fault_logged(unsigned long long iova)
{
	static char log[1 << 20];
	char needle[64];
	int i, n;

	snprintf(needle, sizeof(needle), "fault addr 0x%llx ", iova);
	for (i = 0; i < 100; i++) {
		n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, log, sizeof(log) - 1);
		if (n > 0) {
			log[n] = 0;
			if (strstr(log, needle))
				return 1;
		}
		usleep(10000);
	}
	return 0;
}

/* After unmap the device cannot reach the memory any more: its write faults, RAM is unchanged. */
TEST_F(device, dma_after_unmap)
{
	unsigned char *buf = alloc_pages(1), zero[EDU_DMA_MAX] = { 0 };
	/* A distinct IOVA per backend, so each run finds its own fault in the log. */
	unsigned long long iova = 0x800000ULL + (self->backend == BACKEND_RUST ? 0x10000 : 0);
	__u64 size;

	ASSERT_NE(NULL, buf);
	fill(buf, PAGE, 2);
	ASSERT_EQ(0, dma_map(self->container, iova, (uintptr_t)buf, PAGE, RW));
	/* Load the device buffer with the page's bytes. */
	ASSERT_EQ(0, edu_dma(&self->edu, iova, 0, EDU_DMA_MAX, 0));
	ASSERT_EQ(0, dma_unmap(self->container, iova, PAGE, 0, &size));
	ASSERT_EQ(PAGE, size);
	memset(buf, 0, PAGE);
	ASSERT_EQ(0, edu_dma(&self->edu, iova, 0, EDU_DMA_MAX, 1));
	EXPECT_EQ(0, memcmp(zero, buf, EDU_DMA_MAX));
	EXPECT_TRUE(fault_logged(iova));
	/* Mapped again, the same transfer lands. */
	ASSERT_EQ(0, dma_map(self->container, iova, (uintptr_t)buf, PAGE, RW));
	ASSERT_EQ(0, edu_dma(&self->edu, iova, 0, EDU_DMA_MAX, 1));
	EXPECT_NE(0, memcmp(zero, buf, EDU_DMA_MAX));
}

/* A read-only mapping: the device may read it but its writes fault. */
TEST_F(device, read_only_mapping)
{
	unsigned char *buf = alloc_pages(2), copy[EDU_DMA_MAX];
	unsigned long long iova = 0xa00000ULL + (self->backend == BACKEND_RUST ? 0x10000 : 0);

	ASSERT_NE(NULL, buf);
	fill(buf, 2 * PAGE, 3);
	memcpy(copy, buf + PAGE, EDU_DMA_MAX);
	ASSERT_EQ(0, dma_map(self->container, iova, (uintptr_t)buf, PAGE, VFIO_DMA_MAP_FLAG_READ));
	ASSERT_EQ(0, dma_map(self->container, iova + PAGE, (uintptr_t)buf + PAGE, PAGE,
			     VFIO_DMA_MAP_FLAG_READ));
	ASSERT_EQ(0, edu_dma(&self->edu, iova, 0, EDU_DMA_MAX, 0));
	ASSERT_EQ(0, edu_dma(&self->edu, iova + PAGE, 0, EDU_DMA_MAX, 1));
	/*
	 * The write faulted (not asserted from the log: the DMAR fault handler's ratelimit of 10
	 * per 5 s covers only three faults, which dma_after_unmap of both runs may have used).
	 */
	EXPECT_EQ(0, memcmp(copy, buf + PAGE, EDU_DMA_MAX));
}

/* 256 one-page mappings of scattered pages; DMA through some; unmapped in a shuffled order. */
TEST_F(device, many_small_mappings)
{
	enum { N = 256 };
	unsigned char *pages[N];
	unsigned int order[N], i;
	__u64 size;

	for (i = 0; i < N; i++) {
		/* Separate mmaps, with a guard page between, so nothing is contiguous. */
		unsigned char *p = alloc_pages(2);

		ASSERT_NE(NULL, p);
		pages[i] = p;
		fill(p, PAGE, i);
		ASSERT_EQ(0, dma_map(self->container, IOVA + i * PAGE, (uintptr_t)p, PAGE, RW));
		order[i] = i;
	}
	EXPECT_EQ(self->pins_before + N, pins_outstanding());
	for (i = 0; i < N; i += 51) {
		unsigned char expect[EDU_DMA_MAX];
		unsigned int dst = (i + 17) % N;

		memcpy(expect, pages[i], EDU_DMA_MAX);
		ASSERT_EQ(0, edu_dma(&self->edu, IOVA + i * PAGE, 0, EDU_DMA_MAX, 0));
		ASSERT_EQ(0, edu_dma(&self->edu, IOVA + dst * PAGE + 1024, 0, EDU_DMA_MAX, 1));
		EXPECT_EQ(0, memcmp(expect, pages[dst] + 1024, EDU_DMA_MAX));
	}
	srand(7);
	for (i = N - 1; i > 0; i--) {
		unsigned int j = rand() % (i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (i = 0; i < N; i++) {
		ASSERT_EQ(0, dma_unmap(self->container, IOVA + order[i] * PAGE, PAGE, 0, &size));
		ASSERT_EQ(PAGE, size);
	}
	EXPECT_EQ(self->pins_before, pins_outstanding());
}

/*
 * The second edu device joins the container after the mappings were made: it shares the first
 * one's (compatible) domain and reaches the same memory.
 */
TEST_F(device, second_device_joins)
{
	unsigned char *buf = alloc_pages(2), expect[EDU_DMA_MAX];
	int group2 = open_group(env_int("VFIO_TEST_GROUP2"));
	struct edu edu2;

	ASSERT_NE(NULL, buf);
	ASSERT_LE(0, group2);
	fill(buf, PAGE, 5);
	memset(buf + PAGE, 0, PAGE);
	memcpy(expect, buf, EDU_DMA_MAX);
	ASSERT_EQ(0, dma_map(self->container, IOVA, (uintptr_t)buf, 2 * PAGE, RW));
	ASSERT_EQ(0, ioctl(group2, VFIO_GROUP_SET_CONTAINER, &self->container));
	/* Shared, not pinned twice. */
	EXPECT_EQ(self->pins_before + 2, pins_outstanding());
	ASSERT_EQ(0, edu_open(group2, env_str("VFIO_TEST_BDF2"), &edu2));
	ASSERT_EQ(0, edu_dma(&edu2, IOVA, 0, EDU_DMA_MAX, 0));
	ASSERT_EQ(0, edu_dma(&edu2, IOVA + PAGE, 0, EDU_DMA_MAX, 1));
	EXPECT_EQ(0, memcmp(expect, buf + PAGE, EDU_DMA_MAX));
	edu_close(&edu2);
	/* The first device still works after the second left. */
	ASSERT_EQ(0, ioctl(group2, VFIO_GROUP_UNSET_CONTAINER));
	close(group2);
	memset(buf + PAGE, 0, PAGE);
	ASSERT_EQ(0, edu_dma(&self->edu, IOVA, 0, EDU_DMA_MAX, 0));
	ASSERT_EQ(0, edu_dma(&self->edu, IOVA + PAGE, 0, EDU_DMA_MAX, 1));
	EXPECT_EQ(0, memcmp(expect, buf + PAGE, EDU_DMA_MAX));
}

/*
 * Peer-to-peer: the first edu's BAR (a VM_PFNMAP mmap of its vfio-pci device) is mapped into the
 * container like memory, and the second edu writes into it by DMA. Its liveness register (BAR0 +
 * 0x04) reads back the bitwise NOT of what was written. MMIO is neither pinned nor charged.
 */
TEST_F(device, p2p_bar_mapping)
{
	const unsigned long long bar_iova = 0x3000000ULL, ram_iova = 0x4000000ULL;
	unsigned char *ram = alloc_pages(1);
	int group2 = open_group(env_int("VFIO_TEST_GROUP2"));
	unsigned int value = 0x12345678;
	struct edu edu2;
	long pins;
	__u64 size;

	ASSERT_NE(NULL, ram);
	ASSERT_LE(0, group2);
	memcpy(ram, &value, sizeof(value));
	pins = pins_outstanding();
	ASSERT_EQ(0, dma_map(self->container, bar_iova, (uintptr_t)self->edu.bar, PAGE, RW));
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(0, locked_vm_kb());
	ASSERT_EQ(0, dma_map(self->container, ram_iova, (uintptr_t)ram, PAGE, RW));
	ASSERT_EQ(0, ioctl(group2, VFIO_GROUP_SET_CONTAINER, &self->container));
	ASSERT_EQ(0, edu_open(group2, env_str("VFIO_TEST_BDF2"), &edu2));
	/* edu2: 4 bytes from RAM into its buffer, then from its buffer into edu1's register. */
	ASSERT_EQ(0, edu_dma(&edu2, ram_iova, 0, 4, 0));
	ASSERT_EQ(0, edu_dma(&edu2, bar_iova + 0x04, 0, 4, 1));
	EXPECT_EQ(~value, *(volatile unsigned int *)(self->edu.bar + 0x04));
	RECORD("p2p_bar_mapping", "liveness %#x", *(volatile unsigned int *)(self->edu.bar + 0x04));
	edu_close(&edu2);
	ASSERT_EQ(0, ioctl(group2, VFIO_GROUP_UNSET_CONTAINER));
	close(group2);
	/* Unmapping the MMIO unpins nothing (the RAM page stays pinned until the teardown). */
	EXPECT_EQ(0, dma_unmap(self->container, bar_iova, PAGE, 0, &size));
	EXPECT_EQ(PAGE, size);
	EXPECT_EQ(pins + 1, pins_outstanding());
}

/*
 * The IOMMU page table entry at @iova in the edu device's domain, from the Intel IOMMU's debugfs:
 * returns the page size of the leaf (4K or 2M, 1G) or 0 if not mapped.
 */
static unsigned long long leaf_size(const char *bdf, unsigned long long iova)
{
	char path[128], line[512], key[32];
	unsigned long long v[6];
	unsigned long long found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/debug/iommu/intel/%s/domain_translation_struct",
		 bdf);
	f = fopen(path, "r");
	if (!f)
		return 0;
	snprintf(key, sizeof(key), "0x%013llx |", iova >> 12);
	while (fgets(line, sizeof(line), f)) {
		int n;

		if (strncmp(line, key, strlen(key)))
			continue;
		/* IOVA_PFN | PML5E PML4E PDPE [PDE [PTE]]: the last entry is the leaf. */
		n = sscanf(line + strlen(key), "%llx %llx %llx %llx %llx", &v[0], &v[1], &v[2],
			   &v[3], &v[4]);
		if (n == 5)
			found = 4096;
		else if (n == 4 && (v[3] & (1 << 7)))
			found = 2ULL << 20;
		else if (n == 3 && (v[2] & (1 << 7)))
			found = 1ULL << 30;
		break;
	}
	fclose(f);
	return found;
}

/* 2 MiB hugetlb pages at a 2 MiB aligned IOVA end up as 2 MiB IOMMU pages; 4K memory as 4K. */
TEST_F(device, hugetlb_large_iopte)
{
	const char *bdf = env_str("VFIO_TEST_BDF");
	unsigned long long iova = 0x400000ULL;
	unsigned char *huge, *small, expect[EDU_DMA_MAX];
	__u64 size;

	huge = mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, huge);
	small = alloc_pages(4);
	ASSERT_NE(NULL, small);
	ASSERT_EQ(0, dma_map(self->container, iova, (uintptr_t)huge, 4 << 20, RW));
	ASSERT_EQ(0, dma_map(self->container, 0x1000000ULL, (uintptr_t)small, 4 * PAGE, RW));
	EXPECT_EQ(2ULL << 20, leaf_size(bdf, iova));
	EXPECT_EQ(2ULL << 20, leaf_size(bdf, iova + (2 << 20)));
	EXPECT_EQ(4096, leaf_size(bdf, 0x1000000ULL));
	RECORD("hugetlb_large_iopte", "leaves %llu %llu %llu", leaf_size(bdf, iova),
	       leaf_size(bdf, iova + (2 << 20)), leaf_size(bdf, 0x1000000ULL));
	/* The device reaches into the second huge page. */
	fill(huge + (3 << 20), EDU_DMA_MAX, 9);
	memcpy(expect, huge + (3 << 20), EDU_DMA_MAX);
	ASSERT_EQ(0, edu_dma(&self->edu, iova + (3 << 20), 0, EDU_DMA_MAX, 0));
	ASSERT_EQ(0, edu_dma(&self->edu, iova + 4096, 0, EDU_DMA_MAX, 1));
	EXPECT_EQ(0, memcmp(expect, huge + 4096, EDU_DMA_MAX));
	/* 512 pinned pages per huge page. */
	EXPECT_EQ(self->pins_before + 1024 + 4, pins_outstanding());
	ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size));
	EXPECT_EQ((4 << 20) + 4 * PAGE, size);
	EXPECT_EQ(0, leaf_size(bdf, iova));

	/* disable_hugepages (a parameter of both backends): 4K IOMMU pages only. */
	ASSERT_EQ(0, write_module_param(backend_module(self->backend), "disable_hugepages", "1"));
	EXPECT_EQ(0, dma_map(self->container, iova, (uintptr_t)huge, 4 << 20, RW));
	EXPECT_EQ(0, write_module_param(backend_module(self->backend), "disable_hugepages", "0"));
	EXPECT_EQ(4096, leaf_size(bdf, iova));
	EXPECT_EQ(4096, leaf_size(bdf, iova + (4 << 20) - PAGE));
	ASSERT_EQ(0, dma_unmap(self->container, iova, 4 << 20, 0, &size));
	EXPECT_EQ(4 << 20, size);
	munmap(huge, 4 << 20);
}

TEST_HARNESS_MAIN
