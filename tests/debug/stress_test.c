// SPDX-License-Identifier: GPL-2.0
/*
 * Concurrency stress on one container of vfio_iommu_rust (debug kernel: lockdep, KASAN): threads
 * mapping and unmapping overlapping ranges, toggling dirty tracking and reading bitmaps, reading
 * GET_INFO, a vendor driver pinning and unpinning while its mappings are unmapped under it, a
 * second IOMMU group joining and leaving, and a child process killed with SIGKILL in the middle of
 * a large mapping. Bounded in time (VIR_STRESS_SECONDS, default 20). Afterwards nothing is pinned
 * or charged and the containers still work.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include "kselftest_harness.h"
#include "vfio_test.h"
#include "mdev/vir_mdev.h"

#define IOVA 0x100000ULL
#define SPAN 64			/* pages of IOVA the threads fight over */

static volatile int stop;
static int container, mdev_container, dev;
static char *buf;
static unsigned long ops[8];

static unsigned int seed_of(long id)
{
	return 0x5eed0000u + (unsigned int)id;
}

static void *mapper(void *arg)
{
	unsigned int seed = seed_of((long)arg);
	long n = 0;

	while (!stop) {
		__u64 first = rand_r(&seed) % SPAN, len = 1 + rand_r(&seed) % 8;
		int fd = rand_r(&seed) % 2 ? container : mdev_container;

		if (first + len > SPAN)
			len = SPAN - first;
		if (rand_r(&seed) % 2)
			dma_map(fd, IOVA + first * PAGE, (uintptr_t)buf + first * PAGE, len * PAGE, RW);
		else
			dma_unmap(fd, IOVA + first * PAGE, len * PAGE, 0, NULL);
		if (rand_r(&seed) % 64 == 0)
			dma_unmap(fd, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL);
		n++;
	}
	ops[(long)arg] = n;
	return NULL;
}

static void *tracker(void *arg)
{
	unsigned int seed = seed_of((long)arg);
	__u64 bits[SPAN / 64 + 1];
	char info[512];
	long n = 0;

	while (!stop) {
		switch (rand_r(&seed) % 4) {
		case 0:
			dirty_pages(mdev_container, rand_r(&seed) % 2 ? VFIO_IOMMU_DIRTY_PAGES_FLAG_START :
									 VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP);
			break;
		case 1:
			dirty_bitmap(mdev_container, IOVA, SPAN * PAGE, PAGE, bits, sizeof(bits));
			break;
		case 2:
			dma_unmap_bitmap(mdev_container, IOVA, SPAN * PAGE, PAGE, bits, sizeof(bits), NULL);
			break;
		default:
			memset(info, 0, sizeof(info));
			((struct vfio_iommu_type1_info *)info)->argsz = sizeof(info);
			ioctl(rand_r(&seed) % 2 ? container : mdev_container, VFIO_IOMMU_GET_INFO, info);
		}
		n++;
	}
	ops[(long)arg] = n;
	return NULL;
}

static void *pinner(void *arg)
{
	unsigned int seed = seed_of((long)arg);
	long n = 0;

	while (!stop) {
		struct vir_mdev_cmd cmd = {
			.iova = IOVA + (rand_r(&seed) % SPAN) * PAGE,
			.count = 1 + rand_r(&seed) % 4,
			.flags = rand_r(&seed) % 2 ? VIR_MDEV_FLAG_WRITE : 0,
			.buf = (uintptr_t)buf,
		};

		switch (rand_r(&seed) % 3) {
		case 0:
			if (!ioctl(dev, VIR_MDEV_PIN, &cmd) && rand_r(&seed) % 2)
				ioctl(dev, VIR_MDEV_UNPIN, &cmd);
			break;
		case 1:
			cmd.count = 16;
			ioctl(dev, VIR_MDEV_WRITE, &cmd);
			break;
		default:
			cmd.count = 16;
			ioctl(dev, VIR_MDEV_READ, &cmd);
		}
		n++;
	}
	ops[(long)arg] = n;
	return NULL;
}

/* The second edu group joins and leaves the IOMMU container (domain reuse, replay, IOVA list). */
static void *joiner(void *arg)
{
	long n = 0;

	while (!stop) {
		int g = open_group(env_int("VFIO_TEST_GROUP2"));

		if (g >= 0) {
			ioctl(g, VFIO_GROUP_SET_CONTAINER, &container);
			ioctl(g, VFIO_GROUP_UNSET_CONTAINER);
			close(g);
		}
		n++;
	}
	ops[(long)arg] = n;
	return NULL;
}

/* Children that start a large mapping and are killed in the middle of it. */
static void *killer(void *arg)
{
	long n = 0;

	while (!stop) {
		int p[2], status;
		pid_t pid;
		char c;

		if (pipe(p))
			break;
		pid = fork();
		if (!pid) {
			int cont, grp;
			void *mem = mmap(NULL, 256 << 20, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (mem == MAP_FAILED ||
			    open_container(env_int("VFIO_TEST_GROUP2"), VFIO_TYPE1v2_IOMMU, &cont, &grp))
				_exit(1);
			if (write(p[1], "r", 1) != 1)
				_exit(1);
			dma_map(cont, 0, (uintptr_t)mem, 256 << 20, RW);
			_exit(0);
		}
		close(p[1]);
		if (read(p[0], &c, 1) == 1)
			usleep(20000 + rand() % 100000);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		close(p[0]);
		n++;
	}
	ops[(long)arg] = n;
	return NULL;
}

FIXTURE(long_running) {
	int unused;
};

FIXTURE_SETUP(long_running)
{
}

FIXTURE_TEARDOWN(long_running)
{
}

TEST_F_TIMEOUT(long_running, stress, 3600)
{
	const char *s = getenv("VIR_STRESS_SECONDS");
	int seconds = s ? atoi(s) : 20, group, mdev_group, i;
	void *(*fns[])(void *) = { mapper, mapper, mapper, tracker, pinner, pinner, killer };
	pthread_t t[8];
	long pins = pins_outstanding();
	struct backend_refs before = backend_refs();
	__u64 size;

	ASSERT_EQ(BACKEND_RUST, vfio_backend());
	buf = alloc_pages(SPAN);
	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU, &container,
				    &group));
	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_VMDEV_GROUP"), VFIO_TYPE1v2_IOMMU,
				    &mdev_container, &mdev_group));
	ASSERT_EQ(before.rust + 2, module_refcnt(RUST_MODULE));
	dev = ioctl(mdev_group, VFIO_GROUP_GET_DEVICE_FD, env_str("VFIO_TEST_VMDEV"));
	ASSERT_LE(0, dev);
	/* The killer's children use the second edu group; the joiner would compete for it. */
	for (i = 0; i < 7; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, fns[i], (void *)(long)i));
	sleep(seconds);
	stop = 1;
	for (i = 0; i < 7; i++)
		pthread_join(t[i], NULL);
	printf("# stress: %d s, ops: map/unmap %lu %lu %lu, dirty %lu, pin %lu %lu, killed %lu\n",
	       seconds, ops[0], ops[1], ops[2], ops[3], ops[4], ops[5], ops[6]);
	EXPECT_LT(0, ops[0] + ops[1] + ops[2]);
	EXPECT_LT(0, ops[6]);

	/* Consistent afterwards: everything unmaps, the containers work, nothing leaks. */
	EXPECT_EQ(0, dma_unmap(container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size));
	EXPECT_EQ(0, dma_map(container, IOVA, (uintptr_t)buf, SPAN * PAGE, RW));
	EXPECT_EQ(0, dma_unmap(container, IOVA, SPAN * PAGE, 0, &size));
	EXPECT_EQ(SPAN * PAGE, size);
	close(dev);
	close(mdev_group);
	close(mdev_container);
	close(group);
	close(container);
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(before.rust, module_refcnt(RUST_MODULE));
}

/* The second group joining and leaving while another thread maps and unmaps. */
TEST(join_leave)
{
	int group, i;
	pthread_t t[2];
	long pins = pins_outstanding();

	buf = alloc_pages(SPAN);
	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU, &container,
				    &group));
	mdev_container = container;
	stop = 0;
	ASSERT_EQ(0, pthread_create(&t[0], NULL, mapper, (void *)0L));
	ASSERT_EQ(0, pthread_create(&t[1], NULL, joiner, (void *)1L));
	sleep(5);
	stop = 1;
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	printf("# join_leave: map/unmap %lu, joins %lu\n", ops[0], ops[1]);
	EXPECT_LT(0, ops[1]);
	close(group);
	close(container);
	EXPECT_EQ(pins, pins_outstanding());
}

TEST_HARNESS_MAIN
