/* vmm/mem: the checked guest-physical accessor and the RAM layout. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "vmm/mem.h"

static void test_wrap_bounds(void **state)
{
	uint8_t *buf = calloc(1, 4096);
	struct guest_mem *m;

	(void)state;
	assert_int_equal(mem_wrap(&m, buf, 4096), 0);
	assert_ptr_equal(gpa_to_hva(m, 0, 4096), buf);
	assert_ptr_equal(gpa_to_hva(m, 4095, 1), buf + 4095);
	assert_null(gpa_to_hva(m, 4095, 2));
	assert_null(gpa_to_hva(m, 4096, 1));
	assert_null(gpa_to_hva(m, 0, 4097));
	/* Wrap-around of gpa + len. */
	assert_null(gpa_to_hva(m, UINT64_MAX, 2));
	assert_null(gpa_to_hva(m, 16, UINT64_MAX));
	assert_non_null(gpa_to_hva(m, 100, 0));
	uint32_t v = 0x11223344, r = 0;
	assert_int_equal(mem_write(m, 8, &v, 4), 0);
	assert_int_equal(mem_read(m, 8, &r, 4), 0);
	assert_int_equal(r, v);
	assert_int_equal(mem_write(m, 4094, &v, 4), -EFAULT);
	mem_destroy(m);
	assert_int_equal(mem_wrap(&m, NULL, 10), -EINVAL);
	assert_null(m);
	mem_destroy(NULL);
	free(buf);
}

static void test_layout_hole(void **state)
{
	struct guest_mem *m;
	uint64_t lo, hi;

	(void)state;
	/* 4 GiB of RAM: 3 GiB below the hole, 1 GiB above 4 GiB (MAP_NORESERVE, not touched). */
	assert_int_equal(mem_create(&m, 4ULL << 30), 0);
	mem_layout(m, &lo, &hi);
	assert_int_equal(lo, MEM_HOLE_START);
	assert_int_equal(hi, (4ULL << 30) - MEM_HOLE_START);
	assert_int_equal(mem_ram_size(m), 4ULL << 30);
	assert_non_null(gpa_to_hva(m, 0, 8));
	assert_non_null(gpa_to_hva(m, MEM_HOLE_START - 8, 8));
	assert_null(gpa_to_hva(m, MEM_HOLE_START, 1));
	assert_null(gpa_to_hva(m, MEM_HOLE_START - 1, 2)); /* crosses into the hole */
	assert_non_null(gpa_to_hva(m, MEM_4G, 8));
	assert_int_equal(mem_top(m), MEM_4G + (1ULL << 30));
	mem_destroy(m);

	assert_int_equal(mem_create(&m, 128ULL << 20), 0);
	mem_layout(m, &lo, &hi);
	assert_int_equal(lo, 128ULL << 20);
	assert_int_equal(hi, 0);
	assert_null(gpa_to_hva(m, 128ULL << 20, 1));
	assert_int_equal(mem_top(m), MEM_4G);
	mem_destroy(m);
	assert_int_equal(mem_create(&m, 0), -EINVAL);
	assert_int_equal(mem_create(&m, 4097), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wrap_bounds),
		cmocka_unit_test(test_layout_hole),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
