/*
 * The Task service (containerd.task.v2.Task) over the control protocol:
 * Create boots the VM with the bundle's rootfs/ shared over 9p and creates
 * the container in it (task_create.c); the daemon's tasks, Start, State,
 * Delete, Connect and Shutdown here, the process calls in task_procs.c,
 * Pause/Resume in task_pause.c, Update in task_update.c. One VM per shim:
 * the first task's; a pod's other containers join it (task_pod.c).
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim/proto/events.pb-c.h"
#include "shim/proto/task.pb-c.h"
#include "shim/task_priv.h"
#include "vmm/log.h"

#define TAG "task"

#define UNPACK(call, type, desc) ((type *)ttrpc_call_unpack(call, &desc))

struct task *task_by_id(struct taskd *d, const char *id)
{
	for (struct task *t = d->tasks; t && id; t = t->next)
		if (!strcmp(t->id, id))
			return t;
	return NULL;
}

struct task *task_named(struct taskd *d, struct ttrpc_call *call, const char *id)
{
	struct task *t = task_by_id(d, id);

	if (!t)
		ttrpc_reply_error(call, TTRPC_NOT_FOUND, "task %.80s not found", id ? id : "");
	return t;
}

struct task *task_by_serial(struct taskd *d, uint64_t serial)
{
	for (struct task *t = d->tasks; t; t = t->next)
		if (t->serial == serial)
			return t;
	return NULL;
}

struct task_call *task_call_new(struct ttrpc_call *call, const struct task *t)
{
	struct task_call *tc = calloc(1, sizeof(*tc));

	if (!tc) {
		ttrpc_reply_error(call, TTRPC_INTERNAL, "out of memory");
		return NULL;
	}
	tc->call = call;
	tc->serial = t->serial;
	return tc;
}

struct task *task_call_take(struct taskd *d, struct task_call *tc, struct ttrpc_call **call)
{
	struct task *t = task_by_serial(d, tc->serial);

	*call = tc->call;
	free(tc);
	if (!t)
		ttrpc_reply_error(*call, TTRPC_NOT_FOUND, "the task is gone");
	return t;
}

void task_forget(struct taskd *d, struct task *t)
{
	for (struct task **pp = &d->tasks; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	for (struct task_proc *p = t->procs; p; p = p->next)
		for (struct ttrpc_call *w = task_take_waiters(p), *n; w; w = n) {
			n = w->next;
			ttrpc_reply_error(w, TTRPC_NOT_FOUND, "task %.80s was deleted", t->id);
		}
	task_free(t);
}

/* ---- Start -------------------------------------------------------------------------- */

static void on_started(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg)
{
	Uvm__Ctrd__StartResponse resp = UVM__CTRD__START_RESPONSE__INIT;
	Uvm__Ctrd__TaskStart ev = UVM__CTRD__TASK_START__INIT;
	struct ttrpc_call *call;
	struct task *t = task_call_take(d, arg, &call);
	struct task_proc *init;

	if (!t)
		return;
	if (!r) {
		ttrpc_reply_error(call, task_ctl_code(code), "container.start: %s", msg);
		return;
	}
	init = task_init_proc(t);
	/* An init that already ended (its exit came first) stays STOPPED. */
	task_proc_started(init, init->pid);
	resp.pid = init->pid;
	ttrpc_reply(call, &resp.base);
	ev.container_id = t->id;
	ev.pid = init->pid;
	task_publish(&d->ev, "/tasks/start", "TaskStart", &ev.base);
	/* What the VM's boot and the container's creation freed leaves the heap's
	 * resident pages (machine_start trimmed before the guest came up). */
	malloc_trim(0);
}

static void m_start(void *opaque, struct ttrpc_call *call)
{
	struct taskd *d = opaque;
	Uvm__Ctrd__TaskIdRequest *q =
	    UNPACK(call, Uvm__Ctrd__TaskIdRequest, uvm__ctrd__task_id_request__descriptor);
	struct task_proc *p;
	struct task_call *tc;
	struct task *t;
	cJSON *params;

	if (!q)
		return;
	t = task_named(d, call, q->id);
	if (!t)
		goto out;
	p = task_find(t, q->exec_id);
	if (!p) {
		ttrpc_reply_error(call, TTRPC_NOT_FOUND, "exec %.80s not found", q->exec_id);
	} else if (t->creating || p->status != TASK_CREATED) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION,
				  "%.80s is not in the created state",
				  q->exec_id[0] ? q->exec_id : q->id);
	} else if (p != task_init_proc(t)) {
		if (!task_refuse_paused(t, call, "Start of an exec"))
			task_start_exec(d, call, t, p);
	} else if ((tc = task_call_new(call, t))) {
		params = cJSON_CreateObject();
		cJSON_AddStringToObject(params, "id", t->id);
		task_ctl_call(d, "container.start", params, on_started, tc);
	}
out:
	protobuf_c_message_free_unpacked(&q->base, NULL);
}

/* ---- State -------------------------------------------------------------------------- */

void task_timestamp(Uvm__Ctrd__Timestamp *ts, const struct timespec *t)
{
	ts->seconds = t->tv_sec;
	ts->nanos = t->tv_nsec;
}

static void m_state(void *opaque, struct ttrpc_call *call)
{
	struct taskd *d = opaque;
	Uvm__Ctrd__TaskIdRequest *q =
	    UNPACK(call, Uvm__Ctrd__TaskIdRequest, uvm__ctrd__task_id_request__descriptor);
	Uvm__Ctrd__StateResponse r = UVM__CTRD__STATE_RESPONSE__INIT;
	Uvm__Ctrd__Timestamp ts = UVM__CTRD__TIMESTAMP__INIT;
	struct task_proc *p;
	struct task *t;

	if (!q)
		return;
	t = task_named(d, call, q->id);
	if (!t)
		goto out;
	p = task_find(t, q->exec_id);
	if (!p) {
		ttrpc_reply_error(call, TTRPC_NOT_FOUND, "exec %.80s not found", q->exec_id);
		goto out;
	}
	r.id = t->id;
	r.bundle = t->bundle;
	r.pid = p->pid;
	r.status = (Uvm__Ctrd__TaskStatus)task_shown_status(t, p);
	r.stdin = p->stdin_path;
	r.stdout = p->stdout_path;
	r.stderr = p->stderr_path;
	r.terminal = p->terminal;
	r.exec_id = p->exec_id;
	if (p->status == TASK_STOPPED) {
		r.exit_status = p->exit_status;
		task_timestamp(&ts, &p->exited_at);
		r.exited_at = &ts;
	}
	ttrpc_reply(call, &r.base);
out:
	protobuf_c_message_free_unpacked(&q->base, NULL);
}

/* ---- Delete ------------------------------------------------------------------------- */

static void reply_deleted(struct ttrpc_call *call, const struct task_proc *p)
{
	Uvm__Ctrd__DeleteResponse r = UVM__CTRD__DELETE_RESPONSE__INIT;
	Uvm__Ctrd__Timestamp ts = UVM__CTRD__TIMESTAMP__INIT;

	r.pid = p->pid;
	r.exit_status = p->exit_status;
	task_timestamp(&ts, &p->exited_at);
	r.exited_at = &ts;
	ttrpc_reply(call, &r.base);
}

/* The container and its share are gone from the guest: answer, publish, forget. */
static void delete_done(struct taskd *d, struct task_call *tc)
{
	Uvm__Ctrd__TaskDelete ev = UVM__CTRD__TASK_DELETE__INIT;
	Uvm__Ctrd__Timestamp ts = UVM__CTRD__TIMESTAMP__INIT;
	struct ttrpc_call *call;
	struct task *t = task_call_take(d, tc, &call);
	struct task_proc *init;

	if (!t)
		return;
	init = task_init_proc(t);
	/* containerd unmounts the rootfs after this answer: our mounts must be off it by then. */
	task_cleanup_host(d, t);
	reply_deleted(call, init);
	ev.container_id = t->id;
	ev.pid = init->pid;
	ev.exit_status = init->exit_status;
	task_timestamp(&ts, &init->exited_at);
	ev.exited_at = &ts;
	ev.id = t->id;
	task_publish(&d->ev, "/tasks/delete", "TaskDelete", &ev.base);
	pr_info(TAG, "%s deleted", t->id);
	task_forget(d, t);
}

static void on_share_removed(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg)
{
	if (!r)
		pr_warn(TAG, "plan9.remove of a rootfs share: %s", msg);
	delete_done(d, arg);
}

static void on_ctr_deleted(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg)
{
	struct task_call *tc = arg;
	struct task *t = task_by_serial(d, tc->serial);
	cJSON *p;

	if (!r)
		pr_warn(TAG, "container.delete: %s", msg);
	if (!t || !t->share) {
		delete_done(d, tc);
		return;
	}
	p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "name", t->share);
	task_ctl_call(d, "plan9.remove", p, on_share_removed, tc);
}

static void m_delete(void *opaque, struct ttrpc_call *call)
{
	struct taskd *d = opaque;
	Uvm__Ctrd__TaskIdRequest *q =
	    UNPACK(call, Uvm__Ctrd__TaskIdRequest, uvm__ctrd__task_id_request__descriptor);
	struct task_proc *p;
	struct task_call *tc;
	struct task *t;
	cJSON *params;
	int ret;

	if (!q)
		return;
	t = task_named(d, call, q->id);
	if (!t)
		goto out;
	if (q->exec_id[0]) {
		p = task_find(t, q->exec_id);
		if (!p) {
			ttrpc_reply_error(call, TTRPC_NOT_FOUND, "exec %.80s not found",
					  q->exec_id);
			goto out;
		}
		if (p->status == TASK_RUNNING) {
			ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION, "exec %.80s is %s",
					  q->exec_id, t->paused ? "paused" : "running");
			goto out;
		}
		reply_deleted(call, p);
		ret = task_remove_exec(t, q->exec_id);
		if (ret)
			pr_warn(TAG, "delete exec %s: %s", q->exec_id, strerror(-ret));
		goto out;
	}
	if (t->creating || t->deleting || !task_init_deletable(t)) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION, "task %.80s is %s", q->id,
				  t->deleting ? "being deleted"
				  : t->paused ? "paused"
					      : "running");
		goto out;
	}
	tc = task_call_new(call, t);
	if (!tc)
		goto out;
	t->deleting = true;
	params = cJSON_CreateObject();
	cJSON_AddStringToObject(params, "id", t->id);
	cJSON_AddBoolToObject(params, "force", true);
	task_ctl_call(d, "container.delete", params, on_ctr_deleted, tc);
out:
	protobuf_c_message_free_unpacked(&q->base, NULL);
}

/* ---- Connect, Shutdown -------------------------------------------------------------- */

static void m_connect(void *opaque, struct ttrpc_call *call)
{
	struct taskd *d = opaque;
	Uvm__Ctrd__TaskIdRequest *q =
	    UNPACK(call, Uvm__Ctrd__TaskIdRequest, uvm__ctrd__task_id_request__descriptor);
	Uvm__Ctrd__ConnectResponse r = UVM__CTRD__CONNECT_RESPONSE__INIT;
	struct task *t;

	if (!q)
		return;
	t = task_named(d, call, q->id);
	if (t) {
		r.shim_pid = getpid();
		r.task_pid = task_init_proc(t)->pid;
		r.version = "uvm-shim";
		ttrpc_reply(call, &r.base);
	}
	protobuf_c_message_free_unpacked(&q->base, NULL);
}

static void m_shutdown(void *opaque, struct ttrpc_call *call)
{
	struct taskd *d = opaque;
	Uvm__Ctrd__ShutdownRequest *q =
	    UNPACK(call, Uvm__Ctrd__ShutdownRequest, uvm__ctrd__shutdown_request__descriptor);
	bool keep;

	if (!q)
		return;
	/*
	 * A task not deleted yet keeps the shim (a pod's sandbox while its
	 * containers come and go, each with its own Shutdown), unless containerd
	 * says now.
	 */
	keep = d->tasks || d->vm_creating;
	if (q->now)
		keep = false;
	protobuf_c_message_free_unpacked(&q->base, NULL);
	ttrpc_reply(call, NULL);
	if (!keep)
		task_exit(d);
}

const struct ttrpc_method task_methods[] = {
    {TASK_SERVICE, "Create", task_create},
    {TASK_SERVICE, "Start", m_start},
    {TASK_SERVICE, "State", m_state},
    {TASK_SERVICE, "Delete", m_delete},
    {TASK_SERVICE, "Connect", m_connect},
    {TASK_SERVICE, "Shutdown", m_shutdown},
    {TASK_SERVICE, "Exec", task_exec},
    {TASK_SERVICE, "Kill", task_kill},
    {TASK_SERVICE, "Wait", task_wait},
    {TASK_SERVICE, "Pids", task_pids},
    {TASK_SERVICE, "Stats", task_stats},
    {TASK_SERVICE, "ResizePty", task_resize_pty},
    {TASK_SERVICE, "CloseIO", task_close_io},
    {TASK_SERVICE, "Pause", task_pause},
    {TASK_SERVICE, "Resume", task_resume},
    {TASK_SERVICE, "Update", task_update},
    /* Checkpoint: code 12 (docs/containerd.md). */
    {NULL, NULL, NULL},
};
