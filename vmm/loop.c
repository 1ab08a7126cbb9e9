/*
 * epoll event loop. Handlers live in a table keyed by fd; loop_del from a
 * callback marks the entry dead so later events of the same batch skip it.
 */
#include "loop.h"

#include <errno.h>
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

struct loop {
	int epfd;
	int stop_fd;
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
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->epfd < 0 || loop->stop_fd < 0)
		goto fail;
	ev.data.ptr = NULL; /* NULL marks the stop fd */
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->stop_fd, &ev) < 0)
		goto fail;
	*out = loop;
	return 0;
fail:;
	int err = -errno;

	if (loop->epfd >= 0)
		close(loop->epfd);
	if (loop->stop_fd >= 0)
		close(loop->stop_fd);
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
	close(loop->epfd);
	close(loop->stop_fd);
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

int loop_run(struct loop *loop)
{
	struct epoll_event evs[32];

	while (!loop->stopping) {
		int n = epoll_wait(loop->epfd, evs, 32, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct loop_entry *e = evs[i].data.ptr;

			if (!e) {
				uint64_t v;

				if (read(loop->stop_fd, &v, sizeof(v)) == sizeof(v))
					loop->stopping = true;
				continue;
			}
			if (!e->dead)
				e->fn(e->opaque, evs[i].events);
		}
		loop_free_list(loop->graveyard);
		loop->graveyard = NULL;
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
