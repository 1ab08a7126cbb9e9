/*
 * shim/stacks.c: threads parked in a known function show it in their frames;
 * a thread that blocks the signal is reported as not answering within the
 * bound (and answers once it unblocks it); the capture works with the
 * capturing thread under the loop filter and a parked thread under the vCPU
 * filter (in a forked child: a missing allowlist line kills it with SIGSYS).
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "seccomp/seccomp.h"
#include "shim/stacks.h"

struct parked {
	pthread_t thread;
	int tid;
	int pipe[2];	  /* the thread reads one byte per command */
	bool block;	  /* block the stacks signal before parking */
	bool vcpu_filter; /* install the vCPU seccomp filter before parking */
	int filter_ret;
	sem_t ready;
};

/*
 * The known function: parks in read(). noinline and global so that it has a
 * frame and a .symtab entry of its own. Returns the byte read ('q' quits).
 */
__attribute__((noinline)) char stacks_test_parked(struct parked *p)
{
	char c = 'q';

	sem_post(&p->ready);
	if (read(p->pipe[0], &c, 1) != 1)
		return 'q';
	__asm__ volatile("" ::: "memory"); /* keep this frame a real one */
	return c;
}

static void *parked_main(void *arg)
{
	struct parked *p = arg;
	sigset_t set;

	p->tid = gettid();
	sigemptyset(&set);
	sigaddset(&set, stacks_signal());
	if (p->block)
		pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (p->vcpu_filter)
		p->filter_ret = sandbox_apply_action(SANDBOX_VCPU, SANDBOX_KILL);
	for (;;) {
		char c = stacks_test_parked(p);

		if (c == 'q')
			break;
		if (c == 'u')
			pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	}
	return NULL;
}

static int park(struct parked *p, bool block, bool vcpu_filter)
{
	memset(p, 0, sizeof(*p));
	p->block = block;
	p->vcpu_filter = vcpu_filter;
	if (pipe(p->pipe) || sem_init(&p->ready, 0, 0))
		return -1;
	if (pthread_create(&p->thread, NULL, parked_main, p))
		return -1;
	return sem_wait(&p->ready);
}

static void command(struct parked *p, char c)
{
	if (write(p->pipe[1], &c, 1) != 1)
		abort();
	if (c != 'q')
		sem_wait(&p->ready); /* parked again */
}

static void unpark(struct parked *p)
{
	command(p, 'q');
	pthread_join(p->thread, NULL);
	close(p->pipe[0]);
	close(p->pipe[1]);
	sem_destroy(&p->ready);
}

static const struct stacks_thread *find_tid(const struct stacks *st, int tid)
{
	for (int i = 0; i < st->nthreads; i++)
		if (st->threads[i].tid == tid)
			return &st->threads[i];
	return NULL;
}

static bool has_function(const struct stacks_thread *t, const char *fn)
{
	for (int i = 0; t && i < t->nframes; i++)
		if (!strcmp(t->frames[i].function, fn))
			return true;
	return false;
}

static long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

static int setup(void **state)
{
	(void)state;
	return stacks_init();
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_parked_threads_show_their_function(void **state)
{
	struct parked a, b;
	struct stacks *st;
	const struct stacks_thread *ta, *tb, *self;
	char *text;
	cJSON *json;

	(void)state;
	assert_int_equal(park(&a, false, false), 0);
	assert_int_equal(park(&b, false, false), 0);
	assert_int_equal(stacks_capture(&st, 2000), 0);
	ta = find_tid(st, a.tid);
	tb = find_tid(st, b.tid);
	self = find_tid(st, gettid());
	assert_non_null(ta);
	assert_non_null(tb);
	assert_non_null(self);
	assert_int_equal(ta->status, STACKS_OK);
	assert_int_equal(tb->status, STACKS_OK);
	assert_true(has_function(ta, "stacks_test_parked"));
	assert_true(has_function(tb, "stacks_test_parked"));
	assert_true(has_function(ta, "parked_main"));
	/* The capturing thread answers its own signal, from inside the capture. */
	assert_int_equal(self->status, STACKS_OK);
	assert_true(has_function(self, "stacks_capture"));
	assert_false(has_function(self, "stacks_test_parked"));

	text = stacks_format(st);
	assert_non_null(text);
	assert_non_null(strstr(text, "stacks_test_parked+0x"));
	free(text);
	json = stacks_to_json(st);
	assert_int_equal(cJSON_GetArraySize(json), st->nthreads);
	text = cJSON_PrintUnformatted(json);
	assert_non_null(strstr(text, "\"function\":\"stacks_test_parked\""));
	free(text);
	cJSON_Delete(json);
	stacks_free(st);
	unpark(&a);
	unpark(&b);
}

static void test_blocked_thread_is_reported_within_the_bound(void **state)
{
	struct parked ok, blocked;
	struct stacks *st;
	const struct stacks_thread *t;
	long t0, took;
	char *text;

	(void)state;
	assert_int_equal(park(&ok, false, false), 0);
	assert_int_equal(park(&blocked, true, false), 0);
	t0 = now_ms();
	assert_int_equal(stacks_capture(&st, 300), 0);
	took = now_ms() - t0;
	/* The bound is 300 ms for answers plus 300 ms for handlers already running. */
	assert_true(took >= 290);
	assert_true(took < 1500);
	t = find_tid(st, blocked.tid);
	assert_non_null(t);
	assert_int_equal(t->status, STACKS_NO_ANSWER);
	assert_int_equal(t->nframes, 0);
	t = find_tid(st, ok.tid);
	assert_int_equal(t->status, STACKS_OK);
	assert_true(has_function(t, "stacks_test_parked"));
	text = stacks_format(st);
	assert_non_null(strstr(text, "no answer"));
	free(text);
	stacks_free(st);

	/* Unblocked, the stale signal runs its handler: it must write nothing... */
	command(&blocked, 'u');
	/* ...and the next capture gets the thread's stack. */
	assert_int_equal(stacks_capture(&st, 2000), 0);
	t = find_tid(st, blocked.tid);
	assert_non_null(t);
	assert_int_equal(t->status, STACKS_OK);
	assert_true(has_function(t, "stacks_test_parked"));
	stacks_free(st);
	unpark(&ok);
	unpark(&blocked);
}

/* Child: one thread under the vCPU filter, the capturing thread under the loop filter. */
static int child_under_filters(void)
{
	struct parked v;
	struct stacks *st;
	const struct stacks_thread *t;
	int ret = 0;

	if (park(&v, false, true) || v.filter_ret)
		return 10;
	if (sandbox_apply_action(SANDBOX_LOOP, SANDBOX_KILL))
		return 11;
	for (int round = 0; round < 2 && !ret; round++) {
		if (stacks_capture(&st, 2000))
			return 12;
		t = find_tid(st, v.tid);
		if (!t || t->status != STACKS_OK)
			ret = 13;
		else if (!has_function(t, "stacks_test_parked"))
			ret = 14;
		t = find_tid(st, gettid());
		if (!ret && (!t || !has_function(t, "stacks_capture")))
			ret = 15;
		stacks_free(st);
	}
	return ret;
}

static void test_capture_under_seccomp_filters(void **state)
{
	pid_t pid;
	int st = -1;

	(void)state;
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_under_filters()); /* the leak check at exit is not the child's */
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		fail_msg("child died of signal %d (SIGSYS = a call missing from an allowlist)",
			 WTERMSIG(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_init_twice_is_a_no_op(void **state)
{
	(void)state;
	/* Initialized by setup(): a second init is a no-op. */
	assert_int_equal(stacks_init(), 0);
	stacks_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parked_threads_show_their_function),
	    cmocka_unit_test(test_blocked_thread_is_reported_within_the_bound),
	    cmocka_unit_test(test_capture_under_seccomp_filters),
	    cmocka_unit_test(test_init_twice_is_a_no_op),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
