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

/* The physically contiguous runs of @pages pages at @p, read from /proc/self/pagemap; -1 if not. */
static long pfn_runs(const char *p, size_t pages)
{
	uint64_t e, pfn, last = 0;
	long runs = 0;
	size_t i;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	for (i = 0; i < pages; i++) {
		if (pread(fd, &e, sizeof(e), ((uintptr_t)p / PAGE + i) * sizeof(e)) != sizeof(e) ||
		    !(e >> 63)) {
			close(fd);
			return -1;
		}
		pfn = e & ((1ULL << 55) - 1);
		if (!pfn) {	/* Hidden without CAP_SYS_ADMIN. */
			close(fd);
			return -1;
		}
		if (!i || pfn != last + 1)
			runs++;
		last = pfn;
	}
	close(fd);
	return runs;
}

/* The runs=, run_bytes= and one_run= of the total line of mappings; 0 if found. */
static int recorded_runs(const char *text, long long *runs, long long *bytes, long long *one)
{
	char line[256];
	const char *r;

	if (find_line(text, "total:", line, sizeof(line)) || !(r = strstr(line, " runs=")))
		return -1;
	return sscanf(r, " runs=%lld run_bytes=%lld one_run=%lld", runs, bytes, one) == 3 ? 0 : -1;
}

/* What the record of a mapping of @pages pages in @runs runs should be: kept if at most one per 2. */
static long long expect_recorded(long runs, size_t pages)
{
	return runs <= (long)pages / 2 ? runs : 0;
}

/*
 * A mapping of 2 MiB or more keeps the record of the runs it pinned and mapped (pinned_runs.rs),
 * which unmapping uses and frees: one record per physically contiguous run, as
 * /proc/self/pagemap shows the memory, if there are at most one per 2 pages, else none, in 8
 * bytes each; and a mapping of one run is counted as one (one_run=), recorded or not. Three
 * mappings: 8 MiB asked to be THP (a few runs where THP is on), 8 MiB whose pages are those of
 * another buffer taken 7 apart (mremap), which are almost never contiguous (no record), and 1 MiB
 * of the THP memory (one run where THP is on), too small to be recorded. VmLck is asserted on
 * both backends, the pins at teardown; the edu device's DMA through such mappings is dma_test's
 * and device_dma_test's.
 */
TEST_F(observe, pinned_runs)
{
	const size_t big = 8 << 20, small = 1 << 20, pages = big / PAGE;
	const unsigned long long at = 0x10000000ULL;
	long long runs = -1, bytes = -1, one = -1, want;
	char *raw, *thp, *src, *mixed, *text;
	long counted[3] = { 0, 0, 0 };
	size_t i;

	/* 2 MiB aligned, for THP. */
	raw = mmap(NULL, big + small + (2 << 20), PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, raw);
	thp = (char *)(((uintptr_t)raw + (2 << 20) - 1) & ~(uintptr_t)((2 << 20) - 1));
	madvise(thp, big, MADV_HUGEPAGE);
	memset(thp, 1, big + small);
	src = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		   -1, 0);
	mixed = mmap(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, src);
	ASSERT_NE(MAP_FAILED, mixed);
	for (i = 0; i < pages; i++)
		ASSERT_NE(MAP_FAILED, mremap(src + (i * 7 % pages) * PAGE, PAGE, PAGE,
					     MREMAP_MAYMOVE | MREMAP_FIXED, mixed + i * PAGE));
	ASSERT_EQ(0, dma_map(self->o.container, at, (uintptr_t)thp, big, RW));
	ASSERT_EQ(0, dma_map(self->o.container, at + big, (uintptr_t)mixed, big, RW));
	ASSERT_EQ(0, dma_map(self->o.container, at + 2 * big, (uintptr_t)thp + big, small, RW));
	EXPECT_EQ((long long)(2 * big + small) / 1024, locked_vm_kb());
	if (self->o.backend == BACKEND_RUST) {
		counted[0] = pfn_runs(thp, pages);
		counted[1] = pfn_runs(mixed, pages);
		counted[2] = pfn_runs(thp + big, small / PAGE);
		ASSERT_LT(0, counted[0]);
		ASSERT_LT(0, counted[1]);
		ASSERT_LT(0, counted[2]);
		want = expect_recorded(counted[0], pages) + expect_recorded(counted[1], pages);
		text = O_FILE("mappings");
		ASSERT_EQ(0, recorded_runs(text, &runs, &bytes, &one)) TH_LOG("%s", text);
		EXPECT_EQ(want, runs) TH_LOG("pagemap: %ld and %ld runs in %zu pages", counted[0],
					     counted[1], pages);
		/* 8 bytes a record, in an allocation of their size. */
		EXPECT_EQ(8 * runs, bytes);
		EXPECT_EQ((counted[0] == 1) + (counted[1] == 1) + (counted[2] == 1), one);
		fprintf(stderr, "# pinned_runs: 8 MiB THP in %ld runs, 8 MiB mixed in %ld, 1 MiB in "
			"%ld; %lld recorded in %lld bytes; one_run=%lld\n", counted[0], counted[1],
			counted[2], runs, bytes, one);
	}
	ASSERT_EQ(0, dma_unmap(self->o.container, at, big, 0, NULL));
	if (self->o.backend == BACKEND_RUST) {
		text = O_FILE("mappings");
		ASSERT_EQ(0, recorded_runs(text, &runs, &bytes, &one)) TH_LOG("%s", text);
		EXPECT_EQ(expect_recorded(counted[1], pages), runs);
		EXPECT_EQ((counted[1] == 1) + (counted[2] == 1), one);
	}
	EXPECT_EQ((long long)(big + small) / 1024, locked_vm_kb());
	ASSERT_EQ(0, dma_unmap(self->o.container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL));
	EXPECT_EQ(0, locked_vm_kb());
	if (self->o.backend == BACKEND_RUST) {
		text = O_FILE("mappings");
		ASSERT_EQ(0, recorded_runs(text, &runs, &bytes, &one)) TH_LOG("%s", text);
		EXPECT_EQ(0, runs);
		EXPECT_EQ(0, bytes);
		EXPECT_EQ(0, one);
	}
	munmap(raw, big + small + (2 << 20));
	munmap(src, big);
	munmap(mixed, big);
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
