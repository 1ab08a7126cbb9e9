/* vmm/loop.c: deferred calls (order, from other threads, from inside a callback), run_once. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/loop.h"

struct rec {
	struct loop *loop;
	int order[16];
	int n;
	bool in_cb; /* set while a fd callback runs: deferred work must not run inside it */
	bool ran_inside;
};

static void note(void *opaque, uint32_t ev, int tag)
{
	struct rec *r = opaque;

	if (r->in_cb)
		r->ran_inside = true;
	if (r->n < 16)
		r->order[r->n++] = tag;
}

static void d1(void *o, uint32_t ev)
{
	note(o, ev, 1);
}

static void d2(void *o, uint32_t ev)
{
	note(o, ev, 2);
}

static void d3_nested(void *o, uint32_t ev)
{
	struct rec *r = o;

	note(o, ev, 3);
	assert_int_equal(loop_defer(r->loop, d1, r), 0); /* runs on a later wakeup */
}

static void test_defer_order(void **state)
{
	struct rec r = {0};

	assert_int_equal(loop_create(&r.loop), 0);
	assert_int_equal(loop_defer(r.loop, d1, &r), 0);
	assert_int_equal(loop_defer(r.loop, d2, &r), 0);
	assert_int_equal(r.n, 0); /* nothing runs at the call */
	assert_true(loop_run_once(r.loop, 1000) > 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.order[0], 1);
	assert_int_equal(r.order[1], 2);
	assert_int_equal(loop_defer(r.loop, d3_nested, &r), 0);
	assert_true(loop_run_once(r.loop, 1000) > 0);
	assert_int_equal(r.n, 3);
	assert_true(loop_run_once(r.loop, 1000) > 0);
	assert_int_equal(r.n, 4);
	assert_int_equal(r.order[3], 1);
	assert_int_equal(loop_run_once(r.loop, 0), 0); /* nothing left */
	loop_destroy(r.loop);
}

/* The point of it: work deferred from a callback runs after that callback returned. */
static void fd_cb(void *o, uint32_t ev)
{
	struct rec *r = o;

	r->in_cb = true;
	assert_int_equal(loop_defer(r->loop, d2, r), 0);
	r->in_cb = false;
}

static void test_defer_from_callback(void **state)
{
	struct rec r = {0};
	int efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);

	assert_int_equal(loop_create(&r.loop), 0);
	assert_int_equal(loop_add(r.loop, efd, EPOLLIN, fd_cb, &r), 0);
	assert_true(loop_run_once(r.loop, 1000) > 0);
	assert_int_equal(loop_del(r.loop, efd), 0);
	for (int i = 0; i < 3 && r.n == 0; i++)
		assert_true(loop_run_once(r.loop, 1000) >= 0);
	assert_int_equal(r.n, 1);
	assert_false(r.ran_inside);
	close(efd);
	loop_destroy(r.loop);
}

static void *other_thread(void *o)
{
	struct rec *r = o;

	for (int i = 0; i < 8; i++)
		if (loop_defer(r->loop, d1, r))
			return (void *)1;
	return NULL;
}

static void test_defer_from_other_thread_and_drop(void **state)
{
	struct rec r = {0};
	pthread_t t;
	void *ret;

	assert_int_equal(loop_create(&r.loop), 0);
	assert_int_equal(pthread_create(&t, NULL, other_thread, &r), 0);
	assert_int_equal(pthread_join(t, &ret), 0);
	assert_null(ret);
	while (r.n < 8)
		assert_true(loop_run_once(r.loop, 1000) > 0);
	assert_int_equal(r.n, 8);
	/* Queued and never run: dropped (and freed: ASan) with the loop. */
	assert_int_equal(loop_defer(r.loop, d1, &r), 0);
	loop_destroy(r.loop);
	assert_int_equal(r.n, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defer_order),
	    cmocka_unit_test(test_defer_from_callback),
	    cmocka_unit_test(test_defer_from_other_thread_and_drop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
