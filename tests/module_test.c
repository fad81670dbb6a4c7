// SPDX-License-Identifier: GPL-2.0
/*
 * Unloading and reloading vfio_iommu_rust: refused while a container uses it, clean otherwise.
 * Runs against our backend only (type1 is built in to this test's question).
 */
#include <sys/syscall.h>
#include "kselftest_harness.h"
#include "vfio_test.h"

static int delete_module(const char *name)
{
	return syscall(SYS_delete_module, name, O_NONBLOCK);
}

static int load_module(void)
{
	int fd = open(env_str("VFIO_RUST_KO"), O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -1;
	ret = syscall(SYS_finit_module, fd, "", 0);
	close(fd);
	return ret;
}

TEST(unload_idle)
{
	ASSERT_EQ(0, module_refcnt(RUST_MODULE));
	ASSERT_EQ(0, delete_module(RUST_MODULE));
	EXPECT_EQ(-1, module_refcnt(RUST_MODULE));
	ASSERT_EQ(0, load_module());
	EXPECT_EQ(0, module_refcnt(RUST_MODULE));
	/* Loaded again, it is the newest backend and serves the next container. */
}

TEST(unload_busy)
{
	int container, group;

	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU, &container,
				    &group));
	ASSERT_EQ(1, module_refcnt(RUST_MODULE));

	/* In use: the module loader refuses. */
	EXPECT_EQ(EWOULDBLOCK, vfio_errno(delete_module(RUST_MODULE)));
	EXPECT_EQ(1, module_refcnt(RUST_MODULE));
	/* The container still works. */
	EXPECT_EQ(1, ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));

	close(group);
	close(container);
	EXPECT_EQ(0, module_refcnt(RUST_MODULE));
	ASSERT_EQ(0, delete_module(RUST_MODULE));
	ASSERT_EQ(0, load_module());
}

/* After a reload, a new container is served by the reloaded module, not by type1. */
TEST(reloaded_module_serves)
{
	struct backend_refs before = backend_refs(), after;
	int container, group;

	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1_IOMMU, &container,
				    &group));
	after = backend_refs();
	EXPECT_EQ(before.rust + 1, after.rust);
	EXPECT_EQ(before.type1, after.type1);
	close(group);
	close(container);
}

TEST_HARNESS_MAIN
