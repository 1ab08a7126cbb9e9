/*
 * The 9p spawner (p9.h): one thread, made with the machine while threads may
 * still be made, that makes each share's worker pool when the share is added.
 *
 * Why a thread of its own: a Landlock domain belongs to a thread and the
 * threads it creates, and can only narrow. The loop is Landlocked away from
 * every path once the VM runs, and may not create threads; workers made at
 * vm.create could not be confined to shares named later. The spawner stays
 * outside Landlock, and each worker it makes confines itself beneath its
 * share's root before it serves anything (the pool's thread_init).
 */
#include "p9.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/log.h"
#include "vmm/thread.h"

struct p9_spawner {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	pthread_t thread;
	int (*self_init)(void *opaque);
	void *self_opaque;
	bool started, stopping;
	int init_err;
	/* One request at a time (the loop serializes; the lock makes it so anyway). */
	bool pending;
	int nr;
	int (*thread_init)(void *opaque);
	void *opaque;
	struct p9_pool *pool;
	int ret;
};

static void *spawner_main(void *arg)
{
	struct p9_spawner *sp = arg;
	int err = sp->self_init ? sp->self_init(sp->self_opaque) : 0;

	pthread_mutex_lock(&sp->lock);
	sp->started = true;
	sp->init_err = err;
	pthread_cond_broadcast(&sp->cv);
	while (!err) {
		struct p9_pool *pool = NULL;
		int ret;

		while (!sp->pending && !sp->stopping)
			pthread_cond_wait(&sp->cv, &sp->lock);
		if (sp->stopping)
			break;
		pthread_mutex_unlock(&sp->lock);
		ret = p9_pool_create(sp->nr, sp->thread_init, sp->opaque, &pool);
		pthread_mutex_lock(&sp->lock);
		sp->pool = ret ? NULL : pool;
		sp->ret = ret;
		sp->pending = false;
		pthread_cond_broadcast(&sp->cv);
	}
	pthread_mutex_unlock(&sp->lock);
	return NULL;
}

int p9_spawner_create(int (*self_init)(void *opaque), void *opaque, struct p9_spawner **out)
{
	struct p9_spawner *sp = calloc(1, sizeof(*sp));
	int err;

	if (!sp)
		return -ENOMEM;
	pthread_mutex_init(&sp->lock, NULL);
	pthread_cond_init(&sp->cv, NULL);
	sp->self_init = self_init;
	sp->self_opaque = opaque;
	err = thread_create(&sp->thread, THREAD_STACK_WORKER, spawner_main, sp);
	if (err) {
		pthread_cond_destroy(&sp->cv);
		pthread_mutex_destroy(&sp->lock);
		free(sp);
		return err;
	}
	pthread_setname_np(sp->thread, "9p-spawn");
	pthread_mutex_lock(&sp->lock);
	while (!sp->started)
		pthread_cond_wait(&sp->cv, &sp->lock);
	err = sp->init_err;
	pthread_mutex_unlock(&sp->lock);
	if (err) {
		log_msg(LOG_ERROR, "9p", "the spawner could not set up its sandbox (%s)",
			strerror(-err));
		p9_spawner_destroy(sp);
		return err;
	}
	*out = sp;
	return 0;
}

int p9_spawner_pool(struct p9_spawner *sp, int nr, int (*thread_init)(void *opaque), void *opaque,
		    struct p9_pool **out)
{
	int ret;

	pthread_mutex_lock(&sp->lock);
	while (sp->pending && !sp->stopping)
		pthread_cond_wait(&sp->cv, &sp->lock);
	if (sp->stopping || sp->init_err) {
		pthread_mutex_unlock(&sp->lock);
		return -ESHUTDOWN;
	}
	sp->nr = nr;
	sp->thread_init = thread_init;
	sp->opaque = opaque;
	sp->pending = true;
	pthread_cond_broadcast(&sp->cv);
	while (sp->pending)
		pthread_cond_wait(&sp->cv, &sp->lock);
	ret = sp->ret;
	if (!ret)
		*out = sp->pool;
	sp->pool = NULL;
	pthread_mutex_unlock(&sp->lock);
	return ret;
}

void p9_spawner_destroy(struct p9_spawner *sp)
{
	if (!sp)
		return;
	pthread_mutex_lock(&sp->lock);
	sp->stopping = true;
	pthread_cond_broadcast(&sp->cv);
	pthread_mutex_unlock(&sp->lock);
	pthread_join(sp->thread, NULL);
	pthread_cond_destroy(&sp->cv);
	pthread_mutex_destroy(&sp->lock);
	free(sp);
}
