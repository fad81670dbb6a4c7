// SPDX-License-Identifier: GPL-2.0
/*
 * Resource limits against both backends: RLIMIT_MEMLOCK without CAP_IPC_LOCK, the
 * dma_entry_limit module parameter, and a process killed in the middle of a large mapping.
 */
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/capability.h>
#include "kselftest_harness.h"
#include "vfio_test.h"

#define IOVA 0x100000ULL

TEST(rlimit_memlock)
{
	struct rlimit lim = { 16 * PAGE, 16 * PAGE };
	struct backend_refs refs = backend_refs();
	long pins = pins_outstanding();
	char *buf = alloc_pages(64);
	int container, group, err;
	__u64 size;

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, drop_cap_ipc_lock());
	ASSERT_EQ(0, setrlimit(RLIMIT_MEMLOCK, &lim));
	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU, &container,
				    &group));
	ASSERT_SERVED_SINCE(refs);

	/* Up to the limit exactly. */
	ASSERT_EQ(0, dma_map(container, IOVA, (uintptr_t)buf, 16 * PAGE, RW));
	EXPECT_EQ(64, locked_vm_kb());
	err = dma_map(container, IOVA + 16 * PAGE, (uintptr_t)buf + 16 * PAGE, PAGE, RW);
	EXPECT_EQ(ENOMEM, err);
	RECORD("rlimit_memlock", "one_more_page %d", err);
	EXPECT_EQ(64, locked_vm_kb());
	EXPECT_EQ(pins + 16, pins_outstanding());
	ASSERT_EQ(0, dma_unmap(container, IOVA, 16 * PAGE, 0, &size));
	EXPECT_EQ(0, locked_vm_kb());
	/* One request over the limit fails whole: nothing stays pinned or charged. */
	err = dma_map(container, IOVA, (uintptr_t)buf, 32 * PAGE, RW);
	EXPECT_EQ(ENOMEM, err);
	RECORD("rlimit_memlock", "over_in_one %d", err);
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(0, dma_map(container, IOVA, (uintptr_t)buf, 8 * PAGE, RW));
	close(group);
	close(container);
	EXPECT_EQ(0, locked_vm_kb());
	EXPECT_EQ(pins, pins_outstanding());
}

/*
 * An unprivileged user given a group (its device node chowned to the user) can use it, and can
 * pin no more than its RLIMIT_MEMLOCK.
 */
TEST(unprivileged_user)
{
	char node[64];
	int status;
	pid_t pid;

	snprintf(node, sizeof(node), "/dev/vfio/%d", env_int("VFIO_TEST_GROUP"));
	ASSERT_EQ(0, chown(node, 1000, 1000));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct rlimit lim = { 16 * PAGE, 16 * PAGE };
		char *buf = alloc_pages(32);
		int container, group;

		if (!buf || setrlimit(RLIMIT_MEMLOCK, &lim) || setgid(1000) || setuid(1000))
			_exit(10);
		if (getuid() != 1000 || geteuid() != 1000)
			_exit(11);
		if (open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU, &container, &group))
			_exit(12);
		if (dma_map(container, IOVA, (uintptr_t)buf, 16 * PAGE, RW))
			_exit(13);
		if (locked_vm_kb() != 64)
			_exit(14);
		if (dma_map(container, IOVA + 16 * PAGE, (uintptr_t)buf + 16 * PAGE, PAGE, RW) != ENOMEM)
			_exit(15);
		/* A root-only operation stays refused: loading a module. */
		if (syscall(SYS_delete_module, "vfio_iommu_type1", O_NONBLOCK) != -1 || errno != EPERM)
			_exit(16);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, chown(node, 0, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

TEST(dma_entry_limit)
{
	const char *module = backend_module(vfio_backend());
	struct backend_refs refs = backend_refs();
	struct vfio_iommu_type1_info_dma_avail *avail;
	char *buf = alloc_pages(16);
	char info[1024] = { 0 };
	int container, group, i, err;
	__u64 size;

	ASSERT_NE(NULL, buf);
	/* The limit is read when a container is opened. */
	ASSERT_EQ(0, write_module_param(module, "dma_entry_limit", "8"));
	err = open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU, &container, &group);
	ASSERT_EQ(0, write_module_param(module, "dma_entry_limit", "65535"));
	ASSERT_EQ(0, err);
	ASSERT_SERVED_SINCE(refs);

	((struct vfio_iommu_type1_info *)info)->argsz = sizeof(info);
	ASSERT_EQ(0, ioctl(container, VFIO_IOMMU_GET_INFO, info));
	/* DMA_AVAIL is the second capability, after MIGRATION. */
	avail = (void *)(info + ((struct vfio_iommu_type1_info *)info)->cap_offset);
	avail = (void *)(info + avail->header.next);
	ASSERT_EQ(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, avail->header.id);
	EXPECT_EQ(8, avail->avail);

	for (i = 0; i < 8; i++)
		ASSERT_EQ(0, dma_map(container, IOVA + i * PAGE, (uintptr_t)buf + i * PAGE, PAGE, RW));
	err = dma_map(container, IOVA + 8 * PAGE, (uintptr_t)buf + 8 * PAGE, PAGE, RW);
	EXPECT_EQ(ENOSPC, err);
	RECORD("dma_entry_limit", "ninth %d", err);
	ASSERT_EQ(0, dma_unmap(container, IOVA + 3 * PAGE, PAGE, 0, &size));
	EXPECT_EQ(0, dma_map(container, IOVA + 8 * PAGE, (uintptr_t)buf + 8 * PAGE, PAGE, RW));
	close(group);
	close(container);
}

/* A process killed while pinning a large mapping leaves nothing behind. */
TEST(sigkill_during_map)
{
	const size_t len = 768ULL << 20;
	struct backend_refs refs = backend_refs(), after;
	long pins = pins_outstanding();
	int pipefd[2], status;
	pid_t pid;
	char c;

	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		int container, group;
		/* Not populated: pinning faults in (and zeroes) every page, which takes a while. */
		void *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				 -1, 0);

		if (buf == MAP_FAILED ||
		    open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU, &container,
				   &group))
			_exit(2);
		if (write(pipefd[1], "r", 1) != 1)
			_exit(3);
		dma_map(container, IOVA, (uintptr_t)buf, len, RW);
		_exit(0); /* the map finished before the kill */
	}
	close(pipefd[1]);
	ASSERT_EQ(1, read(pipefd[0], &c, 1));
	usleep(300000);
	/* Mid-map: the child holds a container on the expected backend and has pinned pages. */
	after = backend_refs();
	if (vfio_backend() == BACKEND_RUST) {
		EXPECT_EQ(refs.rust + 1, after.rust);
	} else {
		EXPECT_EQ(refs.type1 + 1, after.type1);
	}
	EXPECT_LT(pins, pins_outstanding());
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(pins, pins_outstanding());
	after = backend_refs();
	EXPECT_EQ(refs.rust, after.rust);
	EXPECT_EQ(refs.type1, after.type1);
}

TEST_HARNESS_MAIN
