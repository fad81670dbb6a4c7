// SPDX-License-Identifier: GPL-2.0
/*
 * Unloading and reloading vfio_iommu_rust: refused while a container uses it, clean otherwise.
 * Runs against our backend only (type1 is built in to this test's question).
 *
 * And the module as `make install` installed it in the guest (lib/modules/<release>/updates and
 * /etc/modprobe.d/vfio-iommu-rust.conf), driven by kmod's modprobe (VIR_MODPROBE): loading vfio
 * loads type1 and then us (recorded by /init at boot, VIR_BOOT_MODPROBE), `modprobe -r` unloads
 * us alone, and loading type1 loads us after it, so that we serve new containers.
 */
#include <sys/syscall.h>
#include <sys/wait.h>
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

/*
 * Opens a container of @magic on the group @group_id and expects it served by us (@ours) or by
 * type1, by module reference; returns 0 or the errno of the step that failed (expected, not
 * asserted: a caller may have a module parameter to restore).
 */
static int open_served(struct __test_metadata *_metadata, int group_id, unsigned long magic,
		       bool ours, int *container, int *group)
{
	struct backend_refs before = backend_refs(), after;
	int err = open_container(group_id, magic, container, group);

	EXPECT_EQ(0, err);
	after = backend_refs();
	EXPECT_EQ(before.rust + ours, after.rust);
	EXPECT_EQ(before.type1 + !ours, after.type1);
	return err;
}

/* After a reload, a new container is served by the reloaded module, not by type1. */
TEST(reloaded_module_serves)
{
	int container, group;

	open_served(_metadata, env_int("VFIO_TEST_GROUP"), VFIO_TYPE1_IOMMU, true, &container,
		    &group);
	close(group);
	close(container);
}

/*
 * serve=N: a new container goes on to type1 with us loaded, while a container we already serve
 * stays ours and keeps working (maps, unmaps); serve=Y: the next container is ours again.
 */
TEST(serve_param_stands_aside)
{
	int ours, ours_group, theirs, theirs_group, again, again_group;
	long pins = pins_outstanding(), type1_refs;
	void *buf = alloc_pages(1);
	__u64 unmapped = 0;

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, open_served(_metadata, env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU, true,
				 &ours, &ours_group));

	ASSERT_EQ(0, write_module_param(RUST_MODULE, "serve", "N"));
	type1_refs = module_refcnt(TYPE1_MODULE);
	/* Before VFIO_SET_IOMMU the core still answers yes, from type1 (no ASSERT until Y). */
	theirs = open("/dev/vfio/vfio", O_RDWR);
	EXPECT_EQ(1, ioctl(theirs, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
	close(theirs);
	open_served(_metadata, env_int("VFIO_TEST_GROUP2"), VFIO_TYPE1v2_IOMMU, false, &theirs,
		    &theirs_group);
	/* Ours is still served by us, and answers as ours. */
	EXPECT_EQ(1, ioctl(ours, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL));
	EXPECT_EQ(0, dma_map(ours, 0x100000, (uintptr_t)buf, PAGE, RW));
	EXPECT_EQ(0, dma_unmap(ours, 0x100000, PAGE, 0, &unmapped));
	EXPECT_EQ(PAGE, unmapped);
	close(theirs_group);
	close(theirs);
	EXPECT_EQ(type1_refs, module_refcnt(TYPE1_MODULE));

	ASSERT_EQ(0, write_module_param(RUST_MODULE, "serve", "Y"));
	open_served(_metadata, env_int("VFIO_TEST_GROUP2"), VFIO_TYPE1v2_IOMMU, true, &again,
		    &again_group);
	close(again_group);
	close(again);
	close(ours_group);
	close(ours);
	EXPECT_EQ(0, module_refcnt(RUST_MODULE));
	EXPECT_EQ(pins, pins_outstanding());
	EXPECT_EQ(0, locked_vm_kb());
}

/* Runs kmod's modprobe with @args, its output as TAP comments (stderr: the test process _exit()s
 * without flushing stdout); returns its exit status. */
static int modprobe(const char *args)
{
	char cmd[256], line[256];
	FILE *p;
	int status;

	snprintf(cmd, sizeof(cmd), "%s %s 2>&1", env_str("VIR_MODPROBE"), args);
	fprintf(stderr, "# %s\n", cmd);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	while (fgets(line, sizeof(line), p))
		fprintf(stderr, "#   %s", line);
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The line number (from 0) of @module in @file's lines of names (/proc/modules: newest first),
 * or -1. */
static int module_pos(const char *file, const char *module)
{
	char line[256];
	int n = 0, pos = -1;
	FILE *f = fopen(file, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, " \n")] = 0;
		if (!strcmp(line, module)) {
			pos = n;
			break;
		}
		n++;
	}
	fclose(f);
	return pos;
}

/*
 * At boot, before anything else was loaded, /init ran `modprobe vfio`: vfio's own softdep loads
 * type1, the installed one loads us after it (so the VFIO core asks us first).
 */
TEST(modprobe_vfio_at_boot)
{
	const char *rec = env_str("VIR_BOOT_MODPROBE");
	int vfio = module_pos(rec, "vfio");
	int type1 = module_pos(rec, TYPE1_MODULE);
	int rust = module_pos(rec, RUST_MODULE);

	/* Its exit status (which does not count a failed softdep), then the modules loaded. */
	EXPECT_EQ(0, module_pos(rec, "modprobe_vfio_exit_0"));
	ASSERT_LE(0, vfio);
	ASSERT_LE(0, type1) TH_LOG("modprobe vfio did not load " TYPE1_MODULE);
	ASSERT_LE(0, rust) TH_LOG("modprobe vfio did not load " RUST_MODULE);
	/* /proc/modules lists the newest module first. */
	EXPECT_LT(type1, vfio);
	EXPECT_LT(rust, type1) TH_LOG("loaded before " TYPE1_MODULE);
}

/* Puts both backends back (ours after type1) when a test below leaves one unloaded. */
FIXTURE(installed) {};
FIXTURE_SETUP(installed)
{
	ASSERT_EQ(0, module_refcnt(TYPE1_MODULE));
	ASSERT_EQ(0, module_refcnt(RUST_MODULE));
}
FIXTURE_TEARDOWN(installed)
{
	modprobe(TYPE1_MODULE);
	modprobe(RUST_MODULE);
}

/* modprobe -r vfio_iommu_rust unloads us alone; modprobe vfio_iommu_rust finds us in updates/. */
TEST_F(installed, modprobe_remove)
{
	ASSERT_EQ(0, modprobe("-r " RUST_MODULE));
	EXPECT_EQ(-1, module_refcnt(RUST_MODULE));
	EXPECT_EQ(0, module_refcnt(TYPE1_MODULE));
	EXPECT_LT(0, module_refcnt("vfio"));
	ASSERT_EQ(0, modprobe(RUST_MODULE));
	EXPECT_EQ(0, module_refcnt(RUST_MODULE));
}

/*
 * modprobe -r vfio_iommu_type1 unloads us first (a post softdep is removed before its module);
 * modprobe vfio_iommu_type1 loads us after it, and a new container is ours.
 */
TEST_F(installed, modprobe_type1_loads_us_after)
{
	int container, group;

	ASSERT_EQ(0, modprobe("-r " TYPE1_MODULE));
	EXPECT_EQ(-1, module_refcnt(RUST_MODULE));
	EXPECT_EQ(-1, module_refcnt(TYPE1_MODULE));
	ASSERT_EQ(0, modprobe(TYPE1_MODULE));
	ASSERT_EQ(0, module_refcnt(TYPE1_MODULE));
	ASSERT_EQ(0, module_refcnt(RUST_MODULE));
	EXPECT_LT(module_pos("/proc/modules", RUST_MODULE), module_pos("/proc/modules", TYPE1_MODULE));

	open_served(_metadata, env_int("VFIO_TEST_GROUP"), VFIO_TYPE1_IOMMU, true, &container,
		    &group);
	close(group);
	close(container);
}

TEST_HARNESS_MAIN
