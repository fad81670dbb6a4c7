/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What QEMU asks of its VFIO container, seen from outside: a tracer process attached to a running
 * QEMU with ptrace records every MAP_DMA, UNMAP_DMA and DIRTY_PAGES ioctl QEMU makes on a
 * container fd (/dev/vfio/vfio), with its arguments, its result, and for an unmap or a read with
 * dirty bitmap the bitmap the kernel wrote. QEMU is not modified, and neither backend is asked:
 * the record is the same for type1 and vfio_iommu_rust, so the tests can compare them.
 *
 * QEMU 10.0 has trace events for the notifications that lead to these ioctls (vfio_iommu_map_notify)
 * and for bitmap reads of a migration (vfio_get_dirty_bitmap), but none for VFIO_IOMMU_UNMAP_DMA
 * itself or for the bitmap of an unmap; strace names the ioctls but does not decode VFIO
 * structures; the test kernel has no seccomp, kprobes or ftrace. So this is a small strace: every
 * thread of QEMU is seized (PTRACE_SEIZE, new threads followed with PTRACE_O_TRACECLONE) and
 * stopped at each system call (PTRACE_SYSCALL); PTRACE_GET_SYSCALL_INFO tells entry from exit;
 * the structures and bitmaps are read through /proc/<pid>/mem at the entry (arguments) and at the
 * exit (the size the kernel wrote back, the bitmap). The cost is two stops per system call of
 * QEMU, which a paused VM driven by qtest makes few of.
 *
 * The log, one line per ioctl, in call order (all are made by QEMU's main loop or, for dirty
 * tracking START, by the thread of calc-dirty-rate):
 *
 *   MAP iova=0x8000000 size=0x1000 flags=0x3 ret=0
 *   UNMAP iova=0x8000000 size=0x200000 flags=0x1 ret=0 unmapped=0x200000 pgsize=0x1000
 *         bitmap=0x40 dirty=512 bits=0-511
 *   DIRTY flags=0x1 ret=0                                       (START; 0x2 STOP)
 *   DIRTY flags=0x4 ret=0 iova=... size=... pgsize=... bitmap=... dirty=N bits=...   (GET_BITMAP)
 *
 * ret is 0 or -errno, unmapped the size field after the call, bits the set bits of the bitmap as
 * ranges of bit numbers (page offsets from iova; the first 32 ranges, then "...").
 */
#ifndef VIR_VFIO_TRACE_H
#define VIR_VFIO_TRACE_H

#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include "vfio_test.h"

#define VFIO_TRACE_THREADS 256

struct vfio_trace {
	pid_t pid;		/* the tracer process, 0 if none */
	char log[320];
};

/* One ioctl seen at its entry, kept until its exit. */
struct vfio_trace_call {
	pid_t tid;		/* 0: free slot */
	unsigned long cmd, argp;
	unsigned char arg[64];	/* the argument structure at the entry */
};

struct vfio_tracer {
	pid_t tgid;
	int mem;		/* /proc/<tgid>/mem */
	FILE *log;
	struct vfio_trace_call calls[VFIO_TRACE_THREADS];
	char container[64];	/* fd numbers known to be containers, 1 per fd */
	unsigned char buf[65536];	/* a piece of a bitmap */
};

static inline bool vfio_tracer_is_container(struct vfio_tracer *t, int fd)
{
	char path[64], target[256];
	ssize_t n;

	if (fd < 0)
		return false;
	if (fd < (int)sizeof(t->container) && t->container[fd])
		return true;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", t->tgid, fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0)
		return false;
	target[n] = 0;
	/* Seen from outside QEMU's chroot: .../dev/vfio/vfio. */
	if (n < 14 || strcmp(target + n - 14, "/dev/vfio/vfio"))
		return false;
	if (fd < (int)sizeof(t->container))
		t->container[fd] = 1;
	return true;
}

static inline bool vfio_tracer_read(struct vfio_tracer *t, unsigned long addr, void *buf, size_t len)
{
	return pread(t->mem, buf, len, addr) == (ssize_t)len;
}

/*
 * Appends " dirty=N bits=ranges" for the @bytes long bitmap at @addr of QEMU, read in pieces of a
 * fixed buffer: the tracer allocates nothing while QEMU waits, whatever the bitmap's size.
 */
static inline void vfio_tracer_bitmap(struct vfio_tracer *t, unsigned long addr, unsigned long long bytes)
{
	unsigned long long off, n = 0, start = 0;
	char ranges[700] = "";
	size_t len = 0;
	int nr = 0;
	bool in = false;

	for (off = 0; off <= bytes; off += sizeof(t->buf)) {
		size_t chunk = bytes - off < sizeof(t->buf) ? bytes - off : sizeof(t->buf), i;

		if (chunk && !vfio_tracer_read(t, addr + off, t->buf, chunk)) {
			fprintf(t->log, " dirty=? bits=unreadable");
			return;
		}
		for (i = 0; i <= chunk * 8; i++) {
			unsigned long long bit = off * 8 + i;
			bool set = i < chunk * 8 && (t->buf[i / 8] >> (i % 8) & 1);

			if (i == chunk * 8 && off + chunk < bytes)
				break;	/* a range may go on in the next piece */
			/* Zero bytes outside a range are skipped whole: most of a large bitmap. */
			if (!in && i % 8 == 0 && i < chunk * 8 && !t->buf[i / 8]) {
				i += 7;
				continue;
			}
			n += set;
			if (set && !in) {
				start = bit;
				in = true;
			} else if (!set && in) {
				in = false;
				if (nr++ == 32)
					len += snprintf(ranges + len, sizeof(ranges) - len, ",...");
				else if (nr <= 32 && start == bit - 1)
					len += snprintf(ranges + len, sizeof(ranges) - len, "%s%llu",
							nr > 1 ? "," : "", start);
				else if (nr <= 32)
					len += snprintf(ranges + len, sizeof(ranges) - len, "%s%llu-%llu",
							nr > 1 ? "," : "", start, bit - 1);
			}
		}
		if (off + chunk >= bytes)
			break;
	}
	fprintf(t->log, " dirty=%llu bits=%s", n, nr ? ranges : "none");
}

static inline struct vfio_trace_call *vfio_tracer_call(struct vfio_tracer *t, pid_t tid, bool add)
{
	int i;

	for (i = 0; i < VFIO_TRACE_THREADS; i++)
		if (t->calls[i].tid == tid)
			return &t->calls[i];
	if (!add)
		return NULL;
	for (i = 0; i < VFIO_TRACE_THREADS; i++)
		if (!t->calls[i].tid) {
			t->calls[i].tid = tid;
			return &t->calls[i];
		}
	return NULL;
}

/* A system call stop of @tid. */
static inline void vfio_tracer_syscall(struct vfio_tracer *t, pid_t tid)
{
	struct __ptrace_syscall_info info;
	struct vfio_trace_call *c;
	long ret;

	if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, sizeof(info), &info) <= 0)
		return;
	if (info.op == PTRACE_SYSCALL_INFO_ENTRY) {
		unsigned long cmd = info.entry.args[1];

		if (info.entry.nr != SYS_ioctl ||
		    (cmd != VFIO_IOMMU_MAP_DMA && cmd != VFIO_IOMMU_UNMAP_DMA &&
		     cmd != VFIO_IOMMU_DIRTY_PAGES) ||
		    !vfio_tracer_is_container(t, (int)info.entry.args[0]))
			return;
		c = vfio_tracer_call(t, tid, true);
		if (!c)
			return;
		c->cmd = cmd;
		c->argp = info.entry.args[2];
		memset(c->arg, 0, sizeof(c->arg));
		if (!vfio_tracer_read(t, c->argp, c->arg, sizeof(c->arg)))
			memset(c->arg, 0, sizeof(c->arg));
		return;
	}
	if (info.op != PTRACE_SYSCALL_INFO_EXIT)
		return;
	c = vfio_tracer_call(t, tid, false);
	if (!c)
		return;
	ret = info.exit.rval;
	if (c->cmd == VFIO_IOMMU_MAP_DMA) {
		struct vfio_iommu_type1_dma_map *m = (void *)c->arg;

		fprintf(t->log, "MAP iova=0x%llx size=0x%llx flags=0x%x ret=%ld\n",
			(unsigned long long)m->iova, (unsigned long long)m->size, m->flags, ret);
	} else if (c->cmd == VFIO_IOMMU_UNMAP_DMA) {
		struct vfio_iommu_type1_dma_unmap *u = (void *)c->arg, after;
		struct vfio_bitmap *b = (void *)(c->arg + sizeof(*u));

		if (!vfio_tracer_read(t, c->argp, &after, sizeof(after)))
			after.size = ~0ULL;
		fprintf(t->log, "UNMAP iova=0x%llx size=0x%llx flags=0x%x ret=%ld unmapped=0x%llx",
			(unsigned long long)u->iova, (unsigned long long)u->size, u->flags, ret,
			(unsigned long long)after.size);
		if (u->flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) {
			fprintf(t->log, " pgsize=0x%llx bitmap=0x%llx", (unsigned long long)b->pgsize,
				(unsigned long long)b->size);
			if (!ret)
				vfio_tracer_bitmap(t, (unsigned long)b->data, b->size);
		}
		fprintf(t->log, "\n");
	} else {
		struct vfio_iommu_type1_dirty_bitmap *d = (void *)c->arg;
		struct vfio_iommu_type1_dirty_bitmap_get *g = (void *)(c->arg + sizeof(*d));

		fprintf(t->log, "DIRTY flags=0x%x ret=%ld", d->flags, ret);
		if (d->flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP) {
			fprintf(t->log, " iova=0x%llx size=0x%llx pgsize=0x%llx bitmap=0x%llx",
				(unsigned long long)g->iova, (unsigned long long)g->size,
				(unsigned long long)g->bitmap.pgsize,
				(unsigned long long)g->bitmap.size);
			if (!ret)
				vfio_tracer_bitmap(t, (unsigned long)g->bitmap.data, g->bitmap.size);
		}
		fprintf(t->log, "\n");
	}
	fflush(t->log);
	c->tid = 0;
}

/* Seizes every thread of @tgid not seized yet; returns how many were new, or -1. */
static inline int vfio_tracer_seize_all(pid_t tgid, pid_t *seized, int *n)
{
	char path[64];
	struct dirent *e;
	int added = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", tgid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		pid_t tid = atoi(e->d_name);
		int i;

		if (tid <= 0)
			continue;
		for (i = 0; i < *n && seized[i] != tid; i++)
			;
		if (i < *n || *n == VFIO_TRACE_THREADS)
			continue;
		if (ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE |
						  PTRACE_O_EXITKILL) ||
		    ptrace(PTRACE_INTERRUPT, tid, 0, 0)) {
			closedir(d);
			return -1;
		}
		seized[(*n)++] = tid;
		added++;
	}
	closedir(d);
	return added;
}

/* The tracer process: attaches, says so on @ready, records until every thread of QEMU is gone. */
static inline int vfio_tracer_main(pid_t tgid, const char *log, int ready)
{
	static struct vfio_tracer t;
	static pid_t seized[VFIO_TRACE_THREADS];
	char path[64];
	int n = 0, r, status;
	pid_t tid;

	t.tgid = tgid;
	t.log = fopen(log, "w");
	snprintf(path, sizeof(path), "/proc/%d/mem", tgid);
	if (!t.log)
		return 1;
	do {
		r = vfio_tracer_seize_all(tgid, seized, &n);
	} while (r > 0);
	if (r < 0)
		return 1;
	t.mem = open(path, O_RDONLY | O_CLOEXEC);
	if (t.mem < 0)
		return 1;
	if (write(ready, "1", 1) != 1)
		return 1;
	close(ready);
	for (;;) {
		tid = waitpid(-1, &status, __WALL);
		if (tid < 0) {
			if (errno == EINTR)
				continue;
			break;	/* ECHILD: every thread has exited */
		}
		if (!WIFSTOPPED(status))
			continue;
		if (WSTOPSIG(status) == (SIGTRAP | 0x80)) {
			vfio_tracer_syscall(&t, tid);
			ptrace(PTRACE_SYSCALL, tid, 0, 0);
		} else if (status >> 16 == PTRACE_EVENT_STOP) {
			int sig = WSTOPSIG(status);

			/* A group stop is kept (LISTEN); the attach and clone stops are resumed. */
			if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)
				ptrace(PTRACE_LISTEN, tid, 0, 0);
			else
				ptrace(PTRACE_SYSCALL, tid, 0, 0);
		} else if (status >> 16) {
			ptrace(PTRACE_SYSCALL, tid, 0, 0);	/* clone events */
		} else {
			ptrace(PTRACE_SYSCALL, tid, 0, WSTOPSIG(status));	/* a signal for QEMU */
		}
	}
	fclose(t.log);
	return 0;
}

/*
 * Starts recording the container ioctls of the running process @qemu into @log; returns 0 once
 * every thread of it is attached, or an errno. The tracer dies with the caller, and QEMU with
 * the tracer (PTRACE_O_EXITKILL): a test never leaves a QEMU stopped with nobody to resume it.
 */
static inline int vfio_trace_start(struct vfio_trace *t, pid_t qemu, const char *log)
{
	int p[2];
	char c;

	t->pid = 0;
	snprintf(t->log, sizeof(t->log), "%s", log);
	if (pipe2(p, O_CLOEXEC))
		return errno;
	t->pid = fork();
	if (t->pid < 0) {
		t->pid = 0;
		return errno;
	}
	if (!t->pid) {
		close(p[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(vfio_tracer_main(qemu, log, p[1]));
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1) {
		close(p[0]);
		waitpid(t->pid, NULL, 0);
		t->pid = 0;
		return EPERM;
	}
	close(p[0]);
	return 0;
}

/* After QEMU has exited: waits for the tracer; 0 if it recorded to the end. */
static inline int vfio_trace_wait(struct vfio_trace *t)
{
	int status;

	if (!t->pid)
		return -1;
	if (waitpid(t->pid, &status, 0) != t->pid)
		return -1;
	t->pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Teardown: stops the tracer if it still runs (which kills QEMU with it). */
static inline void vfio_trace_kill(struct vfio_trace *t)
{
	if (t->pid > 0) {
		kill(t->pid, SIGKILL);
		waitpid(t->pid, NULL, 0);
		t->pid = 0;
	}
}

/* --- Reading the log -------------------------------------------------------------------- */

/* One line of the log. */
struct vfio_call {
	char op[8];			/* MAP, UNMAP, DIRTY */
	unsigned long long iova, size, unmapped, pgsize, bitmap, dirty;
	unsigned int flags;
	long ret;
	bool has_bitmap;
	char bits[512];
};

static inline unsigned long long vfio_call_field(const char *line, const char *key)
{
	const char *p = strstr(line, key);

	return p ? strtoull(p + strlen(key), NULL, 0) : 0;
}

static inline void vfio_call_parse(const char *line, struct vfio_call *c)
{
	const char *p;

	memset(c, 0, sizeof(*c));
	sscanf(line, "%7s", c->op);
	c->iova = vfio_call_field(line, " iova=");
	c->size = vfio_call_field(line, " size=");
	c->flags = vfio_call_field(line, " flags=");
	c->ret = strtol(strstr(line, " ret=") ? strstr(line, " ret=") + 5 : "0", NULL, 0);
	c->unmapped = vfio_call_field(line, " unmapped=");
	c->pgsize = vfio_call_field(line, " pgsize=");
	c->bitmap = vfio_call_field(line, " bitmap=");
	c->has_bitmap = strstr(line, " bitmap=") != NULL;
	c->dirty = vfio_call_field(line, " dirty=");
	p = strstr(line, " bits=");
	if (p)
		snprintf(c->bits, sizeof(c->bits), "%s", p + 6);
}

/*
 * Reads the log into @calls (at most @max); returns the number of lines (which may exceed @max:
 * the rest is counted, not stored), or -1 without a log.
 */
static inline int vfio_trace_read(const struct vfio_trace *t, struct vfio_call *calls, int max)
{
	char line[2048];
	int n = 0;
	FILE *f = fopen(t->log, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (n < max)
			vfio_call_parse(line, &calls[n]);
		n++;
	}
	fclose(f);
	return n;
}

#endif /* VIR_VFIO_TRACE_H */
