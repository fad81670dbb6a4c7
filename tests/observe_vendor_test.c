// SPDX-License-Identifier: GPL-2.0
/*
 * What an operator sees (Documentation/observability.rst) of a container with a vendor (mdev)
 * device, the vir_mdev test driver (tests/mdev): vendor pins, vfio_dma_rw(), dirty reports and
 * dma_unmap notifications in the debugfs files and the trace events, the charge of vendor pins
 * shared with an IOMMU group's pins, and a tree too large to list. Against both backends, as
 * observe_test.c.
 */
#include "kselftest_harness.h"
#include "mdev/vir_mdev.h"
#include "observe_fixture.h"

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

/* An mdev (vir_mdev) container: vendor pins, dma_rw, dirty reports and notifications. */
FIXTURE(vendor) {
	struct observed o;
	int dev;
	int edu;
};

FIXTURE_SETUP(vendor)
{
	self->dev = self->edu = -1;
	observed_open(_metadata, &self->o, "VFIO_TEST_VMDEV_GROUP");
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
	observed_teardown(_metadata, &self->o);
}

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

/* Ours only: debugfs dirty has marks_bytes == @bytes, and the chunk counts agree with the tables. */
#define EXPECT_MARKS(bytes) do {							\
	char *__t = O_FILE("dirty"), __l[128];						\
											\
	EXPECT_EQ(bytes, key_value(__t, "marks_bytes")) TH_LOG("%s", __t);		\
	EXPECT_EQ(0, find_line(__t, "marks_invariant: ok", __l, sizeof(__l)))	\
		TH_LOG("%s", __t);							\
} while (0)

/*
 * The memory of dirty marks (debugfs dirty: marks_bytes): a chunk of marks (4 KiB for 32,768
 * pages, behind a 128-byte root, a 1 KiB middle and a 512-byte leaf table) is kept, stale, by
 * the report after it was marked, freed by the first report that finds it unmarked, and freed at
 * STOP and when its mapping goes; the chunk counts agree with the tables (marks_invariant) at
 * every step. The bitmaps are asserted on both backends.
 */
TEST_F(vendor, dirty_marks_memory)
{
	const long chunk = 128 + 1024 + 512 + 4096;
	bool rust = self->o.backend == BACKEND_RUST;
	__u64 bits[1];
	char byte = 1;
	char *text;

	ASSERT_EQ(0, dma_map(self->o.container, IOVA, (uintptr_t)self->o.buf, 64 * PAGE, RW));
	ASSERT_EQ(0, dirty_pages(self->o.container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	if (rust)
		EXPECT_MARKS(0);
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_WRITE, IOVA + 3 * PAGE, 1, 0, &byte));
	if (rust) {
		text = O_FILE("dirty");
		EXPECT_EQ(1, key_value(text, "marked_pending"));
		EXPECT_MARKS(chunk);
	}
	/* Reported, then kept (stale): marking page 7 allocates nothing, and page 3 is not reported again. */
	bits[0] = ~0ULL;
	ASSERT_EQ(0, dirty_bitmap(self->o.container, IOVA, 64 * PAGE, PAGE, bits, sizeof(bits)));
	EXPECT_EQ(1ULL << 3, bits[0]);
	if (rust) {
		text = O_FILE("dirty");
		EXPECT_EQ(0, key_value(text, "marked_pending"));
		EXPECT_MARKS(chunk);
	}
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_WRITE, IOVA + 7 * PAGE, 1, 0, &byte));
	bits[0] = ~0ULL;
	ASSERT_EQ(0, dirty_bitmap(self->o.container, IOVA, 64 * PAGE, PAGE, bits, sizeof(bits)));
	EXPECT_EQ(1ULL << 7, bits[0]);
	if (rust)
		EXPECT_MARKS(chunk);
	/* A period without marks: the report frees the chunk. */
	bits[0] = ~0ULL;
	ASSERT_EQ(0, dirty_bitmap(self->o.container, IOVA, 64 * PAGE, PAGE, bits, sizeof(bits)));
	EXPECT_EQ(0, bits[0]);
	RECORD("dirty_marks_memory", "reports %#x %#x 0", 1 << 3, 1 << 7);
	if (rust)
		EXPECT_MARKS(0);
	/* STOP frees a chunk kept by a report. */
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_WRITE, IOVA + 9 * PAGE, 1, 0, &byte));
	ASSERT_EQ(0, dirty_bitmap(self->o.container, IOVA, 64 * PAGE, PAGE, bits, sizeof(bits)));
	EXPECT_EQ(1ULL << 9, bits[0]);
	if (rust)
		EXPECT_MARKS(chunk);
	ASSERT_EQ(0, dirty_pages(self->o.container, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP));
	if (rust)
		EXPECT_MARKS(0);
	/* And so does the unmap of a mapping with a kept chunk. */
	ASSERT_EQ(0, dirty_pages(self->o.container, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	ASSERT_EQ(0, vmdev(self->dev, VIR_MDEV_WRITE, IOVA + 2 * PAGE, 1, 0, &byte));
	ASSERT_EQ(0, dirty_bitmap(self->o.container, IOVA, 64 * PAGE, PAGE, bits, sizeof(bits)));
	EXPECT_EQ(1ULL << 2, bits[0]);
	if (rust)
		EXPECT_MARKS(chunk);
	ASSERT_EQ(0, dma_unmap(self->o.container, IOVA, 64 * PAGE, 0, NULL));
	if (rust)
		EXPECT_MARKS(0);
	EXPECT_EQ(0, dirty_pages(self->o.container, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP));
	EXPECT_EQ(0, locked_vm_kb());
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

TEST_HARNESS_MAIN
