/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vir-bench: the vendor-driver workloads (pin+unpin, contention with a 1 GiB map, memory
 * per pinned page). Included by bench.c only.
 */
#ifndef VIR_BENCH_W_VENDOR_H
#define VIR_BENCH_W_VENDOR_H

/* 512 pages pinned and unpinned through the vendor driver, 64 times; per round of 512. */
static void w_pin(enum bk b, const char *tag)
{
	struct ctx c;
	double t0, t1;
	int i, err;

	ctx_open(b, WANT(VMDEV), &c);
	err = ctx_map(&c, 0, anon, 512 * PAGE);
	if (err)
		fail("pin map", err);
	prof_start();
	t0 = now_ms();
	for (i = 0; i < 64; i++) {
		if (vmdev(c.dev[VMDEV], VIR_MDEV_PIN, 0, 512, VIR_MDEV_FLAG_WRITE, NULL) ||
		    vmdev(c.dev[VMDEV], VIR_MDEV_UNPIN, 0, 512, 0, NULL))
			fail("pin/unpin", errno);
	}
	t1 = now_ms();
	prof_stop("pin_unpin_512", bk_name[b]);
	ctx_close(&c);
	report(tag, "pin_unpin_512", b, (t1 - t0) / 64, "ms");
}

/*
 * The vendor thread of the contention workload: a device that pins one page and unpins it again
 * every VENDOR_PERIOD_US, until told to stop. A pin's latency is counted from when it was due,
 * not from when a blocked thread got round to issuing it: a pin that waits 500 ms delays the
 * 500 due after it, and each of them counts what it waited (otherwise a backend that blocks the
 * vendor for the whole map would show one slow call among few, and its p99 would hide it). The
 * unpin that follows a pin is counted from when the pin returned.
 */
#define VENDOR_PERIOD_US 1000

struct vendor_loop {
	int dev;
	int stop;
	int err;
	size_t n, cap;
	double *lat;	/* microseconds, per call */
};

static void *vendor_run(void *arg)
{
	struct vendor_loop *v = arg;
	double due = now_ms(), t1, t2;

	/* After the stop, the calls that fell due meanwhile are still made (and counted). */
	while (!__atomic_load_n(&v->stop, __ATOMIC_ACQUIRE) || due < now_ms()) {
		double wait = due - now_ms();

		if (wait > 0)
			usleep(wait * 1e3);
		v->err = vmdev(v->dev, VIR_MDEV_PIN, VENDOR_IOVA, 1, 0, NULL);
		t1 = now_ms();
		if (v->err)
			break;
		v->err = vmdev(v->dev, VIR_MDEV_UNPIN, VENDOR_IOVA, 1, 0, NULL);
		t2 = now_ms();
		if (v->err)
			break;
		if (v->n + 2 <= v->cap) {
			v->lat[v->n++] = (t1 - due) * 1e3;
			v->lat[v->n++] = (t2 - t1) * 1e3;
		}
		due += VENDOR_PERIOD_US / 1e3;
	}
	return NULL;
}

#define CONTENTION_CYCLES 2
#define CONTENTION_PAUSE_US 100000

/*
 * Contention: one container (or IOAS) with the edu device and the vir_mdev device. A thread
 * pins and unpins one page through the vendor driver every millisecond while this one maps and
 * unmaps 1 GiB of 4K pages twice, 100 ms apart; the vendor calls' p99 and maximum latency, in
 * microseconds.
 */
static void w_contention(enum bk b, const char *tag)
{
	static char *page;
	struct vendor_loop v = { .cap = 1 << 20 };
	double t0, total = 0;
	pthread_t thread;
	struct ctx c;
	int i, err;

	if (!page) {
		page = alloc_pages(1);
		if (!page)
			fail("vendor page", errno);
	}
	v.lat = malloc(v.cap * sizeof(*v.lat));
	if (!v.lat)
		fail("malloc", errno);
	ctx_open(b, WANT(EDU) | WANT(VMDEV), &c);
	err = ctx_map(&c, VENDOR_IOVA, page, PAGE);
	if (err)
		fail("vendor page map", err);
	v.dev = c.dev[VMDEV];
	err = pthread_create(&thread, NULL, vendor_run, &v);
	if (err)
		fail("pthread_create", err);
	/*
	 * A pause before each MAP and each UNMAP and at the end lets a stalled vendor catch up, so
	 * that a latency is what one MAP or UNMAP made it wait, not a backlog across several.
	 */
	for (i = 0; i < CONTENTION_CYCLES; i++) {
		usleep(CONTENTION_PAUSE_US);
		t0 = now_ms();
		err = ctx_map(&c, 0, anon, GIB);
		if (err)
			fail("contention map", err);
		total += now_ms() - t0;
		usleep(CONTENTION_PAUSE_US);
		t0 = now_ms();
		err = ctx_unmap(&c, 0, GIB);
		if (err)
			fail("contention unmap", err);
		total += now_ms() - t0;
	}
	usleep(CONTENTION_PAUSE_US);
	__atomic_store_n(&v.stop, 1, __ATOMIC_RELEASE);
	pthread_join(thread, NULL);
	if (v.err)
		fail("vendor pin/unpin", v.err);
	err = ctx_unmap(&c, VENDOR_IOVA, PAGE);
	if (err)
		fail("vendor page unmap", err);
	ctx_close(&c);
	if (v.n < 100)
		failf("contention: only %zu vendor calls", v.n);
	qsort(v.lat, v.n, sizeof(*v.lat), cmp_double);
	printf("# contention %s%s: %zu vendor calls (median %.1f us) during %d x map+unmap of "
	       "1 GiB (%.1f ms)\n", tag, bk_name[b], v.n, v.lat[v.n / 2], CONTENTION_CYCLES, total);
	report(tag, "contention_vendor_pin_p99", b, v.lat[(v.n * 99 + 99) / 100 - 1], "us");
	report(tag, "contention_vendor_pin_max", b, v.lat[v.n - 1], "us");
	free(v.lat);
}

/*
 * Kernel memory per vendor-pinned page: MEM_PIN_PAGES pages pinned through the vendor driver. The
 * slab pages that per-CPU caches hold or release during a sample move the growth by tens of
 * kilobytes either way: over 16,384 pages that was up to 7 bytes a page for one backend against
 * the other (2026-12-02), over 65,536 it is a quarter of that.
 */
#define MEM_PIN_PAGES 65536
static void w_mem_pin(enum bk b, const char *tag)
{
	long before, after;
	struct ctx c;
	int i, err;

	ctx_open(b, WANT(VMDEV), &c);
	err = ctx_map(&c, 0, anon, (__u64)MEM_PIN_PAGES * PAGE);
	if (err)
		fail("pin memory map", err);
	/* The driver's own records are counted too: measure them without backend state first. */
	before = slab_bytes();
	for (i = 0; i < MEM_PIN_PAGES / 512; i++)
		if (vmdev(c.dev[VMDEV], VIR_MDEV_PIN, (__u64)i * 512 * PAGE, 512, 0, NULL))
			fail("pin for memory", errno);
	after = slab_bytes();
	ctx_close(&c);
	report(tag, "mem_per_pinned_page", b, (double)(after - before) / MEM_PIN_PAGES, "bytes");
}

#endif /* VIR_BENCH_W_VENDOR_H */
