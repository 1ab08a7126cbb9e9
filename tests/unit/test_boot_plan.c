/*
 * boot/plan.c: low pages written in runs, segments with their zero tails,
 * the write callback's error stopping the application, the bounds of
 * boot_low and boot_add_seg, and a plan applied to RAM too small for it
 * failing with vmm/'s -EFAULT instead of writing past the end.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "boot/boot_priv.h"
#include "tests/unit/boot_test_image.h"

#define RAM_SIZE (4u << 20)

struct call {
	uint64_t gpa, len;
};

struct rec {
	struct call calls[64];
	int n, fail_at;
};

static int record(void *opaque, uint64_t gpa, const void *src, uint64_t len)
{
	struct rec *r = opaque;

	(void)src;
	if (r->n == r->fail_at)
		return -EIO;
	if (r->n < 64)
		r->calls[r->n] = (struct call){gpa, len};
	r->n++;
	return 0;
}

static struct boot_plan *new_plan(uint64_t lo)
{
	struct boot_plan *p = malloc(sizeof(*p));

	assert_non_null(p);
	boot_plan_reset(p, &(struct boot_ram){.lo_size = lo});
	return p;
}

static void test_runs_and_segments(void **state)
{
	struct boot_plan *p = new_plan(RAM_SIZE);
	static const uint8_t k[100] = {1, 2, 3};
	struct rec r = {.fail_at = -1};

	(void)state;
	/* Pages 1-2 (one run, a write straddling them) and page 5. */
	assert_non_null(boot_low(p, 0x1ff0, 0x20));
	assert_non_null(boot_low(p, 0x5000, 1));
	assert_int_equal(boot_add_seg(p, 0x200000, k, sizeof(k), 10000), 0);
	assert_int_equal(boot_plan_apply(p, record, &r), 0);
	/* runs, then the copy, then the zeros in page-sized pieces. */
	assert_int_equal(r.n, 2 + 1 + 3);
	assert_int_equal(r.calls[0].gpa, 0x1000);
	assert_int_equal(r.calls[0].len, 0x2000);
	assert_int_equal(r.calls[1].gpa, 0x5000);
	assert_int_equal(r.calls[1].len, 0x1000);
	assert_int_equal(r.calls[2].gpa, 0x200000);
	assert_int_equal(r.calls[2].len, 100);
	assert_int_equal(r.calls[3].gpa, 0x200000 + 100);
	assert_int_equal(r.calls[3].len + r.calls[4].len + r.calls[5].len, 10000);

	/* The first error stops the application and is returned. */
	r = (struct rec){.fail_at = 2};
	assert_int_equal(boot_plan_apply(p, record, &r), -EIO);
	assert_int_equal(r.n, 2);
	free(p);
}

static void test_bounds(void **state)
{
	struct boot_plan *p = new_plan(2u << 20);
	static const uint8_t k[16];

	(void)state;
	assert_null(boot_low(p, 0, 0));
	assert_null(boot_low(p, BOOT_LOW_SIZE - 1, 2));
	assert_null(boot_low(p, UINT64_MAX, 2));
	assert_non_null(boot_low(p, BOOT_LOW_SIZE - 1, 1));
	assert_int_equal(boot_add_seg(p, (2u << 20) - 8, k, 16, 0), -E2BIG);
	assert_int_equal(boot_add_seg(p, (2u << 20) - 16, k, 8, 9), -E2BIG);
	assert_int_equal(boot_add_seg(p, UINT64_MAX - 4, k, 16, 0), -E2BIG);
	assert_int_equal(boot_add_seg(p, 0x100000, k, 8, UINT64_MAX), -E2BIG);
	assert_int_equal(boot_add_seg(p, 0x100000, NULL, 8, 0), -E2BIG);
	for (int i = 0; i < BOOT_MAX_SEGS; i++)
		assert_int_equal(boot_add_seg(p, 0x100000, k, 16, 0), 0);
	assert_int_equal(boot_add_seg(p, 0x100000, k, 16, 0), -E2BIG);
	free(p);
}

static void test_too_small_ram_is_refused_by_vmm(void **state)
{
	struct boot_plan *p = new_plan(RAM_SIZE);
	static const uint8_t k[4096];
	uint8_t *ram = calloc(1, RAM_SIZE);

	(void)state;
	assert_non_null(ram);
	assert_int_equal(boot_add_seg(p, RAM_SIZE - 4096, k, sizeof(k), 0), 0);
	assert_int_equal(bootimg_apply(p, ram, RAM_SIZE), 0);
	/* The same plan on a guest with less RAM than it was made for. */
	assert_int_equal(bootimg_apply(p, ram, RAM_SIZE / 2), -EFAULT);
	free(ram);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_runs_and_segments),
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_too_small_ram_is_refused_by_vmm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
