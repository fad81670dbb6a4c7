/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the vfio-iommu-rust guest tests.
 *
 * The guest runner (tests/guest/init) runs every test binary once per backend in the same boot and
 * tells it which backend must serve the container through the environment:
 *
 *   VFIO_BACKEND      "type1" (our module not loaded) or "rust" (our module loaded after type1)
 *   VFIO_TEST_GROUP   the IOMMU group number of the first edu device, bound to vfio-pci
 *   VFIO_TEST_GROUP2  the group of the second edu device
 *   VFIO_TEST_BDF     the PCI address of the first edu device
 *   VFIO_RUST_KO      the path of our module, for the load/unload tests
 *
 * Each test that sets an IOMMU asserts which module serves the container by the module reference
 * the VFIO core takes on the serving backend (/sys/module/<name>/refcnt).
 */
#ifndef VFIO_TEST_H
#define VFIO_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/vfio.h>

#define TYPE1_MODULE "vfio_iommu_type1"
#define RUST_MODULE "vfio_iommu_rust"

enum vfio_backend { BACKEND_TYPE1, BACKEND_RUST };

static inline enum vfio_backend vfio_backend(void)
{
	const char *b = getenv("VFIO_BACKEND");

	if (b && !strcmp(b, "rust"))
		return BACKEND_RUST;
	if (b && !strcmp(b, "type1"))
		return BACKEND_TYPE1;
	fprintf(stderr, "VFIO_BACKEND must be \"type1\" or \"rust\"\n");
	exit(2);
}

static inline const char *backend_module(enum vfio_backend b)
{
	return b == BACKEND_RUST ? RUST_MODULE : TYPE1_MODULE;
}

/* The module's reference count, or -1 when the module is not loaded. */
static inline long module_refcnt(const char *module)
{
	char path[128], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/module/%s/refcnt", module);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return strtol(buf, NULL, 10);
}

static inline int env_int(const char *name)
{
	const char *v = getenv(name);

	if (!v) {
		fprintf(stderr, "%s is not set\n", name);
		exit(2);
	}
	return atoi(v);
}

static inline const char *env_str(const char *name)
{
	const char *v = getenv(name);

	if (!v) {
		fprintf(stderr, "%s is not set\n", name);
		exit(2);
	}
	return v;
}

static inline int open_group(int group)
{
	char path[64];

	snprintf(path, sizeof(path), "/dev/vfio/%d", group);
	return open(path, O_RDWR);
}

/* The errno of a failed call, or 0 if it succeeded: for EXPECT_EQ(EINVAL, vfio_errno(ioctl(..))). */
static inline int vfio_errno(long ret)
{
	return ret < 0 ? errno : 0;
}

/* Module references held by the two backends, to see which one a SET_IOMMU landed on. */
struct backend_refs {
	long type1;
	long rust;
};

static inline struct backend_refs backend_refs(void)
{
	struct backend_refs r = {
		.type1 = module_refcnt(TYPE1_MODULE),
		.rust = module_refcnt(RUST_MODULE),
	};
	return r;
}

#endif /* VFIO_TEST_H */
