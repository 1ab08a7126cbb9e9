/*
 * vmm/loop.c: deferred calls (order, from other threads, from inside a
 * callback), run_once; the table changed from other threads while loop_run
 * runs (a del waits for a running callback; add/del racing a stop).
 * vmm/io_thread.c: the threads, their names, the least busy pick, a failing init.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/io_thread.h"
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

/* ---- the table from other threads -------------------------------------------------------- */

struct slow {
	int efd;
	int in_cb; /* atomics: the loop thread writes, the test reads */
	int calls;
	pthread_t ran_on;
	char thread_name[16];
};

static void slow_cb(void *o, uint32_t ev)
{
	struct slow *sl = o;
	uint64_t v;

	sl->ran_on = pthread_self();
	pthread_getname_np(pthread_self(), sl->thread_name, sizeof(sl->thread_name));
	__atomic_store_n(&sl->in_cb, 1, __ATOMIC_SEQ_CST);
	nanosleep(&(struct timespec){0, 100 * 1000000}, NULL);
	if (read(sl->efd, &v, sizeof(v)) < 0) {
		/* already drained */
	}
	__atomic_add_fetch(&sl->calls, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&sl->in_cb, 0, __ATOMIC_SEQ_CST);
}

static void *run_thread(void *o)
{
	return (void *)(intptr_t)loop_run(o);
}

static void poke(int efd)
{
	uint64_t one = 1;

	assert_int_equal(write(efd, &one, sizeof(one)), sizeof(one));
}

static void wait_for(int *flag, int want)
{
	for (int i = 0; i < 5000 && __atomic_load_n(flag, __ATOMIC_SEQ_CST) != want; i++)
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	assert_int_equal(__atomic_load_n(flag, __ATOMIC_SEQ_CST), want);
}

/*
 * A disk removed by the control thread while its I/O thread is inside the
 * disk's callback: loop_del returns only after that callback did, and no
 * callback runs after it (the device is freed next).
 */
static void test_del_from_other_thread_waits_for_callback(void **state)
{
	struct loop *loop;
	struct slow sl = {.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
	pthread_t t;
	void *ret;

	assert_int_equal(loop_create(&loop), 0);
	loop_set_threaded(loop);
	assert_int_equal(pthread_create(&t, NULL, run_thread, loop), 0);
	/* Added from this thread while the loop runs: the callback runs there. */
	assert_int_equal(loop_add(loop, sl.efd, EPOLLIN, slow_cb, &sl), 0);
	poke(sl.efd);
	wait_for(&sl.in_cb, 1);
	assert_true(pthread_equal(sl.ran_on, t));
	assert_int_equal(loop_del(loop, sl.efd), 0);
	assert_int_equal(__atomic_load_n(&sl.in_cb, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(sl.calls, 1);
	poke(sl.efd);
	nanosleep(&(struct timespec){0, 50 * 1000000}, NULL);
	assert_int_equal(__atomic_load_n(&sl.calls, __ATOMIC_SEQ_CST), 1);
	assert_int_equal(loop_del(loop, sl.efd), -ENOENT);
	loop_stop(loop);
	assert_int_equal(pthread_join(t, &ret), 0);
	assert_null(ret);
	loop_destroy(loop);
	close(sl.efd);
}

/* Table calls racing the loop's end never hang: they run there or, once it left, here. */
static void test_table_calls_racing_a_stop(void **state)
{
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct slow sl = {.efd = efd};

	for (int i = 0; i < 300; i++) {
		struct loop *loop;
		pthread_t t;

		assert_int_equal(loop_create(&loop), 0);
		loop_set_threaded(loop);
		assert_int_equal(pthread_create(&t, NULL, run_thread, loop), 0);
		if (i & 1)
			sched_yield();
		loop_stop(loop);
		assert_int_equal(loop_add(loop, efd, EPOLLIN, slow_cb, &sl), 0);
		assert_int_equal(loop_mod(loop, efd, EPOLLIN), 0);
		assert_int_equal(loop_del(loop, efd), 0);
		assert_int_equal(pthread_join(t, NULL), 0);
		loop_destroy(loop);
	}
	assert_int_equal(sl.calls, 0);
	close(efd);
}

static int init_calls;

static int init_ok(void *opaque)
{
	__atomic_add_fetch(&init_calls, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static int init_fails(void *opaque)
{
	return -EPERM;
}

static void test_io_threads(void **state)
{
	struct io_threads *io;
	struct loop *a, *b;
	struct slow sl = {.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
	int busy[3];

	for (int i = 0; i < 3; i++)
		busy[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_int_equal(io_threads_create(0, &io), -EINVAL);
	assert_int_equal(io_threads_create(IO_THREADS_MAX + 1, &io), -EINVAL);
	assert_int_equal(io_threads_create(2, &io), 0);
	assert_int_equal(io_threads_count(io), 2);
	/* Idle loops: the first. A device (its fds) on it: the next pick is the other. */
	a = io_threads_pick(io);
	assert_ptr_equal(io_threads_pick(io), a);
	assert_int_equal(loop_add(a, busy[0], EPOLLIN, slow_cb, &sl), 0);
	assert_int_equal(loop_nr_fds(a), 1);
	b = io_threads_pick(io);
	assert_ptr_not_equal(a, b);
	/* Added before the threads run: served once they do, on "io1". */
	assert_int_equal(loop_add(b, sl.efd, EPOLLIN, slow_cb, &sl), 0);
	/* Both busy alike: the first again; a's device gone: a, however busy b is. */
	assert_ptr_equal(io_threads_pick(io), a);
	assert_int_equal(loop_add(b, busy[1], EPOLLIN, slow_cb, &sl), 0);
	assert_ptr_equal(io_threads_pick(io), a);
	assert_int_equal(loop_add(a, busy[2], EPOLLIN, slow_cb, &sl), 0);
	assert_int_equal(loop_del(a, busy[0]), 0);
	assert_int_equal(loop_del(a, busy[2]), 0);
	assert_int_equal(loop_nr_fds(a), 0);
	assert_ptr_equal(io_threads_pick(io), a);
	assert_int_equal(loop_del(b, busy[1]), 0);
	poke(sl.efd);
	assert_int_equal(io_threads_start(io, init_ok, NULL), 0);
	assert_int_equal(init_calls, 2);
	wait_for(&sl.calls, 1);
	assert_string_equal(sl.thread_name, "io1");
	assert_int_equal(loop_del(b, sl.efd), 0);
	io_threads_destroy(io);
	io_threads_destroy(NULL);

	/* A thread whose sandbox fails serves nothing, and the start says so. */
	assert_int_equal(io_threads_create(3, &io), 0);
	assert_int_equal(io_threads_start(io, init_fails, NULL), -EPERM);
	io_threads_destroy(io);
	close(sl.efd);
	for (int i = 0; i < 3; i++)
		close(busy[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defer_order),
	    cmocka_unit_test(test_defer_from_callback),
	    cmocka_unit_test(test_defer_from_other_thread_and_drop),
	    cmocka_unit_test(test_del_from_other_thread_waits_for_callback),
	    cmocka_unit_test(test_table_calls_racing_a_stop),
	    cmocka_unit_test(test_io_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
