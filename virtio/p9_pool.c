/*
 * The worker threads that serve one virtio-9p device (share). The shim makes
 * a pool when a share is added, on the spawner's thread (p9_spawn.c: the
 * sandboxed event loop may no longer create threads). Each worker owns an in
 * and an out buffer of P9_MSIZE_MAX bytes, and runs the creator's
 * thread_init (its sandbox: Landlock beneath the share) before it takes any
 * work. The buffers are a mapping of their own, and a worker idle for
 * p9_pool_idle_release_ms gives their pages back (MADV_DONTNEED): a share
 * that served one big read would otherwise keep up to 1 MiB a worker
 * resident for the VM's life (docs/containerd.md "Benchmark").
 *
 * A pool may carry a watch (p9_pool_set_watch): an idle worker runs it every
 * period, outside the pool's lock, one worker at a time. The 9p device uses
 * it for its stall report (9p.c p9_watch).
 */
#include "p9.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "vmm/log.h"
#include "vmm/thread.h"

#define P9_POOL_MAX 16

int p9_pool_idle_release_ms = 1000;

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
	int busy;	/* workers running a work item */
	/* The watch (p9_pool_set_watch): fn every period_ms on an idle worker. */
	void (*watch)(void *opaque);
	void *watch_opaque;
	int watch_ms;
	struct timespec next_watch;
	bool watch_running;
	pthread_cond_t watch_cv; /* watch_running went false */
};

/* One worker's own state. */
struct worker {
	struct p9_worker_bufs b;
	bool dirty;		    /* the buffers were used since their last release */
	struct timespec release_at; /* when dirty: the release is due then */
};

static struct timespec ts_after_ms(struct timespec t, int ms)
{
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000;
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	return t;
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static struct timespec ts_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t;
}

/* The idle wait's deadline is on the monotonic clock. */
static void cond_init_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

/* Both buffers in one private mapping (page aligned, so its pages can be given back). */
static int bufs_map(struct p9_worker_bufs *b)
{
	uint8_t *p = mmap(NULL, 2 * P9_MSIZE_MAX, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	/*
	 * Never transparent huge pages: the idle release's MADV_DONTNEED would
	 * split a huge PMD and flush TLBs on every CPU of the process each time
	 * (seen stuck there in the test host, docs/virtio.md), and a huge page
	 * would keep 2 MiB resident for a 1 MiB pair. Advice only: a kernel
	 * without THP refuses it, which changes nothing.
	 */
	madvise(p, 2 * P9_MSIZE_MAX, MADV_NOHUGEPAGE);
	b->in = p;
	b->out = p + P9_MSIZE_MAX;
	return 0;
}

/* Runs the watch if it is due and no other worker runs it. Lock held (dropped meanwhile). */
static bool run_watch(struct p9_pool *pool, const struct timespec *now)
{
	void (*fn)(void *opaque) = pool->watch;
	void *opaque = pool->watch_opaque;

	if (!fn || pool->watch_running || ts_before(now, &pool->next_watch))
		return false;
	pool->next_watch = ts_after_ms(*now, pool->watch_ms);
	pool->watch_running = true;
	pthread_mutex_unlock(&pool->lock);
	fn(opaque);
	pthread_mutex_lock(&pool->lock);
	pool->watch_running = false;
	pthread_cond_broadcast(&pool->watch_cv);
	return true;
}

/*
 * Waits for work or stopping. Meanwhile runs the watch when due, and gives
 * the buffers' pages back once idle long enough. Lock held.
 */
static void wait_for_work(struct p9_pool *pool, struct worker *wk)
{
	while (!pool->head && !pool->stopping) {
		bool release = wk->dirty && wk->b.in;
		struct timespec now, until;

		if (!release && !pool->watch) {
			pthread_cond_wait(&pool->cv, &pool->lock);
			continue;
		}
		until = release ? wk->release_at : pool->next_watch;
		if (pool->watch && ts_before(&pool->next_watch, &until))
			until = pool->next_watch;
		if (pthread_cond_timedwait(&pool->cv, &pool->lock, &until) != ETIMEDOUT ||
		    pool->head || pool->stopping)
			continue;
		now = ts_now();
		if (run_watch(pool, &now))
			continue;
		if (!release || ts_before(&now, &wk->release_at))
			continue;
		pthread_mutex_unlock(&pool->lock);
		madvise(wk->b.in, 2 * P9_MSIZE_MAX, MADV_DONTNEED);
		pthread_mutex_lock(&pool->lock);
		wk->dirty = false;
	}
}

static void *pool_main(void *arg)
{
	struct p9_pool *pool = arg;
	struct worker wk = {.b = {NULL, NULL}};
	int err = pool->thread_init ? pool->thread_init(pool->opaque) : 0;

	if (bufs_map(&wk.b))
		pr_err("9p", "a worker has no buffers; it serves nothing");
	pthread_mutex_lock(&pool->lock);
	pool->nr_started++;
	if (err && !pool->init_err)
		pool->init_err = err;
	pthread_cond_broadcast(&pool->cv);
	for (;;) {
		struct p9_work *w;

		wait_for_work(pool, &wk);
		if (pool->stopping || err)
			break; /* a worker without its sandbox serves nothing */
		w = pool->head;
		pool->head = w->next;
		if (!pool->head)
			pool->tail = NULL;
		w->next = NULL;
		pool->busy++;
		pthread_mutex_unlock(&pool->lock);
		w->fn(w, wk.b.in ? &wk.b : NULL);
		wk.dirty = true;
		wk.release_at = ts_after_ms(ts_now(), p9_pool_idle_release_ms);
		pthread_mutex_lock(&pool->lock);
		pool->busy--;
	}
	pthread_mutex_unlock(&pool->lock);
	if (wk.b.in)
		munmap(wk.b.in, 2 * P9_MSIZE_MAX);
	return NULL;
}

int p9_pool_create(int nr, int (*thread_init)(void *opaque), void *opaque, struct p9_pool **out)
{
	return p9_pool_create_named("9p-w", nr, thread_init, opaque, out);
}

int p9_pool_create_named(const char *prefix, int nr, int (*thread_init)(void *opaque), void *opaque,
			 struct p9_pool **out)
{
	struct p9_pool *pool;
	int err;

	if (nr < 1 || nr > P9_POOL_MAX)
		return -EINVAL;
	pool = calloc(1, sizeof(*pool));
	if (!pool)
		return -ENOMEM;
	pthread_mutex_init(&pool->lock, NULL);
	cond_init_monotonic(&pool->cv);
	pthread_cond_init(&pool->watch_cv, NULL);
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
	pthread_cond_destroy(&pool->watch_cv);
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

void p9_pool_set_watch(struct p9_pool *pool, int period_ms, void (*fn)(void *opaque), void *opaque)
{
	pthread_mutex_lock(&pool->lock);
	/* A watch running now finishes first: after this, the old fn is never called. */
	while (pool->watch_running)
		pthread_cond_wait(&pool->watch_cv, &pool->lock);
	pool->watch = period_ms > 0 ? fn : NULL;
	pool->watch_opaque = opaque;
	pool->watch_ms = period_ms;
	pool->next_watch = ts_after_ms(ts_now(), period_ms > 0 ? period_ms : 0);
	/* Idle workers recompute their deadline. */
	pthread_cond_broadcast(&pool->cv);
	pthread_mutex_unlock(&pool->lock);
}

void p9_pool_stats(struct p9_pool *pool, int *queued, int *busy)
{
	int n = 0;

	pthread_mutex_lock(&pool->lock);
	for (struct p9_work *w = pool->head; w; w = w->next)
		n++;
	*queued = n;
	*busy = pool->busy;
	pthread_mutex_unlock(&pool->lock);
}
