/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The container fixture of the observability tests (observe_test.c, observe_vendor_test.c): a
 * container whose debugfs directory is found at open and checked gone at close, and the logging
 * of what the documentation shows. Include after kselftest_harness.h.
 */
#ifndef OBSERVE_FIXTURE_H
#define OBSERVE_FIXTURE_H

#include "observe.h"

#define IOVA 0x100000ULL

/* Logs every line of @text, prefixed with @name (the worked examples of observability.rst). */
static void log_lines(struct __test_metadata *_metadata, const char *name, const char *text)
{
	const char *p = text, *end;

	while (p && *p) {
		end = strchrnul(p, '\n');
		TH_LOG("%s: %.*s", name, (int)(end - p), p);
		p = *end ? end + 1 : NULL;
	}
}

/* Logs the trace buffer's events of container @id. */
static void log_trace(struct __test_metadata *_metadata, const char *trace, long id)
{
	char needle[48];
	const char *p = trace, *end, *event;

	snprintf(needle, sizeof(needle), ": container=%ld ", id);
	while (p && *p) {
		end = strchrnul(p, '\n');
		event = memmem(p, end - p, needle, strlen(needle));
		if (event) {
			while (event > p && event[-1] != ' ')
				event--;
			TH_LOG("trace: %.*s", (int)(end - event), event);
		}
		p = *end ? end + 1 : NULL;
	}
}

/* type1 (our module not loaded): none of our debugfs files or trace events exist. */
static int nothing_of_ours(void)
{
	return access(VIR_DEBUGFS, F_OK) && errno == ENOENT &&
	       access(VIR_EVENTS, F_OK) && errno == ENOENT;
}

/* A container with one group and 64 pages of memory; on our backend, its debugfs directory. */
struct observed {
	int container;
	int group;
	long id;
	char dir[256];
	enum vfio_backend backend;
	char *buf;
	long pins_before;
};

/* Opens @o with the group of the environment variable @group_env. */
static void observed_open(struct __test_metadata *_metadata, struct observed *o,
			  const char *group_env)
{
	struct backend_refs before = backend_refs();

	o->container = o->group = -1;
	o->backend = vfio_backend();
	o->pins_before = pins_outstanding();
	ASSERT_EQ(0, open_container(env_int(group_env), VFIO_TYPE1v2_IOMMU, &o->container,
				    &o->group));
	ASSERT_SERVED_SINCE(before);
	o->buf = alloc_pages(64);
	ASSERT_NE(NULL, o->buf);
	if (o->backend == BACKEND_TYPE1) {
		ASSERT_TRUE(nothing_of_ours());
		return;
	}
	o->id = container_dir(o->dir, sizeof(o->dir));
	ASSERT_LT(0, o->id) TH_LOG("no single directory pid%d-c<id> in " VIR_DEBUGFS, getpid());
}

/* Closes @o (if the test did not) and checks that its directory went with it. */
static void observed_close(struct __test_metadata *_metadata, struct observed *o)
{
	if (o->group >= 0)
		close(o->group);
	if (o->container >= 0)
		close(o->container);
	o->group = o->container = -1;
	if (o->backend == BACKEND_RUST) {
		EXPECT_NE(0, access(o->dir, F_OK));
		EXPECT_EQ(0, container_dir(o->dir, sizeof(o->dir)));
	}
}

/* The end of a test: closed, events off, nothing pinned or locked. */
static void observed_teardown(struct __test_metadata *_metadata, struct observed *o)
{
	observed_close(_metadata, o);
	if (o->backend == BACKEND_RUST)
		trace_events(0);
	EXPECT_EQ(o->pins_before, pins_outstanding());
	EXPECT_EQ(0, locked_vm_kb());
}

/* The file of the container directory of self->o, read whole (freed at the next read here). */
#define O_FILE(name) ({								\
	static char *__text;							\
	free(__text);								\
	__text = container_file(self->o.dir, name);				\
	ASSERT_NE(NULL, __text) TH_LOG("cannot read %s/%s", self->o.dir, name);	\
	__text;									\
})

#endif /* OBSERVE_FIXTURE_H */
