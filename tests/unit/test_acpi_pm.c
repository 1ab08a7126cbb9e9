/*
 * vmm/acpi_pm.c's registers without a VM: PM1 status write-1-to-clear,
 * enable masking, SCI_EN reading 1, sleep requests (S5 -> power off, other
 * types ignored), byte-wise and odd-sized accesses, the PM timer's rate and
 * wrap, and hostile offsets and lengths.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/acpi_pm.h"

static enum acpi_pm_event wr(struct acpi_pm_regs *r, uint64_t off, uint32_t v, uint32_t len)
{
	uint8_t b[4];

	memcpy(b, &v, sizeof(b));
	return acpi_pm_regs_access(r, off, b, len, true, 0);
}

static uint32_t rd(struct acpi_pm_regs *r, uint64_t off, uint32_t len, uint64_t now)
{
	uint8_t b[4] = {0};
	uint32_t v;

	assert_int_equal(acpi_pm_regs_access(r, off, b, len, false, now), ACPI_PM_EV_NONE);
	memcpy(&v, b, sizeof(v));
	return v;
}

static void test_status_enable_sci(void **state)
{
	struct acpi_pm_regs r = {0};

	(void)state;
	assert_false(acpi_pm_regs_sci(&r));
	r.sts = ACPI_PM1_PWRBTN;
	assert_false(acpi_pm_regs_sci(&r)); /* not enabled */
	assert_int_equal(wr(&r, 2, ACPI_PM1_PWRBTN, 2), ACPI_PM_EV_NONE);
	assert_int_equal(rd(&r, 2, 2, 0), ACPI_PM1_PWRBTN);
	assert_true(acpi_pm_regs_sci(&r));
	/* Writing 0 leaves status alone; writing 1 clears it. */
	wr(&r, 0, 0, 2);
	assert_int_equal(rd(&r, 0, 2, 0), ACPI_PM1_PWRBTN);
	wr(&r, 1, ACPI_PM1_PWRBTN >> 8, 1); /* the high byte alone */
	assert_int_equal(rd(&r, 0, 2, 0), 0);
	assert_false(acpi_pm_regs_sci(&r));
	/* Enable keeps only the bits that exist; a dword write covers status and enable. */
	wr(&r, 0, 0xffff0000u, 4);
	assert_int_equal(rd(&r, 2, 2, 0),
			 ACPI_PM1_TMR | ACPI_PM1_GBL | ACPI_PM1_PWRBTN | ACPI_PM1_RTC);
}

static void test_control_and_sleep(void **state)
{
	struct acpi_pm_regs r = {0};

	(void)state;
	/* SCI_EN reads 1 (always ACPI mode); SLP_EN never reads back. */
	assert_int_equal(rd(&r, 4, 2, 0) & ACPI_PM1_SCI_EN, ACPI_PM1_SCI_EN);
	/* Linux's S5: SLP_TYP first, then SLP_TYP | SLP_EN. */
	assert_int_equal(wr(&r, 4, ACPI_PM_S5_TYPE << 10, 2), ACPI_PM_EV_NONE);
	assert_int_equal(wr(&r, 4, (ACPI_PM_S5_TYPE << 10) | ACPI_PM1_SLP_EN, 2),
			 ACPI_PM_EV_POWEROFF);
	assert_int_equal(rd(&r, 4, 2, 0) & ACPI_PM1_SLP_EN, 0);
	/* Another sleep type: reported as not offered, the VM goes on. */
	assert_int_equal(wr(&r, 4, (1u << 10) | ACPI_PM1_SLP_EN, 2), ACPI_PM_EV_SLEEP_OTHER);
	assert_int_equal((rd(&r, 4, 2, 0) >> 10) & 7, 1);
	/* SLP_EN through the high byte alone, with the type already in place. */
	wr(&r, 4, ACPI_PM_S5_TYPE << 10, 2);
	assert_int_equal(wr(&r, 5, ((ACPI_PM_S5_TYPE << 10) | ACPI_PM1_SLP_EN) >> 8, 1),
			 ACPI_PM_EV_POWEROFF);
	/* A dword write from offset 2 reaches enable and control: still a sleep request. */
	assert_int_equal(wr(&r, 2, ((uint32_t)ACPI_PM1_SLP_EN << 16), 4), ACPI_PM_EV_POWEROFF);
	/* Writes to the status/enable bytes alone never sleep. */
	assert_int_equal(wr(&r, 0, 0xffffffff, 4), ACPI_PM_EV_NONE);
}

static void test_timer(void **state)
{
	struct acpi_pm_regs r = {0};
	uint64_t sec = 1000000000ULL;

	(void)state;
	assert_int_equal(rd(&r, 8, 4, 0), 0);
	assert_int_equal(rd(&r, 8, 4, sec), (uint32_t)ACPI_PM_TIMER_HZ);
	assert_int_equal(rd(&r, 8, 4, 10 * sec), (uint32_t)(10 * ACPI_PM_TIMER_HZ));
	/* 32 bits wide: wraps after 2^32 ticks (about 20 minutes). */
	uint64_t wrap_ns =
	    (uint64_t)((((unsigned __int128)1 << 32) * 1000000000ULL + ACPI_PM_TIMER_HZ - 1) /
		       ACPI_PM_TIMER_HZ);
	assert_true(rd(&r, 8, 4, wrap_ns) < 10);
	/* Byte reads see the same value; writes are ignored. */
	assert_int_equal(rd(&r, 9, 1, sec), ((uint32_t)ACPI_PM_TIMER_HZ >> 8) & 0xff);
	assert_int_equal(wr(&r, 8, 0, 4), ACPI_PM_EV_NONE);
	assert_int_equal(rd(&r, 8, 4, sec), (uint32_t)ACPI_PM_TIMER_HZ);
	/* Far in the future: no overflow in the conversion. */
	(void)rd(&r, 8, 4, UINT64_MAX);
}

static void test_hostile(void **state)
{
	struct acpi_pm_regs r = {0};
	uint8_t big[64];

	(void)state;
	/* Reserved bytes read 0, bytes past the block 0xff; writes there change nothing. */
	assert_int_equal(rd(&r, 6, 2, 0), 0);
	assert_int_equal(rd(&r, 12, 4, 0), 0xffffffffu);
	assert_int_equal(rd(&r, 10, 4, 0) >> 16, 0xffff);
	assert_int_equal(wr(&r, 12, 0xffffffff, 4), ACPI_PM_EV_NONE);
	assert_int_equal(wr(&r, 6, 0xffff, 2), ACPI_PM_EV_NONE);
	assert_int_equal(r.sts | r.en | r.cnt, 0);
	/* Offsets that would wrap, length 0, a length larger than the block. */
	assert_int_equal(wr(&r, UINT64_MAX, 0xffffffff, 4), ACPI_PM_EV_NONE);
	assert_int_equal(acpi_pm_regs_access(&r, 0, big, 0, false, 0), ACPI_PM_EV_NONE);
	memset(big, 0, sizeof(big));
	assert_int_equal(acpi_pm_regs_access(&r, 0, big, sizeof(big), false, 0), ACPI_PM_EV_NONE);
	for (size_t i = ACPI_PM_LEN; i < sizeof(big); i++)
		assert_int_equal(big[i], 0xff);
	memset(big, 0xff, sizeof(big));
	/* 64 bytes of ones from 0: clears status, enables all, and SLP_EN with type 7. */
	assert_int_equal(acpi_pm_regs_access(&r, 0, big, sizeof(big), true, 0),
			 ACPI_PM_EV_SLEEP_OTHER);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_status_enable_sci),
	    cmocka_unit_test(test_control_and_sleep),
	    cmocka_unit_test(test_timer),
	    cmocka_unit_test(test_hostile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
