/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Optional profiling of vir-bench's timed sections with the host's perf, run from the host root
 * (/host, tests/guest/init) against the guest kernel. Off unless VIR_BENCH_PERF is set, to a
 * comma-separated list of what to do in measured rounds 1, 2, ... (later rounds are not profiled):
 *
 *   VIR_BENCH_PERF=stat    counts, system-wide, the IOMMU core's map/unmap calls and the VT-d
 *                          driver's IOTLB flushes (one per sync) and invalidation submissions
 *   VIR_BENCH_PERF=record  a flat CPU profile (cpu-clock samples) of vir-bench's own time (its
 *                          ioctls), top symbols
 *
 * A workload whose timed section is short repeats it in a profiled round (prof_reps()), inside
 * the profile: under TCG, perf's cpu-clock samples cover about a tenth of the wall time (a sample
 * is lost while the emulator runs a long emulated operation, such as an IOMMU invalidation).
 *
 * Output: "PERF <workload> <backend> <perf line>" lines, with the profile's sample count. Counts
 * are exact; profile times are those of the emulated CPU.
 */
#ifndef VIR_BENCH_PROFILE_H
#define VIR_BENCH_PROFILE_H

#include <signal.h>
#include <sys/wait.h>

#define PERF_EVENTS "iommu:map,iommu:unmap,intel_iommu:cache_tag_flush_range,intel_iommu:qi_submit"

static pid_t prof_pid;
/* The measured round (from 1), set by the benchmark. */
static int prof_round;

/* What VIR_BENCH_PERF asks for in this round: "stat", "record" or NULL. */
static const char *prof_mode(void)
{
	const char *m = getenv("VIR_BENCH_PERF");
	int i;

	for (i = 1; m && *m && i < prof_round; i++) {
		m = strchr(m, ',');
		m = m ? m + 1 : NULL;
	}
	if (!m || prof_round < 1)
		return NULL;
	if (!strncmp(m, "stat", 4))
		return "stat";
	if (!strncmp(m, "record", 6))
		return "record";
	return NULL;
}

/* Extra repetitions of a short timed section in a profiled round (none otherwise). */
static int prof_reps(int n)
{
	return prof_mode() ? n : 0;
}

/* Starts perf system-wide; it needs a few seconds under TCG before it counts. */
static void prof_start(void)
{
	const char *m = prof_mode();

	if (!m)
		return;
	/* vfork: a fork would write-protect the benchmark's memory for copy-on-write. */
	prof_pid = vfork();
	if (prof_pid == 0) {
		if (!strcmp(m, "stat"))
			execl("/bin/chroot", "chroot", "/host", "perf", "stat", "-a", "-x,", "-o",
			      "/tmp/vir-perf.out", "-e", PERF_EVENTS, (char *)NULL);
		else
			execl("/bin/chroot", "chroot", "/host", "perf", "record", "-q", "-a", "-F",
			      "2000", "-o", "/tmp/vir-perf.data", (char *)NULL);
		_exit(127);
	}
	sleep(5);
}

/* Stops perf and prints what it found for @workload on @backend. */
static void prof_stop(const char *workload, const char *backend)
{
	const char *m = prof_mode();
	char line[512];
	FILE *f;

	if (!m || prof_pid <= 0)
		return;
	usleep(100000);
	kill(prof_pid, SIGINT);
	waitpid(prof_pid, NULL, 0);
	prof_pid = 0;
	if (!strcmp(m, "stat"))
		f = fopen("/host/tmp/vir-perf.out", "r");
	else
		f = popen("chroot /host perf report -i /tmp/vir-perf.data --stdio --sort sym "
			  "--comm vir-bench --percentage relative --percent-limit 0.7 2>&1", "r");
	/* The symbols, and the header's sample count (cpu-clock: 1 ms per 1e6 of the event count). */
	while (f && fgets(line, sizeof(line), f))
		if ((line[0] != '#' || strstr(line, "Samples:") || strstr(line, "Event count")) &&
		    line[0] != '\n')
			printf("PERF %s %s %s", workload, backend, line);
	if (f && strcmp(m, "stat"))
		pclose(f);
	else if (f)
		fclose(f);
	fflush(stdout);
}

#endif /* VIR_BENCH_PROFILE_H */
