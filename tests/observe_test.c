// SPDX-License-Identifier: GPL-2.0
/*
 * What an operator sees (Documentation/observability.rst): the debugfs files of a container agree
 * with what the test did, and the trace events fire with the right fields, read from tracefs. Against
 * both backends: type1 has neither, which is asserted, and the ioctls are the same, so the VFIO
 * results are asserted for both.
 */
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/capability.h>
#include "kselftest_harness.h"
#include "mdev/vir_mdev.h"
#include "observe.h"

#define IOVA 0x100000ULL

static int vmdev(int dev, unsigned long op, __u64 iova, __u64 count, __u32 flags, void *buf)
{
	struct vir_mdev_cmd cmd = {
		.iova = iova, .count = count, .flags = flags, .value = 0x42, .buf = (uintptr_t)buf,
	};

	return vfio_errno(ioctl(dev, op, &cmd));
}

/* VIR_MDEV_MISBEHAVE: 0 honours dma_unmap notifications, 1 ignores them. */
static int misbehave(int dev, __u32 value)
{
	struct vir_mdev_cmd cmd = { .value = value };

	return vfio_errno(ioctl(dev, VIR_MDEV_MISBEHAVE, &cmd));
}

static int drop_cap_ipc_lock(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return errno;
	d[0].effective &= ~(1U << CAP_IPC_LOCK);
	d[0].permitted &= ~(1U << CAP_IPC_LOCK);
	return syscall(SYS_capset, &h, d) ? errno : 0;
}

/* Logs every line of @text, prefixed with @name (the worked examples of observability.rst). */
static void log_lines(struct __test_metadata *_metadata, const char *name, const char *text)
{
	const char *p = text, *end;

	while (p && *p) {
		end = strchrnul(p, '\n');
		TH_LOG("%s: %.*s", name, (int)(end - p), p);
		p = *end ? end + 1 : NULL;
	}
}

/* Logs the trace buffer's events of container @id. */
static void log_trace(struct __test_metadata *_metadata, const char *trace, long id)
{
	char needle[48];
	const char *p = trace, *end, *event;

	snprintf(needle, sizeof(needle), ": container=%ld ", id);
	while (p && *p) {
		end = strchrnul(p, '\n');
		event = memmem(p, end - p, needle, strlen(needle));
		if (event) {
			while (event > p && event[-1] != ' ')
				event--;
			TH_LOG("trace: %.*s", (int)(end - event), event);
		}
		p = *end ? end + 1 : NULL;
	}
}

/* type1 (our module not loaded): none of our debugfs files or trace events exist. */
static int nothing_of_ours(void)
{
	return access(VIR_DEBUGFS, F_OK) && errno == ENOENT &&
	       access(VIR_EVENTS, F_OK) && errno == ENOENT;
}

/* A container with the first edu device's IOMMU group, or with an mdev group. */
FIXTURE(observe) {
	int container;
	int group;
	long id;
	char dir[256];
	enum vfio_backend backend;
	char *buf;
	long pins_before;
};

static void observe_open(struct __test_metadata *_metadata, FIXTURE_DATA(observe) *self,
			 const char *group_env)
{
	struct backend_refs before = backend_refs();

	self->backend = vfio_backend();
	self->pins_before = pins_outstanding();
	ASSERT_EQ(0, open_container(env_int(group_env), VFIO_TYPE1v2_IOMMU, &self->container,
				    &self->group));
	ASSERT_SERVED_SINCE(before);
	self->buf = alloc_pages(64);
	ASSERT_NE(NULL, self->buf);
	if (self->backend == BACKEND_TYPE1) {
		ASSERT_TRUE(nothing_of_ours());
		return;
	}
	self->id = container_dir(self->dir, sizeof(self->dir));
	ASSERT_LT(0, self->id) TH_LOG("no single directory pid%d-c<id> in " VIR_DEBUGFS, getpid());
}

FIXTURE_SETUP(observe)
{
	self->container = self->group = -1;
	observe_open(_metadata, self, "VFIO_TEST_GROUP");
}

/* Closes the container (if the test did not) and checks that its directory went with it. */
static void observe_close(struct __test_metadata *_metadata, FIXTURE_DATA(observe) *self)
{
	if (self->group >= 0)
		close(self->group);
	if (self->container >= 0)
		close(self->container);
	self->group = self->container = -1;
	if (self->backend == BACKEND_RUST) {
		EXPECT_NE(0, access(self->dir, F_OK));
		EXPECT_EQ(0, container_dir(self->dir, sizeof(self->dir)));
	}
}

FIXTURE_TEARDOWN(observe)
{
	observe_close(_metadata, self);
	if (self->backend == BACKEND_RUST)
		trace_events(0);
	EXPECT_EQ(self->pins_before, pins_outstanding());
	EXPECT_EQ(0, locked_vm_kb());
}

/* The file of the container's directory, read whole into a static buffer (one at a time). */
#define FILE_OF(name) ({							\
	static char *__text;							\
	free(__text);								\
	__text = container_file(self->dir, name);				\
	ASSERT_NE(NULL, __text) TH_LOG("cannot read %s/%s", self->dir, name);	\
	__text;									\
})

/* The directory, its five read-only files, root only; gone with the container. */
TEST_F(observe, layout)
{
	static const char *const files[] = { "mappings", "groups", "accounting", "dirty", "vendor" };
	char path[512];
	struct stat st;
	unsigned int i;
	pid_t child;
	int status;

	if (self->backend == BACKEND_TYPE1)
		return;	/* Asserted at setup: nothing of ours. */
	ASSERT_EQ(0, access(VIR_EVENTS "/vir_map/format", R_OK));
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", self->dir, files[i]);
		ASSERT_EQ(0, stat(path, &st)) TH_LOG("%s", path);
		EXPECT_TRUE(S_ISREG(st.st_mode));
		EXPECT_EQ(0400, st.st_mode & 07777) TH_LOG("%s: mode %o", path, st.st_mode & 07777);
	}
	/* An unprivileged user cannot read them. */
	snprintf(path, sizeof(path), "%s/mappings", self->dir);
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
	observe_close(_metadata, self);
	EXPECT_EQ(0, access(VIR_DEBUGFS, F_OK));
}

/* A mapping appears with its pages and charge, and disappears after its unmap. */
TEST_F(observe, mappings_and_accounting)
{
	char line[256], want[256], *text;
	long long avail = 0;

	if (self->backend == BACKEND_RUST) {
		text = FILE_OF("mappings");
		EXPECT_EQ(0, find_line(text, "total: mappings=0 pages=0 charged=0 vendor_pins=0", line,
				       sizeof(line))) TH_LOG("%s", text);
		avail = key_value(FILE_OF("accounting"), "dma_avail");
		EXPECT_LT(0, avail);
	}
	ASSERT_EQ(0, dma_map(self->container, IOVA, (uintptr_t)self->buf, 16 * PAGE, RW));
	ASSERT_EQ(0, dma_map(self->container, 2 * IOVA, (uintptr_t)self->buf + 32 * PAGE, 4 * PAGE,
			     VFIO_DMA_MAP_FLAG_READ));
	EXPECT_EQ(80, locked_vm_kb());
	if (self->backend == BACKEND_RUST) {
		text = FILE_OF("mappings");
		snprintf(want, sizeof(want), "%#llx-%#llx %#llx rw 16 16 0 yes", IOVA,
			 IOVA + 16 * PAGE - 1, (unsigned long long)(uintptr_t)self->buf);
		EXPECT_EQ(0, find_line(text, want, line, sizeof(line))) TH_LOG("%s", text);
		snprintf(want, sizeof(want), "%#llx-%#llx %#llx r- 4 4 0 yes", 2 * IOVA,
			 2 * IOVA + 4 * PAGE - 1, (unsigned long long)(uintptr_t)self->buf + 32 * PAGE);
		EXPECT_EQ(0, find_line(text, want, line, sizeof(line))) TH_LOG("%s", text);
		EXPECT_EQ(0, find_line(text, "total: mappings=2 pages=20 charged=20 vendor_pins=0 "
				       "iommu_mapped=2 shown=2", line, sizeof(line))) TH_LOG("%s", text);
		log_lines(_metadata, "mappings", text);
		text = FILE_OF("accounting");
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
	ASSERT_EQ(0, dma_unmap(self->container, IOVA, 16 * PAGE, 0, NULL));
	EXPECT_EQ(16, locked_vm_kb());
	if (self->backend == BACKEND_RUST) {
		text = FILE_OF("mappings");
		snprintf(want, sizeof(want), "%#llx-", IOVA);
		EXPECT_NE(0, find_line(text, want, line, sizeof(line))) TH_LOG("%s", text);
		EXPECT_EQ(0, find_line(text, "total: mappings=1 pages=4 charged=4", line, sizeof(line)));
		text = FILE_OF("accounting");
		EXPECT_EQ(4, key_value(text, "charged"));
		EXPECT_EQ(4, key_value(text, "iommu_locked"));
		EXPECT_EQ(avail - 1, key_value(text, "dma_avail"));
	}
	ASSERT_EQ(0, dma_unmap(self->container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL));
	if (self->backend == BACKEND_RUST) {
		text = FILE_OF("accounting");
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

	ASSERT_EQ(0, ioctl(self->container, VFIO_IOMMU_GET_INFO, &info));
	if (self->backend == BACKEND_TYPE1)
		return;
	text = FILE_OF("groups");
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

	if (self->backend == BACKEND_RUST)
		ASSERT_EQ(0, trace_events(1));
	ASSERT_EQ(0, dma_map(self->container, IOVA, (uintptr_t)self->buf, 8 * PAGE, RW));
	ASSERT_EQ(EEXIST, dma_map(self->container, IOVA + PAGE, (uintptr_t)self->buf, PAGE, RW));
	ASSERT_EQ(0, dma_unmap(self->container, IOVA, 8 * PAGE, 0, NULL));
	ASSERT_EQ(0, dma_map(self->container, 2 * IOVA, (uintptr_t)self->buf, 2 * PAGE, RW));
	observe_close(_metadata, self);
	if (self->backend == BACKEND_TYPE1)
		return;
	trace = slurp(VIR_TRACE);
	ASSERT_NE(NULL, trace);
	ASSERT_EQ(0, trace_event(trace, "vir_map", self->id, 0, fields, sizeof(fields)))
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
	ASSERT_EQ(0, trace_event(trace, "vir_map", self->id, 1, fields, sizeof(fields)));
	ASSERT_EQ(7, sscanf(fields, "container=%llu iova=%llx size=%llx pinned=%llu charged=%llu "
			    "ns=%llu result=%d", &container, &iova, &size, &pinned, &charged, &ns,
			    &result)) TH_LOG("%s", fields);
	EXPECT_EQ(IOVA + PAGE, iova);
	EXPECT_EQ(0, pinned);
	EXPECT_EQ(0, charged);
	EXPECT_EQ(-EEXIST, result);
	ASSERT_EQ(0, trace_event(trace, "vir_unmap", self->id, 0, fields, sizeof(fields)));
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
	ASSERT_EQ(0, trace_event(trace, "vir_unmap", self->id, 1, fields, sizeof(fields)))
		TH_LOG("%s", trace);
	ASSERT_EQ(7, sscanf(fields, "container=%llu iova=%llx size=%llx bitmap=%d unpinned=%llu "
			    "uncharged=%llu release=%d", &container, &iova, &size, &bitmap, &unpinned,
			    &uncharged, &release)) TH_LOG("%s", fields);
	EXPECT_EQ(2 * IOVA, iova);
	EXPECT_EQ(2, unpinned);
	EXPECT_EQ(2, uncharged);
	EXPECT_EQ(1, release);
	EXPECT_EQ(3, trace_count(trace, "vir_map", self->id));
	EXPECT_EQ(2, trace_count(trace, "vir_unmap", self->id));
	free(trace);
}

/* An mdev (vir_mdev) container: vendor pins, dma_rw, dirty reports and notifications. */
FIXTURE(vendor) {
	FIXTURE_DATA(observe) o;
	int dev;
	int edu;
};

FIXTURE_SETUP(vendor)
{
	self->o.container = self->o.group = self->dev = self->edu = -1;
	observe_open(_metadata, &self->o, "VFIO_TEST_VMDEV_GROUP");
	self->dev = ioctl(self->o.group, VFIO_GROUP_GET_DEVICE_FD, env_str("VFIO_TEST_VMDEV"));
	ASSERT_LE(0, self->dev);
	if (self->o.backend == BACKEND_RUST)
		ASSERT_EQ(0, trace_events(1));
}

FIXTURE_TEARDOWN(vendor)
{
	if (self->edu >= 0)
		close(self->edu);
	if (self->dev >= 0) {
		misbehave(self->dev, 0);
		close(self->dev);
	}
	observe_close(_metadata, &self->o);
	if (self->o.backend == BACKEND_RUST)
		trace_events(0);
	EXPECT_EQ(self->o.pins_before, pins_outstanding());
	EXPECT_EQ(0, locked_vm_kb());
}

#define O_FILE(name) ({								\
	static char *__text;							\
	free(__text);								\
	__text = container_file(self->o.dir, name);				\
	ASSERT_NE(NULL, __text) TH_LOG("cannot read %s/%s", self->o.dir, name);	\
	__text;									\
})

/* Why a bitmap reported what it did: pins, dma_rw and their reports, in debugfs and trace events. */
TEST_F(vendor, dirty_reports)
{
	static char msg[] = "vfio_dma_rw";
	unsigned long long container, iova, size, count, bits_set, bytes, len;
	int result, group, write, unmap;
	char fields[512], line[256], want[256], *text, *trace;
	__u64 bits[1] = { 0 };
	bool rust = self->o.backend == BACKEND_RUST;

	ASSERT_EQ(0, dma_map(self->o.container, IOVA, (uintptr_t)self->o.buf, 64 * PAGE, RW));
	ASSERT_EQ(0, dirty_pages(self->o.container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_PIN, IOVA + PAGE, 1, VIR_MDEV_FLAG_WRITE, NULL));
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_PIN, IOVA + 5 * PAGE, 2, VIR_MDEV_FLAG_WRITE, NULL));
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_WRITE, IOVA + 12 * PAGE + 64, sizeof(msg), 0, msg));
	EXPECT_EQ(12, locked_vm_kb());
	if (rust) {
		text = O_FILE("dirty");
		EXPECT_EQ(0, find_line(text, "tracking: on", line, sizeof(line))) TH_LOG("%s", text);
		EXPECT_EQ(4096, key_value(text, "page_size"));
		EXPECT_EQ(3, key_value(text, "vendor_pinned"));
		EXPECT_EQ(1, key_value(text, "marked_pending"));
		EXPECT_EQ(0, key_value(text, "reports"));
		EXPECT_EQ(0, key_value(text, "groups_dirtying_all"));
		log_lines(_metadata, "dirty", text);
		text = O_FILE("mappings");
		snprintf(want, sizeof(want), "%#llx-%#llx %#llx rw 64 3 3 no", IOVA,
			 IOVA + 64 * PAGE - 1, (unsigned long long)(uintptr_t)self->o.buf);
		EXPECT_EQ(0, find_line(text, want, line, sizeof(line))) TH_LOG("%s", text);
		text = O_FILE("accounting");
		EXPECT_EQ(3, key_value(text, "charged"));
		EXPECT_EQ(0, key_value(text, "iommu_locked"));
		EXPECT_EQ(3, key_value(text, "vendor_own"));
		EXPECT_EQ(0, find_line(text, "invariant: ok", line, sizeof(line))) TH_LOG("%s", text);
		EXPECT_EQ(1, key_value(O_FILE("vendor"), "devices"));
	}
	ASSERT_EQ(0, dirty_bitmap(self->o.container, IOVA, 64 * PAGE, PAGE, bits, sizeof(bits)));
	EXPECT_EQ((1ULL << 1) | (1ULL << 5) | (1ULL << 6) | (1ULL << 12), bits[0]);
	RECORD("dirty_reports", "get_bitmap %#llx", (unsigned long long)bits[0]);
	TH_LOG("GET_BITMAP: %#llx", (unsigned long long)bits[0]);
	if (rust) {
		text = O_FILE("dirty");
		log_lines(_metadata, "dirty", text);
		EXPECT_EQ(1, key_value(text, "reports"));
		EXPECT_EQ(8, key_value(text, "bytes_written"));
		EXPECT_EQ(0, key_value(text, "marked_pending"));
		EXPECT_EQ(3, key_value(text, "vendor_pinned"));
	}
	/* Pages 5-6 unpinned: marked, reported once more with page 1, still pinned, by the unmap. */
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_UNPIN, IOVA + 5 * PAGE, 2, 0, NULL));
	if (rust)
		EXPECT_EQ(2, key_value(O_FILE("dirty"), "marked_pending"));
	bits[0] = 0;
	ASSERT_EQ(0, dma_unmap_bitmap(self->o.container, IOVA, 64 * PAGE, PAGE, bits, sizeof(bits),
				      NULL));
	EXPECT_EQ((1ULL << 1) | (1ULL << 5) | (1ULL << 6), bits[0]);
	RECORD("dirty_reports", "unmap_bitmap %#llx", (unsigned long long)bits[0]);
	EXPECT_EQ(0, locked_vm_kb());
	if (!rust)
		return;
	text = O_FILE("vendor");
	EXPECT_EQ(1, key_value(text, "notifications")) TH_LOG("%s", text);
	EXPECT_EQ(0, key_value(text, "retries"));
	EXPECT_EQ(0, key_value(text, "busy_refusals"));
	text = O_FILE("dirty");
	EXPECT_EQ(2, key_value(text, "reports"));
	EXPECT_EQ(16, key_value(text, "bytes_written"));

	trace = slurp(VIR_TRACE);
	ASSERT_NE(NULL, trace);
	log_trace(_metadata, trace, self->o.id);
	/* The pins: group, IOVA, count, pages pinned. */
	ASSERT_EQ(0, trace_event(trace, "vir_pin", self->o.id, 1, fields, sizeof(fields)))
		TH_LOG("%s", trace);
	ASSERT_EQ(5, sscanf(fields, "container=%llu group=%d iova=%llx count=%llu result=%d",
			    &container, &group, &iova, &count, &result)) TH_LOG("%s", fields);
	EXPECT_EQ(env_int("VFIO_TEST_VMDEV_GROUP"), group);
	EXPECT_EQ(IOVA + 5 * PAGE, iova);
	EXPECT_EQ(2, count);
	EXPECT_EQ(2, result);
	ASSERT_EQ(0, trace_event(trace, "vir_dma_rw", self->o.id, 0, fields, sizeof(fields)));
	ASSERT_EQ(5, sscanf(fields, "container=%llu iova=%llx len=%llu write=%d result=%d",
			    &container, &iova, &len, &write, &result)) TH_LOG("%s", fields);
	EXPECT_EQ(IOVA + 12 * PAGE + 64, iova);
	EXPECT_EQ(sizeof(msg), len);
	EXPECT_EQ(1, write);
	EXPECT_EQ(0, result);
	/* UNPIN of pages 5-6, then the unpin of page 1 by the driver, notified by the unmap. */
	ASSERT_EQ(0, trace_event(trace, "vir_unpin", self->o.id, 0, fields, sizeof(fields)));
	snprintf(want, sizeof(want), "container=%ld iova=%#llx count=2 released=2", self->o.id,
		 IOVA + 5 * PAGE);
	EXPECT_STREQ(want, fields);
	snprintf(want, sizeof(want), "container=%ld device=%s iova=%#llx size=0x40000 attempt=0",
		 self->o.id, env_str("VFIO_TEST_VMDEV"), IOVA);
	ASSERT_EQ(0, trace_event(trace, "vir_notify", self->o.id, 0, fields, sizeof(fields)))
		TH_LOG("%s", trace);
	EXPECT_STREQ(want, fields);
	/* The two reports: 4 bits by GET_BITMAP, 3 by the unmap, 8 bytes each. */
	ASSERT_EQ(0, trace_event(trace, "vir_dirty_report", self->o.id, 0, fields, sizeof(fields)));
	ASSERT_EQ(6, sscanf(fields, "container=%llu iova=%llx size=%llx bits=%llu bytes=%llu unmap=%d",
			    &container, &iova, &size, &bits_set, &bytes, &unmap)) TH_LOG("%s", fields);
	EXPECT_EQ(IOVA, iova);
	EXPECT_EQ(64 * PAGE, size);
	EXPECT_EQ(4, bits_set);
	EXPECT_EQ(8, bytes);
	EXPECT_EQ(0, unmap);
	ASSERT_EQ(0, trace_event(trace, "vir_dirty_report", self->o.id, 1, fields, sizeof(fields)));
	ASSERT_EQ(6, sscanf(fields, "container=%llu iova=%llx size=%llx bits=%llu bytes=%llu unmap=%d",
			    &container, &iova, &size, &bits_set, &bytes, &unmap)) TH_LOG("%s", fields);
	EXPECT_EQ(3, bits_set);
	EXPECT_EQ(1, unmap);
	snprintf(want, sizeof(want), "container=%ld iova=%#llx size=0x40000 bitmap=1 unpinned=0 "
		 "uncharged=0 release=0", self->o.id, IOVA);
	ASSERT_EQ(0, trace_event(trace, "vir_unmap", self->o.id, 0, fields, sizeof(fields)));
	EXPECT_STREQ(want, fields);
	free(trace);
}

/*
 * A driver keeping its pins: 11 notifications (attempts 0 to 10), then EBUSY. type1 BUG()s
 * there (misbehave_test.c), so only our backend runs it.
 */
TEST_F(vendor, busy_refusal)
{
	char fields[512], want[256], *text, *trace;
	int i;

	if (self->o.backend == BACKEND_TYPE1)
		return;
	ASSERT_EQ(0, dma_map(self->o.container, IOVA, (uintptr_t)self->o.buf, 8 * PAGE, RW));
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_PIN, IOVA, 2, VIR_MDEV_FLAG_WRITE, NULL));
	ASSERT_EQ(0, misbehave(self->dev, 1));
	EXPECT_EQ(EBUSY, dma_unmap(self->o.container, IOVA, 8 * PAGE, 0, NULL));
	text = O_FILE("vendor");
	EXPECT_EQ(11, key_value(text, "notifications")) TH_LOG("%s", text);
	EXPECT_EQ(10, key_value(text, "retries"));
	EXPECT_EQ(1, key_value(text, "busy_refusals"));
	/* Nothing changed: the mapping and its pins are there. */
	text = O_FILE("accounting");
	EXPECT_EQ(2, key_value(text, "vendor_own"));
	trace = slurp(VIR_TRACE);
	ASSERT_NE(NULL, trace);
	EXPECT_EQ(11, trace_count(trace, "vir_notify", self->o.id));
	for (i = 0; i <= 10; i++) {
		snprintf(want, sizeof(want), "container=%ld device=%s iova=%#llx size=0x8000 attempt=%d",
			 self->o.id, env_str("VFIO_TEST_VMDEV"), IOVA, i);
		ASSERT_EQ(0, trace_event(trace, "vir_notify", self->o.id, i, fields, sizeof(fields)));
		EXPECT_STREQ(want, fields);
	}
	EXPECT_EQ(0, trace_count(trace, "vir_unmap", self->o.id));
	free(trace);
	/* Behaving again, the unmap goes through. */
	ASSERT_EQ(0, misbehave(self->dev, 0));
	ASSERT_EQ(0, dma_unmap(self->o.container, IOVA, 8 * PAGE, 0, NULL));
	text = O_FILE("vendor");
	log_lines(_metadata, "vendor", text);
	EXPECT_EQ(12, key_value(text, "notifications"));
}

/*
 * Vendor pins carry their own charge until an IOMMU group joins and pins the same pages, then
 * share it, and take it over when the group leaves: the invariant holds at every step.
 */
TEST_F(vendor, shared_charge)
{
	char line[256], *text;
	bool rust = self->o.backend == BACKEND_RUST;

	ASSERT_EQ(0, dma_map(self->o.container, IOVA, (uintptr_t)self->o.buf, 16 * PAGE, RW));
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_PIN, IOVA + 2 * PAGE, 2, VIR_MDEV_FLAG_WRITE, NULL));
	EXPECT_EQ(8, locked_vm_kb());
	self->edu = open_group(env_int("VFIO_TEST_GROUP"));
	ASSERT_LE(0, self->edu);
	ASSERT_EQ(0, ioctl(self->edu, VFIO_GROUP_SET_CONTAINER, &self->o.container));
	EXPECT_EQ(64, locked_vm_kb());
	if (rust) {
		text = O_FILE("accounting");
		EXPECT_EQ(16, key_value(text, "charged")) TH_LOG("%s", text);
		EXPECT_EQ(16, key_value(text, "iommu_locked"));
		EXPECT_EQ(0, key_value(text, "vendor_own"));
		EXPECT_EQ(0, find_line(text, "invariant: ok", line, sizeof(line))) TH_LOG("%s", text);
		text = O_FILE("groups");
		EXPECT_EQ(2, key_value(text, "groups"));
		snprintf(line, sizeof(line), "group %d: emulated dirty_scope=pinned",
			 env_int("VFIO_TEST_VMDEV_GROUP"));
		EXPECT_EQ(0, find_line(text, line, line, sizeof(line))) TH_LOG("%s", text);
		EXPECT_EQ(0, find_line(O_FILE("mappings"), "total: mappings=1 pages=16 charged=16 "
				       "vendor_pins=2 iommu_mapped=1", line, sizeof(line)));
	}
	ASSERT_EQ(0, ioctl(self->edu, VFIO_GROUP_UNSET_CONTAINER));
	EXPECT_EQ(8, locked_vm_kb());
	if (rust) {
		text = O_FILE("accounting");
		EXPECT_EQ(2, key_value(text, "charged")) TH_LOG("%s", text);
		EXPECT_EQ(0, key_value(text, "iommu_locked"));
		EXPECT_EQ(2, key_value(text, "vendor_own"));
		EXPECT_EQ(0, find_line(text, "invariant: ok", line, sizeof(line))) TH_LOG("%s", text);
	}
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_UNPIN, IOVA + 2 * PAGE, 2, 0, NULL));
	EXPECT_EQ(0, locked_vm_kb());
}

/* A tree too large to list: 1000 lines, and a total line that counts everything. */
TEST_F(vendor, line_cap)
{
	char line[256], *text, *p;
	int i, lines = 0;

	for (i = 0; i < 1100; i++)
		ASSERT_EQ(0, dma_map(self->o.container, IOVA + 2 * i * PAGE,
				     (uintptr_t)self->o.buf + (i % 64) * PAGE, PAGE, RW));
	if (self->o.backend == BACKEND_RUST) {
		text = O_FILE("mappings");
		for (p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
			lines += *p == '0';
		EXPECT_EQ(1000, lines);
		EXPECT_EQ(0, find_line(text, "total: mappings=1100 pages=1100 charged=0 vendor_pins=0 "
				       "iommu_mapped=0 shown=1000", line, sizeof(line))) TH_LOG("%s", line);
	}
	ASSERT_EQ(0, dma_unmap(self->o.container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL));
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
