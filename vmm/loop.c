/*
 * epoll event loop. Handlers live in a table keyed by fd; loop_del from a
 * callback marks the entry dead so later events of the same batch skip it.
 */
#include "loop.h"

#include <errno.h>
#include <pthread.h>
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
	bool stopping;
	struct loop_entry *entries;
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

int loop_add(struct loop *loop, int fd, uint32_t events, loop_fn fn, void *opaque)
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

int loop_mod(struct loop *loop, int fd, uint32_t events)
{
	struct loop_entry *e = loop_lookup(loop, fd, NULL);
	struct epoll_event ev = {.events = events};

	if (!e)
		return -ENOENT;
	ev.data.ptr = e;
	return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

int loop_del(struct loop *loop, int fd)
{
	struct loop_entry **link;
	struct loop_entry *e = loop_lookup(loop, fd, &link);

	if (!e)
		return -ENOENT;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	*link = e->next;
	e->dead = true;
	e->next = loop->graveyard;
	loop->graveyard = e;
	return 0;
}

int loop_defer(struct loop *loop, loop_fn fn, void *opaque)
{
	struct loop_deferred *d = calloc(1, sizeof(*d));
	uint64_t one = 1;

	if (!d)
		return -ENOMEM;
	d->fn = fn;
	d->opaque = opaque;
	pthread_mutex_lock(&loop->defer_lock);
	*loop->deferred_tail = d;
	loop->deferred_tail = &d->next;
	pthread_mutex_unlock(&loop->defer_lock);
	if (write(loop->defer_fd, &one, sizeof(one)) < 0) {
		/* Counter overflow only: a wakeup is pending. */
	}
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

int loop_run(struct loop *loop)
{
	while (!loop->stopping) {
		int n = loop_run_once(loop, -1);

		if (n < 0)
			return n;
	}
	loop->stopping = false;
	return 0;
}

void loop_stop(struct loop *loop)
{
	uint64_t one = 1;

	if (write(loop->stop_fd, &one, sizeof(one)) < 0) {
		/* Counter overflow only: a stop is already pending. */
	}
}
