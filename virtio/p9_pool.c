/*
 * The worker threads that serve one virtio-9p device (share). The shim makes
 * a pool when a share is added, on the spawner's thread (p9_spawn.c: the
 * sandboxed event loop may no longer create threads). Each worker owns an in
 * and an out buffer of P9_MSIZE_MAX bytes, and runs the creator's
 * thread_init (its sandbox: Landlock beneath the share) before it takes any
 * work.
 */
#include "p9.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/log.h"
#include "vmm/thread.h"

#define P9_POOL_MAX 16

struct p9_pool {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool stopping;
	struct p9_work *head, *tail;
	int nr;
	pthread_t threads[P9_POOL_MAX];
	int (*thread_init)(void *opaque);
	void *opaque;
	int nr_started; /* workers past thread_init */
	int init_err;	/* the first thread_init failure */
};

static void *pool_main(void *arg)
{
	struct p9_pool *pool = arg;
	struct p9_worker_bufs b = {malloc(P9_MSIZE_MAX), malloc(P9_MSIZE_MAX)};
	int err = pool->thread_init ? pool->thread_init(pool->opaque) : 0;

	if (!b.in || !b.out)
		pr_err("9p", "a worker has no buffers; it serves nothing");
	pthread_mutex_lock(&pool->lock);
	pool->nr_started++;
	if (err && !pool->init_err)
		pool->init_err = err;
	pthread_cond_broadcast(&pool->cv);
	for (;;) {
		struct p9_work *w;

		while (!pool->head && !pool->stopping)
			pthread_cond_wait(&pool->cv, &pool->lock);
		if (pool->stopping || err)
			break; /* a worker without its sandbox serves nothing */
		w = pool->head;
		pool->head = w->next;
		if (!pool->head)
			pool->tail = NULL;
		w->next = NULL;
		pthread_mutex_unlock(&pool->lock);
		w->fn(w, b.in && b.out ? &b : NULL);
		pthread_mutex_lock(&pool->lock);
	}
	pthread_mutex_unlock(&pool->lock);
	free(b.in);
	free(b.out);
	return NULL;
}

int p9_pool_create(int nr, int (*thread_init)(void *opaque), void *opaque, struct p9_pool **out)
{
	return p9_pool_create_named("9p-w", nr, thread_init, opaque, out);
}

int p9_pool_create_named(const char *prefix, int nr, int (*thread_init)(void *opaque),
			 void *opaque, struct p9_pool **out)
{
	struct p9_pool *pool;
	int err;

	if (nr < 1 || nr > P9_POOL_MAX)
		return -EINVAL;
	pool = calloc(1, sizeof(*pool));
	if (!pool)
		return -ENOMEM;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cv, NULL);
	pool->thread_init = thread_init;
	pool->opaque = opaque;
	for (int i = 0; i < nr; i++) {
		char name[16];

		err = thread_create(&pool->threads[i], THREAD_STACK_WORKER, pool_main, pool);
		if (err) {
			p9_pool_destroy(pool);
			return err;
		}
		pool->nr++;
		snprintf(name, sizeof(name), "%s%d", prefix, i);
		pthread_setname_np(pool->threads[i], name);
	}
	pthread_mutex_lock(&pool->lock);
	while (pool->nr_started < pool->nr)
		pthread_cond_wait(&pool->cv, &pool->lock);
	err = pool->init_err;
	pthread_mutex_unlock(&pool->lock);
	if (err) {
		pr_err("9p", "a %s thread could not set up its sandbox (%s)", prefix,
			strerror(-err));
		p9_pool_destroy(pool);
		return err;
	}
	*out = pool;
	return 0;
}

void p9_pool_destroy(struct p9_pool *pool)
{
	if (!pool)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->cv);
	pthread_mutex_unlock(&pool->lock);
	for (int i = 0; i < pool->nr; i++)
		pthread_join(pool->threads[i], NULL);
	pthread_cond_destroy(&pool->cv);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}

void p9_pool_submit(struct p9_pool *pool, struct p9_work *w)
{
	pthread_mutex_lock(&pool->lock);
	w->next = NULL;
	if (pool->tail)
		pool->tail->next = w;
	else
		pool->head = w;
	pool->tail = w;
	pthread_cond_signal(&pool->cv);
	pthread_mutex_unlock(&pool->lock);
}

bool p9_pool_cancel(struct p9_pool *pool, struct p9_work *w)
{
	struct p9_work **pp, *prev = NULL;
	bool found = false;

	pthread_mutex_lock(&pool->lock);
	for (pp = &pool->head; *pp; prev = *pp, pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			if (pool->tail == w)
				pool->tail = prev;
			w->next = NULL;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&pool->lock);
	return found;
}
