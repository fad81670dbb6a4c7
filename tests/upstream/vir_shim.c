// SPDX-License-Identifier: GPL-2.0
/*
 * Linked into each upstream VFIO selftest (tools/testing/selftests/vfio of the cached kernel tree,
 * built unchanged by scripts/build-vfio-selftests.sh) so that the guest can run it over a chosen
 * backend and know which one served it:
 *
 * - VFIO_SELFTESTS_IOMMU_MODE sets the library's default_iommu_mode, the mode of the tests that have
 *   no IOMMU mode variants (vfio_pci_device_test, vfio_pci_driver_test's probe): upstream's default
 *   is iommufd, which never reaches /dev/vfio/vfio.
 *
 * - ioctl() is wrapped (the binaries are linked with -Wl,--wrap=ioctl). Each VFIO_SET_IOMMU that
 *   succeeds prints "# VIR-SERVED <who> <container>": for /dev/vfio/vfio, <who> is the backend module
 *   whose reference the VFIO core took in that call (vfio_iommu_type1 or vfio_iommu_rust, from
 *   /sys/module/<name>/refcnt before and after; nothing else in the guest opens containers then);
 *   for iommufd's /dev/iommu compat container, and for a device cdev bound by
 *   VFIO_DEVICE_BIND_IOMMUFD, it is "iommufd". If VFIO_BACKEND names the backend that must serve
 *   /dev/vfio/vfio (type1 or rust) and another one did, the test process exits with KSFT_FAIL, so
 *   the harness reports that test as failed.
 */
#include <stdarg.h>
#include <limits.h>

#include "vfio_test.h"

#define KSFT_FAIL 1

extern const char *default_iommu_mode;
int __real_ioctl(int fd, unsigned long request, ...);

static void __attribute__((constructor)) vir_iommu_mode(void)
{
	const char *mode = getenv("VFIO_SELFTESTS_IOMMU_MODE");

	if (mode && *mode)
		default_iommu_mode = mode;
}

static void fd_path(int fd, char *buf, size_t len)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, len - 1);
	buf[n < 0 ? 0 : n] = 0;
}

int __wrap_ioctl(int fd, unsigned long request, ...)
{
	struct backend_refs before, after;
	const char *who, *want;
	char path[PATH_MAX];
	va_list ap;
	void *arg;
	int ret;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);

	if (request != VFIO_SET_IOMMU && request != VFIO_DEVICE_BIND_IOMMUFD)
		return __real_ioctl(fd, request, arg);

	before = backend_refs();
	ret = __real_ioctl(fd, request, arg);
	if (ret)
		return ret;
	after = backend_refs();
	fd_path(fd, path, sizeof(path));

	if (request == VFIO_DEVICE_BIND_IOMMUFD || strcmp(path, "/dev/vfio/vfio"))
		who = "iommufd";
	else if (after.rust == before.rust + 1 && after.type1 == before.type1)
		who = RUST_MODULE;
	else if (after.type1 == before.type1 + 1 && after.rust == before.rust)
		who = TYPE1_MODULE;
	else
		who = "unknown";
	dprintf(1, "# VIR-SERVED %s %s\n", who, path);

	want = getenv("VFIO_BACKEND");
	if (want && strcmp(who, "iommufd")) {
		want = !strcmp(want, "rust") ? RUST_MODULE : !strcmp(want, "type1") ? TYPE1_MODULE : want;
		if (strcmp(who, want)) {
			dprintf(1, "# VIR-SERVED mismatch: %s must be served by %s (refcnt type1 %ld -> %ld, rust %ld -> %ld)\n",
				path, want, before.type1, after.type1, before.rust, after.rust);
			exit(KSFT_FAIL);
		}
	}
	return 0;
}
