/*
 * The containerd shim's daemon, inside: the state its files share. Not for
 * other modules (their door is shim/task.h).
 *
 *   task_main.c     `start` and `delete`, the daemon's loop and signals
 *   task_ctl.c      requests to the embedded control protocol and its answers/events
 *   task_service.c  the Task service: the daemon's tasks; Start, State, Delete, Connect, Shutdown
 *   task_create.c   Create: the VM for the first task, or a pod's container joining it
 *   task_pod.c      pods: the sandbox a container names, its root shared into the VM
 *   task_procs.c    Exec, Kill, Wait, Pids, Stats, ResizePty, CloseIO; exits
 *   task_pause.c    Pause and Resume (the whole VM), and what a paused task refuses
 *   task_update.c   Update: containerd's Linux resources to container.update
 *   task_state.c    the task table (pure)
 *   task_mount.c    the rootfs mounts on the host
 *   task_events.c   events to containerd
 *
 * One VM per shim: the daemon is the VM's process, and the control
 * protocol's code (shim/ctl_serve.c, in-process) does the work. The VM runs
 * the first task; a CRI pod's other containers join it. Everything runs on
 * the event loop thread.
 */
#ifndef SHIM_TASK_PRIV_H
#define SHIM_TASK_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "shim/proto/task.pb-c.h"
#include "shim/task_events.h"
#include "shim/task_state.h"
#include "shim/ttrpc_server.h"

#define TASK_SERVICE "containerd.task.v2.Task"
/* Where the bundle's rootfs/ is mounted in the guest (a 9p share of that name). */
#define TASK_ROOTFS_SHARE "rootfs"
#define TASK_ROOTFS_GUEST "/run/gcs/p9/rootfs"

struct ctl;
struct loop;
struct serve;
struct task_ctl_wait;

struct taskd {
	struct loop *loop;
	struct ttrpc_server *srv;
	struct task_events ev;
	char *socket_path; /* removed on exit */
	int sig_fd;
	int status;

	/* the control protocol, in-process */
	struct serve *serve;
	struct ctl *ctl;
	int ctl_rd; /* our end: answers and events */
	int ctl_wr; /* serve's end */
	char *line;
	size_t line_len, line_cap;
	uint64_t next_id;
	struct task_ctl_wait *waits;
	bool ctl_closing; /* task_ctl_close under way: calls fail at once */

	/*
	 * The tasks: the first Create makes the VM (the sandbox); with a pod's
	 * annotations later Creates join it (docs/containerd.md "Pods").
	 */
	struct task *tasks;
	char *sandbox_id; /* the first task's id: the pod's sandbox a later Create names */
	uint64_t next_serial;
	bool vm_creating; /* the first Create is booting the VM */
	bool pause_busy;  /* a Pause or Resume is under way */
	bool vm_up;	  /* vm.create answered: vm.terminate on the way out */
	bool vm_started;  /* vm.start sent: no capability, no mount(2) from here */
	bool vm_gone;	  /* vm.exited came: no task joins */
	bool exiting;
	cJSON *vm_config; /* the default config file (may be NULL); a Create may name another */
};

/* ---- task_main.c -------------------------------------------------------------------- */

/*
 * The daemon's state on a new loop, serving listen_fd (taken; -1: none, a
 * test adopts a socket with ttrpc_server_adopt(d->srv, fd)). No signals.
 */
int task_daemon_create(struct taskd **out, int listen_fd, const char *ns, const char *ttrpc_address)
    __attribute__((warn_unused_result));
/* Answers Waits still held, terminates the VM, unmounts, frees. NULL is a no-op. */
void task_daemon_destroy(struct taskd *d);

/* ---- task_ctl.c --------------------------------------------------------------------- */

/* result: the answer's result (borrowed), or NULL with code (a ctl code) and message. */
typedef void (*task_ctl_cb)(struct taskd *d, void *arg, const cJSON *result, int code,
			    const char *message);
int task_ctl_open(struct taskd *d) __attribute__((warn_unused_result));
void task_ctl_close(struct taskd *d);
/* Sends method(params) (consumed; NULL: {}) to the control protocol; cb (may be NULL) gets the
 * answer. */
void task_ctl_call(struct taskd *d, const char *method, cJSON *params, task_ctl_cb cb, void *arg);
/* A control-protocol error code as a ttrpc status code. */
int task_ctl_code(int ctl_code);

/* ---- task_service.c ----------------------------------------------------------------- */

extern const struct ttrpc_method task_methods[];
/* The task with this id, or NULL. */
struct task *task_by_id(struct taskd *d, const char *id);
/* The bundle's config.json as text (at most 1 MiB); NULL with err. */
char *task_read_spec(const char *bundle, char *err, size_t errlen);
/* The task with this serial, or NULL. */
struct task *task_by_serial(struct taskd *d, uint64_t serial);
/* The task a call names, or NULL: the call is answered NOT_FOUND. */
struct task *task_named(struct taskd *d, struct ttrpc_call *call, const char *id);
/*
 * A call waiting on the control protocol for a task: the answer finds the task
 * again by its serial (it may have been deleted meanwhile).
 */
struct task_call {
	struct ttrpc_call *call;
	uint64_t serial;
};
/* NULL (out of memory: the call is answered INTERNAL). */
struct task_call *task_call_new(struct ttrpc_call *call, const struct task *t);
/* Frees tc; *call gets its call; the task, or NULL (answered NOT_FOUND: it went). */
struct task *task_call_take(struct taskd *d, struct task_call *tc, struct ttrpc_call **call);
/* Leaves the loop once everything is settled (Shutdown, a signal). */
void task_exit(struct taskd *d);
/*
 * t's bundle's rootfs/ unmounted (task_main.c), if this process still may:
 * not once vm.start was sent with the sandbox on (containerd unmounts it when
 * it deletes the bundle, and `delete` does after a crash).
 */
void task_cleanup_host(struct taskd *d, struct task *t);
/* t unlinked from the daemon's tasks and freed; Waits still held answered NOT_FOUND. */
void task_forget(struct taskd *d, struct task *t);

/* ---- task_create.c ------------------------------------------------------------------ */

void task_create(void *opaque, struct ttrpc_call *call);
/* A Create on its way: the VM's first task's, or a pod container's joining it. */
struct create_op {
	struct ttrpc_call *call;
	Uvm__Ctrd__CreateTaskRequest *req;
	char *spec;	  /* config.json */
	cJSON *config;	  /* the first task's config file (options' or the default), may be NULL */
	uint64_t serial;  /* the task's */
	bool joins;	  /* the VM runs: the task joins it */
	bool share_added; /* a joining task's plan9.add answered: undone if the Create fails */
};
/* Answers op's call with the error, undoes what the Create did, frees op. */
void task_create_fail(struct taskd *d, struct create_op *op, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* container.create of op's task with its root on the 9p share named share; then answers. */
void task_create_container(struct taskd *d, struct create_op *op, const char *share);

/* ---- task_pod.c --------------------------------------------------------------------- */

/* CRI's annotations in a container's OCI spec. */
#define TASK_ANN_TYPE	 "io.kubernetes.cri.container-type"
#define TASK_ANN_SANDBOX "io.kubernetes.cri.sandbox-id"

/*
 * The sandbox a bundle's container belongs to (its config.json says
 * container-type "container" and a sandbox id), into out; -ENOENT when it is
 * not a pod's container, another -errno when the spec cannot be read.
 */
int task_pod_sandbox_of(const char *spec, char *out, size_t cap);
/* Whether a bundle's config.json is a CRI pod's sandbox (its daemon starts the mounter). */
bool task_pod_is_sandbox(const char *spec);
/* Whether a Create may join the running VM: 0, or -1 with err (spec: its config.json). */
int task_pod_admit(struct taskd *d, const char *spec, char *err, size_t errlen);
/* A pod container's Create: its root shared into the VM, then container.create. */
void task_pod_join(struct taskd *d, struct create_op *op, struct task *t);

/* ---- task_procs.c ------------------------------------------------------------------- */

void task_exec(void *opaque, struct ttrpc_call *call);
void task_kill(void *opaque, struct ttrpc_call *call);
void task_wait(void *opaque, struct ttrpc_call *call);
void task_pids(void *opaque, struct ttrpc_call *call);
void task_stats(void *opaque, struct ttrpc_call *call);
void task_resize_pty(void *opaque, struct ttrpc_call *call);
void task_close_io(void *opaque, struct ttrpc_call *call);
/* Starts t's exec p (Start with an exec_id). */
void task_start_exec(struct taskd *d, struct ttrpc_call *call, struct task *t, struct task_proc *p);
/* The control protocol's events: container.exited, process.exited, container.oom, vm.exited. */
void task_on_event(struct taskd *d, const char *name, const cJSON *params);
/* t's p ended: record, publish TaskExit, answer its Waits. */
void task_proc_ended(struct taskd *d, struct task *t, struct task_proc *p, uint32_t status);
/* Answers every Wait of p (STOPPED) with its exit. */
void task_answer_waiters(struct task_proc *p);
/* A control-protocol answer with no result to pass on: an empty reply or the error. */
void task_reply_plain(struct taskd *d, void *arg, const cJSON *result, int code,
		      const char *message);
/* A Timestamp from a CLOCK_REALTIME time. */
struct Uvm__Ctrd__Timestamp;
void task_timestamp(struct Uvm__Ctrd__Timestamp *ts, const struct timespec *t);

/* ---- task_pause.c ------------------------------------------------------------------- */

void task_pause(void *opaque, struct ttrpc_call *call);
void task_resume(void *opaque, struct ttrpc_call *call);
/*
 * t (its VM) is paused: the guest cannot run what the call needs (what names
 * it), answered FAILED_PRECONDITION, true.
 */
bool task_refuse_paused(struct task *t, struct ttrpc_call *call, const char *what);

/* ---- task_update.c ------------------------------------------------------------------ */

void task_update(void *opaque, struct ttrpc_call *call);
/*
 * An OCI linux.resources object as container.update's params (without the
 * id): *out NULL when it sets nothing. 0, or a ttrpc code with err filled:
 * INVALID_ARGUMENT (a value of the wrong type or out of range),
 * UNIMPLEMENTED (a field the guest's update does not apply).
 */
int task_update_params(const cJSON *res, cJSON **out, char *err, size_t errlen);

#endif
