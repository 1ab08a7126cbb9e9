/* Setup-time marks and the shim's own memory (overhead.h). */
#include "overhead.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define TAG "overhead"
#define OVERHEAD_FIRST_RUN "first KVM_RUN"

struct overhead_markrec {
	const char *phase;
	pid_t tid;
	uint64_t wall_ns, proc_cpu_ns, thread_cpu_ns;
};

static struct overhead_markrec marks[OVERHEAD_MAX_MARKS];
static int nr_marks; /* atomic: slots claimed */
static int nr_done;  /* atomic: slots filled (a reader stops at the first unfilled) */
static int first_run_seen;

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void overhead_mark(const char *phase)
{
	int i = __atomic_fetch_add(&nr_marks, 1, __ATOMIC_RELAXED);

	if (i >= OVERHEAD_MAX_MARKS)
		return;
	marks[i] = (struct overhead_markrec){.phase = phase,
					     .tid = gettid(),
					     .wall_ns = clock_ns(CLOCK_MONOTONIC),
					     .proc_cpu_ns = clock_ns(CLOCK_PROCESS_CPUTIME_ID),
					     .thread_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID)};
	__atomic_fetch_add(&nr_done, 1, __ATOMIC_RELEASE);
}

bool overhead_first_run(void)
{
	if (__atomic_exchange_n(&first_run_seen, 1, __ATOMIC_ACQ_REL))
		return false;
	overhead_mark(OVERHEAD_FIRST_RUN);
	return true;
}

void overhead_log_setup(void)
{
	int n = __atomic_load_n(&nr_done, __ATOMIC_ACQUIRE);
	const struct overhead_markrec *first = &marks[0], *last;

	if (n > OVERHEAD_MAX_MARKS)
		n = OVERHEAD_MAX_MARKS;
	if (n < 1 || log_threshold < LOG_DEBUG)
		return;
	/* CPU before the first mark (main): exec, the dynamic loader, constructors. */
	pr_dbg(TAG, "setup: %.3f ms CPU before main (exec, dynamic loader, constructors)",
	       first->proc_cpu_ns / 1e6);
	for (int i = 1; i < n; i++) {
		const struct overhead_markrec *m = &marks[i];
		uint64_t tcpu_prev = 0;

		/* A phase's CPU is its own thread's since that thread's previous mark. */
		for (int j = i - 1; j >= 0; j--) {
			if (marks[j].tid == m->tid) {
				tcpu_prev = marks[j].thread_cpu_ns;
				break;
			}
		}
		pr_dbg(TAG, "setup: %-34s %8.3f ms wall %8.3f ms CPU (tid %d)", m->phase,
		       (m->wall_ns - marks[i - 1].wall_ns) / 1e6,
		       (m->thread_cpu_ns - tcpu_prev) / 1e6, (int)m->tid);
	}
	/* The total runs to the first KVM_RUN; marks after it (the loop's filter) are off the path. */
	last = &marks[n - 1];
	for (int i = 0; i < n; i++)
		if (!strcmp(marks[i].phase, OVERHEAD_FIRST_RUN))
			last = &marks[i];
	pr_dbg(TAG, "setup: main -> %s: %.3f ms wall; process CPU since exec %.3f ms", last->phase,
	       (last->wall_ns - first->wall_ns) / 1e6, last->proc_cpu_ns / 1e6);
}

/* ---- memory ----------------------------------------------------------------------------- */

/* "start-end perms ..." opens a mapping; returns false for field lines ("Rss:  4 kB"). */
static bool smaps_mapping_line(const char *line, uint64_t *start, uint64_t *end)
{
	char *p;

	*start = strtoull(line, &p, 16);
	if (p == line || *p != '-')
		return false;
	*end = strtoull(p + 1, &p, 16);
	return *p == ' ';
}

static bool smaps_field(const char *line, const char *name, uint64_t *kib)
{
	size_t n = strlen(name);

	if (strncmp(line, name, n) || line[n] != ':')
		return false;
	*kib = strtoull(line + n + 1, NULL, 10);
	return true;
}

int overhead_smaps_sum(const char *text, const struct overhead_range *ex, int nr,
		       struct overhead_mem *out)
{
	bool excluded = false, any = false;

	*out = (struct overhead_mem){0};
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		uint64_t start, end, kib;

		if (smaps_mapping_line(line, &start, &end)) {
			any = true;
			excluded = false;
			for (int i = 0; i < nr; i++)
				if (start < ex[i].end && ex[i].start < end)
					excluded = true;
		} else if (smaps_field(line, "Rss", &kib)) {
			if (excluded)
				out->excluded_rss_kib += kib;
			else
				out->rss_kib += kib;
		} else if (!excluded && smaps_field(line, "Private_Clean", &kib)) {
			out->private_kib += kib;
		} else if (!excluded && smaps_field(line, "Private_Dirty", &kib)) {
			out->private_kib += kib;
			out->private_dirty_kib += kib;
		} else if (!excluded && smaps_field(line, "Anonymous", &kib)) {
			out->anon_kib += kib;
		}
		line = nl ? nl + 1 : NULL;
	}
	return any ? 0 : -EINVAL;
}

int overhead_self_mem(const struct overhead_range *ex, int nr, struct overhead_mem *out)
{
	size_t cap = 256 << 10, len = 0;
	char *buf = malloc(cap);
	FILE *f;
	int ret;

	if (!buf)
		return -ENOMEM;
	f = fopen("/proc/self/smaps", "re");
	if (!f) {
		ret = -errno;
		free(buf);
		return ret;
	}
	for (;;) {
		size_t n = fread(buf + len, 1, cap - len - 1, f);

		len += n;
		if (len < cap - 1)
			break;
		char *bigger = realloc(buf, cap * 2);

		if (!bigger) {
			fclose(f);
			free(buf);
			return -ENOMEM;
		}
		buf = bigger;
		cap *= 2;
	}
	fclose(f);
	buf[len] = '\0';
	ret = overhead_smaps_sum(buf, ex, nr, out);
	free(buf);
	return ret;
}
