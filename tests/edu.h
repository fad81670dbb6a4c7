/* SPDX-License-Identifier: GPL-2.0 */
/*
 * QEMU's "edu" PCI device through vfio-pci: a 4 KiB buffer at device address 0x40000 and a DMA
 * engine (registers at BAR0 + 0x80..0x98) that copies between the buffer and an IOVA, which the
 * IOMMU translates with the container's mappings. QEMU 7.2's edu masks DMA addresses to 28 bits
 * and rejects transfers of the whole buffer, so IOVAs stay below 256 MiB and transfers at 2 KiB.
 */
#ifndef EDU_H
#define EDU_H

#include <time.h>
#include "vfio_test.h"

#define EDU_IDENT 0x010000edU
#define EDU_BUF 0x40000ULL
#define EDU_DMA_MAX 2048U
#define EDU_REG_DMA_SRC 0x80
#define EDU_REG_DMA_DST 0x88
#define EDU_REG_DMA_CNT 0x90
#define EDU_REG_DMA_CMD 0x98
#define EDU_DMA_RUN 0x1
#define EDU_DMA_TO_RAM 0x2

struct edu {
	int fd;
	volatile unsigned char *bar;
	size_t bar_size;
};

static inline int edu_open(int group, const char *bdf, struct edu *e)
{
	struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
	struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	unsigned short cmd;
	void *p;

	e->bar = NULL;
	e->bar_size = 0;
	e->fd = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (e->fd < 0)
		return errno;
	if (ioctl(e->fd, VFIO_DEVICE_GET_REGION_INFO, &bar) ||
	    ioctl(e->fd, VFIO_DEVICE_GET_REGION_INFO, &cfg))
		return errno;
	if (!(bar.flags & VFIO_REGION_INFO_FLAG_MMAP))
		return ENODEV;
	p = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, e->fd, bar.offset);
	if (p == MAP_FAILED)
		return errno;
	e->bar = p;
	e->bar_size = bar.size;
	if (*(volatile unsigned int *)e->bar != EDU_IDENT)
		return ENODEV;
	/* Bus master enable, through vfio-pci's virtualised config space. */
	if (pread(e->fd, &cmd, 2, cfg.offset + 4) != 2)
		return EIO;
	cmd |= 0x4;
	if (pwrite(e->fd, &cmd, 2, cfg.offset + 4) != 2)
		return EIO;
	return 0;
}

static inline void edu_close(struct edu *e)
{
	if (e->bar)
		munmap((void *)e->bar, e->bar_size);
	if (e->fd >= 0)
		close(e->fd);
}

static inline void edu_write64(struct edu *e, unsigned int reg, unsigned long long v)
{
	*(volatile unsigned long long *)(e->bar + reg) = v;
}

/*
 * One DMA between the device buffer (at @buf_off) and @iova, @len bytes; to RAM if @to_ram.
 * Returns 0 once the engine is done, ETIMEDOUT otherwise. A transfer the IOMMU blocks also
 * completes: the device sees a fault and the data goes nowhere.
 */
static inline int edu_dma(struct edu *e, unsigned long long iova, unsigned int buf_off,
			  unsigned int len, int to_ram)
{
	struct timespec t = { 0, 1000000 };
	int i;

	edu_write64(e, EDU_REG_DMA_SRC, to_ram ? EDU_BUF + buf_off : iova);
	edu_write64(e, EDU_REG_DMA_DST, to_ram ? iova : EDU_BUF + buf_off);
	edu_write64(e, EDU_REG_DMA_CNT, len);
	edu_write64(e, EDU_REG_DMA_CMD, EDU_DMA_RUN | (to_ram ? EDU_DMA_TO_RAM : 0));
	for (i = 0; i < 10000; i++) {
		if (!(*(volatile unsigned long long *)(e->bar + EDU_REG_DMA_CMD) & EDU_DMA_RUN))
			return 0;
		nanosleep(&t, NULL);
	}
	return ETIMEDOUT;
}

#endif /* EDU_H */
