/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Reading what vfio_iommu_rust shows of its containers (Documentation/observability.rst): the
 * debugfs directory of a container, its "key: value" lines, and the module's trace events in
 * tracefs. Shared by the observability tests (observe_fixture.h) and the demo.
 */
#ifndef OBSERVE_H
#define OBSERVE_H

#include <dirent.h>
#include <sys/stat.h>
#include "vfio_test.h"

#define VIR_DEBUGFS "/sys/kernel/debug/vfio_iommu_rust"
#define VIR_EVENTS "/sys/kernel/tracing/events/vfio_iommu_rust"
#define VIR_TRACE "/sys/kernel/tracing/trace"

/* A whole file, NUL-terminated, in a malloc'd buffer (free it); NULL if it cannot be read. */
static inline char *slurp(const char *path)
{
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap + 1);
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || !buf) {
		if (fd >= 0)
			close(fd);
		free(buf);
		return NULL;
	}
	while ((n = read(fd, buf + len, cap - len)) > 0) {
		len += n;
		if (len == cap) {
			char *bigger = realloc(buf, 2 * cap + 1);

			if (!bigger)
				break;
			buf = bigger;
			cap *= 2;
		}
	}
	close(fd);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	buf[len] = 0;
	return buf;
}

/* Writes @value to @path; 0 or an errno. */
static inline int write_str(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_TRUNC), ok;

	if (fd < 0)
		return errno;
	ok = write(fd, value, strlen(value)) == (ssize_t)strlen(value);
	close(fd);
	return ok ? 0 : EIO;
}

/*
 * The debugfs directory ("pid<pid>-c<id>") of this process's only container with an id above
 * @after into @path; returns the container id, 0 if there is none, -1 if there are several.
 */
static inline long container_dir_after(long after, char *path, size_t size)
{
	char prefix[32];
	struct dirent *e;
	long id = 0, n = 0, i;
	DIR *d = opendir(VIR_DEBUGFS);

	if (!d)
		return 0;
	snprintf(prefix, sizeof(prefix), "pid%d-c", getpid());
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, prefix, strlen(prefix)))
			continue;
		i = strtol(e->d_name + strlen(prefix), NULL, 10);
		if (i <= after)
			continue;
		id = i;
		snprintf(path, size, "%s/%.64s", VIR_DEBUGFS, e->d_name);
		n++;
	}
	closedir(d);
	return n > 1 ? -1 : id;
}

/* The debugfs directory of this process's only container (see container_dir_after()). */
static inline long container_dir(char *path, size_t size)
{
	return container_dir_after(0, path, size);
}

/* A file of the container directory @dir, read whole (free it), or NULL. */
static inline char *container_file(const char *dir, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return slurp(path);
}

/* The number after "@key: " at the start of a line of @text, or -1 if there is none. */
static inline long long key_value(const char *text, const char *key)
{
	size_t n = strlen(key);
	const char *p = text;

	while (p && *p) {
		if (!strncmp(p, key, n) && p[n] == ':' && p[n + 1] == ' ')
			return strtoll(p + n + 2, NULL, 0);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -1;
}

/* The line of @text starting with @start, copied into @line; 0 if found, -1 if not. */
static inline int find_line(const char *text, const char *start, char *line, size_t size)
{
	size_t n = strlen(start);
	const char *p = text;

	while (p && *p) {
		if (!strncmp(p, start, n)) {
			const char *end = strchrnul(p, '\n');

			snprintf(line, size, "%.*s", (int)(end - p), p);
			return 0;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -1;
}

/* Enables (1) or disables (0) every event of the module and, when enabling, empties the buffer. */
static inline int trace_events(int on)
{
	int err = on ? write_str(VIR_TRACE, "") : 0;

	return err ? err : write_str(VIR_EVENTS "/enable", on ? "1" : "0");
}

/*
 * The fields (after "@event: ") of the @nth event @event of container @id in the trace buffer
 * @trace, copied into @fields; 0 if found, -1 if not.
 */
static inline int trace_event(const char *trace, const char *event, long id, int nth,
			      char *fields, size_t size)
{
	char needle[96];
	const char *p = trace;

	snprintf(needle, sizeof(needle), " %s: container=%ld ", event, id);
	while ((p = strstr(p, needle))) {
		const char *start = p + strlen(event) + 3, *end = strchrnul(start, '\n');

		if (nth-- == 0) {
			snprintf(fields, size, "%.*s", (int)(end - start), start);
			return 0;
		}
		p = end;
	}
	return -1;
}

/* How many events @event of container @id the trace buffer @trace has. */
static inline int trace_count(const char *trace, const char *event, long id)
{
	char fields[512];
	int n = 0;

	while (!trace_event(trace, event, id, n, fields, sizeof(fields)))
		n++;
	return n;
}

#endif /* OBSERVE_H */
