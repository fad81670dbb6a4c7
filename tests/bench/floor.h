/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The floor of a MAP+UNMAP (issue 16, part 4): what pinning and unpinning the same memory costs
 * with no IOMMU work at all, measured in the same boot on the same buffer. The kernel does that
 * for io_uring's fixed buffers: IORING_REGISTER_BUFFERS pins a buffer of up to 1 GiB with
 * pin_user_pages_fast(FOLL_WRITE | FOLL_LONGTERM), charges it to the user's locked memory (we run
 * without CAP_IPC_LOCK, like the backends' runs) and keeps one bio_vec per page, or per folio when
 * the buffer is made of whole large folios (THP, hugetlb: it then drops the extra pins at once);
 * IORING_UNREGISTER_BUFFERS unpins it. No IOMMU, no tree of mappings, no ioctl decoding: the
 * same GUP, pin and accounting work every backend must do, and little else.
 */
#ifndef VIR_BENCH_FLOOR_H
#define VIR_BENCH_FLOOR_H

#include <linux/io_uring.h>
#include <sys/uio.h>

static int floor_ring = -1;

/* Pins and unpins @len bytes at @va through io_uring; the time in ms, or a negative errno. */
static double floor_pin_unpin(const void *va, size_t len)
{
	struct iovec iov = { .iov_base = (void *)va, .iov_len = len };
	double t0, t1;

	if (floor_ring < 0) {
		struct io_uring_params p = { 0 };

		floor_ring = syscall(SYS_io_uring_setup, 1, &p);
		if (floor_ring < 0)
			return -errno;
	}
	t0 = now_ms();
	if (syscall(SYS_io_uring_register, floor_ring, IORING_REGISTER_BUFFERS, &iov, 1))
		return -errno;
	if (syscall(SYS_io_uring_register, floor_ring, IORING_UNREGISTER_BUFFERS, NULL, 0))
		return -errno;
	t1 = now_ms();
	return t1 - t0;
}

#endif /* VIR_BENCH_FLOOR_H */
