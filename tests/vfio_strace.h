/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What an unmodified VFIO user (DPDK) asks of VFIO, seen from outside: a small strace. A tracer
 * process forks the program (chrooted into the host root, as tests/qemu.h runs QEMU), traces it
 * from its exec with ptrace (every thread: PTRACE_O_TRACECLONE), stops it at each system call
 * (PTRACE_SYSCALL), and logs every ioctl it makes on a VFIO container (/dev/vfio/vfio) or group
 * (/dev/vfio/N) file, and every close of one, with the arguments read from /proc/<pid>/mem at the
 * entry and what the kernel wrote back at the exit. Neither the program nor the backend is asked
 * anything: the log is the same for type1 and vfio_iommu_rust when the program behaves the same,
 * so the tests compare the two. (The approach is that of the QEMU container tracer of the viommu
 * tests: the test kernel has no seccomp, kprobes or ftrace, and strace does not decode VFIO.)
 *
 * The log, one line per call, in call order (fd is the program's file descriptor):
 *
 *   container 3 GET_API_VERSION ret=0
 *   container 3 CHECK_EXTENSION 1 ret=1
 *   group 9 GET_STATUS ret=0 flags=0x1
 *   group 9 SET_CONTAINER 3 ret=0
 *   container 3 SET_IOMMU 1 ret=0
 *   group 9 GET_DEVICE_FD 0000:00:06.0 ret=0
 *   container 3 MAP_DMA vaddr=0x1000000000 iova=0x1000000000 size=0x200000 flags=0x3 ret=0
 *   container 3 UNMAP_DMA iova=0x1000000000 size=0x200000 flags=0x0 ret=0 unmapped=0x200000
 *   container 3 CLOSE ret=0
 *
 * ret is 0 or -errno (GET_DEVICE_FD's new fd is logged as 0); a VFIO device fd is not a
 * /dev/vfio file and its ioctls are not logged.
 */
#ifndef VIR_VFIO_STRACE_H
#define VIR_VFIO_STRACE_H

#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include "vfio_test.h"

#define VFIO_STRACE_THREADS 256

/* One system call of one thread between its entry and its exit. */
struct vfio_strace_call {
	pid_t tid;		/* 0: free slot */
	long nr;
	int fd;
	char file[32];		/* "container" or "group N" */
	unsigned long cmd, arg;
	unsigned char buf[64];	/* the argument structure at the entry */
};

struct vfio_strace_state {
	pid_t pid;		/* the traced program */
	int mem;		/* /proc/<pid>/mem */
	FILE *log;
	struct vfio_strace_call calls[VFIO_STRACE_THREADS];
};

/* "container" or "group N" for a /dev/vfio file, or false. */
static inline bool vfio_strace_file(struct vfio_strace_state *s, int fd, char *what, size_t size)
{
	char path[64], target[256], *name;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", s->pid, fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0)
		return false;
	target[n] = 0;
	/* Seen from outside the program's chroot: .../dev/vfio/... */
	name = strstr(target, "/dev/vfio/");
	if (!name)
		return false;
	name += 10;
	if (!strcmp(name, "vfio"))
		snprintf(what, size, "container %d", fd);
	else
		snprintf(what, size, "group %s", name);
	return true;
}

static inline bool vfio_strace_read(struct vfio_strace_state *s, unsigned long addr, void *buf,
				    size_t len)
{
	return pread(s->mem, buf, len, addr) == (ssize_t)len;
}

static inline struct vfio_strace_call *vfio_strace_slot(struct vfio_strace_state *s, pid_t tid,
							bool add)
{
	int i;

	for (i = 0; i < VFIO_STRACE_THREADS; i++)
		if (s->calls[i].tid == tid)
			return &s->calls[i];
	if (!add)
		return NULL;
	for (i = 0; i < VFIO_STRACE_THREADS; i++)
		if (!s->calls[i].tid) {
			s->calls[i].tid = tid;
			return &s->calls[i];
		}
	return NULL;
}

static inline const char *vfio_strace_name(unsigned long cmd)
{
	switch (cmd) {
	case VFIO_GET_API_VERSION: return "GET_API_VERSION";
	case VFIO_CHECK_EXTENSION: return "CHECK_EXTENSION";
	case VFIO_SET_IOMMU: return "SET_IOMMU";
	case VFIO_GROUP_GET_STATUS: return "GET_STATUS";
	case VFIO_GROUP_SET_CONTAINER: return "SET_CONTAINER";
	case VFIO_GROUP_UNSET_CONTAINER: return "UNSET_CONTAINER";
	case VFIO_GROUP_GET_DEVICE_FD: return "GET_DEVICE_FD";
	case VFIO_IOMMU_GET_INFO: return "IOMMU_GET_INFO";
	case VFIO_IOMMU_MAP_DMA: return "MAP_DMA";
	case VFIO_IOMMU_UNMAP_DMA: return "UNMAP_DMA";
	case VFIO_IOMMU_DIRTY_PAGES: return "DIRTY_PAGES";
	default: return NULL;
	}
}

/* The exit of a logged call: one line. */
static inline void vfio_strace_exit(struct vfio_strace_state *s, struct vfio_strace_call *c,
				    long ret)
{
	const char *name = vfio_strace_name(c->cmd);
	FILE *f = s->log;

	if (c->nr == SYS_close) {
		fprintf(f, "%s CLOSE ret=%ld\n", c->file, ret);
		return;
	}
	if (name)
		fprintf(f, "%s %s", c->file, name);
	else
		fprintf(f, "%s ioctl 0x%lx", c->file, c->cmd);
	switch (c->cmd) {
	case VFIO_CHECK_EXTENSION:
	case VFIO_SET_IOMMU:
		fprintf(f, " %lu ret=%ld", c->arg, ret);
		break;
	case VFIO_GROUP_SET_CONTAINER:
		fprintf(f, " %d ret=%ld", *(int *)c->buf, ret);
		break;
	case VFIO_GROUP_GET_DEVICE_FD:
		c->buf[sizeof(c->buf) - 1] = 0;
		fprintf(f, " %s ret=%ld", (char *)c->buf, ret < 0 ? ret : 0);
		break;
	case VFIO_GROUP_GET_STATUS: {
		struct vfio_group_status st = { 0 };

		if (!ret)
			vfio_strace_read(s, c->arg, &st, sizeof(st));
		fprintf(f, " ret=%ld flags=0x%x", ret, st.flags);
		break;
	}
	case VFIO_IOMMU_GET_INFO: {
		struct vfio_iommu_type1_info info = { 0 };

		if (!ret)
			vfio_strace_read(s, c->arg, &info, sizeof(info));
		fprintf(f, " ret=%ld flags=0x%x pgsizes=0x%llx", ret, info.flags,
			(unsigned long long)info.iova_pgsizes);
		break;
	}
	case VFIO_IOMMU_MAP_DMA: {
		struct vfio_iommu_type1_dma_map *m = (void *)c->buf;

		fprintf(f, " vaddr=0x%llx iova=0x%llx size=0x%llx flags=0x%x ret=%ld",
			(unsigned long long)m->vaddr, (unsigned long long)m->iova,
			(unsigned long long)m->size, m->flags, ret);
		break;
	}
	case VFIO_IOMMU_UNMAP_DMA: {
		struct vfio_iommu_type1_dma_unmap *u = (void *)c->buf, after;

		if (!vfio_strace_read(s, c->arg, &after, sizeof(after)))
			after.size = ~0ULL;
		fprintf(f, " iova=0x%llx size=0x%llx flags=0x%x ret=%ld unmapped=0x%llx",
			(unsigned long long)u->iova, (unsigned long long)u->size, u->flags, ret,
			(unsigned long long)after.size);
		break;
	}
	default:
		fprintf(f, " ret=%ld", ret);
	}
	fprintf(f, "\n");
}

/* A system call stop of @tid. */
static inline void vfio_strace_syscall(struct vfio_strace_state *s, pid_t tid)
{
	struct __ptrace_syscall_info info;
	struct vfio_strace_call *c;
	char file[32];
	int fd;

	if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, sizeof(info), &info) <= 0)
		return;
	if (info.op == PTRACE_SYSCALL_INFO_EXIT) {
		c = vfio_strace_slot(s, tid, false);
		if (c) {
			vfio_strace_exit(s, c, info.exit.rval);
			fflush(s->log);
			c->tid = 0;
		}
		return;
	}
	if (info.op != PTRACE_SYSCALL_INFO_ENTRY ||
	    (info.entry.nr != SYS_ioctl && info.entry.nr != SYS_close))
		return;
	fd = (int)info.entry.args[0];
	if (fd < 0 || !vfio_strace_file(s, fd, file, sizeof(file)))
		return;
	c = vfio_strace_slot(s, tid, true);
	if (!c)
		return;
	c->nr = info.entry.nr;
	c->fd = fd;
	snprintf(c->file, sizeof(c->file), "%s", file);
	c->cmd = info.entry.args[1];
	c->arg = info.entry.args[2];
	memset(c->buf, 0, sizeof(c->buf));
	if (c->nr == SYS_ioctl && c->cmd != VFIO_CHECK_EXTENSION && c->cmd != VFIO_SET_IOMMU &&
	    !vfio_strace_read(s, c->arg, c->buf, sizeof(c->buf))) {
		/* A structure near the end of a mapping: read what there is. */
		size_t n;

		for (n = sizeof(c->buf) / 2; n >= 4; n /= 2)
			if (vfio_strace_read(s, c->arg, c->buf, n))
				break;
	}
}

/*
 * The tracer process: forks @argv (chrooted into @root, with @in as stdin and @out as stdout and
 * stderr), sends its pid on @ready, logs until every thread is gone. Exits with the program's
 * exit status (128 + signal if killed).
 */
static inline int vfio_strace_main(const char *root, char *const argv[], int in, int out,
				   const char *log, int ready)
{
	static struct vfio_strace_state s;
	int status, code = 125;
	char path[64];
	pid_t tid;

	s.log = fopen(log, "w");
	if (!s.log)
		return 125;
	s.pid = fork();
	if (s.pid < 0)
		return 125;
	if (!s.pid) {
		if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0 || chroot(root) ||
		    chdir("/") || ptrace(PTRACE_TRACEME, 0, 0, 0) || raise(SIGSTOP))
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	close(in);
	close(out);
	if (waitpid(s.pid, &status, __WALL) != s.pid || !WIFSTOPPED(status) ||
	    ptrace(PTRACE_SETOPTIONS, s.pid, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE |
					       PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL))
		return 125;
	snprintf(path, sizeof(path), "/proc/%d/mem", s.pid);
	s.mem = open(path, O_RDONLY | O_CLOEXEC);	/* opened again at each exec */
	if (s.mem < 0 || write(ready, &s.pid, sizeof(s.pid)) != sizeof(s.pid))
		return 125;
	close(ready);
	ptrace(PTRACE_SYSCALL, s.pid, 0, 0);
	for (;;) {
		tid = waitpid(-1, &status, __WALL);
		if (tid < 0) {
			if (errno == EINTR)
				continue;
			break;	/* ECHILD: every thread has exited */
		}
		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			if (tid == s.pid)
				code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			continue;
		}
		if (!WIFSTOPPED(status))
			continue;
		if (WSTOPSIG(status) == (SIGTRAP | 0x80)) {
			vfio_strace_syscall(&s, tid);
			ptrace(PTRACE_SYSCALL, tid, 0, 0);
		} else if (status >> 16) {
			/* Clone and exec events; after an exec, the new program's memory. */
			if (status >> 16 == PTRACE_EVENT_EXEC) {
				close(s.mem);
				s.mem = open(path, O_RDONLY | O_CLOEXEC);
			}
			ptrace(PTRACE_SYSCALL, tid, 0, 0);
		} else if (WSTOPSIG(status) == SIGSTOP) {
			ptrace(PTRACE_SYSCALL, tid, 0, 0);	/* a new thread's first stop */
		} else {
			ptrace(PTRACE_SYSCALL, tid, 0, WSTOPSIG(status));	/* the program's signal */
		}
	}
	fclose(s.log);
	return code;
}

struct vfio_strace {
	pid_t tracer;		/* the tracer process, 0 if none */
	pid_t pid;		/* the traced program */
	char log[256];
};

/*
 * Runs @argv under the tracer; returns 0 once it is traced (t->pid is its pid), or an errno. The
 * tracer dies with the caller (PR_SET_PDEATHSIG), and the program with the tracer
 * (PTRACE_O_EXITKILL): a test leaves nothing behind.
 */
static inline int vfio_strace_start(struct vfio_strace *t, const char *root, char *const argv[],
				    int in, int out, const char *log)
{
	pid_t tracer;
	int p[2];

	t->tracer = t->pid = 0;
	snprintf(t->log, sizeof(t->log), "%s", log);
	if (pipe2(p, O_CLOEXEC))
		return errno;
	/* The child writes nothing into @t, which may be memory shared with it (MAP_SHARED). */
	tracer = fork();
	if (tracer < 0)
		return errno;
	if (!tracer) {
		close(p[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(vfio_strace_main(root, argv, in, out, log, p[1]));
	}
	t->tracer = tracer;
	close(p[1]);
	if (read(p[0], &t->pid, sizeof(t->pid)) != sizeof(t->pid)) {
		close(p[0]);
		waitpid(t->tracer, NULL, 0);
		t->tracer = 0;
		return EPERM;
	}
	close(p[0]);
	return 0;
}

/* Waits up to @timeout_ms for the program and the tracer to end: its exit status, or -1. */
static inline int vfio_strace_wait(struct vfio_strace *t, long timeout_ms)
{
	int status;

	if (!t->tracer)
		return -1;
	for (; timeout_ms > 0; timeout_ms -= 20) {
		pid_t r = waitpid(t->tracer, &status, WNOHANG);

		if (r == t->tracer) {
			/* The tracer ends once every thread of the program is reaped. */
			t->tracer = t->pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		}
		usleep(20000);
	}
	return -1;
}

/* Whether process @pid has exited (gone, or a zombie: its files are closed). */
static inline bool vfio_strace_gone(pid_t pid)
{
	char path[64], stat[256], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return true;
	n = read(fd, stat, sizeof(stat) - 1);
	close(fd);
	if (n <= 0)
		return true;
	stat[n] = 0;
	p = strrchr(stat, ')');
	return !p || p[2] == 'Z' || p[2] == 'X';
}

/*
 * Teardown: kills the tracer if it still runs and the program, and waits (up to 10 s) until the
 * program has exited, so that its VFIO files are released. Works from any process that knows the
 * pids (kselftest's FIXTURE_TEARDOWN_PARENT runs in the parent of the test's process): the tracer
 * is reaped only by its parent, the program by whoever adopts it.
 */
static inline void vfio_strace_kill(struct vfio_strace *t)
{
	int i;

	if (t->tracer > 0) {
		kill(t->tracer, SIGKILL);
		waitpid(t->tracer, NULL, 0);
	}
	if (t->pid > 0) {
		kill(t->pid, SIGKILL);
		for (i = 0; i < 1000 && !vfio_strace_gone(t->pid); i++)
			usleep(10000);
	}
	t->tracer = t->pid = 0;
}

#endif /* VIR_VFIO_STRACE_H */
