/*
 * Containers (container_* requests, protocol.h): the table, each
 * container's queue of requests, start and delete, exits and OOM kills
 * pushed to the host as notifications. Create is in container_create.c,
 * the other verbs in container_verbs.c.
 *
 * crun runs off the loop (container_crun.c), and so does mke2fs when a
 * create formats its scratch, and so do the mounts of a create and the
 * unmounts of a delete (the mount worker, container_mounts.c): a request
 * that needs one starts it and goes on from its callback, so the loop
 * serves everything else meanwhile.
 * One container's requests run one after the other (crun's verbs on one
 * container never overlap); different containers' run at once.
 *
 * The bridge is a child subreaper (bridge.c): the container's init and
 * exec'd processes, orphaned when crun returns, are reparented to it and
 * reaped by process.c, which calls gcs_ctr_exited for an init.
 */
#include "gcs/container.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CONTAINERS 256

const char *const gcs_ctr_state_names[] = {"creating", "created", "running", "stopped"};

static const char *ctr_dir = GCS_CTR_DIR;
static struct gcs_ctr *ctrs;
static unsigned nr_ctrs;
static int ifd = -1; /* inotify: memory.events of every running container */
static struct gcs_watch ifd_w;

#define NOTIFY(n) BRIDGE_TYPE(BRIDGE_KIND_NOTIFY, BRIDGE_CAT_CONTAINER, BRIDGE_NOTIFY_CONTAINER_##n)

static struct gcs_ctr *ctr_find(const char *id)
{
	struct gcs_ctr *c = ctrs;

	while (c && strcmp(c->id, id))
		c = c->next;
	return c;
}

struct gcs_ctr *gcs_ctr_of(uint32_t type, uint64_t id, const cJSON *req)
{
	const char *cid = gcs_bridge_str(req, "id");
	struct gcs_ctr *c;

	if (!gcs_ctr_id_valid(cid)) {
		gcs_bridge_respond(type, id, -EINVAL, NULL,
				   "%s: id: [A-Za-z0-9][A-Za-z0-9_.-]*, 1..%d",
				   bridge_type_name(type), GCS_CTR_ID_MAX);
		return NULL;
	}
	c = ctr_find(cid);
	if (!c)
		gcs_bridge_respond(type, id, -ENOENT, NULL, "no container %s", cid);
	return c;
}

static void watch_drop(struct gcs_ctr *c)
{
	if (c->wd >= 0)
		inotify_rm_watch(ifd, c->wd);
	c->wd = -1;
}

/* ---- each container's queue ------------------------------------------------------------- */

/* What op holds in the container's directory and its fds (idempotent). */
static void op_close(struct gcs_ctr_op *op)
{
	gcs_stdio_close(&op->io);
	if (op->lfd >= 0) {
		char sock[PATH_MAX];

		close(op->lfd);
		op->lfd = -1;
		snprintf(sock, sizeof(sock), "%s/console.sock", op->c->dir);
		unlink(sock);
	}
	if (op->tmpfile[0])
		unlink(op->tmpfile);
	op->tmpfile[0] = '\0';
}

static void op_free(struct gcs_ctr_op *op)
{
	op_close(op);
	cJSON_Delete(op->req);
	free(op);
}

static void ctr_kick(struct gcs_ctr *c)
{
	if (c->busy || !c->ops)
		return;
	c->busy = true;
	c->ops->run(c, c->ops);
}

int gcs_ctr_queue(struct gcs_ctr *c, uint32_t type, uint64_t id, const cJSON *req, gcs_ctr_op_fn fn)
{
	struct gcs_ctr_op *op = calloc(1, sizeof(*op)), **pp;

	if (!op || !(op->req = cJSON_Duplicate(req, 1))) {
		free(op);
		gcs_bridge_respond(type, id, -ENOMEM, NULL, "out of memory");
		return -ENOMEM;
	}
	op->c = c;
	op->type = type;
	op->id = id;
	op->run = fn;
	op->lfd = -1;
	op->io = (struct gcs_stdio){.socks = {-1, -1, -1}};
	for (pp = &c->ops; *pp; pp = &(*pp)->next)
		;
	*pp = op;
	ctr_kick(c);
	return 0;
}

void gcs_ctr_op_done(struct gcs_ctr_op *op)
{
	struct gcs_ctr *c = op->c;

	c->ops = op->next;
	op_free(op);
	c->busy = false;
	ctr_kick(c);
}

static void delete_run(struct gcs_ctr *c, struct gcs_ctr_op *op);

/* On the mount worker: what is still mounted of c goes, then its directory. */
static void ctr_teardown(struct gcs_mount_job *j)
{
	struct gcs_ctr *c = j->opaque;

	j->ret = gcs_rootfs_unmount(&c->rootfs, c->dir, j->err, sizeof(j->err));
	gcs_ctr_rmdir(c->dir);
}

/*
 * c is unmounted: its requests are answered now, so that the host, told,
 * never removes a disk the container still had mounted. The running one
 * (if any) with what its caller left in status and err; a delete that
 * cancelled the create is done; the others find no container.
 */
static void ctr_torn_down(struct gcs_mount_job *j)
{
	struct gcs_ctr *c = j->opaque;
	struct gcs_ctr_op *op, *next;
	bool running = c->busy;

	if (j->ret)
		gcs_log("container %s: %s", c->id, j->err);
	for (op = c->ops; op; op = next, running = false) {
		next = op->next;
		if (running && op->status)
			gcs_bridge_respond(op->type, op->id, op->status, NULL, "%s", op->err);
		else if (running || (c->cancelled && op->run == delete_run))
			gcs_bridge_respond(op->type, op->id, 0, NULL, NULL);
		else
			gcs_bridge_respond(op->type, op->id, -ENOENT, NULL, "no container %s",
					   c->id);
		op_free(op);
	}
	free(c);
}

/*
 * c leaves the table (its id is free at once), then it is unmounted and its
 * directory removed off the loop, after the mounts still queued there and
 * before those of a container of the same id created next; its requests
 * are answered then (ctr_torn_down).
 */
void gcs_ctr_remove(struct gcs_ctr *c)
{
	for (struct gcs_ctr **pp = &ctrs; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			nr_ctrs--;
			break;
		}
	for (struct gcs_ctr_op *op = c->ops; op; op = op->next)
		op_close(op);
	watch_drop(c);
	c->teardown =
	    (struct gcs_mount_job){.run = ctr_teardown, .done = ctr_torn_down, .opaque = c};
	if (gcs_mounts_submit(&c->teardown)) {
		ctr_teardown(&c->teardown); /* no worker: here, then */
		ctr_torn_down(&c->teardown);
	}
}

struct gcs_ctr *gcs_ctr_add(uint32_t type, uint64_t id, const char *cid)
{
	struct gcs_ctr *c;

	if (!gcs_ctr_id_valid(cid)) {
		gcs_bridge_respond(type, id, -EINVAL, NULL,
				   "container_create: id: [A-Za-z0-9][A-Za-z0-9_.-]*, 1..%d",
				   GCS_CTR_ID_MAX);
		return NULL;
	}
	if (ctr_find(cid)) {
		gcs_bridge_respond(type, id, -EEXIST, NULL, "container %s exists", cid);
		return NULL;
	}
	if (nr_ctrs >= MAX_CONTAINERS) {
		gcs_bridge_respond(type, id, -EAGAIN, NULL, "too many containers (%d)",
				   MAX_CONTAINERS);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		gcs_bridge_respond(type, id, -ENOMEM, NULL, "out of memory");
		return NULL;
	}
	snprintf(c->id, sizeof(c->id), "%s", cid);
	if (snprintf(c->dir, sizeof(c->dir), "%s/%s", ctr_dir, cid) >= (int)sizeof(c->dir)) {
		free(c);
		gcs_bridge_respond(type, id, -ENAMETOOLONG, NULL,
				   "container %s: directory name too long", cid);
		return NULL;
	}
	c->wd = -1;
	c->state = GCS_CTR_CREATING; /* in the table now: its other requests queue behind */
	c->next = ctrs;
	ctrs = c;
	nr_ctrs++;
	return c;
}

void gcs_ctr_watch_oom(struct gcs_ctr *c)
{
	char ev[PATH_MAX];

	gcs_ctr_events_path(c->id, ev, sizeof(ev));
	c->wd = inotify_add_watch(ifd, ev, IN_MODIFY);
	if (c->wd < 0)
		gcs_log_errno("container %s: no OOM watch on %s", c->id, ev);
}

/* ---- crun for an op ---------------------------------------------------------------------- */

static void op_crun_done(void *opaque, int ret, const char *err)
{
	struct gcs_ctr_op *op = opaque;

	op->crun_done(op, ret, err);
}

void gcs_ctr_crun(struct gcs_ctr_op *op, const char *const *args,
		  void (*done)(struct gcs_ctr_op *op, int ret, const char *err))
{
	op->crun_done = done;
	gcs_crun_start(op->c->dir, NULL, args, op_crun_done, op);
}

static void spawn_done(void *opaque, int ret, const char *err)
{
	struct gcs_ctr_op *op = opaque;
	char msg[GCS_CTR_ERRLEN];
	int master = -1;
	pid_t pid;

	if (ret) {
		op->spawned(op, ret, err);
		return;
	}
	op->crun_ok = true;
	pid = gcs_pidfile_read(op->pidfile);
	if (pid < 0) {
		snprintf(msg, sizeof(msg), "crun's pid file %.300s: %s", op->pidfile,
			 strerror(-pid));
		op->spawned(op, pid, msg);
		return;
	}
	if (op->tty) {
		master = gcs_console_take(op->lfd);
		if (master < 0)
			gcs_log("container %s: no terminal from crun: %s", op->c->id,
				strerror(-master));
	}
	ret = gcs_process_adopt(pid, master, &op->io, op->on_exit);
	if (ret) {
		kill(pid, SIGKILL);
		op->spawned(op, ret, "out of memory");
		return;
	}
	op->spawned(op, pid, NULL);
}

void gcs_ctr_spawn(struct gcs_ctr_op *op, const char *const *args,
		   void (*spawned)(struct gcs_ctr_op *op, pid_t pid, const char *err))
{
	char sock[PATH_MAX];

	op->spawned = spawned;
	snprintf(sock, sizeof(sock), "%s/console.sock", op->c->dir);
	if (op->tty) {
		op->lfd = gcs_console_listen(sock);
		if (op->lfd < 0) {
			char msg[128];

			snprintf(msg, sizeof(msg), "console socket: %s", strerror(-op->lfd));
			spawned(op, op->lfd, msg);
			return;
		}
	}
	unlink(op->pidfile);
	gcs_crun_start(op->c->dir, op->tty ? NULL : op->io.socks, args, spawn_done, op);
}

/* ---- exits and OOM kills ------------------------------------------------------------------ */

static void delete_finish(struct gcs_ctr_op *op);

/* process.c reaped a process it was given with this hook: a container's init. */
void gcs_ctr_exited(pid_t pid, int status)
{
	struct gcs_ctr *c = ctrs;
	cJSON *b;
	long long kills;

	while (c && !(c->pid == pid && c->state != GCS_CTR_STOPPED))
		c = c->next;
	if (!c)
		return; /* a failed create's: never reported */
	c->state = GCS_CTR_STOPPED;
	kills = gcs_ctr_oom_kills(c->id);
	watch_drop(c);
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "id", c->id);
	cJSON_AddNumberToObject(b, "pid", pid);
	cJSON_AddNumberToObject(b, "exit_code", gcs_exit_code(status));
	cJSON_AddNumberToObject(b, "signal", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	cJSON_AddBoolToObject(b, "oom_killed", kills > 0);
	gcs_log("container %s exited: %d%s (%ld ms after its start)", c->id, gcs_exit_code(status),
		kills > 0 ? " (OOM kill in its cgroup)" : "",
		c->t_start ? gcs_now_ms() - c->t_start : 0);
	gcs_bridge_send(NOTIFY(EXITED), 0, b);
	if (c->deleting)
		delete_finish(c->deleting);
}

/* memory.events changed: a new OOM kill is pushed as container_oom. */
static void on_inotify(struct gcs_watch *w, uint32_t events)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n = read(ifd, buf, sizeof(buf));

	for (ssize_t off = 0; n > 0 && off + (ssize_t)sizeof(struct inotify_event) <= n;) {
		const struct inotify_event *e = (const void *)(buf + off);

		for (struct gcs_ctr *c = ctrs; c; c = c->next) {
			long long kills;
			cJSON *b;

			if (c->wd != e->wd)
				continue;
			kills = gcs_ctr_oom_kills(c->id);
			if (kills <= c->oom_kills)
				break;
			c->oom_kills = kills;
			b = cJSON_CreateObject();
			cJSON_AddStringToObject(b, "id", c->id);
			cJSON_AddNumberToObject(b, "oom_kills", kills);
			gcs_bridge_send(NOTIFY(OOM), 0, b);
			break;
		}
		off += sizeof(*e) + e->len;
	}
}

void gcs_container_set_paths(const char *dir, const char *mke2fs)
{
	if (dir)
		ctr_dir = dir;
	if (mke2fs)
		gcs_format_set_tool(mke2fs);
}

int gcs_container_init(void)
{
	ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ifd < 0)
		return -errno;
	ifd_w.fn = on_inotify;
	return gcs_bridge_watch(ifd, &ifd_w);
}

/* ---- start, delete ------------------------------------------------------------------------- */

static void start_done(struct gcs_ctr_op *op, int ret, const char *err)
{
	struct gcs_ctr *c = op->c;

	if (ret) {
		gcs_bridge_respond(op->type, op->id, ret, NULL, "container %s: %s", c->id, err);
	} else {
		if (c->state == GCS_CTR_CREATED)
			c->state = GCS_CTR_RUNNING; /* unless its init already exited */
		gcs_bridge_respond(op->type, op->id, 0, NULL, NULL);
		gcs_log("container %s started (crun start %ld ms)", c->id,
			gcs_now_ms() - c->t_start);
	}
	gcs_ctr_op_done(op);
}

static void start_run(struct gcs_ctr *c, struct gcs_ctr_op *op)
{
	const char *args[] = {"start", c->id, NULL};

	if (c->state != GCS_CTR_CREATED) {
		gcs_bridge_respond(op->type, op->id, -EINVAL, NULL,
				   "container %s is %s, not created", c->id,
				   gcs_ctr_state_names[c->state]);
		gcs_ctr_op_done(op);
		return;
	}
	c->t_start = gcs_now_ms();
	gcs_ctr_crun(op, args, start_done);
}

void gcs_container_start(uint32_t type, uint64_t id, const cJSON *req)
{
	struct gcs_ctr *c = gcs_ctr_of(type, id, req);

	if (c)
		(void)gcs_ctr_queue(c, type, id, req, start_run);
}

/* Unmounted: out of the table, answered (what stays mounted is said) once its directory is gone. */
static void delete_unmounted(struct gcs_mount_job *j)
{
	struct gcs_ctr_op *op = j->opaque;
	struct gcs_ctr *c = op->c;

	if (j->ret)
		gcs_log("container %s: %s", c->id, j->err);
	gcs_log("container %s deleted", c->id);
	op->status = j->ret;
	if (j->ret)
		snprintf(op->err, sizeof(op->err), "container deleted, but %.480s", j->err);
	gcs_ctr_remove(c);
}

/* On the mount worker: the overlay, the scratch (its data flushed), the layers. */
static void delete_unmount(struct gcs_mount_job *j)
{
	struct gcs_ctr_op *op = j->opaque;

	j->ret = gcs_rootfs_unmount(&op->c->rootfs, op->c->dir, j->err, sizeof(j->err));
}

/* The delete's end: unmounted off the loop, out of the table, answered once all is gone. */
static void delete_finish(struct gcs_ctr_op *op)
{
	struct gcs_ctr *c = op->c;

	watch_drop(c);
	/* crun's part is done: the entry goes whatever the unmount says */
	op->mj =
	    (struct gcs_mount_job){.run = delete_unmount, .done = delete_unmounted, .opaque = op};
	if (gcs_mounts_submit(&op->mj)) {
		delete_unmount(&op->mj); /* no worker: here, then */
		delete_unmounted(&op->mj);
	}
}

static void delete_done(struct gcs_ctr_op *op, int ret, const char *err)
{
	struct gcs_ctr *c = op->c;

	if (ret) {
		gcs_bridge_respond(op->type, op->id, ret, NULL, "container %s: %s", c->id, err);
		gcs_ctr_op_done(op);
		return;
	}
	/*
	 * A forced delete killed a running init, which is our child: its exit
	 * (container_exited) goes out before the answer, like any exit, so the
	 * delete ends when gcs_ctr_exited has seen it.
	 */
	if (c->pid > 0 && c->state != GCS_CTR_STOPPED && kill(c->pid, SIGKILL) == 0) {
		c->deleting = op;
		return;
	}
	delete_finish(op);
}

static void delete_run(struct gcs_ctr *c, struct gcs_ctr_op *op)
{
	bool force = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(op->req, "force"));
	bool f = force || c->state == GCS_CTR_CREATED;
	const char *args[] = {"delete", f ? "--force" : c->id, f ? c->id : NULL, NULL};

	if (c->state == GCS_CTR_RUNNING && !force) {
		gcs_bridge_respond(op->type, op->id, -EBUSY, NULL,
				   "container %s is running (stop it, or delete with force)",
				   c->id);
		gcs_ctr_op_done(op);
		return;
	}
	gcs_ctr_crun(op, args, delete_done);
}

/*
 * A delete queues behind the container's running request, but one that
 * finds its create formatting the scratch stops mke2fs, and one that finds
 * it mounting stops it once that mount job is back: the create fails
 * (-ECANCELED) and leaves nothing behind, and the delete is answered as done.
 */
void gcs_container_delete(uint32_t type, uint64_t id, const cJSON *req)
{
	struct gcs_ctr *c = gcs_ctr_of(type, id, req);

	if (!c)
		return;
	/* The kill first: its end comes from the reaper, after the delete is queued. */
	if (c->ops && c->ops->format > 0 && !c->cancelled) {
		gcs_log("container %s: deleted while formatting; mke2fs stopped", c->id);
		c->cancelled = true;
		gcs_job_cancel(c->ops->format);
	} else if (c->ops && c->ops->mounting && c->ops->run == gcs_ctr_create_run && !c->cancelled) {
		gcs_log("container %s: deleted while mounting; its create stops there", c->id);
		c->cancelled = true;
	}
	(void)gcs_ctr_queue(c, type, id, req, delete_run);
}

void gcs_container_stop(void)
{
	struct gcs_ctr *c = ctrs, *next;

	for (; c; c = next) {
		next = c->next; /* c may leave the table below, no other one does */
		if (c->ops && c->ops->format > 0) {
			c->cancelled = true;
			gcs_job_stop(c->ops->format); /* create_formatted: c is removed */
		}
	}
	/* Mounts under way end, creates give up there, every teardown runs. */
	gcs_mounts_stop();
}
