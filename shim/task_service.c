/*
 * The Task service (containerd.task.v2.Task) over the control protocol:
 * Create boots the VM with the bundle's rootfs/ shared over 9p and creates
 * the container in it; Start, State, Delete, Connect and Shutdown here, the
 * process calls in task_procs.c, Pause/Resume in task_pause.c, Update in
 * task_update.c. One VM per task.
 */
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim/container.h"
#include "shim/proto/events.pb-c.h"
#include "shim/proto/task.pb-c.h"
#include "shim/task_mount.h"
#include "shim/task_options.h"
#include "shim/task_priv.h"
#include "vmm/log.h"
#include "vmm/loop.h"

#define TAG "task"

/* A config.json larger than this is refused. */
#define TASK_SPEC_MAX (1u << 20)

#define UNPACK(call, type, desc) ((type *)ttrpc_call_unpack(call, &desc))

bool task_wrong_id(struct taskd *d, struct ttrpc_call *call, const char *id)
{
	if (d->task && id && !strcmp(id, d->task->id))
		return false;
	ttrpc_reply_error(call, TTRPC_NOT_FOUND, "task %.80s not found", id ? id : "");
	return true;
}

static char *path_join(const char *a, const char *b)
{
	char *p;

	return asprintf(&p, "%s/%s", a, b) < 0 ? NULL : p;
}

/* The bundle's config.json as text; NULL with err. */
static char *read_spec(const char *bundle, char *err, size_t errlen)
{
	char *path = path_join(bundle, "config.json"), *buf = NULL;
	struct stat st;
	ssize_t n;
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;

	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "bundle %.200s has no config.json", bundle);
		goto out;
	}
	if (st.st_size > TASK_SPEC_MAX) {
		snprintf(err, errlen, "bundle %.200s: config.json over 1 MiB", bundle);
		goto out;
	}
	buf = malloc(st.st_size + 1);
	if (!buf || (n = read(fd, buf, st.st_size)) != st.st_size) {
		snprintf(err, errlen, "bundle %.200s: config.json cannot be read", bundle);
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[n] = 0;
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return buf;
}

/* ---- Create ------------------------------------------------------------------------- */

struct create_op {
	struct ttrpc_call *call;
	Uvm__Ctrd__CreateTaskRequest *req;
	char *spec;
	cJSON *config; /* this task's config file (options' or the default), may be NULL */
};

/* Without the request (the caller frees it: m_create's "bad" path). */
static void create_op_free_unanswered(struct create_op *op)
{
	free(op->spec);
	cJSON_Delete(op->config);
	free(op);
}

static void create_op_free(struct create_op *op)
{
	protobuf_c_message_free_unpacked(&op->req->base, NULL);
	create_op_free_unanswered(op);
}

static void create_fail(struct taskd *d, struct create_op *op, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void create_fail(struct taskd *d, struct create_op *op, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pr_err(TAG, "create %s: %s", op->req->id, msg);
	ttrpc_reply_error(op->call, code, "%s", msg);
	/* The VM cannot be created twice: what is left is Shutdown. */
	if (d->vm_up)
		task_ctl_call(d, "vm.terminate", NULL, NULL, NULL);
	task_cleanup_host(d);
	task_free(d->task);
	d->task = NULL;
	d->creating = false;
	create_op_free(op);
}

static void on_ctr_created(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg)
{
	struct create_op *op = arg;
	Uvm__Ctrd__CreateTaskRequest *q = op->req;
	Uvm__Ctrd__CreateTaskResponse resp = UVM__CTRD__CREATE_TASK_RESPONSE__INIT;
	Uvm__Ctrd__TaskCreate ev = UVM__CTRD__TASK_CREATE__INIT;
	Uvm__Ctrd__TaskIO io = UVM__CTRD__TASK_IO__INIT;
	const cJSON *pid = r ? cJSON_GetObjectItemCaseSensitive(r, "pid") : NULL;
	struct task_proc *init;

	if (!r || !cJSON_IsNumber(pid)) {
		create_fail(d, op, code ? task_ctl_code(code) : TTRPC_INTERNAL,
			    "container.create: %s", msg ? msg : "no pid");
		return;
	}
	init = task_init_proc(d->task);
	init->pid = (uint32_t)pid->valuedouble;
	init->terminal = q->terminal;
	free(init->stdin_path);
	free(init->stdout_path);
	free(init->stderr_path);
	init->stdin_path = strdup(q->stdin ? q->stdin : "");
	init->stdout_path = strdup(q->stdout ? q->stdout : "");
	init->stderr_path = strdup(q->stderr ? q->stderr : "");
	d->creating = false;
	resp.pid = init->pid;
	ttrpc_reply(op->call, &resp.base);
	io.stdin = q->stdin;
	io.stdout = q->stdout;
	io.stderr = q->stderr;
	io.terminal = q->terminal;
	ev.container_id = q->id;
	ev.bundle = q->bundle;
	ev.n_rootfs = q->n_rootfs;
	ev.rootfs = q->rootfs;
	ev.io = &io;
	ev.pid = init->pid;
	task_publish(&d->ev, "/tasks/create", "TaskCreate", &ev.base);
	create_op_free(op);
}

static void add_path(cJSON *o, const char *key, const char *path)
{
	if (path && path[0])
		cJSON_AddStringToObject(o, key, path);
}

static void on_vm_started(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg)
{
	struct create_op *op = arg;
	cJSON *p, *root;

	if (!r) {
		create_fail(d, op, task_ctl_code(code), "vm.start: %s", msg);
		return;
	}
	p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "id", op->req->id);
	cJSON_AddStringToObject(p, "spec", op->spec);
	root = cJSON_AddObjectToObject(p, "root");
	cJSON_AddStringToObject(root, "plan9", TASK_ROOTFS_SHARE);
	add_path(p, "stdin", op->req->stdin);
	add_path(p, "stdout", op->req->stdout);
	if (!op->req->terminal)
		add_path(p, "stderr", op->req->stderr);
	task_ctl_call(d, "container.create", p, on_ctr_created, op);
}

static void on_vm_created(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg)
{
	struct create_op *op = arg;
	const cJSON *t =
	    op->config ? cJSON_GetObjectItemCaseSensitive(op->config, "start_timeout_ms") : NULL;
	cJSON *p = cJSON_CreateObject();

	if (!r) {
		cJSON_Delete(p);
		create_fail(d, op, task_ctl_code(code), "vm.create: %s", msg);
		return;
	}
	d->vm_up = true;
	if (cJSON_IsNumber(t))
		cJSON_AddNumberToObject(p, "timeout_ms", t->valuedouble);
	/* The sandbox closes in vm.start (machine_start): no mount or unmount after this. */
	d->vm_started = true;
	task_ctl_call(d, "vm.start", p, on_vm_started, op);
}

/* vm.create's params: the config file's, without our own keys, plus the rootfs share. */
static cJSON *vm_params(const cJSON *config, const char *rootfs)
{
	cJSON *p = config ? cJSON_Duplicate(config, true) : cJSON_CreateObject();
	cJSON *shares, *s;

	if (!p)
		return NULL;
	cJSON_DeleteItemFromObjectCaseSensitive(p, "start_timeout_ms");
	shares = cJSON_GetObjectItemCaseSensitive(p, "plan9");
	if (!cJSON_IsArray(shares)) {
		cJSON_DeleteItemFromObjectCaseSensitive(p, "plan9");
		shares = cJSON_AddArrayToObject(p, "plan9");
	}
	s = cJSON_CreateObject();
	cJSON_AddStringToObject(s, "name", TASK_ROOTFS_SHARE);
	cJSON_AddStringToObject(s, "host_path", rootfs);
	cJSON_AddStringToObject(s, "guest_path", TASK_ROOTFS_GUEST);
	cJSON_AddBoolToObject(s, "read_only", false);
	cJSON_AddItemToArray(shares, s);
	return p;
}

/*
 * This task's config into *out: the file the runtime options name (read now,
 * strictly: a file that does not load fails the Create), else a copy of the
 * daemon's default (NULL: the defaults). -1 once the call is answered with
 * the error.
 */
static int create_config(struct taskd *d, const Uvm__Ctrd__CreateTaskRequest *q,
			 struct ttrpc_call *call, cJSON **out)
{
	char err[TASK_OPTIONS_ERRLEN], *path;
	int ret;

	*out = NULL;
	ret = task_options_config_path(q->options, &path, err, sizeof(err));
	if (ret) {
		pr_err(TAG, "create %s: %s", q->id, err);
		ttrpc_reply_error(call, ret, "%s", err);
		return -1;
	}
	if (!path) {
		if (d->vm_config && !(*out = cJSON_Duplicate(d->vm_config, true))) {
			ttrpc_reply_error(call, TTRPC_INTERNAL, "out of memory");
			return -1;
		}
		return 0;
	}
	ret = task_config_load(path, out, err, sizeof(err));
	if (ret) {
		pr_err(TAG, "create %s: options: %s", q->id, err);
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION, "options: %s", err);
		free(path);
		return -1;
	}
	pr_info(TAG, "create %s: config file %s (runtime options)", q->id, path);
	free(path);
	return 0;
}

static void m_create(void *opaque, struct ttrpc_call *call)
{
	struct taskd *d = opaque;
	struct create_op *op;
	char err[TASK_MOUNT_ERRLEN], *rootfs;
	cJSON *config;
	Uvm__Ctrd__CreateTaskRequest *q =
	    UNPACK(call, Uvm__Ctrd__CreateTaskRequest, uvm__ctrd__create_task_request__descriptor);
	int ret;

	if (!q)
		return;
	if (d->task || d->creating) {
		if (d->task && !strcmp(d->task->id, q->id))
			ttrpc_reply_error(call, TTRPC_ALREADY_EXISTS, "task %.80s already exists",
					  q->id);
		else
			ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION,
					  "this shim runs one task (%.80s)", d->task->id);
		goto bad;
	}
	/*
	 * After a failed Create the VM stays (it cannot be created twice) and, once
	 * started, so does the sandbox, which would kill a second Create's mount.
	 */
	if (d->vm_up) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION,
				  "this shim's VM was already created: Shutdown it");
		goto bad;
	}
	if (!container_id_valid(q->id)) {
		ttrpc_reply_error(call, TTRPC_INVALID_ARGUMENT,
				  "id: expected [A-Za-z0-9][A-Za-z0-9_.-]*, at most 64");
		goto bad;
	}
	if (q->checkpoint[0] || q->parent_checkpoint[0]) {
		ttrpc_reply_error(call, TTRPC_UNIMPLEMENTED, "checkpoints are not supported");
		goto bad;
	}
	if (create_config(d, q, call, &config))
		goto bad;
	op = calloc(1, sizeof(*op));
	if (!op) {
		ttrpc_reply_error(call, TTRPC_INTERNAL, "out of memory");
		cJSON_Delete(config);
		goto bad;
	}
	op->call = call;
	op->req = q;
	op->config = config;
	op->spec = read_spec(q->bundle, err, sizeof(err));
	if (!op->spec) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION, "%s", err);
		create_op_free_unanswered(op);
		goto bad;
	}
	if (task_new(&d->task, q->id, q->bundle)) {
		d->task = NULL;
		ttrpc_reply_error(call, TTRPC_INTERNAL, "out of memory");
		create_op_free_unanswered(op);
		goto bad;
	}
	d->creating = true;
	rootfs = path_join(q->bundle, "rootfs");
	if (!rootfs) {
		create_fail(d, op, TTRPC_INTERNAL, "out of memory");
		return;
	}
	if (q->n_rootfs) {
		ret = task_mount_rootfs(q->rootfs, q->n_rootfs, rootfs, err);
		if (ret) {
			free(rootfs);
			create_fail(d, op, TTRPC_FAILED_PRECONDITION, "%s", err);
			return;
		}
		d->rootfs_mounted = true;
	}
	pr_info(TAG, "create %s: bundle %s, %zu rootfs mount(s)", q->id, q->bundle, q->n_rootfs);
	task_ctl_call(d, "vm.create", vm_params(op->config, rootfs), on_vm_created, op);
	free(rootfs);
	return;
bad:
	protobuf_c_message_free_unpacked(&q->base, NULL);
}

/* ---- Start -------------------------------------------------------------------------- */

static void on_started(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg)
{
	struct ttrpc_call *call = arg;
	Uvm__Ctrd__StartResponse resp = UVM__CTRD__START_RESPONSE__INIT;
	Uvm__Ctrd__TaskStart ev = UVM__CTRD__TASK_START__INIT;
	struct task_proc *init;

	if (!d->task) {
		ttrpc_reply_error(call, TTRPC_NOT_FOUND, "the task is gone");
		return;
	}
	if (!r) {
		ttrpc_reply_error(call, task_ctl_code(code), "container.start: %s", msg);
		return;
	}
	init = task_init_proc(d->task);
	/* An init that already ended (its exit came first) stays STOPPED. */
	task_proc_started(init, init->pid);
	resp.pid = init->pid;
	ttrpc_reply(call, &resp.base);
	ev.container_id = d->task->id;
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
	cJSON *params;

	if (!q)
		return;
	if (task_wrong_id(d, call, q->id))
		goto out;
	p = task_find(d->task, q->exec_id);
	if (!p) {
		ttrpc_reply_error(call, TTRPC_NOT_FOUND, "exec %.80s not found", q->exec_id);
	} else if (d->creating || p->status != TASK_CREATED) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION,
				  "%.80s is not in the created state",
				  q->exec_id[0] ? q->exec_id : q->id);
	} else if (p != task_init_proc(d->task)) {
		if (!task_refuse_paused(d, call, "Start of an exec"))
			task_start_exec(d, call, p);
	} else {
		params = cJSON_CreateObject();
		cJSON_AddStringToObject(params, "id", d->task->id);
		task_ctl_call(d, "container.start", params, on_started, call);
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

	if (!q)
		return;
	if (task_wrong_id(d, call, q->id))
		goto out;
	p = task_find(d->task, q->exec_id);
	if (!p) {
		ttrpc_reply_error(call, TTRPC_NOT_FOUND, "exec %.80s not found", q->exec_id);
		goto out;
	}
	r.id = d->task->id;
	r.bundle = d->task->bundle;
	r.pid = p->pid;
	r.status = (Uvm__Ctrd__TaskStatus)task_shown_status(d->task, p);
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

static void on_share_removed(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg)
{
	struct ttrpc_call *call = arg;
	Uvm__Ctrd__TaskDelete ev = UVM__CTRD__TASK_DELETE__INIT;
	Uvm__Ctrd__Timestamp ts = UVM__CTRD__TIMESTAMP__INIT;
	struct task_proc *init = task_init_proc(d->task);

	if (!r)
		pr_warn(TAG, "plan9.remove of the rootfs: %s", msg);
	/* containerd unmounts the rootfs after this answer: our mounts must be off it by then. */
	task_cleanup_host(d);
	d->task->deleted = true;
	reply_deleted(call, init);
	ev.container_id = d->task->id;
	ev.pid = init->pid;
	ev.exit_status = init->exit_status;
	task_timestamp(&ts, &init->exited_at);
	ev.exited_at = &ts;
	ev.id = d->task->id;
	task_publish(&d->ev, "/tasks/delete", "TaskDelete", &ev.base);
}

static void on_ctr_deleted(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg)
{
	cJSON *p = cJSON_CreateObject();

	if (!r)
		pr_warn(TAG, "container.delete: %s", msg);
	cJSON_AddStringToObject(p, "name", TASK_ROOTFS_SHARE);
	task_ctl_call(d, "plan9.remove", p, on_share_removed, arg);
}

static void m_delete(void *opaque, struct ttrpc_call *call)
{
	struct taskd *d = opaque;
	Uvm__Ctrd__TaskIdRequest *q =
	    UNPACK(call, Uvm__Ctrd__TaskIdRequest, uvm__ctrd__task_id_request__descriptor);
	struct task_proc *p;
	cJSON *params;
	int ret;

	if (!q)
		return;
	if (task_wrong_id(d, call, q->id))
		goto out;
	if (q->exec_id[0]) {
		p = task_find(d->task, q->exec_id);
		if (!p) {
			ttrpc_reply_error(call, TTRPC_NOT_FOUND, "exec %.80s not found",
					  q->exec_id);
			goto out;
		}
		if (p->status == TASK_RUNNING) {
			ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION, "exec %.80s is %s",
					  q->exec_id, d->task->paused ? "paused" : "running");
			goto out;
		}
		reply_deleted(call, p);
		ret = task_remove_exec(d->task, q->exec_id);
		if (ret)
			pr_warn(TAG, "delete exec %s: %s", q->exec_id, strerror(-ret));
		goto out;
	}
	if (d->creating || d->task->deleted || !task_init_deletable(d->task)) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION, "task %.80s is %s", q->id,
				  d->task->deleted  ? "deleted"
				  : d->task->paused ? "paused"
						    : "running");
		goto out;
	}
	params = cJSON_CreateObject();
	cJSON_AddStringToObject(params, "id", d->task->id);
	cJSON_AddBoolToObject(params, "force", true);
	task_ctl_call(d, "container.delete", params, on_ctr_deleted, call);
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

	if (!q)
		return;
	if (!task_wrong_id(d, call, q->id)) {
		r.shim_pid = getpid();
		r.task_pid = task_init_proc(d->task)->pid;
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
	/* A task not deleted yet keeps the shim, unless containerd says now. */
	keep = (d->task && !d->task->deleted) || d->creating;
	if (q->now)
		keep = false;
	protobuf_c_message_free_unpacked(&q->base, NULL);
	ttrpc_reply(call, NULL);
	if (!keep)
		task_exit(d);
}

const struct ttrpc_method task_methods[] = {
    {TASK_SERVICE, "Create", m_create},
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
