/* Overhead figures: the smaps sum with guest RAM left out, this process's own, and the marks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "vmm/log.h"
#include "vmm/overhead.h"

static const char smaps[] =
    "55d940db7000-55d940dc0000 r-xp 00001000 fd:01 1234   /usr/bin/uvm-shim\n"
    "Size:                 36 kB\n"
    "Rss:                  32 kB\n"
    "Private_Clean:         8 kB\n"
    "Private_Dirty:         0 kB\n"
    "Anonymous:             0 kB\n"
    "VmFlags: rd ex mr mw me\n"
    "7f0000000000-7f0008000000 rw-p 00000000 00:00 0\n"
    "Size:             131072 kB\n"
    "Rss:                4096 kB\n"
    "Private_Clean:         0 kB\n"
    "Private_Dirty:      4096 kB\n"
    "Anonymous:          4096 kB\n"
    "AnonHugePages:      4096 kB\n"
    "7f0008000000-7f0008021000 rw-p 00000000 00:00 0 \n"
    "Rss:                 100 kB\n"
    "Private_Clean:         4 kB\n"
    "Private_Dirty:        96 kB\n"
    "Anonymous:            92 kB\n"
    "Private_Hugetlb:     999 kB\n";

static void test_sum_all(void **state)
{
	struct overhead_mem m;

	assert_int_equal(overhead_smaps_sum(smaps, NULL, 0, &m), 0);
	assert_int_equal(m.rss_kib, 32 + 4096 + 100);
	assert_int_equal(m.private_kib, 8 + 4096 + 4 + 96); /* not Private_Hugetlb */
	assert_int_equal(m.private_dirty_kib, 4096 + 96);
	assert_int_equal(m.anon_kib, 4096 + 92); /* not AnonHugePages */
	assert_int_equal(m.excluded_rss_kib, 0);
}

static void test_guest_ram_left_out(void **state)
{
	/* A range overlapping the middle mapping by one byte is enough to leave it out. */
	struct overhead_range ex = {.start = 0x7f0007ffffffULL, .end = 0x7f0008000000ULL};
	struct overhead_mem m;

	assert_int_equal(overhead_smaps_sum(smaps, &ex, 1, &m), 0);
	assert_int_equal(m.rss_kib, 32 + 100);
	assert_int_equal(m.private_kib, 8 + 4 + 96);
	assert_int_equal(m.private_dirty_kib, 96);
	assert_int_equal(m.anon_kib, 92);
	assert_int_equal(m.excluded_rss_kib, 4096);
}

static void test_garbage(void **state)
{
	struct overhead_mem m;

	assert_int_equal(overhead_smaps_sum("", NULL, 0, &m), -EINVAL);
	assert_int_equal(overhead_smaps_sum("Rss: 4 kB\nnot a mapping\n-\n", NULL, 0, &m), -EINVAL);
	/* Truncated text: counts what is there, no read past the end. */
	assert_int_equal(overhead_smaps_sum("1000-2000 rw-p 0 00:00 0\nRss:", NULL, 0, &m), 0);
	assert_int_equal(m.rss_kib, 0);
}

static void test_self(void **state)
{
	size_t len = 8 << 20;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct overhead_range ex = {.start = (uintptr_t)p, .end = (uintptr_t)p + len};
	struct overhead_mem with, without;

	assert_ptr_not_equal(p, MAP_FAILED);
	for (size_t i = 0; i < len; i += 4096)
		p[i] = 1;
	/* Without first: reading smaps grows the sanitizers' own memory (TSan's
	 * shadow of the read buffer, about 1 MiB), which must not eat the margin. */
	assert_int_equal(overhead_self_mem(&ex, 1, &without), 0);
	assert_int_equal(overhead_self_mem(NULL, 0, &with), 0);
	/* The touched 8 MiB count in one and not in the other. */
	assert_true(with.private_dirty_kib >= without.private_dirty_kib + 8000);
	assert_true(without.excluded_rss_kib >= 8192);
	assert_true(with.anon_kib >= without.anon_kib + 8000);
	munmap(p, len);
}

static void test_marks(void **state)
{
	overhead_mark("main");
	overhead_mark("phase");
	assert_true(overhead_first_run());
	assert_false(overhead_first_run()); /* once */
	for (int i = 0; i < 2 * OVERHEAD_MAX_MARKS; i++)
		overhead_mark("past the table: dropped");
	log_threshold = LOG_DEBUG;
	overhead_log_setup(); /* prints, stays inside the table */
	log_threshold = LOG_INFO;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sum_all),  cmocka_unit_test(test_guest_ram_left_out),
	    cmocka_unit_test(test_garbage),  cmocka_unit_test(test_self),
	    cmocka_unit_test(test_marks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
