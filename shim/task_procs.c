/*
 * The Task service's process calls (Exec, Kill, Wait, Pids, Stats,
 * ResizePty, CloseIO) and the exits that end Waits and become TaskExit
 * events, over the control protocol's container.* and process.* methods.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shim/proto/cgroups.pb-c.h"
#include "shim/proto/events.pb-c.h"
#include "shim/proto/task.pb-c.h"
#include "shim/task_priv.h"
#include "vmm/log.h"

#define TAG "task"

#define UNPACK(call, type, desc) ((type *)ttrpc_call_unpack(call, &desc))

/* The exit status when the VM itself went away under a process. */
#define TASK_EXIT_VM_GONE 255

/* ---- exits -------------------------------------------------------------------------- */

void task_answer_waiters(struct task_proc *p)
{
	struct ttrpc_call *w = task_take_waiters(p), *next;
	Uvm__Ctrd__WaitResponse r = UVM__CTRD__WAIT_RESPONSE__INIT;
	Uvm__Ctrd__Timestamp ts = UVM__CTRD__TIMESTAMP__INIT;

	r.exit_status = p->exit_status;
	task_timestamp(&ts, &p->exited_at);
	r.exited_at = &ts;
	for (; w; w = next) {
		next = w->next;
		ttrpc_reply(w, &r.base);
	}
}

void task_proc_ended(struct taskd *d, struct task *t, struct task_proc *p, uint32_t status)
{
	Uvm__Ctrd__TaskExit ev = UVM__CTRD__TASK_EXIT__INIT;
	Uvm__Ctrd__Timestamp ts = UVM__CTRD__TIMESTAMP__INIT;

	if (task_proc_exited(p, status))
		return;
	pr_info(TAG, "%s%s%s (pid %u) exited: %u", t->id, p->exec_id[0] ? "/" : "", p->exec_id,
		p->pid, status);
	ev.container_id = t->id;
	ev.id = p->exec_id[0] ? p->exec_id : t->id;
	ev.pid = p->pid;
	ev.exit_status = status;
	task_timestamp(&ts, &p->exited_at);
	ev.exited_at = &ts;
	task_publish(&d->ev, "/tasks/exit", "TaskExit", &ev.base);
	task_answer_waiters(p);
}

static int num(const cJSON *o, const char *key, double *out)
{
	const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;

	if (!cJSON_IsNumber(v))
		return -1;
	*out = v->valuedouble;
	return 0;
}

void task_on_event(struct taskd *d, const char *name, const cJSON *params)
{
	const cJSON *id = params ? cJSON_GetObjectItemCaseSensitive(params, "id") : NULL;
	struct task *t = cJSON_IsString(id) ? task_by_id(d, id->valuestring) : NULL;
	double pid, code;

	if (!strcmp(name, "container.exited")) {
		if (t && !num(params, "exit_code", &code))
			task_proc_ended(d, t, task_init_proc(t), (uint32_t)code);
	} else if (!strcmp(name, "process.exited")) {
		struct task_proc *p = NULL;

		if (num(params, "pid", &pid) || num(params, "exit_code", &code))
			return;
		/* Guest pids are unique across the VM's containers. */
		for (t = d->tasks; t; t = t->next)
			if ((p = task_find_pid(t, (uint32_t)pid)))
				break;
		/* The init's end is container.exited's (it comes with the OOM verdict). */
		if (p && p != task_init_proc(t))
			task_proc_ended(d, t, p, (uint32_t)code);
	} else if (!strcmp(name, "container.oom")) {
		Uvm__Ctrd__TaskOOM ev = UVM__CTRD__TASK_OOM__INIT;

		if (!t)
			return;
		ev.container_id = t->id;
		task_publish(&d->ev, "/tasks/oom", "TaskOOM", &ev.base);
	} else if (!strcmp(name, "vm.exited")) {
		d->vm_gone = true;
		for (t = d->tasks; t; t = t->next) {
			t->paused = false; /* nothing left to resume */
			for (struct task_proc *p = t->procs; p; p = p->next)
				if (p->status != TASK_STOPPED && (p->pid || p == task_init_proc(t)))
					task_proc_ended(d, t, p, TASK_EXIT_VM_GONE);
		}
	}
}

/* ---- Exec --------------------------------------------------------------------------- */

static int exec_errno_code(int err)
{
	switch (err) {
	case -EEXIST:
		return TTRPC_ALREADY_EXISTS;
	case -EPERM:
		return TTRPC_FAILED_PRECONDITION;
	case -ENOSPC:
		return TTRPC_RESOURCE_EXHAUSTED;
	case -EINVAL:
		return TTRPC_INVALID_ARGUMENT;
	default:
		return TTRPC_INTERNAL;
	}
}

void task_exec(void *opaque, struct ttrpc_call *call)
{
	struct taskd *d = opaque;
	Uvm__Ctrd__ExecProcessRequest *q = UNPACK(call, Uvm__Ctrd__ExecProcessRequest,
						  uvm__ctrd__exec_process_request__descriptor);
	Uvm__Ctrd__TaskExecAdded ev = UVM__CTRD__TASK_EXEC_ADDED__INIT;
	cJSON *spec = NULL;
	char *text = NULL;
	struct task *t;
	int ret;

	if (!q)
		return;
	/* runc's shim refuses an exec into a paused task at Exec too: no record is left. */
	t = task_named(d, call, q->id);
	if (!t || task_refuse_paused(t, call, "Exec"))
		goto out;
	if (q->spec)
		spec = cJSON_ParseWithLength((const char *)q->spec->value.data, q->spec->value.len);
	if (!cJSON_IsObject(spec) || !(text = cJSON_PrintUnformatted(spec))) {
		ttrpc_reply_error(call, TTRPC_INVALID_ARGUMENT,
				  "spec: expected an OCI process as JSON");
		goto out;
	}
	ret = task_add_exec(t, q->exec_id, text, q->terminal, q->stdin, q->stdout, q->stderr, NULL);
	if (ret) {
		ttrpc_reply_error(call, exec_errno_code(ret), "exec %.80s: %s", q->exec_id,
				  ret == -EPERM	   ? "the task is not running"
				  : ret == -EEXIST ? "the id is taken"
						   : strerror(-ret));
		goto out;
	}
	ttrpc_reply(call, NULL);
	ev.container_id = q->id;
	ev.exec_id = q->exec_id;
	task_publish(&d->ev, "/tasks/exec-added", "TaskExecAdded", &ev.base);
out:
	cJSON_Delete(spec);
	free(text);
	protobuf_c_message_free_unpacked(&q->base, NULL);
}

struct exec_op {
	struct ttrpc_call *call;
	uint64_t serial; /* the task's */
	char *exec_id;
};

static void on_exec_started(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg)
{
	struct exec_op *op = arg;
	Uvm__Ctrd__StartResponse resp = UVM__CTRD__START_RESPONSE__INIT;
	Uvm__Ctrd__TaskExecStarted ev = UVM__CTRD__TASK_EXEC_STARTED__INIT;
	struct task *t = task_by_serial(d, op->serial);
	struct task_proc *p = t ? task_find(t, op->exec_id) : NULL;
	double pid;

	if (!r || num(r, "pid", &pid)) {
		ttrpc_reply_error(op->call, r ? TTRPC_INTERNAL : task_ctl_code(code),
				  "container.exec: %s", msg ? msg : "no pid");
	} else if (!p || task_proc_started(p, (uint32_t)pid)) {
		ttrpc_reply_error(op->call, TTRPC_NOT_FOUND, "exec %.80s went away", op->exec_id);
	} else {
		resp.pid = p->pid;
		ttrpc_reply(op->call, &resp.base);
		ev.container_id = t->id;
		ev.exec_id = p->exec_id;
		ev.pid = p->pid;
		task_publish(&d->ev, "/tasks/exec-started", "TaskExecStarted", &ev.base);
	}
	free(op->exec_id);
	free(op);
}

static void add_path(cJSON *o, const char *key, const char *path)
{
	if (path && path[0])
		cJSON_AddStringToObject(o, key, path);
}

void task_start_exec(struct taskd *d, struct ttrpc_call *call, struct task *t, struct task_proc *p)
{
	struct exec_op *op = calloc(1, sizeof(*op));
	cJSON *params = cJSON_CreateObject(), *proc = p->spec ? cJSON_Parse(p->spec) : NULL;

	if (!op || !params || !proc || !(op->exec_id = strdup(p->exec_id))) {
		ttrpc_reply_error(call, TTRPC_INTERNAL, "out of memory");
		cJSON_Delete(params);
		cJSON_Delete(proc);
		free(op);
		return;
	}
	op->call = call;
	op->serial = t->serial;
	cJSON_DeleteItemFromObjectCaseSensitive(proc, "terminal");
	cJSON_AddBoolToObject(proc, "terminal", p->terminal);
	cJSON_AddStringToObject(params, "id", t->id);
	cJSON_AddItemToObject(params, "process", proc);
	add_path(params, "stdin", p->stdin_path);
	add_path(params, "stdout", p->stdout_path);
	if (!p->terminal)
		add_path(params, "stderr", p->stderr_path);
	task_ctl_call(d, "container.exec", params, on_exec_started, op);
}

/* ---- Kill, Wait, ResizePty, CloseIO ------------------------------------------------- */

void task_reply_plain(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg)
{
	struct ttrpc_call *call = arg;

	if (r)
		ttrpc_reply(call, NULL);
	else
		ttrpc_reply_error(call, task_ctl_code(code), "%s", msg);
}

/* The process a call names and its task into *t, or NULL (answered). */
static struct task_proc *named_proc(struct taskd *d, struct ttrpc_call *call, const char *id,
				    const char *exec_id, struct task **t)
{
	struct task_proc *p;

	*t = task_named(d, call, id);
	if (!*t)
		return NULL;
	p = task_find(*t, exec_id);
	if (!p)
		ttrpc_reply_error(call, TTRPC_NOT_FOUND, "exec %.80s not found", exec_id);
	return p;
}

void task_kill(void *opaque, struct ttrpc_call *call)
{
	struct taskd *d = opaque;
	Uvm__Ctrd__KillRequest *q =
	    UNPACK(call, Uvm__Ctrd__KillRequest, uvm__ctrd__kill_request__descriptor);
	struct task_proc *p;
	struct task *t;
	cJSON *params;

	if (!q)
		return;
	p = named_proc(d, call, q->id, q->exec_id, &t);
	if (!p)
		goto out;
	if (q->signal < 1 || q->signal > 64) {
		ttrpc_reply_error(call, TTRPC_INVALID_ARGUMENT, "signal: expected 1..64");
	} else if (p->status == TASK_STOPPED) {
		ttrpc_reply_error(call, TTRPC_NOT_FOUND, "process already finished");
	} else if (!p->pid || t->creating) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION, "process not started");
	} else if (!task_refuse_paused(t, call, "Kill")) {
		params = cJSON_CreateObject();
		cJSON_AddNumberToObject(params, "signal", q->signal);
		if (p == task_init_proc(t)) {
			cJSON_AddStringToObject(params, "id", t->id);
			if (q->all)
				cJSON_AddBoolToObject(params, "all", true);
			task_ctl_call(d, "container.signal", params, task_reply_plain, call);
		} else {
			cJSON_AddNumberToObject(params, "pid", p->pid);
			task_ctl_call(d, "process.signal", params, task_reply_plain, call);
		}
	}
out:
	protobuf_c_message_free_unpacked(&q->base, NULL);
}

void task_wait(void *opaque, struct ttrpc_call *call)
{
	struct taskd *d = opaque;
	Uvm__Ctrd__TaskIdRequest *q =
	    UNPACK(call, Uvm__Ctrd__TaskIdRequest, uvm__ctrd__task_id_request__descriptor);
	struct task_proc *p;
	struct task *t;

	if (!q)
		return;
	p = named_proc(d, call, q->id, q->exec_id, &t);
	if (p) {
		task_add_waiter(p, call);
		if (p->status == TASK_STOPPED)
			task_answer_waiters(p);
	}
	protobuf_c_message_free_unpacked(&q->base, NULL);
}

void task_resize_pty(void *opaque, struct ttrpc_call *call)
{
	struct taskd *d = opaque;
	Uvm__Ctrd__ResizePtyRequest *q =
	    UNPACK(call, Uvm__Ctrd__ResizePtyRequest, uvm__ctrd__resize_pty_request__descriptor);
	struct task_proc *p;
	struct task *t;
	cJSON *params;

	if (!q)
		return;
	p = named_proc(d, call, q->id, q->exec_id, &t);
	if (!p)
		goto out;
	if (!p->pid || p->status == TASK_STOPPED || !p->terminal) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION, "no live terminal to resize");
	} else if (task_refuse_paused(t, call, "ResizePty")) {
		/* answered */
	} else if (!q->width || !q->height) {
		/* ctr sends its terminal's size, 0x0 for a pty nobody sized: nothing to apply. */
		ttrpc_reply(call, NULL);
	} else if (q->width > 65535 || q->height > 65535) {
		ttrpc_reply_error(call, TTRPC_INVALID_ARGUMENT, "width, height: expected 1..65535");
	} else {
		params = cJSON_CreateObject();
		cJSON_AddNumberToObject(params, "pid", p->pid);
		cJSON_AddNumberToObject(params, "rows", q->height);
		cJSON_AddNumberToObject(params, "cols", q->width);
		task_ctl_call(d, "process.resize", params, task_reply_plain, call);
	}
out:
	protobuf_c_message_free_unpacked(&q->base, NULL);
}

/* The relay reads the stdin FIFO to its EOF, which containerd's close brings: nothing to do. */
void task_close_io(void *opaque, struct ttrpc_call *call)
{
	struct taskd *d = opaque;
	Uvm__Ctrd__CloseIORequest *q =
	    UNPACK(call, Uvm__Ctrd__CloseIORequest, uvm__ctrd__close_iorequest__descriptor);
	struct task *t;

	if (!q)
		return;
	if (named_proc(d, call, q->id, q->exec_id, &t))
		ttrpc_reply(call, NULL);
	protobuf_c_message_free_unpacked(&q->base, NULL);
}

/* ---- Pids, Stats -------------------------------------------------------------------- */

void task_pids(void *opaque, struct ttrpc_call *call)
{
	struct taskd *d = opaque;
	Uvm__Ctrd__TaskIdRequest *q =
	    UNPACK(call, Uvm__Ctrd__TaskIdRequest, uvm__ctrd__task_id_request__descriptor);
	Uvm__Ctrd__PidsResponse r = UVM__CTRD__PIDS_RESPONSE__INIT;
	Uvm__Ctrd__ProcessInfo infos[1 + TASK_MAX_EXECS], *ptrs[1 + TASK_MAX_EXECS];
	size_t n = 0;
	struct task *t;

	if (!q)
		return;
	t = task_named(d, call, q->id);
	if (t) {
		for (struct task_proc *p = t->procs; p && n < 1 + TASK_MAX_EXECS; p = p->next)
			if (p->pid && p->status == TASK_RUNNING) {
				uvm__ctrd__process_info__init(&infos[n]);
				infos[n].pid = p->pid;
				ptrs[n] = &infos[n];
				n++;
			}
		r.n_processes = n;
		r.processes = ptrs;
		ttrpc_reply(call, &r.base);
	}
	protobuf_c_message_free_unpacked(&q->base, NULL);
}

/* A figure of container.stats: -1 (no limit) and -2 (unknown) become 0. */
static uint64_t figure(const cJSON *r, const char *group, const char *key)
{
	const cJSON *g = cJSON_GetObjectItemCaseSensitive(r, group);
	double v;

	return cJSON_IsObject(g) && !num(g, key, &v) && v > 0 ? (uint64_t)v : 0;
}

static void on_stats(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg)
{
	struct ttrpc_call *call = arg;
	Uvm__Ctrd__CgroupMetrics m = UVM__CTRD__CGROUP_METRICS__INIT;
	Uvm__Ctrd__CgroupPids pids = UVM__CTRD__CGROUP_PIDS__INIT;
	Uvm__Ctrd__CgroupCpu cpu = UVM__CTRD__CGROUP_CPU__INIT;
	Uvm__Ctrd__CgroupMemory mem = UVM__CTRD__CGROUP_MEMORY__INIT;
	Uvm__Ctrd__StatsResponse resp = UVM__CTRD__STATS_RESPONSE__INIT;
	Uvm__Ctrd__Any any = UVM__CTRD__ANY__INIT;
	uint8_t buf[256];

	if (!r) {
		ttrpc_reply_error(call, task_ctl_code(code), "container.stats: %s", msg);
		return;
	}
	pids.current = figure(r, "pids", "current");
	pids.limit = figure(r, "pids", "max");
	cpu.usage_usec = figure(r, "cpu", "usage_usec");
	cpu.user_usec = figure(r, "cpu", "user_usec");
	cpu.system_usec = figure(r, "cpu", "system_usec");
	mem.usage = figure(r, "memory", "current");
	mem.usage_limit = figure(r, "memory", "max");
	m.pids = &pids;
	m.cpu = &cpu;
	m.memory = &mem;
	any.type_url = "io.containerd.cgroups.v2.Metrics";
	any.value.len = uvm__ctrd__cgroup_metrics__pack(&m, buf);
	any.value.data = buf;
	resp.stats = &any;
	ttrpc_reply(call, &resp.base);
}

void task_stats(void *opaque, struct ttrpc_call *call)
{
	struct taskd *d = opaque;
	Uvm__Ctrd__TaskIdRequest *q =
	    UNPACK(call, Uvm__Ctrd__TaskIdRequest, uvm__ctrd__task_id_request__descriptor);
	struct task *t;
	cJSON *params;

	if (!q)
		return;
	t = task_named(d, call, q->id);
	if (t) {
		if (t->creating || !task_init_proc(t)->pid) {
			ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION, "task not created yet");
		} else if (!task_refuse_paused(t, call, "Stats")) {
			params = cJSON_CreateObject();
			cJSON_AddStringToObject(params, "id", t->id);
			task_ctl_call(d, "container.stats", params, on_stats, call);
		}
	}
	protobuf_c_message_free_unpacked(&q->base, NULL);
}
