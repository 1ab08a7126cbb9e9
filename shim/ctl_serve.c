/*
 * `uvm-shim serve`: the control protocol on stdin/stdout (docs/protocol.md).
 * This file runs the event loop (stdin, signals, the start timer) and holds
 * the method table; the handlers live in serve_vm.c (vm.*), serve_procs.c
 * (guest.exec, process.*) and serve_guest.c (requests forwarded to the
 * guest agent); shim/serve_priv.h has the state they share. One event loop
 * thread runs everything (stdin, the VM's exit, the vsock device, the
 * bridge, stdio relays, timers); vCPU threads only touch the console.
 *
 * Long operations keep their ctl_req and answer from a later callback:
 * vm.start (the bridge's ready), vm.wait and vm.shutdown (the VM's exit),
 * guest.exec and the process.* ones (bridge responses), process.wait (the
 * process's exit once its output is relayed).
 */
#include "shim/ctl_serve.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "seccomp/seccomp.h"
#include "shim/opener.h"
#include "shim/ctl.h"
#include "shim/lifecycle.h"
#include "shim/scsi.h"
#include "shim/serve_priv.h"
#include "shim/stacks.h"
#include "shim/vpmem.h"
#include "vmm/log.h"
#include "vmm/loop.h"

#define TAG "serve"

/* ---- small helpers ---------------------------------------------------------------- */

long serve_ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

cJSON *serve_state_result(struct serve *s)
{
	cJSON *r = cJSON_CreateObject();

	cJSON_AddStringToObject(r, "state", lifecycle_state_name(lifecycle_state(&s->lc)));
	return r;
}

void serve_req_list_add(struct req_list **l, struct ctl_req *req)
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

struct ctl_req *serve_req_list_pop(struct req_list **l)
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

/* ---- the method table ---------------------------------------------------------------- */

static void m_scsi_add(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;

	scsi_method_add(&s->scsi, s->bridge, lifecycle_state(&s->lc) == LC_RUNNING, req);
}

static void m_scsi_remove(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;

	if (serve_containers_hold(s, req, false))
		return;

	scsi_method_remove(&s->scsi, s->bridge, lifecycle_state(&s->lc) == LC_RUNNING, req);
}

static void m_nic_add(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;

	nic_method_add(&s->nics, s->bridge, lifecycle_state(&s->lc) == LC_RUNNING, req);
}

static void m_nic_remove(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;

	nic_method_remove(&s->nics, s->bridge, lifecycle_state(&s->lc) == LC_RUNNING, req);
}

static void m_nic_update(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;

	nic_method_update(&s->nics, s->bridge, lifecycle_state(&s->lc) == LC_RUNNING, req);
}

static void m_plan9_add(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;

	plan9_method_add(&s->plan9, s->bridge, lifecycle_state(&s->lc) == LC_RUNNING, req);
}

static void m_plan9_remove(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;

	if (serve_containers_hold_share(s, req))
		return;
	plan9_method_remove(&s->plan9, s->bridge, lifecycle_state(&s->lc) == LC_RUNNING, req);
}

static void m_vpmem_add(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;

	vpmem_method_add(&s->vpmem, s->bridge, lifecycle_state(&s->lc) == LC_RUNNING, req);
}

static void m_vpmem_remove(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;

	if (serve_containers_hold(s, req, true))
		return;

	vpmem_method_remove(&s->vpmem, s->bridge, lifecycle_state(&s->lc) == LC_RUNNING, req);
}

static void m_unsupported(void *opaque, struct ctl_req *req)
{
	ctl_req_error(req, CTL_ERR_UNSUPPORTED, "%s is not implemented in this build", req->method);
}

static void m_vm_capabilities(void *opaque, struct ctl_req *req);

#define B(s) LC_BIT(LC_##s)
#define X    LC_F_EXCLUSIVE
#define L    LC_F_LONG

/*
 * The control protocol: every method with the states it may run in, its
 * flags (X: changes the state, one at a time; L: answers later), and its
 * handler. The gate (lifecycle_begin) reads the states and flags; the
 * release when a request is answered frees an X method's turn.
 */
static const struct ctl_method methods[] = {
    {"vm.create", serve_vm_create, B(NOT_CREATED), X},
    {"vm.start", serve_vm_start, B(CREATED), X | L},
    {"vm.pause", serve_vm_pause, B(RUNNING), X},
    {"vm.resume", serve_vm_resume, B(PAUSED), X},
    {"vm.save", m_unsupported, B(PAUSED), X},
    /* Not exclusive: terminate must be able to cut short a start or shutdown. */
    {"vm.terminate", serve_vm_terminate, LC_ANY, 0},
    {"vm.shutdown", serve_vm_shutdown, B(RUNNING), X | L},
    {"vm.wait", serve_vm_wait, LC_NOT_NEW, L},
    {"vm.state", serve_vm_state, LC_ANY, 0},
    {"vm.stats", serve_vm_stats, LC_LIVE, 0},
    {"vm.capabilities", m_vm_capabilities, LC_ANY, 0},
    {"vm.update_memory", m_unsupported, LC_UP, 0},
    {"vm.update_cpu_limits", m_unsupported, LC_UP, 0},
    {"guest.exec", serve_guest_exec, LC_UP, L},
    {"guest.dump_stacks", serve_guest_dump_stacks, LC_UP, L},
    {"guest.properties", serve_guest_properties, LC_UP, L},
    /* A paused guest cannot answer, but the wait can be queued and signals delivered later. */
    {"process.wait", serve_process_wait, LC_UP | B(PAUSED), L},
    {"process.signal", serve_process_signal, LC_UP, L},
    {"process.resize", serve_process_resize, LC_UP, L},
    /* Resources may be attached before start (cold) or while running (hot). */
    {"scsi.add", m_scsi_add, LC_HOTPLUG, L},
    {"scsi.remove", m_scsi_remove, LC_HOTPLUG, L},
    {"vpmem.add", m_vpmem_add, LC_HOTPLUG, L},
    {"vpmem.remove", m_vpmem_remove, LC_HOTPLUG, L},
    {"plan9.add", m_plan9_add, LC_HOTPLUG, L},
    {"plan9.remove", m_plan9_remove, LC_HOTPLUG, L},
    {"nic.add", m_nic_add, LC_HOTPLUG, L},
    {"nic.remove", m_nic_remove, LC_HOTPLUG, L},
    {"nic.update", m_nic_update, LC_UP, L},
    {"container.create", serve_container_create, LC_UP, L},
    {"container.start", serve_container_start, LC_UP, L},
    {"container.exec", serve_container_exec, LC_UP, L},
    {"container.signal", serve_container_signal, LC_UP, L},
    {"container.wait", serve_container_wait, LC_UP | B(PAUSED), L},
    {"container.update", serve_container_update, LC_UP, L},
    {"container.stats", serve_container_stats, LC_UP, L},
    {"container.list", serve_container_list, LC_UP | B(PAUSED), 0},
    {"container.delete", serve_container_delete, LC_UP, L},
    {"netns.add", serve_netns_add, LC_UP, L},
    {"netns.remove", serve_netns_remove, LC_UP, L},
    /* Known to the protocol, not built yet: they fail with -32008 after the state check. */
    {"vsock.update_service", m_unsupported, LC_HOTPLUG, 0},
    {"vsock.remove_service", m_unsupported, LC_HOTPLUG, 0},
    {NULL, NULL, 0, 0},
};

#undef B
#undef X
#undef L

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
	cJSON_AddItemToArray(ev, cJSON_CreateString("container.exited"));
	cJSON_AddItemToArray(ev, cJSON_CreateString("container.oom"));
	cJSON_AddNumberToObject(r, "max_line", CTL_LINE_MAX);
	/* Boot forms vm.create takes: kernel (bzImage or PVH ELF) and uefi (firmware). */
	cJSON_AddItemToObject(r, "boot", cJSON_CreateStringArray((const char *[]){"direct", "uefi"}, 2));
	ctl_req_result(req, r);
}

/* ---- the loop ------------------------------------------------------------------------ */

static int gate(void *opaque, const struct ctl_method *m, char *msg, size_t len)
{
	return lifecycle_begin(&((struct serve *)opaque)->lc, m->name, m->allowed, m->flags, msg,
			       len);
}

/* Answered: an exclusive method's turn is over (whatever the answer, wherever it came from). */
static void release(void *opaque, const struct ctl_method *m)
{
	if (m->flags & LC_F_EXCLUSIVE)
		lifecycle_done(&((struct serve *)opaque)->lc, m->name);
}

static void stop(struct serve *s, const char *why)
{
	pr_info(TAG, "%s: terminating", why);
	serve_terminate(s);
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

/* What serve holds before a VM exists: shared by `serve` and the containerd shim. */
static void serve_state_init(struct serve *s)
{
	s->sig_fd = s->timer_fd = -1;
	console_sink_fd(&s->console, -1);
	scsi_init(&s->scsi);
	vpmem_init(&s->vpmem, VPMEM_DEFAULT_COUNT, VPMEM_DEFAULT_MAX_BYTES);
	plan9_init(&s->plan9);
	nic_init(&s->nics);
	lifecycle_init(&s->lc);
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
	/* Forked now, while the process holds nothing else (shim/opener.h). */
	if (opener_start()) {
		pr_err(TAG, "cannot start the opener process");
		free(s);
		return 1;
	}
	/* The stack-request handler goes in before any thread or filter exists. */
	if (stacks_init())
		pr_warn(TAG, "guest.dump_stacks will not have the shim's stacks");
	serve_state_init(s);
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
		pr_err_errno(TAG, "setup");
		goto out;
	}
	s->ctrs.reaper.loop = s->loop;
	if (ctl_create(&s->ctl,
		       &(struct ctl_config){
			   .out_fd = STDOUT_FILENO,
			   .methods = methods,
			   .opaque = s,
			   .gate = gate,
			   .release = release}))
		goto out;
	fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
	if (loop_add(s->loop, STDIN_FILENO, EPOLLIN, on_stdin, s) ||
	    loop_add(s->loop, s->sig_fd, EPOLLIN, on_signal, s) ||
	    loop_add(s->loop, s->timer_fd, EPOLLIN, serve_on_timer, s)) {
		pr_err(TAG, "stdin cannot be polled (a regular file?); use a pipe or a socket");
		goto out;
	}
	pr_info(TAG, "serving the control protocol on stdin/stdout");
	loop_run(s->loop);
	ret = s->status;
out:
	serve_terminate(s);
	serve_procs_free(s);
	serve_containers_free(s);
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

/* ---- in-process, for the containerd shim (shim/task*.c) ------------------------------- */

int ctl_serve_embed(struct loop *loop, int out_fd, struct serve **out, struct ctl **ctl)
{
	struct serve *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	serve_state_init(s);
	s->loop = loop;
	s->ctrs.reaper.loop = loop;
	s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (s->timer_fd < 0 || loop_add(loop, s->timer_fd, EPOLLIN, serve_on_timer, s) ||
	    ctl_create(&s->ctl, &(struct ctl_config){.out_fd = out_fd,
						      .methods = methods,
						      .opaque = s,
						      .gate = gate,
						      .release = release})) {
		if (s->timer_fd >= 0)
			close(s->timer_fd);
		lifecycle_fini(&s->lc);
		free(s);
		return -EIO;
	}
	*out = s;
	*ctl = s->ctl;
	return 0;
}

void ctl_serve_embed_free(struct serve *s)
{
	if (!s)
		return;
	serve_terminate(s);
	serve_procs_free(s);
	serve_containers_free(s);
	ctl_destroy(s->ctl);
	loop_del(s->loop, s->timer_fd);
	close(s->timer_fd);
	lifecycle_fini(&s->lc);
	free(s);
}
