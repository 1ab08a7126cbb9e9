/*
 * `uvm-shim serve`, inside: the state its files share. Not for other modules
 * (their door is shim/ctl_serve.h).
 *
 *   ctl_serve.c    the event loop, stdin and signals, the method table
 *   serve_vm.c     the VM: vm.* methods, its exit, the bridge's callbacks
 *   serve_procs.c  guest.exec and process.*: the table of started processes
 *   serve_guest.c  requests forwarded to the guest agent (guest.properties,
 *                  guest.dump_stacks, process.signal/resize)
 *
 * Everything runs on the event loop thread, except console output (vCPUs).
 */
#ifndef SHIM_SERVE_PRIV_H
#define SHIM_SERVE_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "shim/console.h"
#include "shim/container.h"
#include "shim/ctl.h"
#include "shim/guest_link.h"
#include "shim/guest_proc.h"
#include "shim/lifecycle.h"
#include "shim/plan9.h"
#include "shim/nic.h"
#include "shim/scsi.h"
#include "shim/vpmem.h"
#include "vmm/vm.h"

/* Processes kept for process.wait; old reported ones go first (serve_procs_trim). */
#define SERVE_MAX_PROCS_KEPT 4096

struct stacks;

/* Requests waiting for one event, newest first. */
struct req_list {
	struct ctl_req *req;
	struct req_list *next;
};

struct serve;

struct sproc;

/* A record started for another module (containers): its answer and end are theirs. */
struct sproc_hooks {
	/* Answers req (the exec's): status 0 (p->gp.pid set) or -errno with the message. */
	void (*started)(struct sproc *p, struct ctl_req *req, int status, const char *error);
	/* Optional: the exit is known and the output relayed (after process.exited). */
	void (*finished)(struct sproc *p);
};

/* A process started by guest.exec (or container.create/exec). */
struct sproc {
	struct serve *s;
	struct guest_proc gp;	  /* pid, relays, exit: shim/guest_proc.c */
	struct ctl_req *exec_req; /* answered when the exec is */
	struct req_list *waiters;
	const struct sproc_hooks *hooks; /* NULL: guest.exec's */
	void *owner;
	struct sproc *next;
};

struct serve {
	struct loop *loop;
	struct ctl *ctl;
	struct lifecycle lc;
	int sig_fd, timer_fd;
	int status;

	/* the VM */
	struct machine *m;
	struct vm *vm; /* m->vm */
	struct guest_link link; /* vsock, device, Unix sockets, bridge */
	struct vsock *vs;	/* link.vs, or a test's */
	struct bridge *bridge;	/* link.bridge, or a test's */
	struct console_sink console;
	struct console_watch watch;
	int cpus;
	uint64_t mem_mib;
	struct timespec t_start;
	bool started, exited;
	const char *exit_name;

	/* deferred requests */
	struct ctl_req *start_req, *shutdown_req;
	struct req_list *vm_waiters;
	struct sproc *procs; /* newest first */
	unsigned nr_procs;

	/* disks by controller/lun (scsi.c) */
	struct scsi scsi;
	/* pmem layers by device number (vpmem.c) */
	struct vpmem vpmem;
	/* 9p shares by name (plan9.c) */
	struct plan9 plan9;
	/* NICs by id (nic.c) */
	struct nic_mgr nics;
	/* containers by id (container.c) */
	struct container_mgr ctrs;
	cJSON *gcs_answer; /* the negotiation answer, kept while boot disks attach */
	const char *boot_what; /* "disk", "pmem device", "9p share", "NIC": what vm.start waits for */
};

/* ---- ctl_serve.c: small helpers --------------------------------------------------- */

long serve_ms_since(const struct timespec *t0);
/* {"state": "Running"} */
cJSON *serve_state_result(struct serve *s);
/* Keeps req to answer later (answers it with an error when out of memory). */
void serve_req_list_add(struct req_list **l, struct ctl_req *req);
/* The newest request kept, or NULL. */
struct ctl_req *serve_req_list_pop(struct req_list **l);

/* ---- serve_vm.c --------------------------------------------------------------------- */

/* The word of vm.exited and vm.wait for an exit reason ("poweroff"). */
const char *serve_exit_word(enum vm_exit why);
/* Stops the VM now and settles everything. Safe in every state. */
void serve_terminate(struct serve *s);
/* The vm.start timeout (s->timer_fd). */
void serve_on_timer(void *opaque, uint32_t events);

void serve_vm_create(void *opaque, struct ctl_req *req);
void serve_vm_start(void *opaque, struct ctl_req *req);
void serve_vm_pause(void *opaque, struct ctl_req *req);
void serve_vm_resume(void *opaque, struct ctl_req *req);
void serve_vm_terminate(void *opaque, struct ctl_req *req);
void serve_vm_shutdown(void *opaque, struct ctl_req *req);
void serve_vm_wait(void *opaque, struct ctl_req *req);
void serve_vm_state(void *opaque, struct ctl_req *req);
void serve_vm_stats(void *opaque, struct ctl_req *req);

/* ---- serve_procs.c ------------------------------------------------------------------ */

/* The callbacks of every record's guest_proc (started: the exec's answer; finished). */
extern const struct guest_proc_ops serve_proc_ops;
struct sproc *serve_proc_find(struct serve *s, int pid);
/* {"pid", "exit_code", "signal"}: process.wait's answer and process.exited's params. */
cJSON *serve_proc_result(const struct sproc *p);
/* When s holds max records or more, frees the oldest finished one no wait is out for. */
void serve_procs_trim(struct serve *s, unsigned max);
/* Takes p out of s's table (if it is there) and frees it. */
void serve_proc_unlink_free(struct serve *s, struct sproc *p);
/* The VM is gone: fails every process.wait still out, drops the relays. */
void serve_procs_cancel_all(struct serve *s);
void serve_procs_free(struct serve *s);
/* The bridge's process_exited notification. */
void serve_on_process_exited(void *opaque, int pid, int code, int sig);

/*
 * Opens the parent's stdio paths (NULL: none), records a process and sends
 * x (type and extra say what the guest starts). 0: hooks->started (or the
 * guest.exec answer) follows; -1: req was answered with the error.
 */
int serve_proc_spawn(struct serve *s, struct ctl_req *req, struct guest_exec *x,
		     const char *const paths[3], const struct sproc_hooks *hooks, void *owner);

void serve_guest_exec(void *opaque, struct ctl_req *req);
void serve_process_wait(void *opaque, struct ctl_req *req);
void serve_process_signal(void *opaque, struct ctl_req *req);
void serve_process_resize(void *opaque, struct ctl_req *req);

/* ---- container.c ------------------------------------------------------------------- */

void serve_container_create(void *opaque, struct ctl_req *req);
void serve_container_start(void *opaque, struct ctl_req *req);
void serve_container_exec(void *opaque, struct ctl_req *req);
void serve_container_signal(void *opaque, struct ctl_req *req);
void serve_container_wait(void *opaque, struct ctl_req *req);
void serve_container_update(void *opaque, struct ctl_req *req);
void serve_container_stats(void *opaque, struct ctl_req *req);
void serve_container_list(void *opaque, struct ctl_req *req);
void serve_container_delete(void *opaque, struct ctl_req *req);
/* netns.add / netns.remove: a named network namespace in the guest (/run/netns/<name>). */
void serve_netns_add(void *opaque, struct ctl_req *req);
void serve_netns_remove(void *opaque, struct ctl_req *req);
/* The bridge's container_exited / container_oom notifications. */
void serve_containers_notify(struct serve *s, uint32_t type, const cJSON *body);
/* container_refs.c: root's references as the guest's "layers" and "scratch" (or a plan9
 * root's "rootfs") in body; -ENOENT with err naming what is not attached, -EINVAL what is
 * misused. */
int container_root_fields(struct serve *s, const struct ctr_root *root, cJSON *body,
			  char err[CTL_ERRLEN]);
/*
 * scsi.remove / vpmem.remove of a device a container stands on: answered
 * (-32004 naming the container) and true; false lets the manager go on.
 */
bool serve_containers_hold(struct serve *s, struct ctl_req *req, bool vpmem);
/* plan9.remove of a share that is a container's root: answered (-32004) and true. */
bool serve_containers_hold_share(struct serve *s, struct ctl_req *req);
/* The VM is gone: fails every container.wait still out. */
void serve_containers_cancel_all(struct serve *s);
void serve_containers_free(struct serve *s);

/* ---- serve_guest.c ------------------------------------------------------------------ */

/* Bridge status (-errno) -> control error code. */
int serve_guest_err_code(int status);
/* Sends body (consumed) to the GCS; its answer minus "status" answers req. */
void serve_forward(struct serve *s, struct ctl_req *req, uint32_t cat, uint32_t rpc, cJSON *body);
/* The guest's answer body as the control result: a copy without "status". */
cJSON *serve_forward_result(const cJSON *body);
/*
 * guest.dump_stacks's result: the shim's stacks (shim, or NULL with the
 * capture's -errno in err) and the GCS's answer body (may be NULL).
 */
cJSON *serve_stacks_result(const struct stacks *shim, int err, const cJSON *gcs_body);

void serve_guest_properties(void *opaque, struct ctl_req *req);
void serve_guest_dump_stacks(void *opaque, struct ctl_req *req);

#endif
