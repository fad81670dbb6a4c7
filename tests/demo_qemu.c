// SPDX-License-Identifier: GPL-2.0
/*
 * `make demo QEMU=1`, in the guest: the host's unmodified QEMU live migrates a VM that has the
 * test vendor driver's device (tests/mdev), over vfio_iommu_rust's container. While the migration
 * is paused before switchover the device pins and writes VM pages; QEMU's final read of the
 * container's dirty bitmap reports them, and the destination VM has their contents. The same
 * scenario is tested in tests/qemu_test.c (migrate_dirty_pages) against both backends.
 */
#include "qemu.h"

#define DEMO(fmt, ...) printf("DEMO: " fmt "\n", ##__VA_ARGS__)
#define FAIL(fmt, ...) (DEMO("FAILED: " fmt, ##__VA_ARGS__), qemu_kill(&src), qemu_kill(&dst), 1)

static void show_sync(const char *args, void *data)
{
	int *n = data;

	if (strstr(args, "dirty_pages=0"))
		return;
	DEMO("  QEMU trace: vfio_get_dirty_bitmap %s", args);
	(*n)++;
}

int main(void)
{
	static struct qemu src, dst;
	char dev[256], out[4096], *line;
	const char *src_args[] = { "-device", dev, "-trace", "enable=vfio_get_dirty_bitmap", NULL };
	const char *dst_args[] = { "-device", dev, "-incoming", "exec:cat /tmp/vir-mig.stream", NULL };
	const unsigned long long a = 0x300000, b = 0x301000, c = 0x305000;
	struct backend_refs before = backend_refs(), now;
	int n = 0;

	snprintf(dev, sizeof(dev),
		 "vfio-pci,sysfsdev=/sys/bus/mdev/devices/%s,x-device-dirty-page-tracking=off,"
		 "enable-migration=on,addr=6", env_str("VFIO_TEST_VMDEV"));
	if (qemu_start(&src, "demo-src", src_args))
		return FAIL("QEMU did not start");
	DEMO("source QEMU (chroot into the host root): %s", src.cmdline);
	now = backend_refs();
	DEMO("its container is served by %s",
	     now.rust == before.rust + 1 ? RUST_MODULE : now.type1 == before.type1 + 1 ?
	     TYPE1_MODULE : "?");
	if (qtest_pci_enable(&src, 6, BAR_ADDR) ||
	    qtest_readl(&src, BAR_ADDR + VIR_REG_ID) != VIR_MDEV_ID)
		return FAIL("the vir_mdev device does not answer at BAR0");
	if (qmp(&src, "{\"execute\": \"migrate-set-capabilities\", \"arguments\": {\"capabilities\": "
		      "[{\"capability\": \"pause-before-switchover\", \"state\": true}]}}") ||
	    qmp(&src, "{\"execute\": \"migrate\", \"arguments\": "
		      "{\"uri\": \"exec:cat>/tmp/vir-mig.stream\"}}") ||
	    qmp_wait_migration(&src, "pre-switchover"))
		return FAIL("migration did not reach pre-switchover");
	DEMO("migrate exec:cat>/tmp/vir-mig.stream: RAM sent, paused before switchover");
	if (vir_command(&src, a, 1, 0xa1, VIR_CMD_PIN_WRITE) ||
	    vir_command(&src, b, 2, 0xb2, VIR_CMD_PIN_WRITE) ||
	    vir_command(&src, b, 2, 0xb2, VIR_CMD_UNPIN) ||
	    vir_command(&src, c, 1, 0xc3, VIR_CMD_DMA_WRITE))
		return FAIL("device command");
	DEMO("device (BAR0 commands): pinned VM page %#llx and wrote 0xa1 (kept pinned), pinned "
	     "pages %#llx-%#llx and wrote 0xb2 (unpinned), dma_rw wrote 0xc3 to %#llx", a, b,
	     b + 2 * PAGE - 1, c);
	if (qmp(&src, "{\"execute\": \"migrate-continue\", \"arguments\": "
		      "{\"state\": \"pre-switchover\"}}") ||
	    qmp_wait_migration(&src, "completed"))
		return FAIL("migration did not complete");
	if (!qmp_hmp(&src, "info migrate", out, sizeof(out)))
		for (line = strtok(out, "\r\n"); line; line = strtok(NULL, "\r\n"))
			DEMO("  (qemu) info migrate: %s", line);
	if (qemu_quit(&src))
		return FAIL("source QEMU exit");
	fflush(stdout);
	if (!qemu_print_output(&src, stdout, "DEMO:   source QEMU printed: "))
		DEMO("  source QEMU printed nothing on stdout or stderr");
	qemu_trace(&src, "vfio_get_dirty_bitmap", show_sync, &n);
	DEMO("dirty bitmap reads reporting dirty pages: %d (of %d)", n,
	     qemu_trace(&src, "vfio_get_dirty_bitmap", NULL, NULL));

	if (qemu_start(&dst, "demo-dst", dst_args) || qmp_wait_migration(&dst, "completed"))
		return FAIL("destination QEMU");
	DEMO("destination QEMU -incoming 'exec:cat /tmp/vir-mig.stream': migration completed");
	DEMO("destination VM pages: %#llx %s, %#llx %s, %#llx %s, %#llx %s", a,
	     page_is(&dst, a, 0xa1) ? "all 0xa1" : "WRONG", b, page_is(&dst, b, 0xb2) ? "all 0xb2" :
	     "WRONG", b + PAGE, page_is(&dst, b + PAGE, 0xb2) ? "all 0xb2" : "WRONG", c,
	     page_is(&dst, c, 0xc3) ? "all 0xc3" : "WRONG");
	if (qmp(&dst, "{\"execute\": \"cont\"}"))
		return FAIL("cont on the destination");
	DEMO("destination VM started (cont): its device left RESUMING and loaded its state");
	DEMO("destination device registers: IOVA %#x VALUE %#x (migrated device state)",
	     qtest_readl(&dst, BAR_ADDR + VIR_REG_IOVA), qtest_readl(&dst, BAR_ADDR + VIR_REG_VALUE));
	if (qemu_quit(&dst))
		return FAIL("destination QEMU exit");
	fflush(stdout);
	if (!qemu_print_output(&dst, stdout, "DEMO:   destination QEMU printed: "))
		DEMO("  destination QEMU printed nothing on stdout or stderr");
	DEMO("both QEMUs exited; pages still pinned: %ld", pins_outstanding());
	return 0;
}
