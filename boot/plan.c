/*
 * The boot plan: the loaders build guest low memory in the plan's own buffer
 * and list the ranges to copy from the kernel and initrd; the caller applies
 * it through vmm/'s checked writes, the one door to guest memory.
 */
#include <errno.h>

#include "boot/boot_priv.h"

/*
 * A low page is zeroed when boot_low first hands it out, not here: clearing
 * the whole 1 MiB faulted in 256 pages for the few a loader uses (1-2.5 ms
 * of CPU per VM; docs/vmm.md "Overhead").
 */
void boot_plan_reset(struct boot_plan *plan, const struct boot_ram *ram)
{
	memset(plan->low_used, 0, sizeof(plan->low_used));
	plan->nr_segs = 0;
	memset(&plan->regs, 0, sizeof(plan->regs));
	plan->ram = *ram;
}

uint8_t *boot_low(struct boot_plan *plan, uint64_t gpa, uint64_t len)
{
	uint64_t end;

	if (!len || __builtin_add_overflow(gpa, len, &end) || end > BOOT_LOW_SIZE)
		return NULL;
	for (uint64_t pg = gpa / BOOT_PAGE_SIZE; pg <= (end - 1) / BOOT_PAGE_SIZE; pg++) {
		if (!plan->low_used[pg])
			memset(plan->low + pg * BOOT_PAGE_SIZE, 0, BOOT_PAGE_SIZE);
		plan->low_used[pg] = 1;
	}
	return plan->low + gpa;
}

int boot_add_seg(struct boot_plan *plan, uint64_t gpa, const uint8_t *src, uint64_t len,
		 uint64_t zero)
{
	uint64_t end;

	if (__builtin_add_overflow(gpa, len, &end) || __builtin_add_overflow(end, zero, &end) ||
	    end > plan->ram.lo_size || plan->nr_segs >= BOOT_MAX_SEGS || (len && !src))
		return -E2BIG;
	plan->segs[plan->nr_segs++] =
	    (struct boot_seg){.gpa = gpa, .src = src, .len = len, .zero = zero};
	return 0;
}

static int plan_write_zeros(boot_write_fn write, void *opaque, uint64_t gpa, uint64_t len)
{
	static const uint8_t zeros[BOOT_PAGE_SIZE];
	int rc;

	while (len) {
		uint64_t n = len < sizeof(zeros) ? len : sizeof(zeros);

		rc = write(opaque, gpa, zeros, n);
		if (rc)
			return rc;
		gpa += n;
		len -= n;
	}
	return 0;
}

int boot_plan_apply(const struct boot_plan *plan, boot_write_fn write, void *opaque)
{
	const size_t pages = sizeof(plan->low_used);
	int rc;

	for (size_t i = 0; i < pages;) {
		size_t j = i;

		if (!plan->low_used[i]) {
			i++;
			continue;
		}
		while (j < pages && plan->low_used[j])
			j++;
		rc = write(opaque, i * BOOT_PAGE_SIZE, plan->low + i * BOOT_PAGE_SIZE,
			   (j - i) * BOOT_PAGE_SIZE);
		if (rc)
			return rc;
		i = j;
	}
	for (int i = 0; i < plan->nr_segs; i++) {
		const struct boot_seg *s = &plan->segs[i];

		rc = s->len ? write(opaque, s->gpa, s->src, s->len) : 0;
		if (!rc)
			rc = plan_write_zeros(write, opaque, s->gpa + s->len, s->zero);
		if (rc)
			return rc;
	}
	return 0;
}
