/*
 * `uvm-shim serve`: the VM. vm.* methods, the machine's creation and
 * teardown, its exit (vm.exited, vm.wait, vm.shutdown), the console watch
 * and the bridge's callbacks (ready: vm.start's answer).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "boot/boot.h"
#include "gcs/protocol.h"
#include "shim/bridge.h"
#include "shim/console.h"
#include "shim/ctl.h"
#include "shim/guest_link.h"
#include "shim/lifecycle.h"
#include "shim/machine.h"
#include "shim/scsi.h"
#include "shim/serve_priv.h"
#include "shim/uefi_params.h"
#include "shim/vpmem.h"
#include "virtio/virtio.h"
#include "virtio/vsock.h"
#include "vmm/io_thread.h"
#include "vmm/mem_slots.h"
#include "vmm/log.h"
#include "vmm/loop.h"
#include "vmm/vm.h"

#define TAG "serve"
#define DEFAULT_START_TIMEOUT 120000 /* ms: a TCG-nested test host boots in ~20 s */

const char *serve_exit_word(enum vm_exit why)
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

/* ---- the VM ------------------------------------------------------------------------ */

/* vCPU thread: console bytes. */
static void console_out(void *opaque, const uint8_t *buf, size_t len)
{
	struct serve *s = opaque;

	console_watch_feed(&s->watch, s->vm, buf, len);
	console_sink_write(&s->console, buf, len);
}

static void on_boot_done(void *opaque, int err, const char *msg)
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
		ctl_req_error(req, CTL_ERR_GUEST, "a %s given before start failed: %s",
			      s->boot_what, msg);
		return;
	}
	lifecycle_event(&s->lc, LC_EV_STARTED, NULL);
	r = serve_state_result(s);
	cJSON_AddNumberToObject(r, "boot_ms", serve_ms_since(&s->t_start));
	if (gcs) {
		cJSON_DeleteItemFromObject(gcs, "status");
		cJSON_AddItemToObject(r, "gcs", gcs);
	}
	ctl_req_result(req, r);
}

/*
 * What was given before start attaches in turn: disks, pmem devices, 9p
 * shares, then NICs; vm.start answers when all are in (on_boot_done), and
 * the first failure fails it at once, naming the kind (boot_what).
 */
static void on_boot_shares(void *opaque, int err, const char *msg)
{
	struct serve *s = opaque;

	if (err || !s->start_req) {
		on_boot_done(s, err, msg);
		return;
	}
	s->boot_what = "NIC";
	nic_boot_attach(&s->nics, s->bridge, on_boot_done, s);
}

static void on_boot_pmem(void *opaque, int err, const char *msg)
{
	struct serve *s = opaque;

	if (err || !s->start_req) {
		on_boot_done(s, err, msg);
		return;
	}
	s->boot_what = "9p share";
	plan9_boot_attach(&s->plan9, s->bridge, on_boot_shares, s);
}

static void on_boot_scsi(void *opaque, int err, const char *msg)
{
	struct serve *s = opaque;

	if (err || !s->start_req) {
		on_boot_done(s, err, msg);
		return;
	}
	s->boot_what = "pmem device";
	vpmem_boot_attach(&s->vpmem, s->bridge, on_boot_pmem, s);
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
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent failed to negotiate: %s",
			      strerror(-err));
		return;
	}
	/* vm.start answers once the disks and shares given before it are mounted. */
	s->start_req = req;
	cJSON_Delete(s->gcs_answer);
	s->gcs_answer = cJSON_Duplicate(answer, 1);
	s->boot_what = "disk";
	scsi_boot_attach(&s->scsi, s->bridge, on_boot_scsi, s);
}

static void on_bridge_closed(void *opaque)
{
	pr_info(TAG, "bridge connection closed");
}

static void on_bridge_notify(void *opaque, uint32_t type, const cJSON *body)
{
	serve_containers_notify(opaque, type, body);
}

static const struct bridge_ops bridge_ops = {
    .ready = on_bridge_ready,
    .process_exited = serve_on_process_exited,
    .notify = on_bridge_notify,
    .closed = on_bridge_closed,
};

/* Frees every device and the VM. The vCPUs must have stopped (vm_join). */
static void vm_teardown(struct serve *s)
{
	guest_link_close_bridge(&s->link);
	s->bridge = NULL;
	serve_procs_cancel_all(s);
	serve_containers_cancel_all(s);
	scsi_unbind(&s->scsi); /* before the bus goes */
	vpmem_unbind(&s->vpmem);
	plan9_unbind(&s->plan9);
	nic_unbind(&s->nics);
	cJSON_Delete(s->gcs_answer);
	s->gcs_answer = NULL;
	guest_link_destroy(&s->link);
	s->vs = NULL;
	if (s->vm)
		loop_del(s->loop, vm_exit_fd(s->vm));
	machine_destroy(s->m);
	s->m = NULL;
	s->vm = NULL;
	console_sink_close(&s->console);
}

/* The VM stopped (any reason): settle everything that waited on it. */
static void vm_ended(struct serve *s, enum vm_exit why)
{
	struct ctl_req *req;
	cJSON *ev;

	if (s->exited)
		return;
	s->exited = true;
	if (why == VM_EXIT_RESET && s->watch.panic_seen)
		why = VM_EXIT_PANIC;
	s->exit_name = serve_exit_word(why);
	pr_info(TAG, "VM ended: %s", vm_exit_name(why));
	if (s->start_req) {
		req = s->start_req;
		s->start_req = NULL;
		lifecycle_event(&s->lc, LC_EV_START_FAILED, NULL);
		ctl_req_error(req, why == VM_EXIT_TERMINATED ? CTL_ERR_CANCELLED : CTL_ERR_GUEST,
			      "the VM ended (%s) before the guest agent was ready",
			      vm_exit_name(why));
	} else {
		lifecycle_event(&s->lc, LC_EV_GUEST_EXITED, NULL);
	}
	serve_procs_cancel_all(s);
	serve_containers_cancel_all(s);
	ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "exit", s->exit_name);
	ctl_event(s->ctl, "vm.exited", ev);
	while ((req = serve_req_list_pop(&s->vm_waiters))) {
		cJSON *r = cJSON_CreateObject();

		cJSON_AddStringToObject(r, "exit", s->exit_name);
		ctl_req_result(req, r);
	}
	if (s->shutdown_req) {
		cJSON *r = serve_state_result(s);

		cJSON_AddStringToObject(r, "exit", s->exit_name);
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

void serve_on_timer(void *opaque, uint32_t events)
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
		ctl_req_error(req, CTL_ERR_TIMEOUT,
			      "the guest agent did not negotiate within the start timeout");
		vm_request_exit(s->vm, VM_EXIT_TERMINATED);
	}
}

/* ---- vm.* methods ------------------------------------------------------------------- */

void serve_vm_create(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	const char *kernel = NULL, *initrd = NULL, *extra = NULL, *vsock_path = NULL;
	const char *console = NULL, *firmware = NULL;
	char err[256], kpath[PATH_MAX], ipath[PATH_MAX], cmdline[BOOT_CMDLINE_MAX + 1];
	uint64_t cpus = 1, mem = 512, cid = 3, io_threads = 0;
	struct machine_config cfg = {0};
	struct uefi_params uefi;
	const cJSON *disks = cJSON_GetObjectItemCaseSensitive(req->params, "scsi");
	const cJSON *shares = cJSON_GetObjectItemCaseSensitive(req->params, "plan9");
	const cJSON *nics = cJSON_GetObjectItemCaseSensitive(req->params, "nics");
	const cJSON *dj;
	unsigned vpmem_count;
	uint64_t vpmem_max;
	int ret, code = CTL_ERR_HOST;

	if (ctl_param_u64(req->params, "cpus", false, 1, VM_MAX_VCPUS, &cpus, err) == -EINVAL ||
	    ctl_param_u64(req->params, "memory_mib", false, 64, VM_MAX_MEM_MIB, &mem, err) ==
		-EINVAL ||
	    ctl_param_u64(req->params, "vsock_cid", false, 3, 0xfffffffeULL, &cid, err) ==
		-EINVAL ||
	    ctl_param_u64(req->params, "io_threads", false, 1, IO_THREADS_MAX, &io_threads, err) ==
		-EINVAL ||
	    ctl_param_str(req->params, "kernel", false, &kernel, err) == -EINVAL ||
	    ctl_param_str(req->params, "initrd", false, &initrd, err) == -EINVAL ||
	    ctl_param_str(req->params, "firmware", false, &firmware, err) == -EINVAL ||
	    ctl_param_str(req->params, "cmdline", false, &extra, err) == -EINVAL ||
	    ctl_param_str(req->params, "vsock_path", false, &vsock_path, err) == -EINVAL ||
	    ctl_param_str(req->params, "console", false, &console, err) == -EINVAL) {
		ctl_req_bad_params(req, err);
		return;
	}
	ret = uefi_params_parse(req->params, &uefi, err);
	if (ret == -EINVAL) {
		ctl_req_bad_params(req, err);
		return;
	}
	if (ret == 0) {
		firmware = uefi.firmware;
		kernel = uefi.kernel;
		initrd = uefi.initrd[0] ? uefi.initrd : NULL;
		extra = uefi.args;
	}
	if (vpmem_parse_limits(req->params, &vpmem_count, &vpmem_max, err)) {
		ctl_req_bad_params(req, err);
		return;
	}
	if (shares && !cJSON_IsArray(shares)) {
		ctl_req_bad_params(req, "params.plan9: expected an array of shares");
		return;
	}
	cJSON_ArrayForEach(dj, shares)
	{
		struct plan9_params pp;

		if (plan9_parse_add(dj, &pp, err)) {
			char msg[sizeof(err) + 32];

			snprintf(msg, sizeof(msg), "params.plan9[]: %s", err);
			ctl_req_bad_params(req, msg);
			return;
		}
	}
	if (disks && !cJSON_IsArray(disks)) {
		ctl_req_bad_params(req, "params.scsi: expected an array of disks");
		return;
	}
	cJSON_ArrayForEach(dj, disks)
	{
		struct scsi_params sp;

		if (scsi_parse_add(dj, &sp, err)) {
			char msg[sizeof(err) + 32];

			snprintf(msg, sizeof(msg), "params.scsi[]: %s", err);
			ctl_req_bad_params(req, msg);
			return;
		}
	}
	if (nics && !cJSON_IsArray(nics)) {
		ctl_req_bad_params(req, "params.nics: expected an array of NICs");
		return;
	}
	cJSON_ArrayForEach(dj, nics)
	{
		struct nic_params np;

		if (nic_parse_add(dj, &np, err)) {
			char msg[sizeof(err) + 32];

			snprintf(msg, sizeof(msg), "params.nics[]: %s", err);
			ctl_req_bad_params(req, msg);
			return;
		}
		nic_params_free(&np);
	}
	if (!kernel) {
		/* A missing default guest shows up below, naming the file. */
		(firmware ? machine_default_guest_efi : machine_default_guest)(
		    machine_guest_dir(), kpath, sizeof(kpath), ipath, sizeof(ipath));
		kernel = kpath;
		if (!initrd)
			initrd = ipath;
	}
	if (machine_cmdline(cmdline, sizeof(cmdline), extra, true)) {
		ctl_req_bad_params(req, "params.cmdline: the kernel command line gets too long");
		return;
	}
	console_sink_fd(&s->console, -1);
	if (console) {
		ret = console_sink_open(&s->console, console);
		if (ret) {
			snprintf(err, sizeof(err), "params.console: %s: %s", console,
				 ret == -ELOOP	  ? "is a symbolic link"
				 : ret == -EINVAL ? "not a regular file, FIFO or character device"
						  : strerror(-ret));
			goto fail;
		}
	}
	cfg.cpus = cpus;
	cfg.mem_mib = mem;
	cfg.io_threads = (int)io_threads; /* 0: MACHINE_IO_THREADS_DEFAULT */
	cfg.kernel = kernel;
	cfg.initrd = initrd;
	cfg.firmware = firmware;
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
	vpmem_init(&s->vpmem, vpmem_count, vpmem_max);
	vpmem_bind(&s->vpmem, s->m->pci, vm_mem(s->vm), s->loop, s->m->io, vm_mem_slots(s->vm));
	scsi_bind(&s->scsi, s->m->pci, vm_mem(s->vm), s->loop, s->m->io, (int)cpus);
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
	ret = plan9_bind(&s->plan9, s->m->pci, vm_mem(s->vm), s->loop, s->m->io);
	if (ret) {
		snprintf(err, sizeof(err), "9p workers: %s", strerror(-ret));
		goto fail;
	}
	cJSON_ArrayForEach(dj, shares)
	{
		struct plan9_params pp;

		if (plan9_parse_add(dj, &pp, err))
			goto fail; /* checked above */
		ret = plan9_attach_cold(&s->plan9, &pp, err, sizeof(err));
		if (ret) {
			code = ret == -ENOMEM || ret == -EIO ? CTL_ERR_HOST : CTL_ERR_BAD_PARAMS;
			goto fail;
		}
	}
	nic_bind(&s->nics, s->m->pci, vm_mem(s->vm), s->loop, s->m->io);
	cJSON_ArrayForEach(dj, nics)
	{
		struct nic_params np;
		char why[200];

		if (nic_parse_add(dj, &np, err))
			goto fail; /* checked above */
		ret = nic_attach_cold(&s->nics, &np, why, sizeof(why), &code);
		nic_params_free(&np);
		if (ret) {
			snprintf(err, sizeof(err), "nics[] (id %s): %s",
				 cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(dj, "id")),
				 why);
			goto fail;
		}
	}
	code = CTL_ERR_HOST;
	ret = guest_link_create(&s->link, s->m, s->loop, cid, vsock_path, &bridge_ops, s, err,
				sizeof(err));
	if (ret) {
		if (ret == -EEXIST || ret == -ENAMETOOLONG)
			code = CTL_ERR_BAD_PARAMS; /* vsock_path */
		goto fail;
	}
	s->vs = s->link.vs;
	s->bridge = s->link.bridge;
	ret = loop_add(s->loop, vm_exit_fd(s->vm), EPOLLIN, on_vm_exit, s);
	if (ret) {
		snprintf(err, sizeof(err), "VM setup failed: %s", strerror(-ret));
		goto fail;
	}
	s->cpus = cpus;
	s->mem_mib = mem;
	lifecycle_event(&s->lc, LC_EV_CREATED, NULL);
	ctl_req_result(req, serve_state_result(s));
	return;
fail:
	vm_teardown(s);
	ctl_req_error(req, code, "%s", err);
}

void serve_vm_start(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	char err[CTL_ERRLEN];
	uint64_t timeout = DEFAULT_START_TIMEOUT;
	struct itimerspec its = {0};
	int ret;

	if (ctl_param_u64(req->params, "timeout_ms", false, 1, 3600000, &timeout, err) == -EINVAL) {
		ctl_req_bad_params(req, err);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &s->t_start);
	ret = machine_start(s->m);
	if (ret) {
		ctl_req_error(req, CTL_ERR_HOST, "cannot start the vCPUs: %s", strerror(-ret));
		return;
	}
	s->started = true;
	s->start_req = req;
	its.it_value.tv_sec = timeout / 1000;
	its.it_value.tv_nsec = (timeout % 1000) * 1000000;
	timerfd_settime(s->timer_fd, 0, &its, NULL);
}

void serve_vm_pause(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	int ret = vm_pause(s->vm);

	if (!ret)
		lifecycle_event(&s->lc, LC_EV_PAUSED, NULL);
	if (ret)
		ctl_req_error(req, CTL_ERR_HOST, "pause failed: %s", strerror(-ret));
	else
		ctl_req_result(req, serve_state_result(s));
}

void serve_vm_resume(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	int ret = vm_resume(s->vm);

	if (!ret)
		lifecycle_event(&s->lc, LC_EV_RESUMED, NULL);
	if (ret)
		ctl_req_error(req, CTL_ERR_HOST, "resume failed: %s", strerror(-ret));
	else
		ctl_req_result(req, serve_state_result(s));
}

/* Stops the VM now and settles everything. Safe in every state. */
void serve_terminate(struct serve *s)
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

void serve_vm_terminate(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;

	serve_terminate(s);
	ctl_req_result(req, serve_state_result(s));
}

static void on_shutdown_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct serve *s = opaque;
	struct ctl_req *req = s->shutdown_req;

	if (status == 0 || !req)
		return; /* the answer comes with the VM's exit */
	s->shutdown_req = NULL;
	ctl_req_error(req, serve_guest_err_code(status), "shutdown refused: %s",
		      error ? error : "?");
}

void serve_vm_shutdown(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	int ret;

	if (!bridge_ready(s->bridge)) {
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent is not connected");
		return;
	}
	s->shutdown_req = req;
	ret = bridge_request(
	    s->bridge, BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_SYSTEM, BRIDGE_RPC_SHUTDOWN),
	    cJSON_CreateObject(), on_shutdown_resp, s);
	if (ret < 0) {
		s->shutdown_req = NULL;
		ctl_req_error(req, CTL_ERR_GUEST, "cannot reach the guest agent: %s",
			      strerror(-ret));
	}
}

void serve_vm_wait(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;

	if (s->exited || lifecycle_state(&s->lc) == LC_TERMINATED ||
	    lifecycle_state(&s->lc) == LC_INVALID) {
		cJSON *r = cJSON_CreateObject();

		cJSON_AddStringToObject(r, "exit", s->exit_name ? s->exit_name : "terminated");
		ctl_req_result(req, r);
		return;
	}
	serve_req_list_add(&s->vm_waiters, req);
}

void serve_vm_state(void *opaque, struct ctl_req *req)
{
	ctl_req_result(req, serve_state_result(opaque));
}

void serve_vm_stats(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	cJSON *r = serve_state_result(s), *v;
	struct vsock_stats st;

	cJSON_AddNumberToObject(r, "cpus", s->cpus);
	cJSON_AddNumberToObject(r, "memory_mib", s->mem_mib);
	cJSON_AddNumberToObject(r, "uptime_ms", s->started ? serve_ms_since(&s->t_start) : 0);
	if (s->vm) {
		uint64_t reserved, mapped;

		/* Runtime memory slots (pmem): a slot left after a remove shows here. */
		mem_slots_usage(vm_mem_slots(s->vm), &reserved, &mapped);
		v = cJSON_AddObjectToObject(r, "memory_slots");
		cJSON_AddNumberToObject(v, "count", mem_slots_count(vm_mem_slots(s->vm)));
		cJSON_AddNumberToObject(v, "reserved_bytes", (double)reserved);
		cJSON_AddNumberToObject(v, "mapped_bytes", (double)mapped);
		cJSON_AddNumberToObject(v, "vpmem_devices", vpmem_count_used(&s->vpmem));
	}
	if (s->vs) {
		vsock_get_stats(s->vs, &st);
		v = cJSON_AddObjectToObject(r, "vsock");
		cJSON_AddNumberToObject(v, "connections", st.conns);
		cJSON_AddNumberToObject(v, "from_guest_bytes", st.from_guest_bytes);
		cJSON_AddNumberToObject(v, "to_guest_bytes", st.to_guest_bytes);
		cJSON_AddNumberToObject(v, "malformed_packets", st.malformed);
	}
	if (nic_count(&s->nics))
		cJSON_AddItemToObject(r, "nics", nic_stats(&s->nics));
	ctl_req_result(req, r);
}
