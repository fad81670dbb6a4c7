// SPDX-License-Identifier: GPL-2.0
/*
 * Unmodified QEMU (the host's, >= 8, run inside the guest from the host root: tests/qemu.h) as the
 * VFIO user, against both backends:
 *
 *  - assign_edu_dma: the edu device assigned with -device vfio-pci,host=; QEMU maps the VM's RAM
 *    through the container; a qtest script programs the device through the VM's PCI config space
 *    and BAR and has it copy 2 KiB of VM RAM to another place by DMA through the vIOMMU.
 *  - migrate_mtty: a paused VM with the kernel's mtty mdev live migrates using the container's
 *    dirty page tracking (mtty has no pages to report).
 *  - migrate_dirty_pages: a VM with the test vendor driver's device (tests/mdev) migrates while the
 *    device pins and writes VM pages; the pages reach the destination VM only because the
 *    container's dirty bitmap reports them (the seed series' scenario, end to end).
 *
 * Each RECORDs what QEMU saw (trace events, pinned pages, migration states) for the comparison of
 * the two backends.
 */
#include "kselftest_harness.h"
#include "qemu.h"
#include "edu.h"

#define EDU_SLOT 4
#define MTTY_SLOT 5
#define VIR_SLOT 6
#define RAM_PAGES (64 * 1024 * 1024 / PAGE)	/* -m 64M */

/* Trace events the tests read. */
#define TRACE_MAPS "-trace", "enable=vfio_listener_region_add_ram", \
		   "-trace", "enable=vfio_listener_region_del"
#define TRACE_MIGRATION "-trace", "enable=vfio_get_dirty_bitmap", \
			"-trace", "enable=migrate_set_state", \
			"-trace", "enable=vfio_migration_set_device_state"

FIXTURE(qemu) {
	struct qemu src, dst;
	struct backend_refs before;
	long pins0;
	char dev[256];
};

FIXTURE_SETUP(qemu)
{
	self->src.pid = self->dst.pid = 0;
	self->src.qtest.fd = self->src.qmp.fd = self->dst.qtest.fd = self->dst.qmp.fd = -1;
	self->before = backend_refs();
	self->pins0 = pins_outstanding();
}

FIXTURE_TEARDOWN(qemu)
{
	struct backend_refs now;

	qemu_kill(&self->src);
	qemu_kill(&self->dst);
	/* QEMU gone: its container released everything it pinned, the module references too. */
	EXPECT_EQ(self->pins0, pins_outstanding());
	now = backend_refs();
	EXPECT_EQ(self->before.type1, now.type1);
	EXPECT_EQ(self->before.rust, now.rust);
}

/* Pages pinned since the fixture started, i.e. by QEMU's container. */
static long pinned_by_qemu(long pins0)
{
	return pins_outstanding() - pins0;
}

TEST_F_TIMEOUT(qemu, assign_edu_dma, 300)
{
	const char *args[] = { "-device", self->dev, TRACE_MAPS, NULL };
	unsigned char pattern[EDU_DMA_MAX], back[EDU_DMA_MAX];
	struct trace_text maps = { "" };
	unsigned long long src = 0x100000, dst = 0x200000;
	unsigned int i, cmd;
	long pinned;

	for (i = 0; i < sizeof(pattern); i++)
		pattern[i] = (unsigned char)(i * 7 + 13) ^ (unsigned char)(i >> 8);
	snprintf(self->dev, sizeof(self->dev), "vfio-pci,host=%s,addr=%d",
		 env_str("VFIO_TEST_BDF"), EDU_SLOT);
	ASSERT_EQ(0, qemu_start(&self->src, "assign", args));
	ASSERT_SERVED_SINCE(self->before);
	/* The VM's RAM is mapped, so pinned: all 64 MiB of it, and the firmware ROMs. */
	pinned = pinned_by_qemu(self->pins0);
	EXPECT_GE(pinned, RAM_PAGES);
	RECORD("qemu_pinned_pages", "%ld", pinned);

	ASSERT_EQ(0, qtest_pci_enable(&self->src, EDU_SLOT, BAR_ADDR));
	ASSERT_EQ(EDU_IDENT, qtest_readl(&self->src, BAR_ADDR));
	/* The liveness register inverts what is written: the BAR reaches the device. */
	ASSERT_EQ(0, qtest(&self->src, "writel 0x%llx 0x12345678", BAR_ADDR + 4));
	ASSERT_EQ(0xedcba987, qtest_readl(&self->src, BAR_ADDR + 4));

	/* VM RAM -> device buffer -> other VM RAM, by the device's DMA through the vIOMMU. */
	ASSERT_EQ(0, qtest_memwrite(&self->src, src, pattern, sizeof(pattern)));
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, qtest(&self->src, "writeq 0x%llx 0x%llx", BAR_ADDR + EDU_REG_DMA_SRC,
				   i ? EDU_BUF : src));
		ASSERT_EQ(0, qtest(&self->src, "writeq 0x%llx 0x%llx", BAR_ADDR + EDU_REG_DMA_DST,
				   i ? dst : EDU_BUF));
		ASSERT_EQ(0, qtest(&self->src, "writeq 0x%llx 0x%x", BAR_ADDR + EDU_REG_DMA_CNT,
				   EDU_DMA_MAX));
		ASSERT_EQ(0, qtest(&self->src, "writeq 0x%llx 0x%x", BAR_ADDR + EDU_REG_DMA_CMD,
				   EDU_DMA_RUN | (i ? EDU_DMA_TO_RAM : 0)));
		for (cmd = EDU_DMA_RUN; cmd & EDU_DMA_RUN; qemu_sleep_ms(5)) {
			cmd = qtest_readl(&self->src, BAR_ADDR + EDU_REG_DMA_CMD);
			ASSERT_NE(~0U, cmd);
		}
	}
	ASSERT_EQ(0, qtest_memread(&self->src, dst, back, sizeof(back)));
	ASSERT_EQ(0, memcmp(pattern, back, sizeof(back)));
	TH_LOG("edu copied %u bytes from VM RAM 0x%llx to 0x%llx by DMA", EDU_DMA_MAX, src, dst);

	/*
	 * QEMU follows the VM's memory map with MAP_DMA and UNMAP_DMA. The BAR moves: its mapping
	 * (peer to peer, nothing pinned) is unmapped and made again at the new address. The PAM
	 * registers of the q35 host bridge turn 0xc0000-0xfffff from ROM into RAM, for which QEMU
	 * unmaps all of RAM and maps it again: as many pages pinned as before.
	 */
	ASSERT_EQ(0, qtest_pci_writel(&self->src, EDU_SLOT, 0x04, 0x4));
	ASSERT_EQ(0, qtest_pci_enable(&self->src, EDU_SLOT, BAR_ADDR + 0x1000000));
	ASSERT_EQ(0, qtest(&self->src, "writel 0x%llx 0x1", BAR_ADDR + 0x1000000 + 4));
	ASSERT_EQ(0xfffffffe, qtest_readl(&self->src, BAR_ADDR + 0x1000000 + 4));
	ASSERT_EQ(pinned, pinned_by_qemu(self->pins0));
	/* PAM0-6, host bridge config 0x90-0x96: 0x3 per half byte is read/write RAM. */
	ASSERT_EQ(0, qtest_pci_writel(&self->src, 0, 0x90, 0x33333330));
	ASSERT_EQ(0, qtest_pci_select(&self->src, 0, 0x94));
	ASSERT_EQ(0, qtest(&self->src, "outw 0xcfc 0x3333"));
	ASSERT_EQ(0, qtest(&self->src, "outb 0xcfe 0x33"));
	EXPECT_EQ(pinned, pinned_by_qemu(self->pins0));

	ASSERT_EQ(0, qemu_quit(&self->src));
	EXPECT_EQ(0, pinned_by_qemu(self->pins0));
	/* Every RAM region QEMU mapped and unmapped: the same for both backends. */
	ASSERT_LT(0, qemu_trace(&self->src, NULL, trace_append_map, &maps));
	RECORD("qemu_ram_maps", "%d %s", maps.n, maps.s);
}

TEST_F_TIMEOUT(qemu, migrate_mtty, 300)
{
	const char *args[] = { "-device", self->dev, TRACE_MIGRATION, NULL };
	struct trace_text states = { "" };
	struct dirty_syncs d = { "" };

	snprintf(self->dev, sizeof(self->dev),
		 "vfio-pci,sysfsdev=/sys/bus/mdev/devices/%s,x-device-dirty-page-tracking=off,"
		 "enable-migration=on,addr=%d", env_str("VFIO_TEST_MDEV"), MTTY_SLOT);
	ASSERT_EQ(0, qemu_start(&self->src, "mtty", args));
	ASSERT_SERVED_SINCE(self->before);
	ASSERT_EQ(0, qmp(&self->src, "{\"execute\": \"migrate\", \"arguments\": "
				     "{\"uri\": \"exec:cat>/dev/null\"}}"));
	ASSERT_EQ(0, qmp_wait_migration(&self->src, "completed"));
	ASSERT_EQ(0, qemu_quit(&self->src));

	/* QEMU read the container's dirty bitmap; mtty pins nothing, so nothing is dirty. */
	ASSERT_LT(0, qemu_trace(&self->src, NULL, dirty_sync, &d));
	EXPECT_LT(0, d.reads_before + d.reads_after);
	EXPECT_EQ(0, d.dirty_before + d.dirty_after);
	TH_LOG("%d dirty bitmap reads", d.reads_before + d.reads_after);
	RECORD("mtty_dirty_reads", "%s|%s", d.before.s, d.after.s);
	ASSERT_LT(0, qemu_trace(&self->src, "vfio_migration_set_device_state", trace_append,
				&states));
	RECORD("mtty_device_states", "%s", states.s);
}

TEST_F_TIMEOUT(qemu, migrate_dirty_pages, 300)
{
	const char *src_args[] = { "-device", self->dev, TRACE_MIGRATION, NULL };
	const char *dst_args[] = { "-device", self->dev, "-incoming", "exec:cat /tmp/vir-mig.stream",
				   TRACE_MIGRATION, NULL };
	/* The pages the device writes while the migration runs. */
	const unsigned long long a = 0x300000, b = 0x301000, c = 0x305000, untouched = 0x304000;
	struct trace_text states = { "" }, dst_states = { "" };
	struct dirty_syncs d = { "" };
	char stream[320];

	/* The destination must read this run's stream, never an earlier one. */
	snprintf(stream, sizeof(stream), "%s/tmp/vir-mig.stream", env_str("VFIO_TEST_HOSTROOT"));
	unlink(stream);
	snprintf(self->dev, sizeof(self->dev),
		 "vfio-pci,sysfsdev=/sys/bus/mdev/devices/%s,x-device-dirty-page-tracking=off,"
		 "enable-migration=on,addr=%d", env_str("VFIO_TEST_VMDEV"), VIR_SLOT);
	ASSERT_EQ(0, qemu_start(&self->src, "vir-src", src_args));
	ASSERT_SERVED_SINCE(self->before);
	ASSERT_EQ(0, qtest_pci_enable(&self->src, VIR_SLOT, BAR_ADDR));
	ASSERT_EQ(VIR_MDEV_ID, qtest_readl(&self->src, BAR_ADDR + VIR_REG_ID));

	/* Migrate, stopping before the switchover: RAM has been sent once, the device runs. */
	ASSERT_EQ(0, qmp(&self->src, "{\"execute\": \"migrate-set-capabilities\", \"arguments\": "
				     "{\"capabilities\": [{\"capability\": \"pause-before-switchover\", "
				     "\"state\": true}]}}"));
	ASSERT_EQ(0, qmp(&self->src, "{\"execute\": \"migrate\", \"arguments\": "
				     "{\"uri\": \"exec:cat>/tmp/vir-mig.stream\"}}"));
	ASSERT_EQ(0, qmp_wait_migration(&self->src, "pre-switchover"));

	/* The device writes: a page it keeps pinned, two it pins and unpins, one by dma_rw. */
	ASSERT_EQ(0, vir_command(&self->src, a, 1, 0xa1, VIR_CMD_PIN_WRITE));
	ASSERT_EQ(0, vir_command(&self->src, b, 2, 0xb2, VIR_CMD_PIN_WRITE));
	ASSERT_EQ(3, qtest_readl(&self->src, BAR_ADDR + VIR_REG_HELD));
	ASSERT_EQ(0, vir_command(&self->src, b, 2, 0xb2, VIR_CMD_UNPIN));
	ASSERT_EQ(0, vir_command(&self->src, c, 1, 0xc3, VIR_CMD_DMA_WRITE));
	ASSERT_EQ(1, qtest_readl(&self->src, BAR_ADDR + VIR_REG_HELD));
	ASSERT_TRUE(page_is(&self->src, a, 0xa1));
	ASSERT_TRUE(page_is(&self->src, c, 0xc3));

	ASSERT_EQ(0, qmp(&self->src, "{\"execute\": \"migrate-continue\", \"arguments\": "
				     "{\"state\": \"pre-switchover\"}}"));
	ASSERT_EQ(0, qmp_wait_migration(&self->src, "completed"));
	ASSERT_EQ(0, qemu_quit(&self->src));
	EXPECT_EQ(0, pinned_by_qemu(self->pins0));

	/*
	 * Before the pause the device had written nothing: no dirty page. The final sync reports
	 * exactly the four pages the device wrote (the pinned one, the two it unpinned, the one
	 * dma_rw wrote).
	 */
	ASSERT_LT(0, qemu_trace(&self->src, NULL, dirty_sync, &d));
	EXPECT_LT(0, d.reads_before);
	EXPECT_LT(0, d.reads_after);
	EXPECT_EQ(0, d.dirty_before);
	EXPECT_EQ(4, d.dirty_after);
	TH_LOG("dirty bitmap reads: %d before the pause (%llu dirty pages), %d after (%llu)",
	       d.reads_before, d.dirty_before, d.reads_after, d.dirty_after);
	RECORD("vir_dirty_reads_before", "%s", d.before.s);
	RECORD("vir_dirty_reads_after", "%s", d.after.s);
	ASSERT_LT(0, qemu_trace(&self->src, "vfio_migration_set_device_state", trace_append,
				&states));
	RECORD("vir_device_states", "%s", states.s);

	/* The destination VM, from the stream: the pages the device wrote arrived. */
	ASSERT_EQ(0, qemu_start(&self->dst, "vir-dst", dst_args));
	ASSERT_SERVED_SINCE(self->before);
	ASSERT_EQ(0, qmp_wait_migration(&self->dst, "completed"));
	EXPECT_TRUE(page_is(&self->dst, a, 0xa1));
	EXPECT_TRUE(page_is(&self->dst, b, 0xb2));
	EXPECT_TRUE(page_is(&self->dst, b + PAGE, 0xb2));
	EXPECT_TRUE(page_is(&self->dst, c, 0xc3));
	EXPECT_TRUE(page_is(&self->dst, untouched, 0));
	/*
	 * And the device state, the registers of the last command: the device loads it when it leaves
	 * RESUMING, which QEMU has it do when the VM starts (its CPU only halts). Until then they read
	 * as QEMU's reset of the device at VM creation left them.
	 */
	EXPECT_EQ(0, qtest_readl(&self->dst, BAR_ADDR + VIR_REG_IOVA));
	ASSERT_EQ(0, qmp(&self->dst, "{\"execute\": \"cont\"}"));
	EXPECT_EQ(VIR_MDEV_ID, qtest_readl(&self->dst, BAR_ADDR + VIR_REG_ID));
	EXPECT_EQ(c, qtest_readl(&self->dst, BAR_ADDR + VIR_REG_IOVA));
	EXPECT_EQ(1, qtest_readl(&self->dst, BAR_ADDR + VIR_REG_COUNT));
	EXPECT_EQ(0xc3, qtest_readl(&self->dst, BAR_ADDR + VIR_REG_VALUE));
	/* It runs: it takes commands again, into the destination VM's memory. */
	EXPECT_EQ(0, vir_command(&self->dst, untouched, 1, 0xd4, VIR_CMD_DMA_WRITE));
	EXPECT_TRUE(page_is(&self->dst, untouched, 0xd4));
	ASSERT_EQ(0, qemu_quit(&self->dst));
	ASSERT_LT(0, qemu_trace(&self->dst, "vfio_migration_set_device_state", trace_append,
				&dst_states));
	RECORD("vir_dst_device_states", "%s", dst_states.s);
}

TEST_HARNESS_MAIN
