// SPDX-License-Identifier: GPL-2.0
/*
 * Concurrency: what runs beside a MAP_DMA or UNMAP_DMA of a large mapping. Our backend pins and
 * maps (unmaps and unpins) a mapping over 2 MiB without its container mutex, the mapping "busy"
 * meanwhile; type1 holds its iommu->lock throughout (Documentation/backend.rst, "Large mappings
 * without the container mutex"). Every test runs on both backends; where they differ by design,
 * the assertion says so.
 *
 *  - vendor_pin_beside_map: a vendor driver pins and unpins a page of another mapping while a
 *    256 MiB mapping of 4 KiB pages is mapped and unmapped: ours serves it meanwhile, type1 makes
 *    it wait;
 *  - vendor_pin_inside_map: a vendor pin inside the range being mapped fails (EINVAL) before the
 *    map and succeeds after it, never on a half-made mapping;
 *  - unmap_races_map: UNMAP_DMA of the whole range and of half of it, in a loop, racing the map:
 *    every answer is one a serial order gives, and exactly one unmap returns the mapping;
 *  - unmap_all_races_maps: UNMAP_ALL of a large mapping while other threads map and unmap
 *    elsewhere, a large and a small mapping in turns at one IOVA;
 *  - detach_mid_map: the last IOMMU group leaves while the map runs (the container keeps an mdev
 *    group, so the mapping stays, unpinned);
 *  - kill_mid_map: the mapping process is killed mid-map.
 *
 * Locked memory (VmLck) and the FOLL_PIN balance are checked after each.
 */
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <sys/wait.h>
#include "kselftest_harness.h"
#include "vfio_test.h"
#include "mdev/vir_mdev.h"

#define SIZE (256ULL << 20)
/* The vendor's own page, away from the large mapping at IOVA 0. */
#define VENDOR_IOVA (1ULL << 31)
#define MAX_CALLS 200000

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int vmdev(int dev, unsigned long op, __u64 iova, __u64 count)
{
	struct vir_mdev_cmd cmd = { .iova = iova, .count = count, .value = 0x5a };

	return vfio_errno(ioctl(dev, op, &cmd));
}

FIXTURE(conc) {
	enum vfio_backend backend;
	long pins_before;
	/* A v2 container with the edu group and the vir_mdev group, and vir_mdev's device. */
	int container, group, mgroup, mdev;
	unsigned char *buf;
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void release_all(FIXTURE_DATA(conc) *self)
{
	close_fd(&self->mdev);
	close_fd(&self->mgroup);
	close_fd(&self->group);
	close_fd(&self->container);
}

FIXTURE_SETUP(conc)
{
	self->backend = vfio_backend();
	self->pins_before = pins_outstanding();
	self->container = self->group = self->mgroup = self->mdev = -1;
	self->buf = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
	/* 4 KiB pages: a map of large folios is over before anything can run beside it. */
	ASSERT_EQ(0, madvise(self->buf, SIZE, MADV_NOHUGEPAGE));
	memset(self->buf, 0x3c, SIZE);
}

FIXTURE_TEARDOWN(conc)
{
	release_all(self);
	munmap(self->buf, SIZE);
}

/* The container of the fixture; returns 0 or the errno of the step that failed. */
static int setup(FIXTURE_DATA(conc) *self)
{
	int err = open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU, &self->container,
				 &self->group);

	if (err)
		return err;
	self->mgroup = open_group(env_int("VFIO_TEST_VMDEV_GROUP"));
	if (self->mgroup < 0 || ioctl(self->mgroup, VFIO_GROUP_SET_CONTAINER, &self->container))
		return errno;
	self->mdev = ioctl(self->mgroup, VFIO_GROUP_GET_DEVICE_FD, env_str("VFIO_TEST_VMDEV"));
	return self->mdev < 0 ? errno : 0;
}

/* A vendor thread pinning and unpinning one page in a loop, timing each pin and unpin. */
struct pinner {
	pthread_t thread;
	int mdev;
	__u64 iova;
	/* Stop after the first successful pin (and its unpin). */
	int until_pinned;
	volatile int stop;
	/* Errors of failed pins, by errno: only EINVAL may come, and only where nothing is mapped. */
	int einval, other, other_errno;
	long n;
	double (*t)[2];
};

static void *pin_loop(void *arg)
{
	struct pinner *p = arg;
	int err;

	while (!p->stop && p->n < MAX_CALLS) {
		double *t = p->t[p->n];

		t[0] = now();
		err = vmdev(p->mdev, VIR_MDEV_PIN, p->iova, 1);
		if (err == EINVAL) {
			t[1] = now();
			p->n++;
			p->einval++;
			continue;
		}
		if (!err)
			err = vmdev(p->mdev, VIR_MDEV_UNPIN, p->iova, 1);
		t[1] = now();
		p->n++;
		if (err) {
			p->other++;
			p->other_errno = err;
			continue;
		}
		if (p->until_pinned)
			break;
	}
	return NULL;
}

static int start_pinner(struct pinner *p, int mdev, __u64 iova, int until_pinned)
{
	memset(p, 0, sizeof(*p));
	p->mdev = mdev;
	p->iova = iova;
	p->until_pinned = until_pinned;
	p->t = calloc(MAX_CALLS, sizeof(*p->t));
	if (!p->t)
		return ENOMEM;
	return pthread_create(&p->thread, NULL, pin_loop, p);
}

/* Pin+unpin calls that started and ended within [t0, t1], and the longest that overlapped it. */
static long pins_within(struct pinner *p, double t0, double t1, double *longest)
{
	long i, n = 0;

	*longest = 0;
	for (i = 0; i < p->n; i++) {
		if (p->t[i][0] >= t0 && p->t[i][1] <= t1)
			n++;
		if (p->t[i][1] >= t0 && p->t[i][0] <= t1 && p->t[i][1] - p->t[i][0] > *longest)
			*longest = p->t[i][1] - p->t[i][0];
	}
	return n;
}

TEST_F_TIMEOUT(conc, vendor_pin_beside_map, 120)
{
	struct backend_refs refs = backend_refs();
	unsigned char *page = alloc_pages(1);
	double t0, t1, t2, t3, map_longest, unmap_longest;
	long during_map, during_unmap;
	struct pinner p;
	__u64 size = 0;

	ASSERT_NE(NULL, page);
	ASSERT_EQ(0, setup(self));
	ASSERT_SERVED_SINCE(refs);
	ASSERT_EQ(0, dma_map(self->container, VENDOR_IOVA, (uintptr_t)page, PAGE, RW));
	ASSERT_EQ(0, start_pinner(&p, self->mdev, VENDOR_IOVA, 0));
	/* Let the pinner run first. */
	while (p.n < 20)
		usleep(1000);
	t0 = now();
	ASSERT_EQ(0, dma_map(self->container, 0, (uintptr_t)self->buf, SIZE, RW));
	t1 = now();
	usleep(20000);
	t2 = now();
	ASSERT_EQ(0, dma_unmap(self->container, 0, SIZE, 0, &size));
	t3 = now();
	usleep(20000);
	p.stop = 1;
	pthread_join(p.thread, NULL);
	EXPECT_EQ(SIZE, size);
	EXPECT_EQ(0, p.other);
	EXPECT_EQ(0, p.einval);
	during_map = pins_within(&p, t0, t1, &map_longest);
	during_unmap = pins_within(&p, t2, t3, &unmap_longest);
	TH_LOG("map %.1f ms: %ld vendor pins within it, longest %.2f ms; unmap %.1f ms: %ld, longest "
	       "%.2f ms; %ld pins in all", (t1 - t0) * 1e3, during_map, map_longest * 1e3,
	       (t3 - t2) * 1e3, during_unmap, unmap_longest * 1e3, p.n);
	if (self->backend == BACKEND_RUST) {
		/* Served while the mapping was being pinned, mapped, unmapped and unpinned. */
		EXPECT_LE(3, during_map);
		EXPECT_LE(3, during_unmap);
		EXPECT_GT((t1 - t0) / 2, map_longest);
	} else {
		/* type1: a pin waits for the whole map (its iommu->lock). */
		EXPECT_LE((t1 - t0) / 2, map_longest);
	}
	EXPECT_EQ(0, dma_unmap(self->container, VENDOR_IOVA, PAGE, 0, &size));
	EXPECT_EQ(PAGE, size);
	release_all(self);
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(self->pins_before, pins_outstanding());
	free(p.t);
}

TEST_F_TIMEOUT(conc, vendor_pin_inside_map, 120)
{
	struct backend_refs refs = backend_refs();
	struct pinner p;
	__u64 size = 0;

	ASSERT_EQ(0, setup(self));
	ASSERT_SERVED_SINCE(refs);
	/* Pins of the last page of the range, until one succeeds. */
	ASSERT_EQ(0, start_pinner(&p, self->mdev, SIZE - PAGE, 1));
	while (p.n < 20)
		usleep(1000);
	ASSERT_EQ(0, dma_map(self->container, 0, (uintptr_t)self->buf, SIZE, RW));
	pthread_join(p.thread, NULL);
	TH_LOG("%ld pins, %d EINVAL before the mapping", p.n, p.einval);
	EXPECT_EQ(0, p.other);
	EXPECT_EQ(p.n - 1, p.einval);
	EXPECT_EQ(0, dma_unmap(self->container, 0, SIZE, 0, &size));
	EXPECT_EQ(SIZE, size);
	release_all(self);
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(self->pins_before, pins_outstanding());
	free(p.t);
}

/* Unmaps of the range racing its map, until one returns it. */
struct unmapper {
	int container;
	int whole_zero, half_zero, half_einval, full, other, other_errno;
	long n;
};

static void *unmap_loop(void *arg)
{
	struct unmapper *u = arg;
	__u64 size;
	int err;

	while (!u->full && u->n < MAX_CALLS) {
		u->n++;
		size = ~0ULL;
		err = dma_unmap(u->container, 0, SIZE / 2, 0, &size);
		if (err == EINVAL)
			u->half_einval++;
		else if (!err && size == 0)
			u->half_zero++;
		else
			u->other++, u->other_errno = err ? err : -1;
		size = ~0ULL;
		err = dma_unmap(u->container, 0, SIZE, 0, &size);
		if (!err && size == SIZE)
			u->full++;
		else if (!err && size == 0)
			u->whole_zero++;
		else
			u->other++, u->other_errno = err ? err : -2;
	}
	return NULL;
}

TEST_F_TIMEOUT(conc, unmap_races_map, 120)
{
	struct backend_refs refs = backend_refs();
	struct unmapper u = { 0 };
	pthread_t thread;
	__u64 size = 0;

	ASSERT_EQ(0, setup(self));
	ASSERT_SERVED_SINCE(refs);
	u.container = self->container;
	ASSERT_EQ(0, pthread_create(&thread, NULL, unmap_loop, &u));
	while (u.n < 20)
		usleep(1000);
	ASSERT_EQ(0, dma_map(self->container, 0, (uintptr_t)self->buf, SIZE, RW));
	pthread_join(thread, NULL);
	TH_LOG("%ld rounds: whole unmaps %d of nothing, 1 of the mapping; half unmaps %d of nothing, "
	       "%d EINVAL (bisecting it)", u.n, u.whole_zero, u.half_zero, u.half_einval);
	EXPECT_EQ(1, u.full);
	EXPECT_EQ(0, u.other);
	EXPECT_EQ(u.n, u.whole_zero + u.full);
	EXPECT_EQ(u.n, u.half_zero + u.half_einval);
	EXPECT_EQ(0, dma_unmap(self->container, 0, SIZE, 0, &size));
	EXPECT_EQ(0, size);
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(self->pins_before, pins_outstanding());
	release_all(self);
	EXPECT_EQ(self->pins_before, pins_outstanding());
}

/* DMA_AVAIL of VFIO_IOMMU_GET_INFO, or -1. */
static long dma_avail(int container)
{
	char buf[4096] = { 0 };
	struct vfio_iommu_type1_info *info = (void *)buf;
	__u32 off;

	info->argsz = sizeof(buf);
	if (ioctl(container, VFIO_IOMMU_GET_INFO, info) || !(info->flags & VFIO_IOMMU_INFO_CAPS))
		return -1;
	for (off = info->cap_offset; off && off + 12 <= sizeof(buf);) {
		struct vfio_info_cap_header *h = (void *)(buf + off);

		if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL)
			return ((struct vfio_iommu_type1_info_dma_avail *)h)->avail;
		off = h->next;
	}
	return -1;
}

/* Maps and unmaps at one IOVA in a loop: @size bytes of @buf. */
struct churner {
	pthread_t thread;
	int container;
	unsigned char *buf;
	__u64 iova, size;
	volatile int stop;
	/* Bytes mapped, and unmapped by this thread's unmaps (any mapping at the IOVA). */
	__u64 mapped, unmapped;
	/* Unmaps that bisected the other thread's larger mapping (v2: EINVAL). */
	long bisected, other, other_errno;
};

static void *churn_loop(void *arg)
{
	struct churner *c = arg;
	__u64 size;
	int err;

	while (!c->stop) {
		err = dma_map(c->container, c->iova, (uintptr_t)c->buf, c->size, RW);
		if (err == EEXIST)
			continue;	/* the other churner's mapping is there */
		if (err) {
			c->other++, c->other_errno = err;
			continue;
		}
		c->mapped += c->size;
		size = ~0ULL;
		/* Ours, or nothing (an UNMAP_ALL took it), or the other's smaller one made since. */
		err = dma_unmap(c->container, c->iova, c->size, 0, &size);
		if (!err && size <= c->size)
			c->unmapped += size;
		else if (err == EINVAL)
			c->bisected++;
		else
			c->other++, c->other_errno = err ? err : -1;
	}
	return NULL;
}

/*
 * UNMAP_ALL of a 252 MiB mapping while two threads map and unmap at 1 GiB: a 4 MiB mapping
 * (unmapped without the mutex too) and an 8 KiB one. Every mapping made is unmapped exactly once,
 * by whichever unmap covers it first: the bytes the unmaps report add up to the bytes mapped.
 * Review found that our first version let the UNMAP_ALL finish the other unmap's busy mapping as
 * its own: dma_avail and the busy count went wrong, and the other unmap then dropped a mapping
 * made meanwhile, still pinned.
 */
TEST_F_TIMEOUT(conc, unmap_all_races_maps, 120)
{
	struct backend_refs refs = backend_refs();
	unsigned char *small = alloc_pages(2);
	struct churner big = { 0 }, tiny = { 0 };
	__u64 size = 0, all_extra = 0;
	const __u64 own = SIZE - (4 << 20);
	long avail, rounds;

	ASSERT_NE(NULL, small);
	ASSERT_EQ(0, setup(self));
	ASSERT_SERVED_SINCE(refs);
	avail = dma_avail(self->container);
	ASSERT_LT(0, avail);
	big.container = tiny.container = self->container;
	big.buf = self->buf + own;
	big.size = 4 << 20;
	tiny.buf = small;
	tiny.size = 2 * PAGE;
	big.iova = tiny.iova = 1ULL << 30;
	ASSERT_EQ(0, pthread_create(&big.thread, NULL, churn_loop, &big));
	ASSERT_EQ(0, pthread_create(&tiny.thread, NULL, churn_loop, &tiny));
	for (rounds = 0; rounds < 8; rounds++) {
		ASSERT_EQ(0, dma_map(self->container, 0, (uintptr_t)self->buf, own, RW));
		ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size));
		/* Its own mapping, and the churners' if they were there. */
		ASSERT_LE(own, size);
		all_extra += size - own;
	}
	big.stop = tiny.stop = 1;
	pthread_join(big.thread, NULL);
	pthread_join(tiny.thread, NULL);
	/* What is left of the churners'. */
	EXPECT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size));
	all_extra += size;
	TH_LOG("4 MiB: %llu MiB mapped, %llu unmapped by it; 8 KiB: %llu KiB, %llu; %ld bisecting "
	       "unmaps; UNMAP_ALL took %llu KiB of theirs", big.mapped >> 20, big.unmapped >> 20,
	       tiny.mapped >> 10, tiny.unmapped >> 10, tiny.bisected, all_extra >> 10);
	EXPECT_EQ(0, big.other);
	EXPECT_EQ(0, tiny.other);
	EXPECT_EQ(0, big.bisected);
	EXPECT_EQ(big.mapped + tiny.mapped, big.unmapped + tiny.unmapped + all_extra);
	EXPECT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size));
	EXPECT_EQ(0, size);
	EXPECT_EQ(avail, dma_avail(self->container));
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(self->pins_before, pins_outstanding());
	release_all(self);
	EXPECT_EQ(self->pins_before, pins_outstanding());
}

struct mapper {
	int container;
	unsigned char *buf;
	volatile int started;
	int err;
};

static void *map_once(void *arg)
{
	struct mapper *m = arg;

	m->started = 1;
	m->err = dma_map(m->container, 0, (uintptr_t)m->buf, SIZE, RW);
	return NULL;
}

TEST_F_TIMEOUT(conc, detach_mid_map, 120)
{
	struct backend_refs refs = backend_refs();
	struct mapper m = { 0 };
	pthread_t thread;
	__u64 size = 0;

	ASSERT_EQ(0, setup(self));
	ASSERT_SERVED_SINCE(refs);
	m.container = self->container;
	m.buf = self->buf;
	ASSERT_EQ(0, pthread_create(&thread, NULL, map_once, &m));
	while (!m.started)
		usleep(100);
	usleep(10000);
	/* The last IOMMU group leaves; the mdev group stays, and so do the mappings, unpinned. */
	ASSERT_EQ(0, ioctl(self->group, VFIO_GROUP_UNSET_CONTAINER));
	pthread_join(thread, NULL);
	EXPECT_EQ(0, m.err);
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(self->pins_before, pins_outstanding());
	/* What a vendor driver pins of it now is still served. */
	EXPECT_EQ(0, vmdev(self->mdev, VIR_MDEV_PIN, 0, 1));
	EXPECT_EQ(self->pins_before + 1, pins_outstanding());
	EXPECT_EQ(0, vmdev(self->mdev, VIR_MDEV_UNPIN, 0, 1));
	EXPECT_EQ(0, dma_unmap(self->container, 0, SIZE, 0, &size));
	EXPECT_EQ(SIZE, size);
	release_all(self);
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(self->pins_before, pins_outstanding());
}

TEST_F_TIMEOUT(conc, kill_mid_map, 180)
{
	struct backend_refs refs = backend_refs();
	int pipefd[2], status, container, group;
	char c = 0;
	__u64 size = 0;
	pid_t pid;

	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/*
		 * 512 MiB of its own memory: a map of some 100 ms under TCG (the KASAN kernel takes
		 * tens of seconds to fault it in, hence the test's timeout).
		 */
		unsigned char *mem = mmap(NULL, 2 * SIZE, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (mem == MAP_FAILED || madvise(mem, 2 * SIZE, MADV_NOHUGEPAGE))
			_exit(1);
		memset(mem, 0x5c, 2 * SIZE);
		if (open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU, &container,
				   &group))
			_exit(1);
		if (write(pipefd[1], &c, 1) != 1)
			_exit(2);
		dma_map(container, 0, (uintptr_t)mem, 2 * SIZE, RW);
		/* Not killed in time: report it, the test cannot tell. */
		_exit(3);
	}
	ASSERT_EQ(1, read(pipefd[0], &c, 1));
	ASSERT_SERVED_SINCE(refs);
	usleep(20000);
	kill(pid, SIGKILL);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	TH_LOG("the mapper %s", WIFSIGNALED(status) ? "was killed" : "finished first");
	EXPECT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(self->pins_before, pins_outstanding());
	/* The group is free again and the backend serves it. */
	refs = backend_refs();
	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU,
				    &self->container, &self->group));
	ASSERT_SERVED_SINCE(refs);
	ASSERT_EQ(0, dma_map(self->container, 0, (uintptr_t)self->buf, 1 << 20, RW));
	EXPECT_LT(self->pins_before, pins_outstanding());
	EXPECT_EQ(0, dma_unmap(self->container, 0, 1 << 20, 0, &size));
	EXPECT_EQ(1 << 20, size);
	release_all(self);
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(self->pins_before, pins_outstanding());
}

TEST_HARNESS_MAIN
