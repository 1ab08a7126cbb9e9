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

#define EXIT_STATS_TOP 8

struct top_entry {
	uint64_t key, count;
};

/* Keeps the EXIT_STATS_TOP largest counts in t, largest first; a tie keeps the earlier key. */
static void top_add(struct top_entry *t, uint64_t key, uint64_t count)
{
	int i = EXIT_STATS_TOP - 1;

	if (count <= t[i].count)
		return;
	for (; i > 0 && t[i - 1].count < count; i--)
		t[i] = t[i - 1];
	t[i] = (struct top_entry){key, count};
}

void exit_stats_log(const struct exit_stats *s, double seconds)
{
	struct top_entry ports[EXIT_STATS_TOP], pages[EXIT_STATS_TOP];
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
	memset(ports, 0, sizeof(ports));
	memset(pages, 0, sizeof(pages));
	for (uint32_t p = 0; p < 65536; p++)
		top_add(ports, p, __atomic_load_n(&s->pio[p], __ATOMIC_RELAXED));
	for (int i = 0; i < EXIT_STATS_MMIO_SLOTS; i++)
		top_add(pages, (s->mmio[i].page - 1) << 12,
			__atomic_load_n(&s->mmio[i].count, __ATOMIC_RELAXED));
	const struct {
		const char *what;
		const struct top_entry *t;
	} lists[] = {{"busiest ports:", ports}, {"busiest MMIO pages:", pages}};

	for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]); l++) {
		len = snprintf(buf, sizeof(buf), "%s", lists[l].what);
		for (int i = 0; i < EXIT_STATS_TOP && lists[l].t[i].count; i++)
			len += snprintf(buf + len, len < sizeof(buf) ? sizeof(buf) - len : 0,
					" 0x%llx:%llu", (unsigned long long)lists[l].t[i].key,
					(unsigned long long)lists[l].t[i].count);
		pr_info("exits", "%s", buf);
	}
}
