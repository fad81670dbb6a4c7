// SPDX-License-Identifier: GPL-2.0
/*
 * vir_mdev: a test vendor driver for vfio-iommu-rust. Each mediated device is an emulated-IOMMU
 * VFIO device whose ioctls (vir_mdev.h) pin pages through the container (vfio_pin_pages) and write
 * to them as a device would, unpin them, and access memory with vfio_dma_rw(). It implements
 * dma_unmap by unpinning everything in the range, unless told to misbehave.
 *
 * Create one with: echo $UUID > /sys/class/mdev_bus/vir_mdev/mdev_supported_types/vir_mdev-1/create
 */
#include <linux/device.h>
#include <linux/highmem.h>
#include <linux/iommu.h>
#include <linux/mdev.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vfio.h>

#include "vir_mdev.h"

struct vir_pin {
	struct list_head next;
	dma_addr_t iova;
	int npages;
	struct page **pages;
};

/*
 * Locking: m->lock protects the pin records and the knobs only. It is never held while calling
 * into VFIO (vfio_pin_pages, vfio_unpin_pages, vfio_dma_rw), because the container may call
 * dma_unmap, which takes it, while holding its own locks (type1 holds its device list lock).
 */
struct vir_mdev {
	struct vfio_device vdev;
	struct mutex lock;		/* protects pins, misbehave */
	struct list_head pins;
	int misbehave;		/* 1: ignore dma_unmap; 2: also keep the pins at close */
	atomic64_t notifications;
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
				     min_t(int, cmd->count - done, VFIO_PIN_PAGES_MAX_ENTRIES),
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

static int vir_rw(struct vir_mdev *m, struct vir_mdev_cmd *cmd, bool write)
{
	void *buf;
	int ret;

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

static long vir_ioctl(struct vfio_device *vdev, unsigned int op, unsigned long arg)
{
	struct vir_mdev *m = container_of(vdev, struct vir_mdev, vdev);
	struct vir_mdev_cmd cmd;
	struct vir_pin *p, *tmp;
	long ret = 0;

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
	case VIR_MDEV_UNPIN: {
		struct vir_pin *found = NULL;

		mutex_lock(&m->lock);
		list_for_each_entry_safe(p, tmp, &m->pins, next) {
			if (p->iova == cmd.iova && p->npages == cmd.count) {
				list_del(&p->next);
				found = p;
				break;
			}
		}
		mutex_unlock(&m->lock);
		ret = found ? 0 : -ENOENT;
		if (found)
			vir_unpin(m, found);
		break;
	}
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
	INIT_LIST_HEAD(&m->pins);
	return 0;
}

static void vir_release_dev(struct vfio_device *vdev)
{
	struct vir_mdev *m = container_of(vdev, struct vir_mdev, vdev);

	mutex_destroy(&m->lock);
}

static const struct vfio_device_ops vir_dev_ops = {
	.name = "vir-mdev",
	.init = vir_init_dev,
	.release = vir_release_dev,
	.ioctl = vir_ioctl,
	.dma_unmap = vir_dma_unmap,
	.close_device = vir_close_device,
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
