// SPDX-License-Identifier: GPL-2.0
/*
 * vir_mdev: a test vendor driver for vfio-iommu-rust. Each mediated device is an emulated-IOMMU
 * VFIO device whose ioctls (vir_mdev.h) pin pages through the container (vfio_pin_pages) and write
 * to them as a device would, unpin them, and access memory with vfio_dma_rw(). It implements
 * dma_unmap by unpinning everything in the range, unless told to misbehave.
 *
 * Each device is also a minimal PCI device (config space, one 4 KiB memory BAR, no interrupts) so
 * that QEMU's vfio-pci can assign it to a VM: BAR0's registers give the VM the same commands (pin
 * and write pages, unpin, dma_rw). It supports VFIO migration v2 with STOP_COPY only, carrying its
 * BAR0 registers as device state, so QEMU can live migrate a VM that has one while the container's
 * dirty page tracking reports the pages it wrote.
 *
 * Create one with: echo $UUID > /sys/class/mdev_bus/vir_mdev/mdev_supported_types/vir_mdev-1/create
 */
#include <linux/anon_inodes.h>
#include <linux/device.h>
#include <linux/file.h>
#include <linux/highmem.h>
#include <linux/iommu.h>
#include <linux/mdev.h>
#include <linux/module.h>
#include <linux/pci_ids.h>
#include <linux/pci_regs.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include <linux/unaligned.h>
#include <linux/vfio.h>

#include "vir_mdev.h"

struct vir_pin {
	struct list_head next;
	dma_addr_t iova;
	int npages;
	struct page **pages;
};

#define VIR_CONFIG_SIZE		256
/* Region offsets in the device fd, as vfio-pci lays them out: index << 40. */
#define VIR_INDEX_SHIFT		40
#define VIR_OFFSET_MASK		((1ULL << VIR_INDEX_SHIFT) - 1)

/* The device state a migration carries: the BAR0 registers the VM programmed. */
struct vir_mig_data {
	__le32 magic;
	__le32 version;
	__le64 iova;
	__le32 count;
	__le32 value;
};
#define VIR_MIG_MAGIC		0x7669724d	/* "virM" */
#define VIR_MIG_VERSION		1

/* A migration data file: a snapshot (saving) or what was written so far (resuming). */
struct vir_migf {
	struct mutex lock;		/* protects data, filled */
	struct vir_mig_data data;
	size_t filled;
};

/*
 * Locking: m->lock protects the pin records, the knobs and the PCI state. It is never held while
 * calling into VFIO (vfio_pin_pages, vfio_unpin_pages, vfio_dma_rw), because the container may
 * call dma_unmap, which takes it, while holding its own locks (type1 holds its device list lock).
 * Lock order: m->state_lock, then a vir_migf's lock, then m->lock.
 */
struct vir_mdev {
	struct vfio_device vdev;
	struct mutex lock;		/* protects pins, misbehave, config, reg_* */
	struct list_head pins;
	int misbehave;		/* 1: ignore dma_unmap; 2: also keep the pins at close */
	atomic64_t notifications;
	u8 config[VIR_CONFIG_SIZE];
	u64 reg_iova;
	u32 reg_count, reg_value, reg_status;
	struct mutex state_lock;	/* protects state, resuming */
	enum vfio_device_mig_state state;
	struct file *resuming;	/* the RESUMING data file, referenced */
};

static struct vir_mdev_parent {
	struct device dev;
	struct mdev_parent parent;
	struct class *class;
} vir_parent;

static struct mdev_type vir_type = { .sysfs_name = "1", .pretty_name = "vir_mdev test device" };
static struct mdev_type *vir_types[] = { &vir_type };

static long held_pages(struct vir_mdev *m)
{
	struct vir_pin *p;
	long n = 0;

	list_for_each_entry(p, &m->pins, next)
		n += p->npages;
	return n;
}

/* Unpins and frees a record that is on no list any more. */
static void vir_unpin(struct vir_mdev *m, struct vir_pin *p)
{
	int done;

	for (done = 0; done < p->npages; done += VFIO_PIN_PAGES_MAX_ENTRIES)
		vfio_unpin_pages(&m->vdev, p->iova + (u64)done * PAGE_SIZE,
				 min_t(int, p->npages - done, VFIO_PIN_PAGES_MAX_ENTRIES));
	kvfree(p->pages);
	kfree(p);
}

/* Unpins and frees the records of @list. */
static void vir_unpin_list(struct vir_mdev *m, struct list_head *list)
{
	struct vir_pin *p, *tmp;

	list_for_each_entry_safe(p, tmp, list, next) {
		list_del(&p->next);
		vir_unpin(m, p);
	}
}

static int vir_pin(struct vir_mdev *m, struct vir_mdev_cmd *cmd)
{
	bool write = cmd->flags & VIR_MDEV_FLAG_WRITE;
	int prot = IOMMU_READ | (write ? IOMMU_WRITE : 0);
	struct vir_pin *p;
	int done, ret, i;

	BUILD_BUG_ON(VIR_MDEV_PIN_CHUNK != VFIO_PIN_PAGES_MAX_ENTRIES);
	if (!cmd->count || cmd->count > (1 << 20))
		return -EINVAL;
	p = kzalloc(sizeof(*p), GFP_KERNEL);
	if (!p)
		return -ENOMEM;
	p->pages = kvcalloc(cmd->count, sizeof(*p->pages), GFP_KERNEL);
	if (!p->pages) {
		kfree(p);
		return -ENOMEM;
	}
	p->iova = cmd->iova;
	for (done = 0; done < cmd->count; done += ret) {
		ret = vfio_pin_pages(&m->vdev, cmd->iova + (u64)done * PAGE_SIZE,
				     min_t(int, cmd->count - done, VIR_MDEV_PIN_CHUNK),
				     prot, p->pages + done);
		if (ret <= 0) {
			p->npages = done;
			vir_unpin(m, p);
			return ret ? ret : -EFAULT;
		}
	}
	p->npages = done;
	if (write) {
		/* The device writes every page it pinned. */
		for (i = 0; i < p->npages; i++) {
			void *va = kmap_local_page(p->pages[i]);

			memset(va, cmd->value, PAGE_SIZE);
			kunmap_local(va);
		}
	}
	mutex_lock(&m->lock);
	list_add(&p->next, &m->pins);
	mutex_unlock(&m->lock);
	return 0;
}

/* Unpins what one PIN of exactly @iova/@count pinned. */
static int vir_unpin_exact(struct vir_mdev *m, u64 iova, u64 count)
{
	struct vir_pin *p, *found = NULL;

	mutex_lock(&m->lock);
	list_for_each_entry(p, &m->pins, next) {
		if (p->iova == iova && p->npages == count) {
			list_del(&p->next);
			found = p;
			break;
		}
	}
	mutex_unlock(&m->lock);
	if (!found)
		return -ENOENT;
	vir_unpin(m, found);
	return 0;
}

static int vir_rw(struct vir_mdev *m, struct vir_mdev_cmd *cmd, bool write)
{
	void *buf;
	int ret;

	BUILD_BUG_ON(VIR_MDEV_PIN_CHUNK != VFIO_PIN_PAGES_MAX_ENTRIES);
	if (!cmd->count || cmd->count > (1 << 20))
		return -EINVAL;
	buf = kvzalloc(cmd->count, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	if (write && copy_from_user(buf, u64_to_user_ptr(cmd->buf), cmd->count)) {
		ret = -EFAULT;
		goto out;
	}
	ret = vfio_dma_rw(&m->vdev, cmd->iova, buf, cmd->count, write);
	if (!ret && !write && copy_to_user(u64_to_user_ptr(cmd->buf), buf, cmd->count))
		ret = -EFAULT;
out:
	kvfree(buf);
	return ret;
}

/* --- The PCI device: config space and BAR0 ------------------------------------------------- */

static void vir_init_config(struct vir_mdev *m)
{
	u8 *c = m->config;

	put_unaligned_le16(VIR_MDEV_VENDOR, c + PCI_VENDOR_ID);
	put_unaligned_le16(VIR_MDEV_DEVICE, c + PCI_DEVICE_ID);
	c[PCI_REVISION_ID] = 1;
	put_unaligned_le16(PCI_CLASS_OTHERS << 8, c + PCI_CLASS_DEVICE);
	/* BAR0: 32-bit memory, not prefetchable (type bits 0). No capabilities, no interrupt pin. */
	put_unaligned_le16(VIR_MDEV_VENDOR, c + PCI_SUBSYSTEM_VENDOR_ID);
	put_unaligned_le16(VIR_MDEV_DEVICE, c + PCI_SUBSYSTEM_ID);
}

/* Writable config bytes: the command register, BAR0 (sized as 4 KiB), the interrupt line. */
static void vir_config_write(struct vir_mdev *m, u64 off, const u8 *buf, size_t count)
{
	size_t i;

	mutex_lock(&m->lock);
	for (i = 0; i < count; i++) {
		u64 o = off + i;

		if ((o >= PCI_COMMAND && o < PCI_COMMAND + 2) || o == PCI_INTERRUPT_LINE ||
		    (o >= PCI_BASE_ADDRESS_0 && o < PCI_BASE_ADDRESS_0 + 4))
			m->config[o] = buf[i];
	}
	put_unaligned_le32(get_unaligned_le32(m->config + PCI_BASE_ADDRESS_0) &
			   ~(u32)(VIR_MDEV_BAR0_SIZE - 1), m->config + PCI_BASE_ADDRESS_0);
	mutex_unlock(&m->lock);
}

/* The register file as the VM reads it. Called with m->lock held. */
static void vir_bar0_image(struct vir_mdev *m, u8 *image)
{
	memset(image, 0, VIR_REG_END);
	put_unaligned_le32(VIR_MDEV_ID, image + VIR_REG_ID);
	put_unaligned_le64(m->reg_iova, image + VIR_REG_IOVA);
	put_unaligned_le32(m->reg_count, image + VIR_REG_COUNT);
	put_unaligned_le32(m->reg_value, image + VIR_REG_VALUE);
	put_unaligned_le32(m->reg_status, image + VIR_REG_STATUS);
	put_unaligned_le32(held_pages(m), image + VIR_REG_HELD);
}

static void vir_bar0_read(struct vir_mdev *m, u64 off, u8 *buf, size_t count)
{
	u8 image[VIR_REG_END];
	size_t i;

	mutex_lock(&m->lock);
	vir_bar0_image(m, image);
	mutex_unlock(&m->lock);
	for (i = 0; i < count; i++)
		buf[i] = off + i < VIR_REG_END ? image[off + i] : 0;
}

/* What the device does when the VM writes COMMAND; returns 0 or a negative errno. */
static int vir_run_command(struct vir_mdev *m, u32 command, u64 iova, u32 count, u32 value)
{
	struct vir_mdev_cmd cmd = {
		.iova = iova, .count = count, .flags = VIR_MDEV_FLAG_WRITE, .value = value,
	};
	bool running;
	void *buf;
	int ret;

	mutex_lock(&m->state_lock);
	running = m->state == VFIO_DEVICE_STATE_RUNNING;
	mutex_unlock(&m->state_lock);
	/*
	 * A stopped device does not touch memory (migration relies on it). Checked when a command
	 * starts: QEMU stops the device only after the VM, which issues the commands, has stopped.
	 */
	if (!running)
		return -EBUSY;
	switch (command) {
	case VIR_CMD_PIN_WRITE:
		return vir_pin(m, &cmd);
	case VIR_CMD_UNPIN:
		return vir_unpin_exact(m, iova, count);
	case VIR_CMD_DMA_WRITE:
		if (!count || count > 256)
			return -EINVAL;
		buf = kvmalloc(count * PAGE_SIZE, GFP_KERNEL);
		if (!buf)
			return -ENOMEM;
		memset(buf, value, count * PAGE_SIZE);
		ret = vfio_dma_rw(&m->vdev, iova, buf, count * PAGE_SIZE, true);
		kvfree(buf);
		return ret;
	default:
		return -EINVAL;
	}
}

static void vir_bar0_write(struct vir_mdev *m, u64 off, const u8 *buf, size_t count)
{
	u8 image[VIR_REG_END];
	bool command = false;
	u32 cmd = 0, cnt, val;
	u64 iova;
	size_t i;
	int ret;

	mutex_lock(&m->lock);
	vir_bar0_image(m, image);
	for (i = 0; i < count; i++) {
		u64 o = off + i;

		if (o >= VIR_REG_IOVA && o < VIR_REG_COMMAND)
			image[o] = buf[i];
		if (o >= VIR_REG_COMMAND && o < VIR_REG_COMMAND + 4) {
			cmd |= (u32)buf[i] << (8 * (o - VIR_REG_COMMAND));
			command = true;
		}
	}
	m->reg_iova = iova = get_unaligned_le64(image + VIR_REG_IOVA);
	m->reg_count = cnt = get_unaligned_le32(image + VIR_REG_COUNT);
	m->reg_value = val = get_unaligned_le32(image + VIR_REG_VALUE);
	mutex_unlock(&m->lock);
	if (!command)
		return;
	ret = vir_run_command(m, cmd, iova, cnt, val);
	mutex_lock(&m->lock);
	m->reg_status = -ret;
	mutex_unlock(&m->lock);
}

/* Reads and writes of the config region and BAR0 through the device fd. */
static ssize_t vir_region_rw(struct vfio_device *vdev, char __user *ubuf, size_t count,
			     loff_t *ppos, bool write)
{
	struct vir_mdev *m = container_of(vdev, struct vir_mdev, vdev);
	unsigned int index = *ppos >> VIR_INDEX_SHIFT;
	u64 off = *ppos & VIR_OFFSET_MASK, size;
	u8 buf[VIR_CONFIG_SIZE];

	switch (index) {
	case VFIO_PCI_CONFIG_REGION_INDEX:
		size = VIR_CONFIG_SIZE;
		break;
	case VFIO_PCI_BAR0_REGION_INDEX:
		size = VIR_MDEV_BAR0_SIZE;
		break;
	default:
		return -EINVAL;
	}
	if (off >= size || !count)
		return -EINVAL;
	count = min3(count, (size_t)(size - off), sizeof(buf));
	if (write) {
		if (copy_from_user(buf, ubuf, count))
			return -EFAULT;
		if (index == VFIO_PCI_CONFIG_REGION_INDEX)
			vir_config_write(m, off, buf, count);
		else
			vir_bar0_write(m, off, buf, count);
	} else {
		if (index == VFIO_PCI_CONFIG_REGION_INDEX) {
			mutex_lock(&m->lock);
			memcpy(buf, m->config + off, count);
			mutex_unlock(&m->lock);
		} else {
			vir_bar0_read(m, off, buf, count);
		}
		if (copy_to_user(ubuf, buf, count))
			return -EFAULT;
	}
	*ppos += count;
	return count;
}

static ssize_t vir_read(struct vfio_device *vdev, char __user *buf, size_t count, loff_t *ppos)
{
	return vir_region_rw(vdev, buf, count, ppos, false);
}

static ssize_t vir_write(struct vfio_device *vdev, const char __user *buf, size_t count,
			 loff_t *ppos)
{
	return vir_region_rw(vdev, (char __user *)buf, count, ppos, true);
}

/*
 * Reads the first @minsz bytes of an info ioctl's argument into @info, whose first field is argsz,
 * which must cover them.
 */
static int vir_info_in(unsigned long arg, void *info, unsigned long minsz)
{
	if (copy_from_user(info, (void __user *)arg, minsz))
		return -EFAULT;
	return *(u32 *)info < minsz ? -EINVAL : 0;
}

static long vir_info_out(unsigned long arg, const void *info, unsigned long minsz)
{
	return copy_to_user((void __user *)arg, info, minsz) ? -EFAULT : 0;
}

/* VFIO_DEVICE_RESET: the registers are cleared and the device gives back what it has pinned. */
static long vir_reset(struct vir_mdev *m)
{
	LIST_HEAD(pins);

	mutex_lock(&m->lock);
	m->reg_iova = 0;
	m->reg_count = 0;
	m->reg_value = 0;
	m->reg_status = 0;
	list_splice_init(&m->pins, &pins);
	mutex_unlock(&m->lock);
	vir_unpin_list(m, &pins);
	return 0;
}

/* A region's offset in the device fd, size and flags: the config space and BAR0, nothing else. */
static int vir_region_info(struct vfio_region_info *region)
{
	if (region->index >= VFIO_PCI_NUM_REGIONS)
		return -EINVAL;
	region->offset = (u64)region->index << VIR_INDEX_SHIFT;
	region->size = region->index == VFIO_PCI_CONFIG_REGION_INDEX ? VIR_CONFIG_SIZE :
		       region->index == VFIO_PCI_BAR0_REGION_INDEX ? VIR_MDEV_BAR0_SIZE : 0;
	region->flags = region->size ? VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE : 0;
	return 0;
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 19, 0)
/*
 * Newer VFIO cores (7.3 here; 6.12 has no such op) serve VFIO_DEVICE_GET_REGION_INFO themselves,
 * through this op, and no longer pass it to .ioctl.
 */
static int vir_get_region_info_caps(struct vfio_device *vdev, struct vfio_region_info *info,
				    struct vfio_info_cap *caps)
{
	return vir_region_info(info);
}
#endif

/*
 * The vfio-pci ioctls QEMU needs: device, region and interrupt info (no interrupts: INTx, MSI and
 * MSI-X have none, error and request notification do not exist), and reset.
 */
static long vir_vfio_ioctl(struct vir_mdev *m, unsigned int op, unsigned long arg)
{
	struct vfio_device_info dev;
	struct vfio_region_info region;
	struct vfio_irq_info irq;
	unsigned long minsz;
	int ret;

	switch (op) {
	case VFIO_DEVICE_GET_INFO:
		minsz = offsetofend(struct vfio_device_info, num_irqs);
		ret = vir_info_in(arg, &dev, minsz);
		if (ret)
			return ret;
		dev.flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
		dev.num_regions = VFIO_PCI_NUM_REGIONS;
		dev.num_irqs = VFIO_PCI_NUM_IRQS;
		return vir_info_out(arg, &dev, minsz);
	case VFIO_DEVICE_GET_REGION_INFO:
		minsz = offsetofend(struct vfio_region_info, offset);
		ret = vir_info_in(arg, &region, minsz);
		if (ret)
			return ret;
		ret = vir_region_info(&region);
		if (ret)
			return ret;
		return vir_info_out(arg, &region, minsz);
	case VFIO_DEVICE_GET_IRQ_INFO:
		minsz = offsetofend(struct vfio_irq_info, count);
		ret = vir_info_in(arg, &irq, minsz);
		if (ret)
			return ret;
		if (irq.index > VFIO_PCI_MSIX_IRQ_INDEX)
			return -EINVAL;
		irq.flags = 0;
		irq.count = 0;
		return vir_info_out(arg, &irq, minsz);
	case VFIO_DEVICE_RESET:
		return vir_reset(m);
	default:
		return -ENOTTY;
	}
}

/* --- VFIO migration v2, STOP_COPY only ------------------------------------------------------ */

static int vir_migf_release(struct inode *inode, struct file *filp)
{
	struct vir_migf *migf = filp->private_data;

	mutex_destroy(&migf->lock);
	kfree(migf);
	return 0;
}

static ssize_t vir_save_read(struct file *filp, char __user *buf, size_t len, loff_t *pos)
{
	struct vir_migf *migf = filp->private_data;
	ssize_t ret;

	if (pos)
		return -ESPIPE;
	pos = &filp->f_pos;
	mutex_lock(&migf->lock);
	ret = simple_read_from_buffer(buf, len, pos, &migf->data, migf->filled);
	mutex_unlock(&migf->lock);
	return ret;
}

static ssize_t vir_resume_write(struct file *filp, const char __user *buf, size_t len,
				loff_t *pos)
{
	struct vir_migf *migf = filp->private_data;
	ssize_t ret;

	if (pos)
		return -ESPIPE;
	pos = &filp->f_pos;
	mutex_lock(&migf->lock);
	ret = simple_write_to_buffer(&migf->data, sizeof(migf->data), pos, buf, len);
	if (ret > 0)
		migf->filled = max_t(size_t, migf->filled, *pos);
	mutex_unlock(&migf->lock);
	return ret;
}

static const struct file_operations vir_save_fops = {
	.owner = THIS_MODULE,
	.read = vir_save_read,
	.release = vir_migf_release,
};

static const struct file_operations vir_resume_fops = {
	.owner = THIS_MODULE,
	.write = vir_resume_write,
	.release = vir_migf_release,
};

static struct file *vir_migf_open(const struct file_operations *fops, int flags,
				  struct vir_migf **out)
{
	struct vir_migf *migf;
	struct file *filp;

	migf = kzalloc(sizeof(*migf), GFP_KERNEL_ACCOUNT);
	if (!migf)
		return ERR_PTR(-ENOMEM);
	mutex_init(&migf->lock);
	filp = anon_inode_getfile("vir_mdev_mig", fops, migf, flags);
	if (IS_ERR(filp)) {
		mutex_destroy(&migf->lock);
		kfree(migf);
		return filp;
	}
	stream_open(filp->f_inode, filp);
	*out = migf;
	return filp;
}

/* STOP -> STOP_COPY: a file that reads back the registers. Called with m->state_lock held. */
static struct file *vir_save_file(struct vir_mdev *m)
{
	struct vir_migf *migf;
	struct file *filp;

	filp = vir_migf_open(&vir_save_fops, O_RDONLY, &migf);
	if (IS_ERR(filp))
		return filp;
	mutex_lock(&m->lock);
	migf->data.magic = cpu_to_le32(VIR_MIG_MAGIC);
	migf->data.version = cpu_to_le32(VIR_MIG_VERSION);
	migf->data.iova = cpu_to_le64(m->reg_iova);
	migf->data.count = cpu_to_le32(m->reg_count);
	migf->data.value = cpu_to_le32(m->reg_value);
	mutex_unlock(&m->lock);
	migf->filled = sizeof(migf->data);
	return filp;
}

/* RESUMING -> STOP: load what QEMU wrote. Called with m->state_lock held. */
static int vir_load(struct vir_mdev *m)
{
	struct vir_migf *migf = m->resuming->private_data;
	int ret = 0;

	mutex_lock(&migf->lock);
	if (migf->filled != sizeof(migf->data) ||
	    le32_to_cpu(migf->data.magic) != VIR_MIG_MAGIC ||
	    le32_to_cpu(migf->data.version) != VIR_MIG_VERSION) {
		ret = -EINVAL;
	} else {
		mutex_lock(&m->lock);
		m->reg_iova = le64_to_cpu(migf->data.iova);
		m->reg_count = le32_to_cpu(migf->data.count);
		m->reg_value = le32_to_cpu(migf->data.value);
		mutex_unlock(&m->lock);
	}
	mutex_unlock(&migf->lock);
	return ret;
}

static void vir_drop_resuming(struct vir_mdev *m)
{
	if (m->resuming) {
		fput(m->resuming);
		m->resuming = NULL;
	}
}

/* One arc of the migration state machine (vfio_mig_get_next_state() picks them). */
static struct file *vir_step_state(struct vir_mdev *m, enum vfio_device_mig_state new)
{
	enum vfio_device_mig_state cur = m->state;
	struct vir_migf *migf;
	struct file *filp;
	int ret;

	if ((cur == VFIO_DEVICE_STATE_RUNNING && new == VFIO_DEVICE_STATE_STOP) ||
	    (cur == VFIO_DEVICE_STATE_STOP && new == VFIO_DEVICE_STATE_RUNNING) ||
	    (cur == VFIO_DEVICE_STATE_STOP_COPY && new == VFIO_DEVICE_STATE_STOP))
		return NULL;
	if (cur == VFIO_DEVICE_STATE_STOP && new == VFIO_DEVICE_STATE_STOP_COPY)
		return vir_save_file(m);
	if (cur == VFIO_DEVICE_STATE_STOP && new == VFIO_DEVICE_STATE_RESUMING) {
		filp = vir_migf_open(&vir_resume_fops, O_WRONLY, &migf);
		if (IS_ERR(filp))
			return filp;
		m->resuming = get_file(filp);
		return filp;
	}
	if (cur == VFIO_DEVICE_STATE_RESUMING && new == VFIO_DEVICE_STATE_STOP) {
		ret = vir_load(m);
		vir_drop_resuming(m);
		return ret ? ERR_PTR(ret) : NULL;
	}
	WARN_ON_ONCE(1);
	return ERR_PTR(-EINVAL);
}

static struct file *vir_set_state(struct vfio_device *vdev, enum vfio_device_mig_state new)
{
	struct vir_mdev *m = container_of(vdev, struct vir_mdev, vdev);
	enum vfio_device_mig_state next;
	struct file *filp = NULL;
	int ret;

	mutex_lock(&m->state_lock);
	while (m->state != new) {
		ret = vfio_mig_get_next_state(vdev, m->state, new, &next);
		if (ret) {
			filp = ERR_PTR(ret);
			break;
		}
		filp = vir_step_state(m, next);
		if (IS_ERR(filp))
			break;
		m->state = next;
		if (WARN_ON_ONCE(filp && next != new)) {
			fput(filp);
			filp = ERR_PTR(-EINVAL);
			break;
		}
	}
	mutex_unlock(&m->state_lock);
	return filp;
}

static int vir_get_state(struct vfio_device *vdev, enum vfio_device_mig_state *state)
{
	struct vir_mdev *m = container_of(vdev, struct vir_mdev, vdev);

	mutex_lock(&m->state_lock);
	*state = m->state;
	mutex_unlock(&m->state_lock);
	return 0;
}

static int vir_get_data_size(struct vfio_device *vdev, unsigned long *stop_copy_length)
{
	*stop_copy_length = sizeof(struct vir_mig_data);
	return 0;
}

static const struct vfio_migration_ops vir_migration_ops = {
	.migration_set_state = vir_set_state,
	.migration_get_state = vir_get_state,
	.migration_get_data_size = vir_get_data_size,
};

/* --- VFIO device ops -------------------------------------------------------------------------- */

static long vir_ioctl(struct vfio_device *vdev, unsigned int op, unsigned long arg)
{
	struct vir_mdev *m = container_of(vdev, struct vir_mdev, vdev);
	struct vir_mdev_cmd cmd;
	long ret = 0;

	if (_IOC_TYPE(op) == VFIO_TYPE)
		return vir_vfio_ioctl(m, op, arg);
	if (_IOC_TYPE(op) != 'V')
		return -ENOTTY;
	if (copy_from_user(&cmd, (void __user *)arg, sizeof(cmd)))
		return -EFAULT;
	switch (op) {
	case VIR_MDEV_PIN:
		ret = vir_pin(m, &cmd);
		mutex_lock(&m->lock);
		cmd.out = held_pages(m);
		mutex_unlock(&m->lock);
		break;
	case VIR_MDEV_UNPIN:
		ret = vir_unpin_exact(m, cmd.iova, cmd.count);
		break;
	case VIR_MDEV_WRITE:
	case VIR_MDEV_READ:
		ret = vir_rw(m, &cmd, op == VIR_MDEV_WRITE);
		break;
	case VIR_MDEV_MISBEHAVE:
		mutex_lock(&m->lock);
		m->misbehave = cmd.value;
		mutex_unlock(&m->lock);
		break;
	case VIR_MDEV_STATS:
		mutex_lock(&m->lock);
		cmd.out = atomic64_read(&m->notifications);
		cmd.count = held_pages(m);
		mutex_unlock(&m->lock);
		break;
	default:
		ret = -ENOTTY;
	}
	if (!ret && copy_to_user((void __user *)arg, &cmd, sizeof(cmd)))
		ret = -EFAULT;
	return ret;
}

/* The container is unmapping [iova, iova + length): give back what is pinned there. */
static void vir_dma_unmap(struct vfio_device *vdev, u64 iova, u64 length)
{
	struct vir_mdev *m = container_of(vdev, struct vir_mdev, vdev);
	struct vir_pin *p, *tmp;
	LIST_HEAD(unpin);

	atomic64_inc(&m->notifications);
	mutex_lock(&m->lock);
	if (!m->misbehave) {
		list_for_each_entry_safe(p, tmp, &m->pins, next) {
			/* Inclusive ends: a range may end at the top of the address space. */
			u64 last = p->iova + (u64)p->npages * PAGE_SIZE - 1;

			if (length && p->iova <= iova + (length - 1) && last >= iova)
				list_move(&p->next, &unpin);
		}
	}
	mutex_unlock(&m->lock);
	vir_unpin_list(m, &unpin);
}

static void vir_close_device(struct vfio_device *vdev)
{
	struct vir_mdev *m = container_of(vdev, struct vir_mdev, vdev);
	struct vir_pin *p, *tmp;
	int misbehave;
	LIST_HEAD(pins);

	mutex_lock(&m->state_lock);
	vir_drop_resuming(m);
	m->state = VFIO_DEVICE_STATE_RUNNING;
	mutex_unlock(&m->state_lock);
	mutex_lock(&m->lock);
	list_splice_init(&m->pins, &pins);
	misbehave = m->misbehave;
	m->misbehave = 0;
	mutex_unlock(&m->lock);
	if (misbehave != 2) {
		vir_unpin_list(m, &pins);
		return;
	}
	/* Walk away from the pins: the container must clean up. */
	list_for_each_entry_safe(p, tmp, &pins, next) {
		list_del(&p->next);
		kvfree(p->pages);
		kfree(p);
	}
}

static int vir_init_dev(struct vfio_device *vdev)
{
	struct vir_mdev *m = container_of(vdev, struct vir_mdev, vdev);

	mutex_init(&m->lock);
	mutex_init(&m->state_lock);
	INIT_LIST_HEAD(&m->pins);
	vir_init_config(m);
	m->state = VFIO_DEVICE_STATE_RUNNING;
	vdev->migration_flags = VFIO_MIGRATION_STOP_COPY;
	vdev->mig_ops = &vir_migration_ops;
	return 0;
}

static void vir_release_dev(struct vfio_device *vdev)
{
	struct vir_mdev *m = container_of(vdev, struct vir_mdev, vdev);

	mutex_destroy(&m->state_lock);
	mutex_destroy(&m->lock);
}

static const struct vfio_device_ops vir_dev_ops = {
	.name = "vir-mdev",
	.init = vir_init_dev,
	.release = vir_release_dev,
	.ioctl = vir_ioctl,
	.read = vir_read,
	.write = vir_write,
	.dma_unmap = vir_dma_unmap,
	.close_device = vir_close_device,
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 19, 0)
	.get_region_info_caps = vir_get_region_info_caps,
#endif
	/*
	 * Required by the VFIO core on CONFIG_IOMMUFD kernels (NULL otherwise); the device is also
	 * usable through iommufd then, as the kernel's mdev samples are.
	 */
	.bind_iommufd = vfio_iommufd_emulated_bind,
	.unbind_iommufd = vfio_iommufd_emulated_unbind,
	.attach_ioas = vfio_iommufd_emulated_attach_ioas,
	.detach_ioas = vfio_iommufd_emulated_detach_ioas,
};

static int vir_probe(struct mdev_device *mdev)
{
	struct vir_mdev *m;
	int ret;

	m = vfio_alloc_device(vir_mdev, vdev, &mdev->dev, &vir_dev_ops);
	if (IS_ERR(m))
		return PTR_ERR(m);
	ret = vfio_register_emulated_iommu_dev(&m->vdev);
	if (ret) {
		vfio_put_device(&m->vdev);
		return ret;
	}
	dev_set_drvdata(&mdev->dev, m);
	return 0;
}

static void vir_remove(struct mdev_device *mdev)
{
	struct vir_mdev *m = dev_get_drvdata(&mdev->dev);

	vfio_unregister_group_dev(&m->vdev);
	vfio_put_device(&m->vdev);
}

static unsigned int vir_get_available(struct mdev_type *mtype)
{
	return 16;
}

static struct mdev_driver vir_driver = {
	.device_api = VFIO_DEVICE_API_PCI_STRING,
	.driver = {
		.name = "vir_mdev",
		.owner = THIS_MODULE,
		.mod_name = KBUILD_MODNAME,
	},
	.probe = vir_probe,
	.remove = vir_remove,
	.get_available = vir_get_available,
};

static void vir_parent_release(struct device *dev)
{
}

static int __init vir_mdev_init(void)
{
	int ret;

	ret = mdev_register_driver(&vir_driver);
	if (ret)
		return ret;
	vir_parent.class = class_create("vir_mdev");
	if (IS_ERR(vir_parent.class)) {
		ret = PTR_ERR(vir_parent.class);
		goto err_driver;
	}
	vir_parent.dev.class = vir_parent.class;
	vir_parent.dev.release = vir_parent_release;
	dev_set_name(&vir_parent.dev, "vir_mdev");
	ret = device_register(&vir_parent.dev);
	if (ret)
		goto err_put;
	ret = mdev_register_parent(&vir_parent.parent, &vir_parent.dev, &vir_driver, vir_types,
				   ARRAY_SIZE(vir_types));
	if (ret)
		goto err_device;
	return 0;

err_device:
	device_del(&vir_parent.dev);
err_put:
	put_device(&vir_parent.dev);
	class_destroy(vir_parent.class);
err_driver:
	mdev_unregister_driver(&vir_driver);
	return ret;
}

static void __exit vir_mdev_exit(void)
{
	vir_parent.dev.bus = NULL;
	mdev_unregister_parent(&vir_parent.parent);
	device_unregister(&vir_parent.dev);
	mdev_unregister_driver(&vir_driver);
	class_destroy(vir_parent.class);
}

module_init(vir_mdev_init);
module_exit(vir_mdev_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("vfio-iommu-rust test vendor driver: pins, writes and dma_rw on request");
