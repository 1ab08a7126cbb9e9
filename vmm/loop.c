/*
 * epoll event loop. Handlers live in a table keyed by fd; loop_del from a
 * callback marks the entry dead so later events of the same batch skip it.
 *
 * The table belongs to the loop's thread. On a loop marked threaded (an I/O
 * thread's), loop_add/mod/del called from any other thread while loop_run
 * runs (the control thread adding or removing a disk) are carried out on the
 * loop's thread between two callbacks, and the caller waits for them
 * (loop_call): so no callback for a deleted fd runs after loop_del returns.
 * The control loop is not marked: its table calls run where they are made,
 * as they always did, since some come from vCPU threads holding a device lock
 * that a callback of the loop may be waiting for (a vsock reset closing host
 * connections); waiting there would deadlock.
 */
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct loop_entry {
	int fd;
	loop_fn fn;
	void *opaque;
	bool dead;
	struct loop_entry *next;
};

struct loop_deferred {
	loop_fn fn;
	void *opaque;
	struct loop_deferred *next;
};

/* Marks the deferred-work eventfd in epoll (the stop fd is NULL). */
static char defer_marker;

struct loop {
	int epfd;
	int stop_fd;
	int defer_fd;
	pthread_mutex_t defer_lock;
	struct loop_deferred *deferred, **deferred_tail; /* oldest first */
	bool threaded; /* loop_set_threaded: other threads' table calls go through loop_call */
	bool running;  /* loop_run is running on owner (defer_lock) */
	pthread_t owner;
	bool stopping;
	struct loop_entry *entries;
	unsigned nr_entries; /* atomic: loop_nr_fds reads it from other threads */
	struct loop_entry *graveyard; /* deleted during a batch, freed after it */
};

int loop_create(struct loop **out)
{
	struct loop *loop = calloc(1, sizeof(*loop));
	struct epoll_event ev = {.events = EPOLLIN};

	*out = NULL;
	if (!loop)
		return -ENOMEM;
	pthread_mutex_init(&loop->defer_lock, NULL);
	loop->deferred_tail = &loop->deferred;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	loop->defer_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->epfd < 0 || loop->stop_fd < 0 || loop->defer_fd < 0)
		goto fail;
	ev.data.ptr = NULL; /* NULL marks the stop fd */
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->stop_fd, &ev) < 0)
		goto fail;
	ev.data.ptr = &defer_marker;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->defer_fd, &ev) < 0)
		goto fail;
	*out = loop;
	return 0;
fail:;
	int err = -errno;

	if (loop->epfd >= 0)
		close(loop->epfd);
	if (loop->stop_fd >= 0)
		close(loop->stop_fd);
	if (loop->defer_fd >= 0)
		close(loop->defer_fd);
	pthread_mutex_destroy(&loop->defer_lock);
	free(loop);
	return err;
}

static void loop_free_list(struct loop_entry *e)
{
	while (e) {
		struct loop_entry *n = e->next;

		free(e);
		e = n;
	}
}

void loop_destroy(struct loop *loop)
{
	if (!loop)
		return;
	loop_free_list(loop->entries);
	loop_free_list(loop->graveyard);
	while (loop->deferred) {
		struct loop_deferred *d = loop->deferred;

		loop->deferred = d->next;
		free(d);
	}
	close(loop->epfd);
	close(loop->stop_fd);
	close(loop->defer_fd);
	pthread_mutex_destroy(&loop->defer_lock);
	free(loop);
}

static int add_here(struct loop *loop, int fd, uint32_t events, loop_fn fn, void *opaque)
{
	struct loop_entry *e = calloc(1, sizeof(*e));
	struct epoll_event ev = {.events = events};

	if (!e)
		return -ENOMEM;
	*e = (struct loop_entry){.fd = fd, .fn = fn, .opaque = opaque};
	ev.data.ptr = e;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;

		free(e);
		return err;
	}
	e->next = loop->entries;
	loop->entries = e;
	__atomic_add_fetch(&loop->nr_entries, 1, __ATOMIC_RELAXED);
	return 0;
}

static struct loop_entry *loop_lookup(struct loop *loop, int fd, struct loop_entry ***link)
{
	for (struct loop_entry **p = &loop->entries; *p; p = &(*p)->next) {
		if ((*p)->fd == fd) {
			if (link)
				*link = p;
			return *p;
		}
	}
	return NULL;
}

static int mod_here(struct loop *loop, int fd, uint32_t events)
{
	struct loop_entry *e = loop_lookup(loop, fd, NULL);
	struct epoll_event ev = {.events = events};

	if (!e)
		return -ENOENT;
	ev.data.ptr = e;
	return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

static int del_here(struct loop *loop, int fd)
{
	struct loop_entry **link;
	struct loop_entry *e = loop_lookup(loop, fd, &link);

	if (!e)
		return -ENOENT;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	*link = e->next;
	__atomic_sub_fetch(&loop->nr_entries, 1, __ATOMIC_RELAXED);
	e->dead = true;
	e->next = loop->graveyard;
	loop->graveyard = e;
	return 0;
}

/* ---- From other threads ----------------------------------------------------------------- */

enum table_op { OP_ADD, OP_MOD, OP_DEL };

struct table_call {
	struct loop *loop;
	enum table_op op;
	int fd;
	uint32_t events;
	loop_fn fn;
	void *opaque;
	int ret;
	bool wait; /* queued: its caller waits on done */
	sem_t done;
};

static void table_call_run(void *opaque, uint32_t events)
{
	struct table_call *c = opaque;

	(void)events;
	switch (c->op) {
	case OP_ADD:
		c->ret = add_here(c->loop, c->fd, c->events, c->fn, c->opaque);
		break;
	case OP_MOD:
		c->ret = mod_here(c->loop, c->fd, c->events);
		break;
	case OP_DEL:
		c->ret = del_here(c->loop, c->fd);
		break;
	}
	if (c->wait)
		sem_post(&c->done);
}

/* Appends d to the deferred queue. defer_lock held. */
static void enqueue_locked(struct loop *loop, struct loop_deferred *d)
{
	*loop->deferred_tail = d;
	loop->deferred_tail = &d->next;
}

/* Wakes the loop's thread to run the deferred queue. */
static void wake(struct loop *loop)
{
	uint64_t one = 1;

	if (write(loop->defer_fd, &one, sizeof(one)) < 0) {
		/* Counter overflow only: a wakeup is pending. */
	}
}

/*
 * Runs the table operation on the thread that owns the table: here when the
 * loop is not threaded, when this is the loop's own thread (a callback), or
 * when no loop_run runs (then under defer_lock, which a starting or leaving
 * loop_run takes too); else on the loop's thread between two callbacks,
 * waiting for it.
 */
static int loop_call(struct loop *loop, struct table_call *c)
{
	struct loop_deferred *d;

	c->loop = loop;
	if (!loop->threaded) {
		/* The control loop: its table is changed from its own thread (see loop.h). */
		table_call_run(c, 0);
		return c->ret;
	}
	pthread_mutex_lock(&loop->defer_lock);
	if (!loop->running) {
		table_call_run(c, 0);
		pthread_mutex_unlock(&loop->defer_lock);
		return c->ret;
	}
	if (pthread_equal(loop->owner, pthread_self())) {
		pthread_mutex_unlock(&loop->defer_lock);
		table_call_run(c, 0); /* from a callback of this loop */
		return c->ret;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		pthread_mutex_unlock(&loop->defer_lock);
		return -ENOMEM;
	}
	sem_init(&c->done, 0, 0);
	c->wait = true;
	d->fn = table_call_run;
	d->opaque = c;
	enqueue_locked(loop, d);
	pthread_mutex_unlock(&loop->defer_lock);
	wake(loop);
	while (sem_wait(&c->done) && errno == EINTR)
		;
	sem_destroy(&c->done);
	return c->ret;
}

void loop_set_threaded(struct loop *loop)
{
	loop->threaded = true;
}

bool loop_is_threaded(const struct loop *loop)
{
	return loop->threaded;
}

unsigned loop_nr_fds(const struct loop *loop)
{
	return __atomic_load_n(&loop->nr_entries, __ATOMIC_RELAXED);
}

int loop_add(struct loop *loop, int fd, uint32_t events, loop_fn fn, void *opaque)
{
	struct table_call c = {
	    .op = OP_ADD, .fd = fd, .events = events, .fn = fn, .opaque = opaque};

	return loop_call(loop, &c);
}

int loop_mod(struct loop *loop, int fd, uint32_t events)
{
	struct table_call c = {.op = OP_MOD, .fd = fd, .events = events};

	return loop_call(loop, &c);
}

int loop_del(struct loop *loop, int fd)
{
	struct table_call c = {.op = OP_DEL, .fd = fd};

	return loop_call(loop, &c);
}

int loop_defer(struct loop *loop, loop_fn fn, void *opaque)
{
	struct loop_deferred *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->fn = fn;
	d->opaque = opaque;
	pthread_mutex_lock(&loop->defer_lock);
	enqueue_locked(loop, d);
	pthread_mutex_unlock(&loop->defer_lock);
	wake(loop);
	return 0;
}

/* Runs what was deferred before this call; what those defer runs on the next wakeup. */
static void run_deferred(struct loop *loop)
{
	struct loop_deferred *d;
	uint64_t v;

	if (read(loop->defer_fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing new */
	}
	pthread_mutex_lock(&loop->defer_lock);
	d = loop->deferred;
	loop->deferred = NULL;
	loop->deferred_tail = &loop->deferred;
	pthread_mutex_unlock(&loop->defer_lock);
	while (d) {
		struct loop_deferred *next = d->next;

		d->fn(d->opaque, 0);
		free(d);
		d = next;
	}
}

int loop_run_once(struct loop *loop, int timeout_ms)
{
	struct epoll_event evs[32];
	int n = epoll_wait(loop->epfd, evs, 32, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct loop_entry *e = evs[i].data.ptr;

		if (!e) {
			uint64_t v;

			if (read(loop->stop_fd, &v, sizeof(v)) == sizeof(v))
				loop->stopping = true;
			continue;
		}
		if ((void *)e == &defer_marker) {
			run_deferred(loop);
			continue;
		}
		if (!e->dead)
			e->fn(e->opaque, evs[i].events);
	}
	loop_free_list(loop->graveyard);
	loop->graveyard = NULL;
	return n;
}

/*
 * loop_run is leaving: table calls queued from other threads run now, here,
 * under defer_lock like every table call while no loop_run runs; plain
 * deferred calls stay queued for a later run.
 */
static void run_leaving(struct loop *loop)
{
	struct loop_deferred **pp;

	pthread_mutex_lock(&loop->defer_lock);
	loop->running = false;
	for (pp = &loop->deferred; *pp;) {
		struct loop_deferred *d = *pp;

		if (d->fn != table_call_run) {
			pp = &d->next;
			continue;
		}
		*pp = d->next;
		d->fn(d->opaque, 0); /* its caller waits for it */
		free(d);
	}
	loop->deferred_tail = pp;
	pthread_mutex_unlock(&loop->defer_lock);
}

int loop_run(struct loop *loop)
{
	int ret = 0;

	pthread_mutex_lock(&loop->defer_lock);
	loop->owner = pthread_self();
	loop->running = true;
	pthread_mutex_unlock(&loop->defer_lock);
	while (!loop->stopping) {
		int n = loop_run_once(loop, -1);

		if (n < 0) {
			ret = n;
			break;
		}
	}
	run_leaving(loop);
	loop->stopping = false;
	return ret;
}

void loop_stop(struct loop *loop)
{
	uint64_t one = 1;

	if (write(loop->stop_fd, &one, sizeof(one)) < 0) {
		/* Counter overflow only: a stop is already pending. */
	}
}
