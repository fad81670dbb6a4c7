/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The host's own, unmodified QEMU as a VFIO user inside the test guest.
 *
 * The guest mounts the host's root filesystem read-only over virtio-9p at $VFIO_TEST_HOSTROOT
 * (tests/guest/init), with the guest's proc, sysfs and /dev and a tmpfs /tmp mounted inside it.
 * qemu_start() runs /usr/bin/qemu-system-x86_64 chrooted there, and drives it the way QEMU's own
 * libqtest does: a qtest socket for memory, port and MMIO accesses
 * ("writel ADDR VAL" -> "OK"), and a QMP socket for the monitor. Both are unix sockets this
 * process listens on in the host root's /tmp, and QEMU connects to at startup. QEMU's trace (the
 * log backend) goes to /tmp/<name>.log, its stdout and stderr to /tmp/<name>.out.
 *
 * Debian builds QEMU without the qtest accelerator (-accel qtest: "invalid accelerator"), so the
 * VM has TCG and is started paused (-S), and its firmware is 64 KiB of HLT instructions: a VM that
 * is started (a migration destination must run for its devices to leave RESUMING) halts at the
 * reset vector and does nothing else. qtest reads and writes memory, ports and MMIO either way.
 */
#ifndef VIR_QEMU_H
#define VIR_QEMU_H

#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include "vfio_test.h"
#include "mdev/vir_mdev.h"

#define QEMU_BIN "/usr/bin/qemu-system-x86_64"
#define QEMU_TIMEOUT_MS 120000

/* A socket read line by line. */
struct qemu_chan {
	int fd;
	size_t len;
	char buf[16384];
};

struct qemu {
	pid_t pid;
	struct qemu_chan qtest;
	struct qemu_chan qmp;
	char name[32];
	char root[256];		/* the host root as the guest sees it */
	char cmdline[2048];	/* QEMU's command line, for logs */
	char line[16384];	/* the last reply */
};

static inline long qemu_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static inline void qemu_sleep_ms(long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&t, NULL);
}

/* The path of /tmp/<name><suffix> of the host root, as this process sees it. */
static inline void qemu_path(const struct qemu *q, const char *suffix, char *out, size_t size)
{
	snprintf(out, size, "%s/tmp/%s%s", q->root, q->name, suffix);
}

/* Reads one line (without its newline) into @out; 0, or ETIMEDOUT / EPIPE / ENOSPC. */
static inline int qemu_chan_readline(struct qemu_chan *c, char *out, size_t size, int timeout_ms)
{
	long deadline = qemu_now_ms() + timeout_ms;

	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		long left;
		ssize_t n;

		if (nl) {
			size_t l = nl - c->buf;

			if (l >= size)
				return ENOSPC;
			memcpy(out, c->buf, l);
			out[l] = 0;
			if (l && out[l - 1] == '\r')
				out[l - 1] = 0;
			memmove(c->buf, nl + 1, c->len - l - 1);
			c->len -= l + 1;
			return 0;
		}
		if (c->len == sizeof(c->buf))
			return ENOSPC;
		left = deadline - qemu_now_ms();
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return ETIMEDOUT;
		n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
		if (n <= 0)
			return EPIPE;
		c->len += n;
	}
}

static inline int qemu_chan_send(struct qemu_chan *c, const char *s)
{
	size_t len = strlen(s), done = 0;

	while (done < len) {
		ssize_t n = write(c->fd, s + done, len - done);

		if (n <= 0)
			return EPIPE;
		done += n;
	}
	return 0;
}

/*
 * One qtest command (without newline). Returns 0 if QEMU answered "OK", the reply (after "OK ")
 * in q->line; EIO if it answered otherwise.
 */
static inline int qtest(struct qemu *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int qtest(struct qemu *q, const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	int n, err;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(cmd) - 1)
		return ENOSPC;
	strcat(cmd, "\n");
	err = qemu_chan_send(&q->qtest, cmd);
	if (err)
		return err;
	do {
		err = qemu_chan_readline(&q->qtest, q->line, sizeof(q->line), QEMU_TIMEOUT_MS);
		if (err)
			return err;
	} while (!strncmp(q->line, "IRQ", 3));	/* asynchronous interrupt notices */
	if (strncmp(q->line, "OK", 2)) {
		fprintf(stderr, "qtest: %s -> %s\n", cmd, q->line);
		return EIO;
	}
	n = 2 + (q->line[2] == ' ');
	memmove(q->line, q->line + n, strlen(q->line + n) + 1);
	return 0;
}

/* The value of a qtest reply "OK 0x...", or ~0 on error. */
static inline unsigned long long qtest_value(struct qemu *q, const char *fmt, unsigned long long a)
{
	if (qtest(q, fmt, a))
		return ~0ULL;
	return strtoull(q->line, NULL, 0);
}

#define qtest_readl(q, addr) ((unsigned int)qtest_value(q, "readl 0x%llx", addr))

/* Selects config register @reg (dword aligned) of the device in @slot of bus 0 at port 0xcf8. */
static inline int qtest_pci_select(struct qemu *q, int slot, int reg)
{
	return qtest(q, "outl 0xcf8 0x%x", 0x80000000U | slot << 11 | reg);
}

/* Writes config register @reg of the device in @slot through ports 0xcf8/0xcfc. */
static inline int qtest_pci_writel(struct qemu *q, int slot, int reg, unsigned int v)
{
	return qtest_pci_select(q, slot, reg) ?: qtest(q, "outl 0xcfc 0x%x", v);
}

/* Puts BAR0 of the device in @slot at @addr and enables memory decoding and bus mastering. */
static inline int qtest_pci_enable(struct qemu *q, int slot, unsigned int addr)
{
	return qtest_pci_writel(q, slot, 0x10, addr) ?: qtest_pci_writel(q, slot, 0x04, 0x6);
}

/* Guest memory: @len bytes of @buf to @addr, and back. */
static inline int qtest_memwrite(struct qemu *q, unsigned long long addr, const void *buf,
				 size_t len)
{
	char hex[2 * 2048 + 1];
	size_t i;

	if (len > 2048)
		return EINVAL;
	for (i = 0; i < len; i++)
		sprintf(hex + 2 * i, "%02x", ((const unsigned char *)buf)[i]);
	return qtest(q, "write 0x%llx 0x%zx 0x%s", addr, len, hex);
}

static inline int qtest_memread(struct qemu *q, unsigned long long addr, void *buf, size_t len)
{
	const char *p;
	size_t i;
	int err = qtest(q, "read 0x%llx 0x%zx", addr, len);

	if (err)
		return err;
	p = q->line;
	if (strncmp(p, "0x", 2) || strlen(p) != 2 + 2 * len)
		return EIO;
	p += 2;
	for (i = 0; i < len; i++) {
		unsigned int b;

		if (sscanf(p + 2 * i, "%2x", &b) != 1)
			return EIO;
		((unsigned char *)buf)[i] = b;
	}
	return 0;
}

/*
 * One QMP command (a JSON object). Returns 0 if QEMU answered with "return" (the reply in
 * q->line), EIO if with "error"; events on the way are skipped.
 */
static inline int qmp(struct qemu *q, const char *json)
{
	int err = qemu_chan_send(&q->qmp, json);

	if (err)
		return err;
	for (;;) {
		err = qemu_chan_readline(&q->qmp, q->line, sizeof(q->line), QEMU_TIMEOUT_MS);
		if (err)
			return err;
		if (strstr(q->line, "\"return\""))
			return 0;
		if (strstr(q->line, "\"error\"")) {
			fprintf(stderr, "qmp: %s -> %s\n", json, q->line);
			return EIO;
		}
	}
}

/*
 * An HMP command through QMP (human-monitor-command); its output, unescaped, in @out.
 */
static inline int qmp_hmp(struct qemu *q, const char *command, char *out, size_t size)
{
	char json[512];
	const char *p;
	size_t n = 0;
	int err;

	snprintf(json, sizeof(json),
		 "{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"%s\"}}",
		 command);
	err = qmp(q, json);
	if (err)
		return err;
	p = strstr(q->line, "\"return\": \"");
	if (!p)
		return EIO;
	for (p += 11; *p && *p != '"' && n + 1 < size; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			out[n++] = *p == 'n' ? '\n' : *p == 'r' ? '\r' : *p == 't' ? '\t' : *p;
		} else {
			out[n++] = *p;
		}
	}
	out[n] = 0;
	return 0;
}

/* Polls query-migrate until its status is @want (0), a final one other than it, or a timeout. */
static inline int qmp_wait_migration(struct qemu *q, const char *want)
{
	char pattern[64];
	long deadline = qemu_now_ms() + QEMU_TIMEOUT_MS;

	snprintf(pattern, sizeof(pattern), "\"status\": \"%s\"", want);
	while (qemu_now_ms() < deadline) {
		if (qmp(q, "{\"execute\": \"query-migrate\"}"))
			return EIO;
		if (strstr(q->line, pattern))
			return 0;
		if (strstr(q->line, "\"status\": \"failed\"") ||
		    strstr(q->line, "\"status\": \"cancelled\"")) {
			fprintf(stderr, "migration: %s\n", q->line);
			return EIO;
		}
		qemu_sleep_ms(50);
	}
	fprintf(stderr, "migration: no \"%s\" in time: %s\n", want, q->line);
	return ETIMEDOUT;
}

static inline int qemu_listen(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(a.sun_path))
		return -1;
	strcpy(a.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 1)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Waits for QEMU to connect to @lfd; the connection, or -1 (QEMU exited or timed out). */
static inline int qemu_accept(struct qemu *q, int lfd)
{
	long deadline = qemu_now_ms() + QEMU_TIMEOUT_MS;

	while (qemu_now_ms() < deadline) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };

		if (poll(&p, 1, 200) == 1)
			return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (waitpid(q->pid, NULL, WNOHANG) == q->pid) {
			q->pid = 0;
			return -1;
		}
	}
	return -1;
}

/* Prints QEMU's own output (stdout and stderr) to @to, each line after @prefix; returns lines. */
static inline int qemu_print_output(struct qemu *q, FILE *to, const char *prefix)
{
	char path[320], line[512];
	int n = 0;
	FILE *f;

	qemu_path(q, ".out", path, sizeof(path));
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		fprintf(to, "%s%s", prefix, line);
		n++;
	}
	fclose(f);
	return n;
}

/* QEMU's output, for a failing test's log. */
static inline void qemu_show_output(struct qemu *q)
{
	qemu_print_output(q, stderr, "qemu: ");
}

/* The VMs' firmware: 64 KiB of HLT (0xf4), so a started CPU halts at the reset vector. */
static inline int qemu_write_hlt_bios(const char *root)
{
	char path[320], hlt[65536];
	int fd, ok;

	snprintf(path, sizeof(path), "%s/tmp/vir-hlt.bin", root);
	memset(hlt, 0xf4, sizeof(hlt));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return errno;
	ok = write(fd, hlt, sizeof(hlt)) == (ssize_t)sizeof(hlt);
	close(fd);
	return ok ? 0 : EIO;
}

/*
 * Starts QEMU (machine q35, 64 MiB, paused, HLT firmware) with @args (NULL terminated) after the common ones.
 * Returns 0 once both sockets are up and QMP accepted its capabilities negotiation.
 */
static inline int qemu_start(struct qemu *q, const char *name, const char *const *args)
{
	char qtest_path[320], qmp_path[320], out_path[320], log_path[320];
	char qtest_arg[300], qmp_arg[300], log_arg[300];
	const char *argv[96] = {
		QEMU_BIN, "-machine", "q35", "-accel", "tcg,tb-size=16", "-S", "-m", "64M", "-nodefaults",
		"-bios", "/tmp/vir-hlt.bin",
		"-display", "none", "-qtest", qtest_arg, "-qtest-log", "/dev/null", "-chardev", qmp_arg,
		"-mon", "chardev=qmp,mode=control", "-D", log_arg,
	};
	const char *root = getenv("VFIO_TEST_HOSTROOT");
	int argc = 0, lq = -1, lm = -1, err;

	memset(q, 0, sizeof(*q));
	q->qtest.fd = q->qmp.fd = -1;
	if (!root) {
		fprintf(stderr, "VFIO_TEST_HOSTROOT is not set: no host root to run QEMU from\n");
		return ENOENT;
	}
	snprintf(q->root, sizeof(q->root), "%s", root);
	snprintf(q->name, sizeof(q->name), "%s", name);
	qemu_path(q, ".qtest", qtest_path, sizeof(qtest_path));
	qemu_path(q, ".qmp", qmp_path, sizeof(qmp_path));
	qemu_path(q, ".out", out_path, sizeof(out_path));
	qemu_path(q, ".log", log_path, sizeof(log_path));
	snprintf(qtest_arg, sizeof(qtest_arg), "unix:/tmp/%s.qtest", name);
	snprintf(qmp_arg, sizeof(qmp_arg), "socket,path=/tmp/%s.qmp,id=qmp", name);
	snprintf(log_arg, sizeof(log_arg), "/tmp/%s.log", name);
	while (argv[argc])
		argc++;
	for (; *args && argc < 94; args++)
		argv[argc++] = *args;
	argv[argc] = NULL;
	for (int i = 0; i < argc; i++) {
		size_t len = strlen(q->cmdline);

		snprintf(q->cmdline + len, sizeof(q->cmdline) - len, "%s%s", i ? " " : "", argv[i]);
	}
	unlink(log_path);
	err = qemu_write_hlt_bios(root);
	if (err)
		return err;
	err = EIO;

	lq = qemu_listen(qtest_path);
	lm = qemu_listen(qmp_path);
	if (lq < 0 || lm < 0)
		goto out;
	q->pid = fork();
	if (q->pid < 0) {
		q->pid = 0;
		goto out;
	}
	if (!q->pid) {
		int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		/*
		 * QEMU dies with the test process: a test whose ASSERT fails skips its teardown
		 * (kselftest_harness.h's fork result does not survive the longjmp at -O2), and a
		 * QEMU left running would hold its container, pins and module reference.
		 */
		if (fd < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 ||
		    chroot(root) || chdir("/"))
			_exit(126);
		execv(QEMU_BIN, (char *const *)argv);
		_exit(127);
	}
	q->qtest.fd = qemu_accept(q, lq);
	if (q->qtest.fd >= 0)
		q->qmp.fd = qemu_accept(q, lm);
	if (q->qtest.fd < 0 || q->qmp.fd < 0) {
		fprintf(stderr, "QEMU did not connect its qtest and QMP sockets\n");
		qemu_show_output(q);
		goto out;
	}
	/* The greeting, then capabilities negotiation. */
	err = qemu_chan_readline(&q->qmp, q->line, sizeof(q->line), QEMU_TIMEOUT_MS);
	if (!err)
		err = qmp(q, "{\"execute\": \"qmp_capabilities\"}");
out:
	if (lq >= 0)
		close(lq);
	if (lm >= 0)
		close(lm);
	return err;
}

/* Asks QEMU to quit and reaps it: its exit status (0 for a clean exit), or -1. */
static inline int qemu_quit(struct qemu *q)
{
	long deadline = qemu_now_ms() + QEMU_TIMEOUT_MS;
	int status;

	if (!q->pid)
		return -1;
	qemu_chan_send(&q->qmp, "{\"execute\": \"quit\"}");
	while (qemu_now_ms() < deadline) {
		if (waitpid(q->pid, &status, WNOHANG) == q->pid) {
			q->pid = 0;
			close(q->qtest.fd);
			close(q->qmp.fd);
			q->qtest.fd = q->qmp.fd = -1;
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
		qemu_sleep_ms(20);
	}
	return -1;
}

/* Kills QEMU if it still runs (test teardown). */
static inline void qemu_kill(struct qemu *q)
{
	if (q->pid > 0) {
		qemu_show_output(q);
		kill(q->pid, SIGKILL);
		waitpid(q->pid, NULL, 0);
		q->pid = 0;
	}
	if (q->qtest.fd >= 0)
		close(q->qtest.fd);
	if (q->qmp.fd >= 0)
		close(q->qmp.fd);
	q->qtest.fd = q->qmp.fd = -1;
}

/*
 * Calls @fn, in order, for each line of QEMU's trace log that records @event, with what follows
 * "<event> " (the trace arguments); with @event NULL, for every trace line, with the whole record
 * ("event args"). Returns the number of such lines, or -1 without a log.
 */
static inline int qemu_trace(struct qemu *q, const char *event,
			     void (*fn)(const char *args, void *data), void *data)
{
	char path[320], line[1024];
	size_t klen = event ? strlen(event) : 0;
	int n = 0;
	FILE *f;

	qemu_path(q, ".log", path, sizeof(path));
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *p = line;
		size_t span = strspn(p, "0123456789@.");

		/* The log backend may prefix "pid@seconds:". */
		if (span && p[span] == ':')
			p += span + 1;
		line[strcspn(line, "\n")] = 0;
		if (event && (strncmp(p, event, klen) || p[klen] != ' '))
			continue;
		if (fn)
			fn(event ? p + klen + 1 : p, data);
		n++;
	}
	fclose(f);
	return n;
}

/* --- What the tests and the demo read from QEMU ------------------------------------------- */

/* Appends each trace record to a string, ';' separated. */
struct trace_text {
	char s[8192];
	int n;
};

static inline void trace_append(const char *args, void *data)
{
	struct trace_text *t = data;
	size_t len = strlen(t->s);

	snprintf(t->s + len, sizeof(t->s) - len, "%s%s", len ? ";" : "", args);
	t->n++;
}

/*
 * The same for QEMU's vfio_listener_region_add_ram and _del records, as "region_add [ram] 0x0 -
 * 0x3ffffff" and "region_del 0x0 - 0x3ffffff": without the event name and the host address.
 */
static inline void trace_append_map(const char *args, void *data)
{
	char map[1024], *host;

	if (!strncmp(args, "vfio_listener_", 14) && strchr(args, ' '))
		args = strchr(args, ' ') + 1;
	snprintf(map, sizeof(map), "%s", args);
	host = strrchr(map, '[');
	if (host && host > map && strncmp(host, "[ram]", 5))
		host[-1] = 0;
	trace_append(map, data);
}

/* Whether @t holds the record @rec already. */
static inline bool trace_has(const struct trace_text *t, const char *rec)
{
	size_t len = strlen(rec);
	const char *p;

	for (p = strstr(t->s, rec); p; p = strstr(p + 1, rec))
		if ((p == t->s || p[-1] == ';') && (!p[len] || p[len] == ';'))
			return true;
	return false;
}

/*
 * The dirty bitmap reads of a migration, split by the migration state they happened in: before
 * the pause before switchover, and after it (the final sync). How many syncs QEMU makes while it
 * iterates depends on timing, so each side keeps the distinct reads (one per RAM section and
 * result) and counts them all.
 */
struct dirty_syncs {
	char state[32];
	struct trace_text before, after;	/* distinct reads */
	int reads_before, reads_after;
	unsigned long long dirty_before, dirty_after;
};

static inline void dirty_sync(const char *rec, void *data)
{
	struct dirty_syncs *d = data;
	const char *p;
	bool after;

	if (sscanf(rec, "migrate_set_state new state %31s", d->state) == 1)
		return;
	if (strncmp(rec, "vfio_get_dirty_bitmap ", 22))
		return;
	rec += 22;
	/* "device" and later: after the pause before switchover (or with no pause at all). */
	after = !strcmp(d->state, "device") || !strcmp(d->state, "completed");
	if (!trace_has(after ? &d->after : &d->before, rec))
		trace_append(rec, after ? &d->after : &d->before);
	if (after)
		d->reads_after++;
	else
		d->reads_before++;
	p = strstr(rec, "dirty_pages=");
	if (p) {
		if (after)
			d->dirty_after += strtoull(p + 12, NULL, 0);
		else
			d->dirty_before += strtoull(p + 12, NULL, 0);
	}
}

/* Where the tests put BAR0 of the device they drive (in q35's PCI hole). */
#define BAR_ADDR 0xe0000000ULL

/* One command of the vir_mdev device through its BAR0; returns its STATUS (0 or an errno). */
static inline unsigned int vir_command(struct qemu *q, unsigned long long iova,
				       unsigned int count, unsigned int value, unsigned int command)
{
	if (qtest(q, "writeq 0x%llx 0x%llx", BAR_ADDR + VIR_REG_IOVA, iova) ||
	    qtest(q, "writel 0x%llx 0x%x", BAR_ADDR + VIR_REG_COUNT, count) ||
	    qtest(q, "writel 0x%llx 0x%x", BAR_ADDR + VIR_REG_VALUE, value) ||
	    qtest(q, "writel 0x%llx 0x%x", BAR_ADDR + VIR_REG_COMMAND, command))
		return ~0U;
	return qtest_readl(q, BAR_ADDR + VIR_REG_STATUS);
}

/* Whether the page at @gpa of the VM holds @value in every byte. */
static inline bool page_is(struct qemu *q, unsigned long long gpa, unsigned char value)
{
	unsigned char page[PAGE];
	unsigned int i;

	if (qtest_memread(q, gpa, page, sizeof(page)))
		return false;
	for (i = 0; i < sizeof(page); i++)
		if (page[i] != value)
			return false;
	return true;
}

#endif /* VIR_QEMU_H */
