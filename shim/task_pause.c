/*
 * Pause and Resume of the task: the whole VM stops (vm.pause parks every
 * vCPU) and goes on (vm.resume), with containerd's TaskPaused and
 * TaskResumed events. The VM is the task's, or its pod's: a pod pauses
 * through its sandbox, and every task in the VM shows PAUSED.
 *
 * While paused the guest cannot answer: calls that need it (Kill, Exec,
 * Start of an exec, ResizePty, Stats, Update) are refused with FAILED_PRECONDITION
 * naming the pause (docs/containerd.md says how this differs from runc).
 */
#include <string.h>

#include "shim/proto/events.pb-c.h"
#include "shim/proto/task.pb-c.h"
#include "shim/task_priv.h"
#include "vmm/log.h"

#define TAG "task"

#define UNPACK(call, type, desc) ((type *)ttrpc_call_unpack(call, &desc))

bool task_refuse_paused(struct task *t, struct ttrpc_call *call, const char *what)
{
	if (!t->paused)
		return false;
	ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION,
			  "task %.80s is paused: %s needs it running (Resume it first)", t->id,
			  what);
	return true;
}

/* The task named by a Pause/Resume request, or NULL (answered). */
static struct task *pause_target(struct taskd *d, struct ttrpc_call *call, bool resume)
{
	Uvm__Ctrd__TaskIdRequest *q =
	    UNPACK(call, Uvm__Ctrd__TaskIdRequest, uvm__ctrd__task_id_request__descriptor);
	struct task *t = NULL;
	struct task_proc *init;

	if (!q)
		return NULL;
	t = task_named(d, call, q->id);
	if (!t)
		goto out;
	init = task_init_proc(t);
	if (t != d->tasks) {
		/* Not the VM's first task: a container that joined a pod. */
		ttrpc_reply_error(call, TTRPC_UNIMPLEMENTED,
				  "task %.80s is a container of pod %.80s: %s applies to the whole "
				  "VM, through the pod's sandbox",
				  q->id, d->tasks->id, resume ? "Resume" : "Pause");
	} else if (d->pause_busy) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION,
				  "task %.80s: a pause or resume is under way", q->id);
	} else if (resume && !t->paused) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION, "task %.80s is not paused",
				  q->id);
	} else if (!resume && t->paused) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION, "task %.80s is already paused",
				  q->id);
	} else if (!resume && (t->creating || init->status != TASK_RUNNING)) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION,
				  "task %.80s is %s: only a running task can be paused", q->id,
				  init->status == TASK_STOPPED ? "stopped" : "not started");
	} else {
		goto out;
	}
	t = NULL;
out:
	protobuf_c_message_free_unpacked(&q->base, NULL);
	return t;
}

static void on_vm_paused(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg,
			 bool resume)
{
	Uvm__Ctrd__TaskPaused paused = UVM__CTRD__TASK_PAUSED__INIT;
	Uvm__Ctrd__TaskResumed resumed = UVM__CTRD__TASK_RESUMED__INIT;
	struct ttrpc_call *call;
	struct task *t = task_call_take(d, arg, &call);

	d->pause_busy = false;
	if (!t)
		return;
	if (!r) {
		ttrpc_reply_error(call, task_ctl_code(code), "%s: %s",
				  resume ? "vm.resume" : "vm.pause", msg);
		return;
	}
	for (struct task *o = d->tasks; o; o = o->next)
		o->paused = !resume;
	pr_info(TAG, "%s %s", t->id, resume ? "resumed" : "paused");
	ttrpc_reply(call, NULL);
	if (resume) {
		resumed.container_id = t->id;
		task_publish(&d->ev, "/tasks/resumed", "TaskResumed", &resumed.base);
	} else {
		paused.container_id = t->id;
		task_publish(&d->ev, "/tasks/paused", "TaskPaused", &paused.base);
	}
}

static void on_paused(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg)
{
	on_vm_paused(d, arg, r, code, msg, false);
}

static void on_resumed(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg)
{
	on_vm_paused(d, arg, r, code, msg, true);
}

static void pause_or_resume(struct taskd *d, struct ttrpc_call *call, bool resume)
{
	struct task *t = pause_target(d, call, resume);
	struct task_call *tc = t ? task_call_new(call, t) : NULL;

	if (!tc)
		return;
	d->pause_busy = true;
	task_ctl_call(d, resume ? "vm.resume" : "vm.pause", NULL, resume ? on_resumed : on_paused,
		      tc);
}

void task_pause(void *opaque, struct ttrpc_call *call)
{
	pause_or_resume(opaque, call, false);
}

void task_resume(void *opaque, struct ttrpc_call *call)
{
	pause_or_resume(opaque, call, true);
}
