/* boot_e820_build: the memory map for several RAM sizes, and bad sizes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "boot/boot.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static int build(struct boot_e820_entry *tab, uint64_t lo, uint64_t hi)
{
	struct boot_ram ram = {.lo_size = lo, .hi_size = hi};

	return boot_e820_build(tab, BOOT_E820_MAX, &ram);
}

static void expect(const struct boot_e820_entry *e, uint64_t addr, uint64_t size, uint32_t type)
{
	assert_int_equal(e->addr, addr);
	assert_int_equal(e->size, size);
	assert_int_equal(e->type, type);
}

/* Entries sorted, non-overlapping, and nothing RAM in [0x9fc00, 1 MiB). */
static void check_sane(const struct boot_e820_entry *tab, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		assert_true(tab[i].size > 0);
		if (i)
			assert_true(tab[i].addr >= tab[i - 1].addr + tab[i - 1].size);
		if (tab[i].type == BOOT_E820_RAM)
			assert_true(tab[i].addr + tab[i].size <= BOOT_ADDR_EBDA ||
				    tab[i].addr >= BOOT_ADDR_HIMEM);
	}
}

static void test_64mib(void **state)
{
	struct boot_e820_entry tab[BOOT_E820_MAX];
	int n = build(tab, 64 * MiB, 0);

	assert_int_equal(n, 3);
	expect(&tab[0], 0, 0x9fc00, BOOT_E820_RAM);
	expect(&tab[1], 0x9fc00, 0x100000 - 0x9fc00, BOOT_E820_RESERVED);
	expect(&tab[2], MiB, 63 * MiB, BOOT_E820_RAM);
	check_sane(tab, n);
}

static void test_1mib_exact(void **state)
{
	struct boot_e820_entry tab[BOOT_E820_MAX];
	int n = build(tab, MiB, 0);

	/* Nothing above 1 MiB: no zero-sized entry. */
	assert_int_equal(n, 2);
	check_sane(tab, n);
}

static void test_3gib_exact(void **state)
{
	struct boot_e820_entry tab[BOOT_E820_MAX];
	int n = build(tab, 3 * GiB, 0);

	assert_int_equal(n, 3);
	expect(&tab[2], MiB, 3 * GiB - MiB, BOOT_E820_RAM);
	check_sane(tab, n);
}

static void test_5gib(void **state)
{
	struct boot_e820_entry tab[BOOT_E820_MAX];
	int n = build(tab, 3 * GiB, 2 * GiB);

	assert_int_equal(n, 4);
	expect(&tab[2], MiB, 3 * GiB - MiB, BOOT_E820_RAM);
	expect(&tab[3], 4 * GiB, 2 * GiB, BOOT_E820_RAM);
	check_sane(tab, n);
}

static void test_4gib_lo(void **state)
{
	struct boot_e820_entry tab[BOOT_E820_MAX];
	int n = build(tab, 4 * GiB, 0);

	assert_int_equal(n, 3);
	expect(&tab[2], MiB, 4 * GiB - MiB, BOOT_E820_RAM);
}

static void test_bad_sizes(void **state)
{
	struct boot_e820_entry tab[BOOT_E820_MAX];
	struct boot_ram ram = {.lo_size = 64 * MiB};

	assert_int_equal(build(tab, MiB - 1, 0), -EINVAL);
	assert_int_equal(build(tab, 0, 0), -EINVAL);
	assert_int_equal(build(tab, 4 * GiB + 4096, 0), -EINVAL);
	assert_int_equal(build(tab, 64 * MiB, UINT64_MAX - GiB), -EINVAL);
	assert_int_equal(boot_e820_build(NULL, 4, &ram), -EINVAL);
	assert_int_equal(boot_e820_build(tab, 4, NULL), -EINVAL);
	/* Table too small: 3 entries needed. */
	assert_int_equal(boot_e820_build(tab, 2, &ram), -E2BIG);
	assert_int_equal(boot_e820_build(tab, 0, &ram), -E2BIG);
	assert_int_equal(boot_e820_build(tab, 3, &ram), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_64mib),      cmocka_unit_test(test_1mib_exact),
	    cmocka_unit_test(test_3gib_exact), cmocka_unit_test(test_5gib),
	    cmocka_unit_test(test_4gib_lo),    cmocka_unit_test(test_bad_sizes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
