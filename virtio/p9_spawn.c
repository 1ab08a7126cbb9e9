/*
 * The 9p spawner (p9.h): a pool of one thread ("9p-spawn0"), made with the
 * machine while threads may still be made, whose only work is making a
 * share's worker pool when the share is added.
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
#include <semaphore.h>
#include <stdlib.h>

struct p9_spawner {
	struct p9_pool *thread;
};

struct spawn_req {
	struct p9_work work; /* first: what the spawner's pool runs */
	int nr;
	int (*thread_init)(void *opaque);
	void *opaque;
	struct p9_pool *pool;
	int ret;
	sem_t done;
};

static void spawn_run(struct p9_work *w, struct p9_worker_bufs *bufs)
{
	struct spawn_req *r = (struct spawn_req *)w;

	(void)bufs;
	r->ret = p9_pool_create(r->nr, r->thread_init, r->opaque, &r->pool);
	sem_post(&r->done);
}

int p9_spawner_create(int (*self_init)(void *opaque), void *opaque, struct p9_spawner **out)
{
	struct p9_spawner *sp = calloc(1, sizeof(*sp));
	int err;

	if (!sp)
		return -ENOMEM;
	err = p9_pool_create_named("9p-spawn", 1, self_init, opaque, &sp->thread);
	if (err) {
		free(sp);
		return err;
	}
	*out = sp;
	return 0;
}

int p9_spawner_pool(struct p9_spawner *sp, int nr, int (*thread_init)(void *opaque),
		    void *opaque, struct p9_pool **out)
{
	struct spawn_req r = {
	    .work.fn = spawn_run, .nr = nr, .thread_init = thread_init, .opaque = opaque};

	if (sem_init(&r.done, 0, 0))
		return -errno;
	p9_pool_submit(sp->thread, &r.work);
	while (sem_wait(&r.done) && errno == EINTR)
		;
	sem_destroy(&r.done);
	if (!r.ret)
		*out = r.pool;
	return r.ret;
}

void p9_spawner_destroy(struct p9_spawner *sp)
{
	if (!sp)
		return;
	p9_pool_destroy(sp->thread);
	free(sp);
}
