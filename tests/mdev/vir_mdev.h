/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Interface of the vir_mdev test vendor driver (tests/mdev/vir_mdev.c): ioctls on its VFIO device
 * fd that make the driver pin pages through the container (and write to them as a device would),
 * unpin them, and read or write guest memory with vfio_dma_rw().
 *
 * The device is also a minimal PCI device (VFIO_DEVICE_FLAGS_PCI) that QEMU's vfio-pci can assign
 * to a VM, with VFIO migration v2 (STOP_COPY): its BAR0 registers below give a VM (or a qtest
 * script) the same pin/write/unpin/dma_rw commands.
 */
#ifndef VIR_MDEV_H
#define VIR_MDEV_H

#include <linux/ioctl.h>
#include <linux/types.h>

struct vir_mdev_cmd {
	__u64 iova;	/* first IOVA */
	__u64 count;	/* pages (PIN, UNPIN) or bytes (READ, WRITE) */
	__u64 buf;	/* user buffer (READ, WRITE) */
	__u32 flags;	/* VIR_MDEV_FLAG_* */
	__u32 value;	/* PIN with WRITE: the byte written to every pinned page; MISBEHAVE: 0 or 1 */
	__u64 out;	/* STATS: dma_unmap notifications received; PIN: pages now held */
};

#define VIR_MDEV_FLAG_WRITE	(1 << 0)	/* PIN: pin for write and fill the pages */

/*
 * Pin @count pages from @iova with vfio_pin_pages(), one call per VIR_MDEV_PIN_CHUNK pages
 * (VFIO_PIN_PAGES_MAX_ENTRIES), and keep them; if a call fails, the calls before it are undone.
 */
#define VIR_MDEV_PIN_CHUNK	512
#define VIR_MDEV_PIN		_IOWR('V', 0x40, struct vir_mdev_cmd)
/* Unpin what one PIN of exactly @iova/@count pinned. */
#define VIR_MDEV_UNPIN		_IOWR('V', 0x41, struct vir_mdev_cmd)
/* vfio_dma_rw() @count bytes from @buf to @iova. */
#define VIR_MDEV_WRITE		_IOWR('V', 0x42, struct vir_mdev_cmd)
/* vfio_dma_rw() @count bytes from @iova to @buf. */
#define VIR_MDEV_READ		_IOWR('V', 0x43, struct vir_mdev_cmd)
/*
 * @value 0: honour dma_unmap notifications; 1: ignore them (keep the pins); 2: ignore them and also
 * walk away from the pins when the device is closed, never unpinning them.
 */
#define VIR_MDEV_MISBEHAVE	_IOWR('V', 0x44, struct vir_mdev_cmd)
/* @out: dma_unmap notifications so far; @count: pages held. */
#define VIR_MDEV_STATS		_IOWR('V', 0x45, struct vir_mdev_cmd)

/* PCI identity of the device. */
#define VIR_MDEV_VENDOR		0x1234
#define VIR_MDEV_DEVICE		0x7669

/*
 * BAR0: 4 KiB of 32-bit memory space. Registers are little endian; IOVA is 64 bits, the others 32.
 * Writing COMMAND runs the command on IOVA/COUNT/VALUE and sets STATUS (0, or a positive errno).
 */
#define VIR_MDEV_BAR0_SIZE	4096
#define VIR_REG_ID		0x00	/* RO: VIR_MDEV_ID */
#define VIR_REG_IOVA		0x08	/* first IOVA (page aligned for PIN/UNPIN) */
#define VIR_REG_COUNT		0x10	/* pages */
#define VIR_REG_VALUE		0x14	/* the byte the device writes */
#define VIR_REG_COMMAND		0x18	/* WO: VIR_CMD_* */
#define VIR_REG_STATUS		0x1c	/* RO: result of the last command */
#define VIR_REG_HELD		0x20	/* RO: pages the device holds pinned */
#define VIR_REG_END		0x24

#define VIR_MDEV_ID		0x76697231	/* "vir1" */

#define VIR_CMD_PIN_WRITE	1	/* vfio_pin_pages() COUNT pages, fill them with VALUE, keep them */
#define VIR_CMD_UNPIN		2	/* unpin what one PIN_WRITE of exactly IOVA/COUNT pinned */
#define VIR_CMD_DMA_WRITE	3	/* vfio_dma_rw() VALUE into COUNT pages, pinning nothing */

#endif /* VIR_MDEV_H */
