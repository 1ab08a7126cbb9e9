/* vmm/mem_slots: range placement and release, file mappings without KVM. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/mem_slots.h"

#define SEC  MEM_SLOT_SECTION
#define BASE (68ULL << 30)

static void test_alloc_init(void **state)
{
	struct gpa_alloc a;

	(void)state;
	assert_int_equal(gpa_alloc_init(&a, 1, 3 * SEC, SEC), 0);
	assert_int_equal(a.base, SEC); /* rounded up */
	assert_int_equal(gpa_alloc_init(&a, 0, SEC + 5, SEC), 0);
	assert_int_equal(a.end, SEC);				    /* rounded down */
	assert_int_equal(gpa_alloc_init(&a, 5, SEC, SEC), -EINVAL); /* nothing left */
	assert_int_equal(gpa_alloc_init(&a, 0, SEC, 3), -EINVAL);   /* not a power of 2 */
	assert_int_equal(gpa_alloc_init(&a, UINT64_MAX - 5, UINT64_MAX, SEC), -EINVAL);
}

static void test_alloc_first_fit_and_holes(void **state)
{
	struct gpa_alloc a;
	uint64_t x, y, z, w, v;

	(void)state;
	assert_int_equal(gpa_alloc_init(&a, BASE, BASE + 8 * SEC, SEC), 0);
	assert_int_equal(gpa_alloc_take(&a, 1, &x), 0); /* rounded to a section */
	assert_int_equal(x, BASE);
	assert_int_equal(gpa_alloc_take(&a, 2 * SEC, &y), 0);
	assert_int_equal(y, BASE + SEC);
	assert_int_equal(gpa_alloc_take(&a, SEC + 1, &z), 0); /* two sections */
	assert_int_equal(z, BASE + 3 * SEC);
	/* Free the middle: a 3-section request does not fit there, goes at the end. */
	assert_int_equal(gpa_alloc_give(&a, y), 0);
	assert_int_equal(gpa_alloc_take(&a, 3 * SEC, &w), 0);
	assert_int_equal(w, BASE + 5 * SEC);
	/* Full now but for the 2-section hole. */
	assert_int_equal(gpa_alloc_take(&a, 3 * SEC, &v), -ENOSPC);
	assert_int_equal(gpa_alloc_take(&a, SEC, &v), 0);
	assert_int_equal(v, BASE + SEC); /* lowest hole first */
	assert_int_equal(gpa_alloc_take(&a, SEC, &v), 0);
	assert_int_equal(v, BASE + 2 * SEC);
	assert_int_equal(gpa_alloc_take(&a, SEC, &v), -ENOSPC);
	/* Bad frees and sizes. */
	assert_int_equal(gpa_alloc_give(&a, BASE + 12345), -ENOENT);
	assert_int_equal(gpa_alloc_take(&a, 0, &v), -EINVAL);
	assert_int_equal(gpa_alloc_take(&a, UINT64_MAX, &v), -EINVAL);
	/* Free everything: the whole window is one range again. */
	assert_int_equal(gpa_alloc_give(&a, x), 0);
	assert_int_equal(gpa_alloc_give(&a, BASE + SEC), 0);
	assert_int_equal(gpa_alloc_give(&a, BASE + 2 * SEC), 0);
	assert_int_equal(gpa_alloc_give(&a, z), 0);
	assert_int_equal(gpa_alloc_give(&a, w), 0);
	assert_int_equal(a.nr, 0);
	assert_int_equal(gpa_alloc_take(&a, 8 * SEC, &v), 0);
	assert_int_equal(v, BASE);
}

/* 128 devices of 4 GiB each fit a 512 GiB window; the 129th does not, any free one reopens. */
static void test_alloc_128_devices(void **state)
{
	struct gpa_alloc a;
	uint64_t starts[129];

	(void)state;
	assert_int_equal(gpa_alloc_init(&a, BASE, BASE + 128 * (4ULL << 30), SEC), 0);
	for (int i = 0; i < 128; i++) {
		assert_int_equal(gpa_alloc_take(&a, 4ULL << 30, &starts[i]), 0);
		assert_int_equal(starts[i] % SEC, 0);
		if (i)
			assert_true(starts[i] >= starts[i - 1] + (4ULL << 30));
	}
	assert_int_equal(gpa_alloc_take(&a, 4096, &starts[128]), -ENOSPC);
	assert_int_equal(gpa_alloc_give(&a, starts[77]), 0);
	assert_int_equal(gpa_alloc_take(&a, 4ULL << 30, &starts[128]), 0);
	assert_int_equal(starts[128], starts[77]);
	/* Small ranges: the table itself has a limit (MEM_SLOTS_MAX). */
	assert_int_equal(gpa_alloc_init(&a, BASE, BASE + 1024 * SEC, SEC), 0);
	for (int i = 0; i < MEM_SLOTS_MAX; i++)
		assert_int_equal(gpa_alloc_take(&a, 1, &starts[0]), 0);
	assert_int_equal(gpa_alloc_take(&a, 1, &starts[0]), -ENOSPC);
}

static int tmpfile_of(size_t size, uint8_t fill)
{
	char path[] = "/tmp/test_mem_slots.XXXXXX";
	int fd = mkstemp(path);
	uint8_t *buf = malloc(size);

	assert_true(fd >= 0);
	unlink(path);
	memset(buf, fill, size);
	assert_int_equal(write(fd, buf, size), (ssize_t)size);
	free(buf);
	return fd;
}

static void test_slot_map(void **state)
{
	struct mem_slots *ms;
	struct mem_slot *a, *b;
	uint64_t res, mapped;
	int fd = tmpfile_of(3 * 4096, 0xab);

	(void)state;
	assert_int_equal(mem_slots_create(&ms, -1, BASE, BASE + 4 * SEC, false), 0);
	assert_int_equal(mem_slot_add(ms, fd, 3 * 4096 + 1, true, &a), -EINVAL);
	assert_int_equal(mem_slot_add(ms, fd, 0, true, &a), -EINVAL);
	assert_null(a);
	assert_int_equal(mem_slot_add(ms, fd, 3 * 4096, true, &a), 0);
	assert_int_equal(a->gpa, BASE);
	assert_int_equal(a->size, MEM_SLOT_SUBSECT);
	assert_int_equal(a->range, SEC);
	assert_int_equal(a->hva[0], 0xab);
	assert_int_equal(a->hva[3 * 4096 - 1], 0xab);
	assert_int_equal(a->hva[3 * 4096], 0); /* the zero tail */
	assert_int_equal(a->hva[MEM_SLOT_SUBSECT - 1], 0);
	assert_int_equal(mem_slot_add(ms, fd, 3 * 4096, false, &b), 0);
	assert_int_equal(b->gpa, BASE + SEC);
	assert_int_not_equal(a->id, b->id);
	/* Writable: a store reaches the file. */
	b->hva[5] = 0x5a;
	assert_int_equal(msync(b->hva, 4096, MS_SYNC), 0);
	uint8_t got = 0;
	assert_int_equal(pread(fd, &got, 1, 5), 1);
	assert_int_equal(got, 0x5a);
	assert_int_equal(mem_slots_count(ms), 2);
	mem_slots_usage(ms, &res, &mapped);
	assert_int_equal(res, 2 * SEC);
	assert_int_equal(mapped, 2 * MEM_SLOT_SUBSECT);
	mem_slot_remove(a);
	assert_int_equal(mem_slots_count(ms), 1);
	/* The freed range is reused. */
	assert_int_equal(mem_slot_add(ms, fd, 4096, true, &a), 0);
	assert_int_equal(a->gpa, BASE);
	mem_slot_remove(a);
	mem_slot_remove(b);
	mem_slot_remove(NULL);
	assert_int_equal(mem_slots_count(ms), 0);
	assert_int_equal(ms->alloc.nr, 0);
	mem_slots_destroy(ms);
	close(fd);
}

static void test_slot_readonly_unsupported(void **state)
{
	struct mem_slots *ms;
	struct mem_slot *a;
	int fd = tmpfile_of(4096, 1);

	(void)state;
	/* A KVM without KVM_CAP_READONLY_MEM (fd 0 stands for a VM that is never called). */
	assert_int_equal(mem_slots_create(&ms, 0, BASE, BASE + SEC, false), 0);
	assert_int_equal(mem_slot_add(ms, fd, 4096, true, &a), -EOPNOTSUPP);
	assert_int_equal(mem_slots_count(ms), 0);
	mem_slots_destroy(ms);
	close(fd);
}

static void test_slot_bad_fd_leaks_nothing(void **state)
{
	struct mem_slots *ms;
	struct mem_slot *a;

	(void)state;
	assert_int_equal(mem_slots_create(&ms, -1, BASE, BASE + SEC, false), 0);
	assert_int_equal(mem_slot_add(ms, 12345, 4096, false, &a), -EBADF);
	assert_int_equal(ms->alloc.nr, 0);
	assert_int_equal(mem_slots_count(ms), 0);
	mem_slots_destroy(ms);
	mem_slots_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_alloc_init),
	    cmocka_unit_test(test_alloc_first_fit_and_holes),
	    cmocka_unit_test(test_alloc_128_devices),
	    cmocka_unit_test(test_slot_map),
	    cmocka_unit_test(test_slot_readonly_unsupported),
	    cmocka_unit_test(test_slot_bad_fd_leaks_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
