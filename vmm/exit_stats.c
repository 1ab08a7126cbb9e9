/* Exit counters for `UVM_LOG=debug`, vm.stats and the boot benchmark. */
#include "exit_stats.h"

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

void exit_stats_reason(struct exit_stats *s, uint32_t reason)
{
	if (reason >= EXIT_STATS_REASONS)
		reason = EXIT_STATS_REASONS - 1;
	__atomic_fetch_add(&s->reasons[reason], 1, __ATOMIC_RELAXED);
}

void exit_stats_pio(struct exit_stats *s, uint16_t port)
{
	__atomic_fetch_add(&s->pio[port], 1, __ATOMIC_RELAXED);
}

void exit_stats_mmio(struct exit_stats *s, uint64_t gpa)
{
	uint64_t key = (gpa >> 12) + 1;
	uint32_t h = (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 56);

	/* Open addressing; a slot once claimed keeps its page. */
	for (uint32_t i = 0; i < 8; i++) {
		uint32_t slot = (h + i) % EXIT_STATS_MMIO_SLOTS;
		uint64_t cur = __atomic_load_n(&s->mmio[slot].page, __ATOMIC_ACQUIRE);

		if (cur == 0) {
			uint64_t zero = 0;

			if (__atomic_compare_exchange_n(&s->mmio[slot].page, &zero, key, false,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				cur = key;
			else
				cur = zero;
		}
		if (cur == key) {
			__atomic_fetch_add(&s->mmio[slot].count, 1, __ATOMIC_RELAXED);
			return;
		}
	}
	__atomic_fetch_add(&s->mmio_other, 1, __ATOMIC_RELAXED);
}

uint64_t exit_stats_total(const struct exit_stats *s)
{
	uint64_t n = 0;

	for (int i = 0; i < EXIT_STATS_REASONS; i++)
		n += __atomic_load_n(&s->reasons[i], __ATOMIC_RELAXED);
	return n;
}

static const char *reason_name(int r)
{
	switch (r) {
	case KVM_EXIT_IO:
		return "io";
	case KVM_EXIT_MMIO:
		return "mmio";
	case KVM_EXIT_HLT:
		return "hlt";
	case KVM_EXIT_INTR:
		return "intr";
	case KVM_EXIT_SHUTDOWN:
		return "shutdown";
	case KVM_EXIT_SYSTEM_EVENT:
		return "system-event";
	default:
		return NULL;
	}
}

/* Appends the top n (index, count) pairs of a counter array to buf. */
static void top_ports(const struct exit_stats *s, char *buf, size_t cap, int n)
{
	uint32_t taken[16] = {0};
	int nt = 0;
	size_t len = strlen(buf);

	for (int k = 0; k < n && k < 16; k++) {
		uint32_t best = 0, best_port = 0;

		for (uint32_t p = 0; p < 65536; p++) {
			uint32_t c = __atomic_load_n(&s->pio[p], __ATOMIC_RELAXED);
			bool seen = false;

			for (int j = 0; j < nt; j++)
				seen |= taken[j] == p;
			if (c > best && !seen) {
				best = c;
				best_port = p;
			}
		}
		if (!best)
			break;
		taken[nt++] = best_port;
		len += snprintf(buf + len, len < cap ? cap - len : 0, " 0x%x:%u", best_port, best);
	}
}

static void top_pages(const struct exit_stats *s, char *buf, size_t cap, int n)
{
	int taken[16];
	int nt = 0;
	size_t len = strlen(buf);

	for (int k = 0; k < n && k < 16; k++) {
		uint64_t best = 0;
		int best_slot = -1;

		for (int i = 0; i < EXIT_STATS_MMIO_SLOTS; i++) {
			uint64_t c = __atomic_load_n(&s->mmio[i].count, __ATOMIC_RELAXED);
			bool seen = false;

			for (int j = 0; j < nt; j++)
				seen |= taken[j] == i;
			if (c > best && !seen) {
				best = c;
				best_slot = i;
			}
		}
		if (best_slot < 0)
			break;
		taken[nt++] = best_slot;
		len += snprintf(buf + len, len < cap ? cap - len : 0, " 0x%llx:%llu",
				(unsigned long long)((s->mmio[best_slot].page - 1) << 12),
				(unsigned long long)best);
	}
}

void exit_stats_log(const struct exit_stats *s, double seconds)
{
	char buf[512] = "";
	size_t len = 0;

	for (int r = 0; r < EXIT_STATS_REASONS; r++) {
		uint64_t c = __atomic_load_n(&s->reasons[r], __ATOMIC_RELAXED);
		const char *name = reason_name(r);

		if (!c)
			continue;
		if (name)
			len += snprintf(buf + len, len < sizeof(buf) ? sizeof(buf) - len : 0,
					" %s:%llu", name, (unsigned long long)c);
		else
			len += snprintf(buf + len, len < sizeof(buf) ? sizeof(buf) - len : 0,
					" reason%d:%llu", r, (unsigned long long)c);
	}
	pr_info("exits", "%llu exits to user space in %.1f s:%s",
		(unsigned long long)exit_stats_total(s), seconds, buf);
	strcpy(buf, "busiest ports:");
	top_ports(s, buf, sizeof(buf), 8);
	pr_info("exits", "%s", buf);
	strcpy(buf, "busiest MMIO pages:");
	top_pages(s, buf, sizeof(buf), 8);
	pr_info("exits", "%s", buf);
}
