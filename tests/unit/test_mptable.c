/*
 * boot_mptable_write: find the floating pointer the way Linux scans for it,
 * check both checksums, walk the entries and check what each says.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "boot/boot.h"
#include "tests/unit/boot_test_image.h"

#define RAM_SIZE (1u << 20)

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s += *p++;
	return s;
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

/* Linux looks in the BIOS area 0xf0000-0xfffff on 16-byte boundaries. */
static const uint8_t *find_fps(const uint8_t *ram)
{
	uint32_t a;

	for (a = 0xf0000; a < 0x100000; a += 16)
		if (memcmp(ram + a, "_MP_", 4) == 0 && ram[a + 8] == 1 && sum(ram + a, 16) == 0)
			return ram + a;
	return NULL;
}

static void check_table(const uint8_t *ram, int nr_cpus, int written)
{
	const uint8_t *fps = find_fps(ram), *hdr, *p, *end;
	int cpus = 0, buses = 0, ioapics = 0, ioints = 0, lints = 0, count = 0, last_type = 0;
	bool isa_irq_seen[16] = {false};

	assert_non_null(fps);
	assert_int_equal(fps[9], 4); /* spec 1.4 */
	assert_int_equal(fps[11], 0);
	assert_true(get32(fps + 4) >= 0xf0000 && get32(fps + 4) < RAM_SIZE);
	hdr = ram + get32(fps + 4);
	assert_memory_equal(hdr, "PCMP", 4);
	assert_int_equal(hdr[6], 4);
	assert_int_equal(sum(hdr, get16(hdr + 4)), 0);
	assert_int_equal(get32(hdr + 36), 0xfee00000);
	assert_int_equal(get16(hdr + 40), 0); /* no extended table */
	assert_int_equal(written, (int)(hdr - fps) + get16(hdr + 4));
	end = hdr + get16(hdr + 4);
	for (p = hdr + 44; p < end; count++) {
		assert_true(p[0] >= last_type); /* sorted by entry type */
		last_type = p[0];
		switch (p[0]) {
		case 0:
			assert_int_equal(p[1], cpus); /* APIC id = index */
			assert_true(p[3] & 1);
			assert_int_equal(!!(p[3] & 2), cpus == 0);
			cpus++;
			p += 20;
			break;
		case 1:
			assert_true(memcmp(p + 2, "ISA   ", 6) == 0 ||
				    memcmp(p + 2, "PCI   ", 6) == 0);
			buses++;
			p += 8;
			break;
		case 2:
			assert_int_equal(p[1], nr_cpus);
			assert_int_equal(p[2], 0x11);
			assert_int_equal(p[3] & 1, 1);
			assert_int_equal(get32(p + 4), 0xfec00000);
			ioapics++;
			p += 8;
			break;
		case 3:
			assert_int_equal(p[1], 0); /* INT */
			assert_int_equal(p[4], 1); /* ISA bus id */
			assert_true(p[5] < 16);
			assert_false(isa_irq_seen[p[5]]);
			isa_irq_seen[p[5]] = true;
			assert_int_equal(p[6], nr_cpus);
			assert_int_equal(p[7], p[5]); /* identity, as KVM routes GSIs */
			ioints++;
			p += 8;
			break;
		case 4:
			assert_int_equal(p[6], 0xff);
			if (p[1] == 3)
				assert_int_equal(p[7], 0); /* ExtINT on LINT0 */
			else
				assert_true(p[1] == 1 && p[7] == 1); /* NMI on LINT1 */
			lints++;
			p += 8;
			break;
		default:
			fail_msg("unknown MP entry type %u", p[0]);
		}
	}
	assert_ptr_equal(p, end);
	assert_int_equal(count, get16(hdr + 34));
	assert_int_equal(cpus, nr_cpus);
	assert_int_equal(buses, 2);
	assert_int_equal(ioapics, 1);
	assert_int_equal(ioints, 16);
	assert_int_equal(lints, 2);
}

static void run_cpus(int nr_cpus)
{
	uint8_t *lo = calloc(1, RAM_SIZE);
	struct boot_plan *plan = malloc(sizeof(*plan));
	struct boot_ram ram = {.lo_size = RAM_SIZE};
	char err[128] = "";
	int rc;

	assert_non_null(lo);
	assert_non_null(plan);
	boot_plan_reset(plan, &ram);
	rc = boot_mptable_write(plan, nr_cpus, err, sizeof(err));
	assert_true(rc > 0 && rc <= BOOT_MPTABLE_MAX_SIZE);
	if (nr_cpus == BOOT_MAX_CPUS)
		assert_int_equal(rc, BOOT_MPTABLE_MAX_SIZE);
	assert_int_equal(bootimg_apply(plan, lo, RAM_SIZE), 0);
	check_table(lo, nr_cpus, rc);
	free(plan);
	free(lo);
}

static void test_1_cpu(void **state)
{
	run_cpus(1);
}

static void test_2_cpus(void **state)
{
	run_cpus(2);
}

static void test_64_cpus(void **state)
{
	run_cpus(64);
}

static void test_max_cpus(void **state)
{
	run_cpus(BOOT_MAX_CPUS);
}

static void test_bad_counts(void **state)
{
	struct boot_plan *plan = malloc(sizeof(*plan));
	struct boot_ram ram = {.lo_size = RAM_SIZE};
	char err[128] = "";

	assert_non_null(plan);
	boot_plan_reset(plan, &ram);
	assert_int_equal(boot_mptable_write(plan, 0, err, sizeof(err)), -EINVAL);
	assert_true(strlen(err) > 0);
	assert_int_equal(boot_mptable_write(plan, -1, err, sizeof(err)), -EINVAL);
	assert_int_equal(boot_mptable_write(plan, BOOT_MAX_CPUS + 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(boot_mptable_write(NULL, 1, NULL, 0), -EINVAL);
	/* RAM that ends inside the table. */
	ram.lo_size = 0xf0000 + 100;
	boot_plan_reset(plan, &ram);
	assert_int_equal(boot_mptable_write(plan, 4, err, sizeof(err)), -E2BIG);
	free(plan);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_1_cpu),      cmocka_unit_test(test_2_cpus),
	    cmocka_unit_test(test_64_cpus),    cmocka_unit_test(test_max_cpus),
	    cmocka_unit_test(test_bad_counts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
