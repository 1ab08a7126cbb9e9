/*
 * container_create: a container from the parent's spec. Its root first (the
 * layers, scratch and overlay, or a Plan 9 share: container_layers.c), on
 * the mount worker, with mke2fs first when the scratch is to be formatted;
 * then the bundle (config.json) and `crun create` with the container's
 * stdio; the pid crun leaves is adopted and watched for exit and OOM kills
 * (container.c). A create that fails after crun made the container has crun
 * delete it, and unmounts what it mounted, before it answers.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gcs/container.h"

bool gcs_ctr_terminal(const cJSON *proc)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(proc, "terminal"));
}

/*
 * A terminal process gets the request's rows and cols as its consoleSize
 * (unless it has one): crun sets it before the process runs, where a
 * resize after crun returned would race with the process's first look.
 */
void gcs_ctr_console_size(cJSON *proc, const cJSON *req)
{
	long long rows, cols;
	cJSON *cs;

	if (!gcs_ctr_terminal(proc) || cJSON_GetObjectItemCaseSensitive(proc, "consoleSize") ||
	    gcs_bridge_int(req, "rows", 1, USHRT_MAX, 24, &rows) ||
	    gcs_bridge_int(req, "cols", 1, USHRT_MAX, 80, &cols))
		return;
	cs = cJSON_AddObjectToObject(proc, "consoleSize");
	cJSON_AddNumberToObject(cs, "height", rows);
	cJSON_AddNumberToObject(cs, "width", cols);
}

/* A failed create: the container leaves the table, answered once nothing is left mounted. */
static void create_fail(struct gcs_ctr_op *op, int ret, const char *err)
{
	struct gcs_ctr *c = op->c;
	char msg[GCS_CTR_ERRLEN];

	snprintf(msg, sizeof(msg), "container %s: %s", c->id, err); /* err may be op->err */
	op->status = ret;
	memcpy(op->err, msg, sizeof(op->err));
	gcs_ctr_remove(c); /* frees op too */
}

static void create_cleaned(struct gcs_ctr_op *op, int ret, const char *err)
{
	if (ret)
		gcs_log("container %s: %s", op->c->id, err);
	create_fail(op, op->status, op->err);
}

static void create_spawned(struct gcs_ctr_op *op, pid_t pid, const char *err)
{
	struct gcs_ctr *c = op->c;
	cJSON *b;

	if (pid < 0 && op->crun_ok) {
		/* crun made the container, what followed failed: crun deletes it first */
		const char *del[] = {"delete", "--force", c->id, NULL};

		op->status = pid;
		snprintf(op->err, sizeof(op->err), "%s", err ? err : strerror(-pid));
		gcs_ctr_crun(op, del, create_cleaned);
		return;
	}
	if (pid < 0) {
		create_fail(op, pid, err ? err : strerror(-pid));
		return;
	}
	c->pid = pid;
	if (c->state == GCS_CTR_CREATING)
		c->state = GCS_CTR_CREATED;
	gcs_ctr_watch_oom(c);
	b = cJSON_CreateObject();
	cJSON_AddNumberToObject(b, "pid", pid);
	gcs_bridge_respond(op->type, op->id, 0, b, NULL);
	/* phases for tests/bench/containers.py: the root (format included), crun create */
	gcs_log("container %s created: pid %d (root %ld ms, crun create %ld ms)", c->id, pid,
		c->t_crun - c->t_create, gcs_now_ms() - c->t_crun);
	gcs_ctr_op_done(op);
}

/* Sends op's mount job (run, then done from the loop); a create that cannot is failed. */
static void create_mount_job(struct gcs_ctr_op *op, void (*run)(struct gcs_mount_job *),
			     void (*done)(struct gcs_mount_job *))
{
	int ret;

	op->mj = (struct gcs_mount_job){.run = run, .done = done, .opaque = op};
	op->mounting = true;
	ret = gcs_mounts_submit(&op->mj);
	if (ret) {
		op->mounting = false;
		create_fail(op, ret, "no mount worker");
	}
}

/* A mount job of the create is back: false (the create failed) when it failed or must stop. */
static bool create_mounted(struct gcs_ctr_op *op)
{
	op->mounting = false;
	if (op->mj.ret)
		create_fail(op, op->mj.ret, op->mj.err);
	else if (op->c->cancelled)
		create_fail(op, -ECANCELED, "deleted while being created");
	else if (gcs_mounts_stopping())
		create_fail(op, -ECANCELED, "the agent is stopping");
	else
		return true;
	return false;
}

/* The scratch and the overlay are mounted: crun create. */
static void create_root_done(struct gcs_mount_job *j)
{
	struct gcs_ctr_op *op = j->opaque;
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(op->req, "spec");
	char err[GCS_CTR_ERRLEN] = "", sock[PATH_MAX + 32];
	struct gcs_ctr *c = op->c;
	int ret;

	if (!create_mounted(op))
		return;
	ret = gcs_stdio_dial(op->req, &op->io, err, sizeof(err));
	if (ret) {
		create_fail(op, ret, err);
		return;
	}
	c->t_crun = gcs_now_ms();
	op->tty = gcs_ctr_terminal(cJSON_GetObjectItemCaseSensitive(spec, "process"));
	op->on_exit = gcs_ctr_exited;
	snprintf(op->pidfile, sizeof(op->pidfile), "%s/pid", c->dir);
	snprintf(sock, sizeof(sock), "%s/console.sock", c->dir);
	{
		/* crun pivots: the agent's root is not the initramfs (gcs_root_off_initramfs). */
		const char *args[] = {"create",
				      "--bundle",
				      c->dir,
				      "--pid-file",
				      op->pidfile,
				      op->tty ? "--console-socket" : c->id,
				      op->tty ? sock : NULL,
				      c->id,
				      NULL};

		gcs_ctr_spawn(op, args, create_spawned);
	}
}

/* On the mount worker: the scratch (or a tmpfs) and the overlay. */
static void create_root(struct gcs_mount_job *j)
{
	struct gcs_ctr_op *op = j->opaque;

	j->ret = gcs_rootfs_end(&op->c->rootfs, op->c->dir, op->req, j->err, sizeof(j->err));
}

/* mke2fs exited (or was killed by a delete, or as the bridge ends). */
static void create_formatted(void *opaque, int ret, const char *err)
{
	struct gcs_ctr_op *op = opaque;

	op->format = 0;
	if (op->c->cancelled)
		create_fail(op, -ECANCELED, "deleted while its scratch was being formatted");
	else if (ret)
		create_fail(op, ret, err);
	else
		create_mount_job(op, create_root, create_root_done);
}

/* The directory, config.json and the layers are there: format the scratch, or mount the root. */
static void create_prepared(struct gcs_mount_job *j)
{
	struct gcs_ctr_op *op = j->opaque;
	struct gcs_ctr *c = op->c;
	char err[GCS_CTR_ERRLEN] = "";
	int ret;

	if (!create_mounted(op))
		return;
	if (!c->rootfs.format_dev[0]) {
		create_mount_job(op, create_root, create_root_done);
		return;
	}
	/* mke2fs may take long on a big disk: the loop serves everything else meanwhile. */
	ret = gcs_format_start(c->dir, c->rootfs.format_dev, create_formatted, op, &op->format, err,
			       sizeof(err));
	if (ret) {
		create_fail(op, ret, err);
		return;
	}
	gcs_log("container %s: formatting %s", c->id, c->rootfs.format_dev);
}

/* On the mount worker: the directory, config.json (the spec first: a bad one costs no
 * mount), then the layers (gcs_rootfs_begin). */
static void create_prepare(struct gcs_mount_job *j)
{
	struct gcs_ctr_op *op = j->opaque;
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(op->req, "spec");
	struct gcs_ctr *c = op->c;
	cJSON *sized;
	int ret;

	ret = gcs_mkdir_p(c->dir);
	if (ret) {
		snprintf(j->err, sizeof(j->err), "mkdir %s: %s", c->dir, strerror(-ret));
		j->ret = ret;
		return;
	}
	sized = cJSON_Duplicate(spec, 1);
	if (cJSON_IsObject(sized))
		gcs_ctr_console_size(cJSON_GetObjectItemCaseSensitive(sized, "process"), op->req);
	ret = gcs_bundle_write(c->dir, c->id, sized ? sized : spec, j->err, sizeof(j->err));
	cJSON_Delete(sized);
	if (!ret)
		ret = gcs_rootfs_begin(&c->rootfs, c->dir, op->req, j->err, sizeof(j->err));
	j->ret = ret;
}

void gcs_ctr_create_run(struct gcs_ctr *c, struct gcs_ctr_op *op)
{
	c->t_create = gcs_now_ms();
	create_mount_job(op, create_prepare, create_prepared);
}

void gcs_container_create(uint32_t type, uint64_t id, const cJSON *req)
{
	struct gcs_ctr *c = gcs_ctr_add(type, id, gcs_bridge_str(req, "id"));

	if (c && gcs_ctr_queue(c, type, id, req, gcs_ctr_create_run))
		gcs_ctr_remove(c); /* answered */
}
