/*
 * I/O threads (io_thread.h): n loops, each run by a thread of its own once
 * started. A thread whose init fails (its seccomp filter) runs no loop: the
 * start reports the failure and the machine does not start.
 */
#include "io_thread.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/log.h"
#include "vmm/thread.h"

struct io_one {
	struct io_threads *set;
	int index;
	struct loop *loop;
	pthread_t thread;
	bool started;
	int init_err;
};

struct io_threads {
	int n;
	int (*init)(void *opaque);
	void *opaque;
	sem_t ready;
	struct io_one one[IO_THREADS_MAX];
};

int io_threads_create(int n, struct io_threads **out)
{
	struct io_threads *t;
	int err;

	*out = NULL;
	if (n < 1 || n > IO_THREADS_MAX)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	sem_init(&t->ready, 0, 0);
	for (int i = 0; i < n; i++) {
		t->one[i].set = t;
		t->one[i].index = i;
		err = loop_create(&t->one[i].loop);
		if (err) {
			io_threads_destroy(t);
			return err;
		}
		loop_set_threaded(t->one[i].loop);
		t->n++;
	}
	*out = t;
	return 0;
}

static void *io_main(void *arg)
{
	struct io_one *o = arg;
	struct io_threads *t = o->set;
	char name[16];
	int err;

	/* Named before it serves anything (stack dumps and tests go by the name). */
	snprintf(name, sizeof(name), "io%d", o->index);
	pthread_setname_np(pthread_self(), name);
	err = t->init ? t->init(t->opaque) : 0;
	o->init_err = err;
	sem_post(&t->ready);
	if (err)
		return NULL;
	err = loop_run(o->loop);
	if (err)
		pr_err("io", "an I/O thread's loop failed (%s); its devices stop", strerror(-err));
	return NULL;
}

int io_threads_start(struct io_threads *t, int (*init)(void *opaque), void *opaque)
{
	int err = 0;

	t->init = init;
	t->opaque = opaque;
	for (int i = 0; i < t->n; i++) {
		err = thread_create(&t->one[i].thread, THREAD_STACK_WORKER, io_main, &t->one[i]);
		if (err)
			break;
		t->one[i].started = true;
	}
	for (int i = 0; i < t->n; i++) {
		if (!t->one[i].started)
			continue;
		while (sem_wait(&t->ready) && errno == EINTR)
			;
	}
	for (int i = 0; i < t->n && !err; i++)
		err = t->one[i].init_err;
	return err;
}

struct loop *io_threads_pick(struct io_threads *t)
{
	struct loop *best = t->one[0].loop;
	unsigned least = loop_nr_fds(best);

	for (int i = 1; i < t->n && least; i++) {
		unsigned n = loop_nr_fds(t->one[i].loop);

		if (n < least) {
			best = t->one[i].loop;
			least = n;
		}
	}
	return best;
}

struct loop *io_threads_pick_or(struct io_threads *t, struct loop *fallback)
{
	return t ? io_threads_pick(t) : fallback;
}

int io_threads_count(const struct io_threads *t)
{
	return t->n;
}

void io_threads_destroy(struct io_threads *t)
{
	if (!t)
		return;
	for (int i = 0; i < t->n; i++) {
		if (!t->one[i].started)
			continue;
		loop_stop(t->one[i].loop);
		pthread_join(t->one[i].thread, NULL);
	}
	for (int i = 0; i < t->n; i++)
		loop_destroy(t->one[i].loop);
	sem_destroy(&t->ready);
	free(t);
}
