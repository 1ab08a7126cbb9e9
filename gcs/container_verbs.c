/*
 * Container requests that leave the table as it is (container.h): exec,
 * signal and update through crun, queued behind the container's running
 * request; stats read from its cgroup at once.
 */
#include "gcs/container.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes obj as path: 0 or -errno. */
static int write_json(const char *path, const cJSON *obj)
{
	char *text = cJSON_PrintUnformatted(obj);
	FILE *f;
	int ret = 0;

	if (!text)
		return -ENOMEM;
	f = fopen(path, "we");
	if (!f || fputs(text, f) < 0)
		ret = -errno;
	if (f && fclose(f) && !ret)
		ret = -errno;
	free(text);
	return ret;
}

/* Answers op's request with crun's result; the next request of the container runs. */
static void answer(struct gcs_ctr_op *op, int ret, const char *err)
{
	if (ret)
		gcs_bridge_respond(op->type, op->id, ret, NULL, "container %s: %s", op->c->id, err);
	else
		gcs_bridge_respond(op->type, op->id, 0, NULL, NULL);
	gcs_ctr_op_done(op);
}

/* ---- exec -------------------------------------------------------------------------------- */

static void exec_spawned(struct gcs_ctr_op *op, pid_t pid, const char *err)
{
	cJSON *b;

	if (pid < 0) {
		answer(op, pid, err ? err : strerror(-pid));
		return;
	}
	b = cJSON_CreateObject();
	cJSON_AddNumberToObject(b, "pid", pid);
	gcs_bridge_respond(op->type, op->id, 0, b, NULL);
	gcs_ctr_op_done(op);
}

static void exec_run(struct gcs_ctr *c, struct gcs_ctr_op *op)
{
	const cJSON *proc = cJSON_GetObjectItemCaseSensitive(op->req, "process");
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(proc, "args");
	char err[GCS_CTR_ERRLEN] = "", sock[PATH_MAX];
	cJSON *sized;
	int ret;

	if (c->state != GCS_CTR_RUNNING) {
		snprintf(err, sizeof(err), "not running (%s)", gcs_ctr_state_names[c->state]);
		answer(op, -EINVAL, err);
		return;
	}
	if (!cJSON_IsObject(proc) || !cJSON_IsArray(args) || cJSON_GetArraySize(args) < 1) {
		answer(op, -EINVAL, "container_exec: process.args: a non-empty array of strings");
		return;
	}
	op->tty = gcs_ctr_terminal(proc);
	c->execs++;
	snprintf(op->tmpfile, sizeof(op->tmpfile), "%s/exec-%u.json", c->dir, c->execs);
	snprintf(op->pidfile, sizeof(op->pidfile), "%s/exec-%u.pid", c->dir, c->execs);
	snprintf(sock, sizeof(sock), "%s/console.sock", c->dir);
	sized = cJSON_Duplicate(proc, 1);
	gcs_ctr_console_size(sized, op->req);
	ret = sized ? write_json(op->tmpfile, sized) : -ENOMEM;
	cJSON_Delete(sized);
	if (ret) {
		snprintf(err, sizeof(err), "%.300s: %s", op->tmpfile, strerror(-ret));
		answer(op, ret, err);
		return;
	}
	ret = gcs_stdio_dial(op->req, &op->io, err, sizeof(err));
	if (ret) {
		answer(op, ret, err);
		return;
	}
	{
		const char *a[] = {"exec",
				   "--detach",
				   "--pid-file",
				   op->pidfile,
				   "--process",
				   op->tmpfile,
				   op->tty ? "--console-socket" : c->id,
				   op->tty ? sock : NULL,
				   c->id,
				   NULL};

		gcs_ctr_spawn(op, a, exec_spawned);
	}
}

void gcs_container_exec(uint32_t type, uint64_t id, const cJSON *req)
{
	struct gcs_ctr *c = gcs_ctr_of(type, id, req);

	if (c)
		(void)gcs_ctr_queue(c, type, id, req, exec_run);
}

/* ---- signal, update ------------------------------------------------------------------------ */

static void signal_run(struct gcs_ctr *c, struct gcs_ctr_op *op)
{
	bool all = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(op->req, "all"));
	char sig[24];
	long long s;

	if (gcs_bridge_int(op->req, "signal", 1, NSIG - 1, -1, &s) || s < 1) {
		snprintf(op->err, sizeof(op->err), "container_signal: signal: 1..%d", NSIG - 1);
		answer(op, -EINVAL, op->err);
		return;
	}
	if (c->state == GCS_CTR_STOPPED) {
		answer(op, -ESRCH, "exited already");
		return;
	}
	snprintf(sig, sizeof(sig), "%lld", s);
	{
		const char *a[] = {"kill", all ? "--all" : c->id, all ? c->id : sig,
				   all ? sig : NULL, NULL};

		gcs_ctr_crun(op, a, answer);
	}
}

void gcs_container_signal(uint32_t type, uint64_t id, const cJSON *req)
{
	struct gcs_ctr *c = gcs_ctr_of(type, id, req);

	if (c)
		(void)gcs_ctr_queue(c, type, id, req, signal_run);
}

static void update_run(struct gcs_ctr *c, struct gcs_ctr_op *op)
{
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(op->req, "resources");
	char arg[PATH_MAX + 16];
	int ret;

	if (!cJSON_IsObject(res)) {
		answer(op, -EINVAL, "container_update: resources: an OCI linux.resources object");
		return;
	}
	if (c->state == GCS_CTR_STOPPED) {
		answer(op, -ESRCH, "exited already");
		return;
	}
	snprintf(op->tmpfile, sizeof(op->tmpfile), "%s/resources.json", c->dir);
	snprintf(arg, sizeof(arg), "--resources=%s", op->tmpfile);
	ret = write_json(op->tmpfile, res);
	if (ret) {
		snprintf(op->err, sizeof(op->err), "%.300s: %s", op->tmpfile, strerror(-ret));
		answer(op, ret, op->err);
		return;
	}
	{
		const char *a[] = {"update", arg, c->id, NULL};

		gcs_ctr_crun(op, a, answer);
	}
}

void gcs_container_update(uint32_t type, uint64_t id, const cJSON *req)
{
	struct gcs_ctr *c = gcs_ctr_of(type, id, req);

	if (c)
		(void)gcs_ctr_queue(c, type, id, req, update_run);
}

/* ---- stats: no crun, answered at once ----------------------------------------------------- */

void gcs_container_stats(uint32_t type, uint64_t id, const cJSON *req)
{
	struct gcs_ctr *c = gcs_ctr_of(type, id, req);
	cJSON *b;

	if (!c)
		return;
	b = gcs_ctr_stats(c->id);
	if (!b) {
		gcs_bridge_respond(type, id, -ENOENT, NULL, "container %s has no cgroup", c->id);
		return;
	}
	cJSON_AddStringToObject(b, "state", gcs_ctr_state_names[c->state]);
	gcs_bridge_respond(type, id, 0, b, NULL);
}
