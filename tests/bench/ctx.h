/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vir-bench: what a workload maps through, a legacy container (type1 or ours) or an
 * iommufd IOAS with the devices' cdevs attached, and the vendor device's commands. Included by
 * bench.c only (one translation unit).
 */
#ifndef VIR_BENCH_CTX_H
#define VIR_BENCH_CTX_H

/* --- Containers and IOASes --------------------------------------------------------------------- */

/* The devices a workload needs, by index into the tables below. */
enum { EDU, EDU2, VMDEV, NDEVS };
#define WANT(d) (1U << (d))

static const char *const group_env[NDEVS] = {
	"VFIO_TEST_GROUP", "VFIO_TEST_GROUP2", "VFIO_TEST_VMDEV_GROUP",
};
static const char *const dev_env[NDEVS] = { "VFIO_TEST_BDF", "VFIO_TEST_BDF2", "VFIO_TEST_VMDEV" };
static const char *const dev_bus[NDEVS] = { "pci", "pci", "mdev" };

/*
 * What a workload maps through: a legacy container (type1 or ours) holding the groups of the
 * devices asked for, or an iommufd context with an IOAS that the devices' cdevs are attached to.
 * Device fds: legacy, only those of EDU2 and VMDEV (the workloads use them); iommufd, all of them
 * (a cdev is the device).
 */
struct ctx {
	enum bk b;
	int fd;			/* /dev/vfio/vfio or /dev/iommu */
	__u32 ioas;
	int group[NDEVS];
	int dev[NDEVS];
	__u32 devid[NDEVS];
};

/* The /dev/vfio/devices/vfioN path of device @d. */
static void cdev_path(int d, char *path, size_t len)
{
	char dir[256];
	struct dirent *e;
	DIR *dp;

	snprintf(dir, sizeof(dir), "/sys/bus/%s/devices/%s/vfio-dev", dev_bus[d], env_str(dev_env[d]));
	dp = opendir(dir);
	if (!dp)
		failf("%s: %s (a kernel without CONFIG_VFIO_DEVICE_CDEV?)", dir, strerror(errno));
	while ((e = readdir(dp)))
		if (!strncmp(e->d_name, "vfio", 4))
			break;
	if (!e)
		failf("no vfio cdev under %s", dir);
	snprintf(path, len, "/dev/vfio/devices/%s", e->d_name);
	closedir(dp);
}

static void iommufd_open(struct ctx *c, unsigned int want)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	int d;

	c->fd = open("/dev/iommu", O_RDWR);
	if (c->fd < 0)
		fail("opening /dev/iommu (iommufd loaded?)", errno);
	if (ioctl(c->fd, IOMMU_IOAS_ALLOC, &alloc))
		fail("IOMMU_IOAS_ALLOC", errno);
	c->ioas = alloc.out_ioas_id;
	for (d = 0; d < NDEVS; d++) {
		struct vfio_device_bind_iommufd bind = {
			.argsz = sizeof(bind), .iommufd = c->fd,
		};
		struct vfio_device_attach_iommufd_pt attach = {
			.argsz = sizeof(attach), .pt_id = c->ioas,
		};
		char path[300];

		if (!(want & WANT(d)))
			continue;
		cdev_path(d, path, sizeof(path));
		c->dev[d] = open(path, O_RDWR);
		if (c->dev[d] < 0)
			failf("opening %s: %s", path, strerror(errno));
		if (ioctl(c->dev[d], VFIO_DEVICE_BIND_IOMMUFD, &bind))
			failf("VFIO_DEVICE_BIND_IOMMUFD %s (its group still open?): %s", path,
			      strerror(errno));
		c->devid[d] = bind.out_devid;
		if (ioctl(c->dev[d], VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach))
			failf("VFIO_DEVICE_ATTACH_IOMMUFD_PT %s: %s", path, strerror(errno));
		/*
		 * The proof that iommufd serves the device: a physical device attached to an IOAS
		 * gets a hardware page table of its own (an IOMMU domain), whose id comes back; an
		 * emulated one is attached to the IOAS itself, through an iommufd access.
		 */
		if (d == VMDEV ? attach.pt_id != c->ioas : attach.pt_id == c->ioas)
			failf("%s attached to page table %u (IOAS %u)", path, attach.pt_id, c->ioas);
		if (d != VMDEV) {
			struct iommu_hw_info info = {
				.size = sizeof(info), .dev_id = c->devid[d],
			};

			if (ioctl(c->fd, IOMMU_GET_HW_INFO, &info))
				fail("IOMMU_GET_HW_INFO", errno);
			if (info.out_data_type != IOMMU_HW_INFO_TYPE_INTEL_VTD)
				failf("%s: IOMMU type %u, not VT-d", path, info.out_data_type);
		}
	}
}

/* A container over the groups of @want, served by @b (checked by module reference). */
static void legacy_open(struct ctx *c, unsigned int want)
{
	struct backend_refs before = backend_refs(), after;
	bool first = true;
	int d, err;

	for (d = 0; d < NDEVS; d++) {
		if (!(want & WANT(d)))
			continue;
		if (first) {
			err = open_container(env_int(group_env[d]), VFIO_TYPE1v2_IOMMU, &c->fd,
					     &c->group[d]);
			if (err)
				fail("opening a container", err);
			after = backend_refs();
			if (c->b == RUST ? after.rust != before.rust + 1 :
					   after.type1 != before.type1 + 1)
				fail("container served by the wrong backend", EPROTO);
			first = false;
		} else {
			c->group[d] = open_group(env_int(group_env[d]));
			if (c->group[d] < 0)
				fail("opening a group", errno);
			if (ioctl(c->group[d], VFIO_GROUP_SET_CONTAINER, &c->fd))
				fail("adding a group to the container", errno);
		}
		if (d != EDU) {
			c->dev[d] = ioctl(c->group[d], VFIO_GROUP_GET_DEVICE_FD, env_str(dev_env[d]));
			if (c->dev[d] < 0)
				fail("getting a device fd", errno);
		}
	}
}

static void ctx_open(enum bk b, unsigned int want, struct ctx *c)
{
	int d;

	c->b = b;
	c->fd = -1;
	for (d = 0; d < NDEVS; d++)
		c->group[d] = c->dev[d] = -1;
	if (b == IOMMUFD)
		iommufd_open(c, want);
	else
		legacy_open(c, want);
}

/* Closes everything: the vendor device first (it gives back its pins), the container last. */
static void ctx_close(struct ctx *c)
{
	int d;

	for (d = NDEVS - 1; d >= 0; d--) {
		if (c->dev[d] >= 0)
			close(c->dev[d]);
		if (c->group[d] >= 0)
			close(c->group[d]);
	}
	close(c->fd);
}

/* MAP_DMA or IOMMU_IOAS_MAP (fixed IOVA), read and write; returns 0 or the errno. */
static int ctx_map(struct ctx *c, __u64 iova, const void *va, __u64 len)
{
	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = c->ioas,
		.user_va = (uintptr_t)va,
		.length = len,
		.iova = iova,
	};

	if (c->b != IOMMUFD)
		return dma_map(c->fd, iova, (uintptr_t)va, len, RW);
	return vfio_errno(ioctl(c->fd, IOMMU_IOAS_MAP, &map));
}

/* UNMAP_DMA or IOMMU_IOAS_UNMAP of [iova, iova + len), which must be what was unmapped. */
static int ctx_unmap(struct ctx *c, __u64 iova, __u64 len)
{
	struct iommu_ioas_unmap unmap = {
		.size = sizeof(unmap), .ioas_id = c->ioas, .iova = iova, .length = len,
	};
	__u64 size = 0;
	int err;

	if (c->b != IOMMUFD) {
		err = dma_unmap(c->fd, iova, len, 0, &size);
	} else {
		err = vfio_errno(ioctl(c->fd, IOMMU_IOAS_UNMAP, &unmap));
		size = unmap.length;
	}
	return err ? err : size == len ? 0 : EIO;
}

/* UNMAP_DMA with UNMAP_ALL, or IOMMU_IOAS_UNMAP of everything; @len bytes must go. */
static int ctx_unmap_all(struct ctx *c, __u64 len)
{
	struct iommu_ioas_unmap unmap = {
		.size = sizeof(unmap), .ioas_id = c->ioas, .iova = 0, .length = UINT64_MAX,
	};
	__u64 size = 0;
	int err;

	if (c->b != IOMMUFD) {
		err = dma_unmap(c->fd, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size);
	} else {
		err = vfio_errno(ioctl(c->fd, IOMMU_IOAS_UNMAP, &unmap));
		size = unmap.length;
	}
	return err ? err : size == len ? 0 : EIO;
}

static int vmdev(int dev, unsigned long op, __u64 iova, __u64 count, __u32 flags, void *buf)
{
	struct vir_mdev_cmd cmd = {
		.iova = iova, .count = count, .flags = flags, .buf = (uintptr_t)buf, .value = 0x5a,
	};

	return ioctl(dev, op, &cmd) ? errno : 0;
}

#endif /* VIR_BENCH_CTX_H */
