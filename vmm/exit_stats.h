/* Counts of the vCPU exits that reach user space: by KVM exit reason, by I/O port and by
 * MMIO page. Each one is a round trip through the kernel and back (and, nested, through
 * the outer hypervisor), so their number is what to read first when a guest is slow. */
#ifndef VMM_EXIT_STATS_H
#define VMM_EXIT_STATS_H

#include <stdint.h>

#define EXIT_STATS_REASONS    64
#define EXIT_STATS_MMIO_SLOTS 256

struct exit_stats {
	uint64_t reasons[EXIT_STATS_REASONS]; /* by KVM_EXIT_*; larger reasons in the last slot */
	uint32_t pio[65536];		      /* by port */
	struct {
		uint64_t page; /* guest physical address >> 12, plus one (0: free slot) */
		uint64_t count;
	} mmio[EXIT_STATS_MMIO_SLOTS];
	uint64_t mmio_other; /* pages that found no free slot */
};

/* Any vCPU thread; lock-free (relaxed atomics). */
void exit_stats_reason(struct exit_stats *s, uint32_t reason);
void exit_stats_pio(struct exit_stats *s, uint16_t port);
void exit_stats_mmio(struct exit_stats *s, uint64_t gpa);

uint64_t exit_stats_total(const struct exit_stats *s);
/* Logs the totals and the busiest ports and pages (at info level). */
void exit_stats_log(const struct exit_stats *s, double seconds);

#endif
