/*
 * `uvm-shim serve`: the method handlers of the control protocol. One event
 * loop thread runs everything here (stdin, the VM's exit, the vsock device,
 * the bridge, stdio relays, timers); vCPU threads only touch the console.
 *
 * Long operations keep their ctl_req and answer from a later callback:
 * vm.start (the bridge's ready), vm.wait and vm.shutdown (the VM's exit),
 * guest.exec and the process.* ones (bridge responses), process.wait (the
 * process's exit once its output is relayed).
 */
#include "shim/ctl_serve.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "boot/boot.h"
#include "gcs/protocol.h"
#include "seccomp/seccomp.h"
#include "shim/bridge.h"
#include "shim/console.h"
#include "shim/ctl.h"
#include "shim/guest_proc.h"
#include "shim/lifecycle.h"
#include "shim/machine.h"
#include "shim/run.h"
#include "shim/scsi.h"
#include "shim/stacks.h"
#include "virtio/virtio.h"
#include "virtio/vsock.h"
#include "vmm/legacy.h"
#include "vmm/log.h"
#include "vmm/loop.h"
#include "vmm/pci.h"
#include "vmm/vm.h"

#define TAG "serve"
#define BASE_CMDLINE                                                                               \
	"console=ttyS0 reboot=k panic=-1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd"
#define UART_PORT	      0x3f8
#define DEFAULT_START_TIMEOUT 120000 /* ms: a TCG-nested test host boots in ~20 s */
#define MAX_EXEC_ARGS	      4096
#define MAX_PROCS_KEPT	      4096

struct req_list {
	struct ctl_req *req;
	struct req_list *next;
};

struct serve;

struct sproc {
	struct serve *s;
	struct guest_proc gp;	  /* pid, relays, exit: shim/guest_proc.c */
	struct ctl_req *exec_req; /* answered when the exec is */
	struct req_list *waiters;
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
	struct vsock *vs;
	struct virtio_dev *vsock_dev;
	struct vsock_uds *uds;
	struct bridge *bridge;
	int console_fd;
	struct console_watch watch;
	bool panic_seen;
	int cpus;
	uint64_t mem_mib;
	struct timespec t_start;
	bool started, exited;
	const char *exit_name;

	/* deferred requests */
	struct ctl_req *start_req, *shutdown_req;
	struct req_list *vm_waiters;
	struct sproc *procs;
	unsigned nr_procs;

	/* disks by controller/lun (scsi.c) */
	struct scsi scsi;
	cJSON *gcs_answer; /* the negotiation answer, kept while boot disks attach */
};

/* ---- small helpers ---------------------------------------------------------------- */

static long ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static cJSON *state_result(struct serve *s)
{
	cJSON *r = cJSON_CreateObject();

	cJSON_AddStringToObject(r, "state", lifecycle_state_name(lifecycle_state(&s->lc)));
	return r;
}

static void req_list_add(struct req_list **l, struct ctl_req *req)
{
	struct req_list *e = calloc(1, sizeof(*e));

	if (!e) {
		ctl_req_error(req, CTL_ERR_INTERNAL, "out of memory");
		return;
	}
	e->req = req;
	e->next = *l;
	*l = e;
}

static struct ctl_req *req_list_pop(struct req_list **l)
{
	struct req_list *e = *l;
	struct ctl_req *r;

	if (!e)
		return NULL;
	*l = e->next;
	r = e->req;
	free(e);
	return r;
}

static const char *exit_word(enum vm_exit why)
{
	switch (why) {
	case VM_EXIT_RESET:
		return "reset";
	case VM_EXIT_POWEROFF:
		return "poweroff";
	case VM_EXIT_TRIPLE_FAULT:
		return "triple_fault";
	case VM_EXIT_PANIC:
		return "panic";
	case VM_EXIT_TERMINATED:
		return "terminated";
	case VM_EXIT_ERROR:
		return "error";
	default:
		return "unknown";
	}
}

/* Bridge status -> control error code: a guest-side failure, or its meaning. */
static int guest_err_code(int status)
{
	switch (status) {
	case -ESRCH:
		return CTL_ERR_NOT_FOUND;
	case -ECANCELED:
	case -ECONNRESET:
		return CTL_ERR_CANCELLED;
	default:
		return CTL_ERR_GUEST;
	}
}

/* ---- processes --------------------------------------------------------------------- */

static struct sproc *sproc_of(struct guest_proc *gp)
{
	return (struct sproc *)((char *)gp - offsetof(struct sproc, gp));
}

static struct sproc *proc_find(struct serve *s, int pid)
{
	struct sproc *p = s->procs;

	while (p && p->gp.pid != pid)
		p = p->next;
	return p;
}

static cJSON *proc_result(const struct sproc *p)
{
	cJSON *r = cJSON_CreateObject();

	cJSON_AddNumberToObject(r, "pid", p->gp.pid);
	cJSON_AddNumberToObject(r, "exit_code", p->gp.exit_code);
	cJSON_AddNumberToObject(r, "signal", p->gp.signal);
	return r;
}

/* The exit is known and the output is all relayed: tell everyone who asked. */
static void proc_finished(struct guest_proc *gp)
{
	struct sproc *p = sproc_of(gp);
	struct ctl_req *req;

	ctl_event(p->s->ctl, "process.exited", proc_result(p));
	while ((req = req_list_pop(&p->waiters)))
		ctl_req_result(req, proc_result(p));
	guest_proc_drop_relays(gp);
}

/* The VM is gone: nobody will exit any more. */
static void procs_cancel_all(struct serve *s)
{
	for (struct sproc *p = s->procs; p; p = p->next) {
		struct ctl_req *req;

		while ((req = req_list_pop(&p->waiters)))
			ctl_req_error(req, CTL_ERR_CANCELLED,
				      "the VM ended before process %d exited", p->gp.pid);
		guest_proc_drop_relays(&p->gp);
	}
}

static void procs_free(struct serve *s)
{
	procs_cancel_all(s);
	while (s->procs) {
		struct sproc *p = s->procs;

		s->procs = p->next;
		free(p);
	}
	s->nr_procs = 0;
}

/* Old reported records go first when the table is full (not while a wait is out). */
static void procs_trim(struct serve *s)
{
	struct sproc **pp = &s->procs, **oldest = NULL;

	if (s->nr_procs < MAX_PROCS_KEPT)
		return;
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->gp.finished && !(*pp)->gp.wait_pending)
			oldest = pp; /* the list is newest first: the last match is the oldest */
	if (oldest) {
		struct sproc *p = *oldest;

		*oldest = p->next;
		free(p);
		s->nr_procs--;
	}
}

static void proc_unlink_free(struct serve *s, struct sproc *p)
{
	for (struct sproc **pp = &s->procs; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			s->nr_procs--;
			break;
		}
	free(p);
}

/* The process notification can beat the wait response: either one settles it. */
static void on_process_exited(void *opaque, int pid, int code, int sig)
{
	struct sproc *p = proc_find(opaque, pid);

	if (p)
		guest_proc_exited(&p->gp, code, sig);
}

static void proc_started(struct guest_proc *gp, int status, const char *error)
{
	struct sproc *p = sproc_of(gp);
	struct ctl_req *req = p->exec_req;
	cJSON *r;

	p->exec_req = NULL;
	if (status != 0) {
		ctl_req_error(req, guest_err_code(status), "%s", error);
		proc_unlink_free(p->s, p);
		return;
	}
	r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "pid", gp->pid);
	ctl_req_result(req, r);
}

static const struct guest_proc_ops proc_ops = {
    .started = proc_started,
    .finished = proc_finished,
};

static void m_guest_exec(void *opaque, struct ctl_req *req)
{
	static const char *const names[3] = {"stdin", "stdout", "stderr"};
	struct serve *s = opaque;
	const cJSON *argv, *env = NULL;
	const char *cwd = NULL, *paths[3] = {NULL, NULL, NULL};
	char err[CTL_ERRLEN];
	size_t argc, envc;
	uint64_t uid = 0, gid = 0, rows = 24, cols = 80;
	bool tty = false;
	struct guest_exec x;
	struct sproc *p;
	int ret;

	if (ctl_param_strv(req->params, "argv", true, MAX_EXEC_ARGS, &argv, &argc, err) ||
	    ctl_param_strv(req->params, "env", false, MAX_EXEC_ARGS, &env, &envc, err) == -EINVAL ||
	    ctl_param_str(req->params, "cwd", false, &cwd, err) == -EINVAL ||
	    ctl_param_u64(req->params, "uid", false, 0, UINT32_MAX - 1, &uid, err) == -EINVAL ||
	    ctl_param_u64(req->params, "gid", false, 0, UINT32_MAX - 1, &gid, err) == -EINVAL ||
	    ctl_param_bool(req->params, "tty", false, &tty, err) == -EINVAL ||
	    ctl_param_u64(req->params, "rows", false, 1, 65535, &rows, err) == -EINVAL ||
	    ctl_param_u64(req->params, "cols", false, 1, 65535, &cols, err) == -EINVAL ||
	    ctl_param_str(req->params, "stdin", false, &paths[0], err) == -EINVAL ||
	    ctl_param_str(req->params, "stdout", false, &paths[1], err) == -EINVAL ||
	    ctl_param_str(req->params, "stderr", false, &paths[2], err) == -EINVAL) {
		ctl_req_bad_params(req, err);
		return;
	}
	if (argc == 0) {
		ctl_req_bad_params(req, "params.argv: must name a program");
		return;
	}
	if (tty && paths[2]) {
		ctl_req_bad_params(req,
				   "params.stderr: a tty process has one output stream (stdout)");
		return;
	}
	if (!bridge_ready(s->bridge)) {
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent is not connected");
		return;
	}
	x = (struct guest_exec){.argv = argv,
				.env = env,
				.cwd = cwd,
				.uid = uid,
				.gid = gid,
				.tty = tty,
				.rows = rows,
				.cols = cols,
				.fds = {-1, -1, -1}};
	for (int i = 0; i < 3; i++) {
		if (!paths[i])
			continue;
		x.fds[i] = stdio_open_host(paths[i], i == 0 ? STDIO_TO_GUEST : STDIO_FROM_GUEST);
		if (x.fds[i] < 0) {
			ctl_req_error(req, CTL_ERR_HOST, "%s %s: %s", names[i], paths[i],
				      strerror(-x.fds[i]));
			goto fail;
		}
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		ctl_req_error(req, CTL_ERR_INTERNAL, "out of memory");
		goto fail;
	}
	p->s = s;
	p->exec_req = req;
	guest_proc_init(&p->gp, &proc_ops);
	procs_trim(s);
	p->next = s->procs;
	s->procs = p;
	s->nr_procs++;
	/* From here proc_started answers req (and frees p if the exec failed). */
	ret = guest_proc_exec(&p->gp, s->bridge, s->vs, s->loop, &x, err, sizeof(err));
	if (ret < 0) {
		ctl_req_error(req, CTL_ERR_HOST, "%s", err);
		proc_unlink_free(s, p);
	}
	return;
fail:
	for (int i = 0; i < 3; i++)
		if (x.fds[i] >= 0)
			close(x.fds[i]);
}

/* A request whose answer is the guest's body minus its status. */
static void on_forward_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct ctl_req *req = opaque;
	cJSON *r;

	if (status) {
		ctl_req_error(req, guest_err_code(status), "%s", error ? error : strerror(-status));
		return;
	}
	r = cJSON_Duplicate(body, 1);
	cJSON_DeleteItemFromObject(r, "status");
	ctl_req_result(req, r);
}

static void forward(struct serve *s, struct ctl_req *req, uint32_t cat, uint32_t rpc, cJSON *body)
{
	int ret;

	if (!bridge_ready(s->bridge)) {
		cJSON_Delete(body);
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent is not connected");
		return;
	}
	ret = bridge_request(s->bridge, BRIDGE_TYPE(BRIDGE_KIND_REQUEST, cat, rpc), body,
			     on_forward_resp, req);
	if (ret < 0)
		ctl_req_error(req, CTL_ERR_GUEST, "cannot reach the guest agent: %s",
			      strerror(-ret));
}

static int known_pid(struct serve *s, struct ctl_req *req, uint64_t *pid)
{
	char err[CTL_ERRLEN];

	if (ctl_param_u64(req->params, "pid", true, 1, INT32_MAX, pid, err)) {
		ctl_req_bad_params(req, err);
		return -1;
	}
	if (!proc_find(s, (int)*pid)) {
		ctl_req_error(req, CTL_ERR_NOT_FOUND, "no process %llu started by guest.exec",
			      (unsigned long long)*pid);
		return -1;
	}
	return 0;
}

static void m_process_wait(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	struct sproc *p;
	uint64_t pid;

	if (known_pid(s, req, &pid))
		return;
	p = proc_find(s, (int)pid);
	if (p->gp.finished)
		ctl_req_result(req, proc_result(p));
	else
		req_list_add(&p->waiters, req);
}

static void m_process_signal(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	char err[CTL_ERRLEN];
	uint64_t pid, sig;
	cJSON *b;

	if (known_pid(s, req, &pid))
		return;
	if (ctl_param_u64(req->params, "signal", true, 1, 64, &sig, err)) {
		ctl_req_bad_params(req, err);
		return;
	}
	b = guest_proc_signal_body((int)pid, (int)sig);
	forward(s, req, BRIDGE_CAT_PROCESS, BRIDGE_RPC_SIGNAL, b);
}

static void m_process_resize(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	char err[CTL_ERRLEN];
	uint64_t pid, rows, cols;
	cJSON *b;

	if (known_pid(s, req, &pid))
		return;
	if (ctl_param_u64(req->params, "rows", true, 1, 65535, &rows, err) ||
	    ctl_param_u64(req->params, "cols", true, 1, 65535, &cols, err)) {
		ctl_req_bad_params(req, err);
		return;
	}
	b = guest_proc_resize_body((int)pid, rows, cols);
	forward(s, req, BRIDGE_CAT_PROCESS, BRIDGE_RPC_RESIZE, b);
}

static void m_guest_properties(void *opaque, struct ctl_req *req)
{
	cJSON *b = cJSON_CreateObject();

	cJSON_AddTrueToObject(b, "processes");
	cJSON_AddTrueToObject(b, "memory");
	forward(opaque, req, BRIDGE_CAT_SYSTEM, BRIDGE_RPC_PROPERTIES, b);
}

/*
 * guest.dump_stacks: the shim's threads are captured when the request comes
 * (shim/stacks.c: a signal per thread, a bounded wait, so a vCPU or a stuck
 * thread costs the loop at most STACKS_TIMEOUT_MS twice), the GCS's when
 * its answer comes; the answer carries both.
 */
#define STACKS_TIMEOUT_MS 1000

struct stacks_req {
	struct ctl_req *req;
	struct stacks *shim; /* NULL when the capture failed (err says why) */
	int err;
};

static void stacks_req_free(struct stacks_req *sr)
{
	stacks_free(sr->shim);
	free(sr);
}

static void on_stacks_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct stacks_req *sr = opaque;
	const cJSON *stacks = body ? cJSON_GetObjectItem(body, "stacks") : NULL;
	char *text = NULL;
	cJSON *r;

	if (status) {
		ctl_req_error(sr->req, guest_err_code(status), "%s", error ? error : "?");
		stacks_req_free(sr);
		return;
	}
	r = cJSON_CreateObject();
	if (sr->shim) {
		text = stacks_format(sr->shim);
		cJSON_AddStringToObject(r, "shim", text ? text : "");
		cJSON_AddItemToObject(r, "shim_threads", stacks_to_json(sr->shim));
	} else {
		char msg[128];

		snprintf(msg, sizeof(msg), "uvm-shim pid %d: stacks not captured: %s\n", getpid(),
			 strerror(-sr->err));
		cJSON_AddStringToObject(r, "shim", msg);
		cJSON_AddArrayToObject(r, "shim_threads");
	}
	cJSON_AddStringToObject(r, "gcs", cJSON_IsString(stacks) ? stacks->valuestring : "");
	free(text);
	ctl_req_result(sr->req, r);
	stacks_req_free(sr);
}

static void m_guest_dump_stacks(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	struct stacks_req *sr;
	int ret;

	if (!bridge_ready(s->bridge)) {
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent is not connected");
		return;
	}
	sr = calloc(1, sizeof(*sr));
	if (!sr) {
		ctl_req_error(req, CTL_ERR_INTERNAL, "out of memory");
		return;
	}
	sr->req = req;
	sr->err = stacks_capture(&sr->shim, STACKS_TIMEOUT_MS);
	if (sr->err)
		pr_warn(TAG, "dump_stacks: the shim's stacks: %s", strerror(-sr->err));
	ret = bridge_request(
	    s->bridge, BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_SYSTEM, BRIDGE_RPC_DUMP_STACKS),
	    cJSON_CreateObject(), on_stacks_resp, sr);
	if (ret < 0) {
		ctl_req_error(req, CTL_ERR_GUEST, "cannot reach the guest agent: %s",
			      strerror(-ret));
		stacks_req_free(sr);
	}
}

/* ---- the VM ------------------------------------------------------------------------ */

/* vCPU thread: console bytes. */
static void console_out(void *opaque, const uint8_t *buf, size_t len)
{
	struct serve *s = opaque;

	for (size_t i = 0; i < len; i++) {
		switch (console_watch_byte(&s->watch, buf[i])) {
		case CONSOLE_EV_PANIC_BEGIN:
			s->panic_seen = true;
			break;
		case CONSOLE_EV_PANIC_END:
			s->panic_seen = true;
			vm_request_exit(s->vm, VM_EXIT_PANIC);
			break;
		case CONSOLE_EV_POWER_OFF:
			vm_request_exit(s->vm, VM_EXIT_POWEROFF);
			break;
		default:
			break;
		}
	}
	if (s->console_fd >= 0 && write(s->console_fd, buf, len) < 0) {
		/* a full disk must not stop the guest */
	}
}

static void on_boot_disks(void *opaque, int err, const char *msg)
{
	struct serve *s = opaque;
	struct ctl_req *req = s->start_req;
	cJSON *r, *gcs;

	if (!req)
		return; /* the VM ended meanwhile: vm_ended answered */
	s->start_req = NULL;
	gcs = s->gcs_answer;
	s->gcs_answer = NULL;
	if (err) {
		cJSON_Delete(gcs);
		vm_request_exit(s->vm, VM_EXIT_TERMINATED);
		lifecycle_event(&s->lc, LC_EV_START_FAILED, NULL);
		lifecycle_done(&s->lc, "vm.start");
		ctl_req_error(req, CTL_ERR_GUEST, "a disk given before start failed: %s", msg);
		return;
	}
	lifecycle_event(&s->lc, LC_EV_STARTED, NULL);
	lifecycle_done(&s->lc, "vm.start");
	r = state_result(s);
	cJSON_AddNumberToObject(r, "boot_ms", ms_since(&s->t_start));
	if (gcs) {
		cJSON_DeleteItemFromObject(gcs, "status");
		cJSON_AddItemToObject(r, "gcs", gcs);
	}
	ctl_req_result(req, r);
}

static void on_bridge_ready(void *opaque, int err, const cJSON *answer)
{
	struct serve *s = opaque;
	struct ctl_req *req = s->start_req;

	if (!req)
		return;
	s->start_req = NULL;
	timerfd_settime(s->timer_fd, 0, &(struct itimerspec){0}, NULL);
	if (err) {
		/* The guest runs but its agent is unusable: that start failed. */
		vm_request_exit(s->vm, VM_EXIT_TERMINATED);
		lifecycle_event(&s->lc, LC_EV_START_FAILED, NULL);
		lifecycle_done(&s->lc, "vm.start");
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent failed to negotiate: %s",
			      strerror(-err));
		return;
	}
	/* vm.start answers once the disks given before it are found and mounted. */
	s->start_req = req;
	cJSON_Delete(s->gcs_answer);
	s->gcs_answer = cJSON_Duplicate(answer, 1);
	scsi_boot_attach(&s->scsi, s->bridge, on_boot_disks, s);
}

static void on_bridge_closed(void *opaque)
{
	pr_info(TAG, "bridge connection closed");
}

static const struct bridge_ops bridge_ops = {
    .ready = on_bridge_ready,
    .process_exited = on_process_exited,
    .closed = on_bridge_closed,
};

/* Frees every device and the VM. The vCPUs must have stopped (vm_join). */
static void vm_teardown(struct serve *s)
{
	bridge_destroy(s->bridge);
	s->bridge = NULL;
	procs_cancel_all(s);
	scsi_unbind(&s->scsi); /* before the bus goes */
	cJSON_Delete(s->gcs_answer);
	s->gcs_answer = NULL;
	if (s->vsock_dev)
		virtio_dev_destroy(s->vsock_dev);
	s->vsock_dev = NULL;
	vsock_uds_destroy(s->uds);
	s->uds = NULL;
	vsock_engine_destroy(s->vs);
	s->vs = NULL;
	if (s->vm)
		loop_del(s->loop, vm_exit_fd(s->vm));
	machine_destroy(s->m);
	s->m = NULL;
	s->vm = NULL;
	if (s->console_fd >= 0)
		close(s->console_fd);
	s->console_fd = -1;
}

/* The VM stopped (any reason): settle everything that waited on it. */
static void vm_ended(struct serve *s, enum vm_exit why)
{
	struct ctl_req *req;
	cJSON *ev;

	if (s->exited)
		return;
	s->exited = true;
	if (why == VM_EXIT_RESET && s->panic_seen)
		why = VM_EXIT_PANIC;
	s->exit_name = exit_word(why);
	pr_info(TAG, "VM ended: %s", vm_exit_name(why));
	if (s->start_req) {
		req = s->start_req;
		s->start_req = NULL;
		lifecycle_event(&s->lc, LC_EV_START_FAILED, NULL);
		lifecycle_done(&s->lc, "vm.start");
		ctl_req_error(req, why == VM_EXIT_TERMINATED ? CTL_ERR_CANCELLED : CTL_ERR_GUEST,
			      "the VM ended (%s) before the guest agent was ready",
			      vm_exit_name(why));
	} else {
		lifecycle_event(&s->lc, LC_EV_GUEST_EXITED, NULL);
	}
	procs_cancel_all(s);
	ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "exit", s->exit_name);
	ctl_event(s->ctl, "vm.exited", ev);
	while ((req = req_list_pop(&s->vm_waiters))) {
		cJSON *r = cJSON_CreateObject();

		cJSON_AddStringToObject(r, "exit", s->exit_name);
		ctl_req_result(req, r);
	}
	if (s->shutdown_req) {
		cJSON *r = state_result(s);

		cJSON_AddStringToObject(r, "exit", s->exit_name);
		lifecycle_done(&s->lc, "vm.shutdown");
		ctl_req_result(s->shutdown_req, r);
		s->shutdown_req = NULL;
	}
}

static void on_vm_exit(void *opaque, uint32_t events)
{
	struct serve *s = opaque;

	loop_del(s->loop, vm_exit_fd(s->vm));
	vm_join(s->vm);
	vm_ended(s, vm_exit_reason(s->vm));
	vm_teardown(s);
}

static void on_timer(void *opaque, uint32_t events)
{
	struct serve *s = opaque;
	uint64_t v;

	if (read(s->timer_fd, &v, sizeof(v)) < 0)
		return;
	if (s->start_req) {
		struct ctl_req *req = s->start_req;

		s->start_req = NULL;
		pr_err(TAG, "the guest agent did not connect in time");
		lifecycle_event(&s->lc, LC_EV_START_FAILED, NULL);
		lifecycle_done(&s->lc, "vm.start");
		ctl_req_error(req, CTL_ERR_TIMEOUT,
			      "the guest agent did not negotiate within the start timeout");
		vm_request_exit(s->vm, VM_EXIT_TERMINATED);
	}
}

static void m_vm_create(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	const char *kernel = NULL, *initrd = NULL, *extra = NULL, *vsock_path = NULL;
	const char *console = NULL;
	char err[256], kpath[PATH_MAX], ipath[PATH_MAX], cmdline[BOOT_CMDLINE_MAX + 1];
	uint64_t cpus = 1, mem = 512, cid = 3;
	struct machine_config cfg = {0};
	const cJSON *disks = cJSON_GetObjectItemCaseSensitive(req->params, "scsi");
	const cJSON *dj;
	int ret, code = CTL_ERR_HOST;

	if (ctl_param_u64(req->params, "cpus", false, 1, VM_MAX_VCPUS, &cpus, err) == -EINVAL ||
	    ctl_param_u64(req->params, "memory_mib", false, 64, VM_MAX_MEM_MIB, &mem, err) ==
		-EINVAL ||
	    ctl_param_u64(req->params, "vsock_cid", false, 3, 0xfffffffeULL, &cid, err) ==
		-EINVAL ||
	    ctl_param_str(req->params, "kernel", false, &kernel, err) == -EINVAL ||
	    ctl_param_str(req->params, "initrd", false, &initrd, err) == -EINVAL ||
	    ctl_param_str(req->params, "cmdline", false, &extra, err) == -EINVAL ||
	    ctl_param_str(req->params, "vsock_path", false, &vsock_path, err) == -EINVAL ||
	    ctl_param_str(req->params, "console", false, &console, err) == -EINVAL) {
		lifecycle_done(&s->lc, req->method);
		ctl_req_bad_params(req, err);
		return;
	}
	if (disks && !cJSON_IsArray(disks)) {
		lifecycle_done(&s->lc, req->method);
		ctl_req_bad_params(req, "params.scsi: expected an array of disks");
		return;
	}
	cJSON_ArrayForEach(dj, disks)
	{
		struct scsi_params sp;

		if (scsi_parse_add(dj, &sp, err)) {
			char msg[sizeof(err) + 32];

			snprintf(msg, sizeof(msg), "params.scsi[]: %s", err);
			lifecycle_done(&s->lc, req->method);
			ctl_req_bad_params(req, msg);
			return;
		}
	}
	if (!kernel) {
		const char *dir = run_default_guest_dir();

		run_default_guest_kernel(kpath, sizeof(kpath), dir);
		snprintf(ipath, sizeof(ipath), "%s/initrd.img", dir ? dir : ".");
		kernel = kpath;
		if (!initrd)
			initrd = ipath;
	}
	if ((size_t)snprintf(cmdline, sizeof(cmdline), "%s%s%s -- %s", BASE_CMDLINE,
			     extra ? " " : "", extra ? extra : "",
			     BRIDGE_GUEST_COMMAND) >= sizeof(cmdline)) {
		lifecycle_done(&s->lc, req->method);
		ctl_req_bad_params(req, "params.cmdline: the kernel command line gets too long");
		return;
	}
	s->console_fd = -1;
	if (console) {
		s->console_fd = open(console, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (s->console_fd < 0) {
			snprintf(err, sizeof(err), "console %s: %s", console, strerror(errno));
			goto fail;
		}
	}
	cfg.cpus = cpus;
	cfg.mem_mib = mem;
	cfg.kernel = kernel;
	cfg.initrd = initrd;
	cfg.cmdline = cmdline;
	cfg.console_out = console_out;
	cfg.console_opaque = s;
	ret = machine_create(&s->m, &cfg, s->loop, err, sizeof(err));
	if (ret) {
		if (ret == -EINVAL || ret == -ENOENT || ret == -ENOEXEC)
			code = CTL_ERR_BAD_PARAMS;
		s->m = NULL;
		goto fail;
	}
	s->vm = s->m->vm;
	scsi_bind(&s->scsi, s->m->pci, vm_mem(s->vm), s->loop, (int)cpus);
	cJSON_ArrayForEach(dj, disks)
	{
		struct scsi_params sp;

		if (scsi_parse_add(dj, &sp, err))
			goto fail; /* checked above */
		ret = scsi_attach_cold(&s->scsi, &sp, err, sizeof(err));
		if (ret) {
			code = ret == -ENOENT || ret == -EEXIST || ret == -EINVAL
				   ? CTL_ERR_BAD_PARAMS
				   : CTL_ERR_HOST;
			goto fail;
		}
	}
	ret = vsock_engine_create(&s->vs, cid);
	if (!ret)
		ret = virtio_vsock_create(s->m->pci, vm_mem(s->vm), s->loop, s->vs, &s->vsock_dev);
	if (!ret && vsock_path)
		ret = vsock_uds_create(&s->uds, s->vs, s->loop, vsock_path);
	if (!ret)
		ret = bridge_create(&s->bridge, s->vs, &bridge_ops, s);
	if (!ret)
		ret = loop_add(s->loop, vm_exit_fd(s->vm), EPOLLIN, on_vm_exit, s);
	if (ret) {
		snprintf(err, sizeof(err), "VM setup failed: %s", strerror(-ret));
		goto fail;
	}
	s->cpus = cpus;
	s->mem_mib = mem;
	lifecycle_event(&s->lc, LC_EV_CREATED, NULL);
	lifecycle_done(&s->lc, req->method);
	ctl_req_result(req, state_result(s));
	return;
fail:
	vm_teardown(s);
	lifecycle_done(&s->lc, req->method);
	ctl_req_error(req, code, "%s", err);
}

static void m_vm_start(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	char err[CTL_ERRLEN];
	uint64_t timeout = DEFAULT_START_TIMEOUT;
	struct itimerspec its = {0};
	int ret;

	if (ctl_param_u64(req->params, "timeout_ms", false, 1, 3600000, &timeout, err) == -EINVAL) {
		lifecycle_done(&s->lc, req->method);
		ctl_req_bad_params(req, err);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &s->t_start);
	ret = machine_start(s->m);
	if (ret) {
		lifecycle_done(&s->lc, req->method);
		ctl_req_error(req, CTL_ERR_HOST, "cannot start the vCPUs: %s", strerror(-ret));
		return;
	}
	s->started = true;
	s->start_req = req;
	its.it_value.tv_sec = timeout / 1000;
	its.it_value.tv_nsec = (timeout % 1000) * 1000000;
	timerfd_settime(s->timer_fd, 0, &its, NULL);
}

static void m_vm_pause(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	int ret = vm_pause(s->vm);

	if (!ret)
		lifecycle_event(&s->lc, LC_EV_PAUSED, NULL);
	lifecycle_done(&s->lc, req->method);
	if (ret)
		ctl_req_error(req, CTL_ERR_HOST, "pause failed: %s", strerror(-ret));
	else
		ctl_req_result(req, state_result(s));
}

static void m_vm_resume(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	int ret = vm_resume(s->vm);

	if (!ret)
		lifecycle_event(&s->lc, LC_EV_RESUMED, NULL);
	lifecycle_done(&s->lc, req->method);
	if (ret)
		ctl_req_error(req, CTL_ERR_HOST, "resume failed: %s", strerror(-ret));
	else
		ctl_req_result(req, state_result(s));
}

/* Stops the VM now and settles everything. Safe in every state. */
static void terminate(struct serve *s)
{
	if (s->vm) {
		vm_request_exit(s->vm, VM_EXIT_TERMINATED);
		if (s->started)
			vm_join(s->vm);
		if (s->started || lifecycle_state(&s->lc) != LC_NOT_CREATED)
			vm_ended(s, VM_EXIT_TERMINATED);
		vm_teardown(s);
	}
	lifecycle_event(&s->lc, LC_EV_TERMINATED, NULL);
}

static void m_vm_terminate(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;

	terminate(s);
	ctl_req_result(req, state_result(s));
}

static void on_shutdown_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct serve *s = opaque;
	struct ctl_req *req = s->shutdown_req;

	if (status == 0 || !req)
		return; /* the answer comes with the VM's exit */
	s->shutdown_req = NULL;
	lifecycle_done(&s->lc, "vm.shutdown");
	ctl_req_error(req, guest_err_code(status), "shutdown refused: %s", error ? error : "?");
}

static void m_vm_shutdown(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	int ret;

	if (!bridge_ready(s->bridge)) {
		lifecycle_done(&s->lc, req->method);
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent is not connected");
		return;
	}
	s->shutdown_req = req;
	ret = bridge_request(
	    s->bridge, BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_SYSTEM, BRIDGE_RPC_SHUTDOWN),
	    cJSON_CreateObject(), on_shutdown_resp, s);
	if (ret < 0) {
		s->shutdown_req = NULL;
		lifecycle_done(&s->lc, req->method);
		ctl_req_error(req, CTL_ERR_GUEST, "cannot reach the guest agent: %s",
			      strerror(-ret));
	}
}

static void m_vm_wait(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;

	if (s->exited || lifecycle_state(&s->lc) == LC_TERMINATED ||
	    lifecycle_state(&s->lc) == LC_INVALID) {
		cJSON *r = cJSON_CreateObject();

		cJSON_AddStringToObject(r, "exit", s->exit_name ? s->exit_name : "terminated");
		ctl_req_result(req, r);
		return;
	}
	req_list_add(&s->vm_waiters, req);
}

static void m_vm_state(void *opaque, struct ctl_req *req)
{
	ctl_req_result(req, state_result(opaque));
}

static void m_vm_stats(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	cJSON *r = state_result(s), *v;
	struct vsock_stats st;

	cJSON_AddNumberToObject(r, "cpus", s->cpus);
	cJSON_AddNumberToObject(r, "memory_mib", s->mem_mib);
	cJSON_AddNumberToObject(r, "uptime_ms", s->started ? ms_since(&s->t_start) : 0);
	if (s->vs) {
		vsock_get_stats(s->vs, &st);
		v = cJSON_AddObjectToObject(r, "vsock");
		cJSON_AddNumberToObject(v, "connections", st.conns);
		cJSON_AddNumberToObject(v, "from_guest_bytes", st.tx_bytes);
		cJSON_AddNumberToObject(v, "to_guest_bytes", st.rx_bytes);
		cJSON_AddNumberToObject(v, "malformed_packets", st.malformed);
	}
	ctl_req_result(req, r);
}

static void m_scsi_add(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;

	scsi_method_add(&s->scsi, s->bridge, lifecycle_state(&s->lc) == LC_RUNNING, req);
}

static void m_scsi_remove(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;

	scsi_method_remove(&s->scsi, s->bridge, lifecycle_state(&s->lc) == LC_RUNNING, req);
}

static void m_unsupported(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;

	lifecycle_done(&s->lc, req->method);
	ctl_req_error(req, CTL_ERR_UNSUPPORTED, "%s is not implemented in this build", req->method);
}

static void m_vm_capabilities(void *opaque, struct ctl_req *req);

static const struct ctl_method methods[] = {
    {"vm.create", m_vm_create},
    {"vm.start", m_vm_start},
    {"vm.pause", m_vm_pause},
    {"vm.resume", m_vm_resume},
    {"vm.terminate", m_vm_terminate},
    {"vm.shutdown", m_vm_shutdown},
    {"vm.wait", m_vm_wait},
    {"vm.state", m_vm_state},
    {"vm.stats", m_vm_stats},
    {"vm.capabilities", m_vm_capabilities},
    {"guest.exec", m_guest_exec},
    {"guest.dump_stacks", m_guest_dump_stacks},
    {"guest.properties", m_guest_properties},
    {"process.wait", m_process_wait},
    {"process.signal", m_process_signal},
    {"process.resize", m_process_resize},
    {"scsi.add", m_scsi_add},
    {"scsi.remove", m_scsi_remove},
    /* Known to the protocol, not built yet: they fail with -32008 after the state check. */
    {"vm.save", m_unsupported},
    {"vm.update_memory", m_unsupported},
    {"vm.update_cpu_limits", m_unsupported},
    {"nic.add", m_unsupported},
    {"nic.remove", m_unsupported},
    {"nic.update", m_unsupported},
    {"vpmem.add", m_unsupported},
    {"vpmem.remove", m_unsupported},
    {"plan9.add", m_unsupported},
    {"plan9.remove", m_unsupported},
    {"vsock.update_service", m_unsupported},
    {"vsock.remove_service", m_unsupported},
    {"container.create", m_unsupported},
    {"container.start", m_unsupported},
    {"container.exec", m_unsupported},
    {"container.signal", m_unsupported},
    {"container.wait", m_unsupported},
    {"container.delete", m_unsupported},
    {"container.stats", m_unsupported},
    {NULL, NULL},
};

const struct ctl_method *ctl_serve_methods(void)
{
	return methods;
}

static void m_vm_capabilities(void *opaque, struct ctl_req *req)
{
	cJSON *r = cJSON_CreateObject(), *m = cJSON_AddArrayToObject(r, "methods");
	cJSON *ev = cJSON_AddArrayToObject(r, "events");

	cJSON_AddNumberToObject(r, "protocol", 1);
	for (const struct ctl_method *x = methods; x->name; x++)
		if (x->fn != m_unsupported)
			cJSON_AddItemToArray(m, cJSON_CreateString(x->name));
	cJSON_AddItemToArray(ev, cJSON_CreateString("vm.exited"));
	cJSON_AddItemToArray(ev, cJSON_CreateString("process.exited"));
	cJSON_AddNumberToObject(r, "max_line", CTL_LINE_MAX);
	ctl_req_result(req, r);
}

/* ---- the loop ------------------------------------------------------------------------ */

static int gate(void *opaque, const char *method, char *msg, size_t len)
{
	return lifecycle_begin(&((struct serve *)opaque)->lc, method, msg, len);
}

static void stop(struct serve *s, const char *why)
{
	pr_info(TAG, "%s: terminating", why);
	terminate(s);
	loop_stop(s->loop);
}

static void on_stdin(void *opaque, uint32_t events)
{
	struct serve *s = opaque;
	ssize_t n = ctl_read(s->ctl, STDIN_FILENO);

	if (n == -EAGAIN || n == -EINTR)
		return;
	if (n <= 0) {
		loop_del(s->loop, STDIN_FILENO);
		stop(s, n == 0 ? "stdin closed" : "stdin failed");
		return;
	}
	if (ctl_output_broken(s->ctl)) {
		loop_del(s->loop, STDIN_FILENO);
		stop(s, "stdout closed");
	}
}

static void on_signal(void *opaque, uint32_t events)
{
	struct serve *s = opaque;
	struct signalfd_siginfo si;

	if (read(s->sig_fd, &si, sizeof(si)) != sizeof(si))
		return;
	s->status = 128 + si.ssi_signo;
	stop(s, strsignal(si.ssi_signo));
}

int ctl_serve_main(int argc, char **argv)
{
	struct serve *s = calloc(1, sizeof(*s));
	sigset_t sigs;
	int ret = 1;

	if (!s)
		return 1;
	/* --no-seccomp: debugging only (docs/seccomp.md); applied by machine_start. */
	sandbox_configure(argc > 1 && !strcmp(argv[1], "--no-seccomp"));
	/* The stack-request handler goes in before any thread or filter exists. */
	if (stacks_init())
		pr_warn(TAG, "guest.dump_stacks will not have the shim's stacks");
	s->sig_fd = s->timer_fd = s->console_fd = -1;
	scsi_init(&s->scsi);
	lifecycle_init(&s->lc);
	/* The parent's death ends us like SIGTERM: the VM goes with the shim. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* vCPU threads inherit the mask */
	s->sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (s->sig_fd < 0 || s->timer_fd < 0 || loop_create(&s->loop)) {
		log_msg_errno(LOG_ERROR, TAG, "setup");
		goto out;
	}
	if (ctl_create(&s->ctl,
		       &(struct ctl_config){
			   .out_fd = STDOUT_FILENO, .methods = methods, .opaque = s, .gate = gate}))
		goto out;
	fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
	if (loop_add(s->loop, STDIN_FILENO, EPOLLIN, on_stdin, s) ||
	    loop_add(s->loop, s->sig_fd, EPOLLIN, on_signal, s) ||
	    loop_add(s->loop, s->timer_fd, EPOLLIN, on_timer, s)) {
		pr_err(TAG, "stdin cannot be polled (a regular file?); use a pipe or a socket");
		goto out;
	}
	pr_info(TAG, "serving the control protocol on stdin/stdout");
	loop_run(s->loop);
	ret = s->status;
out:
	terminate(s);
	procs_free(s);
	ctl_destroy(s->ctl);
	loop_destroy(s->loop);
	if (s->sig_fd >= 0)
		close(s->sig_fd);
	if (s->timer_fd >= 0)
		close(s->timer_fd);
	lifecycle_fini(&s->lc);
	free(s);
	return ret;
}
