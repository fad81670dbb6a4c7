// SPDX-License-Identifier: GPL-2.0
/*
 * Hardening: defects of our backend found in review, each reproduced against both backends, type1
 * being the reference. Locked memory (VmLck) and the FOLL_PIN balance are checked at the end of
 * every test, and which backend served each container.
 *
 *  - vendor_pin_fault_uncharged: a vendor pin that fails half way leaks no locked memory;
 *  - bar_map_at_memlock_limit: an MMIO mapping is not charged, so it maps under a small
 *    RLIMIT_MEMLOCK without CAP_IPC_LOCK;
 *  - unmap_all_many_mappings: UNMAP_ALL of more than 524,288 mappings (a KVec of their keys would
 *    pass kmalloc's 4 MiB limit);
 *  - dense_dirty_marks: vfio_dma_rw() writes into every page of a 256 MiB mapping while tracking
 *    cost no more kernel memory than type1's bitmap;
 *  - detach_vendor_pin_over_mmio: the last IOMMU group leaves a container whose mapping is IOMMU
 *    mapped to MMIO while a vendor driver pins the anonymous page now at its vaddr (accounting
 *    underflow at detach);
 *  - replay_vendor_pin_now_mmio: an IOMMU group joins an mdev container whose vendor-pinned page's
 *    vaddr now maps MMIO (accounting underflow at replay; type1 leaks the charge).
 *
 * The last two crashed the guest (a Rust panic with oops=panic), so they run last: a backend with
 * those bugs still shows its results for the others first. Each test runs in its own process (the
 * harness forks), so type1's leaked charge ends with its test.
 */
#include <dirent.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include "kselftest_harness.h"
#include "mdev/vir_mdev.h"
#include "edu.h"

#define IOVA 0x10000000ULL

FIXTURE(hard) {
	enum vfio_backend backend;
	long pins_before;
	/* The container under test: an edu group G and/or the vir_mdev group M, and M's device. */
	int container, group, mgroup, mdev;
	/* The second edu in a container of its own, whose BAR0 mmap supplies MMIO pages. */
	int container2, group2, dev2;
	unsigned char *bar2;
	__u64 bar2_size, bar2_offset;
	/* A dma_entry_limit to restore, if changed. */
	const char *param_module;
	char param_old[32];
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Releases everything the test holds, device fds first; safe to call twice. */
static void release_all(FIXTURE_DATA(hard) *self)
{
	if (self->bar2)
		munmap(self->bar2, self->bar2_size);
	self->bar2 = NULL;
	close_fd(&self->mdev);
	close_fd(&self->dev2);
	close_fd(&self->mgroup);
	close_fd(&self->group);
	close_fd(&self->container);
	close_fd(&self->group2);
	close_fd(&self->container2);
}

FIXTURE_SETUP(hard)
{
	self->backend = vfio_backend();
	self->pins_before = pins_outstanding();
	self->container = self->group = self->mgroup = self->mdev = -1;
	self->container2 = self->group2 = self->dev2 = -1;
	self->bar2 = NULL;
	self->param_module = NULL;
}

FIXTURE_TEARDOWN(hard)
{
	release_all(self);
	if (self->param_module)
		write_module_param(self->param_module, "dma_entry_limit", self->param_old);
}

/* The vir_mdev device of M in the container; returns 0 or an errno. */
static int open_vmdev(FIXTURE_DATA(hard) *self)
{
	self->mdev = ioctl(self->mgroup, VFIO_GROUP_GET_DEVICE_FD, env_str("VFIO_TEST_VMDEV"));
	return self->mdev < 0 ? errno : 0;
}

/* A v2 container with only M, and M's device. Returns 0 or the errno of the failed step. */
static int mdev_container(FIXTURE_DATA(hard) *self)
{
	int err = open_container(env_int("VFIO_TEST_VMDEV_GROUP"), VFIO_TYPE1v2_IOMMU,
				 &self->container, &self->mgroup);

	return err ? err : open_vmdev(self);
}

/*
 * The second edu device (VFIO_TEST_GROUP2) in a v2 container of its own, its device fd and an
 * mmap of its whole BAR0. Returns 0 or an errno.
 */
static int second_edu_bar(FIXTURE_DATA(hard) *self)
{
	struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
	void *p;
	int err;

	err = open_container(env_int("VFIO_TEST_GROUP2"), VFIO_TYPE1v2_IOMMU, &self->container2,
			     &self->group2);
	if (err)
		return err;
	self->dev2 = ioctl(self->group2, VFIO_GROUP_GET_DEVICE_FD, env_str("VFIO_TEST_BDF2"));
	if (self->dev2 < 0 || ioctl(self->dev2, VFIO_DEVICE_GET_REGION_INFO, &bar))
		return errno;
	if (!(bar.flags & VFIO_REGION_INFO_FLAG_MMAP))
		return ENODEV;
	p = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, self->dev2, bar.offset);
	if (p == MAP_FAILED)
		return errno;
	self->bar2 = p;
	self->bar2_size = bar.size;
	self->bar2_offset = bar.offset;
	return *(volatile unsigned int *)self->bar2 == EDU_IDENT ? 0 : ENODEV;
}

/* A vir_mdev command on its device fd; returns 0 or the errno. */
static int vmdev(int dev, unsigned long op, __u64 iova, __u64 count, __u32 flags, void *buf)
{
	struct vir_mdev_cmd cmd = {
		.iova = iova, .count = count, .flags = flags, .value = 0x5a, .buf = (uintptr_t)buf,
	};

	return vfio_errno(ioctl(dev, op, &cmd));
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/*
 * Defect 3. A 2-page mapping whose second page is gone from the address space: a vendor pin of
 * both pages pins the first, fails on the second and must give the first back, with its charge.
 * Our main kept the charge: 4 kB more VmLck per attempt.
 */
TEST_F(hard, vendor_pin_fault_uncharged)
{
	struct backend_refs refs = backend_refs();
	unsigned char *buf = alloc_pages(2);
	long worst = 0, kb;
	int i, err, first = -1, errs = 0;
	__u64 size = 0;

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, mdev_container(self));
	ASSERT_SERVED_SINCE(refs);
	ASSERT_EQ(0, dma_map(self->container, IOVA, (uintptr_t)buf, 2 * PAGE, RW));
	ASSERT_EQ(0, munmap(buf + PAGE, PAGE));
	for (i = 0; i < 100; i++) {
		err = vmdev(self->mdev, VIR_MDEV_PIN, IOVA, 2, 0, NULL);
		if (first < 0)
			first = err;
		if (err != EFAULT)
			errs++;
		if (!err)
			vmdev(self->mdev, VIR_MDEV_UNPIN, IOVA, 2, 0, NULL);
		kb = locked_vm_kb();
		if (kb > worst)
			worst = kb;
	}
	RECORD("vendor_pin_fault_uncharged", "errno %d", first);
	EXPECT_EQ(EFAULT, first);
	EXPECT_EQ(0, errs);
	kb = locked_vm_kb();
	TH_LOG("VmLck after 100 failed pins: %ld kB (at most %ld kB on the way)", kb, worst);
	EXPECT_EQ(0, kb);
	EXPECT_EQ(0, worst);
	EXPECT_EQ(self->pins_before, pins_outstanding());
	/* The first page alone pins, charged, and is released. */
	ASSERT_EQ(0, vmdev(self->mdev, VIR_MDEV_PIN, IOVA, 1, 0, NULL));
	EXPECT_EQ(4, locked_vm_kb());
	ASSERT_EQ(0, vmdev(self->mdev, VIR_MDEV_UNPIN, IOVA, 1, 0, NULL));
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(0, dma_unmap(self->container, IOVA, 2 * PAGE, 0, &size));
	EXPECT_EQ(2 * PAGE, size);
	release_all(self);
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(self->pins_before, pins_outstanding());
}

/*
 * Defect 2. Without CAP_IPC_LOCK and with RLIMIT_MEMLOCK 64 KiB, a whole 1 MiB BAR mmap maps:
 * MMIO is never charged (type1 checks the limit only for pages it charges). Our main charged the
 * whole mapping up front and refused it with ENOMEM. 1 MiB of anonymous memory is refused by
 * both, leaving nothing pinned or charged.
 */
TEST_F(hard, bar_map_at_memlock_limit)
{
	struct rlimit lim = { 16 * PAGE, 16 * PAGE };
	struct backend_refs refs = backend_refs();
	unsigned char *anon = alloc_pages(256);
	int err, bar_err;
	__u64 size = 0;

	ASSERT_NE(NULL, anon);
	ASSERT_EQ(0, drop_cap_ipc_lock());
	ASSERT_EQ(0, setrlimit(RLIMIT_MEMLOCK, &lim));
	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU,
				    &self->container, &self->group));
	ASSERT_SERVED_SINCE(refs);
	refs = backend_refs();
	ASSERT_EQ(0, second_edu_bar(self));
	ASSERT_SERVED_SINCE(refs);
	ASSERT_EQ(1ULL << 20, self->bar2_size);

	bar_err = dma_map(self->container, IOVA, (uintptr_t)self->bar2, self->bar2_size, RW);
	EXPECT_EQ(0, bar_err);
	RECORD("bar_map_at_memlock_limit", "bar_1MiB %d", bar_err);
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(self->pins_before, pins_outstanding());

	err = dma_map(self->container, IOVA + (16ULL << 20), (uintptr_t)anon, 256 * PAGE, RW);
	EXPECT_EQ(ENOMEM, err);
	RECORD("bar_map_at_memlock_limit", "anon_1MiB %d", err);
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(self->pins_before, pins_outstanding());

	/* The limit itself still holds: 16 pages map and are charged. */
	ASSERT_EQ(0, dma_map(self->container, IOVA + (32ULL << 20), (uintptr_t)anon, 16 * PAGE,
			     RW));
	EXPECT_EQ(64, locked_vm_kb());
	EXPECT_EQ(self->pins_before + 16, pins_outstanding());
	EXPECT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size));
	EXPECT_EQ(16 * PAGE + (bar_err ? 0 : self->bar2_size), size);
	EXPECT_EQ(0, locked_vm_kb());
	release_all(self);
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(self->pins_before, pins_outstanding());
}

/* A module parameter's value as text (newline stripped), or "" if unreadable. */
static void read_module_param(const char *module, const char *param, char *out, size_t len)
{
	char path[128];
	ssize_t n;
	int fd;

	out[0] = 0;
	snprintf(path, sizeof(path), "/sys/module/%s/parameters/%s", module, param);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	n = read(fd, out, len - 1);
	close(fd);
	out[n > 0 ? n : 0] = 0;
	if (n > 0 && out[n - 1] == '\n')
		out[n - 1] = 0;
}

/*
 * Defect 5. More one-page mappings than 4 MiB of 8-byte keys hold (524,288), in an mdev-only
 * container (nothing pinned; they all map the same page), then UNMAP_ALL: it must remove them
 * all. Our main collected the keys of the mappings to remove in a KVec, which cannot grow past
 * kmalloc's 4 MiB: ENOMEM (and a WARNING from the page allocator for the order-11 request). Any
 * unmap whose range holds more than 524,288 mappings is affected, v1 ranges alike.
 */
#define MANY (524288 + 64)
/*
 * On the debug kernel (KASAN, lockdep, kmemleak: recognised by kmemleak's debugfs file) making
 * that many mappings takes minutes under TCG; there the test removes 65,536, which exercises the
 * walk under KASAN but not the size limit, which `make check` covers.
 */
#define MANY_DEBUG 65536

/* Whether this is the debug kernel (make check-debug), which has kmemleak. */
static int debug_kernel(void)
{
	return access("/sys/kernel/debug/kmemleak", F_OK) == 0;
}

TEST_F_TIMEOUT(hard, unmap_all_many_mappings, 120)
{
	const unsigned long long many = debug_kernel() ? MANY_DEBUG : MANY;
	const char *module = backend_module(vfio_backend());
	struct backend_refs refs = backend_refs();
	unsigned char *page = alloc_pages(1);
	double t0, t1, t2, t3;
	__u64 size = 0, i;
	int err;

	ASSERT_NE(NULL, page);
	/* The limit is read when a container is opened: raised for this one only. */
	read_module_param(module, "dma_entry_limit", self->param_old, sizeof(self->param_old));
	ASSERT_NE(0, self->param_old[0]);
	self->param_module = module;
	ASSERT_EQ(0, write_module_param(module, "dma_entry_limit", "1048576"));
	err = mdev_container(self);
	EXPECT_EQ(0, write_module_param(module, "dma_entry_limit", self->param_old));
	self->param_module = NULL;
	ASSERT_EQ(0, err);
	ASSERT_SERVED_SINCE(refs);

	t0 = now();
	for (i = 0; i < many; i++) {
		err = dma_map(self->container, (1ULL << 32) + i * PAGE, (uintptr_t)page, PAGE, RW);
		ASSERT_EQ(0, err) TH_LOG("mapping %llu: errno %d", (unsigned long long)i, err);
	}
	t1 = now();
	EXPECT_EQ(self->pins_before, pins_outstanding());
	err = dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size);
	t2 = now();
	EXPECT_EQ(0, err);
	EXPECT_EQ(many * PAGE, size) TH_LOG("UNMAP_ALL returned %#llx", (unsigned long long)size);
	RECORD("unmap_all_many_mappings", "errno %d size %#llx", err, (unsigned long long)size);
	/* All gone: the first IOVA maps again. */
	EXPECT_EQ(0, dma_map(self->container, 1ULL << 32, (uintptr_t)page, PAGE, RW));
	release_all(self);
	t3 = now();
	ksft_print_msg("%s: %llu mappings in %.1f s, UNMAP_ALL %.2f s, close %.2f s\n",
		       vfio_backend() == BACKEND_RUST ? "rust" : "type1", many, t1 - t0, t2 - t1,
		       t3 - t2);
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(self->pins_before, pins_outstanding());
}

/*
 * Shrinks every slab cache (/sys/kernel/slab/<cache>/shrink): frees empty slabs and, on a KASAN
 * kernel, empties the cache's share of the quarantine of freed objects (kmem_cache_shrink() calls
 * kasan_cache_shrink()), which otherwise moves Slab by a megabyte either way between two samples.
 */
static void shrink_slabs(void)
{
	DIR *d = opendir("/sys/kernel/slab");
	struct dirent *e;
	char path[512];
	int fd;

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/slab/%s/shrink", e->d_name);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		/* A cache that cannot shrink refuses: nothing to drain there. */
		if (write(fd, "1", 1) != 1)
			errno = 0;
		close(fd);
	}
	closedir(d);
}

/*
 * Kernel slab memory in kB (reclaimable and not), with every cache shrunk and the per-CPU
 * counters folded first.
 */
static long slab_kb(void)
{
	long r, u;

	shrink_slabs();
	r = vmstat("nr_slab_reclaimable");
	u = vmstat("nr_slab_unreclaimable");
	return r < 0 || u < 0 ? -1 : (r + u) * (long)(PAGE / 1024);
}

#define DIRTY_PAGES (65536)
#define DIRTY_BYTES ((__u64)DIRTY_PAGES * PAGE)
/* Where the type1 run leaves its slab growth for the rust run (same boot, type1 runs first). */
#define TYPE1_SLAB_FILE "/tmp/hardening_test.dense_dirty_marks.type1_slab_kb"
/* Slab accounting moves in slab pages (up to 32 kB for kmalloc-8k): that much noise is allowed. */
#define SLAB_NOISE_KB 64

/*
 * Defect 6. While tracking, the vendor driver writes one byte into every page of a 256 MiB mapping
 * with vfio_dma_rw(): the next GET_BITMAP reports every page, the one after none. type1 keeps a
 * bitmap per mapping (8 KiB here, allocated at START); our main kept a red-black tree node per
 * dirtied page (about 2 MB here). The growth of kernel slab memory from before START to before
 * GET_BITMAP must not exceed type1's (measured by the type1 run, read by the rust run).
 */
TEST_F_TIMEOUT(hard, dense_dirty_marks, 120)
{
	struct backend_refs refs = backend_refs();
	static __u64 bits[DIRTY_PAGES / 64];
	unsigned char *buf;
	long before, after, growth, set1 = 0, set2 = 0, wrong = 0;
	double t0, t1;
	__u64 size = 0;
	int i, err = 0;
	FILE *f;

	buf = mmap(NULL, DIRTY_BYTES, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, mdev_container(self));
	ASSERT_SERVED_SINCE(refs);
	ASSERT_EQ(0, dma_map(self->container, IOVA, (uintptr_t)buf, DIRTY_BYTES, RW));

	before = slab_kb();
	ASSERT_LE(0, before);
	ASSERT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	t0 = now();
	for (i = 0; i < DIRTY_PAGES && !err; i++) {
		unsigned char byte = (unsigned char)(i * 7 + 1);
		__u64 off = (__u64)i * PAGE + (i * 17) % PAGE;

		err = vmdev(self->mdev, VIR_MDEV_WRITE, IOVA + off, 1, 0, &byte);
	}
	t1 = now();
	ASSERT_EQ(0, err) TH_LOG("write %d: errno %d", i - 1, err);
	after = slab_kb();
	growth = after - before;
	for (i = 0; i < DIRTY_PAGES; i++)
		wrong += buf[(__u64)i * PAGE + (i * 17) % PAGE] != (unsigned char)(i * 7 + 1);
	EXPECT_EQ(0, wrong);

	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, DIRTY_BYTES, PAGE, bits, sizeof(bits)));
	for (i = 0; i < DIRTY_PAGES / 64; i++)
		set1 += __builtin_popcountll(bits[i]);
	memset(bits, 0xff, sizeof(bits));
	ASSERT_EQ(0, dirty_bitmap(self->container, IOVA, DIRTY_BYTES, PAGE, bits, sizeof(bits)));
	for (i = 0; i < DIRTY_PAGES / 64; i++)
		set2 += __builtin_popcountll(bits[i]);
	EXPECT_EQ(DIRTY_PAGES, set1);
	EXPECT_EQ(0, set2);
	RECORD("dense_dirty_marks", "dirty first %ld second %ld", set1, set2);
	EXPECT_EQ(0, dirty_pages(self->container, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP));
	EXPECT_EQ(0, dma_unmap(self->container, IOVA, DIRTY_BYTES, 0, &size));
	EXPECT_EQ(DIRTY_BYTES, size);
	release_all(self);
	munmap(buf, DIRTY_BYTES);

	ksft_print_msg("%s: slab growth over %d vfio_dma_rw writes while tracking: %ld kB (%ld -> %ld kB), writes took %.1f s\n",
		       self->backend == BACKEND_RUST ? "rust" : "type1", DIRTY_PAGES, growth,
		       before, after, t1 - t0);
	if (self->backend == BACKEND_TYPE1) {
		f = fopen(TYPE1_SLAB_FILE, "w");
		ASSERT_NE(NULL, f);
		fprintf(f, "%ld\n", growth);
		fclose(f);
	} else {
		long type1 = -1;

		f = fopen(TYPE1_SLAB_FILE, "r");
		if (!f && debug_kernel()) {
			/*
			 * The debug boot runs our backend only. type1 kvzalloc()s the mapping's
			 * bitmap at START: DIRTY_BITMAP_BYTES(65536) + 8 = 8,200 bytes, from the
			 * page allocator as an order-2 block: 16 kB, what `make check` measures.
			 */
			type1 = 16;
		} else {
			ASSERT_NE(NULL, f) TH_LOG("%s missing: the type1 run of this test did not finish",
						  TYPE1_SLAB_FILE);
			ASSERT_EQ(1, fscanf(f, "%ld", &type1));
			fclose(f);
		}
		ksft_print_msg("slab growth: rust %ld kB, type1 %ld kB\n", growth, type1);
		/*
		 * On the debug kernel KASAN's quarantine moved Slab by up to 1.2 MB either way
		 * (-1,116, +88 and +1,216 kB seen) until slab_kb() drained it; redzones still add
		 * to every object. The bound there still fails on a per-page structure (2 MiB).
		 */
		EXPECT_LE(growth, type1 + (debug_kernel() ? 512 : SLAB_NOISE_KB));
	}
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(self->pins_before, pins_outstanding());
}

/*
 * Defect 1a. A container with G (an IOMMU domain) and M. IOVA X maps an MMIO page (the second
 * edu's BAR: not pinned, not charged); then an anonymous page replaces the MMIO at the vaddr and
 * the vendor driver pins X, which gets that page (not charged: the container's domain "pinned and
 * charged everything already"). G leaving takes the domain: the vendor's page is now held only by
 * the vendor pin, so it is charged (type1's vfio_iommu_unmap_unpin_reaccount). Our main computed
 * locked_pages - vendor pins = 0 - 1 there and panicked (dma.rs, unmap_and_unpin).
 */
TEST_F(hard, detach_vendor_pin_over_mmio)
{
	struct backend_refs refs = backend_refs();
	long map, pin, unset, unpin;
	unsigned char *v;
	__u64 size = 0;
	void *p;

	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU,
				    &self->container, &self->group));
	ASSERT_SERVED_SINCE(refs);
	self->mgroup = open_group(env_int("VFIO_TEST_VMDEV_GROUP"));
	ASSERT_LE(0, self->mgroup);
	ASSERT_EQ(0, ioctl(self->mgroup, VFIO_GROUP_SET_CONTAINER, &self->container));
	ASSERT_EQ(0, open_vmdev(self));
	refs = backend_refs();
	ASSERT_EQ(0, second_edu_bar(self));
	ASSERT_SERVED_SINCE(refs);
	ASSERT_LE(1ULL << 20, self->bar2_size);
	v = self->bar2;

	/* X -> V, MMIO: neither pinned nor charged. */
	ASSERT_EQ(0, dma_map(self->container, IOVA, (uintptr_t)v, PAGE, RW));
	map = locked_vm_kb();
	EXPECT_EQ(0, map);
	EXPECT_EQ(self->pins_before, pins_outstanding());
	/* An anonymous page at V, touched; the mapping still reaches the MMIO page. */
	p = mmap(v, PAGE, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_EQ((void *)v, p);
	memset(v, 0xa7, PAGE);
	/*
	 * The vendor pins X: the anonymous page. type1 deems the domain's charge to cover it; ours
	 * charges it now, since the IOMMU pins another page (MMIO) at X (status.rst, "Locked memory
	 * is charged per page by its own pfn").
	 */
	ASSERT_EQ(0, vmdev(self->mdev, VIR_MDEV_PIN, IOVA, 1, 0, NULL));
	pin = locked_vm_kb();
	EXPECT_EQ(self->backend == BACKEND_RUST ? 4 : 0, pin);
	EXPECT_EQ(self->pins_before + 1, pins_outstanding());

	/* The last IOMMU group leaves (our main: panic at dma.rs:225). */
	ASSERT_EQ(0, ioctl(self->group, VFIO_GROUP_UNSET_CONTAINER));
	close_fd(&self->group);
	/* The vendor's page is held by the vendor pin alone now: charged. */
	unset = locked_vm_kb();
	EXPECT_EQ(4, unset);
	EXPECT_EQ(self->pins_before + 1, pins_outstanding());

	ASSERT_EQ(0, vmdev(self->mdev, VIR_MDEV_UNPIN, IOVA, 1, 0, NULL));
	unpin = locked_vm_kb();
	EXPECT_EQ(0, unpin);
	EXPECT_EQ(self->pins_before, pins_outstanding());
	EXPECT_EQ(0, dma_unmap(self->container, IOVA, PAGE, 0, &size));
	EXPECT_EQ(PAGE, size);
	/* The pin's charge differs by design (asserted above); the rest is recorded. */
	RECORD("detach_vendor_pin_over_mmio", "vmlck_kb map %ld unset %ld unpin %ld", map, unset,
	       unpin);

	refs = backend_refs();
	release_all(self);
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(self->pins_before, pins_outstanding());
	/* Both containers released their backend. */
	if (self->backend == BACKEND_RUST) {
		EXPECT_EQ(refs.rust - 2, module_refcnt(RUST_MODULE));
	} else {
		EXPECT_EQ(refs.type1 - 2, module_refcnt(TYPE1_MODULE));
	}
}

/*
 * Defect 1b. An mdev-only container (M): X maps an anonymous page, which the vendor pins (charged:
 * no domain). Then V is remapped to MMIO (the second edu's BAR) and G joins: the replay pins and
 * maps V's MMIO pfn, which is not charged; the vendor's page stays charged as long as it is
 * pinned. Our main charged the mapping, then gave back the MMIO page and the vendor page: 1 - 2
 * pages, a panic (dma.rs, pin_and_map). type1 survives but never uncharges the vendor's page: with
 * a domain present it does not account the vendor unpin (do_accounting is false), and the IOMMU
 * unmap of the MMIO pfn uncharges nothing, so 4 kB stay in VmLck until the process exits.
 */
TEST_F(hard, replay_vendor_pin_now_mmio)
{
	struct backend_refs refs = backend_refs();
	long pin, join, unpin, closed;
	unsigned char *v = alloc_pages(1);
	__u64 size = 0;
	void *p;

	ASSERT_NE(NULL, v);
	ASSERT_EQ(0, mdev_container(self));
	ASSERT_SERVED_SINCE(refs);
	refs = backend_refs();
	ASSERT_EQ(0, second_edu_bar(self));
	ASSERT_SERVED_SINCE(refs);

	ASSERT_EQ(0, dma_map(self->container, IOVA, (uintptr_t)v, PAGE, RW));
	ASSERT_EQ(0, vmdev(self->mdev, VIR_MDEV_PIN, IOVA, 1, VIR_MDEV_FLAG_WRITE, NULL));
	EXPECT_EQ(0x5a, v[100]);
	pin = locked_vm_kb();
	EXPECT_EQ(4, pin);
	EXPECT_EQ(self->pins_before + 1, pins_outstanding());

	/* V becomes the first page of the second edu's BAR. */
	p = mmap(v, PAGE, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_SHARED, self->dev2,
		 self->bar2_offset);
	ASSERT_EQ((void *)v, p);
	ASSERT_EQ(EDU_IDENT, *(volatile unsigned int *)v);

	/* G joins: the replay maps V's MMIO (our main: panic at dma.rs:119). */
	self->group = open_group(env_int("VFIO_TEST_GROUP"));
	ASSERT_LE(0, self->group);
	ASSERT_EQ(0, ioctl(self->group, VFIO_GROUP_SET_CONTAINER, &self->container));
	join = locked_vm_kb();
	EXPECT_EQ(4, join);
	EXPECT_EQ(self->pins_before + 1, pins_outstanding());
	RECORD("replay_vendor_pin_now_mmio", "vmlck_kb pin %ld join %ld", pin, join);

	ASSERT_EQ(0, vmdev(self->mdev, VIR_MDEV_UNPIN, IOVA, 1, 0, NULL));
	unpin = locked_vm_kb();
	EXPECT_EQ(self->pins_before, pins_outstanding());
	EXPECT_EQ(0, dma_unmap(self->container, IOVA, PAGE, 0, &size));
	EXPECT_EQ(PAGE, size);
	munmap(v, PAGE);
	release_all(self);
	closed = locked_vm_kb();
	EXPECT_EQ(self->pins_before, pins_outstanding());
	TH_LOG("VmLck after the vendor unpin %ld kB, after closing %ld kB", unpin, closed);
	if (self->backend == BACKEND_RUST) {
		EXPECT_EQ(0, unpin);
		EXPECT_EQ(0, closed);
	} else {
		/* type1 6.12 leaks the vendor page's charge (see above); the process exit drops it. */
		EXPECT_EQ(4, unpin);
		EXPECT_EQ(4, closed);
	}
}

TEST_HARNESS_MAIN
