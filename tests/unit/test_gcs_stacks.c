/*
 * gcs/stacks.c, the GCS's dump_stacks, on the host: threads parked in a
 * known function show it in their frames; a thread that blocks every signal
 * (as a storage worker would without gcs_stacks_allow) is reported as not
 * answering within the bound, its late signal then spoils nothing and the
 * next dump has it; threads beyond the slots are listed as not asked.
 *
 * The GCS is a binary of its own whose objects are not among the unit
 * tests' library objects, so its stacks.c is compiled into this test here
 * (it needs nothing else from gcs/).
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
#include <unistd.h>

#include <cmocka.h>

#include "gcs/gcs.h"
#include "gcs/stacks.c"

#define TIMEOUT_MS 300

struct parked {
	pthread_t thread;
	int tid;
	int pipe[2]; /* one byte per command: 'u' unblock the signal, 'q' quit */
	bool block;  /* every signal blocked, as pthread_create gives a storage worker */
	sem_t ready;
};

/* The known function: noinline and global, so it has a frame and a symbol of its own. */
__attribute__((noinline)) char gcs_stacks_test_parked(struct parked *p)
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
	sigset_t all;

	p->tid = gettid();
	if (p->block) {
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, NULL);
	} else {
		gcs_stacks_allow();
	}
	while (gcs_stacks_test_parked(p) == 'u')
		gcs_stacks_allow();
	return NULL;
}

static void park(struct parked *p, bool block)
{
	memset(p, 0, sizeof(*p));
	p->block = block;
	assert_int_equal(pipe(p->pipe), 0);
	assert_int_equal(sem_init(&p->ready, 0, 0), 0);
	assert_int_equal(pthread_create(&p->thread, NULL, parked_main, p), 0);
	sem_wait(&p->ready);
	usleep(20 * 1000); /* into the read() */
}

static void send_cmd(struct parked *p, char c)
{
	assert_int_equal(write(p->pipe[1], &c, 1), 1);
}

static void unpark(struct parked *p)
{
	send_cmd(p, 'q');
	pthread_join(p->thread, NULL);
	close(p->pipe[0]);
	close(p->pipe[1]);
	sem_destroy(&p->ready);
}

/* The text block of thread tid ("thread <tid> (" up to the next "\nthread "), malloc'ed. */
static char *block_of(const char *text, int tid)
{
	char head[48];
	const char *b, *e;

	snprintf(head, sizeof(head), "thread %d (", tid);
	b = strstr(text, head);
	if (!b)
		return NULL;
	e = strstr(b + 1, "\nthread ");
	return strndup(b, e ? (size_t)(e - b) : strlen(b));
}

static int count(const char *text, const char *what)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

static int setup(void **state)
{
	(void)state;
	return gcs_stacks_init();
}

static void test_every_thread_with_its_frames(void **state)
{
	struct parked a, b;
	char *text, *blk, head[64];

	(void)state;
	park(&a, false);
	park(&b, false);
	text = gcs_stacks_dump(TIMEOUT_MS);
	assert_non_null(text);
	snprintf(head, sizeof(head), "gcs pid %d: 3 threads\n", getpid());
	if (strncmp(text, head, strlen(head)))
		fail_msg("header: %s", text);
	blk = block_of(text, a.tid);
	assert_non_null(blk);
	if (!strstr(blk, " gcs_stacks_test_parked+0x") || !strstr(blk, " parked_main+0x"))
		fail_msg("thread %d: %s", a.tid, text);
	free(blk);
	blk = block_of(text, b.tid);
	assert_non_null(blk);
	if (!strstr(blk, " gcs_stacks_test_parked+0x"))
		fail_msg("thread %d: %s", b.tid, text);
	free(blk);
	/* The asking thread answers too, from inside the dump (which may be inlined here). */
	blk = block_of(text, gettid());
	assert_non_null(blk);
	if (!strstr(blk, " test_every_thread_with_its_frames+0x"))
		fail_msg("caller: %s", text);
	free(blk);
	free(text);
	unpark(&a);
	unpark(&b);
}

static void test_a_blocked_thread_is_silent_then_answers(void **state)
{
	struct parked p;
	char *text, *blk, want[80];

	(void)state;
	park(&p, true);
	text = gcs_stacks_dump(TIMEOUT_MS);
	assert_non_null(text);
	blk = block_of(text, p.tid);
	assert_non_null(blk);
	snprintf(want, sizeof(want), ": did not answer within %d ms\n", TIMEOUT_MS);
	if (!strstr(blk, want) || strstr(blk, "#0"))
		fail_msg("blocked thread: %s", text);
	free(blk);
	free(text);

	/* Unblocked: the signal still pending from that dump arrives late and finds its
	 * slot given up (nothing written); then the thread parks again and answers. */
	send_cmd(&p, 'u');
	usleep(50 * 1000);
	text = gcs_stacks_dump(TIMEOUT_MS);
	assert_non_null(text);
	blk = block_of(text, p.tid);
	assert_non_null(blk);
	if (!strstr(blk, " gcs_stacks_test_parked+0x") || strstr(blk, "did not answer"))
		fail_msg("after unblocking: %s", text);
	free(blk);
	free(text);
	unpark(&p);
}

static void test_more_threads_than_slots(void **state)
{
	enum { N = STACKS_CORE_SLOTS + 3 };
	struct parked *ps = calloc(N, sizeof(*ps));
	char *text;
	int over;

	(void)state;
	assert_non_null(ps);
	for (int i = 0; i < N; i++)
		park(&ps[i], false);
	text = gcs_stacks_dump(2000);
	assert_non_null(text);
	/* N parked threads and this one: the slots take STACKS_CORE_SLOTS, the rest are named. */
	over = count(text, ": not asked: too many threads\n");
	if (over != N + 1 - STACKS_CORE_SLOTS || count(text, "\nthread ") != N + 1)
		fail_msg("%d over the slots; %.2000s", over, text);
	free(text);
	for (int i = 0; i < N; i++)
		unpark(&ps[i]);
	free(ps);
	/* And every slot is free again. */
	text = gcs_stacks_dump(TIMEOUT_MS);
	assert_non_null(text);
	if (strstr(text, "not asked") || strstr(text, "did not answer"))
		fail_msg("after: %s", text);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_thread_with_its_frames),
	    cmocka_unit_test(test_a_blocked_thread_is_silent_then_answers),
	    cmocka_unit_test(test_more_threads_than_slots),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
