// SPDX-License-Identifier: GPL-2.0
/*
 * Unmodified DPDK (Debian's 22.11 dpdk-testpmd, run from the host root like QEMU in qemu_test.c)
 * as the VFIO user, against both backends: two virtio-net NICs (modern, iommu_platform=on, ats=on,
 * on one QEMU hub: what one sends the other receives) bound to vfio-pci behind the guest's IOMMU,
 * driven by the net_virtio PMD, with DPDK's own type1 container.
 *
 * One test per IOVA mode (va, pa), each one testpmd run driven through its interactive prompt:
 *
 *  1. start: the EAL sets up the container (type1), maps the memory it has, and the memory it
 *     allocates afterwards (testpmd's mbuf pool) as it grows its heap (dynamic memory);
 *  2. round 1: `start tx_first 4` in rxonly mode sends 4 bursts of 32 packets on each port; every
 *     one is received on the other port, no errors;
 *  3. memory hot-add while running: a net_null port with 8 MiB packet buffers is attached and
 *     started; DPDK grows its heap by new hugepages and maps each into the container;
 *  4. hot-remove and add again: the null port's receive queue is set up again, which frees its
 *     buffer (DPDK unmaps the pages it gives back) and allocates a new one (maps again);
 *  5. round 2 over the virtio ports, after the null port is detached: the NICs still work;
 *  6. quit: testpmd closes its ports, and with them the group files; DPDK unmaps nothing at exit,
 *     the container releases what is left when its last group leaves: nothing stays pinned.
 *
 * A tracer (tests/vfio_strace.h) records every container and group ioctl testpmd makes; the
 * sequence of each step, the packet counts, and what is pinned and charged after each step are
 * RECORDed and compared between the backends. What is pinned (512 pages per 2 MiB page) and
 * charged to testpmd's VmLck must be exactly what is mapped; each unmap must remove one earlier
 * map; each IOVA must be the address (VA mode) or the physical address of its page (PA mode, from
 * /proc/<pid>/pagemap). The guest kernel log must have no DMAR fault (Documentation/dpdk.rst).
 */
#include <dirent.h>
#include <poll.h>
#include <time.h>
#include "kselftest_harness.h"
#include "vfio_strace.h"

#define TESTPMD "/usr/bin/dpdk-testpmd"
#define STDBUF "/usr/bin/stdbuf"
#define BURST 32
#define BURSTS 4
#define PACKETS (BURST * BURSTS)	/* per port and round */
#define NULL_SIZE (8 << 20)		/* the null port's buffer per queue */
#define START_TIMEOUT_MS 180000		/* EAL init under TCG and ptrace: 20 s cold */
#define CMD_TIMEOUT_MS 60000
#define MAX_CALLS 4096

static long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The two virtio-net NICs (1af4:1041), bound to vfio-pci. */
struct nic {
	char bdf[16];
	int group;
};

static int sysfs_read(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static int sysfs_write(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return errno;
	n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : errno;
}

/* Finds the NICs, in PCI address order, and binds them to vfio-pci; returns how many. */
static int bind_nics(struct nic *nics, int max)
{
	struct dirent **names;
	int n = 0, i, count;

	count = scandir("/sys/bus/pci/devices", &names, NULL, alphasort);
	for (i = 0; i < count; i++) {
		char path[128], buf[256], drv[64] = "", bdf[32];
		ssize_t len;

		if (strlen(names[i]->d_name) >= sizeof(bdf))
			continue;
		strcpy(bdf, names[i]->d_name);

		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", bdf);
		if (sysfs_read(path, buf, sizeof(buf)) || strcmp(buf, "0x1af4"))
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", bdf);
		if (sysfs_read(path, buf, sizeof(buf)) || strcmp(buf, "0x1041") || n == max)
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", bdf);
		len = readlink(path, buf, sizeof(buf) - 1);
		if (len > 0) {
			buf[len] = 0;
			snprintf(drv, sizeof(drv), "%s", strrchr(buf, '/') + 1);
		}
		if (strcmp(drv, "vfio-pci")) {
			snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", bdf);
			sysfs_write(path, "vfio-pci");
			if (drv[0]) {
				snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
				sysfs_write(path, bdf);
			}
			sysfs_write("/sys/bus/pci/drivers_probe", bdf);
		}
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
		len = readlink(path, buf, sizeof(buf) - 1);
		if (len <= 0)
			continue;
		buf[len] = 0;
		snprintf(nics[n].bdf, sizeof(nics[n].bdf), "%s", bdf);
		nics[n].group = atoi(strrchr(buf, '/') + 1);
		n++;
	}
	for (i = 0; i < count; i++)
		free(names[i]);
	free(names);
	return n;
}

/* --- testpmd at its prompt ----------------------------------------------------------------- */

struct testpmd {
	struct vfio_strace trace;
	int in, out;		/* its stdin (we write), its stdout and stderr (we read) */
	char *buf;		/* everything it printed */
	size_t len, cap, scanned;
	int prompts, cmds;
	bool eof;
	int logfd;		/* everything it printed, as it comes */
	char outlog[128];
};

#define PROMPT "testpmd> "

/* Reads what testpmd printed until @done(t) or the timeout; 0, ETIMEDOUT or EPIPE. */
static int tp_read_until(struct testpmd *t, bool (*done)(struct testpmd *t), long timeout_ms)
{
	long deadline = now_ms() + timeout_ms;

	while (!done(t)) {
		struct pollfd p = { .fd = t->out, .events = POLLIN };
		long left = deadline - now_ms();
		ssize_t n;
		char *hit;

		if (t->eof)
			return EPIPE;
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return ETIMEDOUT;
		if (t->cap - t->len < 65536) {
			char *b = realloc(t->buf, t->cap * 2);

			if (!b)
				return ENOMEM;
			t->buf = b;
			t->cap *= 2;
		}
		n = read(t->out, t->buf + t->len, t->cap - t->len - 1);
		if (n <= 0) {
			t->eof = true;
			continue;
		}
		if (write(t->logfd, t->buf + t->len, n) != n)
			return EIO;
		t->len += n;
		t->buf[t->len] = 0;
		while ((hit = memmem(t->buf + t->scanned, t->len - t->scanned, PROMPT, strlen(PROMPT)))) {
			t->prompts++;
			t->scanned = hit - t->buf + strlen(PROMPT);
		}
	}
	return 0;
}

static bool tp_at_prompt(struct testpmd *t)
{
	return t->prompts > t->cmds;
}

static bool tp_never(struct testpmd *t)
{
	return false;
}

/* The contents of a file, NUL-terminated (to free), or NULL. */
static char *file_text(const char *path)
{
	char *text = NULL;
	FILE *f = fopen(path, "r");
	long len;

	if (!f)
		return NULL;
	if (!fseek(f, 0, SEEK_END) && (len = ftell(f)) >= 0) {
		rewind(f);
		text = calloc(1, len + 1);
		if (text && fread(text, 1, len, f) != (size_t)len) {
			free(text);
			text = NULL;
		}
	}
	fclose(f);
	return text;
}

/* TH_LOG-style lines of @text (to stderr, "# " before each) that contain @pattern (all if NULL). */
static void log_lines(const char *text, const char *pattern)
{
	const char *p = text;

	while (*p) {
		size_t len = strcspn(p, "\n");

		if (!pattern || memmem(p, len, pattern, strlen(pattern)))
			fprintf(stderr, "#   %.*s\n", (int)len, p);
		p += len + (p[len] == '\n');
	}
}

/* The last @lines lines (all if 0) of the file @path, after @title. */
static void log_file(const char *title, const char *path, int lines)
{
	char *text = file_text(path);
	size_t i;

	if (!text)
		return;
	i = lines ? strlen(text) : 0;
	if (i && text[i - 1] == '\n')
		i--;
	while (lines && i > 0)
		if (text[--i] == '\n' && !--lines)
			i++;
	fprintf(stderr, "# %s (%s):\n", title, path);
	log_lines(text + i, NULL);
	free(text);
}

/*
 * One command at the prompt; returns what it printed (until the next prompt, valid until the next
 * command), or NULL on a timeout or if testpmd exited.
 */
static const char *tp_cmd(struct testpmd *t, const char *cmd)
{
	size_t start = t->len;
	char line[256];
	int n = snprintf(line, sizeof(line), "%s\n", cmd);

	if (write(t->in, line, n) != n)
		return NULL;
	t->cmds++;
	if (tp_read_until(t, tp_at_prompt, CMD_TIMEOUT_MS)) {
		fprintf(stderr, "# testpmd: no prompt after \"%s\"\n", cmd);
		return NULL;
	}
	return t->buf + start;
}

/* The value after @key in @s, or ~0. */
static unsigned long stat_field(const char *s, const char *key)
{
	const char *p = strstr(s, key);

	return p ? strtoul(p + strlen(key), NULL, 10) : ~0UL;
}

/* RX-dropped + TX-dropped of the forward statistics of @port that `stop` prints, or ~0. */
static unsigned long fwd_dropped(const char *s, int port)
{
	char head[64];
	const char *p;

	snprintf(head, sizeof(head), "Forward statistics for port %d ", port);
	p = strstr(s, head);
	if (!p || !strstr(p, "RX-dropped:") || !strstr(p, "TX-dropped:"))
		return ~0UL;
	return stat_field(p, "RX-dropped:") + stat_field(p, "TX-dropped:");
}

struct port_stats {
	unsigned long rx, missed, rx_errors, nombuf, tx, tx_errors;
};

/* The "NIC statistics for port @port" block of @s; -1 if there is none. */
static int port_stats(const char *s, int port, struct port_stats *st)
{
	char head[64];
	const char *p;

	snprintf(head, sizeof(head), "NIC statistics for port %d ", port);
	p = strstr(s, head);
	if (!p)
		return -1;
	st->rx = stat_field(p, "RX-packets:");
	st->missed = stat_field(p, "RX-missed:");
	st->rx_errors = stat_field(p, "RX-errors:");
	st->nombuf = stat_field(p, "RX-nombuf:");
	st->tx = stat_field(p, "TX-packets:");
	st->tx_errors = stat_field(p, "TX-errors:");
	return 0;
}

/* --- the tracer's log ---------------------------------------------------------------------- */

struct call {
	char file[16];		/* "container" or "group" */
	char op[24];
	unsigned long long vaddr, iova, size, unmapped, arg;
	long ret;
};

static unsigned long long field(const char *line, const char *key)
{
	const char *p = strstr(line, key);

	return p ? strtoull(p + strlen(key), NULL, 0) : 0;
}

/* Reads the log into @calls; returns the number of calls, or -1. */
static int read_calls(const char *log, struct call *calls, int max)
{
	char line[512];
	int n = 0;
	FILE *f = fopen(log, "r");

	if (!f)
		return -1;
	while (n < max && fgets(line, sizeof(line), f)) {
		struct call *c = &calls[n];
		char num[16];

		memset(c, 0, sizeof(*c));
		if (sscanf(line, "%15s %15s %23s %llu", c->file, num, c->op, &c->arg) < 3)
			continue;
		c->vaddr = field(line, " vaddr=");
		c->iova = field(line, " iova=");
		c->size = field(line, " size=");
		c->unmapped = field(line, " unmapped=");
		c->ret = strstr(line, " ret=") ? strtol(strstr(line, " ret=") + 5, NULL, 0) : 0;
		n++;
	}
	fclose(f);
	return n;
}

/* A size as "2M", "4M", or hex. */
static void size_str(unsigned long long size, char *out, size_t len)
{
	if (size && !(size & ((1 << 20) - 1)))
		snprintf(out, len, "%lluM", size >> 20);
	else
		snprintf(out, len, "%#llx", size);
}

/*
 * The calls [from, to) as a compact sequence without addresses, runs of the same call counted:
 * "API EXT1=1 G.STATUS G.SET_CONTAINER SET_IOMMU1 MAP2Mx5 ...". The same program behaving the
 * same makes the same sequence over either backend.
 */
static void sequence(const struct call *calls, int from, int to, char *out, size_t len)
{
	char prev[64] = "", tok[64], sz[32];
	size_t used = 0;
	int i, run = 0;

	out[0] = 0;
	for (i = from; i <= to; i++) {
		const struct call *c = &calls[i];

		if (i == to) {
			tok[0] = 0;
		} else if (!strcmp(c->op, "MAP_DMA") || !strcmp(c->op, "UNMAP_DMA")) {
			size_str(c->size, sz, sizeof(sz));
			snprintf(tok, sizeof(tok), "%s%s", c->op[0] == 'M' ? "MAP" : "UNMAP", sz);
		} else if (!strcmp(c->op, "CHECK_EXTENSION")) {
			snprintf(tok, sizeof(tok), "EXT%llu=%ld", c->arg, c->ret);
		} else if (!strcmp(c->op, "SET_IOMMU")) {
			snprintf(tok, sizeof(tok), "SET_IOMMU%llu", c->arg);
		} else if (!strcmp(c->op, "GET_API_VERSION")) {
			snprintf(tok, sizeof(tok), "API=%ld", c->ret);
		} else {
			snprintf(tok, sizeof(tok), "%s%s", c->file[0] == 'g' ? "G." : "", c->op);
		}
		if (i < to && c->ret < 0 && strcmp(c->op, "CHECK_EXTENSION") &&
		    strcmp(c->op, "GET_API_VERSION"))
			snprintf(tok + strlen(tok), sizeof(tok) - strlen(tok), "!%ld", c->ret);
		if (run && !strcmp(tok, prev)) {
			run++;
			continue;
		}
		if (run && used < len)
			used += snprintf(out + used, len - used, "%s%s", used ? " " : "", prev);
		if (run > 1 && used < len)
			used += snprintf(out + used, len - used, "x%d", run);
		snprintf(prev, sizeof(prev), "%s", tok);
		run = 1;
	}
}

/* Totals of the maps and unmaps of calls [from, to). */
struct dma_totals {
	int maps, unmaps, failed;
	unsigned long long mapped, unmapped;
};

static struct dma_totals totals(const struct call *calls, int from, int to)
{
	struct dma_totals t = { 0 };
	int i;

	for (i = from; i < to; i++) {
		if (!strcmp(calls[i].op, "MAP_DMA")) {
			t.maps++;
			t.mapped += calls[i].ret ? 0 : calls[i].size;
		} else if (!strcmp(calls[i].op, "UNMAP_DMA")) {
			t.unmaps++;
			t.unmapped += calls[i].ret ? 0 : calls[i].unmapped;
		} else {
			continue;
		}
		t.failed += calls[i].ret != 0;
	}
	return t;
}

/*
 * For IOVA as PA: how many of the mappings of calls [0, n) still live have an IOVA other than the
 * physical address of their memory in process @pid (read from its pagemap); -1 on error.
 */
static int iova_not_pa(pid_t pid, const struct call *calls, int n)
{
	char path[64];
	int i, j, fd, bad = 0;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned long long off, e;

		if (strcmp(calls[i].op, "MAP_DMA"))
			continue;
		for (j = i + 1; j < n; j++)
			if (!strcmp(calls[j].op, "UNMAP_DMA") && calls[j].iova == calls[i].iova)
				break;
		if (j < n)
			continue;
		for (off = 0; off < calls[i].size; off += PAGE) {
			if (pread(fd, &e, sizeof(e), (calls[i].vaddr + off) / PAGE * 8) != sizeof(e)) {
				close(fd);
				return -1;
			}
			/* Bit 63: present; bits 0-54: the page frame number. */
			if (!(e >> 63) || (e & ((1ULL << 55) - 1)) * PAGE != calls[i].iova + off) {
				bad++;
				break;
			}
		}
	}
	close(fd);
	return bad;
}

/* --- the guest kernel log ------------------------------------------------------------------ */

static void kmsg(const char *s)
{
	int fd = open("/dev/kmsg", O_WRONLY);

	if (fd >= 0) {
		if (write(fd, s, strlen(s)) < 0)
			perror("/dev/kmsg");
		close(fd);
	}
}

/*
 * Reads the kernel log (/dev/kmsg, one record per read: "prio,seq,usec,flags;text"); returns the
 * sequence number of its last record, or -1. With @faults, counts (and prints) the DMAR fault
 * records after sequence number @after.
 */
static long long kmsg_scan(long long after, int *faults)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	long long seq, last = -1;
	char rec[8192];

	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t n = read(fd, rec, sizeof(rec) - 1);
		char *text;

		if (n < 0 && errno == EPIPE)
			continue;	/* records overwritten meanwhile */
		if (n <= 0)
			break;		/* EAGAIN: no more */
		rec[n] = 0;
		text = strchr(rec, ';');
		if (sscanf(rec, "%*d,%lld,", &seq) != 1 || !text)
			continue;
		last = seq;
		if (faults && seq > after && strstr(text, "DMAR") && strcasestr(text, "fault")) {
			fprintf(stderr, "# kernel: %.*s\n", (int)strcspn(text + 1, "\n"), text + 1);
			(*faults)++;
		}
	}
	close(fd);
	return last;
}

/* --- the test ------------------------------------------------------------------------------ */

FIXTURE(dpdk) {
	char marker[64];	/* written to the kernel log at the start */
	long long kmsg_seq;	/* the kernel log's last record then */
	struct nic nics[2];
	struct testpmd tp;
	struct backend_refs before;
	long pins0;
	struct call *calls;
};

FIXTURE_VARIANT(dpdk) {
	const char *iova;	/* --iova-mode */
	const char *mode;	/* what the EAL says it selected */
};

FIXTURE_VARIANT_ADD(dpdk, va) {
	.iova = "va",
	.mode = "Selected IOVA mode 'VA'",
};

FIXTURE_VARIANT_ADD(dpdk, pa) {
	.iova = "pa",
	.mode = "Selected IOVA mode 'PA'",
};

FIXTURE_SETUP(dpdk)
{
	memset(&self->tp, 0, sizeof(self->tp));
	self->tp.in = self->tp.out = -1;
	self->calls = calloc(MAX_CALLS, sizeof(*self->calls));
	ASSERT_NE(NULL, self->calls);
	ASSERT_NE(NULL, getenv("VFIO_TEST_HOSTROOT"));
	ASSERT_EQ(2, bind_nics(self->nics, 2));
	self->before = backend_refs();
	self->pins0 = pins_outstanding();
	snprintf(self->marker, sizeof(self->marker), "dpdk_test: %s %s start", variant->iova,
		 getenv("VFIO_BACKEND"));
	kmsg(self->marker);
	self->kmsg_seq = kmsg_scan(-1, NULL);
	ASSERT_LE(0, self->kmsg_seq);
}

/*
 * In the parent of the test's process, once that has ended, whether by a failed ASSERT or not:
 * testpmd and its tracer are gone for sure before the checks (the tracer dies with the test's
 * process, testpmd with the tracer, but not at once), and the checks run even when the test's
 * process was ended by its own abort. Only what the test wrote into self is known here.
 */
FIXTURE_TEARDOWN_PARENT(dpdk)
{
	struct backend_refs now;
	int faults;

	vfio_strace_kill(&self->tp.trace);
	if (self->tp.outlog[0]) {
		if (!__test_passed(_metadata))
			log_file("testpmd's last lines", self->tp.outlog, 40);
		if (getenv("DPDK_TEST_VERBOSE")) {
			/* VIR_GUEST_ENV="DPDK_TEST_VERBOSE=1" make check */
			log_file("testpmd's output", self->tp.outlog, 0);
			log_file("the container and group ioctls", self->tp.trace.log, 0);
		}
	}
	/* testpmd gone: its container released everything, and the module reference. */
	EXPECT_EQ(self->pins0, pins_outstanding());
	now = backend_refs();
	EXPECT_EQ(self->before.type1, now.type1);
	EXPECT_EQ(self->before.rust, now.rust);
	/* The devices never faulted: every DMA was to an IOVA DPDK had mapped. */
	faults = 0;
	EXPECT_LE(0, kmsg_scan(self->kmsg_seq, &faults));
	EXPECT_EQ(0, faults);
}

/* VmLck of process @pid in kB, or -1. */
static long vmlck_kb(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	return proc_field(path, "VmLck");
}

/* Sends a round of packets from both ports and waits until each port has received @total. */
#define ROUND(total) do {								\
	struct port_stats __s0, __s1;							\
	const char *__out;								\
	long __deadline = now_ms() + CMD_TIMEOUT_MS;				\
	char __cmd[64];									\
											\
	snprintf(__cmd, sizeof(__cmd), "start tx_first %d", BURSTS);			\
	ASSERT_NE(NULL, tp_cmd(&self->tp, __cmd));					\
	do {										\
		__out = tp_cmd(&self->tp, "show port stats all");			\
		ASSERT_NE(NULL, __out);							\
		ASSERT_EQ(0, port_stats(__out, 0, &__s0));				\
		ASSERT_EQ(0, port_stats(__out, 1, &__s1));				\
		if (__s0.rx >= (total) && __s1.rx >= (total))				\
			break;								\
		usleep(200000);							\
	} while (now_ms() < __deadline);						\
	__out = tp_cmd(&self->tp, "stop");						\
	ASSERT_NE(NULL, __out);								\
	/* The forwarding statistics: nothing dropped. */				\
	EXPECT_EQ(0, fwd_dropped(__out, 0));						\
	EXPECT_EQ(0, fwd_dropped(__out, 1));						\
} while (0)

/* The port statistics after @round rounds: every packet sent on one port received on the other. */
#define CHECK_STATS(round) do {								\
	struct port_stats __s[2];							\
	const char *__out = tp_cmd(&self->tp, "show port stats all");			\
	int __p;									\
											\
	ASSERT_NE(NULL, __out);								\
	for (__p = 0; __p < 2; __p++) {							\
		ASSERT_EQ(0, port_stats(__out, __p, &__s[__p]));			\
		EXPECT_EQ((round) * PACKETS, __s[__p].tx);				\
		EXPECT_EQ(0, __s[__p].tx_errors);					\
		EXPECT_EQ(0, __s[__p].rx_errors);					\
		EXPECT_EQ(0, __s[__p].missed);						\
		EXPECT_EQ(0, __s[__p].nombuf);						\
	}										\
	EXPECT_EQ(__s[0].tx, __s[1].rx);						\
	EXPECT_EQ(__s[1].tx, __s[0].rx);						\
	RECORD(variant->iova, "round%d port0 tx %lu rx %lu port1 tx %lu rx %lu errors %lu", \
	       round, __s[0].tx, __s[0].rx, __s[1].tx, __s[1].rx,			\
	       __s[0].tx_errors + __s[0].rx_errors + __s[0].missed + __s[0].nombuf +	\
	       __s[1].tx_errors + __s[1].rx_errors + __s[1].missed + __s[1].nombuf);	\
	TH_LOG("round %d: port 0 sent %lu received %lu, port 1 sent %lu received %lu",	\
	       round, __s[0].tx, __s[0].rx, __s[1].tx, __s[1].rx);			\
} while (0)

/* The calls logged so far. */
static int logged(struct testpmd *t, struct call *calls)
{
	return read_calls(t->trace.log, calls, MAX_CALLS);
}

TEST_F_TIMEOUT(dpdk, testpmd, 900)
{
	const char *root = getenv("VFIO_TEST_HOSTROOT"), *backend = getenv("VFIO_BACKEND");
	char lcores[] = "0-1", mbufs[64], burst[32], iova[32], a0[32], a1[32], nullport[64];
	char *argv[] = {
		STDBUF, "-oL", TESTPMD, "-l", lcores, "--in-memory", "--no-telemetry", iova,
		"-a", a0, "-a", a1, "--",
		"-i", "--no-mlockall", mbufs, "--forward-mode=rxonly", burst, "--nb-cores=1",
		"--rxq=1", "--txq=1", NULL,
	};
	int in[2], out[2], n_start, n_add, n_readd, n_quit, n, i, status;
	char seq[4096], log[128];
	struct dma_totals t;
	const char *o;
	long pins, lck, pins_add, lck_add, t0 = now_ms();
	unsigned long long live;

	snprintf(iova, sizeof(iova), "--iova-mode=%s", variant->iova);
	snprintf(mbufs, sizeof(mbufs), "--total-num-mbufs=%d", 4096);
	snprintf(burst, sizeof(burst), "--burst=%d", BURST);
	snprintf(a0, sizeof(a0), "%s", self->nics[0].bdf);
	snprintf(a1, sizeof(a1), "%s", self->nics[1].bdf);
	snprintf(log, sizeof(log), "%s/tmp/dpdk-%s-%s.strace", root, variant->iova, backend);
	snprintf(self->tp.outlog, sizeof(self->tp.outlog), "/tmp/dpdk-%s-%s.out", variant->iova,
		 backend);
	self->tp.logfd = open(self->tp.outlog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ASSERT_LE(0, self->tp.logfd);
	TH_LOG("NICs %s (group %d) and %s (group %d)", a0, self->nics[0].group, a1,
	       self->nics[1].group);

	self->tp.cap = 1 << 20;
	self->tp.buf = malloc(self->tp.cap);
	ASSERT_NE(NULL, self->tp.buf);
	ASSERT_EQ(0, pipe2(in, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(out, O_CLOEXEC));
	ASSERT_EQ(0, vfio_strace_start(&self->tp.trace, root, argv, in[0], out[1], log));
	close(in[0]);
	close(out[1]);
	self->tp.in = in[1];
	self->tp.out = out[0];

	/* 1. Start: EAL, the container, the ports, the mbuf pool. */
	ASSERT_EQ(0, tp_read_until(&self->tp, tp_at_prompt, START_TIMEOUT_MS))
		TH_LOG("no testpmd prompt");
	TH_LOG("testpmd at its prompt after %ld s", (now_ms() - t0) / 1000);
	/* DPDK's own log: the IOVA mode asked for, the type1 IOMMU, the virtio ports. */
	EXPECT_NE(NULL, strstr(self->tp.buf, variant->mode));
	EXPECT_NE(NULL, strstr(self->tp.buf, "VFIO support initialized"));
	EXPECT_NE(NULL, strcasestr(self->tp.buf, "using IOMMU type 1 (Type 1)"));
	EXPECT_NE(NULL, strstr(self->tp.buf, "Port 1: 52:54:00:00:00:11"));
	log_lines(self->tp.buf, "IOMMU type");
	log_lines(self->tp.buf, "IOVA mode");
	/* The container is served by the backend under test. */
	ASSERT_SERVED_SINCE(self->before);

	n_start = logged(&self->tp, self->calls);
	ASSERT_LT(0, n_start);
	t = totals(self->calls, 0, n_start);
	EXPECT_EQ(0, t.failed);
	EXPECT_EQ(0, t.unmaps);
	pins = pins_outstanding() - self->pins0;
	lck = vmlck_kb(self->tp.trace.pid);
	/* What is mapped is pinned (4K pages counted) and charged to testpmd as locked memory. */
	EXPECT_EQ(t.mapped / PAGE, pins);
	EXPECT_EQ(t.mapped >> 10, lck);
	sequence(self->calls, 0, n_start, seq, sizeof(seq));
	RECORD(variant->iova, "start %s", seq);
	RECORD(variant->iova, "started maps %d bytes %#llx pinned %ld locked_kb %ld", t.maps,
	       t.mapped, pins, lck);
	TH_LOG("start: %d maps, %llu MiB mapped, %ld pages pinned, VmLck %ld kB: %s", t.maps,
	       t.mapped >> 20, pins, lck, seq);

	/* 2. Round 1. */
	ROUND(PACKETS);
	CHECK_STATS(1);

	/* 3. Memory hot-add: a null port with large buffers makes DPDK grow its heap. */
	snprintf(nullport, sizeof(nullport), "port attach net_null0,size=%d", NULL_SIZE);
	o = tp_cmd(&self->tp, nullport);
	ASSERT_NE(NULL, o);
	ASSERT_NE(NULL, strstr(o, "Port 2 is attached"));
	ASSERT_NE(NULL, tp_cmd(&self->tp, "port start 2"));
	n_add = logged(&self->tp, self->calls);
	t = totals(self->calls, n_start, n_add);
	EXPECT_EQ(0, t.failed);
	EXPECT_EQ(0, t.unmaps);
	/* Two buffers of 8 MiB: at least 16 MiB of new hugepages, each mapped. */
	EXPECT_LE(2ULL * NULL_SIZE, t.mapped);
	pins_add = pins_outstanding() - self->pins0;
	lck_add = vmlck_kb(self->tp.trace.pid);
	EXPECT_EQ(pins + (long)(t.mapped / PAGE), pins_add);
	EXPECT_EQ(lck + (long)(t.mapped >> 10), lck_add);
	sequence(self->calls, n_start, n_add, seq, sizeof(seq));
	RECORD(variant->iova, "hotadd %s pinned %ld locked_kb %ld", seq, pins_add, lck_add);
	TH_LOG("hot-add: %d maps, %llu MiB, %ld pages pinned, VmLck %ld kB: %s", t.maps,
	       t.mapped >> 20, pins_add, lck_add, seq);

	/* 4. Its receive queue set up again: the old buffer freed (unmapped), a new one mapped. */
	ASSERT_NE(NULL, tp_cmd(&self->tp, "port stop 2"));
	ASSERT_NE(NULL, tp_cmd(&self->tp, "port 2 rxq 0 setup"));
	n_readd = logged(&self->tp, self->calls);
	t = totals(self->calls, n_add, n_readd);
	EXPECT_EQ(0, t.failed);
	EXPECT_LT(0, t.unmaps);
	EXPECT_LT(0, t.maps);
	pins = pins_outstanding() - self->pins0;
	lck = vmlck_kb(self->tp.trace.pid);
	EXPECT_EQ(pins_add + (long)(t.mapped / PAGE) - (long)(t.unmapped / PAGE), pins);
	EXPECT_EQ(lck_add + (long)(t.mapped >> 10) - (long)(t.unmapped >> 10), lck);
	sequence(self->calls, n_add, n_readd, seq, sizeof(seq));
	RECORD(variant->iova, "readd %s pinned %ld locked_kb %ld", seq, pins, lck);
	TH_LOG("queue set up again: %d unmaps (%llu MiB), %d maps (%llu MiB): %s", t.unmaps,
	       t.unmapped >> 20, t.maps, t.mapped >> 20, seq);
	/* Every mapping in place: in PA mode, each IOVA is the physical address of its page. */
	if (!strcmp(variant->iova, "pa"))
		EXPECT_EQ(0, iova_not_pa(self->tp.trace.pid, self->calls, n_readd));
	o = tp_cmd(&self->tp, "port detach 2");
	ASSERT_NE(NULL, o);
	EXPECT_NE(NULL, strstr(o, "Device is detached"));

	/* 5. Round 2 over the virtio ports. */
	ROUND(2 * PACKETS);
	CHECK_STATS(2);

	/* 6. Quit. */
	n = (int)write(self->tp.in, "quit\n", 5);
	ASSERT_EQ(5, n);
	tp_read_until(&self->tp, tp_never, CMD_TIMEOUT_MS);	/* until testpmd closes its output */
	status = vfio_strace_wait(&self->tp.trace, CMD_TIMEOUT_MS);
	EXPECT_EQ(0, status);
	EXPECT_NE(NULL, strstr(self->tp.buf, "Bye..."));
	n_quit = logged(&self->tp, self->calls);
	ASSERT_LT(n_quit, MAX_CALLS);
	t = totals(self->calls, n_readd, n_quit);
	EXPECT_EQ(0, t.failed);
	sequence(self->calls, n_readd, n_quit, seq, sizeof(seq));
	RECORD(variant->iova, "quit %s", seq);
	TH_LOG("quit: %d unmaps (%llu MiB): %s", t.unmaps, t.unmapped >> 20, seq);

	/*
	 * The whole log: every map succeeded, each unmap removed exactly one earlier map, and in
	 * VA mode every IOVA is the address. What DPDK did not unmap itself went with the container,
	 * which testpmd closed on exit: nothing is pinned any more.
	 */
	t = totals(self->calls, 0, n_quit);
	live = t.mapped - t.unmapped;
	for (i = 0; i < n_quit; i++) {
		struct call *c = &self->calls[i];
		int j;

		if (!strcmp(c->op, "MAP_DMA") && !strcmp(variant->iova, "va"))
			EXPECT_EQ(c->vaddr, c->iova);
		if (strcmp(c->op, "UNMAP_DMA"))
			continue;
		EXPECT_EQ(c->size, c->unmapped);
		for (j = i - 1; j >= 0; j--)
			if (!strcmp(self->calls[j].op, "MAP_DMA") && self->calls[j].iova == c->iova)
				break;
		EXPECT_LE(0, j);
		if (j >= 0)
			EXPECT_EQ(self->calls[j].size, c->size);
	}
	EXPECT_EQ(self->pins0, pins_outstanding());
	RECORD(variant->iova, "total maps %d %#llx unmaps %d %#llx left_to_close %#llx", t.maps,
	       t.mapped, t.unmaps, t.unmapped, live);
	TH_LOG("in all: %d maps (%llu MiB), %d unmaps (%llu MiB), %llu MiB left to the container; %ld s",
	       t.maps, t.mapped >> 20, t.unmaps, t.unmapped >> 20, live >> 20, (now_ms() - t0) / 1000);
}

TEST_HARNESS_MAIN
