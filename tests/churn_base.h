/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The churn fuzzer's random numbers, measurements (pins, VmLck) and reporting (the step
 * ring, the trace, failures). Part of tests/churn.h, which includes it.
 */
#ifndef CHURN_BASE_H
#define CHURN_BASE_H

/* --- random numbers ----------------------------------------------------------------------- */

static inline unsigned long long ch_splitmix(unsigned long long x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static inline unsigned long long ch_rnd(struct churn *c)
{
	/* xorshift64* */
	c->rs ^= c->rs >> 12;
	c->rs ^= c->rs << 25;
	c->rs ^= c->rs >> 27;
	return c->rs * 0x2545f4914f6cdd1dULL;
}

static inline unsigned int ch_r(struct churn *c, unsigned int n)
{
	return n ? (unsigned int)(ch_rnd(c) % n) : 0;
}

/* A fresh seed, unless VIR_FUZZ_SEED gives one. */
static inline unsigned long long churn_seed(void)
{
	const char *e = getenv("VIR_FUZZ_SEED");
	unsigned long long s = 0;

	if (e && *e)
		return strtoull(e, NULL, 0);
	if (getrandom(&s, sizeof(s), 0) != sizeof(s))
		s = (unsigned long long)time(NULL) * 0x9e3779b97f4a7c15ULL ^ (unsigned long long)getpid();
	return s ? s : 1;
}

static inline uint64_t ch_hash(uint64_t h, uint64_t v)
{
	int i;

	if (!h)
		h = 0xcbf29ce484222325ULL;
	for (i = 0; i < 8; i++) {
		h ^= (v >> (8 * i)) & 0xff;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* --- measurements ------------------------------------------------------------------------- */

/*
 * Outstanding FOLL_PIN pages, from one read of /proc/vmstat; exact only after a vmstat refresh
 * (@refresh), which folds the per-CPU differences (it runs work on every CPU: about 1 ms under TCG,
 * more than most steps). Without it, pins taken or released since the last fold may not show yet.
 */
static inline long ch_read_pins(int refresh)
{
	static char buf[16384];
	long acq = -1, rel = -1;
	ssize_t n = 0, r;
	char *p;
	int fd = refresh ? open("/proc/sys/vm/stat_refresh", O_WRONLY) : -1;

	if (fd >= 0) {
		if (write(fd, "1", 1) != 1)
			fprintf(stderr, "stat_refresh: %s\n", strerror(errno));
		close(fd);
	}
	fd = open("/proc/vmstat", O_RDONLY);
	if (fd < 0)
		return -1000000;
	while (n < (ssize_t)sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += r;
	close(fd);
	buf[n] = 0;
	p = strstr(buf, "\nnr_foll_pin_acquired ");
	if (p)
		acq = atol(p + strlen("\nnr_foll_pin_acquired "));
	p = strstr(buf, "\nnr_foll_pin_released ");
	if (p)
		rel = atol(p + strlen("\nnr_foll_pin_released "));
	if (acq < 0 || rel < 0)
		return -1000000;
	return acq - rel;
}

static inline long ch_pins(void)
{
	return ch_read_pins(1);
}

/* VmLck of this process in kB (-1 if unreadable). */
static inline long ch_vmlck(void)
{
	char buf[4096], *p;
	ssize_t n;
	int fd = open("/proc/self/status", O_RDONLY);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strstr(buf, "VmLck:");
	return p ? strtol(p + 6, NULL, 10) : -1;
}

static inline long ch_hugepages_free(void)
{
	return proc_field("/proc/meminfo", "HugePages_Free");
}

/* --- reporting ---------------------------------------------------------------------------- */

static inline void ch_kmsg(struct churn *c, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	if (c->kmsg < 0)
		return;
	n = snprintf(line, sizeof(line), "<5>vir-churn: ");
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 1)
		n = sizeof(line) - 1;
	if (write(c->kmsg, line, n) < 0)
		c->kmsg = -1;
}

/* Notes the step about to be taken (for the failure report and the trace). */
static inline void ch_note(struct churn *c, const char *fmt, ...)
{
	struct ch_shared *S = c->S;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->what, sizeof(c->what), fmt, ap);
	va_end(ap);
	c->noted = 1;
	c->last_err = -1;
	snprintf(S->ring[S->ringpos++ % CH_RING], sizeof(S->ring[0]), "%s%ld.%ld %s",
		 c->child ? "child " : "", (long)c->seq, c->seq_steps, c->what);
	if (c->trace)
		ch_kmsg(c, "seq %d step %ld%s: %s\n", c->seq, c->seq_steps,
			c->child ? " (fork child)" : "", c->what);
}

/* Completes the noted step with its result. */
static inline void ch_result(struct churn *c, int err)
{
	struct ch_shared *S = c->S;
	char *slot = S->ring[(S->ringpos - 1) % CH_RING];
	size_t len = strlen(slot);

	c->last_err = err;
	snprintf(slot + len, sizeof(S->ring[0]) - len, " -> %s", err ? strerror(err) : "ok");
}

static inline int ch_fail(struct churn *c, int line, const char *fmt, ...)
{
	struct ch_shared *S = c->S;
	char msg[512];
	unsigned int i;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (S->failed++)
		return -1;
	printf("# churn: FAILED (churn.h:%d) %s\n", line, msg);
	printf("# churn: run seed %#llx, sequence %d (seed %#llx), step %ld of the sequence, %ld steps in all, %s%s\n",
	       c->seed, c->seq, c->seq_seed, c->seq_steps, S->steps,
	       c->child ? "in a fork child" : "in the main process", c->diff ? ", differential" : "");
	printf("# churn: replay: VIR_FUZZ_SEED=%#llx (this sequence first)\n", c->seq_seed);
	printf("# churn: last steps (sequence.step):\n");
	for (i = S->ringpos > CH_RING ? S->ringpos - CH_RING : 0; i < S->ringpos; i++)
		printf("#   %s\n", S->ring[i % CH_RING]);
	fflush(stdout);
	ch_kmsg(c, "FAILED seq %d (seed %#llx) step %ld: %s\n", c->seq, c->seq_seed, c->seq_steps,
		msg);
	return -1;
}

#define CH_FAIL(c, ...) return ch_fail((c), __LINE__, __VA_ARGS__)
#define CH_CHECK(c, cond, ...) do { if (!(cond)) CH_FAIL((c), __VA_ARGS__); } while (0)

#endif /* CHURN_BASE_H */
