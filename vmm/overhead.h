/*
 * What a VM costs its host before the guest runs and while it idles
 * (docs/vmm.md "Overhead"): setup time by phase, from main() to the first
 * KVM_RUN, and the shim's own memory outside guest RAM. Printed with
 * UVM_LOG=debug; tests/bench/overhead.py measures the same from outside.
 */
#ifndef VMM_OVERHEAD_H
#define VMM_OVERHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OVERHEAD_MAX_MARKS 32

/*
 * Ends a setup phase on the calling thread: records the wall clock
 * (CLOCK_MONOTONIC), the process's and the thread's CPU time. phase is a
 * string literal. Cheap (three vDSO or clock_gettime calls); marks past
 * OVERHEAD_MAX_MARKS are dropped. Safe from any thread.
 */
void overhead_mark(const char *phase);
/*
 * vCPU 0 right before its first KVM_RUN: the last mark. Returns true the
 * first time only (the caller then logs the breakdown after that KVM_RUN).
 */
bool overhead_first_run(void);
/* Logs the phases at debug level, one line each, then the totals. */
void overhead_log_setup(void);

struct overhead_range {
	uint64_t start, end; /* [start, end) host virtual addresses */
};

struct overhead_mem {
	uint64_t rss_kib;	    /* resident, outside the excluded ranges */
	uint64_t private_kib;	    /* Private_Clean + Private_Dirty, outside them */
	uint64_t private_dirty_kib; /* Private_Dirty, outside them */
	/*
	 * Anonymous, outside them: memory that is this process's alone (heap,
	 * stacks, copied-on-write pages), not page cache another process could
	 * share. Private_Dirty also counts a file's dirty page cache pages that
	 * only this process maps (a freshly linked binary, before writeback).
	 */
	uint64_t anon_kib;
	uint64_t excluded_rss_kib;  /* resident inside them (guest RAM the guest touched) */
};

/*
 * Sums a /proc/PID/smaps text (NUL-terminated) over its mappings, leaving out
 * every mapping that overlaps one of the nr ranges. Returns 0, or -EINVAL
 * when the text has no mapping line.
 */
int overhead_smaps_sum(const char *text, const struct overhead_range *ex, int nr,
		       struct overhead_mem *out) __attribute__((warn_unused_result));
/* The same for this process, from /proc/self/smaps. */
int overhead_self_mem(const struct overhead_range *ex, int nr, struct overhead_mem *out)
	__attribute__((warn_unused_result));

#endif
