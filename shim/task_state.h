/*
 * The containerd shim's task table (pure, unit-tested): the task's init
 * process and its execs, each with containerd's status (CREATED, RUNNING,
 * STOPPED; PAUSED is shown for a running process of a paused task), pid, stdio paths, exit status
 * and time, and the transitions the Task service allows. An exec_id of NULL or "" names the init.
 */
#ifndef SHIM_TASK_STATE_H
#define SHIM_TASK_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* containerd.v1.types.Status's numbers. */
enum task_status {
	TASK_UNKNOWN = 0,
	TASK_CREATED = 1,
	TASK_RUNNING = 2,
	TASK_STOPPED = 3,
	TASK_PAUSED = 4, /* shown, never stored: a RUNNING process of a paused task */
};

/* Execs one task may hold at once. */
#define TASK_MAX_EXECS 256

struct ttrpc_call;

struct task_proc {
	char *exec_id; /* "" for the init */
	uint32_t pid;  /* the guest's, 0 until started */
	enum task_status status;
	uint32_t exit_status;
	struct timespec exited_at; /* CLOCK_REALTIME */
	char *stdin_path, *stdout_path, *stderr_path;
	bool terminal;
	char *spec;		    /* an exec's OCI process, JSON text */
	struct ttrpc_call *waiters; /* Wait calls, linked through ->next */
	struct task_proc *next;
};

struct task {
	char *id, *bundle;
	struct task_proc *procs; /* the init first, then execs */
	unsigned nr_execs;
	bool paused;	     /* the VM is paused (Pause answered, Resume not yet) */
	bool creating;	     /* its Create is under way */
	bool deleting;	     /* its Delete is under way */
	bool rootfs_mounted; /* the bundle's rootfs/ holds containerd's mounts (ours to undo) */
	char *share;	     /* the 9p share of its root filesystem, once added */
	uint64_t serial;     /* unique in the daemon: how answers find it again */
	struct task *next;   /* the daemon's tasks: the VM's first (the sandbox) first */
};

/* A task with its init in CREATED (pid 0); -ENOMEM. */
int task_new(struct task **out, const char *id, const char *bundle)
    __attribute__((warn_unused_result));
/* Frees the task and its records; Wait calls still held are left to the caller (task_take_waiters).
 */
void task_free(struct task *t);

struct task_proc *task_init_proc(struct task *t);
/* The record of exec_id (NULL or "": the init), or NULL. */
struct task_proc *task_find(struct task *t, const char *exec_id);
/* The record with this guest pid, or NULL. */
struct task_proc *task_find_pid(struct task *t, uint32_t pid);

/*
 * A new exec in CREATED. -EEXIST (the id is taken), -EINVAL (empty id),
 * -EPERM (the init is not RUNNING), -ENOSPC (TASK_MAX_EXECS), -ENOMEM.
 */
int task_add_exec(struct task *t, const char *exec_id, const char *spec, bool terminal,
		  const char *in, const char *out, const char *err, struct task_proc **p)
    __attribute__((warn_unused_result));
/* Start: CREATED -> RUNNING with pid; -EPERM from any other status. */
int task_proc_started(struct task_proc *p, uint32_t pid);
/* The process ended (any status but STOPPED): STOPPED, with status and now. -EALREADY when it was.
 */
int task_proc_exited(struct task_proc *p, uint32_t exit_status);
/*
 * Delete of an exec: only a CREATED or STOPPED one (-EPERM), the init is
 * not deleted this way (-EINVAL). The record is freed.
 */
int task_remove_exec(struct task *t, const char *exec_id);
/* Whether Delete of the init may go ahead: CREATED or STOPPED, and no exec RUNNING. */
bool task_init_deletable(struct task *t);
/* The status State reports: PAUSED for a RUNNING process while the task is paused. */
enum task_status task_shown_status(const struct task *t, const struct task_proc *p);
/* Detaches and returns p's Wait calls (linked through ->next). */
struct ttrpc_call *task_take_waiters(struct task_proc *p);
void task_add_waiter(struct task_proc *p, struct ttrpc_call *call);

#endif
