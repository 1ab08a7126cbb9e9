/*
 * Pause and Resume of the task: the whole VM stops (vm.pause parks every
 * vCPU) and goes on (vm.resume), with containerd's TaskPaused and
 * TaskResumed events. One task per VM, so pausing the task is pausing the VM.
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

bool task_refuse_paused(struct taskd *d, struct ttrpc_call *call, const char *what)
{
	if (!d->task || !d->task->paused)
		return false;
	ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION,
			  "task %.80s is paused: %s needs it running (Resume it first)",
			  d->task->id, what);
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
	if (task_wrong_id(d, call, q->id))
		goto out;
	init = task_init_proc(d->task);
	if (d->pause_busy) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION,
				  "task %.80s: a pause or resume is under way", q->id);
	} else if (resume && !d->task->paused) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION, "task %.80s is not paused",
				  q->id);
	} else if (!resume && d->task->paused) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION, "task %.80s is already paused",
				  q->id);
	} else if (!resume && (d->creating || init->status != TASK_RUNNING)) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION,
				  "task %.80s is %s: only a running task can be paused", q->id,
				  init->status == TASK_STOPPED ? "stopped" : "not started");
	} else {
		t = d->task;
	}
out:
	protobuf_c_message_free_unpacked(&q->base, NULL);
	return t;
}

static void on_vm_paused(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg,
			 bool resume)
{
	struct ttrpc_call *call = arg;
	Uvm__Ctrd__TaskPaused paused = UVM__CTRD__TASK_PAUSED__INIT;
	Uvm__Ctrd__TaskResumed resumed = UVM__CTRD__TASK_RESUMED__INIT;

	d->pause_busy = false;
	if (!d->task) {
		ttrpc_reply_error(call, TTRPC_NOT_FOUND, "the task is gone");
		return;
	}
	if (!r) {
		ttrpc_reply_error(call, task_ctl_code(code), "%s: %s",
				  resume ? "vm.resume" : "vm.pause", msg);
		return;
	}
	d->task->paused = !resume;
	pr_info(TAG, "%s %s", d->task->id, resume ? "resumed" : "paused");
	ttrpc_reply(call, NULL);
	if (resume) {
		resumed.container_id = d->task->id;
		task_publish(&d->ev, "/tasks/resumed", "TaskResumed", &resumed.base);
	} else {
		paused.container_id = d->task->id;
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
	if (!pause_target(d, call, resume))
		return;
	d->pause_busy = true;
	task_ctl_call(d, resume ? "vm.resume" : "vm.pause", NULL, resume ? on_resumed : on_paused,
		      call);
}

void task_pause(void *opaque, struct ttrpc_call *call)
{
	pause_or_resume(opaque, call, false);
}

void task_resume(void *opaque, struct ttrpc_call *call)
{
	pause_or_resume(opaque, call, true);
}
