/*
 * A container's mounts off the agent's loop (container.h): the layers' first
 * mounts, the scratch, the overlay, a share's bind, and a delete's unmounts
 * (which flush what the container wrote to its scratch) run on one worker
 * thread, so stats, exec or dump_stacks are answered meanwhile.
 *
 * One worker, jobs in their order of submission: the read-only layer table
 * (container_layers.c) and every container directory are only touched
 * there, so a layer shared by two containers, or a directory whose old
 * owner is still being unmounted while a new container of that id starts,
 * need no lock. A job's done then runs from the loop (this file's eventfd).
 */
#include "gcs/container.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
/* under lock: the worker's queue and what it finished */
static struct gcs_mount_job *todo, **todo_tail = &todo;
static struct gcs_mount_job *done, **done_tail = &done;
static bool quit;
/* loop thread only */
static pthread_t worker;
static bool started, stopping;
static int efd = -1;
static unsigned pending; /* submitted, done not yet run */
static struct gcs_watch efd_w;

static void *worker_main(void *arg)
{
	uint64_t one = 1;

	/* Named for dump_stacks and ps; it takes the stack request, no other signal. */
	pthread_setname_np(pthread_self(), "ctr-mounts");
	gcs_stacks_allow();
	pthread_mutex_lock(&lock);
	for (;;) {
		struct gcs_mount_job *j;

		while (!todo && !quit)
			pthread_cond_wait(&wake, &lock);
		if (!todo)
			break;
		j = todo;
		todo = j->next;
		if (!todo)
			todo_tail = &todo;
		pthread_mutex_unlock(&lock);
		j->run(j);
		pthread_mutex_lock(&lock);
		j->next = NULL;
		*done_tail = j;
		done_tail = &j->next;
		if (write(efd, &one, sizeof(one)) < 0) {
			/* cannot overflow: the loop reads it before 2^64 posts */
		}
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* The finished jobs' done, in their order, from the loop. */
static void mounts_reap(void)
{
	struct gcs_mount_job *list, *j;
	uint64_t n;

	pthread_mutex_lock(&lock);
	list = done;
	done = NULL;
	done_tail = &done;
	if (read(efd, &n, sizeof(n)) < 0) {
		/* nothing posted: EAGAIN */
	}
	pthread_mutex_unlock(&lock);
	while ((j = list)) {
		list = j->next;
		pending--;
		j->done(j); /* may free j, or submit more */
	}
}

static void on_done(struct gcs_watch *w, uint32_t events)
{
	mounts_reap();
}

/* The worker and its eventfd, the first time a job comes. */
static int mounts_start(void)
{
	sigset_t all, old;
	int ret;

	if (started)
		return 0;
	if (efd < 0) {
		efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (efd < 0)
			return -errno;
		efd_w.fn = on_done;
		ret = gcs_bridge_watch(efd, &efd_w);
		if (ret) {
			close(efd);
			efd = -1;
			return ret;
		}
	}
	quit = false;
	/* SIGCHLD and the rest stay with the loop thread (the reaper). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = -pthread_create(&worker, NULL, worker_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		return ret;
	started = true;
	return 0;
}

int gcs_mounts_submit(struct gcs_mount_job *j)
{
	int ret = mounts_start();

	if (ret)
		return ret;
	j->ret = 0;
	j->err[0] = '\0';
	j->next = NULL;
	pthread_mutex_lock(&lock);
	*todo_tail = j;
	todo_tail = &j->next;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
	pending++;
	return 0;
}

unsigned gcs_mounts_pending(void)
{
	return pending;
}

bool gcs_mounts_stopping(void)
{
	return stopping;
}

void gcs_mounts_stop(void)
{
	struct pollfd p = {.fd = efd, .events = POLLIN};

	if (!started)
		return;
	/* Every job ends (a mount or unmount does), and every done runs: a create's gives up
	 * (gcs_mounts_stopping) and queues its teardown, which is waited for too. */
	stopping = true;
	while (pending) {
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			break;
		mounts_reap();
	}
	pthread_mutex_lock(&lock);
	quit = true;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
	pthread_join(worker, NULL);
	started = false;
	stopping = false;
}
