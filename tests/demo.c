// SPDX-License-Identifier: GPL-2.0
/*
 * The guest program of `make demo`: opens a type1 container the way QEMU does, puts the first edu
 * device's group in it, selects VFIO_TYPE1v2_IOMMU and shows which backend serves it.
 */
#include "vfio_test.h"

#define DEMO(fmt, ...) printf("DEMO: " fmt "\n", ##__VA_ARGS__)

int main(void)
{
	int group_id = env_int("VFIO_TEST_GROUP");
	const char *bdf = env_str("VFIO_TEST_BDF");
	struct backend_refs before, after;
	int container, group, dev;

	container = open("/dev/vfio/vfio", O_RDWR);
	if (container < 0 || ioctl(container, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
		return DEMO("cannot open /dev/vfio/vfio"), 1;
	DEMO("container: API version %d, TYPE1v2 supported: %d", VFIO_API_VERSION,
	     ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
	group = open_group(group_id);
	if (group < 0 || ioctl(group, VFIO_GROUP_SET_CONTAINER, &container))
		return DEMO("cannot put group %d in the container: %s", group_id, strerror(errno)), 1;
	DEMO("edu device %s is in IOMMU group %d (/dev/vfio/%d)", bdf, group_id, group_id);

	before = backend_refs();
	if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		return DEMO("VFIO_SET_IOMMU failed: %s", strerror(errno)), 1;
	after = backend_refs();
	DEMO("VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU): module references %s %ld -> %ld, %s %ld -> %ld",
	     RUST_MODULE, before.rust, after.rust, TYPE1_MODULE, before.type1, after.type1);
	DEMO("container served by %s",
	     after.rust == before.rust + 1 ? RUST_MODULE :
	     after.type1 == before.type1 + 1 ? TYPE1_MODULE : "?");

	dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	DEMO("device fd for %s: %s", bdf, dev >= 0 ? "open" : strerror(errno));
	if (dev >= 0)
		close(dev);
	close(group);
	close(container);
	after = backend_refs();
	DEMO("closed: %s references back to %ld", RUST_MODULE, after.rust);
	return 0;
}
