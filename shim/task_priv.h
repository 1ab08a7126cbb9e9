/*
 * The containerd shim's daemon, inside: the state its files share. Not for
 * other modules (their door is shim/task.h).
 *
 *   task_main.c     `start` and `delete`, the daemon's loop and signals
 *   task_ctl.c      requests to the embedded control protocol and its answers/events
 *   task_service.c  the Task service: Create, Start, State, Delete, Connect, Shutdown
 *   task_procs.c    Exec, Kill, Wait, Pids, Stats, ResizePty, CloseIO; exits
 *   task_pause.c    Pause and Resume (the whole VM), and what a paused task refuses
 *   task_update.c   Update: containerd's Linux resources to container.update
 *   task_state.c    the task table (pure)
 *   task_mount.c    the rootfs mounts on the host
 *   task_events.c   events to containerd
 *
 * One VM per task: the daemon is the VM's process, and the control
 * protocol's code (shim/ctl_serve.c, in-process) does the work. Everything
 * runs on the event loop thread.
 */
#ifndef SHIM_TASK_PRIV_H
#define SHIM_TASK_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

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

	/* the task (one VM, one task) */
	struct task *task;
	bool creating;	     /* a Create is under way */
	bool pause_busy;     /* a Pause or Resume is under way */
	bool vm_up;	     /* vm.create answered: vm.terminate on the way out */
	bool vm_started;     /* vm.start sent: no capability, no mount(2) from here */
	bool rootfs_mounted; /* the bundle's rootfs/ holds containerd's mounts */
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
/* The call names a task that is not this one: answered NOT_FOUND, true. */
bool task_wrong_id(struct taskd *d, struct ttrpc_call *call, const char *id);
/* Leaves the loop once everything is settled (Shutdown, a signal). */
void task_exit(struct taskd *d);
/*
 * The bundle's rootfs/ unmounted (task_main.c), if this process still may:
 * not once vm.start was sent with the sandbox on (containerd unmounts it when
 * it deletes the bundle, and `delete` does after a crash).
 */
void task_cleanup_host(struct taskd *d);

/* ---- task_procs.c ------------------------------------------------------------------- */

void task_exec(void *opaque, struct ttrpc_call *call);
void task_kill(void *opaque, struct ttrpc_call *call);
void task_wait(void *opaque, struct ttrpc_call *call);
void task_pids(void *opaque, struct ttrpc_call *call);
void task_stats(void *opaque, struct ttrpc_call *call);
void task_resize_pty(void *opaque, struct ttrpc_call *call);
void task_close_io(void *opaque, struct ttrpc_call *call);
/* Starts an exec (Start with an exec_id). */
void task_start_exec(struct taskd *d, struct ttrpc_call *call, struct task_proc *p);
/* The control protocol's events: container.exited, process.exited, container.oom, vm.exited. */
void task_on_event(struct taskd *d, const char *name, const cJSON *params);
/* p ended: record, publish TaskExit, answer its Waits. */
void task_proc_ended(struct taskd *d, struct task_proc *p, uint32_t status);
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
 * The task is paused: the guest cannot run what the call needs (what names
 * it), answered FAILED_PRECONDITION, true.
 */
bool task_refuse_paused(struct taskd *d, struct ttrpc_call *call, const char *what);

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
