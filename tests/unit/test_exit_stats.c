/* Exit counters: reasons, ports, MMIO pages, and the page table filling up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <linux/kvm.h>

#include "vmm/exit_stats.h"

static uint64_t page_count(const struct exit_stats *s, uint64_t gpa)
{
	for (int i = 0; i < EXIT_STATS_MMIO_SLOTS; i++)
		if (s->mmio[i].page == (gpa >> 12) + 1)
			return s->mmio[i].count;
	return 0;
}

static void test_counts(void **state)
{
	struct exit_stats *s = calloc(1, sizeof(*s));

	exit_stats_reason(s, KVM_EXIT_IO);
	exit_stats_reason(s, KVM_EXIT_IO);
	exit_stats_reason(s, KVM_EXIT_MMIO);
	exit_stats_reason(s, 1000); /* out of range: counted in the last slot */
	assert_int_equal(s->reasons[KVM_EXIT_IO], 2);
	assert_int_equal(s->reasons[EXIT_STATS_REASONS - 1], 1);
	assert_int_equal(exit_stats_total(s), 4);

	exit_stats_pio(s, 0x3f8);
	exit_stats_pio(s, 0xffff);
	assert_int_equal(s->pio[0x3f8], 1);
	assert_int_equal(s->pio[0xffff], 1);

	/* Addresses in one page share a counter; page 0 is a real page, not "free". */
	exit_stats_mmio(s, 0xfebf0000);
	exit_stats_mmio(s, 0xfebf0ffc);
	exit_stats_mmio(s, 0);
	assert_int_equal(page_count(s, 0xfebf0000), 2);
	assert_int_equal(page_count(s, 0), 1);
	assert_int_equal(s->mmio_other, 0);
	exit_stats_log(s, 1.0);
	free(s);
}

static void test_mmio_table_full(void **state)
{
	struct exit_stats *s = calloc(1, sizeof(*s));
	uint64_t placed = 0;

	/* More pages than slots: every exit is counted somewhere, none twice. */
	for (uint64_t p = 0; p < 4 * EXIT_STATS_MMIO_SLOTS; p++)
		exit_stats_mmio(s, p << 12);
	for (int i = 0; i < EXIT_STATS_MMIO_SLOTS; i++)
		placed += s->mmio[i].count;
	assert_int_equal(placed + s->mmio_other, 4 * EXIT_STATS_MMIO_SLOTS);
	assert_true(s->mmio_other >= 3 * EXIT_STATS_MMIO_SLOTS);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_counts),
	    cmocka_unit_test(test_mmio_table_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
