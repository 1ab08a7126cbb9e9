/*
 * The 9p worker pool (virtio/p9_pool.c): work runs on a worker with its
 * buffers, and a worker idle for p9_pool_idle_release_ms gives the buffers'
 * pages back, so a share that once served a big read does not keep them
 * resident; the next request still gets working buffers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "virtio/p9.h"

struct job {
	struct p9_work work;
	sem_t done;
	uint8_t *in, *out;
	bool had_bufs, zeroed;
};

/* Fills both buffers whole, as a request and an answer of msize each would. */
static void fill_run(struct p9_work *w, struct p9_worker_bufs *b)
{
	struct job *j = (struct job *)w;

	j->had_bufs = b != NULL;
	if (b) {
		j->in = b->in;
		j->out = b->out;
		j->zeroed = b->out[P9_MSIZE_MAX - 1] == 0 && b->in[0] == 0;
		memset(b->in, 0xa5, P9_MSIZE_MAX);
		memset(b->out, 0x5a, P9_MSIZE_MAX);
	}
	sem_post(&j->done);
}

/* Pages of [p, p + len) resident now. */
static size_t resident_pages(const uint8_t *p, size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), n = len / page, count = 0;
	unsigned char vec[2 * P9_MSIZE_MAX / 4096];

	assert_true(n <= sizeof(vec));
	assert_int_equal(mincore((void *)p, len, vec), 0);
	for (size_t i = 0; i < n; i++)
		count += vec[i] & 1;
	return count;
}

static void run_job(struct p9_pool *pool, struct job *j)
{
	memset(j, 0, sizeof(*j));
	j->work.fn = fill_run;
	assert_int_equal(sem_init(&j->done, 0, 0), 0);
	p9_pool_submit(pool, &j->work);
	assert_int_equal(sem_wait(&j->done), 0);
	assert_true(j->had_bufs);
}

static void test_idle_worker_gives_buffers_back(void **state)
{
	struct p9_pool *pool;
	struct job j;
	size_t before;

	(void)state;
	p9_pool_idle_release_ms = 100;
	assert_int_equal(p9_pool_create(1, NULL, NULL, &pool), 0);
	run_job(pool, &j);
	assert_true(j.zeroed);
	before = resident_pages(j.in, 2 * P9_MSIZE_MAX);
	/* Idle well past the release time (a slow machine gets several periods). */
	for (int i = 0; i < 50 && resident_pages(j.in, 2 * P9_MSIZE_MAX); i++)
		usleep(100 * 1000);
	assert_int_equal(resident_pages(j.in, 2 * P9_MSIZE_MAX), 0);
	/* The next request gets the same buffers, zero-filled pages again, and fills them. */
	run_job(pool, &j);
	assert_true(j.zeroed);
	assert_true(resident_pages(j.in, 2 * P9_MSIZE_MAX) > 0);
	p9_pool_destroy(pool);
	p9_pool_idle_release_ms = 1000;
	/* Without the release the 256 filled pages would have stayed. */
	assert_true(before > 0);
}

/* The VmFlags of the mapping holding p in /proc/self/smaps ("" if none). */
static void vm_flags_of(const void *p, char *out, size_t cap)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false;

	out[0] = 0;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' '))
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
		else if (in && !strncmp(line, "VmFlags:", 8))
			snprintf(out, cap, "%s", line + 8);
	}
	fclose(f);
}

/* The buffers are never transparent huge pages (the release would split them). */
static void test_buffers_not_huge(void **state)
{
	struct p9_pool *pool;
	struct job j;
	char flags[512];

	(void)state;
	if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK)) {
		print_message("no transparent huge pages in this kernel: nothing to check\n");
		skip();
	}
	assert_int_equal(p9_pool_create(1, NULL, NULL, &pool), 0);
	run_job(pool, &j);
	vm_flags_of(j.in, flags, sizeof(flags));
	assert_non_null(strstr(flags, " nh"));
	vm_flags_of(j.out + P9_MSIZE_MAX - 1, flags, sizeof(flags));
	assert_non_null(strstr(flags, " nh"));
	p9_pool_destroy(pool);
}

/* A busy worker keeps its pages: the release only follows an idle period. */
static void test_busy_worker_keeps_buffers(void **state)
{
	struct p9_pool *pool;
	struct job j;

	(void)state;
	p9_pool_idle_release_ms = 60 * 1000;
	assert_int_equal(p9_pool_create(1, NULL, NULL, &pool), 0);
	run_job(pool, &j);
	usleep(200 * 1000);
	assert_int_equal(resident_pages(j.in, 2 * P9_MSIZE_MAX), 2 * P9_MSIZE_MAX / 4096);
	p9_pool_destroy(pool);
	p9_pool_idle_release_ms = 1000;
}

struct watch_count {
	int calls;
	int running;	/* a call is in progress */
	int sleep_ms;	/* each call takes this long */
	int overlapped; /* two calls ran at once */
};

static void count_watch(void *opaque)
{
	struct watch_count *c = opaque;

	if (__atomic_fetch_add(&c->running, 1, __ATOMIC_SEQ_CST))
		__atomic_store_n(&c->overlapped, 1, __ATOMIC_SEQ_CST);
	usleep(c->sleep_ms * 1000);
	__atomic_fetch_add(&c->calls, 1, __ATOMIC_SEQ_CST);
	__atomic_fetch_sub(&c->running, 1, __ATOMIC_SEQ_CST);
}

/* The watch runs every period on an idle worker, one call at a time, and stops when removed. */
static void test_watch_runs_until_removed(void **state)
{
	struct watch_count c = {.sleep_ms = 30};
	struct p9_pool *pool;
	int calls;

	(void)state;
	assert_int_equal(p9_pool_create(4, NULL, NULL, &pool), 0);
	p9_pool_set_watch(pool, 20, count_watch, &c);
	for (int i = 0; i < 200 && __atomic_load_n(&c.calls, __ATOMIC_SEQ_CST) < 5; i++)
		usleep(10 * 1000);
	assert_true(__atomic_load_n(&c.calls, __ATOMIC_SEQ_CST) >= 5);
	/* Removed while a call may run: it has finished when set_watch returns. */
	p9_pool_set_watch(pool, 0, NULL, NULL);
	assert_int_equal(__atomic_load_n(&c.running, __ATOMIC_SEQ_CST), 0);
	calls = __atomic_load_n(&c.calls, __ATOMIC_SEQ_CST);
	usleep(150 * 1000);
	assert_int_equal(__atomic_load_n(&c.calls, __ATOMIC_SEQ_CST), calls);
	assert_int_equal(c.overlapped, 0);
	p9_pool_destroy(pool);
}

/* A watch waking the workers every 20 ms neither starves work nor delays the buffer release. */
static void test_watch_keeps_release_and_work(void **state)
{
	struct watch_count c = {.sleep_ms = 0};
	struct p9_pool *pool;
	struct job j;

	(void)state;
	p9_pool_idle_release_ms = 100;
	assert_int_equal(p9_pool_create(1, NULL, NULL, &pool), 0);
	p9_pool_set_watch(pool, 20, count_watch, &c);
	run_job(pool, &j);
	for (int i = 0; i < 50 && resident_pages(j.in, 2 * P9_MSIZE_MAX); i++)
		usleep(100 * 1000);
	assert_int_equal(resident_pages(j.in, 2 * P9_MSIZE_MAX), 0);
	run_job(pool, &j);
	assert_true(__atomic_load_n(&c.calls, __ATOMIC_SEQ_CST) > 0);
	p9_pool_set_watch(pool, 0, NULL, NULL);
	p9_pool_destroy(pool);
	p9_pool_idle_release_ms = 1000;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_idle_worker_gives_buffers_back),
	    cmocka_unit_test(test_buffers_not_huge),
	    cmocka_unit_test(test_busy_worker_keeps_buffers),
	    cmocka_unit_test(test_watch_runs_until_removed),
	    cmocka_unit_test(test_watch_keeps_release_and_work),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
