/*
 * The container manager (container.h): container.* methods of `serve`, the
 * layer references resolved against the vpmem and scsi managers, and the
 * guest's container_exited / container_oom notifications as events.
 */
#include "shim/container.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs/protocol.h"
#include "shim/bridge.h"
#include "shim/serve_priv.h"
#include "vmm/log.h"
#include "vmm/util.h"

#define TAG "container"

#define CREQ(rpc) BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_CONTAINER, BRIDGE_RPC_CONTAINER_##rpc)

/* ---- the table ---------------------------------------------------------------------- */

static struct ctr_entry *ctr_find(struct container_mgr *m, const char *id)
{
	struct ctr_entry *e = m->list;

	while (e && strcmp(e->id, id))
		e = e->next;
	return e;
}

static void ctr_unlink_free(struct container_mgr *m, struct ctr_entry *e)
{
	for (struct ctr_entry **pp = &m->list; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			m->count--;
			break;
		}
	free(e);
}

/* The request's container (params.id); answers the error itself when there is none. */
static struct ctr_entry *ctr_of(struct serve *s, struct ctl_req *req)
{
	const char *id;
	char err[CTL_ERRLEN];
	struct ctr_entry *e;

	if (ctl_param_str(req->params, "id", true, &id, err)) {
		ctl_req_bad_params(req, err);
		return NULL;
	}
	e = container_id_valid(id) ? ctr_find(&s->ctrs, id) : NULL;
	if (!e)
		ctl_req_error(req, CTL_ERR_NOT_FOUND, "no container %.64s", id);
	return e;
}

static cJSON *exit_result(const struct ctr_entry *e)
{
	cJSON *r = cJSON_CreateObject();

	cJSON_AddStringToObject(r, "id", e->id);
	cJSON_AddNumberToObject(r, "pid", e->exit.pid);
	cJSON_AddNumberToObject(r, "exit_code", e->exit.exit_code);
	cJSON_AddNumberToObject(r, "signal", e->exit.signal);
	cJSON_AddBoolToObject(r, "oom_killed", e->exit.oom_killed);
	return r;
}

/* The exit is known and the init's output relayed: event and waits. */
static void maybe_report(struct serve *s, struct ctr_entry *e)
{
	struct ctl_req *req;

	if (!e->exited || !e->output_done || e->reported)
		return;
	e->reported = true;
	ctl_event(s->ctl, "container.exited", exit_result(e));
	while ((req = serve_req_list_pop(&e->waiters)))
		ctl_req_result(req, exit_result(e));
}

/* ---- create ---------------------------------------------------------------------------- */

/*
 * The create's answer. A delete sent meanwhile keeps the entry: a failed
 * create (the guest's -ECANCELED when the delete stopped its format) leaves
 * it to the delete's answer; a created one gets its pid, which the delete
 * kills. With no entry any more (the guest answered the delete first) a
 * success is no container of the parent's: it is told it was deleted.
 */
static void create_started(struct sproc *p, struct ctl_req *req, int status, const char *error)
{
	struct ctr_entry *e = p->owner;
	cJSON *r;

	if (status) {
		p->owner = NULL;
		ctl_req_error(req, serve_guest_err_code(status), "%s", error);
		if (e && e->state == CTR_DELETING) {
			e->create_out = false;
			e->create_failed = true;
		} else if (e) {
			ctr_unlink_free(&p->s->ctrs, e);
		}
		return;
	}
	if (!e) {
		ctl_req_error(req, CTL_ERR_CANCELLED,
			      "the container was deleted while being created");
		return;
	}
	e->create_out = false;
	if (e->state == CTR_CREATING)
		e->state = CTR_CREATED;
	e->pid = p->gp.pid;
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "id", e->id);
	cJSON_AddNumberToObject(r, "pid", e->pid);
	ctl_req_result(req, r);
}

static void init_finished(struct sproc *p)
{
	struct ctr_entry *e = p->owner;

	if (!e)
		return;
	e->output_done = true;
	maybe_report(p->s, e);
}

static const struct sproc_hooks init_hooks = {.started = create_started, .finished = init_finished};

/* stdin/stdout/stderr paths of params (NULL when absent); -EINVAL with err. */
static int stdio_paths(const cJSON *params, bool tty, const char *paths[3], char err[CTL_ERRLEN])
{
	static const char *const names[3] = {"stdin", "stdout", "stderr"};

	for (int i = 0; i < 3; i++)
		if (ctl_param_str(params, names[i], false, &paths[i], err) == -EINVAL)
			return -EINVAL;
	if (tty && paths[2]) {
		snprintf(err, CTL_ERRLEN,
			 "params.stderr: a terminal has one output stream (stdout)");
		return -EINVAL;
	}
	return 0;
}

static bool process_terminal(const cJSON *proc)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(proc, "terminal"));
}

void serve_container_create(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	const char *id, *paths[3] = {NULL, NULL, NULL};
	char err[CTL_ERRLEN];
	cJSON *spec = NULL, *extra = NULL;
	struct ctr_root *root = NULL;
	struct ctr_entry *e;
	struct guest_exec x;
	uint64_t rows = 24, cols = 80;
	bool tty;
	int ret;

	if (ctl_param_str(req->params, "id", true, &id, err))
		goto bad;
	if (!container_id_valid(id)) {
		snprintf(err, CTL_ERRLEN, "params.id: [A-Za-z0-9][A-Za-z0-9_.-]*, 1..%d characters",
			 CONTAINER_ID_MAX);
		goto bad;
	}
	if (ctr_find(&s->ctrs, id)) {
		snprintf(err, CTL_ERRLEN, "params.id: container %s already exists", id);
		goto bad;
	}
	root = malloc(sizeof(*root));
	if (!root) {
		ctl_req_error(req, CTL_ERR_INTERNAL, "out of memory");
		return;
	}
	if (container_parse_spec(req->params, &spec, err) ||
	    container_parse_root(cJSON_GetObjectItemCaseSensitive(req->params, "root"), root, err))
		goto bad;
	tty = process_terminal(cJSON_GetObjectItemCaseSensitive(spec, "process"));
	if (stdio_paths(req->params, tty, paths, err) ||
	    ctl_param_u64(req->params, "rows", false, 1, 65535, &rows, err) == -EINVAL ||
	    ctl_param_u64(req->params, "cols", false, 1, 65535, &cols, err) == -EINVAL)
		goto bad;
	if (s->ctrs.count >= CONTAINER_MAX) {
		ctl_req_error(req, CTL_ERR_BUSY, "too many containers (%d)", CONTAINER_MAX);
		goto out;
	}
	if (!bridge_ready(s->bridge)) {
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent is not connected");
		goto out;
	}
	extra = cJSON_CreateObject();
	cJSON_AddStringToObject(extra, "id", id);
	ret = container_root_fields(s, root, extra, err);
	if (ret) {
		ctl_req_error(req, ret == -ENOENT ? CTL_ERR_NOT_FOUND : CTL_ERR_BAD_PARAMS, "%s",
			      err);
		goto out;
	}
	cJSON_AddItemToObject(extra, "spec", spec);
	spec = NULL;
	e = calloc(1, sizeof(*e));
	if (!e) {
		ctl_req_error(req, CTL_ERR_INTERNAL, "out of memory");
		goto out;
	}
	e->m = &s->ctrs;
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->state = CTR_CREATING;
	e->create_out = true;
	e->pid = -1;
	for (unsigned i = 0; i <= root->nr_layers; i++) {
		const struct ctr_ref *r = i < root->nr_layers ? &root->layers[i] : &root->scratch;

		if ((i < root->nr_layers || root->has_scratch) && r->kind != CTR_REF_PATH) {
			e->devs[e->nr_devs] = *r;
			e->devs[e->nr_devs++].path = NULL;
		}
	}
	if (root->plan9)
		snprintf(e->share, sizeof(e->share), "%s", root->plan9);
	e->next = s->ctrs.list;
	s->ctrs.list = e;
	s->ctrs.count++;
	x = (struct guest_exec){
	    .tty = tty, .rows = rows, .cols = cols, .type = CREQ(CREATE), .extra = extra};
	if (serve_proc_spawn(s, req, &x, paths, &init_hooks, e))
		ctr_unlink_free(&s->ctrs, e); /* answered */
	goto out;
bad:
	ctl_req_bad_params(req, err);
out:
	cJSON_Delete(spec);
	cJSON_Delete(extra);
	free(root);
}

/* ---- requests answered by the guest ------------------------------------------------------ */

struct ctr_call {
	struct serve *s;
	struct ctl_req *req;
	char id[CONTAINER_ID_MAX + 1];
	void (*done)(struct ctr_call *c, struct ctr_entry *e, const cJSON *body);
	/* NULL: the guest's error answers req */
	void (*failed)(struct ctr_call *c, struct ctr_entry *e, int status, const char *error);
};

static void on_call_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct ctr_call *c = opaque;
	struct ctr_entry *e = ctr_find(&c->s->ctrs, c->id);

	if (e && e->state == CTR_STARTING && status)
		e->state = CTR_CREATED;
	if (status && c->failed)
		c->failed(c, e, status, error ? error : strerror(-status));
	else if (status)
		ctl_req_error(c->req, serve_guest_err_code(status), "%s",
			      error ? error : strerror(-status));
	else if (c->done)
		c->done(c, e, body);
	else
		ctl_req_result(c->req, NULL);
	free(c);
}

/*
 * Sends body (consumed, "id" added) for e; done (NULL: {}) answers a
 * success, failed (NULL: the error as it is) a failure. -errno when nothing
 * was sent (req answered).
 */
static int ctr_send(struct serve *s, struct ctl_req *req, struct ctr_entry *e, uint32_t type,
		    cJSON *body, void (*done)(struct ctr_call *, struct ctr_entry *, const cJSON *),
		    void (*failed)(struct ctr_call *, struct ctr_entry *, int, const char *))
{
	struct ctr_call *c = calloc(1, sizeof(*c));
	int ret;

	if (!c) {
		cJSON_Delete(body);
		ctl_req_error(req, CTL_ERR_INTERNAL, "out of memory");
		return -ENOMEM;
	}
	*c = (struct ctr_call){.s = s, .req = req, .done = done, .failed = failed};
	snprintf(c->id, sizeof(c->id), "%s", e->id);
	cJSON_AddStringToObject(body, "id", e->id);
	ret = bridge_ready(s->bridge) ? bridge_request(s->bridge, type, body, on_call_resp, c)
				      : (cJSON_Delete(body), -ENOTCONN);
	if (ret < 0) {
		free(c);
		ctl_req_error(req, CTL_ERR_GUEST, "cannot reach the guest agent: %s",
			      strerror(-ret));
		return ret;
	}
	return 0;
}

static void ctr_call(struct serve *s, struct ctl_req *req, struct ctr_entry *e, uint32_t type,
		     cJSON *body,
		     void (*done)(struct ctr_call *, struct ctr_entry *, const cJSON *))
{
	(void)ctr_send(s, req, e, type, body, done, NULL);
}

static void start_done(struct ctr_call *c, struct ctr_entry *e, const cJSON *body)
{
	if (e && e->state == CTR_STARTING)
		e->state = CTR_RUNNING;
	ctl_req_result(c->req, NULL);
}

void serve_container_start(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	struct ctr_entry *e = ctr_of(s, req);

	if (!e)
		return;
	if (e->state != CTR_CREATED) {
		ctl_req_error(req, CTL_ERR_WRONG_STATE, "container %s is %s, not created", e->id,
			      container_state_name(e->state));
		return;
	}
	e->state = CTR_STARTING;
	ctr_call(s, req, e, CREQ(START), cJSON_CreateObject(), start_done);
}

void serve_container_exec(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	struct ctr_entry *e = ctr_of(s, req);
	const char *paths[3] = {NULL, NULL, NULL};
	const cJSON *proc;
	char err[CTL_ERRLEN];
	uint64_t rows = 24, cols = 80;
	struct guest_exec x;
	cJSON *extra;

	if (!e)
		return;
	if (ctl_param_obj(req->params, "process", true, &proc, err) ||
	    stdio_paths(req->params, process_terminal(proc), paths, err) ||
	    ctl_param_u64(req->params, "rows", false, 1, 65535, &rows, err) == -EINVAL ||
	    ctl_param_u64(req->params, "cols", false, 1, 65535, &cols, err) == -EINVAL) {
		ctl_req_bad_params(req, err);
		return;
	}
	if (e->state != CTR_RUNNING) {
		ctl_req_error(req, CTL_ERR_WRONG_STATE, "container %s is %s, not running", e->id,
			      container_state_name(e->state));
		return;
	}
	extra = cJSON_CreateObject();
	cJSON_AddStringToObject(extra, "id", e->id);
	cJSON_AddItemToObject(extra, "process", cJSON_Duplicate(proc, 1));
	x = (struct guest_exec){.tty = process_terminal(proc),
				.rows = rows,
				.cols = cols,
				.type = CREQ(EXEC),
				.extra = extra};
	serve_proc_spawn(s, req, &x, paths, NULL, NULL); /* answers {"pid"} as guest.exec does */
	cJSON_Delete(extra);
}

void serve_container_signal(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	struct ctr_entry *e = ctr_of(s, req);
	char err[CTL_ERRLEN];
	uint64_t sig, pid = 0;
	bool all = false;
	cJSON *b;

	if (!e)
		return;
	if (ctl_param_u64(req->params, "signal", true, 1, 64, &sig, err) ||
	    ctl_param_u64(req->params, "pid", false, 1, INT32_MAX, &pid, err) == -EINVAL ||
	    ctl_param_bool(req->params, "all", false, &all, err) == -EINVAL) {
		ctl_req_bad_params(req, err);
		return;
	}
	if (e->state == CTR_STOPPED || e->state == CTR_CREATING) {
		ctl_req_error(req, CTL_ERR_WRONG_STATE, "container %s is %s", e->id,
			      container_state_name(e->state));
		return;
	}
	if (pid) {
		/* One process: one this shim started in the VM (the container's, by the parent's
		 * word). */
		if (!serve_proc_find(s, (int)pid)) {
			ctl_req_error(req, CTL_ERR_NOT_FOUND, "no process %llu",
				      (unsigned long long)pid);
			return;
		}
		serve_forward(s, req, BRIDGE_CAT_PROCESS, BRIDGE_RPC_SIGNAL,
			      guest_proc_signal_body((int)pid, (int)sig));
		return;
	}
	b = cJSON_CreateObject();
	cJSON_AddNumberToObject(b, "signal", sig);
	cJSON_AddBoolToObject(b, "all", all);
	ctr_call(s, req, e, CREQ(SIGNAL), b, NULL);
}

void serve_container_wait(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	struct ctr_entry *e = ctr_of(s, req);

	if (!e)
		return;
	if (e->exited && e->output_done)
		ctl_req_result(req, exit_result(e));
	else
		serve_req_list_add(&e->waiters, req);
}

void serve_container_update(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	struct ctr_entry *e = ctr_of(s, req);
	char err[CTL_ERRLEN];
	cJSON *res, *b;

	if (!e)
		return;
	if (container_parse_update(req->params, &res, err)) {
		ctl_req_bad_params(req, err);
		return;
	}
	b = cJSON_CreateObject();
	cJSON_AddItemToObject(b, "resources", res);
	ctr_call(s, req, e, CREQ(UPDATE), b, NULL);
}

static void stats_done(struct ctr_call *c, struct ctr_entry *e, const cJSON *body)
{
	cJSON *r = container_stats_result(body);

	if (!r) {
		ctl_req_error(c->req, CTL_ERR_GUEST, "malformed stats from the guest");
		return;
	}
	cJSON_AddStringToObject(r, "id", c->id);
	ctl_req_result(c->req, r);
}

void serve_container_stats(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	struct ctr_entry *e = ctr_of(s, req);

	if (e)
		ctr_call(s, req, e, CREQ(STATS), cJSON_CreateObject(), stats_done);
}

void serve_container_list(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	cJSON *r = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(r, "containers");

	for (struct ctr_entry *e = s->ctrs.list; e; e = e->next) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "id", e->id);
		cJSON_AddStringToObject(o, "state", container_state_name(e->state));
		cJSON_AddNumberToObject(o, "pid", e->pid);
		if (e->exited) {
			cJSON_AddNumberToObject(o, "exit_code", e->exit.exit_code);
			cJSON_AddBoolToObject(o, "oom_killed", e->exit.oom_killed);
		}
		cJSON_AddItemToArray(a, o);
	}
	ctl_req_result(req, r);
}

/* ---- delete ------------------------------------------------------------------------------ */

/* The entry goes: its waits are cancelled, its init record forgets it. */
static void ctr_release(void *opaque)
{
	struct ctr_entry *e = opaque;
	struct serve *s = container_of(e->m, struct serve, ctrs);
	struct ctl_req *req;

	/* its init's record, and one whose create is still out (answered later, as deleted) */
	for (struct sproc *p = s->procs; p; p = p->next)
		if (p->owner == e)
			p->owner = NULL;
	/* A forced delete's kill: the exit came first (the guest sends it before the answer),
	 * its output may still be on its way; the event goes now, like any exit's. */
	if (e->exited) {
		e->output_done = true;
		maybe_report(s, e);
	}
	while ((req = serve_req_list_pop(&e->waiters)))
		ctl_req_error(req, CTL_ERR_CANCELLED, "container %s was deleted", e->id);
	ctr_unlink_free(e->m, e);
}

static void delete_done(struct ctr_call *c, struct ctr_entry *e, const cJSON *body)
{
	if (!e) {
		ctl_req_result(c->req, NULL);
		return;
	}
	e->state = CTR_DELETING; /* gone in the guest; released (and answered) from the loop */
	mgr_retire(&c->s->ctrs.reaper, NULL, c->req, 0, NULL, NULL, ctr_release, e);
}

/*
 * The guest refused or lost the delete. Sent during the create, -ENOENT is
 * the guest's word that the create failed and left nothing: done. A create
 * that failed meanwhile leaves nothing to delete either (the entry goes, the
 * error is said). Otherwise the container is as it was.
 */
static void delete_failed(struct ctr_call *c, struct ctr_entry *e, int status, const char *error)
{
	if (e && e->state == CTR_DELETING && e->del_from == CTR_CREATING && status == -ENOENT) {
		delete_done(c, e, NULL);
		return;
	}
	ctl_req_error(c->req, serve_guest_err_code(status), "%s", error);
	if (!e || e->state != CTR_DELETING)
		return;
	if (e->create_failed)
		mgr_retire(&c->s->ctrs.reaper, NULL, NULL, 0, NULL, NULL, ctr_release, e);
	else if (e->create_out)
		e->state = CTR_CREATING;
	else if (e->exited)
		e->state = CTR_STOPPED;
	else
		e->state = e->del_from == CTR_CREATING ? CTR_CREATED : e->del_from;
}

void serve_container_delete(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	struct ctr_entry *e = ctr_of(s, req);
	char err[CTL_ERRLEN];
	bool force = false;
	cJSON *b;

	if (!e)
		return;
	if (ctl_param_bool(req->params, "force", false, &force, err) == -EINVAL) {
		ctl_req_bad_params(req, err);
		return;
	}
	if (e->state == CTR_STARTING || e->state == CTR_DELETING) {
		ctl_req_error(req, CTL_ERR_BUSY, "container %s is %s", e->id,
			      container_state_name(e->state));
		return;
	}
	if (e->state == CTR_RUNNING && !e->exited && !force) {
		ctl_req_error(req, CTL_ERR_WRONG_STATE,
			      "container %s is running (stop it, or delete with force)", e->id);
		return;
	}
	b = cJSON_CreateObject();
	cJSON_AddBoolToObject(b, "force", force);
	/* Sent after the create (one stream, in order): the guest queues it behind it, or stops
	 * the create's scratch format (the create then fails -ECANCELED). */
	e->del_from = e->state;
	e->state = CTR_DELETING;
	if (ctr_send(s, req, e, CREQ(DELETE), b, delete_done, delete_failed))
		e->state = e->del_from;
}

/* ---- notifications and the VM's end ------------------------------------------------------ */

void serve_containers_notify(struct serve *s, uint32_t type, const cJSON *body)
{
	struct ctr_entry *e;
	struct ctr_exit x;
	char id[CONTAINER_ID_MAX + 1];
	uint64_t kills;

	if (type ==
	    BRIDGE_TYPE(BRIDGE_KIND_NOTIFY, BRIDGE_CAT_CONTAINER, BRIDGE_NOTIFY_CONTAINER_EXITED)) {
		if (container_parse_exit(body, &x)) {
			log_ratelimited(LOG_WARN, TAG, "malformed container_exited from the guest");
			return;
		}
		e = ctr_find(&s->ctrs, x.id);
		if (!e || e->exited || e->pid != x.pid)
			return; /* not ours, or told twice */
		e->exit = x;
		e->exited = true;
		if (e->state != CTR_DELETING)
			e->state = CTR_STOPPED;
		/* No record of the init any more (trimmed): nothing to wait for. */
		if (!serve_proc_find(s, e->pid))
			e->output_done = true;
		maybe_report(s, e);
	} else if (type == BRIDGE_TYPE(BRIDGE_KIND_NOTIFY, BRIDGE_CAT_CONTAINER,
				       BRIDGE_NOTIFY_CONTAINER_OOM)) {
		cJSON *ev;

		if (container_parse_oom(body, id, &kills) || !(e = ctr_find(&s->ctrs, id))) {
			log_ratelimited(LOG_WARN, TAG, "malformed or unknown container_oom");
			return;
		}
		e->oom_kills = kills;
		ev = cJSON_CreateObject();
		cJSON_AddStringToObject(ev, "id", e->id);
		cJSON_AddNumberToObject(ev, "oom_kills", (double)kills);
		ctl_event(s->ctl, "container.oom", ev);
	} else {
		log_ratelimited(LOG_WARN, TAG, "ignoring a %s from the guest",
				bridge_type_name(type) ? bridge_type_name(type) : "notification");
	}
}

void serve_containers_cancel_all(struct serve *s)
{
	for (struct ctr_entry *e = s->ctrs.list; e; e = e->next) {
		struct ctl_req *req;

		while ((req = serve_req_list_pop(&e->waiters)))
			ctl_req_error(req, CTL_ERR_CANCELLED,
				      "the VM ended before container %s exited", e->id);
	}
}

void serve_containers_free(struct serve *s)
{
	serve_containers_cancel_all(s);
	mgr_reap(&s->ctrs.reaper);
	while (s->ctrs.list)
		ctr_unlink_free(&s->ctrs, s->ctrs.list);
}
