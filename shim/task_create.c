/*
 * Create: the bundle's config.json read, then either the VM made for the
 * first task (its rootfs/ mounted on the host and shared over 9p at
 * vm.create, the VM started, the container created on that share) or a pod's
 * container joining the running VM (task_pod.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim/container.h"
#include "shim/mounter.h"
#include "shim/proto/events.pb-c.h"
#include "shim/proto/task.pb-c.h"
#include "shim/task_mount.h"
#include "shim/task_options.h"
#include "shim/task_priv.h"
#include "vmm/host_open.h"
#include "vmm/log.h"

#define TAG "task"

/* A config.json larger than this is refused. */
#define TASK_SPEC_MAX (1u << 20)

#define UNPACK(call, type, desc) ((type *)ttrpc_call_unpack(call, &desc))

/* A new task at the end of the list, CREATED and creating; NULL: out of memory. */
static struct task *task_add(struct taskd *d, const char *id, const char *bundle)
{
	struct task *t, **pp = &d->tasks;

	if (task_new(&t, id, bundle))
		return NULL;
	t->serial = ++d->next_serial;
	t->creating = true;
	while (*pp)
		pp = &(*pp)->next;
	*pp = t;
	return t;
}

static char *path_join(const char *a, const char *b)
{
	char *p;

	return asprintf(&p, "%s/%s", a, b) < 0 ? NULL : p;
}

/* Through the opener once the sandbox is on: a pod's container's Create comes after. */
char *task_read_spec(const char *bundle, char *err, size_t errlen)
{
	char *path = path_join(bundle, "config.json"), *buf = NULL;
	struct stat st;
	ssize_t n;
	int fd = path ? host_open(path, O_RDONLY | O_NOFOLLOW, 0) : -1;

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

void task_create_fail(struct taskd *d, struct create_op *op, int code, const char *fmt, ...)
{
	struct task *t = task_by_serial(d, op->serial);
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pr_err(TAG, "create %s: %s", op->req->id, msg);
	ttrpc_reply_error(op->call, code, "%s", msg);
	if (!op->joins) {
		/* The VM cannot be created twice: what is left is Shutdown. */
		if (d->vm_up)
			task_ctl_call(d, "vm.terminate", NULL, NULL, NULL);
		d->vm_creating = false;
	} else if (t && t->share && op->share_added) {
		cJSON *p = cJSON_CreateObject();

		cJSON_AddStringToObject(p, "name", t->share);
		task_ctl_call(d, "plan9.remove", p, NULL, NULL);
	}
	if (t) {
		task_cleanup_host(d, t);
		task_forget(d, t);
	}
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
	struct task *t = task_by_serial(d, op->serial);
	struct task_proc *init;

	if (!r || !cJSON_IsNumber(pid) || !t) {
		task_create_fail(d, op, code ? task_ctl_code(code) : TTRPC_INTERNAL,
				 "container.create: %s",
				 msg ? msg
				 : t ? "no pid"
				     : "the task is gone");
		return;
	}
	init = task_init_proc(t);
	init->pid = (uint32_t)pid->valuedouble;
	init->terminal = q->terminal;
	free(init->stdin_path);
	free(init->stdout_path);
	free(init->stderr_path);
	init->stdin_path = strdup(q->stdin ? q->stdin : "");
	init->stdout_path = strdup(q->stdout ? q->stdout : "");
	init->stderr_path = strdup(q->stderr ? q->stderr : "");
	t->creating = false;
	if (!op->joins)
		d->vm_creating = false;
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

void task_create_container(struct taskd *d, struct create_op *op, const char *share)
{
	cJSON *p = cJSON_CreateObject(), *root;

	cJSON_AddStringToObject(p, "id", op->req->id);
	cJSON_AddStringToObject(p, "spec", op->spec);
	root = cJSON_AddObjectToObject(p, "root");
	cJSON_AddStringToObject(root, "plan9", share);
	add_path(p, "stdin", op->req->stdin);
	add_path(p, "stdout", op->req->stdout);
	if (!op->req->terminal)
		add_path(p, "stderr", op->req->stderr);
	task_ctl_call(d, "container.create", p, on_ctr_created, op);
}

static void on_vm_started(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg)
{
	struct create_op *op = arg;

	if (!r) {
		task_create_fail(d, op, task_ctl_code(code), "vm.start: %s", msg);
		return;
	}
	task_create_container(d, op, TASK_ROOTFS_SHARE);
}

static void on_vm_created(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg)
{
	struct create_op *op = arg;
	const cJSON *t =
	    op->config ? cJSON_GetObjectItemCaseSensitive(op->config, "start_timeout_ms") : NULL;
	cJSON *p = cJSON_CreateObject();

	if (!r) {
		cJSON_Delete(p);
		task_create_fail(d, op, task_ctl_code(code), "vm.create: %s", msg);
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

/*
 * Whether a Create may go on: a new id, and either the first task (it makes
 * the VM) or a container of the pod whose sandbox made it (task_pod.c). 0, or
 * -1 once the call is answered.
 */
static int create_admit(struct taskd *d, struct ttrpc_call *call,
			const Uvm__Ctrd__CreateTaskRequest *q, const char *spec, bool *joins)
{
	char err[256];

	if (task_by_id(d, q->id)) {
		ttrpc_reply_error(call, TTRPC_ALREADY_EXISTS, "task %.80s already exists", q->id);
		return -1;
	}
	*joins = d->vm_up || d->vm_creating;
	if (*joins && task_pod_admit(d, spec, err, sizeof(err))) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION, "%s", err);
		return -1;
	}
	return 0;
}

/* The first task: its rootfs mounted on the host, shared at vm.create, the VM booted. */
static void create_vm(struct taskd *d, struct create_op *op, struct task *t)
{
	Uvm__Ctrd__CreateTaskRequest *q = op->req;
	char err[TASK_MOUNT_ERRLEN], *rootfs = path_join(q->bundle, "rootfs");
	int ret;

	d->vm_creating = true;
	free(d->sandbox_id);
	d->sandbox_id = strdup(q->id);
	t->share = strdup(TASK_ROOTFS_SHARE);
	if (!rootfs || !d->sandbox_id || !t->share) {
		free(rootfs);
		task_create_fail(d, op, TTRPC_INTERNAL, "out of memory");
		return;
	}
	if (q->n_rootfs) {
		/* Trusted still (the VM has not run): where the pod's snapshots are. */
		if (mounter_running())
			mounter_set_roots(q->rootfs, q->n_rootfs);
		ret = task_mount_rootfs(q->rootfs, q->n_rootfs, rootfs, err);
		if (ret) {
			free(rootfs);
			task_create_fail(d, op, TTRPC_FAILED_PRECONDITION, "%s", err);
			return;
		}
		t->rootfs_mounted = true;
	}
	pr_info(TAG, "create %s: bundle %s, %zu rootfs mount(s)", q->id, q->bundle, q->n_rootfs);
	task_ctl_call(d, "vm.create", vm_params(op->config, rootfs), on_vm_created, op);
	free(rootfs);
}

void task_create(void *opaque, struct ttrpc_call *call)
{
	struct taskd *d = opaque;
	struct create_op *op;
	char err[TASK_MOUNT_ERRLEN];
	cJSON *config;
	struct task *t;
	Uvm__Ctrd__CreateTaskRequest *q =
	    UNPACK(call, Uvm__Ctrd__CreateTaskRequest, uvm__ctrd__create_task_request__descriptor);
	bool joins;
	char *spec;

	if (!q)
		return;
	if (!container_id_valid(q->id)) {
		ttrpc_reply_error(call, TTRPC_INVALID_ARGUMENT,
				  "id: expected [A-Za-z0-9][A-Za-z0-9_.-]*, at most 64");
		goto bad;
	}
	if (q->checkpoint[0] || q->parent_checkpoint[0]) {
		ttrpc_reply_error(call, TTRPC_UNIMPLEMENTED, "checkpoints are not supported");
		goto bad;
	}
	spec = task_read_spec(q->bundle, err, sizeof(err));
	if (!spec) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION, "%s", err);
		goto bad;
	}
	if (create_admit(d, call, q, spec, &joins) ||
	    (!joins && create_config(d, q, call, &config))) {
		free(spec);
		goto bad;
	}
	op = calloc(1, sizeof(*op));
	if (!op) {
		ttrpc_reply_error(call, TTRPC_INTERNAL, "out of memory");
		free(spec);
		if (!joins)
			cJSON_Delete(config);
		goto bad;
	}
	op->call = call;
	op->req = q;
	op->spec = spec;
	op->joins = joins;
	op->config = joins ? NULL : config;
	t = task_add(d, q->id, q->bundle);
	if (!t) {
		ttrpc_reply_error(call, TTRPC_INTERNAL, "out of memory");
		create_op_free_unanswered(op);
		goto bad;
	}
	op->serial = t->serial;
	if (joins)
		task_pod_join(d, op, t);
	else
		create_vm(d, op, t);
	return;
bad:
	protobuf_c_message_free_unpacked(&q->base, NULL);
}
