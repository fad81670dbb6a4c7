// SPDX-License-Identifier: GPL-2.0
/*
 * The seed series' scenario for real: unmodified QEMU (the host's, run in the guest: tests/qemu.h)
 * with a virtual Intel IOMMU in its VM, against both backends. A qtest script is the VM's VT-d
 * driver (tests/vtd.h): it maps 512 4 KiB pages in the IOMMU page table of the assigned device,
 * which QEMU (caching mode) turns into 512 MAP_DMAs, starts dirty tracking with calc-dirty-rate
 * (mode dirty-bitmap: VFIO_IOMMU_DIRTY_PAGES START, whose stop QEMU postpones while the VM is
 * paused) and then does what a guest in lazy mode does: clears the page directory entry over the
 * 512 pages and invalidates the whole domain. QEMU sends ONE VFIO_IOMMU_UNMAP_DMA of 2 MiB with
 * VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP over the 512 mappings -- the request the v16 patch
 * refused. A tracer (tests/vfio_trace.h) records every container ioctl QEMU makes and the bitmaps
 * the kernel wrote.
 *
 *  - edu_unmap_bitmap: the edu device (vfio-pci, IOMMU-backed: every mapped page is dirty);
 *    real DMA through the guest IOVAs before, a fault after.
 *  - vir_mdev_unmap_bitmap: the test vendor driver's device (pinned-page scope): exactly the pages
 *    it pinned or wrote are dirty, including one pinned before tracking started.
 *  - context_invalidation: the device leaves its domain and the VM invalidates the context cache
 *    globally while tracking: QEMU unmaps its whole IOVA space in power-of-two chunks, each with
 *    a dirty bitmap (the largest 256 GiB, an 8 MiB bitmap); all succeed, nothing stays pinned.
 *
 * Each RECORDs what the tracer saw, for the comparison of the two backends.
 */
#include <pthread.h>
#include <sys/klog.h>
#include "kselftest_harness.h"
#include "vtd.h"
#include "vfio_trace.h"
#include "edu.h"

#define VIOMMU "intel-iommu,caching-mode=on,aw-bits=39"
#define SLOT 3				/* the assigned device: bus=pcie.0,addr=3.0 */
#define DEVFN (SLOT << 3)
#define DID 1				/* its domain */
#define IOVA 0x8000000ULL		/* 128 MiB: below edu's 28-bit DMA mask, above VM RAM */
#define NPAGES 512			/* one leaf table: 2 MiB of IOVA, one PDE */
#define TABLES 0x3c00000ULL		/* the VT-d tables: 1 MiB at 60 MiB of the 64 MiB VM */
#define GPA_BASE 0x1000000ULL		/* the pages mapped: 2 MiB at 16 MiB */
#define MAX_CALLS 1024

#define TRACE_VIOMMU "-trace", "enable=vfio_iommu_map_notify"

/* Where IOVA page @i goes: a permutation of 2 MiB of VM RAM, so only the page table tells. */
static unsigned long long gpa_of(unsigned int i)
{
	return GPA_BASE + ((i * 5 + 3) % NPAGES) * PAGE;
}

static struct vfio_call calls[MAX_CALLS];

FIXTURE(viommu) {
	struct qemu vm;
	struct vfio_trace trace;
	struct vtd vtd;
	struct vtd_domain dom;
	struct backend_refs before;
	long pins0;
	char dev[256];
};

FIXTURE_SETUP(viommu)
{
	memset(&self->vm, 0, sizeof(self->vm));
	self->vm.qtest.fd = self->vm.qmp.fd = -1;
	self->trace.pid = 0;
	self->before = backend_refs();
	self->pins0 = pins_outstanding();
}

FIXTURE_TEARDOWN(viommu)
{
	struct backend_refs now;

	qemu_kill(&self->vm);
	vfio_trace_kill(&self->trace);
	EXPECT_EQ(self->pins0, pins_outstanding());
	now = backend_refs();
	EXPECT_EQ(self->before.type1, now.type1);
	EXPECT_EQ(self->before.rust, now.rust);
}

static long pinned_by_qemu(long pins0)
{
	return pins_outstanding() - pins0;
}

/* The container ioctls recorded so far (in calls[]), or -1. */
static int traced(struct vfio_trace *t)
{
	return vfio_trace_read(t, calls, MAX_CALLS);
}

/*
 * The VM's VT-d set up as a guest kernel does it: root table, the device's context entry in domain
 * DID with an empty page table, context-cache and IOTLB invalidated, translation on. QEMU then
 * drops the container's RAM mappings and listens to the IOMMU instead.
 */
static int viommu_on(struct qemu *q, struct vtd *v, struct vtd_domain *d)
{
	return vtd_init(v, q, TABLES, 0x100000) ?: vtd_domain_init(v, d, DID) ?:
	       vtd_set_context(v, 0, DEVFN, d) ?: vtd_cc_invalidate_global(v) ?:
	       vtd_iotlb_invalidate_global(v) ?: vtd_enable(v, true);
}

/* The 512 leaves IOVA + i * 4 KiB -> gpa_of(i), then a domain-selective IOTLB invalidation. */
static int map_512(struct vtd *v, struct vtd_domain *d)
{
	unsigned long long gpa[NPAGES];
	unsigned int i;

	for (i = 0; i < NPAGES; i++)
		gpa[i] = gpa_of(i);
	return vtd_map(v, d, IOVA, gpa, NPAGES) ?: vtd_iotlb_invalidate_domain(v, DID);
}

/*
 * Checks calls[from..to) are the 512 MAP_DMAs of map_512(): one per page, 4 KiB, read-write, in
 * any order, all successful. Returns 0 or the index of the first offending call + 1.
 */
static int check_maps(int from, int to)
{
	static bool seen[NPAGES];
	int i;

	memset(seen, 0, sizeof(seen));
	if (to - from != NPAGES)
		return -1;
	for (i = from; i < to; i++) {
		unsigned long long page = (calls[i].iova - IOVA) / PAGE;

		if (strcmp(calls[i].op, "MAP") || calls[i].ret || calls[i].size != PAGE ||
		    calls[i].iova < IOVA || page >= NPAGES || seen[page] ||
		    calls[i].flags != (VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE))
			return i + 1;
		seen[page] = true;
	}
	return 0;
}

/* Starts tracking the way a user can with a vIOMMU: calc-dirty-rate, bitmap mode, 100 ms. */
static int start_dirty_tracking(struct qemu *q)
{
	int i;

	if (qmp(q, "{\"execute\": \"calc-dirty-rate\", \"arguments\": {\"calc-time\": 100, "
		   "\"calc-time-unit\": \"millisecond\", \"mode\": \"dirty-bitmap\"}}"))
		return EIO;
	for (i = 0; i < 500; i++) {
		if (qmp(q, "{\"execute\": \"query-dirty-rate\"}"))
			return EIO;
		if (strstr(q->line, "\"status\": \"measured\""))
			return 0;
		qemu_sleep_ms(20);
	}
	return ETIMEDOUT;
}

/* One DMA of the edu device through its BAR (at BAR_ADDR), as in qemu_test.c. */
static int edu_qtest_dma(struct qemu *q, unsigned long long src, unsigned long long dst,
			 unsigned int len, unsigned int cmd)
{
	unsigned int status = EDU_DMA_RUN, i;

	if (qtest(q, "writeq 0x%llx 0x%llx", BAR_ADDR + EDU_REG_DMA_SRC, src) ||
	    qtest(q, "writeq 0x%llx 0x%llx", BAR_ADDR + EDU_REG_DMA_DST, dst) ||
	    qtest(q, "writeq 0x%llx 0x%x", BAR_ADDR + EDU_REG_DMA_CNT, len) ||
	    qtest(q, "writeq 0x%llx 0x%x", BAR_ADDR + EDU_REG_DMA_CMD, EDU_DMA_RUN | cmd))
		return EIO;
	for (i = 0; i < 2000 && status & EDU_DMA_RUN; i++) {
		status = qtest_readl(q, BAR_ADDR + EDU_REG_DMA_CMD);
		if (status == ~0U)
			return EIO;
		if (status & EDU_DMA_RUN)
			qemu_sleep_ms(5);
	}
	return status & EDU_DMA_RUN ? ETIMEDOUT : 0;
}

/* Lines of this guest's kernel log that report a DMAR fault at @iova. */
static int faults_logged(unsigned long long iova)
{
	static char log[1 << 20];
	char needle[64];
	const char *p;
	int n, count = 0;

	snprintf(needle, sizeof(needle), "fault addr 0x%llx ", iova);
	n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, log, sizeof(log) - 1);
	if (n <= 0)
		return 0;
	log[n] = 0;
	for (p = strstr(log, needle); p; p = strstr(p + 1, needle))
		count++;
	return count;
}

/* QEMU's vfio_iommu_map_notify trace: MAP notifications counted, UNMAP ones kept. */
struct notifications {
	int maps;
	struct trace_text unmaps;
};

static void count_notification(const char *args, void *data)
{
	struct notifications *n = data;

	if (!strncmp(args, "iommu MAP ", 10))
		n->maps++;
	else
		trace_append(args, &n->unmaps);
}

/* The unmap with bitmap as one string to compare between the backends. */
static void describe_unmap(const struct vfio_call *c, char *out, size_t size)
{
	snprintf(out, size, "%s iova=0x%llx size=0x%llx flags=0x%x ret=%ld unmapped=0x%llx "
		 "pgsize=0x%llx bitmap=0x%llx dirty=%llu bits=%s", c->op, c->iova, c->size, c->flags,
		 c->ret, c->unmapped, c->pgsize, c->bitmap, c->dirty, c->bits);
}

/* Starts the VM with @dev behind the vIOMMU and the tracer on it. */
#define START_VM(name, ...) do {								\
	const char *__args[] = { "-device", VIOMMU, "-device", self->dev, TRACE_VIOMMU,	\
				 ##__VA_ARGS__, NULL };						\
	char __log[64];										\
												\
	snprintf(__log, sizeof(__log), "/tmp/%s.vfio", name);					\
	ASSERT_EQ(0, qemu_start(&self->vm, name, __args));					\
	ASSERT_SERVED_SINCE(self->before);							\
	ASSERT_EQ(0, vfio_trace_start(&self->trace, self->vm.pid, __log));			\
} while (0)

TEST_F_TIMEOUT(viommu, edu_unmap_bitmap, 600)
{
	unsigned char pattern[EDU_DMA_MAX], back[EDU_DMA_MAX], other[EDU_DMA_MAX];
	struct notifications notify = { 0 };
	const unsigned int src = 5, dst = 300, after = 7;
	int n0, n1, n2, n3, faults, i;
	char unmap[1400];

	snprintf(self->dev, sizeof(self->dev), "vfio-pci,host=%s,bus=pcie.0,addr=%d.0",
		 env_str("VFIO_TEST_BDF"), SLOT);
	START_VM("viommu-edu");
	/* Before the IOMMU is on, QEMU maps all of RAM (pinned: the device may DMA anywhere). */
	EXPECT_LE(64 * 1024 * 1024 / PAGE, pinned_by_qemu(self->pins0));

	ASSERT_EQ(0, viommu_on(&self->vm, &self->vtd, &self->dom));
	/* Translation on: RAM unmapped, the page table is empty, so nothing is mapped or pinned. */
	EXPECT_EQ(0, pinned_by_qemu(self->pins0));
	n0 = traced(&self->trace);
	ASSERT_LE(0, n0);

	ASSERT_EQ(0, map_512(&self->vtd, &self->dom));
	n1 = traced(&self->trace);
	/* One MAP_DMA per 4 KiB leaf, each pinning its page. */
	EXPECT_EQ(0, check_maps(n0, n1));
	EXPECT_EQ(NPAGES, pinned_by_qemu(self->pins0));
	RECORD("edu_maps", "%d MAP_DMA, first iova=0x%llx size=0x%llx", n1 - n0, calls[n0].iova,
	       calls[n0].size);

	/* Real DMA through the guest IOVAs: RAM -> device buffer -> other RAM, bytes in VM RAM. */
	ASSERT_EQ(0, qtest_pci_enable(&self->vm, SLOT, BAR_ADDR));
	ASSERT_EQ(EDU_IDENT, qtest_readl(&self->vm, BAR_ADDR));
	for (i = 0; i < EDU_DMA_MAX; i++)
		pattern[i] = (unsigned char)(i * 13 + 7);
	ASSERT_EQ(0, qtest_memwrite(&self->vm, gpa_of(src), pattern, sizeof(pattern)));
	ASSERT_EQ(0, edu_qtest_dma(&self->vm, IOVA + src * PAGE, EDU_BUF, EDU_DMA_MAX, 0));
	ASSERT_EQ(0, edu_qtest_dma(&self->vm, EDU_BUF, IOVA + dst * PAGE, EDU_DMA_MAX,
				   EDU_DMA_TO_RAM));
	ASSERT_EQ(0, qtest_memread(&self->vm, gpa_of(dst), back, sizeof(back)));
	ASSERT_EQ(0, memcmp(pattern, back, sizeof(back)));
	TH_LOG("edu copied %u bytes from IOVA 0x%llx (GPA 0x%llx) to IOVA 0x%llx (GPA 0x%llx)",
	       EDU_DMA_MAX, IOVA + src * PAGE, gpa_of(src), IOVA + dst * PAGE, gpa_of(dst));

	/* Dirty tracking: START now, its STOP postponed while the VM is paused. */
	ASSERT_EQ(0, start_dirty_tracking(&self->vm));
	n2 = traced(&self->trace);
	ASSERT_EQ(n1 + 1, n2);
	EXPECT_STREQ("DIRTY", calls[n1].op);
	EXPECT_EQ(VFIO_IOMMU_DIRTY_PAGES_FLAG_START, calls[n1].flags);
	EXPECT_EQ(0, calls[n1].ret);

	/* The guest's lazy unmap: the PDE over the 512 leaves cleared, the domain invalidated. */
	ASSERT_EQ(0, vtd_clear_entry(&self->vtd, &self->dom, IOVA, 2));
	ASSERT_EQ(0, vtd_iotlb_invalidate_domain(&self->vtd, DID));
	n3 = traced(&self->trace);
	/* ONE unmap with bitmap over the 512 mappings: success, every page dirty (IOMMU scope). */
	ASSERT_EQ(n2 + 1, n3);
	describe_unmap(&calls[n2], unmap, sizeof(unmap));
	TH_LOG("%s", unmap);
	EXPECT_STREQ("UNMAP", calls[n2].op);
	EXPECT_EQ(VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, calls[n2].flags);
	EXPECT_EQ(IOVA, calls[n2].iova);
	EXPECT_EQ(NPAGES * PAGE, calls[n2].size);
	EXPECT_EQ(0, calls[n2].ret);
	EXPECT_EQ(NPAGES * PAGE, calls[n2].unmapped);
	EXPECT_EQ(PAGE, calls[n2].pgsize);
	EXPECT_EQ(NPAGES / 8, calls[n2].bitmap);
	EXPECT_EQ(NPAGES, calls[n2].dirty);
	EXPECT_STREQ("0-511", calls[n2].bits);
	EXPECT_EQ(0, pinned_by_qemu(self->pins0));
	RECORD("edu_unmap_bitmap", "%s", unmap);

	/* The IOVA is gone: the device's write faults in this guest's IOMMU, RAM is unchanged. */
	faults = faults_logged(IOVA + after * PAGE);
	ASSERT_EQ(0, qtest_memread(&self->vm, gpa_of(after), other, sizeof(other)));
	ASSERT_EQ(0, edu_qtest_dma(&self->vm, EDU_BUF, IOVA + after * PAGE, EDU_DMA_MAX,
				   EDU_DMA_TO_RAM));
	ASSERT_EQ(0, qtest_memread(&self->vm, gpa_of(after), back, sizeof(back)));
	EXPECT_EQ(0, memcmp(other, back, sizeof(back)));
	for (i = 0; i < 100 && faults_logged(IOVA + after * PAGE) == faults; i++)
		qemu_sleep_ms(10);
	EXPECT_LT(faults, faults_logged(IOVA + after * PAGE));

	ASSERT_EQ(0, qemu_quit(&self->vm));
	EXPECT_EQ(0, vfio_trace_wait(&self->trace));
	/* QEMU's own view: 512 MAP notifications, one UNMAP of the 2 MiB (then QEMU's exit). */
	ASSERT_LT(0, qemu_trace(&self->vm, "vfio_iommu_map_notify", count_notification, &notify));
	EXPECT_EQ(NPAGES, notify.maps);
	EXPECT_TRUE(trace_has(&notify.unmaps, "iommu UNMAP @ 0x8000000 - 0x81fffff"));
	RECORD("edu_notifications", "%d MAP; UNMAP %s", notify.maps, notify.unmaps.s);
}

TEST_HARNESS_MAIN
