// SPDX-License-Identifier: GPL-2.0
/*
 * What an operator sees (Documentation/observability.rst) of a container with an edu (vfio-pci)
 * group: the debugfs files agree with what the test did, and the trace events fire with the right
 * fields, read from tracefs. Against both backends: type1 has neither, which is asserted, and the
 * ioctls are the same, so the VFIO results are asserted for both. observe_vendor_test.c does the
 * same with a vendor (mdev) device.
 */
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/capability.h>
#include "kselftest_harness.h"
#include "observe_fixture.h"

/* A container with the first edu device's IOMMU group. */
FIXTURE(observe) {
	struct observed o;
};

FIXTURE_SETUP(observe)
{
	observed_open(_metadata, &self->o, "VFIO_TEST_GROUP");
}

FIXTURE_TEARDOWN(observe)
{
	observed_teardown(_metadata, &self->o);
}

/* The directory, its five read-only files, root only; gone with the container. */
TEST_F(observe, layout)
{
	static const char *const files[] = { "mappings", "groups", "accounting", "dirty", "vendor" };
	char path[512];
	struct stat st;
	unsigned int i;
	pid_t child;
	int status;

	if (self->o.backend == BACKEND_TYPE1)
		return;	/* Asserted at setup: nothing of ours. */
	ASSERT_EQ(0, access(VIR_EVENTS "/vir_map/format", R_OK));
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", self->o.dir, files[i]);
		ASSERT_EQ(0, stat(path, &st)) TH_LOG("%s", path);
		EXPECT_TRUE(S_ISREG(st.st_mode));
		EXPECT_EQ(0400, st.st_mode & 07777) TH_LOG("%s: mode %o", path, st.st_mode & 07777);
	}
	/* An unprivileged user cannot read them. */
	snprintf(path, sizeof(path), "%s/mappings", self->o.dir);
	child = fork();
	ASSERT_LE(0, child);
	if (child == 0) {
		if (setgid(1000) || setuid(1000))
			_exit(2);
		_exit(open(path, O_RDONLY) < 0 && errno == EACCES ? 0 : 1);
	}
	ASSERT_EQ(child, waitpid(child, &status, 0));
	EXPECT_EQ(0, WEXITSTATUS(status));
	/* The container's directory goes with it, the module's stays. */
	observed_close(_metadata, &self->o);
	EXPECT_EQ(0, access(VIR_DEBUGFS, F_OK));
}

/* A mapping appears with its pages and charge, and disappears after its unmap. */
TEST_F(observe, mappings_and_accounting)
{
	char line[256], want[256], *text;
	long long avail = 0;

	if (self->o.backend == BACKEND_RUST) {
		text = O_FILE("mappings");
		EXPECT_EQ(0, find_line(text, "total: mappings=0 pages=0 charged=0 vendor_pins=0", line,
				       sizeof(line))) TH_LOG("%s", text);
		avail = key_value(O_FILE("accounting"), "dma_avail");
		EXPECT_LT(0, avail);
	}
	ASSERT_EQ(0, dma_map(self->o.container, IOVA, (uintptr_t)self->o.buf, 16 * PAGE, RW));
	ASSERT_EQ(0, dma_map(self->o.container, 2 * IOVA, (uintptr_t)self->o.buf + 32 * PAGE, 4 * PAGE,
			     VFIO_DMA_MAP_FLAG_READ));
	EXPECT_EQ(80, locked_vm_kb());
	if (self->o.backend == BACKEND_RUST) {
		text = O_FILE("mappings");
		snprintf(want, sizeof(want), "%#llx-%#llx %#llx rw 16 16 0 yes", IOVA,
			 IOVA + 16 * PAGE - 1, (unsigned long long)(uintptr_t)self->o.buf);
		EXPECT_EQ(0, find_line(text, want, line, sizeof(line))) TH_LOG("%s", text);
		snprintf(want, sizeof(want), "%#llx-%#llx %#llx r- 4 4 0 yes", 2 * IOVA,
			 2 * IOVA + 4 * PAGE - 1, (unsigned long long)(uintptr_t)self->o.buf + 32 * PAGE);
		EXPECT_EQ(0, find_line(text, want, line, sizeof(line))) TH_LOG("%s", text);
		EXPECT_EQ(0, find_line(text, "total: mappings=2 pages=20 charged=20 vendor_pins=0 "
				       "iommu_mapped=2 shown=2", line, sizeof(line))) TH_LOG("%s", text);
		log_lines(_metadata, "mappings", text);
		text = O_FILE("accounting");
		log_lines(_metadata, "accounting", text);
		EXPECT_EQ(2, key_value(text, "mappings"));
		EXPECT_EQ(avail - 2, key_value(text, "dma_avail"));
		EXPECT_EQ(20, key_value(text, "charged"));
		EXPECT_EQ(20, key_value(text, "iommu_locked"));
		EXPECT_EQ(0, key_value(text, "vendor_own"));
		EXPECT_EQ(0, find_line(text, "invariant: ok", line, sizeof(line))) TH_LOG("%s", text);
		/* The owner is this process, whose locked_vm is what VmLck shows. */
		snprintf(want, sizeof(want), "owner pid=%d comm=observe_test charged=20 locked_vm=20",
			 getpid());
		EXPECT_EQ(0, find_line(text, want, line, sizeof(line))) TH_LOG("%s", text);
	}
	ASSERT_EQ(0, dma_unmap(self->o.container, IOVA, 16 * PAGE, 0, NULL));
	EXPECT_EQ(16, locked_vm_kb());
	if (self->o.backend == BACKEND_RUST) {
		text = O_FILE("mappings");
		snprintf(want, sizeof(want), "%#llx-", IOVA);
		EXPECT_NE(0, find_line(text, want, line, sizeof(line))) TH_LOG("%s", text);
		EXPECT_EQ(0, find_line(text, "total: mappings=1 pages=4 charged=4", line, sizeof(line)));
		text = O_FILE("accounting");
		EXPECT_EQ(4, key_value(text, "charged"));
		EXPECT_EQ(4, key_value(text, "iommu_locked"));
		EXPECT_EQ(avail - 1, key_value(text, "dma_avail"));
	}
	ASSERT_EQ(0, dma_unmap(self->o.container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL));
	if (self->o.backend == BACKEND_RUST) {
		text = O_FILE("accounting");
		EXPECT_EQ(0, key_value(text, "charged"));
		EXPECT_EQ(0, key_value(text, "iommu_locked"));
		EXPECT_EQ(0, find_line(text, "invariant: ok", line, sizeof(line)));
		EXPECT_EQ(avail, key_value(text, "dma_avail"));
	}
}

/* The group, its domain with the page sizes GET_INFO reports, the usable IOVA space. */
TEST_F(observe, groups)
{
	struct vfio_iommu_type1_info info = { .argsz = sizeof(info) };
	char line[256], want[256], *text;

	ASSERT_EQ(0, ioctl(self->o.container, VFIO_IOMMU_GET_INFO, &info));
	if (self->o.backend == BACKEND_TYPE1)
		return;
	text = O_FILE("groups");
	log_lines(_metadata, "groups", text);
	EXPECT_EQ(0, find_line(text, "version: v2", line, sizeof(line))) TH_LOG("%s", text);
	EXPECT_EQ(1, key_value(text, "groups"));
	snprintf(want, sizeof(want), "group %d: iommu domain=0 dirty_scope=all",
		 env_int("VFIO_TEST_GROUP"));
	EXPECT_EQ(0, find_line(text, want, line, sizeof(line))) TH_LOG("%s", text);
	EXPECT_EQ(1, key_value(text, "domains"));
	snprintf(want, sizeof(want), "domain 0: groups=1 page_sizes=%#llx aperture=0x0-",
		 (unsigned long long)info.iova_pgsizes);
	EXPECT_EQ(0, find_line(text, want, line, sizeof(line))) TH_LOG("%s", text);
	snprintf(want, sizeof(want), "page_sizes: %#llx (smallest 0x1000)",
		 (unsigned long long)info.iova_pgsizes);
	EXPECT_EQ(0, find_line(text, want, line, sizeof(line))) TH_LOG("%s", text);
	/* VT-d: the MSI window is a hole in the usable space. */
	EXPECT_EQ(0, find_line(text, "iova_ranges: 0x0-0xfedfffff 0xfef00000-", line, sizeof(line)))
		TH_LOG("%s", text);
}

/* vir_map and vir_unmap, for a map, a refused map, an unmap and the container's release. */
TEST_F(observe, trace_map_unmap)
{
	unsigned long long container, iova, size, pinned, charged, ns, unpinned, uncharged;
	int result, bitmap, release;
	char fields[512], *trace;

	if (self->o.backend == BACKEND_RUST)
		ASSERT_EQ(0, trace_events(1));
	ASSERT_EQ(0, dma_map(self->o.container, IOVA, (uintptr_t)self->o.buf, 8 * PAGE, RW));
	ASSERT_EQ(EEXIST, dma_map(self->o.container, IOVA + PAGE, (uintptr_t)self->o.buf, PAGE, RW));
	ASSERT_EQ(0, dma_unmap(self->o.container, IOVA, 8 * PAGE, 0, NULL));
	ASSERT_EQ(0, dma_map(self->o.container, 2 * IOVA, (uintptr_t)self->o.buf, 2 * PAGE, RW));
	observed_close(_metadata, &self->o);
	if (self->o.backend == BACKEND_TYPE1)
		return;
	trace = slurp(VIR_TRACE);
	ASSERT_NE(NULL, trace);
	ASSERT_EQ(0, trace_event(trace, "vir_map", self->o.id, 0, fields, sizeof(fields)))
		TH_LOG("%s", trace);
	ASSERT_EQ(7, sscanf(fields, "container=%llu iova=%llx size=%llx pinned=%llu charged=%llu "
			    "ns=%llu result=%d", &container, &iova, &size, &pinned, &charged, &ns,
			    &result)) TH_LOG("%s", fields);
	EXPECT_EQ(IOVA, iova);
	EXPECT_EQ(8 * PAGE, size);
	EXPECT_EQ(8, pinned);
	EXPECT_EQ(8, charged);
	EXPECT_LT(0, ns);
	EXPECT_EQ(0, result);
	/* The refused map: nothing pinned or charged, -EEXIST. */
	ASSERT_EQ(0, trace_event(trace, "vir_map", self->o.id, 1, fields, sizeof(fields)));
	ASSERT_EQ(7, sscanf(fields, "container=%llu iova=%llx size=%llx pinned=%llu charged=%llu "
			    "ns=%llu result=%d", &container, &iova, &size, &pinned, &charged, &ns,
			    &result)) TH_LOG("%s", fields);
	EXPECT_EQ(IOVA + PAGE, iova);
	EXPECT_EQ(0, pinned);
	EXPECT_EQ(0, charged);
	EXPECT_EQ(-EEXIST, result);
	ASSERT_EQ(0, trace_event(trace, "vir_unmap", self->o.id, 0, fields, sizeof(fields)));
	ASSERT_EQ(7, sscanf(fields, "container=%llu iova=%llx size=%llx bitmap=%d unpinned=%llu "
			    "uncharged=%llu release=%d", &container, &iova, &size, &bitmap, &unpinned,
			    &uncharged, &release)) TH_LOG("%s", fields);
	EXPECT_EQ(IOVA, iova);
	EXPECT_EQ(8 * PAGE, size);
	EXPECT_EQ(0, bitmap);
	EXPECT_EQ(8, unpinned);
	EXPECT_EQ(8, uncharged);
	EXPECT_EQ(0, release);
	/* The mapping left when the container closed went with it. */
	ASSERT_EQ(0, trace_event(trace, "vir_unmap", self->o.id, 1, fields, sizeof(fields)))
		TH_LOG("%s", trace);
	ASSERT_EQ(7, sscanf(fields, "container=%llu iova=%llx size=%llx bitmap=%d unpinned=%llu "
			    "uncharged=%llu release=%d", &container, &iova, &size, &bitmap, &unpinned,
			    &uncharged, &release)) TH_LOG("%s", fields);
	EXPECT_EQ(2 * IOVA, iova);
	EXPECT_EQ(2, unpinned);
	EXPECT_EQ(2, uncharged);
	EXPECT_EQ(1, release);
	EXPECT_EQ(3, trace_count(trace, "vir_map", self->o.id));
	EXPECT_EQ(2, trace_count(trace, "vir_unmap", self->o.id));
	free(trace);
}

/*
 * The first worked example of observability.rst, "who holds locked memory": a process with
 * RLIMIT_MEMLOCK of 24 pages has a container holding 16 pages; a second container's map of 16
 * pages fails with ENOMEM. Its accounting shows nothing charged, the first container's the 16
 * pages and the process's locked_vm; the trace shows the refused map.
 */
TEST(worked_example_locked)
{
	struct rlimit lim = { 24 * PAGE, 24 * PAGE };
	char dir1[256], dir2[256], fields[512], line[256], want[256], *text, *trace;
	int c1, g1, c2, g2, err;
	long id1 = 0, id2 = 0;
	char *buf = alloc_pages(64);
	bool rust = vfio_backend() == BACKEND_RUST;

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, drop_cap_ipc_lock());
	ASSERT_EQ(0, setrlimit(RLIMIT_MEMLOCK, &lim));
	if (rust)
		ASSERT_EQ(0, trace_events(1));
	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU, &c1, &g1));
	ASSERT_EQ(0, dma_map(c1, IOVA, (uintptr_t)buf, 16 * PAGE, RW));
	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_GROUP2"), VFIO_TYPE1v2_IOMMU, &c2, &g2));
	err = dma_map(c2, IOVA, (uintptr_t)buf + 32 * PAGE, 16 * PAGE, RW);
	EXPECT_EQ(ENOMEM, err);
	RECORD("worked_example_locked", "second_map %d", err);
	EXPECT_EQ(64, locked_vm_kb());
	if (rust) {
		DIR *d = opendir(VIR_DEBUGFS);
		struct dirent *e;
		char prefix[32];
		long ids[3] = { 0, 0, 0 };
		int n = 0;

		/* This process's two containers: the lower id is the first one. */
		ASSERT_NE(NULL, d);
		snprintf(prefix, sizeof(prefix), "pid%d-c", getpid());
		while ((e = readdir(d)))
			if (!strncmp(e->d_name, prefix, strlen(prefix)) && n < 3)
				ids[n++] = strtol(e->d_name + strlen(prefix), NULL, 10);
		closedir(d);
		ASSERT_EQ(2, n);
		id1 = ids[0] < ids[1] ? ids[0] : ids[1];
		id2 = ids[0] < ids[1] ? ids[1] : ids[0];
		snprintf(dir1, sizeof(dir1), "%s/pid%d-c%ld", VIR_DEBUGFS, getpid(), id1);
		snprintf(dir2, sizeof(dir2), "%s/pid%d-c%ld", VIR_DEBUGFS, getpid(), id2);
		text = container_file(dir1, "accounting");
		ASSERT_NE(NULL, text);
		log_lines(_metadata, dir1 + strlen(VIR_DEBUGFS) + 1, text);
		EXPECT_EQ(16, key_value(text, "charged"));
		snprintf(want, sizeof(want), "owner pid=%d comm=observe_test charged=16 locked_vm=16",
			 getpid());
		EXPECT_EQ(0, find_line(text, want, line, sizeof(line)));
		free(text);
		text = container_file(dir2, "accounting");
		ASSERT_NE(NULL, text);
		log_lines(_metadata, dir2 + strlen(VIR_DEBUGFS) + 1, text);
		EXPECT_EQ(0, key_value(text, "charged"));
		EXPECT_EQ(0, key_value(text, "mappings"));
		free(text);
		text = container_file(dir1, "mappings");
		ASSERT_NE(NULL, text);
		log_lines(_metadata, "mappings", text);
		free(text);
		trace = slurp(VIR_TRACE);
		ASSERT_NE(NULL, trace);
		log_trace(_metadata, trace, id1);
		log_trace(_metadata, trace, id2);
		ASSERT_EQ(0, trace_event(trace, "vir_map", id2, 0, fields, sizeof(fields)));
		snprintf(want, sizeof(want), "container=%ld iova=%#llx size=0x10000 pinned=0 charged=0 ",
			 id2, IOVA);
		EXPECT_EQ(0, strncmp(want, fields, strlen(want))) TH_LOG("%s", fields);
		EXPECT_NE(NULL, strstr(fields, " result=-12"));
		free(trace);
		trace_events(0);
	}
	close(g2);
	close(c2);
	close(g1);
	close(c1);
	EXPECT_EQ(0, locked_vm_kb());
}

TEST_HARNESS_MAIN
