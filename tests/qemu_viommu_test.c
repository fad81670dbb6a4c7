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
 *  - cpr_reboot_vir_mdev: the migration QEMU 10 allows with a vIOMMU (cpr-reboot of a suspended
 *    VM to a file, loaded by a second QEMU), with an unmap with bitmap while it is paused before
 *    switchover; the device's pages, its state and the vIOMMU arrive.
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
#define MAX_CALLS 8192

#define TRACE_VIOMMU "-trace", "enable=vfio_iommu_map_notify"

/* Where IOVA page @i goes: a permutation of 2 MiB of VM RAM, so only the page table tells. */
static unsigned long long gpa_of(unsigned int i)
{
	return GPA_BASE + ((i * 5 + 3) % NPAGES) * PAGE;
}

static struct vfio_call calls[MAX_CALLS];

FIXTURE(viommu) {
	struct qemu vm, dst;
	struct vfio_trace trace, dst_trace;
	struct vtd vtd;
	struct vtd_domain dom;
	struct backend_refs before;
	long pins0;
	char dev[256];
};

/*
 * Waits (10 s at most) until no container is served by either backend: a test that failed an
 * ASSERT skipped its teardown, and its QEMU, killed when its test process exited (qemu.h), may
 * still be releasing its container.
 */
static void wait_no_containers(void)
{
	int i;

	for (i = 0; i < 1000; i++) {
		struct backend_refs r = backend_refs();

		if (r.type1 <= 0 && r.rust <= 0)
			return;
		qemu_sleep_ms(10);
	}
}

FIXTURE_SETUP(viommu)
{
	wait_no_containers();
	memset(&self->vm, 0, sizeof(self->vm));
	memset(&self->dst, 0, sizeof(self->dst));
	self->vm.qtest.fd = self->vm.qmp.fd = self->dst.qtest.fd = self->dst.qmp.fd = -1;
	self->trace.pid = self->dst_trace.pid = 0;
	self->before = backend_refs();
	self->pins0 = pins_outstanding();
}

FIXTURE_TEARDOWN(viommu)
{
	struct backend_refs now;

	qemu_kill(&self->vm);
	qemu_kill(&self->dst);
	vfio_trace_kill(&self->trace);
	vfio_trace_kill(&self->dst_trace);
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

/* Starts QEMU @vm with self->dev behind the vIOMMU (and @...), and the tracer @trace on it. */
#define START_QEMU(vm, trace, name, ...) do {							\
	const char *__args[] = { "-device", VIOMMU, "-device", self->dev, TRACE_VIOMMU,	\
				 ##__VA_ARGS__, NULL };						\
	char __log[64];										\
												\
	snprintf(__log, sizeof(__log), "/tmp/%s.vfio", name);					\
	ASSERT_EQ(0, qemu_start(vm, name, __args));						\
	ASSERT_SERVED_SINCE(self->before);							\
	ASSERT_EQ(0, vfio_trace_start(trace, (vm)->pid, __log));				\
} while (0)

#define START_VM(name, ...) START_QEMU(&self->vm, &self->trace, name, ##__VA_ARGS__)

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
	qemu_print_output(&self->vm, stderr, "# qemu: ");
	EXPECT_EQ(0, vfio_trace_wait(&self->trace));
	/* QEMU's own view: 512 MAP notifications, one UNMAP of the 2 MiB (then QEMU's exit). */
	ASSERT_LT(0, qemu_trace(&self->vm, "vfio_iommu_map_notify", count_notification, &notify));
	EXPECT_EQ(NPAGES, notify.maps);
	EXPECT_TRUE(trace_has(&notify.unmaps, "iommu UNMAP @ 0x8000000 - 0x81fffff"));
	RECORD("edu_notifications", "%d MAP; UNMAP %s", notify.maps, notify.unmaps.s);
}

/*
 * The same with the test vendor driver's device (an mdev: pinned-page scope). The container pins
 * nothing at MAP_DMA; the device pins and writes pages through guest IOVAs when the qtest script
 * tells it through its BAR. The unmap with bitmap reports exactly the pages it pinned or wrote
 * while tracking, and the one it still held pinned when tracking started.
 */
TEST_F_TIMEOUT(viommu, vir_mdev_unmap_bitmap, 600)
{
	/* IOVA pages: A pinned before tracking and kept, B pinned and unpinned before (clean), then
	 * C pinned and kept, D pinned and unpinned, E written with vfio_dma_rw(). */
	const unsigned int a = 10, b = 20, c = 30, d = 511, e = 0;
	struct notifications notify = { 0 };
	int n0, n1, n2, n3;
	char unmap[1400];
	unsigned int status;

	snprintf(self->dev, sizeof(self->dev),
		 "vfio-pci,sysfsdev=/sys/bus/mdev/devices/%s,x-device-dirty-page-tracking=off,"
		 "enable-migration=off,bus=pcie.0,addr=%d.0", env_str("VFIO_TEST_VMDEV"), SLOT);
	START_VM("viommu-vir");
	ASSERT_EQ(0, viommu_on(&self->vm, &self->vtd, &self->dom));
	n0 = traced(&self->trace);
	ASSERT_LE(0, n0);
	ASSERT_EQ(0, map_512(&self->vtd, &self->dom));
	n1 = traced(&self->trace);
	EXPECT_EQ(0, check_maps(n0, n1));
	/* An emulated-IOMMU container pins nothing to map. */
	EXPECT_EQ(0, pinned_by_qemu(self->pins0));
	RECORD("vir_maps", "%d MAP_DMA, first iova=0x%llx size=0x%llx", n1 - n0, calls[n0].iova,
	       calls[n0].size);

	ASSERT_EQ(0, qtest_pci_enable(&self->vm, SLOT, BAR_ADDR));
	ASSERT_EQ(VIR_MDEV_ID, qtest_readl(&self->vm, BAR_ADDR + VIR_REG_ID));
	ASSERT_EQ(0, vir_command(&self->vm, IOVA + a * PAGE, 1, 0xa1, VIR_CMD_PIN_WRITE));
	ASSERT_EQ(0, vir_command(&self->vm, IOVA + b * PAGE, 2, 0xb2, VIR_CMD_PIN_WRITE));
	ASSERT_EQ(0, vir_command(&self->vm, IOVA + b * PAGE, 2, 0xb2, VIR_CMD_UNPIN));
	ASSERT_EQ(1, qtest_readl(&self->vm, BAR_ADDR + VIR_REG_HELD));
	EXPECT_EQ(1, pinned_by_qemu(self->pins0));

	ASSERT_EQ(0, start_dirty_tracking(&self->vm));
	n2 = traced(&self->trace);
	ASSERT_EQ(n1 + 1, n2);
	EXPECT_STREQ("DIRTY", calls[n1].op);
	EXPECT_EQ(VFIO_IOMMU_DIRTY_PAGES_FLAG_START, calls[n1].flags);
	EXPECT_EQ(0, calls[n1].ret);

	ASSERT_EQ(0, vir_command(&self->vm, IOVA + c * PAGE, 1, 0xc3, VIR_CMD_PIN_WRITE));
	ASSERT_EQ(0, vir_command(&self->vm, IOVA + d * PAGE, 1, 0xd4, VIR_CMD_PIN_WRITE));
	ASSERT_EQ(0, vir_command(&self->vm, IOVA + d * PAGE, 1, 0xd4, VIR_CMD_UNPIN));
	ASSERT_EQ(0, vir_command(&self->vm, IOVA + e * PAGE, 1, 0xe5, VIR_CMD_DMA_WRITE));
	ASSERT_EQ(2, qtest_readl(&self->vm, BAR_ADDR + VIR_REG_HELD));
	/* The device's bytes are where the VM's page table sends its IOVAs. */
	EXPECT_TRUE(page_is(&self->vm, gpa_of(a), 0xa1));
	EXPECT_TRUE(page_is(&self->vm, gpa_of(b), 0xb2));
	EXPECT_TRUE(page_is(&self->vm, gpa_of(b + 1), 0xb2));
	EXPECT_TRUE(page_is(&self->vm, gpa_of(c), 0xc3));
	EXPECT_TRUE(page_is(&self->vm, gpa_of(d), 0xd4));
	EXPECT_TRUE(page_is(&self->vm, gpa_of(e), 0xe5));
	EXPECT_TRUE(page_is(&self->vm, gpa_of(e + 1), 0));

	/* PDE cleared, domain invalidated: one unmap with bitmap, exactly A, C, D and E dirty. */
	ASSERT_EQ(0, vtd_clear_entry(&self->vtd, &self->dom, IOVA, 2));
	ASSERT_EQ(0, vtd_iotlb_invalidate_domain(&self->vtd, DID));
	n3 = traced(&self->trace);
	ASSERT_EQ(n2 + 1, n3);
	describe_unmap(&calls[n2], unmap, sizeof(unmap));
	TH_LOG("%s", unmap);
	EXPECT_STREQ("UNMAP", calls[n2].op);
	EXPECT_EQ(VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, calls[n2].flags);
	EXPECT_EQ(IOVA, calls[n2].iova);
	EXPECT_EQ(NPAGES * PAGE, calls[n2].size);
	EXPECT_EQ(0, calls[n2].ret);
	EXPECT_EQ(NPAGES * PAGE, calls[n2].unmapped);
	EXPECT_EQ(4, calls[n2].dirty);
	EXPECT_STREQ("0,10,30,511", calls[n2].bits);
	RECORD("vir_unmap_bitmap", "%s", unmap);
	/* The driver was told to unpin (dma_unmap) before the mappings went. */
	EXPECT_EQ(0, qtest_readl(&self->vm, BAR_ADDR + VIR_REG_HELD));
	EXPECT_EQ(0, pinned_by_qemu(self->pins0));

	/* The IOVAs are gone: the device can neither pin nor write there. */
	status = vir_command(&self->vm, IOVA + a * PAGE, 1, 0xf6, VIR_CMD_PIN_WRITE);
	EXPECT_NE(0, status);
	EXPECT_EQ(0, qtest_readl(&self->vm, BAR_ADDR + VIR_REG_HELD));
	RECORD("vir_pin_after_unmap", "%u", status);
	status = vir_command(&self->vm, IOVA + e * PAGE, 1, 0xf7, VIR_CMD_DMA_WRITE);
	EXPECT_NE(0, status);
	RECORD("vir_dma_write_after_unmap", "%u", status);
	EXPECT_TRUE(page_is(&self->vm, gpa_of(a), 0xa1));
	EXPECT_TRUE(page_is(&self->vm, gpa_of(e), 0xe5));

	ASSERT_EQ(0, qemu_quit(&self->vm));
	qemu_print_output(&self->vm, stderr, "# qemu: ");
	EXPECT_EQ(0, vfio_trace_wait(&self->trace));
	ASSERT_LT(0, qemu_trace(&self->vm, "vfio_iommu_map_notify", count_notification, &notify));
	EXPECT_EQ(NPAGES, notify.maps);
	EXPECT_TRUE(trace_has(&notify.unmaps, "iommu UNMAP @ 0x8000000 - 0x81fffff"));
}

/*
 * The kernel's allocations (Slab + VmallocUsed of /proc/meminfo), sampled in a loop by a thread
 * while the calls run: their peak above the start. MemFree is sampled too, but it moves with
 * QEMU's own memory (it allocates and zeroes each bitmap in user space).
 */
struct mem_watch {
	pthread_t thread;
	volatile bool stop;
	long kernel0, kernel_max, free0, free_min;
	int samples;
};

/* Reads the @n @keys of /proc/meminfo into @kb (kB, -1 if missing). */
static void meminfo(const char *const *keys, long *kb, int n)
{
	char line[128];
	FILE *f = fopen("/proc/meminfo", "r");
	int i;

	for (i = 0; i < n; i++)
		kb[i] = -1;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		for (i = 0; i < n; i++) {
			size_t len = strlen(keys[i]);

			if (!strncmp(line, keys[i], len) && line[len] == ':')
				kb[i] = strtol(line + len + 1, NULL, 10);
		}
	fclose(f);
}

static void mem_sample(long *kernel, long *free)
{
	static const char *const keys[] = { "Slab", "VmallocUsed", "MemFree" };
	long kb[3];

	meminfo(keys, kb, 3);
	*kernel = kb[0] + kb[1];
	*free = kb[2];
}

static void *mem_watch_run(void *data)
{
	struct mem_watch *w = data;

	while (!w->stop) {
		long kernel, free;

		mem_sample(&kernel, &free);
		if (kernel > w->kernel_max)
			w->kernel_max = kernel;
		if (free < w->free_min)
			w->free_min = free;
		w->samples++;
	}
	return NULL;
}

static int mem_watch_start(struct mem_watch *w)
{
	w->stop = false;
	w->samples = 0;
	mem_sample(&w->kernel0, &w->free0);
	w->kernel_max = w->kernel0;
	w->free_min = w->free0;
	return pthread_create(&w->thread, NULL, mem_watch_run, w);
}

static void mem_watch_stop(struct mem_watch *w)
{
	w->stop = true;
	pthread_join(w->thread, NULL);
}

/*
 * The stress: while tracking, the device leaves its domain (context entry cleared) and the VM
 * invalidates the context cache globally. QEMU unmaps each IOMMU notifier's whole range (below
 * and above the interrupt window, up to 2^39) in power-of-two chunks, whatever is mapped, each
 * with a dirty bitmap; then it resyncs the device, finds no context entry and does it again.
 * Every call succeeds, the 512 pages are reported once, nothing stays pinned.
 */
TEST_F_TIMEOUT(viommu, context_invalidation, 600)
{
	char sizes[2048] = "", first[1400];
	unsigned long long largest = 0, unmapped = 0, dirty = 0;
	int n0, n1, n2, i, bad = 0, with_dirty = -1;
	struct mem_watch w;

	snprintf(self->dev, sizeof(self->dev), "vfio-pci,host=%s,bus=pcie.0,addr=%d.0",
		 env_str("VFIO_TEST_BDF"), SLOT);
	START_VM("viommu-cc");
	ASSERT_EQ(0, viommu_on(&self->vm, &self->vtd, &self->dom));
	n0 = traced(&self->trace);
	ASSERT_EQ(0, map_512(&self->vtd, &self->dom));
	n1 = traced(&self->trace);
	EXPECT_EQ(0, check_maps(n0, n1));
	EXPECT_EQ(NPAGES, pinned_by_qemu(self->pins0));
	ASSERT_EQ(0, start_dirty_tracking(&self->vm));
	n1 = traced(&self->trace);

	ASSERT_EQ(0, vtd_clear_context(&self->vtd, 0, DEVFN));
	ASSERT_EQ(0, mem_watch_start(&w));
	ASSERT_EQ(0, vtd_cc_invalidate_global(&self->vtd));
	mem_watch_stop(&w);
	n2 = traced(&self->trace);
	ASSERT_LT(n1, n2);
	ASSERT_GE(MAX_CALLS, n2);
	for (i = n1; i < n2; i++) {
		size_t len = strlen(sizes);

		if (strcmp(calls[i].op, "UNMAP") || calls[i].ret ||
		    calls[i].flags != VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) {
			describe_unmap(&calls[i], first, sizeof(first));
			TH_LOG("unexpected: %s", first);
			bad++;
		}
		if (calls[i].bitmap > largest)
			largest = calls[i].bitmap;
		if (!calls[i].ret) {
			unmapped += calls[i].unmapped;
			dirty += calls[i].dirty;
		}
		if (calls[i].dirty && with_dirty < 0)
			with_dirty = i;
		snprintf(sizes + len, sizeof(sizes) - len, "%s0x%llx", len ? "," : "",
			 calls[i].size);
	}
	EXPECT_EQ(0, bad);
	/* The 512 mappings went in the chunk [0, 2 GiB), all dirty; 2^39 / 2^26 = 8 MiB bitmaps. */
	EXPECT_EQ(NPAGES * PAGE, unmapped);
	EXPECT_EQ(NPAGES, dirty);
	EXPECT_EQ(256ULL << 30 >> 12 >> 3, largest);
	ASSERT_LE(0, with_dirty);
	describe_unmap(&calls[with_dirty], first, sizeof(first));
	EXPECT_EQ(0, pinned_by_qemu(self->pins0));
	TH_LOG("%d unmaps with bitmap, largest bitmap %llu bytes, sizes %s", n2 - n1, largest, sizes);
	TH_LOG("the one with the mappings: %s", first);
	TH_LOG("during the invalidation (%d samples): Slab + VmallocUsed at most %ld kB above their "
	       "start (MemFree at most %ld kB below)", w.samples, w.kernel_max - w.kernel0,
	       w.free0 - w.free_min);
	RECORD("cc_unmaps", "%d calls, largest bitmap 0x%llx, sizes %s", n2 - n1, largest, sizes);
	RECORD("cc_unmap_with_mappings", "%s", first);
	/*
	 * No kernel memory in proportion to the chunks (a 256 GiB bitmap is 8 MiB). On the debug
	 * kernel KASAN's quarantine keeps freed objects counted in Slab for a while (2.4 MiB seen
	 * there), so the bound is 4 MiB, still half of one bitmap.
	 */
	EXPECT_GT(access("/sys/kernel/debug/kmemleak", F_OK) ? 1024 : 4096, w.kernel_max - w.kernel0);

	ASSERT_EQ(0, qemu_quit(&self->vm));
	qemu_print_output(&self->vm, stderr, "# qemu: ");
	EXPECT_EQ(0, vfio_trace_wait(&self->trace));
}

/* Has the running VM suspend itself (ACPI S3 through the ICH9 PM registers), as a guest does. */
static int suspend_vm(struct qemu *q)
{
	int i;

	if (qmp(q, "{\"execute\": \"cont\"}") ||
	    /* LPC (00:1f.0): PM I/O at 0x600, ACPI on; PM1_CNT: SLP_TYP 1 (S3), SLP_EN. */
	    qtest_pci_writel(q, 31, 0x40, 0x601) || qtest_pci_writel(q, 31, 0x44, 0x80) ||
	    qtest(q, "outw 0x604 0x2400"))
		return EIO;
	for (i = 0; i < 500; i++) {
		if (qmp(q, "{\"execute\": \"query-status\"}"))
			return EIO;
		if (strstr(q->line, "\"suspended\""))
			return 0;
		qemu_sleep_ms(10);
	}
	return ETIMEDOUT;
}

/* The distinct dirty bitmap reads of QEMU's trace (vfio_get_dirty_bitmap), and their sum. */
struct dirty_reads {
	int n;
	unsigned long long dirty;
};

static void count_dirty_read(const char *args, void *data)
{
	struct dirty_reads *d = data;
	const char *p = strstr(args, "dirty_pages=");

	d->n++;
	if (p)
		d->dirty += strtoull(p + 12, NULL, 0);
}

/*
 * A migration route that QEMU 10 allows with a vIOMMU: a cpr-reboot of a suspended VM to a file,
 * loaded by a second QEMU. (A normal migration is refused: the vfio device adds a blocker "not
 * supported with vIOMMU enabled", hw/vfio/migration.c, for normal mode only, and fails to realize
 * with enable-migration=on; cpr-reboot ignores normal-mode blockers and needs the VM suspended,
 * hw/vfio/cpr.c.) Two 2 MiB regions of IOVA are mapped. The vir_mdev device writes pages through
 * guest IOVAs before, keeping one pinned in each region; while the migration is paused before
 * switchover (tracking on, VM and device stopped), the guest lazily unmaps the second region: one
 * unmap with bitmap, exactly the device's page there. The pages arrive, the destination's vIOMMU
 * is on and its container gets the first region's 512 mappings back from the migrated page table
 * (the second's PDE arrived cleared), the device's registers arrive, and it writes through the
 * guest IOVAs again.
 */
TEST_F_TIMEOUT(viommu, cpr_reboot_vir_mdev, 600)
{
	const unsigned int a = 10, b = 20, e = 0, p = 7, after = 100;
	const unsigned long long iova2 = IOVA + NPAGES * PAGE;
	unsigned long long gpa2[NPAGES];
	struct dirty_reads reads = { 0 };
	struct trace_text states = { "" };
	char image[320], unmap[1400];
	int n0, n1, n2, dirty_starts = 0, i;

	for (i = 0; i < NPAGES; i++)
		gpa2[i] = gpa_of(i) + NPAGES * PAGE;
	snprintf(image, sizeof(image), "%s/tmp/vir-cpr.img", env_str("VFIO_TEST_HOSTROOT"));
	unlink(image);
	snprintf(self->dev, sizeof(self->dev),
		 "vfio-pci,sysfsdev=/sys/bus/mdev/devices/%s,x-device-dirty-page-tracking=off,"
		 "bus=pcie.0,addr=%d.0", env_str("VFIO_TEST_VMDEV"), SLOT);
	START_VM("viommu-cpr-src", "-trace", "enable=vfio_get_dirty_bitmap",
		 "-trace", "enable=vfio_migration_set_device_state");
	ASSERT_EQ(0, viommu_on(&self->vm, &self->vtd, &self->dom));
	ASSERT_EQ(0, map_512(&self->vtd, &self->dom));
	ASSERT_EQ(0, vtd_map(&self->vtd, &self->dom, iova2, gpa2, NPAGES));
	ASSERT_EQ(0, vtd_iotlb_invalidate_domain(&self->vtd, DID));
	ASSERT_EQ(0, qtest_pci_enable(&self->vm, SLOT, BAR_ADDR));
	ASSERT_EQ(0, vir_command(&self->vm, IOVA + a * PAGE, 1, 0xa1, VIR_CMD_PIN_WRITE));
	ASSERT_EQ(0, vir_command(&self->vm, IOVA + b * PAGE, 2, 0xb2, VIR_CMD_PIN_WRITE));
	ASSERT_EQ(0, vir_command(&self->vm, IOVA + b * PAGE, 2, 0xb2, VIR_CMD_UNPIN));
	ASSERT_EQ(0, vir_command(&self->vm, IOVA + e * PAGE, 1, 0xe5, VIR_CMD_DMA_WRITE));
	ASSERT_EQ(0, vir_command(&self->vm, iova2 + p * PAGE, 1, 0x77, VIR_CMD_PIN_WRITE));
	ASSERT_EQ(2, qtest_readl(&self->vm, BAR_ADDR + VIR_REG_HELD));
	n0 = traced(&self->trace);

	ASSERT_EQ(0, suspend_vm(&self->vm));
	ASSERT_EQ(0, qmp(&self->vm, "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
				    "{\"mode\": \"cpr-reboot\"}}"));
	ASSERT_EQ(0, qmp(&self->vm, "{\"execute\": \"migrate-set-capabilities\", \"arguments\": "
				    "{\"capabilities\": [{\"capability\": \"pause-before-switchover\", "
				    "\"state\": true}]}}"));
	ASSERT_EQ(0, qmp(&self->vm, "{\"execute\": \"migrate\", \"arguments\": "
				    "{\"uri\": \"file:/tmp/vir-cpr.img\"}}"));
	ASSERT_EQ(0, qmp_wait_migration(&self->vm, "pre-switchover"));
	/* The guest unmaps the second region lazily: one unmap with bitmap, the device's page. */
	n1 = traced(&self->trace);
	ASSERT_EQ(0, vtd_clear_entry(&self->vtd, &self->dom, iova2, 2));
	ASSERT_EQ(0, vtd_iotlb_invalidate_domain(&self->vtd, DID));
	n2 = traced(&self->trace);
	ASSERT_EQ(n1 + 1, n2);
	describe_unmap(&calls[n1], unmap, sizeof(unmap));
	TH_LOG("during the migration: %s", unmap);
	EXPECT_STREQ("UNMAP", calls[n1].op);
	EXPECT_EQ(VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, calls[n1].flags);
	EXPECT_EQ(iova2, calls[n1].iova);
	EXPECT_EQ(NPAGES * PAGE, calls[n1].size);
	EXPECT_EQ(0, calls[n1].ret);
	EXPECT_EQ(1, calls[n1].dirty);
	EXPECT_STREQ("7", calls[n1].bits);
	RECORD("cpr_unmap_bitmap", "%s", unmap);
	EXPECT_EQ(1, qtest_readl(&self->vm, BAR_ADDR + VIR_REG_HELD));
	ASSERT_EQ(0, qmp(&self->vm, "{\"execute\": \"migrate-continue\", \"arguments\": "
				    "{\"state\": \"pre-switchover\"}}"));
	ASSERT_EQ(0, qmp_wait_migration(&self->vm, "completed"));
	ASSERT_EQ(0, qemu_quit(&self->vm));
	qemu_print_output(&self->vm, stderr, "# qemu: ");
	EXPECT_EQ(0, vfio_trace_wait(&self->trace));
	/* The device kept page A pinned: QEMU's container let it go with the VM. */
	EXPECT_EQ(0, pinned_by_qemu(self->pins0));
	/* Dirty tracking ran: START, and QEMU's reads of the bitmap through the vIOMMU. */
	n1 = traced(&self->trace);
	for (i = n0; i < n1 && i < MAX_CALLS; i++)
		dirty_starts += !strcmp(calls[i].op, "DIRTY") &&
				calls[i].flags == VFIO_IOMMU_DIRTY_PAGES_FLAG_START && !calls[i].ret;
	EXPECT_EQ(1, dirty_starts);
	ASSERT_LE(0, qemu_trace(&self->vm, "vfio_get_dirty_bitmap", count_dirty_read, &reads));
	ASSERT_LT(0, qemu_trace(&self->vm, "vfio_migration_set_device_state", trace_append,
				&states));
	TH_LOG("source: %d container calls during the migration, %d bitmap reads (%llu dirty)",
	       n1 - n0, reads.n, reads.dirty);
	RECORD("cpr_src_device_states", "%s", states.s);

	/* The destination loads the image. */
	START_QEMU(&self->dst, &self->dst_trace, "viommu-cpr-dst", "-incoming", "defer",
		   "-trace", "enable=vfio_migration_set_device_state");
	n0 = traced(&self->dst_trace);
	ASSERT_EQ(0, qmp(&self->dst, "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
				     "{\"mode\": \"cpr-reboot\"}}"));
	ASSERT_EQ(0, qmp(&self->dst, "{\"execute\": \"migrate-incoming\", \"arguments\": "
				     "{\"uri\": \"file:/tmp/vir-cpr.img\"}}"));
	ASSERT_EQ(0, qmp_wait_migration(&self->dst, "completed"));
	/* The device's bytes arrived; its vIOMMU is on, with the guest's page table. */
	EXPECT_TRUE(page_is(&self->dst, gpa_of(a), 0xa1));
	EXPECT_TRUE(page_is(&self->dst, gpa_of(b), 0xb2));
	EXPECT_TRUE(page_is(&self->dst, gpa_of(b + 1), 0xb2));
	EXPECT_TRUE(page_is(&self->dst, gpa_of(e), 0xe5));
	EXPECT_TRUE(page_is(&self->dst, gpa2[p], 0x77));
	EXPECT_TRUE(page_is(&self->dst, gpa_of(after), 0));
	self->vtd.q = &self->dst;
	EXPECT_EQ(VTD_GSTS_TES | VTD_GSTS_RTPS, vtd_readl(&self->vtd, VTD_REG_GSTS) &
						 (VTD_GSTS_TES | VTD_GSTS_RTPS));
	/* QEMU rebuilt the container's mappings from the migrated page table. */
	n1 = traced(&self->dst_trace);
	for (n2 = n0; n2 < n1 && strcmp(calls[n2].op, "MAP"); n2++)
		;
	for (i = n2; i < n1 && !strcmp(calls[i].op, "MAP"); i++)
		;
	EXPECT_EQ(0, check_maps(n2, i));
	RECORD("cpr_dst_maps", "%d MAP_DMA", i - n2);

	/*
	 * Resumed: the VM is suspended again, its device runs with the registers it had and writes
	 * through the guest IOVAs of the destination's container. Waking the VM up is an x86 resume
	 * from S3, which resets the machine (pc_machine_wakeup): the firmware's business, not ours.
	 */
	ASSERT_EQ(0, qmp(&self->dst, "{\"execute\": \"cont\"}"));
	ASSERT_EQ(0, qmp(&self->dst, "{\"execute\": \"query-status\"}"));
	EXPECT_NE(NULL, strstr(self->dst.line, "\"suspended\""));
	EXPECT_EQ(VIR_MDEV_ID, qtest_readl(&self->dst, BAR_ADDR + VIR_REG_ID));
	EXPECT_EQ(iova2 + p * PAGE, qtest_readl(&self->dst, BAR_ADDR + VIR_REG_IOVA));
	EXPECT_EQ(0x77, qtest_readl(&self->dst, BAR_ADDR + VIR_REG_VALUE));
	EXPECT_EQ(0, vir_command(&self->dst, IOVA + after * PAGE, 1, 0x99, VIR_CMD_DMA_WRITE));
	EXPECT_TRUE(page_is(&self->dst, gpa_of(after), 0x99));
	ASSERT_EQ(0, qmp(&self->dst, "{\"execute\": \"system_wakeup\"}"));
	ASSERT_EQ(0, qemu_quit(&self->dst));
	qemu_print_output(&self->dst, stderr, "# qemu: ");
	EXPECT_EQ(0, vfio_trace_wait(&self->dst_trace));
	states.s[0] = 0;
	states.n = 0;
	ASSERT_LT(0, qemu_trace(&self->dst, "vfio_migration_set_device_state", trace_append,
				&states));
	RECORD("cpr_dst_device_states", "%s", states.s);
}

TEST_HARNESS_MAIN
